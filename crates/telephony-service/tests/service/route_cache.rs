//! The inbound route cache's staleness bound, with several instances on one database (a SQLite
//! file, and PostgreSQL when `TELEPHONY_TEST_POSTGRES_URL` is set): a change made through one
//! instance is seen by another at most one bound later, and a rotated credential at once; a
//! change drops only the routes it touches.
//!
//! Instance `a` makes the changes. Instance `slow` has a bound of a minute (it polls the change
//! log every 15 s, longer than the test runs), so what it answers from its cache shows that the
//! cache is really used; instance `quick` has a short bound and, once that has passed, must
//! refuse.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use telephony_carrier::{CarrierClients, TelnyxConfig, TwilioConfig};
use telephony_emulator::Emulator;
use telephony_registry::{
    AgentTarget, ImportRequest, NewAgent, NewConnection, NewCredentials, Registry, RegistryConfig,
    WebhookMode,
};
use telephony_service::App;
use telephony_service::AppState;
use telephony_service::call_token::CallTokens;
use telephony_service::route_cache::RouteCacheConfig;
use telephony_vault::{KeyRing, SecretString};
use telephony_webhook::telnyx::Signer;
use tower::ServiceExt;

use super::support::{TELNYX_KEY, TELNYX_SEED, TWILIO_SID, TWILIO_TOKEN, seed};

const PUBLIC: &str = "https://gw.example.com";
const TELNYX_ACCOUNT: &str = "7a1b2c3d-0000-4000-8000-000000000001";
const QUICK_BOUND: Duration = Duration::from_millis(300);

enum Db {
    Sqlite,
    Postgres,
}

struct Instances {
    /// Where changes are made (caches nothing).
    a: Registry,
    /// Its bound is a minute.
    slow: App,
    /// The state behind `slow`, to look at its cache.
    slow_state: AppState,
    /// Its bound is [`QUICK_BOUND`].
    quick: App,
    _emulator: Emulator,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Instances {
    async fn start(db: Db, label: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, pg) = match db {
            Db::Sqlite => (
                format!("sqlite://{}?mode=rwc", dir.path().join("gw.db").display()),
                None,
            ),
            Db::Postgres => {
                let admin = std::env::var("TELEPHONY_TEST_POSTGRES_URL")
                    .ok()
                    .filter(|u| !u.is_empty())?;
                let name = format!("tg_cache_{label}_{}", std::process::id());
                psql(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
                psql(&admin, &format!("CREATE DATABASE {name}"));
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(s, _)| s);
                (format!("{base}/{name}"), Some((admin.clone(), name)))
            }
        };
        let emulator = Emulator::start(seed(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("emulator");
        let keyring = KeyRing::generate().expect("keyring");
        let open = |grace: Duration| {
            let url = url.clone();
            let keyring = keyring.clone();
            let clients = CarrierClients::new(
                TwilioConfig {
                    base_url: Some(emulator.twilio_base_url()),
                    ..TwilioConfig::default()
                },
                TelnyxConfig {
                    base_url: emulator.telnyx_base_url(),
                    ..TelnyxConfig::default()
                },
            )
            .expect("clients");
            async move {
                let mut config = RegistryConfig::new(PUBLIC);
                config.rotation_grace = grace;
                Registry::open(&url, keyring, Arc::new(clients), config)
                    .await
                    .expect("registry")
            }
        };
        // A rotation through `a` revokes the old credential at once (no grace).
        let a = open(Duration::ZERO).await;
        let state = |registry: Registry, bound: Duration| {
            AppState::new(
                registry,
                telephony_service::metrics::install_recorder().expect("metrics"),
                PUBLIC.parse().expect("url"),
                CallTokens::new(&[42; 32]),
            )
            .with_route_cache(RouteCacheConfig {
                bound,
                capacity: 16,
            })
        };
        let slow_state = state(
            open(Duration::from_secs(86_400)).await,
            Duration::from_secs(60),
        );
        let slow = telephony_service::app(slow_state.clone(), 64 * 1024);
        let quick = telephony_service::app(
            state(open(Duration::from_secs(86_400)).await, QUICK_BOUND),
            64 * 1024,
        );
        Some(Self {
            a,
            slow,
            slow_state,
            quick,
            _emulator: emulator,
            _dir: dir,
            pg,
        })
    }

    async fn finish(self) {
        let Self {
            a,
            slow,
            slow_state,
            quick,
            pg,
            ..
        } = self;
        drop((a, slow, slow_state, quick));
        if let Some((admin, name)) = pg {
            psql(
                &admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn psql(server: &str, sql: &str) {
    let ran = std::process::Command::new("psql")
        .args([server, "-qc", sql])
        .status()
        .expect("psql runs");
    assert!(ran.success(), "psql failed: {sql}");
}

async fn status(app: &App, request: Request<Body>) -> StatusCode {
    app.clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

fn twilio_voice(call_sid: &str) -> Request<Body> {
    twilio_voice_to("+14155550101", call_sid)
}

fn twilio_voice_to(to: &str, call_sid: &str) -> Request<Body> {
    let params = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", call_sid),
        ("From", "+15005550006"),
        ("To", to),
    ];
    let url = format!("{PUBLIC}/webhooks/twilio/voice");
    let signature =
        telephony_webhook::twilio::sign(&url, &params, &SecretString::new(TWILIO_TOKEN));
    Request::post("/webhooks/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(telephony_webhook::twilio::SIGNATURE_HEADER, signature)
        .body(Body::from(
            serde_urlencoded::to_string(params).expect("form"),
        ))
        .expect("request")
}

fn telnyx_texml(signer: &Signer, call_sid: &str) -> Request<Body> {
    let body = serde_urlencoded::to_string([
        ("To", "+13125550100"),
        ("From", "+15005550006"),
        ("CallSid", call_sid),
        ("AccountSid", TELNYX_ACCOUNT),
    ])
    .expect("form");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = signer.sign(now, body.as_bytes());
    Request::post("/webhooks/telnyx/texml")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            telephony_webhook::telnyx::SIGNATURE_HEADER,
            signed.signature,
        )
        .header(
            telephony_webhook::telnyx::TIMESTAMP_HEADER,
            signed.timestamp,
        )
        .body(Body::from(body))
        .expect("request")
}

fn telnyx_credentials(public_key: String) -> NewCredentials {
    NewCredentials::Telnyx {
        api_key: SecretString::new(TELNYX_KEY),
        public_key,
        account_sid: Some(TELNYX_ACCOUNT.to_owned()),
    }
}

fn outbound_only(connection_id: &str, e164: &str) -> ImportRequest {
    ImportRequest {
        connection_id: connection_id.to_owned(),
        e164: e164.to_owned(),
        nickname: None,
        agent_id: None,
        mode: WebhookMode::OutboundOnly,
        dry_run: false,
    }
}

/// A removed number: served from a cache at most until the bound, refused after it.
async fn a_removed_number_stops_routing_within_the_bound(db: Db) {
    let Some(gw) = Instances::start(db, "removed").await else {
        return;
    };
    let org = gw.a.create_organization("Acme").await.expect("org");
    let conn =
        gw.a.connect_carrier(
            &org.id,
            NewConnection {
                name: "twilio".into(),
                credentials: NewCredentials::Twilio {
                    account_sid: TWILIO_SID.into(),
                    auth_token: SecretString::new(TWILIO_TOKEN),
                    api_key: None,
                },
                texml_app_id: None,
                region: None,
            },
        )
        .await
        .expect("connect");
    let agent =
        gw.a.create_agent(
            &org.id,
            NewAgent {
                name: "bot".into(),
                target: AgentTarget::MediaStream("wss://agents.example/s".into()),
                fallback_number: None,
                max_concurrent_calls: None,
            },
        )
        .await
        .expect("agent");
    let mut request = outbound_only(&conn.id, "+14155550101");
    request.agent_id = Some(agent.id.clone());
    let number = match gw.a.import_number(&org.id, request).await.expect("import") {
        telephony_registry::Applied::Done { number, .. } => number,
        telephony_registry::Applied::DryRun { .. } => panic!("not a dry run"),
    };

    // Both instances route the number, and now hold it in their caches.
    assert_eq!(status(&gw.slow, twilio_voice("CA01")).await, StatusCode::OK);
    assert_eq!(
        status(&gw.quick, twilio_voice("CA02")).await,
        StatusCode::OK
    );

    gw.a.remove_number(&org.id, &number.id)
        .await
        .expect("remove");

    // Within its bound an instance may still route the removed number from its cache...
    assert_eq!(status(&gw.slow, twilio_voice("CA03")).await, StatusCode::OK);
    // ...and once the bound has passed since the removal, no instance does.
    tokio::time::sleep(QUICK_BOUND + Duration::from_millis(50)).await;
    assert_eq!(
        status(&gw.quick, twilio_voice("CA04")).await,
        StatusCode::NOT_FOUND
    );
    gw.finish().await;
}

/// Anyone can send webhooks: a `To` spelled with padding is the same number, and forged
/// webhooks cannot make the cache hold an entry per spelling (it is keyed by the canonical
/// E.164, so memory stays bounded by the numbers the gateway has).
#[tokio::test]
async fn forged_webhooks_with_padded_numbers_add_no_cache_entries() {
    let Some(gw) = Instances::start(Db::Sqlite, "padded").await else {
        return;
    };
    let org = gw.a.create_organization("Acme").await.expect("org");
    let conn =
        gw.a.connect_carrier(
            &org.id,
            NewConnection {
                name: "twilio".into(),
                credentials: NewCredentials::Twilio {
                    account_sid: TWILIO_SID.into(),
                    auth_token: SecretString::new(TWILIO_TOKEN),
                    api_key: None,
                },
                texml_app_id: None,
                region: None,
            },
        )
        .await
        .expect("connect");
    gw.a.import_number(&org.id, outbound_only(&conn.id, "+14155550101"))
        .await
        .expect("import");
    for padding in 1..=20 {
        let to = format!(
            "{}+14155550101{}",
            " ".repeat(padding),
            "\t".repeat(padding)
        );
        let body = serde_urlencoded::to_string([
            ("AccountSid", TWILIO_SID),
            ("CallSid", "CAforged"),
            ("From", "+15005550006"),
            ("To", to.as_str()),
        ])
        .expect("form");
        let request = Request::post("/webhooks/twilio/voice")
            .header("content-type", "application/x-www-form-urlencoded")
            .header(telephony_webhook::twilio::SIGNATURE_HEADER, "forged")
            .body(Body::from(body))
            .expect("request");
        assert_eq!(status(&gw.slow, request).await, StatusCode::FORBIDDEN);
    }
    assert!(
        gw.slow_state.route_cache().len() <= 1,
        "{} cache entries for one number",
        gw.slow_state.route_cache().len()
    );
    gw.finish().await;
}

/// A rotated credential: the new one is accepted at once everywhere; the revoked one is
/// refused once the bound has passed (at once where a fresh read already happened).
async fn a_rotated_credential_is_seen_at_once_and_the_old_one_refused_within_the_bound(db: Db) {
    let Some(gw) = Instances::start(db, "rotated").await else {
        return;
    };
    let old = Signer::from_seed_base64(TELNYX_SEED).expect("seed");
    let new = Signer::generate().expect("new key");
    let org = gw.a.create_organization("Acme").await.expect("org");
    let conn =
        gw.a.connect_carrier(
            &org.id,
            NewConnection {
                name: "telnyx".into(),
                credentials: telnyx_credentials(old.public_key().to_base64()),
                texml_app_id: None,
                region: None,
            },
        )
        .await
        .expect("connect");
    gw.a.import_number(&org.id, outbound_only(&conn.id, "+13125550100"))
        .await
        .expect("import");
    assert_eq!(
        status(&gw.slow, telnyx_texml(&old, "v3:1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&gw.quick, telnyx_texml(&old, "v3:2")).await,
        StatusCode::OK
    );

    // The admin rotates the key through `a`, with no grace: the old key is revoked.
    gw.a.rotate_credentials(
        &org.id,
        &conn.id,
        telnyx_credentials(new.public_key().to_base64()),
    )
    .await
    .expect("rotate");

    // The cache holding the old key may still accept it within its bound...
    assert_eq!(
        status(&gw.slow, telnyx_texml(&old, "v3:3")).await,
        StatusCode::OK
    );
    // ...but a webhook signed with the new key is accepted at once: a failure against a
    // cached route is checked again against the database before it is refused.
    assert_eq!(
        status(&gw.slow, telnyx_texml(&new, "v3:4")).await,
        StatusCode::OK
    );
    // That fresh read replaced the cached route: the revoked key is refused from now on.
    assert_eq!(
        status(&gw.slow, telnyx_texml(&old, "v3:5")).await,
        StatusCode::FORBIDDEN
    );
    // Where nothing forced a fresh read, the revoked key is refused once the bound has passed.
    tokio::time::sleep(QUICK_BOUND + Duration::from_millis(50)).await;
    assert_eq!(
        status(&gw.quick, telnyx_texml(&old, "v3:6")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&gw.quick, telnyx_texml(&new, "v3:7")).await,
        StatusCode::OK
    );
    gw.finish().await;
}

/// A change drops the routes it touches from the cache, and only those: a renamed number its
/// own, a rotated connection every route of its numbers.
async fn a_change_drops_only_the_routes_it_touches(db: Db) {
    let Some(gw) = Instances::start(db, "touched").await else {
        return;
    };
    let org = gw.a.create_organization("Acme").await.expect("org");
    let credentials = || NewCredentials::Twilio {
        account_sid: TWILIO_SID.into(),
        auth_token: SecretString::new(TWILIO_TOKEN),
        api_key: None,
    };
    let conn =
        gw.a.connect_carrier(
            &org.id,
            NewConnection {
                name: "twilio".into(),
                credentials: credentials(),
                texml_app_id: None,
                region: None,
            },
        )
        .await
        .expect("connect");
    let mut numbers = Vec::new();
    for e164 in ["+14155550101", "+14155550100"] {
        match gw
            .a
            .import_number(&org.id, outbound_only(&conn.id, e164))
            .await
        {
            Ok(telephony_registry::Applied::Done { number, .. }) => numbers.push(number),
            other => panic!("import {e164}: {other:?}"),
        }
    }
    let cache = gw.slow_state.route_cache();
    cache.poll(&gw.a).await.expect("poll");
    for (i, number) in numbers.iter().enumerate() {
        let request = twilio_voice_to(&number.e164, &format!("CA1{i}"));
        assert_eq!(status(&gw.slow, request).await, StatusCode::OK);
    }
    assert_eq!(cache.len(), 2, "both routes cached");

    // Calls change no route: the next poll keeps both.
    cache.poll(&gw.a).await.expect("poll");
    assert_eq!(cache.len(), 2);

    gw.a.rename_number(&org.id, &numbers[0].id, Some("lobby"))
        .await
        .expect("rename");
    cache.poll(&gw.a).await.expect("poll");
    assert_eq!(cache.len(), 1, "only the renamed number's route is dropped");
    let request = twilio_voice_to(&numbers[0].e164, "CA20");
    assert_eq!(status(&gw.slow, request).await, StatusCode::OK);
    assert_eq!(cache.len(), 2, "read again and cached");

    gw.a.rotate_credentials(&org.id, &conn.id, credentials())
        .await
        .expect("rotate");
    cache.poll(&gw.a).await.expect("poll");
    assert!(
        cache.is_empty(),
        "a rotation drops every route of the connection"
    );
    gw.finish().await;
}

#[tokio::test]
async fn a_change_drops_only_the_routes_it_touches_on_sqlite() {
    a_change_drops_only_the_routes_it_touches(Db::Sqlite).await;
}

#[tokio::test]
async fn a_change_drops_only_the_routes_it_touches_on_postgres() {
    a_change_drops_only_the_routes_it_touches(Db::Postgres).await;
}

#[tokio::test]
async fn a_removed_number_stops_routing_within_the_bound_on_sqlite() {
    a_removed_number_stops_routing_within_the_bound(Db::Sqlite).await;
}

#[tokio::test]
async fn a_removed_number_stops_routing_within_the_bound_on_postgres() {
    a_removed_number_stops_routing_within_the_bound(Db::Postgres).await;
}

#[tokio::test]
async fn a_rotated_credential_is_seen_at_once_and_the_old_one_refused_within_the_bound_on_sqlite() {
    a_rotated_credential_is_seen_at_once_and_the_old_one_refused_within_the_bound(Db::Sqlite).await;
}

#[tokio::test]
async fn a_rotated_credential_is_seen_at_once_and_the_old_one_refused_within_the_bound_on_postgres()
{
    a_rotated_credential_is_seen_at_once_and_the_old_one_refused_within_the_bound(Db::Postgres)
        .await;
}
