//! What the binary's subcommands do: `serve`, `migrate`, `org create`, `keys rotate`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use telephony_carrier::{CarrierClients, TelnyxConfig, TwilioConfig};
use telephony_registry::{Registry, RegistryConfig};
use telephony_vault::{KeyRing, SecretString};
use tokio::net::TcpListener;

use crate::call_token::CallTokens;
use crate::config::Config;
use crate::state::AppState;

/// A failure of a subcommand, for the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The master keys could not be loaded or saved.
    #[error("master key: {0}")]
    MasterKey(#[from] telephony_vault::VaultError),
    /// The carrier clients could not be configured.
    #[error("carrier configuration: {0}")]
    Carrier(#[from] telephony_carrier::CarrierError),
    /// The registry (database) failed.
    #[error("registry: {0}")]
    Registry(#[from] telephony_registry::RegistryError),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CommandError {
    let what = what.into();
    move |source| CommandError::Io { what, source }
}

/// Creates the folder of an embedded SQLite database (`sqlite://./data/x.db?...`).
fn ensure_sqlite_dir(database_url: &str) -> Result<(), CommandError> {
    let Some(rest) = database_url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    Ok(())
}

/// Whether the gateway runs on its embedded default (SQLite), where it may create its own key
/// files on first start. On PostgreSQL several instances share the database, so they must share
/// the keys too: a key invented by one instance would make the others' secrets unreadable.
fn embedded(config: &Config) -> bool {
    config.database_url.starts_with("sqlite:")
}

fn load_keyring(config: &Config) -> Result<KeyRing, CommandError> {
    if let Some(spec) = &config.master_key {
        return Ok(KeyRing::from_base64_keys(spec)?);
    }
    if !embedded(config) {
        if !config.master_key_file.exists() {
            return Err(CommandError::Config(format!(
                "no master key at {}: on PostgreSQL every instance must use the same keys; create \
                 them once with `telephony-gateway keys init` and give every instance the file \
                 (or TELEPHONY_MASTER_KEY)",
                config.master_key_file.display()
            )));
        }
        return Ok(KeyRing::from_file(&config.master_key_file)?);
    }
    create_keyring_if_missing(config)
}

/// Loads the master-key file, creating it (owner-only) if it does not exist.
fn create_keyring_if_missing(config: &Config) -> Result<KeyRing, CommandError> {
    if let Some(dir) = config
        .master_key_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let (keyring, created) = KeyRing::load_or_create(&config.master_key_file)?;
    if created {
        tracing::warn!(
            path = %config.master_key_file.display(),
            "created a new master key file (owner-only permissions); back it up: without it \
             the stored carrier credentials cannot be decrypted"
        );
    }
    Ok(keyring)
}

/// Loads the agent-token key, creating it (owner-only) when missing and `allow_create`.
fn load_call_tokens(path: &Path, allow_create: bool) -> Result<CallTokens, CommandError> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !allow_create => {
            return Err(CommandError::Config(format!(
                "no agent-token key at {}: on PostgreSQL every instance must use the same key; \
                 create it once with `telephony-gateway keys init` and give every instance the file",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0_u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                .map_err(|_| CommandError::Config("no system randomness".into()))?;
            let text = STANDARD.encode(key);
            write_private(path, &text)?;
            tracing::warn!(path = %path.display(), "created a new agent-token key file");
            text
        }
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    let key = STANDARD
        .decode(text.trim())
        .ok()
        .filter(|k| k.len() >= 32)
        .ok_or_else(|| {
            CommandError::Config(format!(
                "{} is not base64 of at least 32 bytes",
                path.display()
            ))
        })?;
    Ok(CallTokens::new(&key))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(())
}

fn carrier_clients(config: &Config) -> Result<CarrierClients, CommandError> {
    let mut twilio = TwilioConfig {
        base_url: config.twilio_api_base.clone(),
        pricing_base_url: config.twilio_pricing_base.clone(),
        ..TwilioConfig::default()
    };
    twilio.timeouts.request = config.carrier_timeout();
    let mut telnyx = TelnyxConfig::default();
    telnyx.timeouts.request = config.carrier_timeout();
    if let Some(base) = &config.telnyx_api_base {
        telnyx.base_url = base.clone();
    }
    Ok(CarrierClients::new(twilio, telnyx)?)
}

/// Opens the registry (creating the embedded database and migrating it as needed).
///
/// # Errors
/// [`CommandError`] when the keys, carriers or database cannot be set up.
pub async fn open_registry(config: &Config) -> Result<Registry, CommandError> {
    ensure_sqlite_dir(&config.database_url)?;
    let keyring = load_keyring(config)?;
    let clients = carrier_clients(config)?;
    let mut registry_config = RegistryConfig::new(config.public_url.as_str());
    registry_config.rotation_grace = config.rotation_grace();
    registry_config.stale_operation_after = Duration::from_secs(config.stale_operation_secs);
    registry_config.idempotency_lease = Duration::from_secs(config.idempotency_lease_secs);
    registry_config.idempotency_key_ttl = Duration::from_secs(config.idempotency_key_ttl_secs);
    registry_config.webhook_idempotency_ttl =
        Duration::from_secs(config.webhook_idempotency_ttl_secs);
    let registry = Registry::open(
        &config.database_url,
        keyring,
        Arc::new(clients),
        registry_config,
    )
    .await?
    .with_platform_accounts(config.platform_accounts());
    // Keys from the file are reloaded from it when a stored secret needs a key this process
    // has not loaded (`keys rotate` run elsewhere), so a rotation needs no restart. Keys given
    // in TELEPHONY_MASTER_KEY cannot be reloaded: rotating them needs a rolling restart.
    Ok(if config.master_key.is_some() {
        registry
    } else {
        registry.with_key_file(config.master_key_file.clone())
    })
}

/// Builds the application state from the configuration.
///
/// # Errors
/// [`CommandError`] when a part cannot be set up.
pub async fn app_state(config: &Config) -> Result<AppState, CommandError> {
    let registry = open_registry(config).await?;
    let metrics = crate::metrics::install_recorder()
        .map_err(|e| CommandError::Config(format!("metrics: {e}")))?;
    let tokens = load_call_tokens(&config.agent_token_key_file, embedded(config))?;
    Ok(
        AppState::new(registry, metrics, config.public_url.clone(), tokens)
            .with_auth_limiter(crate::auth_limit::AuthLimiter::new(config.auth_limit()))
            .with_route_cache(config.route_cache()),
    )
}

/// `serve`: runs the gateway until SIGINT/SIGTERM, then finishes in-flight requests.
///
/// # Errors
/// [`CommandError`] when start-up fails or the listener breaks.
pub async fn serve(config: Config) -> Result<(), CommandError> {
    let state = app_state(&config).await?;
    let report = state.registry().recover_pending_operations().await?;
    tracing::info!(?report, "recovered operations left in flight");
    let recovery = tokio::spawn(recover_periodically(
        state.registry().clone(),
        config.recovery_interval(),
    ));
    let synced = state.registry().sync_platform_telnyx().await?;
    if synced > 0 {
        tracing::info!(
            connections = synced,
            "managed telnyx connections updated to the platform account"
        );
    }
    let sweep = tokio::spawn(sweep_idempotency_periodically(state.registry().clone()));
    let upkeep = tokio::spawn(crate::metrics::run_upkeep(
        state.metrics().clone(),
        crate::metrics::UPKEEP_INTERVAL,
    ));
    let orders = tokio::spawn(refresh_orders_periodically(
        state.registry().clone(),
        config.managed_order_poll(),
    ));

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(io(format!("listening on {}", config.listen)))?;
    tracing::info!(
        listen = %config.listen,
        public_url = %config.public_url,
        database = if config.database_url.starts_with("postgres") { "postgresql" } else { "sqlite" },
        "telephony-gateway serving"
    );
    let registry = state.registry().clone();
    let app = crate::app::app(state, config.max_body_bytes);
    let grace = config.shutdown_grace();
    // Not `axum::serve`: it gives hyper no timer, so a client trickling its headers would hold
    // a connection forever (see `server`).
    let result = crate::server::serve_with(
        listener,
        app,
        config.server_options(),
        shutdown_signal(grace),
    )
    .await
    .map_err(io("serving"));
    // Calls answered before their write are written before the process ends.
    registry.settle_inbound_calls().await;
    recovery.abort();
    orders.abort();
    sweep.abort();
    upkeep.abort();
    tracing::info!("telephony-gateway stopped");
    result
}

/// Every `every` (a minute by default), finish or undo operations another instance (or a
/// crash) left in flight.
async fn recover_periodically(registry: Registry, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match registry.recover_pending_operations().await {
            Ok(report) if report != Default::default() => tracing::info!(?report, "recovery pass"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "recovery pass failed"),
        }
    }
}

/// Every ten minutes, deletes expired idempotency records (answers to `Idempotency-Key`s and
/// webhooks), in bounded batches: at most ten batches of 1000 rows of each kind per pass.
async fn sweep_idempotency_periodically(registry: Registry) {
    const BATCH: u64 = 1000;
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        for _ in 0..10 {
            match registry.sweep_idempotency(BATCH).await {
                Ok((0, 0)) => break,
                Ok((keys, webhooks)) => {
                    tracing::debug!(keys, webhooks, "expired idempotency records deleted");
                    if keys < BATCH && webhooks < BATCH {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "idempotency sweep failed");
                    break;
                }
            }
        }
    }
}

/// Finishes managed-number purchases the carrier completed later (Telnyx number orders). The
/// state is in the database and each order is claimed first, so a restart or several instances
/// change nothing; the first pass runs at once, for orders a previous process left pending.
async fn refresh_orders_periodically(registry: Registry, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match registry.refresh_managed_orders().await {
            Ok(report) if report != Default::default() => {
                tracing::info!(?report, "managed orders pass");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "managed orders pass failed"),
        }
    }
}

async fn shutdown_signal(grace: Duration) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    // A request still running after the grace period is abandoned with the process.
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        tracing::warn!("shutdown grace period over; exiting");
        std::process::exit(0);
    });
}

/// `migrate`: applies pending migrations.
///
/// # Errors
/// [`CommandError`] when the database cannot be migrated.
pub async fn migrate(config: &Config) -> Result<(), CommandError> {
    open_registry(config).await?;
    tracing::info!("database is up to date");
    Ok(())
}

/// What `org create` prints, once: the only time the API key is ever shown.
#[derive(Debug, Serialize)]
pub struct CreatedOrg {
    /// The organization's id.
    pub org_id: String,
    /// Its name.
    pub name: String,
    /// The API key id.
    pub api_key_id: String,
    /// The API key: store it now, it cannot be shown again. Serialized (that is the point of
    /// the command) but redacted in `Debug`, so a stray `{:?}` cannot log it.
    #[serde(serialize_with = "expose_secret")]
    pub api_key: SecretString,
}

fn expose_secret<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// `org create --name NAME`.
///
/// # Errors
/// [`CommandError`] when the organization cannot be created.
pub async fn create_org(config: &Config, name: &str) -> Result<CreatedOrg, CommandError> {
    let registry = open_registry(config).await?;
    let org = registry.create_organization(name).await?;
    let (info, key) = registry.create_api_key(&org.id, "default").await?;
    Ok(CreatedOrg {
        org_id: org.id,
        name: org.name,
        api_key_id: info.id,
        api_key: key,
    })
}

/// What `keys init` did.
#[derive(Debug, Serialize)]
pub struct KeysInitReport {
    /// Whether the master-key file was created (false: it existed and was left as it is).
    pub master_key_created: bool,
    /// Whether the agent-token key file was created.
    pub agent_token_key_created: bool,
}

/// `keys init`: creates the master-key and agent-token key files (owner-only) where missing, so
/// an operator can create them once and give the same files to every instance. Existing files
/// are never overwritten.
///
/// # Errors
/// [`CommandError`] when a file cannot be read or written, or an existing one is malformed.
pub fn init_keys(config: &Config) -> Result<KeysInitReport, CommandError> {
    let master_key_created = !config.master_key_file.exists();
    create_keyring_if_missing(config)?;
    let agent_token_key_created = !config.agent_token_key_file.exists();
    load_call_tokens(&config.agent_token_key_file, true)?;
    Ok(KeysInitReport {
        master_key_created,
        agent_token_key_created,
    })
}

/// What `keys rotate` did.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    /// The new active master-key version.
    pub active_version: u32,
    /// How many stored secrets were re-wrapped under it.
    pub rewrapped: usize,
}

/// `keys rotate`: adds a new active master key to the key file and re-wraps every stored secret
/// under it. Old versions stay in the file, so ciphertexts not yet re-wrapped still decrypt.
/// Running `serve` processes that read the same file need no restart: one that meets a secret
/// under the new key reloads the file (see [`Registry::with_key_file`]).
///
/// # Errors
/// [`CommandError`] when the keys are given as a value (nothing to write), or saving or
/// re-wrapping fails.
pub async fn rotate_master_key(config: &Config) -> Result<RotationReport, CommandError> {
    if config.master_key.is_some() {
        return Err(CommandError::Config(
            "keys rotate writes the master-key file; unset TELEPHONY_MASTER_KEY and use TELEPHONY_MASTER_KEY_FILE".into(),
        ));
    }
    let current = KeyRing::from_file(&config.master_key_file)?;
    let rotated = current.with_new_active_key()?;
    rotated.save(&config.master_key_file)?;
    let registry = open_registry(config).await?;
    let rewrapped = registry.rewrap_all_secrets().await?;
    Ok(RotationReport {
        active_version: rotated.active_version(),
        rewrapped,
    })
}
