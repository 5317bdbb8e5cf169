//! The registry's master keys: a [`KeyRing`] that can be reloaded from its key file while the
//! gateway runs, so a master-key rotation done elsewhere (`telephony-gateway keys rotate`, or
//! another instance) needs no restart.
//!
//! Every encryption, decryption and rewrap of the registry goes through [`KeySource`].
//! Encryption uses the active key of the ring loaded now. A decryption that meets a ciphertext
//! under a key version the loaded ring lacks ([`VaultError::UnknownKeyVersion`]: another
//! process added a key and re-wrapped the secrets) reloads the ring from the file once and
//! retries. Reloads are rate-limited to one per [`RELOAD_INTERVAL`], so a ciphertext whose key
//! is truly gone cannot turn every request into a file read. Without a file (keys given as a
//! value, such as `TELEPHONY_MASTER_KEY`) there is nothing to reload: the error is returned as
//! it is, and a rotation needs a rolling restart with the new keys.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use telephony_vault::{Aad, KeyRing, SecretString, VaultError};

/// The shortest time between two reloads of the key file.
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The key ring in use, and the file it can be reloaded from.
pub(crate) struct KeySource {
    ring: RwLock<KeyRing>,
    file: Option<PathBuf>,
    /// When the file was last read for a reload (`None`: never).
    last_reload: Mutex<Option<Instant>>,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource")
            .field("ring", &self.current())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl KeySource {
    /// A fixed ring: nothing to reload it from.
    pub(crate) fn fixed(ring: KeyRing) -> Self {
        Self {
            ring: RwLock::new(ring),
            file: None,
            last_reload: Mutex::new(None),
        }
    }

    /// A ring loaded from `file`, reloaded from it when a ciphertext needs a key it lacks.
    pub(crate) fn from_file(ring: KeyRing, file: PathBuf) -> Self {
        Self {
            ring: RwLock::new(ring),
            file: Some(file),
            last_reload: Mutex::new(None),
        }
    }

    /// The ring loaded now (cheap: a reference count).
    pub(crate) fn current(&self) -> KeyRing {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Encrypts under the active key of the ring loaded now.
    pub(crate) fn encrypt(
        &self,
        plaintext: &SecretString,
        aad: &Aad<'_>,
    ) -> Result<String, VaultError> {
        self.current().encrypt(plaintext, aad)
    }

    /// Decrypts, reloading the ring once from its file if the ciphertext names a key version
    /// it lacks.
    pub(crate) fn decrypt(
        &self,
        ciphertext: &str,
        aad: &Aad<'_>,
    ) -> Result<SecretString, VaultError> {
        self.with_reload(|ring| ring.decrypt(ciphertext, aad))
    }

    /// Re-encrypts under the active key, reloading like [`KeySource::decrypt`].
    pub(crate) fn rewrap(&self, ciphertext: &str, aad: &Aad<'_>) -> Result<String, VaultError> {
        self.with_reload(|ring| ring.rewrap(ciphertext, aad))
    }

    /// Whether a ciphertext is under the active key of the ring loaded now.
    pub(crate) fn is_current(&self, ciphertext: &str) -> Result<bool, VaultError> {
        self.current().is_current(ciphertext)
    }

    /// Reloads the ring from its file now (subject to the rate limit). Returns whether a new
    /// ring was loaded.
    pub(crate) fn reload(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let mut last = self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        match KeyRing::from_file(file) {
            Ok(ring) => {
                tracing::info!(
                    path = %file.display(),
                    active_version = ring.active_version(),
                    "reloaded the master key file"
                );
                *self.ring.write().unwrap_or_else(PoisonError::into_inner) = ring;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "could not reload the master key file");
                false
            }
        }
    }

    fn with_reload<T>(
        &self,
        op: impl Fn(&KeyRing) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let ring = self.current();
        match op(&ring) {
            Err(VaultError::UnknownKeyVersion { .. }) if self.file.is_some() => {
                // Another caller may have reloaded meanwhile (and hold the rate limit): retry
                // with whatever ring is loaded after our attempt.
                self.reload();
                op(&self.current())
            }
            other => other,
        }
    }
}
