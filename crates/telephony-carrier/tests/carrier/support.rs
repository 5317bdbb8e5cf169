//! One emulator per test, seeded from `seed.json`, and clients pointed at it.

use std::path::Path;
use std::time::Duration;

use telephony_carrier::{
    CarrierClients, E164, RetryPolicy, TelnyxClient, TelnyxConfig, TelnyxCredentials, Timeouts,
    TwilioAuth, TwilioClient, TwilioConfig, TwilioCredentials,
};
use telephony_emulator::{Emulator, Fault, RequestRecord, Seed};
use telephony_vault::SecretString;

pub const TWILIO_SID: &str = "AC11111111111111111111111111111111";
pub const TWILIO_TOKEN: &str = "twilio-test-auth-token-do-not-log";
pub const TWILIO_KEY_SID: &str = "SK11111111111111111111111111111111";
pub const TWILIO_KEY_SECRET: &str = "twilio-test-key-secret-do-not-log";
pub const TELNYX_KEY: &str = "KEYTEST0000000000000000000000000001";
pub const TELNYX_ACCOUNT: &str = "6a09cdc3-8948-47f0-aa62-74ac943d6c58";
pub const TELNYX_APP: &str = "1293384261075731499";
pub const TELNYX_OTHER_APP: &str = "1293384261075731500";

/// Fast enough for tests, and short backoff so retry tests stay quick.
pub fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
    }
}

pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_millis(800),
    }
}

pub async fn emulator() -> Emulator {
    emulator_with(|_| {}).await
}

/// An emulator of the test seed as `change` alters it.
pub async fn emulator_with(change: impl FnOnce(&mut Seed)) -> Emulator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/carrier/seed.json");
    let mut seed = Seed::from_json_file(&path).expect("the test seed parses");
    change(&mut seed);
    Emulator::start(seed, "127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("the emulator starts")
}

pub fn twilio_config(emulator: &Emulator) -> TwilioConfig {
    TwilioConfig {
        base_url: Some(emulator.twilio_base_url()),
        pricing_base_url: Some(emulator.twilio_pricing_base_url()),
        timeouts: timeouts(),
        retry: retry(),
        page_size: 2,
        ..TwilioConfig::default()
    }
}

pub fn telnyx_config(emulator: &Emulator) -> TelnyxConfig {
    TelnyxConfig {
        base_url: emulator.telnyx_base_url(),
        timeouts: timeouts(),
        retry: retry(),
        page_size: 2,
    }
}

pub fn twilio_token(token: &str) -> TwilioCredentials {
    TwilioCredentials {
        account_sid: TWILIO_SID.to_owned(),
        auth: TwilioAuth::AuthToken(SecretString::new(token)),
    }
}

pub fn twilio(emulator: &Emulator) -> TwilioClient {
    TwilioClient::new(&twilio_config(emulator), twilio_token(TWILIO_TOKEN)).expect("client")
}

pub fn twilio_with(emulator: &Emulator, credentials: TwilioCredentials) -> TwilioClient {
    TwilioClient::new(&twilio_config(emulator), credentials).expect("client")
}

pub fn telnyx_credentials(key: &str) -> TelnyxCredentials {
    TelnyxCredentials {
        api_key: SecretString::new(key),
        account_sid: Some(TELNYX_ACCOUNT.to_owned()),
    }
}

pub fn telnyx(emulator: &Emulator) -> TelnyxClient {
    TelnyxClient::new(&telnyx_config(emulator), telnyx_credentials(TELNYX_KEY)).expect("client")
}

pub fn clients(emulator: &Emulator) -> CarrierClients {
    CarrierClients::new(twilio_config(emulator), telnyx_config(emulator)).expect("factory")
}

pub fn e164(text: &str) -> E164 {
    E164::parse(text).expect("a valid test number")
}

/// The carrier requests the emulator saw whose path contains `needle`.
pub fn requests(emulator: &Emulator, needle: &str) -> Vec<RequestRecord> {
    emulator
        .state()
        .requests
        .into_iter()
        .filter(|r| r.path.contains(needle))
        .collect()
}

pub fn fault(method: &str, path: &str) -> Fault {
    Fault {
        method: Some(method.to_owned()),
        path: path.to_owned(),
        status: None,
        delay_ms: 0,
        drop_connection: false,
        times: None,
    }
}
