//! A local, stateful emulator of the Twilio REST API 2010-04-01 and the Telnyx API v2, and of the
//! webhooks both carriers send, for tests and local development.
//!
//! The carrier clients are tested against it over real HTTP, and the gateway receives its signed
//! webhooks as it would receive the carriers' own. Response field names, status codes, error bodies
//! and paging follow the official OpenAPI specs in `shared/specs` (the integration tests check that).
//!
//! What it must **not** know: anything of the gateway (no registry, vault, routing or service
//! types). It is a carrier, seen from outside.
//!
//! # Starting it
//!
//! ```no_run
//! # async fn demo() -> Result<(), telephony_emulator::EmulatorError> {
//! use telephony_emulator::{Emulator, Seed};
//! let seed = Seed::from_json_file(std::path::Path::new("seeds/demo.json"))?;
//! let emulator = Emulator::start(seed, "127.0.0.1:0".parse().expect("literal address")).await?;
//! let twilio = emulator.twilio_base_url(); // http://127.0.0.1:PORT/
//! let telnyx = emulator.telnyx_base_url(); // http://127.0.0.1:PORT/v2
//! # let _ = (twilio, telnyx);
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Both carriers share one port: Twilio paths start `/2010-04-01/`, Telnyx paths `/v2/`, control
//! paths `/_emulator/`.
//!
//! # Seed format
//!
//! JSON, every field optional (see [`Seed`] and the types it holds; unknown fields are refused):
//!
//! ```json
//! {
//!   "twilio": {
//!     "accounts": [{
//!       "sid": "AC…", "auth_token": "…", "friendly_name": "Acme",
//!       "api_keys": [{"sid": "SK…", "secret": "…"}],
//!       "rate_limit_per_second": 5,
//!       "numbers": [{"phone_number": "+14155550100", "voice_url": "http://…",
//!                    "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false}}],
//!       "subaccounts": [{"sid": "AC…", "auth_token": "…", "numbers": []}]
//!     }],
//!     "available_numbers": [{"phone_number": "+14155550199", "type": "local", "region": "CA"}]
//!   },
//!   "telnyx": {
//!     "accounts": [{
//!       "api_key": "KEY…", "account_sid": "…", "signing_seed": "<base64 of 32 bytes>",
//!       "numbers": [{"phone_number": "+13125550100", "connection_id": "1293384261075731499"}],
//!       "texml_applications": [{"id": "1293384261075731499", "friendly_name": "agents",
//!                               "voice_url": "http://…", "status_callback": "http://…"}]
//!     }],
//!     "available_numbers": [{"phone_number": "+13125550199"}],
//!     "number_orders": {"pending_polls": 2, "pending_seconds": 0}
//!   }
//! }
//! ```
//!
//! Missing ids (`PN…` SIDs, Telnyx numeric ids) are generated. The account's Ed25519 public key
//! (what the gateway verifies Telnyx webhooks with) is in [`TelnyxAccount::public_key`].
//!
//! # Control API (`/_emulator/`, no auth)
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /_emulator/state` | the [`StateSnapshot`] as JSON |
//! | `GET /_emulator/requests` | the carrier request log ([`RequestRecord`]: method, path, query, body, account, status) |
//! | `GET /_emulator/webhooks` | webhooks sent ([`WebhookRecord`]) |
//! | `GET`/`POST`/`DELETE /_emulator/faults` | list, add one ([`Fault`] JSON: `method`, `path` glob, `status`, `delay_ms`, `drop_connection`, `times`), clear |
//! | `POST /_emulator/reset` | back to the seed; logs and faults cleared |
//! | `POST /_emulator/twilio/inbound` `{"to","from","forwarded_from"?}` | Twilio sends the signed voice webhook to the number's `VoiceUrl` (then `VoiceFallbackUrl` on failure); answers a [`WebhookDelivery`] |
//! | `POST /_emulator/telnyx/inbound` `{"to","from","forwarded_from"?}` | Telnyx sends the signed TeXML webhook to the voice URL of the number's TeXML application |
//! | `POST /_emulator/calls/{id}/end` | the caller hangs up: the call completes and its status callback is sent; answers `{"status_callback": WebhookDelivery or null}` |
//!
//! The same operations exist in process as methods of [`Emulator`].
//!
//! # Checking a client against the specs
//!
//! [`SpecChecker`] loads the two OpenAPI documents and checks each [`RequestRecord`] of the
//! request log (route, method, query parameters, body fields and media type) and any JSON
//! response. A client's tests can run it over `emulator.state().requests` to prove the client
//! sends nothing the real API would not accept.
//!
//! # Choices and deviations worth knowing
//!
//! - Telnyx credential check: `GET /v2/balance` (read-only, in the spec).
//! - Routes: Twilio Accounts, IncomingPhoneNumbers (and the Local/Mobile/TollFree lists),
//!   AvailablePhoneNumbers, Calls and call Recordings; Telnyx balance, phone_numbers,
//!   available_phone_numbers, number_orders, texml_applications, TeXML Calls and their
//!   Recordings, call control
//!   `POST /calls`, `GET /calls/{id}` and the hangup/record_start/record_stop/transfer actions.
//!   Anything else answers the carrier's 404.
//! - Outbound calls are answered at once: Twilio's create answers `queued`, a later fetch shows
//!   `in-progress`, and the call's `Url` is then fetched with a signed webhook (`CallStatus=
//!   in-progress`), in the background as the carriers do. The answer is logged, never executed.
//! - Telnyx `POST /texml/Accounts/{account_sid}/Calls` also returns `call_sid`, which the spec's
//!   `InitiateCallResult` lacks, because a client cannot act on the call without it.
//! - Twilio `PageToken`s are `PT<offset>`; Telnyx webhooks for TeXML are form-encoded (Twilio field
//!   names plus `CallSidLegacy`, `CallSessionId`, `ConnectionId`) and signed with Ed25519 like
//!   call-control webhooks (unverified for the real carrier).
//! - A call dialed with `POST /v2/calls` and a `webhook_url` gets Telnyx's JSON events there
//!   (`call.initiated`, `call.answered`, then `call.hangup`), Ed25519-signed like all Telnyx
//!   webhooks; TeXML calls get form-encoded status callbacks instead.
//! - Rate limits are fixed one-second windows per authenticated account; a 429 carries
//!   `Retry-After: 1` on both carriers.
//! - Webhooks are sent with a TLS-capable client with no trusted roots: targets are `http://`.

mod control;
mod model;
mod server;
mod spec;
mod telnyx;
mod twilio;
mod util;
mod webhook;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use model::{
    ApiKey, AvailableNumber, Call, Capabilities, Carrier, Fault, NumberOrder, NumberType,
    OrderBehaviour, OrderedNumber, Recording, RequestRecord, Seed, StateSnapshot, TelnyxAccount,
    TelnyxAccountSeed, TelnyxNumber, TelnyxSeed, TexmlApplication, TwilioAccount,
    TwilioAccountSeed, TwilioNumber, TwilioSeed, WebhookRecord,
};
pub use spec::SpecChecker;
pub use webhook::{InboundCall, WebhookDelivery, twilio_signature};

/// Everything that can go wrong starting or driving the emulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The seed file could not be read.
    #[error("cannot read seed file {path}: {source}")]
    SeedRead {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The seed is not valid JSON for [`Seed`].
    #[error("invalid seed json: {0}")]
    SeedParse(String),
    /// The seed parses but is inconsistent (missing credentials, bad signing seed).
    #[error("invalid seed: {0}")]
    InvalidSeed(String),
    /// An OpenAPI document could not be read.
    #[error("cannot read spec file {path}: {source}")]
    SpecRead {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An OpenAPI document is not JSON.
    #[error("invalid spec json: {0}")]
    SpecParse(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The webhook HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
    /// No account owns this number.
    #[error("no emulated account owns {0}")]
    UnknownNumber(String),
    /// The number has no voice webhook to call.
    #[error("{0} has no voice url configured")]
    NoVoiceUrl(String),
    /// The number's calls go to a TwiML application or SIP trunk, which the emulator does not run.
    #[error("{0} is routed to an application or trunk, not a voice url")]
    RoutedElsewhere(String),
    /// No call has this id.
    #[error("no call with id {0}")]
    UnknownCall(String),
}

/// A running emulator. Dropping it stops the server without waiting; [`Emulator::shutdown`]
/// stops it and waits until the listener is closed.
pub struct Emulator {
    addr: SocketAddr,
    base: url::Url,
    shared: Arc<server::Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `addr` (`127.0.0.1:0` picks a free port) and serves both carriers from `seed`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::InvalidSeed`] for an inconsistent seed, [`EmulatorError::Bind`] when the
    /// address cannot be bound, [`EmulatorError::Http`] when the webhook client cannot be built.
    pub async fn start(seed: Seed, addr: SocketAddr) -> Result<Emulator, EmulatorError> {
        let world = world::World::from_seed(seed)?;
        let http = webhook::http_client()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let base = url::Url::parse(&format!("http://{addr}/"))
            .map_err(|e| EmulatorError::Http(e.to_string()))?;
        let shared = Arc::new(server::Shared::new(world, http));
        let (shutdown, receiver) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared), receiver));
        tracing::info!(%addr, "carrier emulator listening");
        Ok(Emulator {
            addr,
            base,
            shared,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> url::Url {
        self.base.clone()
    }

    /// Where a Twilio client points instead of `https://api.twilio.com` (equal to [`Self::base_url`]).
    pub fn twilio_base_url(&self) -> url::Url {
        self.base_url()
    }

    /// Where a Twilio client's Pricing API base points instead of `https://pricing.twilio.com`.
    pub fn twilio_pricing_base_url(&self) -> url::Url {
        let mut url = self.base_url();
        url.set_path("/pricing");
        url
    }

    /// Where a Telnyx client points instead of `https://api.telnyx.com/v2` (`base_url` + `v2`).
    pub fn telnyx_base_url(&self) -> url::Url {
        let mut url = self.base_url();
        url.set_path("/v2");
        url
    }

    /// A copy of the current state (accounts, numbers, calls, recordings, orders, request and
    /// webhook logs, faults).
    pub fn state(&self) -> StateSnapshot {
        self.shared.world().state.clone()
    }

    /// Arms a fault (see [`Fault`]).
    pub fn add_fault(&self, fault: Fault) {
        self.shared.world().state.faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.world().state.faults.clear();
    }

    /// Back to the seed: state, request log, webhooks and faults.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::InvalidSeed`] cannot happen for a seed that started, but is reported
    /// rather than hidden.
    pub fn reset(&self) -> Result<(), EmulatorError> {
        self.shared.world().reset()
    }

    /// Twilio places an inbound call: the signed voice webhook goes to the number's `VoiceUrl`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownNumber`] when no Twilio account owns `call.to`,
    /// [`EmulatorError::NoVoiceUrl`] when the number has no voice URL,
    /// [`EmulatorError::RoutedElsewhere`] when a TwiML application or trunk takes its calls. A webhook that fails is
    /// not an error: the delivery carries its status or transport error.
    pub async fn twilio_inbound(
        &self,
        call: InboundCall,
    ) -> Result<WebhookDelivery, EmulatorError> {
        webhook::twilio_inbound(&self.shared, &call).await
    }

    /// Telnyx places an inbound call: the signed TeXML webhook goes to the voice URL of the
    /// number's TeXML application.
    ///
    /// # Errors
    ///
    /// As [`Emulator::twilio_inbound`], for Telnyx numbers and applications.
    pub async fn telnyx_inbound(
        &self,
        call: InboundCall,
    ) -> Result<WebhookDelivery, EmulatorError> {
        webhook::telnyx_inbound(&self.shared, &call).await
    }

    /// The caller hangs up: the call completes and its signed status callback is sent. `None`
    /// when the call has no status callback URL.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownCall`] when no call has this id.
    pub async fn end_call(&self, call_id: &str) -> Result<Option<WebhookDelivery>, EmulatorError> {
        webhook::end_call(&self.shared, call_id).await
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "emulator task ended abnormally");
        }
    }
}
