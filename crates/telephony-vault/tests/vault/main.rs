//! The vault's behaviour: what it encrypts, what it refuses, and how its keys live on disk.

mod cipher;
mod keyfile;
mod properties;
mod redaction;
mod rotation;

use telephony_vault::{Aad, KeyRing};

/// The owner most tests encrypt for.
const OWNER: Aad<'static> = Aad {
    org_id: "org_a",
    connection_id: "conn_1",
    field: "auth_token",
};

/// A ring from a fixed spec, so failures reproduce.
fn fixed_ring() -> KeyRing {
    KeyRing::from_base64_keys("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("fixed key spec parses")
}
