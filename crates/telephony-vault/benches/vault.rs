//! Vault throughput on the inbound path: decrypting one carrier token per webhook.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use telephony_vault::{Aad, KeyRing, SecretString};

fn bench(c: &mut Criterion) {
    let ring = KeyRing::generate().expect("key ring");
    let aad = Aad {
        org_id: "0192f1c4-7d5e-7a3b-9c1d-2e3f4a5b6c7d",
        connection_id: "0192f1c4-8e6f-7b4c-8d2e-3f4a5b6c7d8e",
        field: "auth_token",
    };
    // A Twilio auth token is 32 hex characters; a Telnyx key ~ 40 characters.
    let token = SecretString::new("KEY0123456789ABCDEF0123456789_abcdefghij");
    let ciphertext = ring.encrypt(&token, &aad).expect("encrypt");

    c.bench_function("vault_decrypt_40_byte_token", |b| {
        b.iter(|| ring.decrypt(black_box(&ciphertext), black_box(&aad)))
    });
    c.bench_function("vault_encrypt_40_byte_token", |b| {
        b.iter(|| ring.encrypt(black_box(&token), black_box(&aad)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
