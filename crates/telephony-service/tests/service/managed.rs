//! Managed numbers end to end: search and buy in the platform's account (one Twilio subaccount
//! per organization), a pending Telnyx order finished by the job after a restart, release of a
//! managed number, refusal to release an imported one, and inbound calls on a bought number.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use telephony_carrier::{CarrierClients, TelnyxConfig, TwilioConfig};
use telephony_emulator::{Emulator, InboundCall, Seed};
use telephony_registry::{
    PlatformAccounts, PlatformTelnyx, PlatformTwilio, Registry, RegistryConfig,
};
use telephony_service::AppState;
use telephony_service::call_token::CallTokens;
use telephony_vault::{KeyRing, SecretString};
use tower::ServiceExt;

use super::support::{TELNYX_APP, TELNYX_KEY, TELNYX_SEED, TWILIO_SID, TWILIO_TOKEN, code};

const CUSTOMER_SID: &str = "AC22222222222222222222222222222222";
const CUSTOMER_TOKEN: &str = "customer-auth-token-under-test-02";

fn seed(public_url: &str) -> Seed {
    Seed::from_json_str(&format!(
        r#"{{
  "twilio": {{
    "accounts": [
      {{ "sid": "{TWILIO_SID}", "auth_token": "{TWILIO_TOKEN}", "friendly_name": "Platform" }},
      {{ "sid": "{CUSTOMER_SID}", "auth_token": "{CUSTOMER_TOKEN}", "friendly_name": "Customer",
         "numbers": [ {{ "phone_number": "+14155550100" }} ] }}
    ],
    "available_numbers": [
      {{ "phone_number": "+14155550901", "type": "local", "region": "CA", "locality": "San Francisco" }},
      {{ "phone_number": "+14155550902", "type": "local", "region": "CA" }},
      {{ "phone_number": "+16465550903", "type": "local", "region": "NY" }},
      {{ "phone_number": "+18005550904", "type": "toll_free" }}
    ] }},
  "telnyx": {{
    "accounts": [{{
      "api_key": "{TELNYX_KEY}", "account_sid": "7a1b2c3d-0000-4000-8000-000000000001",
      "signing_seed": "{TELNYX_SEED}",
      "texml_applications": [ {{ "id": "{TELNYX_APP}", "friendly_name": "gateway",
          "voice_url": "{public_url}/webhooks/telnyx/texml",
          "status_callback": "{public_url}/webhooks/telnyx/status" }} ] }}],
    "available_numbers": [ {{ "phone_number": "+13125550901" }} ],
    "number_orders": {{ "pending_polls": 1, "pending_seconds": 0 }}
  }}
}}"#
    ))
    .expect("the test seed is valid")
}

/// A gateway whose registry knows the platform's accounts, on a database file that survives a
/// restart.
pub struct ManagedGateway {
    pub app: telephony_service::App,
    pub registry: Registry,
    pub emulator: Emulator,
    clients: CarrierClients,
    keyring: KeyRing,
    url: String,
    public_url: String,
    _db_dir: tempfile::TempDir,
}

impl ManagedGateway {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let public_url = format!("http://{}", listener.local_addr().expect("addr"));
        let emulator = Emulator::start(seed(&public_url), "127.0.0.1:0".parse().expect("addr"))
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
        let keyring = KeyRing::generate().expect("keyring");
        let registry = open(&url, &keyring, &clients, &public_url, &emulator).await;
        let gateway = Self {
            app: app(&registry, &public_url),
            registry,
            emulator,
            clients,
            keyring,
            url,
            public_url,
            _db_dir: db_dir,
        };
        tokio::spawn(telephony_service::server::serve(
            listener,
            gateway.app.clone(),
            telephony_service::server::HEADER_READ_TIMEOUT,
            std::future::pending(),
        ));
        gateway
    }

    /// A new registry and application state on the same database: the process restarted.
    pub async fn restart(&mut self) {
        self.registry = open(
            &self.url,
            &self.keyring,
            &self.clients,
            &self.public_url,
            &self.emulator,
        )
        .await;
        self.app = app(&self.registry, &self.public_url);
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => {
                request = request.header("content-length", "0");
                request.body(Body::empty())
            }
        }
        .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn org(&self, name: &str) -> (String, String) {
        let org = self.registry.create_organization(name).await.expect("org");
        let (_, key) = self
            .registry
            .create_api_key(&org.id, "test")
            .await
            .expect("key");
        (org.id, key.expose().to_owned())
    }
}

async fn open(
    url: &str,
    keyring: &KeyRing,
    clients: &CarrierClients,
    public_url: &str,
    emulator: &Emulator,
) -> Registry {
    let public_key = emulator.state().telnyx_accounts[0].public_key.clone();
    Registry::open(
        url,
        keyring.clone(),
        Arc::new(clients.clone()),
        RegistryConfig::new(public_url),
    )
    .await
    .expect("registry")
    .with_platform_accounts(PlatformAccounts {
        twilio: Some(PlatformTwilio {
            account_sid: TWILIO_SID.to_owned(),
            auth_token: SecretString::new(TWILIO_TOKEN),
        }),
        telnyx: Some(PlatformTelnyx {
            api_key: SecretString::new(TELNYX_KEY),
            public_key,
            texml_app_id: TELNYX_APP.to_owned(),
            account_sid: Some("7a1b2c3d-0000-4000-8000-000000000001".to_owned()),
        }),
    })
}

/// The service over `registry`, as the binary builds it.
fn app(registry: &Registry, public_url: &str) -> telephony_service::App {
    let state = AppState::new(
        registry.clone(),
        telephony_service::metrics::install_recorder().expect("metrics"),
        public_url.parse().expect("url"),
        CallTokens::new(&[42; 32]),
    );
    telephony_service::app(state, 64 * 1024)
}

fn subaccounts(gateway: &ManagedGateway) -> Vec<telephony_emulator::TwilioAccount> {
    gateway
        .emulator
        .state()
        .twilio_accounts
        .into_iter()
        .filter(|a| a.owner_account_sid.as_deref() == Some(TWILIO_SID))
        .collect()
}

#[tokio::test]
async fn search_and_buy_on_twilio_use_one_subaccount_per_organization() {
    let gateway = ManagedGateway::start().await;
    let (_, key) = gateway.org("Acme").await;

    let (status, found) = gateway
        .call(
            "GET",
            "/v1/managed/available-numbers?provider=twilio&country=US&area_code=415&type=local",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let numbers: Vec<&str> = found["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["e164"].as_str().expect("e164"))
        .collect();
    assert_eq!(numbers, ["+14155550901", "+14155550902"]);
    assert_eq!(found["data"][0]["capabilities"]["voice"], true);
    // Twilio's search has no cost: it comes from the Pricing API, per type of number.
    assert_eq!(found["data"][0]["monthly_cost"], "1.15", "{found}");
    assert_eq!(found["data"][0]["currency"], "USD", "{found}");
    let (status, toll_free) = gateway
        .call(
            "GET",
            "/v1/managed/available-numbers?provider=twilio&country=US&type=toll_free",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{toll_free}");
    assert_eq!(toll_free["data"][0]["e164"], "+18005550904");
    assert_eq!(toll_free["data"][0]["monthly_cost"], "2.15", "{toll_free}");
    assert!(
        subaccounts(&gateway).is_empty(),
        "searching creates nothing"
    );

    let (status, bought) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "+14155550901"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bought}");
    assert_eq!(bought["order"]["status"], "completed");
    assert_eq!(bought["number"]["path"], "managed");
    assert_eq!(bought["number"]["webhook_mode"], "managed");
    let first_id = bought["number"]["id"].as_str().expect("id").to_owned();
    let subs = subaccounts(&gateway);
    assert_eq!(subs.len(), 1, "the first purchase creates the subaccount");

    let (status, second) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "+14155550902"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(
        subaccounts(&gateway).len(),
        1,
        "the second purchase reuses it"
    );
    assert_eq!(
        bought["number"]["connection_id"],
        second["number"]["connection_id"]
    );
    let state = gateway.emulator.state();
    for e164 in ["+14155550901", "+14155550902"] {
        let number = state
            .twilio_numbers
            .iter()
            .find(|n| n.phone_number == e164)
            .expect("bought");
        assert_eq!(number.account_sid, subs[0].sid, "bought in the subaccount");
        assert_eq!(
            number.voice_url.as_deref(),
            Some(format!("{}/webhooks/twilio/voice", gateway.public_url).as_str())
        );
    }

    // Another organization gets its own subaccount.
    let (_, other_key) = gateway.org("Globex").await;
    let (status, body) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &other_key,
            Some(json!({"provider": "twilio", "e164": "+16465550903"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(subaccounts(&gateway).len(), 2);

    // Listings say which path each number is on.
    let (_, list) = gateway.call("GET", "/v1/numbers", &key, None).await;
    let paths: Vec<&str> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["managed", "managed"]);
    let (_, one) = gateway
        .call("GET", &format!("/v1/numbers/{first_id}"), &key, None)
        .await;
    assert_eq!(one["path"], "managed");

    // An inbound call on the bought number is verified with the subaccount's token and routed.
    let agent = {
        let (status, body) = gateway
            .call(
                "POST",
                "/v1/agents",
                &key,
                Some(json!({"name": "Ada", "target": "wss://agents.example/ada"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    };
    let (status, body) = gateway
        .call(
            "PATCH",
            &format!("/v1/numbers/{first_id}"),
            &key,
            Some(json!({"agent_id": agent})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let delivery = gateway
        .emulator
        .twilio_inbound(InboundCall {
            to: "+14155550901".into(),
            from: "+15005550006".into(),
            forwarded_from: None,
        })
        .await
        .expect("webhook sent");
    assert_eq!(delivery.status, Some(200), "{}", delivery.body);
    assert!(
        delivery.body.contains("wss://agents.example/ada"),
        "{}",
        delivery.body
    );

    // Every carrier call is audited, never with a secret.
    let (_, audit) = gateway.call("GET", "/v1/audit-log", &key, None).await;
    let text = audit.to_string();
    for action in ["search_available", "create_subaccount", "buy_number"] {
        assert!(text.contains(action), "{action} audited: {text}");
    }
    assert!(!text.contains(&subs[0].auth_token));
    assert!(!text.contains(TWILIO_TOKEN));

    // Bad input changes nothing.
    let (status, body) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "415-555"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "invalid_phone_number");
    let (status, body) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "+14155550902"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "number_already_imported");
    let (status, body) = gateway
        .call(
            "GET",
            "/v1/managed/available-numbers?provider=twilio&country=USA",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "invalid_request");
    let (status, body) = gateway
        .call(
            "GET",
            "/v1/managed/available-numbers?provider=sinch&country=US",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "invalid_request");
}

#[tokio::test]
async fn a_pending_telnyx_purchase_is_finished_by_the_job_after_a_restart() {
    let mut gateway = ManagedGateway::start().await;
    let (org, key) = gateway.org("Acme").await;
    let (status, bought) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "telnyx", "e164": "+13125550901"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{bought}");
    assert_eq!(bought["order"]["status"], "pending");
    assert!(bought["number"].is_null());
    let order_id = bought["order"]["id"].as_str().expect("id").to_owned();
    let (_, list) = gateway.call("GET", "/v1/numbers", &key, None).await;
    assert_eq!(list["data"], json!([]));

    // The admin asks now: the carrier still says pending.
    let (status, order) = gateway
        .call(
            "POST",
            &format!("/v1/managed/orders/{order_id}/refresh"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["status"], "pending");

    // The process restarts; the job of the new one finishes the order from the database.
    gateway.restart().await;
    let report = gateway
        .registry
        .refresh_managed_orders()
        .await
        .expect("job pass");
    assert_eq!(report.completed, 1, "{report:?}");
    let (_, order) = gateway
        .call("GET", &format!("/v1/managed/orders/{order_id}"), &key, None)
        .await;
    assert_eq!(order["status"], "completed");
    let number_id = order["number_id"].as_str().expect("number").to_owned();
    let (_, number) = gateway
        .call("GET", &format!("/v1/numbers/{number_id}"), &key, None)
        .await;
    assert_eq!(number["path"], "managed");
    assert_eq!(number["e164"], "+13125550901");
    let carrier = gateway
        .emulator
        .state()
        .telnyx_numbers
        .into_iter()
        .find(|n| n.phone_number == "+13125550901")
        .expect("bought");
    assert_eq!(carrier.connection_id.as_deref(), Some(TELNYX_APP));

    // Ready for an agent: an inbound call through the platform's TeXML app is routed.
    let delivery = gateway
        .emulator
        .telnyx_inbound(InboundCall {
            to: "+13125550901".into(),
            from: "+15005550006".into(),
            forwarded_from: None,
        })
        .await
        .expect("webhook sent");
    assert_eq!(delivery.status, Some(200), "{}", delivery.body);
    let audit = gateway.registry.audit_log(&org, 50).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "purchase_status" && e.outcome == "ok")
    );
}

#[tokio::test]
async fn a_managed_number_is_released_and_an_imported_one_never() {
    let gateway = ManagedGateway::start().await;
    let (_, key) = gateway.org("Acme").await;
    let (status, bought) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "+14155550901"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bought}");
    let managed_id = bought["number"]["id"].as_str().expect("id").to_owned();

    // The org also imports a number from its own account.
    let (status, conn) = gateway
        .call(
            "POST",
            "/v1/carriers",
            &key,
            Some(json!({"name": "own", "provider": "twilio",
                "account_sid": CUSTOMER_SID, "auth_token": CUSTOMER_TOKEN})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conn}");
    let (status, imported) = gateway
        .call(
            "POST",
            "/v1/numbers/import",
            &key,
            Some(json!({"connection_id": conn["id"], "e164": "+14155550100"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let imported_id = imported["number"]["id"].as_str().expect("id").to_owned();
    let (_, list) = gateway.call("GET", "/v1/numbers", &key, None).await;
    let mut paths: Vec<(String, String)> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| (n["e164"].to_string(), n["path"].to_string()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            ("\"+14155550100\"".to_owned(), "\"imported\"".to_owned()),
            ("\"+14155550901\"".to_owned(), "\"managed\"".to_owned()),
        ]
    );

    // Releasing an imported number is refused, and nothing is sent to the carrier.
    let requests_before = gateway.emulator.state().requests.len();
    let (status, body) = gateway
        .call(
            "DELETE",
            &format!("/v1/managed/numbers/{imported_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    assert_eq!(gateway.emulator.state().requests.len(), requests_before);
    // A managed number is not dropped by the plain removal (it would stay bought).
    let (status, body) = gateway
        .call("DELETE", &format!("/v1/numbers/{managed_id}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Nor is the connection holding it disconnected (its numbers would stay bought).
    let managed_conn = bought["number"]["connection_id"].as_str().expect("conn");
    let (status, body) = gateway
        .call(
            "DELETE",
            &format!("/v1/carriers/{managed_conn}?confirm=true"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Another organization cannot release it.
    let (_, other_key) = gateway.org("Globex").await;
    let (status, _) = gateway
        .call(
            "DELETE",
            &format!("/v1/managed/numbers/{managed_id}"),
            &other_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, released) = gateway
        .call(
            "DELETE",
            &format!("/v1/managed/numbers/{managed_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["e164"], "+14155550901");
    let state = gateway.emulator.state();
    assert!(
        !state
            .twilio_numbers
            .iter()
            .any(|n| n.phone_number == "+14155550901")
    );
    assert!(
        state
            .twilio_numbers
            .iter()
            .any(|n| n.phone_number == "+14155550100")
    );
    let (status, _) = gateway
        .call("GET", &format!("/v1/numbers/{managed_id}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = gateway.call("GET", "/v1/audit-log", &key, None).await;
    let releases: Vec<&Value> = audit["data"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "release_number")
        .collect();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["number"], "+14155550901");
}

#[tokio::test]
async fn a_managed_number_cannot_be_switched_to_outbound_only() {
    let gateway = ManagedGateway::start().await;
    let (_, key) = gateway.org("Acme").await;
    let (status, bought) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "+14155550901"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bought}");
    let id = bought["number"]["id"].as_str().expect("id").to_owned();
    let voice_url = format!("{}/webhooks/twilio/voice", gateway.public_url);

    for dry_run in [false, true] {
        let (status, body) = gateway
            .call(
                "PATCH",
                &format!("/v1/numbers/{id}"),
                &key,
                Some(json!({"webhook_mode": "outbound_only", "nickname": "x", "dry_run": dry_run})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "managed_number_mode_fixed");
    }
    let (_, number) = gateway
        .call("GET", &format!("/v1/numbers/{id}"), &key, None)
        .await;
    assert_eq!(number["webhook_mode"], "managed", "nothing changed");
    assert!(number["nickname"].is_null(), "nothing changed: {number}");
    let at_carrier = gateway
        .emulator
        .state()
        .twilio_numbers
        .into_iter()
        .find(|n| n.phone_number == "+14155550901")
        .and_then(|n| n.voice_url);
    assert_eq!(at_carrier.as_deref(), Some(voice_url.as_str()));

    // The registry refuses it too, whoever asks.
    let number = gateway
        .registry
        .number_by_e164("+14155550901")
        .await
        .expect("db")
        .expect("number");
    let refused = gateway
        .registry
        .set_webhook_mode(
            &number.org_id,
            &number.id,
            telephony_registry::WebhookMode::OutboundOnly,
            false,
        )
        .await;
    assert!(
        matches!(refused, Err(telephony_registry::RegistryError::Conflict(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_test_call_of_a_managed_number_goes_through_the_organizations_subaccount() {
    let gateway = ManagedGateway::start().await;
    let (_, key) = gateway.org("Acme").await;
    let (status, bought) = gateway
        .call(
            "POST",
            "/v1/managed/numbers",
            &key,
            Some(json!({"provider": "twilio", "e164": "+14155550901"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bought}");
    let id = bought["number"]["id"].as_str().expect("id").to_owned();
    let (status, agent) = gateway
        .call(
            "POST",
            "/v1/agents",
            &key,
            Some(json!({"name": "Ada", "target": "wss://agents.example/ada"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let (status, body) = gateway
        .call(
            "PATCH",
            &format!("/v1/numbers/{id}"),
            &key,
            Some(json!({"agent_id": agent["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, report) = gateway
        .call("POST", &format!("/v1/numbers/{id}/test-call"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["reached"], true, "{report}");
    assert_eq!(report["agent_id"], agent["id"]);
    let subaccount = subaccounts(&gateway)[0].sid.clone();
    let placed: Vec<_> = gateway
        .emulator
        .state()
        .calls
        .into_iter()
        .filter(|c| c.direction.starts_with("outbound"))
        .collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(
        placed[0].account_sid, subaccount,
        "never the platform's own account"
    );
}
