//! The service's configuration: flags, each with an environment variable, and embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

/// Where the gateway keeps its data and how it reaches the carriers.
///
/// Every setting has an environment variable (`TELEPHONY_*`) and a flag; the defaults start the
/// gateway on SQLite under `./data/` with a master-key file created on first start.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Database URL: `sqlite://PATH?mode=rwc` (embedded default) or `postgres://...`.
    #[arg(
        long,
        env = "TELEPHONY_DATABASE_URL",
        default_value = "sqlite://./data/gateway.db?mode=rwc"
    )]
    pub database_url: String,

    /// Address the HTTP server listens on.
    #[arg(long, env = "TELEPHONY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The public base URL carriers reach the gateway at. Voice URLs are set from it and Twilio
    /// signatures are checked against it, never against the request's Host header.
    #[arg(
        long,
        env = "TELEPHONY_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: Url,

    /// Master-key file (created with owner-only permissions on first start if missing). Reread
    /// while running when a stored secret names a key not yet loaded (after `keys rotate`).
    #[arg(
        long,
        env = "TELEPHONY_MASTER_KEY_FILE",
        default_value = "./data/master.key"
    )]
    pub master_key_file: PathBuf,

    /// Master keys given as a value instead of a file (same syntax as the file). Takes precedence.
    /// Unlike the file, a value cannot be reloaded while running: rotating it needs a rolling
    /// restart of every instance with the new keys.
    #[arg(long, env = "TELEPHONY_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Key file for the per-call tokens given to agents (created on first start if missing).
    /// Every instance must use the same key; agents verify tokens with it.
    #[arg(
        long,
        env = "TELEPHONY_AGENT_TOKEN_KEY_FILE",
        default_value = "./data/agent-token.key"
    )]
    pub agent_token_key_file: PathBuf,

    /// Twilio REST API base URL (point it at the carrier emulator for local work).
    #[arg(long, env = "TELEPHONY_TWILIO_API_BASE")]
    pub twilio_api_base: Option<Url>,

    /// Telnyx API v2 base URL (point it at the carrier emulator for local work).
    #[arg(long, env = "TELEPHONY_TELNYX_API_BASE")]
    pub telnyx_api_base: Option<Url>,

    /// The platform's own Twilio Account SID, for managed numbers (each organization gets a
    /// subaccount of it). Managed Twilio numbers are refused without it.
    #[arg(
        long,
        env = "TELEPHONY_PLATFORM_TWILIO_ACCOUNT_SID",
        requires = "platform_twilio_auth_token"
    )]
    pub platform_twilio_account_sid: Option<String>,

    /// The platform's Twilio Auth Token.
    #[arg(
        long,
        env = "TELEPHONY_PLATFORM_TWILIO_AUTH_TOKEN",
        hide_env_values = true,
        requires = "platform_twilio_account_sid"
    )]
    pub platform_twilio_auth_token: Option<telephony_vault::SecretString>,

    /// The platform's own Telnyx API v2 key, for managed numbers. Managed Telnyx numbers are
    /// refused without it.
    #[arg(long, env = "TELEPHONY_PLATFORM_TELNYX_API_KEY", hide_env_values = true,
        requires_all = ["platform_telnyx_public_key", "platform_telnyx_texml_app_id"])]
    pub platform_telnyx_api_key: Option<telephony_vault::SecretString>,

    /// The platform Telnyx account's public key (base64), to verify its webhooks.
    #[arg(
        long,
        env = "TELEPHONY_PLATFORM_TELNYX_PUBLIC_KEY",
        requires = "platform_telnyx_api_key"
    )]
    pub platform_telnyx_public_key: Option<String>,

    /// The platform's TeXML application managed Telnyx numbers are tied to (its voice URL must
    /// be `{public_url}/webhooks/telnyx/texml`).
    #[arg(
        long,
        env = "TELEPHONY_PLATFORM_TELNYX_TEXML_APP_ID",
        requires = "platform_telnyx_api_key"
    )]
    pub platform_telnyx_texml_app_id: Option<String>,

    /// The platform Telnyx account's TeXML account SID (for live-call control of managed
    /// numbers).
    #[arg(
        long,
        env = "TELEPHONY_PLATFORM_TELNYX_ACCOUNT_SID",
        requires = "platform_telnyx_api_key"
    )]
    pub platform_telnyx_account_sid: Option<String>,
    /// How often pending managed-number purchases are checked, in seconds.
    #[arg(long, env = "TELEPHONY_MANAGED_ORDER_POLL_SECS", default_value_t = 30)]
    pub managed_order_poll_secs: u64,

    /// The inbound route cache's staleness bound, in milliseconds: an instance keeps its read
    /// of a number, its connection's webhook secrets and its agent until the database's change
    /// log says one of them changed (polled four times per bound), so a removed number or a
    /// revoked credential stops working on every instance at most this long after the change
    /// (see `docs/ARCHITECTURE.md`); 0 disables the cache.
    #[arg(long, env = "TELEPHONY_ROUTE_CACHE_BOUND_MS", default_value_t = 1_000)]
    pub route_cache_bound_ms: u64,

    /// The most numbers the inbound route cache holds at once.
    #[arg(
        long,
        env = "TELEPHONY_ROUTE_CACHE_CAPACITY",
        default_value_t = 100_000
    )]
    pub route_cache_capacity: usize,

    /// Log format.
    #[arg(long, env = "TELEPHONY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// How often collected log lines are written to stderr, in milliseconds (one write for
    /// many lines; see `telemetry`); 0 writes every line at once.
    #[arg(long, env = "TELEPHONY_LOG_FLUSH_MS", default_value_t = 50)]
    pub log_flush_ms: u64,

    /// How long webhooks signed with a rotated-out carrier token keep verifying, in seconds.
    #[arg(long, env = "TELEPHONY_ROTATION_GRACE_SECS", default_value_t = 86_400)]
    pub rotation_grace_secs: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "TELEPHONY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// How long graceful shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "TELEPHONY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// How long a client may take to send a request's body once its headers are in, in
    /// seconds; a slower one is answered 408 and disconnected.
    #[arg(long, env = "TELEPHONY_BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,

    /// How many threads serve HTTP connections, each with an event loop of its own; by default
    /// one per CPU core the process may use. 0 serves them on the main runtime's workers.
    #[arg(long, env = "TELEPHONY_SERVER_THREADS")]
    pub server_threads: Option<usize>,

    /// Failed API-key authentications one client address may make per window before it is
    /// answered 429 (a per-instance brake, see docs/SECURITY.md); 0 turns it off.
    #[arg(long, env = "TELEPHONY_AUTH_FAILURE_LIMIT", default_value_t = 20)]
    pub auth_failure_limit: u32,

    /// The window of `TELEPHONY_AUTH_FAILURE_LIMIT`, in seconds.
    #[arg(long, env = "TELEPHONY_AUTH_FAILURE_WINDOW_SECS", default_value_t = 60)]
    pub auth_failure_window_secs: u64,

    /// How often operations left in flight (by a crash or a carrier failure) are recovered, in
    /// seconds.
    #[arg(long, env = "TELEPHONY_RECOVERY_INTERVAL_SECS", default_value_t = 60)]
    pub recovery_interval_secs: u64,

    /// How old an operation in flight must be before recovery takes it over, in seconds. It
    /// must exceed the longest workflow (carrier timeouts and retries included), or recovery
    /// could undo a workflow another instance is still running.
    #[arg(long, env = "TELEPHONY_STALE_OPERATION_SECS", default_value_t = 120)]
    pub stale_operation_secs: u64,

    /// How long one attempt of a carrier API call may take, in milliseconds.
    #[arg(long, env = "TELEPHONY_CARRIER_TIMEOUT_MS", default_value_t = 15_000)]
    pub carrier_timeout_ms: u64,

    /// How long a request holds an `Idempotency-Key` it claimed without answering (it died),
    /// in seconds; after it the key can be claimed again.
    #[arg(long, env = "TELEPHONY_IDEMPOTENCY_LEASE_SECS", default_value_t = 300)]
    pub idempotency_lease_secs: u64,

    /// How long the answer to an `Idempotency-Key` is kept, in seconds.
    #[arg(
        long,
        env = "TELEPHONY_IDEMPOTENCY_KEY_TTL_SECS",
        default_value_t = 86_400
    )]
    pub idempotency_key_ttl_secs: u64,

    /// How long a webhook's stored answer is kept for carrier retries, in seconds.
    #[arg(
        long,
        env = "TELEPHONY_WEBHOOK_IDEMPOTENCY_TTL_SECS",
        default_value_t = 172_800
    )]
    pub webhook_idempotency_ttl_secs: u64,

    /// Base URL of Twilio's Pricing API (monthly cost of numbers for sale); for an emulator.
    #[arg(long, env = "TELEPHONY_TWILIO_PRICING_BASE")]
    pub twilio_pricing_base: Option<Url>,
}

impl Config {
    /// The rotation grace period.
    #[must_use]
    pub fn rotation_grace(&self) -> Duration {
        Duration::from_secs(self.rotation_grace_secs)
    }

    /// The platform's own carrier accounts, for managed numbers.
    #[must_use]
    pub fn platform_accounts(&self) -> telephony_registry::PlatformAccounts {
        telephony_registry::PlatformAccounts {
            twilio: self
                .platform_twilio_account_sid
                .clone()
                .zip(self.platform_twilio_auth_token.clone())
                .map(
                    |(account_sid, auth_token)| telephony_registry::PlatformTwilio {
                        account_sid,
                        auth_token,
                    },
                ),
            telnyx: match (
                &self.platform_telnyx_api_key,
                &self.platform_telnyx_public_key,
                &self.platform_telnyx_texml_app_id,
            ) {
                (Some(api_key), Some(public_key), Some(texml_app_id)) => {
                    Some(telephony_registry::PlatformTelnyx {
                        api_key: api_key.clone(),
                        public_key: public_key.clone(),
                        texml_app_id: texml_app_id.clone(),
                        account_sid: self.platform_telnyx_account_sid.clone(),
                    })
                }
                _ => None,
            },
        }
    }

    /// How often pending managed-number purchases are checked.
    #[must_use]
    pub fn managed_order_poll(&self) -> Duration {
        Duration::from_secs(self.managed_order_poll_secs.max(1))
    }

    /// The inbound route cache's settings.
    #[must_use]
    pub fn route_cache(&self) -> crate::route_cache::RouteCacheConfig {
        crate::route_cache::RouteCacheConfig {
            bound: Duration::from_millis(self.route_cache_bound_ms),
            capacity: self.route_cache_capacity,
        }
    }

    /// The graceful-shutdown deadline.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The deadlines the server gives its clients.
    #[must_use]
    pub fn client_deadlines(&self) -> crate::server::ClientDeadlines {
        crate::server::ClientDeadlines {
            header_read: crate::server::HEADER_READ_TIMEOUT,
            body_read: Duration::from_secs(self.body_read_timeout_secs.max(1)),
        }
    }

    /// How the server runs: the client deadlines and its connection threads.
    #[must_use]
    pub fn server_options(&self) -> crate::server::ServerOptions {
        crate::server::ServerOptions {
            deadlines: self.client_deadlines(),
            threads: self
                .server_threads
                .unwrap_or_else(crate::server::default_threads),
        }
    }

    /// The authentication-failure brake's settings.
    #[must_use]
    pub fn auth_limit(&self) -> crate::auth_limit::AuthLimitConfig {
        crate::auth_limit::AuthLimitConfig {
            max_failures: self.auth_failure_limit,
            window: Duration::from_secs(self.auth_failure_window_secs.max(1)),
            ..crate::auth_limit::AuthLimitConfig::default()
        }
    }

    /// How often recovery runs.
    #[must_use]
    pub fn recovery_interval(&self) -> Duration {
        Duration::from_secs(self.recovery_interval_secs.max(1))
    }

    /// The carrier request timeout.
    #[must_use]
    pub fn carrier_timeout(&self) -> Duration {
        Duration::from_millis(self.carrier_timeout_ms.max(1))
    }
}
