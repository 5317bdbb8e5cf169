//! The credential vault. (Crate documentation is being written; see `secret`.)
mod secret;
pub use secret::{REDACTED, SecretString};
