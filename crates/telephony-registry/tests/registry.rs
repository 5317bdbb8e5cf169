//! The registry's behaviour, each test on SQLite and on PostgreSQL, against the carrier
//! emulator over HTTP.

#![allow(clippy::print_stderr)]

#[path = "registry/harness.rs"]
mod harness;

#[path = "registry/agents_and_keys.rs"]
mod agents_and_keys;
#[path = "registry/calls.rs"]
mod calls;
#[path = "registry/connections.rs"]
mod connections;
#[path = "registry/faults.rs"]
mod faults;
#[path = "registry/inbound.rs"]
mod inbound;
#[path = "registry/live_calls.rs"]
mod live_calls;
#[path = "registry/managed.rs"]
mod managed;
#[path = "registry/migrations.rs"]
mod migrations;
#[path = "registry/numbers.rs"]
mod numbers;
#[path = "registry/route_changes.rs"]
mod route_changes;
#[path = "registry/scale.rs"]
mod scale;
#[path = "registry/test_calls.rs"]
mod test_calls;

use harness::*;
use telephony_registry::{
    Applied, Connection, ImportRequest, NewConnection, NewCredentials, Number, Registry,
    TwilioApiKey, WebhookMode,
};
use telephony_vault::SecretString;

/// An organization with a Twilio connection to the first emulated account.
pub async fn twilio_org(registry: &Registry, name: &str) -> (String, Connection) {
    let org = registry.create_organization(name).await.expect("org");
    let conn = registry
        .connect_carrier(
            &org.id,
            twilio_connection("main twilio", TWILIO_SID, TWILIO_TOKEN),
        )
        .await
        .expect("connect twilio");
    (org.id, conn)
}

pub fn twilio_connection(name: &str, sid: &str, token: &str) -> NewConnection {
    NewConnection {
        name: name.to_owned(),
        credentials: NewCredentials::Twilio {
            account_sid: sid.to_owned(),
            auth_token: SecretString::new(token),
            api_key: None,
        },
        texml_app_id: None,
        region: None,
    }
}

pub fn twilio_api_key_connection(token: &str, key_secret: &str) -> NewConnection {
    NewConnection {
        name: "api key twilio".to_owned(),
        credentials: NewCredentials::Twilio {
            account_sid: TWILIO_SID.to_owned(),
            auth_token: SecretString::new(token),
            api_key: Some(TwilioApiKey {
                sid: TWILIO_KEY_SID.to_owned(),
                secret: SecretString::new(key_secret),
            }),
        },
        texml_app_id: None,
        region: None,
    }
}

pub fn telnyx_connection() -> NewConnection {
    NewConnection {
        name: "telnyx".to_owned(),
        credentials: NewCredentials::Telnyx {
            api_key: SecretString::new(TELNYX_KEY),
            public_key: "cHVibGljLWtleQ==".to_owned(),
            account_sid: Some(TELNYX_ACCOUNT.to_owned()),
        },
        texml_app_id: Some(TELNYX_APP.to_owned()),
        region: None,
    }
}

pub fn import(conn: &Connection, e164: &str, mode: WebhookMode) -> ImportRequest {
    ImportRequest {
        connection_id: conn.id.clone(),
        e164: e164.to_owned(),
        nickname: Some("front desk".to_owned()),
        agent_id: None,
        mode,
        dry_run: false,
    }
}

pub fn done(applied: Applied) -> Number {
    match applied {
        Applied::Done { number, .. } => number,
        Applied::DryRun { .. } => panic!("expected a change, got a dry run"),
    }
}

pub fn gateway_voice_url() -> Option<String> {
    Some(format!("{PUBLIC_BASE}/webhooks/twilio/voice"))
}

pub fn customer_voice_url() -> Option<String> {
    Some("https://customer.example/voice".to_owned())
}
