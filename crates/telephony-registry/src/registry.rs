//! The [`Registry`] handle: the database, the vault key ring, the carrier client factory and the
//! configuration every workflow needs, plus the audit helper all carrier calls go through.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbBackend, EntityTrait, TransactionTrait,
};
use telephony_carrier::{
    Carrier, CarrierClients, CarrierCredentials, CarrierError, Provider, TelnyxCredentials,
    TwilioAuth, TwilioCredentials,
};
use telephony_migrations::{Migrator, MigratorTrait};
use telephony_vault::{Aad, KeyRing};

use crate::entity::{audit, connection};
use crate::error::{RegistryError, Result};
use crate::keys::KeySource;
use crate::model::ConnectionStatus;

/// Builds a carrier client from one organization's decrypted credentials.
///
/// The registry takes this trait rather than [`CarrierClients`] so the service can inject its
/// own factory (and tests a fault-injecting one); [`CarrierClients`] implements it.
pub trait ClientFactory: Send + Sync + fmt::Debug {
    /// A client for one carrier account.
    fn client(&self, credentials: CarrierCredentials) -> Arc<dyn Carrier>;

    /// A client for one carrier account processed in a Twilio region (`None`: the default).
    /// Factories that know nothing of regions (test fakes) keep the default, which ignores it.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] for a region the factory cannot reach.
    fn client_in_region(
        &self,
        credentials: CarrierCredentials,
        twilio_region: Option<&str>,
    ) -> Result<Arc<dyn Carrier>, CarrierError> {
        let _ = twilio_region;
        Ok(self.client(credentials))
    }

    /// A Twilio client for the Twilio-only calls of the managed path (creating a subaccount).
    /// `None` (the default) when the factory cannot make one: managed Twilio numbers are then
    /// refused with [`RegistryError::InvalidRequest`].
    fn twilio(&self, credentials: TwilioCredentials) -> Option<telephony_carrier::TwilioClient> {
        let _ = credentials;
        None
    }
}

impl ClientFactory for CarrierClients {
    fn client(&self, credentials: CarrierCredentials) -> Arc<dyn Carrier> {
        CarrierClients::client(self, credentials)
    }

    fn client_in_region(
        &self,
        credentials: CarrierCredentials,
        twilio_region: Option<&str>,
    ) -> Result<Arc<dyn Carrier>, CarrierError> {
        CarrierClients::client_in_region(self, credentials, twilio_region)
    }

    fn twilio(&self, credentials: TwilioCredentials) -> Option<telephony_carrier::TwilioClient> {
        Some(CarrierClients::twilio(self, credentials))
    }
}

/// What the workflows need to know about the gateway itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The gateway's public base URL (`https://gw.example.com`), without a trailing slash:
    /// `managed` numbers are pointed at `{public_base_url}/webhooks/...`.
    pub public_base_url: String,
    /// How long webhooks signed with the previous token keep verifying after a rotation.
    pub rotation_grace: Duration,
    /// The Twilio region the gateway's clients use; diagnostics flag connections in another.
    pub twilio_region: String,
    /// An operation in flight younger than this is left alone by recovery: another instance
    /// may still be working on it.
    pub stale_operation_after: Duration,
    /// The longest a call is counted for admission control. A call whose end the gateway never
    /// hears of (a status callback lost or never sent) stops counting against its agent's limit
    /// after this long, and its row is deleted by [`Registry::sweep_stale_calls`] (run by
    /// [`Registry::recover_pending_operations`]). Default: 4 hours.
    pub max_call_age: Duration,
    /// How long a request holds an `Idempotency-Key` it claimed without answering: after this
    /// lease the request is taken for dead and the key can be claimed again. Default: 5 minutes.
    pub idempotency_lease: Duration,
    /// How long the answer to an `Idempotency-Key` is kept (then the key is free again), and
    /// a webhook's stored answer; swept by [`Registry::sweep_idempotency`]. Defaults: 24 and 48
    /// hours.
    pub idempotency_key_ttl: Duration,
    /// How long a webhook's stored answer is kept (carriers retry within hours at most).
    pub webhook_idempotency_ttl: Duration,
}

impl RegistryConfig {
    /// A configuration with the defaults: 24 hours of grace, region `us1`, operations stale
    /// after 2 minutes, calls counted for at most 4 hours.
    #[must_use]
    pub fn new(public_base_url: impl Into<String>) -> Self {
        Self {
            public_base_url: public_base_url.into().trim_end_matches('/').to_owned(),
            rotation_grace: Duration::from_secs(24 * 3600),
            twilio_region: "us1".to_owned(),
            stale_operation_after: Duration::from_secs(120),
            max_call_age: Duration::from_secs(4 * 3600),
            idempotency_lease: Duration::from_secs(300),
            idempotency_key_ttl: Duration::from_secs(24 * 3600),
            webhook_idempotency_ttl: Duration::from_secs(48 * 3600),
        }
    }
}

/// The number registry. Cheap to clone; every clone shares the pool. Holds no state of its own
/// beyond configuration: everything lives in the database, so several gateway instances can
/// share one PostgreSQL.
#[derive(Clone)]
pub struct Registry {
    pub(crate) db: DatabaseConnection,
    /// The master keys: shared by every clone, reloadable from the key file (see
    /// [`Registry::with_key_file`]).
    pub(crate) keyring: Arc<KeySource>,
    pub(crate) carriers: Arc<dyn ClientFactory>,
    pub(crate) config: RegistryConfig,
    /// The platform's own carrier accounts (managed numbers); see [`crate::PlatformAccounts`].
    pub(crate) platform: Arc<crate::managed::PlatformAccounts>,
    /// Writes inbound calls in group commits (one writer task per registry and its clones; it
    /// also keeps this process's inbound writes from queuing in SQLite's busy handler).
    pub(crate) inbound_writer: Arc<crate::inbound_writer::InboundWriter>,
    /// On a SQLite file, the task that checkpoints the write-ahead log (see
    /// [`Registry::open`]); it stops when the last clone of the registry is dropped.
    pub(crate) checkpointer: Option<Arc<Checkpointer>>,
}

/// How often the write-ahead log of a SQLite file is checkpointed in the background.
///
/// Each inbound call dirties a page of the random call-id index of its own, which the
/// checkpoint writes back to a random place in the file; once the table holds about a million
/// calls, the disk's write operations a second limit the writer. A page dirtied again before
/// the next checkpoint is written back once: every 300 ms rather than every 100 ms, the closed
/// loop over 1,000,000 call records ran at 40,000 to 42,200 calls/s instead of 35,100 to
/// 37,900, with about 0.75 disk writes a call instead of 1.1; at 1,000 calls/s to numbers
/// whose route is not cached (1,000,000 numbers) the p99 was 2.5 to 2.9 ms against 1.7 to 3.4
/// (docs/PERFORMANCE.md, session 18). Much longer intervals make each checkpoint a burst of
/// scattered pages that those calls wait behind: every 500 ms gave two to three times their
/// p99 at 1,000,000 numbers.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(300);

/// Stops the background checkpoint task when dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Checkpointer {
    /// Checkpoints the write-ahead log every [`CHECKPOINT_EVERY`] (`PASSIVE`: it copies what
    /// it can without waiting for readers or the writer), so commits do not stop to do it, on
    /// `db`, a connection of its own: SQLite runs the checkpoint beside the writer's
    /// transactions. On the registry's pool, whose one connection the writer uses, each
    /// checkpoint took that connection between two batches and the next batch waited for it
    /// (docs/PERFORMANCE.md, session 27).
    fn spawn(db: DatabaseConnection) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tick.tick() => {}
                }
                if let Err(error) = db
                    .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                    .await
                {
                    tracing::debug!(%error, "background WAL checkpoint failed; retrying");
                }
            }
        });
        Self { _stop: stop }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.db.get_database_backend())
            .field("keyring", &self.keyring)
            .field("carriers", &self.carriers)
            .field("config", &self.config)
            .field("platform", &self.platform)
            .finish()
    }
}

/// Where a carrier call is made, for the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub org_id: &'a str,
    pub connection_id: &'a str,
    pub number: Option<&'a str>,
    /// Whether a 401 marks the connection degraded (live use), or only refuses new
    /// credentials (verification).
    pub live: bool,
}

pub(crate) fn now() -> DateTime<Utc> {
    // PostgreSQL keeps microseconds; truncating here makes a stored time read back equal.
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The Prometheus counter of carrier API calls, labelled by `action` and `outcome` (`ok` or the
/// error class: `unavailable`, `rate_limited`, `rejected`...). Every audited carrier call counts.
pub const CARRIER_CALLS_METRIC: &str = "gateway_carrier_calls_total";

/// The class of an audit outcome, for a metric label of bounded cardinality: `ok`, or the first
/// word after `error: ` (never the carrier's code, which is unbounded).
fn outcome_class(outcome: &str) -> &'static str {
    match outcome
        .strip_prefix("error: ")
        .map(|rest| rest.split([' ', '(']).next())
    {
        None => "ok",
        Some(Some("invalid_credentials")) => "invalid_credentials",
        Some(Some("not_found")) => "not_found",
        Some(Some("not_voice_capable")) => "not_voice_capable",
        Some(Some("rate_limited")) => "rate_limited",
        Some(Some("unavailable")) => "unavailable",
        Some(Some("rejected")) => "rejected",
        Some(Some("protocol")) => "protocol",
        Some(_) => "other",
    }
}

/// The audit-log outcome of a carrier call: a code, never a message (messages may echo data).
pub(crate) fn outcome_of(error: Option<&CarrierError>) -> String {
    match error {
        None => "ok".to_owned(),
        Some(CarrierError::InvalidCredentials) => "error: invalid_credentials".to_owned(),
        Some(CarrierError::NotFound { .. }) => "error: not_found".to_owned(),
        Some(CarrierError::NotVoiceCapable { .. }) => "error: not_voice_capable".to_owned(),
        Some(CarrierError::RateLimited { .. }) => "error: rate_limited".to_owned(),
        Some(CarrierError::Unavailable { .. }) => "error: unavailable".to_owned(),
        Some(CarrierError::Rejected { status, code, .. }) => {
            format!("error: rejected ({status}, {code})")
        }
        Some(CarrierError::Protocol(_)) => "error: protocol".to_owned(),
        Some(_) => "error: other".to_owned(),
    }
}

impl Registry {
    /// A registry over an open database. Call [`Registry::migrate`] (or use
    /// [`Registry::open`]) before the first use of an empty database.
    #[must_use]
    pub fn new(
        db: DatabaseConnection,
        keyring: KeyRing,
        carriers: Arc<dyn ClientFactory>,
        config: RegistryConfig,
    ) -> Self {
        Self {
            db,
            keyring: Arc::new(KeySource::fixed(keyring)),
            carriers,
            config,
            platform: Arc::default(),
            inbound_writer: Arc::default(),
            checkpointer: None,
        }
    }

    /// Connects to `database_url` (`sqlite://path?mode=rwc`, `sqlite::memory:`,
    /// `postgres://…`), applies pending migrations and returns the registry.
    ///
    /// # Errors
    /// [`RegistryError::Database`] when the database cannot be reached or migrated.
    pub async fn open(
        database_url: &str,
        keyring: KeyRing,
        carriers: Arc<dyn ClientFactory>,
        config: RegistryConfig,
    ) -> Result<Self> {
        let mut options = ConnectOptions::new(database_url.to_owned());
        options.sqlx_logging(false);
        // A pooled connection is pinged before use only after 10 s idle (a server or a proxy
        // may have dropped it), not before every statement: on PostgreSQL the ping is a round
        // trip of its own, which would double the cost of the inbound path's one read.
        options.test_before_acquire_if_idle_for(Duration::from_secs(10));
        if database_url.contains(":memory:") {
            // Each connection to an in-memory SQLite database is a different database.
            options.max_connections(1);
        } else {
            // A file database: write-ahead logging (other processes' readers, and the
            // checkpoint's own connection, never wait for the writer), one connection in the
            // registry's pool (sea-orm's default on SQLite, set here so that no upgrade changes
            // it: the process's statements run one at a time, so a transaction that reads and
            // then writes never finds that another of this process wrote meanwhile, which
            // SQLite reports as busy at once, past the busy handler), an fsync
            // per commit (`FULL`: a committed intent, with the customer's saved configuration,
            // must survive a power loss, or a number the carrier points at the gateway could be
            // left with no record to restore it from), and writers wait for the lock instead of
            // failing at once.
            // The log is checkpointed by a background task every 300 ms (`CHECKPOINT_EVERY`),
            // so commits do not stop to do it: SQLite's own threshold, at which the commit that
            // crosses it checkpoints and stalls the calls waiting behind it, is raised from
            // 1,000 to 16,000 pages. Under a closed loop over 700,000 call records, with group
            // commits of up to 16,384 calls, the log peaked at about 7,700 pages; a much larger
            // table, whose index a batch shares fewer pages of, may cross the threshold, and a
            // bulk writer does: the commit that crosses it then checkpoints, as SQLite does by
            // default. (With batches of up to 2,048 calls the log once grew to about 17,300
            // pages between two background checkpoints.)
            options.max_connections(1);
            options.map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    // Statement journals (multi-row upserts keep one) in memory, not in a
                    // temporary file, and a page cache large enough that a group commit's
                    // pages are not spilled before it commits.
                    .pragma("temp_store", "memory")
                    .pragma("cache_size", "-16384")
                    .pragma("wal_autocheckpoint", "16000")
            });
        }
        let db = Database::connect(options.clone()).await?;
        let file =
            db.get_database_backend() == DbBackend::Sqlite && !database_url.contains(":memory:");
        // The checkpoint gets a connection of its own, beside the pool's one, so the inbound
        // writer's next batch never waits for it (see `Checkpointer::spawn`).
        let checkpoint_connection = if file {
            options.min_connections(1);
            Some(Database::connect(options).await?)
        } else {
            None
        };
        let mut registry = Self::new(db, keyring, carriers, config);
        if let Some(connection) = checkpoint_connection {
            registry.checkpointer = Some(Arc::new(Checkpointer::spawn(connection)));
        }
        registry.migrate().await?;
        Ok(registry)
    }

    /// Makes the key ring reloadable from the key file it was loaded from, so a master-key
    /// rotation by another process (`telephony-gateway keys rotate`, another instance) needs no
    /// restart: when a stored secret names a key version the loaded ring lacks, the registry
    /// reads `path` again (at most once a second) and retries; new secrets are encrypted under
    /// the active key of the ring loaded at that moment. Keys given as a value (no file) cannot
    /// be reloaded: a rotation then needs a rolling restart with the new keys.
    #[must_use]
    pub fn with_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        let ring = self.keyring.current();
        self.keyring = Arc::new(KeySource::from_file(ring, path.into()));
        self
    }

    /// Reads the key file again now (at most once a second; a no-op without a key file, see
    /// [`Registry::with_key_file`]). Returns whether a new ring was loaded. Decryption does
    /// this by itself when it needs a key it lacks; this is for an operator's signal.
    pub fn reload_keys(&self) -> bool {
        self.keyring.reload()
    }

    /// Applies every pending migration; a no-op on an up-to-date database.
    ///
    /// Safe when several instances start at once on one PostgreSQL (a rolling start): the
    /// migrations run in one transaction that first takes a transaction-scoped advisory lock,
    /// so one instance migrates while the others wait, then find nothing left to do. The lock
    /// is released with the transaction, on the same session that took it, even on failure.
    /// SQLite serializes writers by itself.
    ///
    /// # Errors
    /// [`RegistryError::Database`] when a migration fails.
    pub async fn migrate(&self) -> Result<()> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            let txn = self.db.begin().await?;
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await?;
        } else {
            Migrator::up(&self.db, None).await?;
        }
        Ok(())
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Checks that the database answers (for `/readyz`).
    ///
    /// # Errors
    /// [`RegistryError::Database`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// Writes one audit entry. A failure to write is logged, not returned: the carrier call it
    /// records already happened, and failing the workflow would not undo it.
    pub(crate) async fn audit(
        &self,
        scope: &Scope<'_>,
        action: &str,
        changed: bool,
        outcome: String,
    ) {
        metrics::counter!(
            CARRIER_CALLS_METRIC,
            "action" => action.to_owned(),
            "outcome" => outcome_class(&outcome),
        )
        .increment(1);
        let entry = audit::ActiveModel {
            org_id: Set(scope.org_id.to_owned()),
            at: Set(now()),
            action: Set(action.to_owned()),
            number: Set(scope.number.map(str::to_owned)),
            connection_id: Set(Some(scope.connection_id.to_owned())),
            changed_account: Set(changed),
            outcome: Set(outcome),
            ..Default::default()
        };
        if let Err(error) = entry.insert(&self.db).await {
            tracing::warn!(%error, action, "could not write the audit log entry");
        }
    }

    /// Runs one carrier call, writes it to the audit log whatever the outcome, and marks the
    /// connection degraded when the carrier refuses its stored credentials.
    pub(crate) async fn audited<T, F>(
        &self,
        scope: &Scope<'_>,
        action: &str,
        changes_account: bool,
        call: F,
    ) -> std::result::Result<T, CarrierError>
    where
        F: Future<Output = std::result::Result<T, CarrierError>>,
    {
        let result = call.await;
        // A failed call changed nothing as far as the carrier told us.
        let changed = changes_account && result.is_ok();
        self.audit(scope, action, changed, outcome_of(result.as_ref().err()))
            .await;
        if scope.live
            && matches!(result, Err(CarrierError::InvalidCredentials))
            && let Err(error) = self
                .set_connection_status(scope.connection_id, ConnectionStatus::Degraded)
                .await
        {
            tracing::warn!(%error, "could not mark the connection degraded");
        }
        result
    }

    pub(crate) async fn set_connection_status(
        &self,
        connection_id: &str,
        status: ConnectionStatus,
    ) -> Result<()> {
        let Some(row) = connection::Entity::find_by_id(connection_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        if row.status == status.as_str() {
            return Ok(());
        }
        let mut active: connection::ActiveModel = row.into();
        active.status = Set(status.as_str().to_owned());
        active.updated_at = Set(now());
        active.update(&self.db).await?;
        Ok(())
    }

    /// Decrypts a connection's credentials, for the moment of a carrier call.
    pub(crate) fn credentials_of(&self, row: &connection::Model) -> Result<CarrierCredentials> {
        let aad = |field| Aad {
            org_id: &row.org_id,
            connection_id: &row.id,
            field,
        };
        let main = self.keyring.decrypt(&row.auth_secret, &aad(FIELD_AUTH))?;
        match provider_of(row)? {
            Provider::Twilio => {
                let auth = match (&row.api_key_sid, &row.api_key_secret) {
                    (Some(key_sid), Some(secret)) => TwilioAuth::ApiKey {
                        key_sid: key_sid.clone(),
                        secret: self.keyring.decrypt(secret, &aad(FIELD_API_KEY_SECRET))?,
                    },
                    _ => TwilioAuth::AuthToken(main),
                };
                Ok(CarrierCredentials::Twilio(TwilioCredentials {
                    account_sid: row.account_id.clone(),
                    auth,
                }))
            }
            Provider::Telnyx => {
                let mut creds = TelnyxCredentials::new(main);
                creds.account_sid = Some(row.account_id.clone()).filter(|sid| !sid.is_empty());
                Ok(CarrierCredentials::Telnyx(creds))
            }
        }
    }

    /// The carrier client of a stored connection.
    pub(crate) fn carrier_of(&self, row: &connection::Model) -> Result<Arc<dyn Carrier>> {
        self.carriers
            .client_in_region(self.credentials_of(row)?, row.region.as_deref())
            .map_err(|e| RegistryError::InvalidRequest(e.to_string()))
    }
}

/// The PostgreSQL advisory lock key held while migrating ("telemigr" in ASCII): one constant
/// for every instance and version, so a rolling start migrates once.
const MIGRATION_LOCK: i64 = 0x7465_6c65_6d69_6772;

/// Vault field names: part of each ciphertext's associated data, so never rename them.
pub(crate) const FIELD_AUTH: &str = "auth_secret";
pub(crate) const FIELD_API_KEY_SECRET: &str = "api_key_secret";
pub(crate) const FIELD_PREVIOUS_AUTH: &str = "previous_auth_secret";

pub(crate) fn provider_of(row: &connection::Model) -> Result<Provider> {
    match row.provider.as_str() {
        "twilio" => Ok(Provider::Twilio),
        "telnyx" => Ok(Provider::Telnyx),
        other => Err(RegistryError::Corrupt(format!(
            "unknown provider {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use telephony_carrier::{TelnyxConfig, TwilioConfig};

    use super::*;

    /// On a SQLite file, the write-ahead log is checkpointed while a transaction holds the
    /// registry's connection (a group commit of inbound calls being written): the checkpoint
    /// has a connection of its own. A commit made meanwhile on another connection (as another
    /// process's would be) reaches the database file.
    #[tokio::test]
    async fn the_log_is_checkpointed_while_a_transaction_holds_the_registry_connection() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("gateway.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let carriers = CarrierClients::new(TwilioConfig::default(), TelnyxConfig::default())
            .expect("carrier clients");
        let registry = Registry::open(
            &url,
            KeyRing::generate().expect("key ring"),
            Arc::new(carriers),
            RegistryConfig::new("https://gateway.example"),
        )
        .await
        .expect("open");
        let held = registry
            .db
            .begin()
            .await
            .expect("the registry's connection");
        // Another connection writes about 1 MB: 256 pages, under SQLite's own threshold of
        // 1,000 at which its commit would checkpoint by itself.
        let other = Database::connect(url.as_str())
            .await
            .expect("another connection");
        let before = std::fs::metadata(&path).expect("database file").len();
        other
            .execute_unprepared(
                "CREATE TABLE filler (x BLOB); \
                 WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 256) \
                 INSERT INTO filler SELECT randomblob(4000) FROM c;",
            )
            .await
            .expect("the other connection's commit");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut size = before;
        while size < before + 256 * 4000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            size = std::fs::metadata(&path).expect("database file").len();
        }
        assert!(
            size >= before + 256 * 4000,
            "the file grew from {before} to {size} bytes only: the log was not checkpointed"
        );
        held.rollback().await.expect("let go");
        other.close().await.expect("close");
    }
}
