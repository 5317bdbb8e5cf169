//! The key file: the only I/O of the vault.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::{KeyRing, VaultError};

impl KeyRing {
    /// Loads the ring from a key file (syntax: [`KeyRing::from_base64_keys`]).
    ///
    /// # Errors
    ///
    /// [`VaultError::KeyFileMissing`] if it does not exist, [`VaultError::Io`] if it cannot be
    /// read, and every parse error of [`KeyRing::from_base64_keys`].
    pub fn from_file(path: &Path) -> Result<KeyRing, VaultError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(VaultError::KeyFileMissing {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(VaultError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        KeyRing::from_base64_keys(&text)
    }

    /// Loads the key file, or on a first start creates it with one fresh key (version 1),
    /// readable by its owner only (mode 0600). Returns the ring and whether the file was
    /// created, so that the caller can log it (the vault itself never logs).
    ///
    /// Two instances starting together on a shared volume cannot both create it: the file
    /// appears atomically and only if absent, and the loser loads the winner's file.
    ///
    /// # Errors
    ///
    /// Those of [`KeyRing::from_file`]; [`VaultError::Io`] if the directory does not exist or
    /// is not writable; [`VaultError::Random`].
    pub fn load_or_create(path: &Path) -> Result<(KeyRing, bool), VaultError> {
        match KeyRing::from_file(path) {
            Err(VaultError::KeyFileMissing { .. }) => {}
            other => return other.map(|ring| (ring, false)),
        }
        let ring = KeyRing::generate()?;
        let temp = write_temp(path, &ring.to_spec())?;
        // A hard link publishes the complete file atomically and refuses to replace one that
        // another instance created meanwhile; a plain create-and-write could expose a half
        // written key file to a concurrent reader.
        let linked = fs::hard_link(&temp, path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_parent(path);
                Ok((ring, true))
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                KeyRing::from_file(path).map(|ring| (ring, false))
            }
            Err(source) => Err(VaultError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the ring to a key file, replacing it atomically (a temporary file in the same
    /// directory, synced, then renamed over it) with mode 0600. Used after adding a key for a
    /// rotation.
    ///
    /// # Errors
    ///
    /// [`VaultError::Io`] if the directory is missing or not writable.
    pub fn save(&self, path: &Path) -> Result<(), VaultError> {
        let temp = write_temp(path, &self.to_spec())?;
        if let Err(source) = fs::rename(&temp, path) {
            let _ = fs::remove_file(&temp);
            return Err(VaultError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        sync_parent(path);
        Ok(())
    }
}

/// Writes `contents` to a new, private, synced file beside `path` and returns its name.
fn write_temp(path: &Path, contents: &str) -> Result<PathBuf, VaultError> {
    let temp = temp_path(path)?;
    let io_err = |source| VaultError::Io {
        path: temp.clone(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(io_err)?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = fs::remove_file(&temp);
        return Err(io_err(source));
    }
    Ok(temp)
}

fn temp_path(path: &Path) -> Result<PathBuf, VaultError> {
    let mut suffix = [0u8; 8];
    SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| VaultError::Random)?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault-keys".to_owned());
    Ok(path.with_file_name(format!(".{name}.{suffix}.tmp")))
}

/// Makes the rename or link durable. Best effort: some platforms cannot open a directory, and
/// the data itself is already synced.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

/// Whether a key file is readable and writable by its owner only (no group or other
/// permission bits), so that the caller can warn about master keys other local users can read.
/// [`KeyRing::load_or_create`] and [`KeyRing::save`] always write 0600; this catches a file
/// copied or provisioned by hand. Always `true` where Unix permissions do not exist.
///
/// # Errors
///
/// [`VaultError::KeyFileMissing`] or [`VaultError::Io`] if its metadata cannot be read.
pub fn key_file_is_private(path: &Path) -> Result<bool, VaultError> {
    let metadata = fs::metadata(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            VaultError::KeyFileMissing {
                path: path.to_path_buf(),
            }
        } else {
            VaultError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        Ok(metadata.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Ok(true)
    }
}
