//! The hot path's fixture, shared by the `hotpath` example (instruction counts) and the
//! `hotpath` criterion bench: a seeded SQLite registry behind the service ([`telephony_service::App`]), and signed
//! incoming-call webhooks for it.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use telephony_carrier::{CarrierClients, TelnyxConfig, TwilioConfig};
use telephony_registry::{
    AgentTarget, BulkNumber, BulkTenant, BulkTwilioConnection, Registry, RegistryConfig,
};
use telephony_service::App;
use telephony_service::AppState;
use telephony_service::call_token::CallTokens;
use telephony_vault::{KeyRing, SecretString};
use tower::ServiceExt;

const PUBLIC_URL: &str = "https://gw.example.com";
const ORGS: u64 = 4;
const CONNECTIONS_PER_ORG: u64 = 2;
/// Numbers seeded, spread over every organization and connection.
pub const NUMBERS: u64 = 64;

fn token(k: u64) -> String {
    format!("hotpath-auth-token-{k:013}")
}

fn account_sid(k: u64) -> String {
    format!("AC{:032x}", k + 1)
}

fn e164(i: u64) -> String {
    format!("+1415666{i:04}")
}

async fn seed(registry: &Registry) -> anyhow::Result<()> {
    let tenants: Vec<BulkTenant> = (0..ORGS)
        .map(|org| BulkTenant {
            name: format!("hotpath org {org}"),
            connections: (0..CONNECTIONS_PER_ORG)
                .map(|c| {
                    let k = org * CONNECTIONS_PER_ORG + c;
                    BulkTwilioConnection {
                        name: format!("twilio {c}"),
                        account_sid: account_sid(k),
                        auth_token: SecretString::new(token(k)),
                    }
                })
                .collect(),
            agent_target: Some(AgentTarget::MediaStream(format!(
                "wss://agents.example.com/{org}"
            ))),
        })
        .collect();
    let seeded = registry.bulk_create_tenants(&tenants).await?;
    let numbers: Vec<BulkNumber> = (0..NUMBERS)
        .map(|i| {
            let k = i % (ORGS * CONNECTIONS_PER_ORG);
            let tenant = &seeded[(k / CONNECTIONS_PER_ORG) as usize];
            BulkNumber {
                org_id: tenant.org_id.clone(),
                connection_id: tenant.connection_ids[(k % CONNECTIONS_PER_ORG) as usize].clone(),
                e164: e164(i),
                carrier_id: format!("PN{:032x}", i + 1),
                agent_id: tenant.agent_id.clone(),
            }
        })
        .collect();
    registry.bulk_insert_numbers(&numbers).await?;
    Ok(())
}

/// A signed incoming-call webhook for number `i`, call `j`.
pub fn webhook(i: u64, j: u64) -> anyhow::Result<Request<Body>> {
    let k = i % (ORGS * CONNECTIONS_PER_ORG);
    let to = e164(i);
    let from = format!("+1628555{:04}", j % 10_000);
    let params: Vec<(&str, String)> = vec![
        ("AccountSid", account_sid(k)),
        ("ApiVersion", "2010-04-01".to_owned()),
        ("CallSid", format!("CA{j:032x}")),
        ("CallStatus", "ringing".to_owned()),
        ("Called", to.clone()),
        ("CalledCountry", "US".to_owned()),
        ("Caller", from.clone()),
        ("Direction", "inbound".to_owned()),
        ("From", from),
        ("FromCountry", "US".to_owned()),
        ("To", to),
        ("ToCountry", "US".to_owned()),
    ];
    let url = format!("{PUBLIC_URL}/webhooks/twilio/voice");
    let signature = telephony_webhook::twilio::sign(&url, &params, &SecretString::new(token(k)));
    Ok(Request::post("/webhooks/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(serde_urlencoded::to_string(&params)?))?)
}

/// The service over a freshly seeded registry in a temporary folder (kept alive by the
/// returned guard), and the registry.
pub async fn app() -> anyhow::Result<(App, Registry, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hotpath.db").display()
    );
    let clients = CarrierClients::new(TwilioConfig::default(), TelnyxConfig::default())?;
    let registry = Registry::open(
        &url,
        KeyRing::generate()?,
        Arc::new(clients),
        RegistryConfig::new(PUBLIC_URL),
    )
    .await?;
    seed(&registry).await?;
    let metrics = telephony_service::metrics::install_recorder()?;
    let state = AppState::new(
        registry.clone(),
        metrics,
        PUBLIC_URL.parse()?,
        CallTokens::new(&[7; 32]),
    );
    Ok((telephony_service::app(state, 64 * 1024), registry, dir))
}

/// Sends one webhook through the service; fails unless it is answered `200` with a
/// `<Connect><Stream>` document, so a broken path cannot pass for a fast one.
pub async fn drive(app: &App, request: Request<Body>) -> anyhow::Result<()> {
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    anyhow::ensure!(
        status == StatusCode::OK && text.contains("<Connect><Stream"),
        "answered {status}: {text}"
    );
    Ok(())
}
