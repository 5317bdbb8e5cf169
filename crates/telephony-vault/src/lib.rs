//! The credential vault: encrypts each organization's carrier secrets (Twilio auth tokens, API
//! key secrets, Telnyx API keys) under versioned master keys, and the [`SecretString`] type
//! that keeps a secret out of logs, errors and responses.
//!
//! # Design
//!
//! **AES-256-GCM from `ring`, one fresh random 96-bit nonce per encryption.** GCM is an
//! authenticated cipher: any changed bit of a stored ciphertext makes decryption fail instead of
//! yielding a wrong token. Random nonces are safe for the volume of a credential store (NIST's
//! bound of 2³² encryptions per key is far beyond the number of secrets times the number of
//! rotations a deployment will ever do); nonces are never chosen by callers.
//!
//! **Associated data binds a ciphertext to its owner** ([`Aad`]: organization id, connection id,
//! field name). Without it, someone able to write one database row (a support tool, an SQL
//! injection elsewhere, a restored backup) could copy organization A's encrypted token into
//! organization B's row and have the gateway place B's calls with A's account, or move an API key
//! secret into the auth-token column. With it, such a copy fails to decrypt and the failure is a
//! typed error. The associated data also carries the format and key version, each field
//! length-prefixed so that distinct owners never encode alike.
//!
//! **Versioned master keys** ([`KeyRing`]). Every ciphertext names the key version that made it
//! (`v1:<key version>:<base64url>`), so the master key can be rotated without downtime: add a key
//! (optionally staged, not active, until every instance has it), make it active, rewrap stored
//! secrets row by row with [`KeyRing::rewrap`] while old ones keep decrypting, then remove the
//! old key. A ciphertext whose key was removed fails with [`VaultError::UnknownKeyVersion`],
//! which says exactly what went wrong. The leading format version leaves room for a future
//! scheme without guessing.
//!
//! **Master keys** come from a key file or an environment value in one small syntax (see
//! [`KeyRing::from_base64_keys`]); [`KeyRing::load_or_create`] makes the file on a first start
//! with mode 0600 and tells the caller so. Key bytes are zeroized when dropped and never printed.
//!
//! # What it must not know
//!
//! The vault knows nothing of databases, HTTP, carriers or logging: it maps (secret, owner) to
//! text and back, and reads or writes one key file. It is the only crate that touches master keys
//! or `ring::aead`; callers store the text it returns and hand it back. It never logs: where
//! something is worth telling the operator (a key file was created) it returns a flag.

mod ct;
mod envelope;
mod error;
mod keyfile;
mod keyring;
mod secret;

pub use ct::constant_time_eq;
pub use error::VaultError;
pub use keyfile::key_file_is_private;
pub use keyring::{Aad, KEY_LEN, KeyRing};
pub use secret::{REDACTED, SecretString};
