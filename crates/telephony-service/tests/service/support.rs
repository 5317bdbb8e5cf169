//! A gateway under test: registry on a fresh SQLite database, carrier clients pointed at the
//! emulator, the service served on a loopback socket by the gateway's server (the emulator
//! sends webhooks to it) and driven directly with `oneshot` for REST calls.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use telephony_carrier::{CarrierClients, TelnyxConfig, TwilioConfig};
use telephony_emulator::{Emulator, Seed};
use telephony_registry::{Registry, RegistryConfig};
use telephony_service::AppState;
use telephony_service::call_token::CallTokens;
use telephony_vault::KeyRing;
use tower::ServiceExt;

pub const TWILIO_SID: &str = "AC11111111111111111111111111111111";
pub const TWILIO_TOKEN: &str = "twilio-auth-token-under-test-0001";
pub const TELNYX_KEY: &str = "KEYTEST0000000000000000000000000001";
pub const TELNYX_SEED: &str = "i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=";
pub const TELNYX_APP: &str = "2000000000000000001";

pub fn seed() -> Seed {
    Seed::from_json_str(&format!(
        r#"{{
  "twilio": {{ "accounts": [{{
      "sid": "{TWILIO_SID}", "auth_token": "{TWILIO_TOKEN}", "friendly_name": "Acme",
      "numbers": [
        {{ "phone_number": "+14155550100", "voice_url": "https://old.example.com/voice",
           "status_callback": "https://old.example.com/status",
           "capabilities": {{ "voice": true, "sms": true, "mms": false, "fax": false }} }},
        {{ "phone_number": "+14155550101", "capabilities": {{ "voice": true, "sms": true, "mms": false, "fax": false }} }},
        {{ "phone_number": "+14155550102", "capabilities": {{ "voice": false, "sms": true, "mms": false, "fax": false }} }}
      ] }}] }},
  "telnyx": {{ "accounts": [{{
      "api_key": "{TELNYX_KEY}", "account_sid": "7a1b2c3d-0000-4000-8000-000000000001",
      "signing_seed": "{TELNYX_SEED}",
      "numbers": [ {{ "id": "3000000000000000001", "phone_number": "+13125550100", "connection_id": "2999" }} ],
      "texml_applications": [ {{ "id": "{TELNYX_APP}", "friendly_name": "agents",
          "voice_url": "PUBLIC/webhooks/telnyx/texml", "status_callback": "PUBLIC/webhooks/telnyx/status" }},
          {{ "id": "2999", "friendly_name": "old app", "voice_url": "https://old.example.com/texml" }} ]
  }}] }}
}}"#
    ))
    .expect("the test seed is valid")
}

/// A running gateway and its emulator.
pub struct Gateway {
    pub app: telephony_service::App,
    pub registry: Registry,
    pub emulator: Emulator,
    pub public_url: String,
    _db_dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn start() -> Self {
        // The emulator must know the gateway's URL (the TeXML application's voice URL), and the
        // gateway the emulator's: bind the gateway's socket first.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let public_url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut seed = seed();
        for app in seed
            .telnyx
            .accounts
            .iter_mut()
            .flat_map(|a| a.texml_applications.iter_mut())
        {
            app.voice_url = app.voice_url.replace("PUBLIC", &public_url);
            if let Some(url) = &mut app.status_callback {
                *url = url.replace("PUBLIC", &public_url);
            }
        }
        let emulator = Emulator::start(seed, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("emulator");
        let clients = CarrierClients::new(
            TwilioConfig {
                base_url: Some(emulator.twilio_base_url()),
                pricing_base_url: Some(emulator.twilio_pricing_base_url()),
                ..TwilioConfig::default()
            },
            TelnyxConfig {
                base_url: emulator.telnyx_base_url(),
                ..TelnyxConfig::default()
            },
        )
        .expect("carrier clients");
        let db_dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            db_dir.path().join("gw.db").display()
        );
        let registry = Registry::open(
            &url,
            KeyRing::generate().expect("keyring"),
            Arc::new(clients),
            RegistryConfig::new(public_url.clone()),
        )
        .await
        .expect("registry");
        let metrics = telephony_service::metrics::install_recorder().expect("metrics");
        let state = AppState::new(
            registry.clone(),
            metrics,
            public_url.parse().expect("url"),
            CallTokens::new(&[42; 32]),
        );
        let app = telephony_service::app(state, 64 * 1024);
        tokio::spawn(telephony_service::server::serve(
            listener,
            app.clone(),
            telephony_service::server::HEADER_READ_TIMEOUT,
            std::future::pending(),
        ));
        Self {
            app,
            registry,
            emulator,
            public_url,
            _db_dir: db_dir,
        }
    }

    /// A new organization and its API key.
    pub async fn org(&self, name: &str) -> (String, String) {
        let org = self.registry.create_organization(name).await.expect("org");
        let (_, key) = self
            .registry
            .create_api_key(&org.id, "test")
            .await
            .expect("key");
        (org.id, key.expose().to_owned())
    }

    /// Sends a request through the service; returns the status and the body as JSON (or as a
    /// JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        self.raw(request).await
    }

    pub async fn raw(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// Connects the seeded Twilio account; returns the connection id.
    pub async fn connect_twilio(&self, key: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/carriers",
                Some(key),
                Some(serde_json::json!({
                    "name": "main twilio", "provider": "twilio",
                    "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Connects the seeded Telnyx account; returns the connection id.
    pub async fn connect_telnyx(&self, key: &str) -> String {
        let public_key = self.emulator.state().telnyx_accounts[0].public_key.clone();
        let (status, body) = self
            .call(
                "POST",
                "/v1/carriers",
                Some(key),
                Some(serde_json::json!({
                    "name": "main telnyx", "provider": "telnyx",
                    "api_key": TELNYX_KEY, "public_key": public_key, "texml_app_id": TELNYX_APP,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn agent(&self, key: &str, target: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/agents",
                Some(key),
                Some(serde_json::json!({"name": "Ada", "target": target})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    pub fn twilio_voice_url(&self, e164: &str) -> Option<String> {
        self.emulator
            .state()
            .twilio_numbers
            .into_iter()
            .find(|n| n.phone_number == e164)
            .and_then(|n| n.voice_url)
    }
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// The count on the line of `/metrics` that starts with `series` (0 when absent).
pub fn metric(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}
