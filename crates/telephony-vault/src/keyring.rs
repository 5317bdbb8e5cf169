//! The ring of versioned master keys and the encryption it performs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad as RingAad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{self, TAG_LEN};
use crate::{SecretString, VaultError};

/// Length of a master key: AES-256.
pub const KEY_LEN: usize = 32;

/// The comment that opens a key file written by the vault.
const SPEC_HEADER: &str = "# telephony-gateway vault master keys: `<version>:<base64 of 32 bytes>`.\n\
     # The highest version encrypts unless an `active=<version>` line names another.\n\
     # Keep this file private (mode 0600) and backed up: a lost key loses every secret it wrapped.\n";

/// Who a ciphertext belongs to. It is bound to the ciphertext as AES-GCM associated data, so a
/// ciphertext copied into another organization's row, another connection, or another field of
/// the same row (an API key secret pasted into the auth-token column) fails to decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    /// The organization that owns the secret.
    pub org_id: &'a str,
    /// The carrier connection the secret belongs to.
    pub connection_id: &'a str,
    /// The field (column) that holds it, e.g. `auth_token`.
    pub field: &'a str,
}

/// The versioned master keys, one of them active.
///
/// The active key encrypts; every loaded key decrypts what it encrypted. Cloning is cheap (an
/// `Arc`), the ring is `Send + Sync`, and its `Debug` shows versions only. Operations that
/// change the ring (`with_new_active_key`, `with_staged_key`, `with_active_version`,
/// `without_key`) return a new ring and leave this one as it was, so a ring shared by running
/// requests never changes under them.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

struct Inner {
    keys: BTreeMap<u32, MasterKey>,
    active: u32,
    rng: SystemRandom,
}

struct MasterKey {
    /// Kept (zeroized on drop) only to write the key file back; ring's key schedule cannot be
    /// exported.
    raw: Zeroizing<[u8; KEY_LEN]>,
    aead: LessSafeKey,
}

impl MasterKey {
    fn new(raw: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, VaultError> {
        // Only fails for a wrong key length, which the type rules out; mapped rather than
        // unwrapped so that no path in the vault can panic.
        let unbound = UnboundKey::new(&AES_256_GCM, raw.as_slice())
            .map_err(|_| VaultError::EncryptionFailed)?;
        Ok(Self {
            raw,
            aead: LessSafeKey::new(unbound),
        })
    }

    fn duplicate(&self) -> Result<Self, VaultError> {
        Self::new(self.raw.clone())
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.inner.keys.keys().collect::<Vec<_>>())
            .field("active", &self.inner.active)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Parses a key specification: the key-file syntax, also accepted from an environment
    /// variable.
    ///
    /// Syntax, one entry per line (or several on one line separated by `,`, which suits an
    /// environment variable): `<version>:<standard base64 of 32 bytes>` defines a key, and an
    /// optional `active=<version>` names the active one; without it, the highest version is
    /// active. `#` starts a comment; blank entries are ignored. Versions are positive decimal
    /// integers without leading zeros.
    ///
    /// ```text
    /// # vault master keys
    /// 1:3q2+7w...=
    /// 2:q83vEj...=
    /// active=1   # 2 is staged: every instance loads it before anyone encrypts with it
    /// ```
    ///
    /// # Errors
    ///
    /// [`VaultError::MalformedKeyLine`], [`VaultError::KeyNotBase64`],
    /// [`VaultError::WrongKeyLength`], [`VaultError::DuplicateKeyVersion`],
    /// [`VaultError::DuplicateActiveLine`], [`VaultError::NoKeys`] or
    /// [`VaultError::UnknownActiveVersion`]; no message contains key material.
    pub fn from_base64_keys(spec: &str) -> Result<KeyRing, VaultError> {
        let mut keys = BTreeMap::new();
        let mut active = None;
        for (index, line) in spec.lines().enumerate() {
            let line_no = index + 1;
            let content = line.split('#').next().unwrap_or_default();
            for entry in content.split(',') {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                if let Some(version) = entry.strip_prefix("active") {
                    let version = version.trim_start();
                    let version = version
                        .strip_prefix('=')
                        .ok_or(VaultError::MalformedKeyLine {
                            line: line_no,
                            reason: "expected `active=<version>`",
                        })?
                        .trim();
                    let version =
                        envelope::parse_version(version).ok_or(VaultError::MalformedKeyLine {
                            line: line_no,
                            reason: "active version is not a positive integer",
                        })?;
                    if active.replace(version).is_some() {
                        return Err(VaultError::DuplicateActiveLine { line: line_no });
                    }
                    continue;
                }
                let (version, key) = parse_key_entry(line_no, entry)?;
                if keys.insert(version, MasterKey::new(key)?).is_some() {
                    return Err(VaultError::DuplicateKeyVersion { version });
                }
            }
        }
        let highest = *keys.keys().next_back().ok_or(VaultError::NoKeys)?;
        let active = active.unwrap_or(highest);
        Self::assemble(keys, active)
    }

    /// One fresh random key, version 1, active: for tests and for a first start.
    ///
    /// # Errors
    ///
    /// [`VaultError::Random`] if the system random generator fails.
    pub fn generate() -> Result<KeyRing, VaultError> {
        let rng = SystemRandom::new();
        let mut keys = BTreeMap::new();
        keys.insert(1, MasterKey::new(random_key(&rng)?)?);
        Self::assemble(keys, 1)
    }

    /// A ring with one more key, version `max + 1`, which becomes active. Old keys stay so that
    /// what they encrypted still decrypts until it is rewrapped.
    ///
    /// # Errors
    ///
    /// [`VaultError::Random`] or [`VaultError::KeyVersionOverflow`].
    pub fn with_new_active_key(&self) -> Result<KeyRing, VaultError> {
        let staged = self.with_staged_key()?;
        let newest = staged.newest_version();
        staged.with_active_version(newest)
    }

    /// A ring with one more key, version `max + 1`, that is loaded but not active yet.
    ///
    /// With several instances, stage the key first, deploy the file everywhere, then activate
    /// it: an instance never meets a ciphertext made with a key it has not loaded.
    ///
    /// # Errors
    ///
    /// [`VaultError::Random`] or [`VaultError::KeyVersionOverflow`].
    pub fn with_staged_key(&self) -> Result<KeyRing, VaultError> {
        let next = self
            .newest_version()
            .checked_add(1)
            .ok_or(VaultError::KeyVersionOverflow)?;
        let mut keys = self.copy_keys()?;
        keys.insert(next, MasterKey::new(random_key(&self.inner.rng)?)?);
        Self::assemble(keys, self.inner.active)
    }

    /// The same keys with another one active.
    ///
    /// # Errors
    ///
    /// [`VaultError::UnknownActiveVersion`] if no key has that version.
    pub fn with_active_version(&self, version: u32) -> Result<KeyRing, VaultError> {
        Self::assemble(self.copy_keys()?, version)
    }

    /// The same ring without one old key, once everything it wrapped has been rewrapped.
    /// Ciphertexts still made with it then fail with [`VaultError::UnknownKeyVersion`].
    ///
    /// # Errors
    ///
    /// [`VaultError::RemovingActiveKey`] for the active key. Removing a version that is not in
    /// the ring changes nothing.
    pub fn without_key(&self, version: u32) -> Result<KeyRing, VaultError> {
        if version == self.inner.active {
            return Err(VaultError::RemovingActiveKey { version });
        }
        let mut keys = self.copy_keys()?;
        keys.remove(&version);
        Self::assemble(keys, self.inner.active)
    }

    /// The version of the key that encrypts.
    #[must_use]
    pub fn active_version(&self) -> u32 {
        self.inner.active
    }

    /// Every loaded key version, ascending.
    #[must_use]
    pub fn versions(&self) -> Vec<u32> {
        self.inner.keys.keys().copied().collect()
    }

    /// Encrypts a secret for one owner under the active key with a fresh random nonce.
    ///
    /// The result is self-describing ASCII (`v1:<key version>:<base64url>`), safe to store in a
    /// `TEXT` column.
    ///
    /// # Errors
    ///
    /// [`VaultError::Random`] if no nonce can be drawn, [`VaultError::EncryptionFailed`] for a
    /// plaintext beyond AES-GCM's limit (64 GiB).
    pub fn encrypt(&self, plaintext: &SecretString, aad: &Aad<'_>) -> Result<String, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.inner
            .rng
            .fill(&mut nonce)
            .map_err(|_| VaultError::Random)?;
        self.seal_with_nonce(nonce, plaintext, aad)
    }

    /// The deterministic core of [`KeyRing::encrypt`]. Private: a caller choosing nonces could
    /// repeat one, which breaks AES-GCM; the known-answer tests reach it from inside the crate.
    fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &SecretString,
        aad: &Aad<'_>,
    ) -> Result<String, VaultError> {
        let version = self.inner.active;
        let key = self
            .inner
            .keys
            .get(&version)
            .ok_or(VaultError::UnknownActiveVersion { version })?;
        let plaintext = plaintext.expose().as_bytes();
        // Sized up front so the buffer never reallocates and leaves a plaintext copy behind.
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                RingAad::from(envelope::associated_data(version, aad)),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| VaultError::EncryptionFailed);
        let tag = match tag {
            Ok(tag) => tag,
            Err(err) => {
                buf.zeroize();
                return Err(err);
            }
        };
        buf.extend_from_slice(tag.as_ref());
        Ok(envelope::format(version, &buf))
    }

    /// Decrypts a ciphertext made by [`KeyRing::encrypt`] for the same owner, with whichever
    /// loaded key it names.
    ///
    /// # Errors
    ///
    /// [`VaultError::MalformedCiphertext`] or [`VaultError::UnsupportedFormat`] for text that is
    /// not a vault ciphertext, [`VaultError::UnknownKeyVersion`] for a key that is not loaded,
    /// [`VaultError::DecryptionFailed`] if any byte was altered or the owner differs.
    pub fn decrypt(&self, ciphertext: &str, aad: &Aad<'_>) -> Result<SecretString, VaultError> {
        let envelope::Envelope {
            key_version,
            mut payload,
        } = envelope::parse(ciphertext)?;
        let key = self
            .inner
            .keys
            .get(&key_version)
            .ok_or(VaultError::UnknownKeyVersion {
                version: key_version,
            })?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&payload[..NONCE_LEN]);
        let plaintext_len = key
            .aead
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                RingAad::from(envelope::associated_data(key_version, aad)),
                &mut payload,
                NONCE_LEN..,
            )
            .map_err(|_| VaultError::DecryptionFailed {
                version: key_version,
            })?
            .len();
        payload.truncate(plaintext_len);
        match String::from_utf8(payload) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(VaultError::PlaintextNotUtf8)
            }
        }
    }

    /// Decrypts and encrypts again under the active key with a fresh nonce: the step of a
    /// master-key rotation, done row by row while the service keeps running.
    ///
    /// # Errors
    ///
    /// Those of [`KeyRing::decrypt`] and [`KeyRing::encrypt`].
    pub fn rewrap(&self, ciphertext: &str, aad: &Aad<'_>) -> Result<String, VaultError> {
        let plaintext = self.decrypt(ciphertext, aad)?;
        self.encrypt(&plaintext, aad)
    }

    /// Whether a ciphertext is already under the active key, so a rotation job can skip it.
    ///
    /// # Errors
    ///
    /// Those of [`KeyRing::key_version_of`].
    pub fn is_current(&self, ciphertext: &str) -> Result<bool, VaultError> {
        Ok(Self::key_version_of(ciphertext)? == self.inner.active)
    }

    /// The master key version a ciphertext was made with, read from its header without any
    /// key.
    ///
    /// # Errors
    ///
    /// [`VaultError::MalformedCiphertext`] or [`VaultError::UnsupportedFormat`].
    pub fn key_version_of(ciphertext: &str) -> Result<u32, VaultError> {
        envelope::parse_header(ciphertext).map(|(version, _)| version)
    }

    /// The ring in the key-file syntax (see [`KeyRing::from_base64_keys`]). The text holds the
    /// keys, hence `Zeroizing`.
    pub(crate) fn to_spec(&self) -> Zeroizing<String> {
        // Sized up front: a `String` that grows frees its old buffer without zeroing it, which
        // would leave copies of the keys written so far on the heap.
        let mut out = Zeroizing::new(String::with_capacity(self.spec_capacity()));
        out.push_str(SPEC_HEADER);
        for (version, key) in &self.inner.keys {
            out.push_str(&version.to_string());
            out.push(':');
            STANDARD.encode_string(key.raw.as_slice(), &mut out);
            out.push('\n');
        }
        if self.inner.active != self.newest_version() {
            out.push_str("active=");
            out.push_str(&self.inner.active.to_string());
            out.push('\n');
        }
        out
    }

    /// An upper bound of the length of [`KeyRing::to_spec`]: the header, one line per key
    /// (version, `:`, base64 of 32 bytes, newline) and the `active=` line.
    fn spec_capacity(&self) -> usize {
        const VERSION_DIGITS: usize = 10; // u32::MAX
        const KEY_LINE: usize = VERSION_DIGITS + 1 + KEY_LEN.div_ceil(3) * 4 + 1;
        SPEC_HEADER.len() + self.inner.keys.len() * KEY_LINE + "active=\n".len() + VERSION_DIGITS
    }

    fn newest_version(&self) -> u32 {
        // A ring always holds its active key, so it is never empty.
        self.inner
            .keys
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.inner.active)
    }

    fn copy_keys(&self) -> Result<BTreeMap<u32, MasterKey>, VaultError> {
        self.inner
            .keys
            .iter()
            .map(|(version, key)| Ok((*version, key.duplicate()?)))
            .collect()
    }

    fn assemble(keys: BTreeMap<u32, MasterKey>, active: u32) -> Result<KeyRing, VaultError> {
        if !keys.contains_key(&active) {
            return Err(VaultError::UnknownActiveVersion { version: active });
        }
        Ok(KeyRing {
            inner: Arc::new(Inner {
                keys,
                active,
                rng: SystemRandom::new(),
            }),
        })
    }
}

fn parse_key_entry(
    line: usize,
    entry: &str,
) -> Result<(u32, Zeroizing<[u8; KEY_LEN]>), VaultError> {
    let (version, key) = entry.split_once(':').ok_or(VaultError::MalformedKeyLine {
        line,
        reason: "expected `<version>:<base64 key>` or `active=<version>`",
    })?;
    let version = envelope::parse_version(version.trim()).ok_or(VaultError::MalformedKeyLine {
        line,
        reason: "key version is not a positive integer",
    })?;
    let decoded = Zeroizing::new(
        STANDARD
            .decode(key.trim())
            .map_err(|_| VaultError::KeyNotBase64 { line })?,
    );
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    if decoded.len() != KEY_LEN {
        return Err(VaultError::WrongKeyLength {
            line,
            actual: decoded.len(),
        });
    }
    raw.copy_from_slice(&decoded);
    Ok((version, raw))
}

fn random_key(rng: &SystemRandom) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill(raw.as_mut_slice())
        .map_err(|_| VaultError::Random)?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    //! The known-answer vectors, in the sealing direction: only code inside the crate may pick a
    //! nonce. The integration tests check the same file in the opening direction.

    use super::*;

    #[test]
    fn sealing_with_the_vector_nonce_gives_the_vector_ciphertext() {
        let vectors = include_str!("../tests/vectors/vault_kat.txt");
        let mut checked = 0;
        for block in vectors.split("\n\n") {
            let fields = parse_block(block);
            let Some(ciphertext) = field(&fields, "ciphertext") else {
                continue;
            };
            let ring = KeyRing::from_base64_keys(&format!(
                "{}:{}",
                field(&fields, "key_version").unwrap_or_default(),
                field(&fields, "key").unwrap_or_default()
            ))
            .expect("vector key");
            let nonce_hex = field(&fields, "nonce").unwrap_or_default();
            let mut nonce = [0u8; NONCE_LEN];
            for (i, byte) in nonce.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&nonce_hex[2 * i..2 * i + 2], 16).expect("nonce hex");
            }
            let aad = Aad {
                org_id: field(&fields, "org").unwrap_or_default(),
                connection_id: field(&fields, "connection").unwrap_or_default(),
                field: field(&fields, "field").unwrap_or_default(),
            };
            let plaintext = SecretString::new(field(&fields, "plaintext").unwrap_or_default());
            let sealed = ring.seal_with_nonce(nonce, &plaintext, &aad).expect("seal");
            assert_eq!(sealed, ciphertext, "vector block:\n{block}");
            checked += 1;
        }
        assert!(checked >= 3, "only {checked} vectors found");
    }

    /// Regression: the key-file text grew while keys were appended, and each reallocation
    /// freed a buffer holding key material without zeroing it. The text must fit the capacity
    /// reserved up front, so it never reallocates.
    #[test]
    fn key_file_text_never_reallocates_and_leaves_no_unzeroed_key_copies() {
        let mut ring =
            KeyRing::from_base64_keys("4294967290:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .expect("spec");
        for _ in 0..4 {
            ring = ring.with_staged_key().expect("stage");
        }
        let ring = ring.with_active_version(4_294_967_290).expect("activate");
        let spec = ring.to_spec();
        assert!(
            spec.contains("active=4294967290\n"),
            "{}",
            spec.lines().count()
        );
        assert_eq!(spec.capacity(), ring.spec_capacity());
        assert!(spec.len() <= spec.capacity());
        let single = KeyRing::generate().expect("ring");
        assert_eq!(single.to_spec().capacity(), single.spec_capacity());
    }

    fn parse_block(block: &str) -> Vec<(&str, &str)> {
        block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(" =")?;
                Some((k, v.strip_prefix(' ').unwrap_or(v)))
            })
            .collect()
    }

    fn field<'a>(fields: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
        fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}
