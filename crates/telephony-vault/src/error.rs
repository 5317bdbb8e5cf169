//! The one error type of the vault.

use std::path::PathBuf;

/// Every way the vault can fail.
///
/// Messages are lowercase and never contain key material, plaintext or ciphertext bytes: they
/// name the line of a key file, a key version or a reason, which is all an operator needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The key file does not exist.
    #[error("master key file {path} does not exist")]
    KeyFileMissing {
        /// Where the file was looked for.
        path: PathBuf,
    },

    /// The key file could not be read, written or created.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file (or its temporary sibling) that failed.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// A line of the key specification is not `<version>:<base64 key>` nor `active=<version>`.
    #[error("master key line {line}: {reason}")]
    MalformedKeyLine {
        /// 1-based line number in the file or in the environment value.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A key is not valid standard base64.
    #[error("master key line {line}: key is not valid base64")]
    KeyNotBase64 {
        /// 1-based line number.
        line: usize,
    },

    /// A key decodes to something other than 32 bytes.
    #[error("master key line {line}: key is {actual} bytes, an aes-256 key is 32")]
    WrongKeyLength {
        /// 1-based line number.
        line: usize,
        /// How many bytes it decoded to.
        actual: usize,
    },

    /// Two keys carry the same version.
    #[error("master key version {version} is defined twice")]
    DuplicateKeyVersion {
        /// The repeated version.
        version: u32,
    },

    /// More than one `active=` line.
    #[error("master key line {line}: a second `active=` line")]
    DuplicateActiveLine {
        /// 1-based line number of the second one.
        line: usize,
    },

    /// The specification holds no key at all (an empty file or environment value).
    #[error("no master key defined")]
    NoKeys,

    /// The active version names no key of the ring.
    #[error("active master key version {version} is not defined")]
    UnknownActiveVersion {
        /// The version asked for.
        version: u32,
    },

    /// The active key cannot be removed from the ring.
    #[error("master key version {version} is active and cannot be removed")]
    RemovingActiveKey {
        /// The active version.
        version: u32,
    },

    /// No more key versions: the highest version is already `u32::MAX`.
    #[error("master key versions exhausted")]
    KeyVersionOverflow,

    /// The operating system's random generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// The plaintext is too large to encrypt.
    #[error("encryption failed: plaintext too large")]
    EncryptionFailed,

    /// The text is not a vault ciphertext (`v1:<key version>:<base64url>`).
    #[error("malformed ciphertext: {reason}")]
    MalformedCiphertext {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The ciphertext was written by a format this vault does not know.
    #[error("unsupported ciphertext format")]
    UnsupportedFormat,

    /// The ciphertext names a master key version that is not in the ring (removed too early,
    /// or a key file from another deployment).
    #[error("ciphertext was encrypted with master key version {version}, which is not loaded")]
    UnknownKeyVersion {
        /// The version the ciphertext names.
        version: u32,
    },

    /// Authentication failed: the ciphertext was altered, or belongs to another organization,
    /// connection or field than the one asked for.
    #[error(
        "ciphertext does not authenticate under master key version {version} for this owner \
         (altered, or moved from another row or field)"
    )]
    DecryptionFailed {
        /// The version the ciphertext names.
        version: u32,
    },

    /// The decrypted bytes are not UTF-8; only possible if someone encrypted raw bytes with the
    /// same key and associated data, since [`crate::KeyRing::encrypt`] takes a string.
    #[error("decrypted secret is not utf-8")]
    PlaintextNotUtf8,
}
