//! The registry's public domain types: what callers pass in and get back. None of them names
//! sea-orm, and none holds a plaintext secret except inside a [`SecretString`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use telephony_carrier::{InboundConfig, Provider};
use telephony_vault::SecretString;

use crate::error::{RegistryError, Result};

/// An organization: the tenant that owns connections, numbers, agents and API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    /// Its id (a UUID).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// An API key as listed: never the key itself, only its prefix for recognition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// The key's id.
    pub id: String,
    /// The owning organization.
    pub org_id: String,
    /// What the admin called it.
    pub label: String,
    /// The first characters of the key, enough to recognise it, too few to use it.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The state of a carrier connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// The credentials worked the last time they were used.
    Active,
    /// The carrier answered 401 on live use: the admin must rotate the credentials.
    Degraded,
}

impl ConnectionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Degraded => "degraded",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "active" => Ok(Self::Active),
            "degraded" => Ok(Self::Degraded),
            other => Err(RegistryError::Corrupt(format!(
                "unknown connection status {other:?}"
            ))),
        }
    }
}

/// A Twilio API key (`SK…` SID and secret) used for REST calls instead of the Auth Token.
#[derive(Debug, Clone)]
pub struct TwilioApiKey {
    /// The `SK…` SID.
    pub sid: String,
    /// The key's secret.
    pub secret: SecretString,
}

/// Credentials to connect or rotate, as the admin typed them.
#[derive(Debug, Clone)]
pub enum NewCredentials {
    /// A Twilio account.
    Twilio {
        /// The `AC…` Account SID.
        account_sid: String,
        /// The Auth Token: the webhook signing key, and the REST password when no API key is given.
        auth_token: SecretString,
        /// An optional API key for REST calls.
        api_key: Option<TwilioApiKey>,
    },
    /// A Telnyx account.
    Telnyx {
        /// The API v2 key (`KEY…`).
        api_key: SecretString,
        /// The account's Ed25519 public key (base64) that webhook signatures verify with.
        public_key: String,
        /// The TeXML account SID, when the admin has one (needed for TeXML call control).
        account_sid: Option<String>,
    },
}

impl NewCredentials {
    /// Which carrier these credentials are for.
    #[must_use]
    pub fn provider(&self) -> Provider {
        match self {
            Self::Twilio { .. } => Provider::Twilio,
            Self::Telnyx { .. } => Provider::Telnyx,
        }
    }
}

/// A request to connect a carrier account.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// A name unique within the organization, e.g. `main twilio`.
    pub name: String,
    /// The credentials, verified before anything is stored.
    pub credentials: NewCredentials,
    /// Telnyx: the TeXML application id numbers are pointed at in `managed` mode.
    pub texml_app_id: Option<String>,
    /// Twilio: the processing region (`us1` when absent).
    pub region: Option<String>,
}

/// A carrier connection as shown to the admin: identifiers, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// Its id.
    pub id: String,
    /// The owning organization.
    pub org_id: String,
    /// Its name.
    pub name: String,
    /// Which carrier.
    pub provider: Provider,
    /// Twilio Account SID, or the Telnyx account id the carrier reported.
    pub account_id: String,
    /// Telnyx TeXML application id.
    pub texml_app_id: Option<String>,
    /// Twilio region.
    pub region: Option<String>,
    /// Twilio API key SID when REST calls use an API key.
    pub api_key_sid: Option<String>,
    /// Telnyx public key (not a secret).
    pub public_key: Option<String>,
    /// `active` or `degraded`.
    pub status: ConnectionStatus,
    /// When the previous webhook signing key stops verifying, while a rotation's grace runs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What webhook verification of one connection needs: the current key and, during a rotation's
/// grace period, the previous one.
#[derive(Debug, Clone)]
pub enum WebhookSecrets {
    /// Twilio: `X-Twilio-Signature` is an HMAC keyed by the Auth Token.
    Twilio {
        /// The Account SID webhooks must carry.
        account_sid: String,
        /// The current Auth Token.
        current: SecretString,
        /// The previous Auth Token, while its grace period runs.
        previous: Option<SecretString>,
    },
    /// Telnyx: Ed25519 signatures checked with the account's public key.
    Telnyx {
        /// The current public key (base64).
        current: Option<String>,
        /// The previous public key, while its grace period runs.
        previous: Option<String>,
    },
}

/// How the gateway treats a number's inbound configuration at the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookMode {
    /// The gateway changes nothing at the carrier (the default).
    #[default]
    OutboundOnly,
    /// The gateway points the number at itself, after saving what was there.
    Managed,
}

impl WebhookMode {
    /// The stored and JSON spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutboundOnly => "outbound_only",
            Self::Managed => "managed",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "outbound_only" => Ok(Self::OutboundOnly),
            "managed" => Ok(Self::Managed),
            other => Err(RegistryError::Corrupt(format!(
                "unknown webhook mode {other:?}"
            ))),
        }
    }
}

/// The lifecycle state of an imported number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberStatus {
    /// Being imported: the row holds the number's place while the carrier is changed.
    Importing,
    /// Imported and routable.
    Active,
    /// Being removed: the carrier configuration is being restored.
    Removing,
}

impl NumberStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Importing => "importing",
            Self::Active => "active",
            Self::Removing => "removing",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "importing" => Ok(Self::Importing),
            "active" => Ok(Self::Active),
            "removing" => Ok(Self::Removing),
            other => Err(RegistryError::Corrupt(format!(
                "unknown number status {other:?}"
            ))),
        }
    }
}

/// An imported number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Number {
    /// Its id.
    pub id: String,
    /// The owning organization.
    pub org_id: String,
    /// The carrier connection it belongs to.
    pub connection_id: String,
    /// The number, E.164.
    pub e164: String,
    /// The admin's name for it.
    pub nickname: Option<String>,
    /// The carrier's id (Twilio `PN…`, Telnyx numeric id).
    pub carrier_id: String,
    /// The agent inbound calls go to.
    pub agent_id: Option<String>,
    /// `outbound_only` or `managed`.
    pub webhook_mode: WebhookMode,
    /// Lifecycle state.
    pub status: NumberStatus,
    /// The inbound configuration the gateway saved before changing it (managed mode).
    pub saved_inbound: Option<InboundConfig>,
    /// The inbound configuration the gateway set (managed mode).
    pub applied_inbound: Option<InboundConfig>,
    /// When the last call on it was seen, to within a minute (an inbound call within a minute
    /// of the time noted leaves it alone).
    pub last_call_at: Option<DateTime<Utc>>,
    /// At most this many simultaneous calls on the number (whatever their agent); `None` is
    /// no limit.
    pub max_concurrent_calls: Option<u32>,
    /// When it was imported.
    pub created_at: DateTime<Utc>,
}

/// A number of the carrier account, as the import picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountNumber {
    /// The number.
    pub e164: String,
    /// The carrier's id.
    pub carrier_id: String,
    /// The carrier's friendly name.
    pub friendly_name: Option<String>,
    /// Whether it can take voice calls.
    pub voice_capable: bool,
    /// Whether it is already imported (by this or any organization; which one is not said).
    pub already_imported: bool,
}

/// A request to import a number.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The connection whose account owns the number.
    pub connection_id: String,
    /// The number as typed (checked for E.164).
    pub e164: String,
    /// A nickname.
    pub nickname: Option<String>,
    /// An agent to assign at once.
    pub agent_id: Option<String>,
    /// `outbound_only` (changes nothing at the carrier) or `managed`.
    pub mode: WebhookMode,
    /// Only report the carrier-side changes; change nothing.
    pub dry_run: bool,
}

/// One change the gateway would make (or made) in a carrier account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    /// The number changed.
    pub e164: String,
    /// Its configuration now.
    pub from: InboundConfig,
    /// Its configuration after the change.
    pub to: InboundConfig,
}

/// What an import or a mode switch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
// One value per request: boxing the number would cost every caller a deref for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Applied {
    /// The change was made; the number as it is now.
    Done {
        /// The number.
        number: Number,
        /// The carrier-side changes made (empty when none).
        changes: Vec<PlannedChange>,
    },
    /// A dry run: what would change; nothing did.
    DryRun {
        /// The carrier-side changes that would be made.
        changes: Vec<PlannedChange>,
    },
}

/// What happened to the carrier configuration when the gateway let go of a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Restore {
    /// The number was `outbound_only`: nothing to restore.
    NothingToRestore,
    /// The saved configuration was put back.
    Restored,
    /// Someone repointed the number since the gateway set it: left as it is.
    LeftAsRepointed {
        /// What the carrier holds now.
        current: InboundConfig,
    },
    /// The number is no longer in the carrier account.
    NumberGone,
}

/// The result of removing a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveReport {
    /// The number removed.
    pub e164: String,
    /// What happened at the carrier.
    pub restore: Restore,
}

/// The result of disconnecting a carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisconnectReport {
    /// How many numbers the disconnection removes (or removed).
    pub numbers: usize,
    /// Whether the connection was deleted (false for a preview).
    pub deleted: bool,
    /// One report a removed number.
    pub removed: Vec<RemoveReport>,
}

/// Where an agent takes calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum AgentTarget {
    /// A WebSocket media stream URL (`wss://…`).
    MediaStream(String),
    /// A SIP URI (`sip:agent@example.com`).
    Sip(String),
}

/// A request to create an agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Its name.
    pub name: String,
    /// Where it takes calls.
    pub target: AgentTarget,
    /// A number calls go to when the agent cannot take them.
    pub fallback_number: Option<String>,
    /// At most this many simultaneous calls.
    pub max_concurrent_calls: Option<u32>,
}

/// A voice agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    /// Its id.
    pub id: String,
    /// The owning organization.
    pub org_id: String,
    /// Its name.
    pub name: String,
    /// Where it takes calls.
    pub target: AgentTarget,
    /// Fallback number (E.164).
    pub fallback_number: Option<String>,
    /// Concurrency limit.
    pub max_concurrent_calls: Option<u32>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One entry of an organization's audit log: a carrier API call the gateway made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Order of writing.
    pub id: i32,
    /// When.
    pub at: DateTime<Utc>,
    /// Which carrier call (`verify_credentials`, `fetch_number`, `replace_inbound_config`, ...).
    pub action: String,
    /// The number concerned.
    pub number: Option<String>,
    /// The connection used.
    pub connection_id: Option<String>,
    /// Whether the call changed the carrier account.
    pub changed_account: bool,
    /// `ok` or the error code.
    pub outcome: String,
}

/// Direction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Someone called an imported number.
    Inbound,
    /// The platform placed the call.
    Outbound,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// A call record to write or update (keyed by provider and carrier call id).
#[derive(Debug, Clone)]
pub struct CallUpdate {
    /// The organization.
    pub org_id: String,
    /// Which carrier.
    pub provider: Provider,
    /// The carrier's call id (`CA…`, call control id).
    pub carrier_call_id: String,
    /// The imported number concerned.
    pub number: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The carrier's status (`ringing`, `in-progress`, `completed` ...).
    pub status: String,
    /// Duration in seconds, once over.
    pub duration_secs: Option<u64>,
    /// When the call ended, once over.
    pub ended_at: Option<DateTime<Utc>>,
}

/// A stored call record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// Its id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// Which carrier.
    pub provider: String,
    /// The carrier's call id.
    pub carrier_call_id: String,
    /// The number concerned.
    pub number: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Latest status.
    pub status: String,
    /// Duration in seconds.
    pub duration_secs: Option<u64>,
    /// First seen.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// For an inbound call that arrived forwarded: the business number the caller dialled
    /// (the carrier's `ForwardedFrom`).
    pub forwarded_from: Option<String>,
}

/// A call asking to be admitted (counted against the number's and its agent's concurrency
/// limits).
#[derive(Debug, Clone)]
pub struct CallAdmission {
    /// Which carrier.
    pub provider: Provider,
    /// The carrier's call id.
    pub carrier_call_id: String,
    /// The organization.
    pub org_id: String,
    /// The number called.
    pub number_id: String,
    /// The agent it goes to.
    pub agent_id: Option<String>,
    /// The agent's limit; `None` admits without limit.
    pub limit: Option<u32>,
    /// The number's limit ([`Number::max_concurrent_calls`]); `None` admits without limit.
    pub number_limit: Option<u32>,
}

/// The answer to an admission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The call is counted and may proceed.
    Admitted,
    /// The call was already admitted (a retried webhook): it may proceed, counted once.
    AlreadyAdmitted,
    /// The agent is at its limit.
    AtCapacity,
    /// The number is at its limit.
    NumberAtCapacity,
}

/// One check of a number's diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`credentials_valid`, `number_in_account`, ...).
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, for the admin.
    pub detail: String,
}

/// The troubleshooting checklist of one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    /// The number.
    pub e164: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The last call seen on the number, to within a minute.
    pub last_call_at: Option<DateTime<Utc>>,
}

impl Diagnostics {
    /// Whether every check passed.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }

    /// The check with this name.
    #[must_use]
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }
}

/// A managed number whose inbound configuration was changed outside the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The number.
    pub number_id: String,
    /// The number, E.164.
    pub e164: String,
    /// What the gateway set.
    pub expected: InboundConfig,
    /// What the carrier holds now.
    pub actual: InboundConfig,
}

/// What recovery did with the operations left in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Operations completed.
    pub completed: usize,
    /// Operations undone.
    pub rolled_back: usize,
    /// Operations still pending (the carrier could not be reached; retried next time).
    pub still_pending: usize,
}
