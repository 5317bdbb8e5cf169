//! One test, two databases: every test runs on a fresh SQLite file and on a fresh PostgreSQL
//! database (its own `CREATE DATABASE`, so parallel tests never meet), with the real
//! migrations, against a carrier emulator over HTTP.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use telephony_carrier::{
    AccountInfo, AvailableNumber, AvailableQuery, CallInfo, CallTarget, Carrier, CarrierClients,
    CarrierCredentials, CarrierError, E164, InboundConfig, NumberPage, OutboundCall, OwnedNumber,
    PageCursor, Provider, Purchase, PurchaseRequest, Recording, RetryPolicy, TelnyxConfig,
    TwilioConfig,
};
use telephony_emulator::{Emulator, Fault, Seed};
use telephony_registry::{ClientFactory, Registry, RegistryConfig};
use telephony_vault::KeyRing;

pub const TWILIO_SID: &str = "AC0000000000000000000000000000aa01";
pub const TWILIO_TOKEN: &str = "twilio-token-one";
pub const TWILIO_SID_2: &str = "AC0000000000000000000000000000aa02";
pub const TWILIO_TOKEN_2: &str = "twilio-token-two";
pub const TWILIO_KEY_SID: &str = "SK0000000000000000000000000000bb01";
pub const TWILIO_KEY_SECRET: &str = "twilio-key-secret";
pub const TELNYX_KEY: &str = "KEYtelnyx-one";
pub const TELNYX_ACCOUNT: &str = "telnyx-account-one";
/// A key of a second Telnyx account (which owns +13125550200 only).
pub const TELNYX_KEY_2: &str = "KEYtelnyx-two";
pub const TELNYX_APP: &str = "2000000000000000001";
pub const TELNYX_OTHER_CONN: &str = "3000000000000000001";
pub const PUBLIC_BASE: &str = "https://gw.example.com";

/// +14155550100: voice, customer voice URL. +14155550101: voice, no URL. +14155550102: SMS only.
/// +14155550200: in the second Twilio account. +13125550100: Telnyx, on another connection.
pub const SEED: &str = r#"{
  "twilio": {"accounts": [
    {"sid": "AC0000000000000000000000000000aa01", "auth_token": "twilio-token-one",
     "api_keys": [{"sid": "SK0000000000000000000000000000bb01", "secret": "twilio-key-secret"}],
     "numbers": [
       {"phone_number": "+14155550100", "voice_url": "https://customer.example/voice",
        "voice_method": "POST"},
       {"phone_number": "+14155550101"},
       {"phone_number": "+14155550102",
        "capabilities": {"voice": false, "sms": true, "mms": false, "fax": false}}
     ]},
    {"sid": "AC0000000000000000000000000000aa02", "auth_token": "twilio-token-two",
     "numbers": [{"phone_number": "+14155550200"}]}
  ],
  "available_numbers": [{"phone_number": "+14155550901", "type": "local", "region": "CA"},
                        {"phone_number": "+14155550902", "type": "local", "region": "CA"}]},
  "telnyx": {"accounts": [
    {"api_key": "KEYtelnyx-one", "account_sid": "telnyx-account-one",
     "signing_seed": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
     "numbers": [{"phone_number": "+13125550100", "connection_id": "3000000000000000001"}],
     "texml_applications": [{"id": "2000000000000000001", "friendly_name": "agents",
                             "voice_url": "https://gw.example.com/webhooks/telnyx/voice"}]},
    {"api_key": "KEYtelnyx-two", "account_sid": "telnyx-account-two",
     "signing_seed": "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=",
     "numbers": [{"phone_number": "+13125550200"}]}
  ],
  "available_numbers": [{"phone_number": "+13125550901"}],
  "number_orders": {"pending_polls": 1, "pending_seconds": 0}}
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// What the fault-injecting carrier does right after a successful `replace_inbound_config`.
#[derive(Debug, Clone)]
pub enum AfterChange {
    /// Never returns (after telling the test so): the test drops the workflow, as if the
    /// process died here.
    Hang,
    /// Closes the registry's database pool, so the write that follows fails.
    CloseDatabase(DatabaseConnection),
}

/// The real carrier clients, plus one optional fault after a successful configuration change
/// (what the emulator alone cannot do: fail on our side after the carrier succeeded).
#[derive(Debug)]
pub struct FaultyFactory {
    real: CarrierClients,
    after_change: Arc<Mutex<Option<AfterChange>>>,
    /// Signalled when a `Hang` fault is reached: the carrier change is done.
    reached: Arc<tokio::sync::Notify>,
}

impl FaultyFactory {
    pub fn arm(&self, fault: AfterChange) {
        *self.after_change.lock().expect("lock") = Some(fault);
    }
}

impl ClientFactory for FaultyFactory {
    fn client(&self, credentials: CarrierCredentials) -> Arc<dyn Carrier> {
        Arc::new(FaultyCarrier {
            inner: self.real.client(credentials),
            after_change: Arc::clone(&self.after_change),
            reached: Arc::clone(&self.reached),
        })
    }

    fn twilio(
        &self,
        credentials: telephony_carrier::TwilioCredentials,
    ) -> Option<telephony_carrier::TwilioClient> {
        Some(self.real.twilio(credentials))
    }
}

#[derive(Debug)]
struct FaultyCarrier {
    inner: Arc<dyn Carrier>,
    after_change: Arc<Mutex<Option<AfterChange>>>,
    reached: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Carrier for FaultyCarrier {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    async fn verify_credentials(&self) -> Result<AccountInfo, CarrierError> {
        self.inner.verify_credentials().await
    }
    async fn list_numbers(&self, page: Option<&PageCursor>) -> Result<NumberPage, CarrierError> {
        self.inner.list_numbers(page).await
    }
    async fn fetch_number(&self, e164: &E164) -> Result<OwnedNumber, CarrierError> {
        self.inner.fetch_number(e164).await
    }
    async fn replace_inbound_config(
        &self,
        carrier_id: &str,
        config: &InboundConfig,
    ) -> Result<InboundConfig, CarrierError> {
        let result = self.inner.replace_inbound_config(carrier_id, config).await;
        let fault = self.after_change.lock().expect("lock").take();
        match fault {
            Some(AfterChange::Hang) => {
                self.reached.notify_one();
                std::future::pending().await
            }
            Some(AfterChange::CloseDatabase(db)) => {
                db.close_by_ref().await.expect("close the pool");
                result
            }
            None => result,
        }
    }
    async fn search_available(
        &self,
        query: &AvailableQuery,
    ) -> Result<Vec<AvailableNumber>, CarrierError> {
        self.inner.search_available(query).await
    }
    async fn buy_number(&self, request: &PurchaseRequest) -> Result<Purchase, CarrierError> {
        self.inner.buy_number(request).await
    }
    async fn find_purchase(
        &self,
        reference: &str,
        e164: &E164,
    ) -> Result<Option<Purchase>, CarrierError> {
        self.inner.find_purchase(reference, e164).await
    }
    async fn purchase_status(&self, order_id: &str) -> Result<Purchase, CarrierError> {
        self.inner.purchase_status(order_id).await
    }
    async fn release_number(&self, carrier_id: &str) -> Result<(), CarrierError> {
        self.inner.release_number(carrier_id).await
    }
    async fn place_call(&self, call: &OutboundCall) -> Result<CallInfo, CarrierError> {
        self.inner.place_call(call).await
    }
    async fn fetch_call(&self, call_id: &str) -> Result<CallInfo, CarrierError> {
        self.inner.fetch_call(call_id).await
    }
    async fn redirect_call(&self, call_id: &str, target: &CallTarget) -> Result<(), CarrierError> {
        self.inner.redirect_call(call_id, target).await
    }
    async fn hangup_call(&self, call_id: &str) -> Result<(), CarrierError> {
        self.inner.hangup_call(call_id).await
    }
    async fn start_recording(&self, call_id: &str) -> Result<Recording, CarrierError> {
        self.inner.start_recording(call_id).await
    }
    async fn stop_recording(&self, call_id: &str, recording_id: &str) -> Result<(), CarrierError> {
        self.inner.stop_recording(call_id, recording_id).await
    }
}

/// A test's world: a registry on a fresh database and an emulator.
pub struct Env {
    pub registry: Registry,
    pub emulator: Emulator,
    pub factory: Arc<FaultyFactory>,
    pub keyring: KeyRing,
    pub db: DatabaseConnection,
    pub url: String,
    pg_drop: Option<PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TELEPHONY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "TELEPHONY_TEST_POSTGRES_URL must be set in CI"
            );
            eprintln!("skipping PostgreSQL: TELEPHONY_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

pub async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).max_connections(5);
    Database::connect(options)
        .await
        .expect("connect to the test database")
}

/// A fresh, empty database of `kind` (not migrated). `None` when PostgreSQL is not configured.
pub async fn fresh_database(
    kind: DbKind,
) -> Option<(String, Option<PgDatabase>, Option<tempfile::TempDir>)> {
    match kind {
        DbKind::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("registry.db").display()
            );
            Some((url, None, Some(dir)))
        }
        DbKind::Postgres => {
            let admin = postgres_admin_url()?;
            let name = format!("tg_test_{}", uuid::Uuid::new_v4().simple());
            let server = connect(&admin).await;
            server
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
            server.close().await.expect("close");
            Some((
                with_database(&admin, &name),
                Some(PgDatabase { admin, name }),
                None,
            ))
        }
    }
}

impl Env {
    pub async fn start(kind: DbKind) -> Option<Self> {
        Self::start_with(kind, RegistryConfig::new(PUBLIC_BASE)).await
    }

    pub async fn start_with(kind: DbKind, mut config: RegistryConfig) -> Option<Self> {
        let (url, pg_drop, dir) = fresh_database(kind).await?;
        let seed = Seed::from_json_str(SEED).expect("seed");
        let emulator = Emulator::start(seed, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("emulator");
        let twilio = TwilioConfig {
            base_url: Some(emulator.twilio_base_url()),
            pricing_base_url: Some(emulator.twilio_pricing_base_url()),
            retry: RetryPolicy::no_retries(),
            page_size: 2,
            ..TwilioConfig::default()
        };
        let telnyx = TelnyxConfig {
            base_url: emulator.telnyx_base_url(),
            retry: RetryPolicy::no_retries(),
            ..TelnyxConfig::default()
        };
        let factory = Arc::new(FaultyFactory {
            real: CarrierClients::new(twilio, telnyx).expect("clients"),
            after_change: Arc::new(Mutex::new(None)),
            reached: Arc::new(tokio::sync::Notify::new()),
        });
        let keyring = KeyRing::generate().expect("keyring");
        let db = connect(&url).await;
        config.stale_operation_after = std::time::Duration::ZERO;
        let registry = Registry::new(db.clone(), keyring.clone(), factory.clone(), config);
        registry.migrate().await.expect("migrate");
        Some(Self {
            registry,
            emulator,
            factory,
            keyring,
            db,
            url,
            pg_drop,
            _dir: dir,
        })
    }

    /// A second registry on the same database (another process, or this one restarted).
    pub async fn reopen(&self) -> Registry {
        let db = connect(&self.url).await;
        Registry::new(
            db,
            self.keyring.clone(),
            self.factory.clone(),
            self.registry.config().clone(),
        )
    }

    /// Runs a workflow until its carrier change is done, then drops it there, as if the
    /// process died between the carrier call and the database write that follows.
    pub async fn interrupt_after_change<F: std::future::Future>(&self, workflow: F) {
        self.factory.arm(AfterChange::Hang);
        let reached = Arc::clone(&self.factory.reached);
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            tokio::select! {
                _ = workflow => panic!("the workflow ended instead of stopping after the change"),
                () = reached.notified() => {}
            }
        })
        .await;
        assert!(
            stopped.is_ok(),
            "the workflow never reached the carrier change"
        );
    }

    pub fn fault(&self, method: &str, path: &str, status: u16, times: u32) {
        self.emulator.add_fault(Fault {
            method: Some(method.to_owned()),
            path: path.to_owned(),
            status: Some(status),
            delay_ms: 0,
            drop_connection: false,
            times: Some(times),
        });
    }

    pub fn twilio_number(&self, e164: &str) -> telephony_emulator::TwilioNumber {
        self.emulator
            .state()
            .twilio_numbers
            .into_iter()
            .find(|n| n.phone_number == e164)
            .expect("number in emulator")
    }

    pub fn telnyx_number(&self, e164: &str) -> telephony_emulator::TelnyxNumber {
        self.emulator
            .state()
            .telnyx_numbers
            .into_iter()
            .find(|n| n.phone_number == e164)
            .expect("number in emulator")
    }

    /// Ends the test. On SQLite it first checks the call-id index that the registry keeps with
    /// every write of a call record (migrations 11 and 12): each record is found by its call
    /// key, and there is one key a record, whatever the test wrote.
    pub async fn finish(self) {
        if self.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            self.registry.settle_inbound_calls().await;
            // A test of a failing database may have closed it.
            let (records, keys, found) = match sqlite_call_index(&self.db).await {
                Ok(counts) => counts,
                Err(sea_orm::DbErr::ConnectionAcquire(_)) => return self.close().await,
                Err(error) => panic!("the call index: {error}"),
            };
            assert_eq!(
                (keys, found),
                (records, records),
                "SQLite's call keys: one for each of the {records} records, each finding its record"
            );
        }
        self.close().await;
    }

    async fn close(self) {
        let Self {
            registry,
            db,
            emulator,
            pg_drop,
            ..
        } = self;
        drop(registry);
        let _ = db.close().await;
        emulator.shutdown().await;
        drop(pg_drop);
    }
}

/// On SQLite, how many call records there are, how many keys the two key tables hold, and how
/// many records their own call key finds.
pub async fn sqlite_call_index(
    db: &sea_orm::DatabaseConnection,
) -> Result<(i64, i64, i64), sea_orm::DbErr> {
    let found = telephony_migrations::sqlite_record_ids_by_key(
        &telephony_migrations::sqlite_call_key_fast("r.provider", "r.carrier_call_id"),
    );
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            format!(
                "SELECT (SELECT count(*) FROM call_records) AS records, \
                        (SELECT count(*) FROM call_keys_recent) \
                          + (SELECT count(*) FROM call_keys) AS keys, \
                        (SELECT count(*) FROM call_records r WHERE r.id IN {found}) AS found"
            ),
        ))
        .await?
        .expect("a row");
    let count = |column: &str| row.try_get::<i64>("", column).expect(column);
    Ok((count("records"), count("keys"), count("found")))
}

/// A test's own PostgreSQL database, dropped when the test ends, passed or panicked.
pub struct PgDatabase {
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: a short-lived
        // runtime on its own thread does the work. Best effort: a leftover database is harmless.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let server = connect(&admin).await;
                let _ = server
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = server.close().await;
            });
        });
        let _ = dropper.join();
    }
}

/// Writes a test once; it runs as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $env = $crate::harness::Env::start($crate::harness::DbKind::Sqlite)
                    .await
                    .expect("sqlite always runs");
                $body
                $env.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($env) =
                    $crate::harness::Env::start($crate::harness::DbKind::Postgres).await
                else {
                    return;
                };
                $body
                $env.finish().await;
            }
        }
    };
}
