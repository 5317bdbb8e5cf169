//! Seed files: the shipped demo seed works, and bad seeds are refused with a reason.

use std::path::PathBuf;

use telephony_emulator::{Emulator, EmulatorError, Seed};

use crate::support::*;

#[tokio::test]
async fn the_demo_seed_starts_an_emulator_with_both_carriers() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/demo.json");
    let seed = Seed::from_json_file(&path).expect("demo seed parses");
    let emulator = start(seed).await;
    let state = emulator.state();
    assert_eq!(state.twilio_accounts.len(), 2, "parent and subaccount");
    assert!(
        state
            .twilio_numbers
            .iter()
            .all(|n| n.sid.starts_with("PN") && n.sid.len() == 34)
    );
    assert_eq!(state.telnyx_accounts[0].public_key, TX_PUBLIC_KEY);
    assert_eq!(
        emulator.telnyx_base_url().as_str(),
        format!("{}v2", emulator.base_url())
    );
    assert_eq!(emulator.twilio_base_url(), emulator.base_url());
    let api = Api::new(&emulator);
    let check = api
        .twilio_get(
            "/2010-04-01/Accounts/AC00000000000000000000000000000001.json",
            "SK00000000000000000000000000000001",
            "demo-api-key-secret-0001",
        )
        .await;
    assert_eq!(check.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn bad_seeds_are_refused_with_a_reason() {
    let cases = [
        (r#"{"twilio": {"acounts": []}}"#, "unknown field"),
        (
            r#"{"twilio": {"accounts": [{"sid": "AC1"}]}}"#,
            "needs sid and auth_token",
        ),
        (
            r#"{"telnyx": {"accounts": [{"api_key": "KEY1", "account_sid": "a", "signing_seed": "c2hvcnQ="}]}}"#,
            "32 bytes",
        ),
    ];
    for (json, reason) in cases {
        let result = match Seed::from_json_str(json) {
            Ok(seed) => Emulator::start(seed, "127.0.0.1:0".parse().expect("literal"))
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        let error = result.expect_err(json);
        assert!(error.to_string().contains(reason), "{json}: {error}");
    }
    let missing =
        Seed::from_json_file(&PathBuf::from("/nonexistent/seed.json")).expect_err("no file");
    assert!(matches!(missing, EmulatorError::SeedRead { .. }));
}

#[tokio::test]
async fn after_shutdown_or_drop_the_port_no_longer_answers() {
    for drop_it in [false, true] {
        let emulator = start(seed(None, None)).await;
        let api = Api::new(&emulator);
        assert_eq!(
            api.telnyx("GET", "/v2/balance", TX_KEY, None).await.status,
            200
        );
        if drop_it {
            drop(emulator);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        } else {
            emulator.shutdown().await;
        }
        // A fresh client, so no pooled connection hides the closed listener.
        let fresh = client();
        let result = fresh
            .get(api.url("/v2/balance"))
            .bearer_auth(TX_KEY)
            .send()
            .await;
        assert!(result.is_err(), "drop={drop_it}: still answering");
    }
}
