//! The carrier abstraction: the object-safe [`Carrier`] trait and the real REST clients for
//! Twilio ([`TwilioClient`], API 2010-04-01) and Telnyx ([`TelnyxClient`], API v2).
//!
//! The gateway picks a client per organization at run time, from the credentials it decrypted
//! for that one call: [`CarrierClients::client`] turns [`CarrierCredentials`] into an
//! `Arc<dyn Carrier>` that shares one HTTP connection pool with every other organization.
//!
//! # What this crate must not know
//!
//! Storage (where credentials and numbers are kept, the gateway's database), the gateway's own
//! HTTP routes, webhooks and routing. It receives plaintext credentials only as
//! [`telephony_vault::SecretString`], sends them only in the `Authorization` header, and never
//! puts them in a log line, an error or a `Debug` print: requests are traced at `debug` with
//! method, path, status and attempt only, and transport errors are stripped of their URL.
//!
//! # Errors
//!
//! Every call returns [`CarrierError`], which says who failed ([`CarrierError::blame`]) and
//! whether sending the same request again may help ([`CarrierError::is_retryable`]): 401 (and a
//! 403 that refuses the credentials) is `InvalidCredentials`, 404 `NotFound`, 429
//! `RateLimited` with the carrier's `Retry-After`, 5xx / timeout / refused or dropped
//! connection `Unavailable`, any other 4xx `Rejected` with the carrier's own code and message.
//!
//! An id that cannot name exactly one resource as one URL path segment — empty, `.`, `..`, or
//! holding `/`, `\`, `?`, `#`, `%`, white space or a control character — is refused before
//! anything is sent, as [`CarrierError::NotFound`]: no resource has that id, and the `url`
//! crate would otherwise skip the segment and address another resource (a Twilio
//! `stop_recording("..", id)` would update `/Accounts/{sid}/Calls/Recordings/{id}.json`, and an
//! empty id names a whole collection). An account SID in the credentials that cannot be a path
//! segment is refused the same way, as [`CarrierError::InvalidCredentials`].
//!
//! Once a carrier has answered 2xx to a request that creates something, the client never turns
//! that answer into an error that looks retryable. A bought number whose answer cannot be read
//! is [`Purchase::Pending`] (on the Telnyx order id, or the Twilio number SID) when the answer
//! names it, for [`Carrier::purchase_status`] to finish; otherwise, and for a placed call whose
//! answer cannot be read, the error is a [`CarrierError::Protocol`] that says the number may
//! have been bought or the call placed. A decoding error names the position in the body only,
//! never a value from it (a subaccount's answer carries its auth token).
//!
//! # Retries
//!
//! Only idempotent requests are retried: reads, and updates that set absolute values (a
//! number's voice URL, a call's `completed` status, a stopped recording). Requests that create
//! something — buying a number, placing a call, starting a recording, creating a subaccount,
//! redirecting a call to new instructions — are sent once, because after a timeout nobody knows
//! whether the carrier acted, and a retry could buy or dial twice. Retries wait with exponential
//! backoff and full jitter (a uniform wait below a ceiling that doubles each attempt, see
//! [`RetryPolicy`]) so that many clients failing together do not return together; a 429's
//! `Retry-After` is honoured instead, up to [`RetryPolicy::max_retry_after`]. Credential,
//! not-found and rejected errors are never retried: the same request gets the same answer.
//!
//! # Twilio regions and edges
//!
//! With no custom base URL, [`TwilioConfig::api_base`] derives the host as Twilio documents it:
//! `api.twilio.com` for the default `us1` region without an edge, `api.{edge}.{region}.twilio.com`
//! otherwise (`api.dublin.ie1.twilio.com`, `api.sydney.au1.twilio.com`). A region other than
//! `us1` without a configured edge gets its home edge, because Twilio retired the
//! `api.{region}.twilio.com` form. A custom base URL (an emulator, a proxy) is used as is, once
//! checked: no user info (it would be printed with the configuration and sent as an
//! `Authorization` header of its own), no query or fragment, and `https` unless the host is a
//! loopback address (`127.0.0.0/8`, `::1`, `localhost`). The Telnyx base URL is checked the
//! same way.
//!
//! # Telnyx calls and orders
//!
//! Live Telnyx calls mix the TeXML REST API (place, read, redirect: it needs the TeXML account
//! SID in [`TelnyxCredentials::account_sid`]) and Call Control commands (hang up, record: the API
//! key alone); [`TelnyxClient`] explains why. Telnyx number orders may complete later and stay
//! [`Purchase::Pending`] until [`Carrier::purchase_status`] sees them done.
//!
//! # TLS
//!
//! One `reqwest::Client` over rustls with the `ring` provider and the Mozilla root store
//! (`webpki-roots`), so the build carries a single crypto stack and does not depend on the
//! host's certificate store. Redirects are not followed, so credentials never travel to a host
//! the client was not configured for.

mod error;
mod http;
mod telnyx;
mod twilio;
mod types;

use std::sync::Arc;

pub use error::{Blame, CarrierError};
pub use http::{RetryPolicy, Timeouts, parse_retry_after};
pub use telnyx::{TelnyxClient, TelnyxConfig, TelnyxCredentials};
pub use twilio::{TwilioAuth, TwilioClient, TwilioConfig, TwilioCredentials};
pub use types::*;

use async_trait::async_trait;

/// One organization's credentials for one carrier, decrypted for the moment of a call.
#[derive(Debug, Clone)]
pub enum CarrierCredentials {
    /// A Twilio account.
    Twilio(TwilioCredentials),
    /// A Telnyx account.
    Telnyx(TelnyxCredentials),
}

/// The factory the gateway keeps for its whole life: one HTTP connection pool and the carrier
/// configurations, from which it builds a client per organization and call.
#[derive(Clone, Debug)]
pub struct CarrierClients {
    http: reqwest::Client,
    twilio: TwilioConfig,
    twilio_base: url::Url,
    telnyx: TelnyxConfig,
}

impl CarrierClients {
    /// Builds the shared HTTP client and checks both configurations.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] when a configuration cannot be used (a Twilio region
    /// without a known edge; a base URL that is not http(s), carries user info, a query or a
    /// fragment, or is plain `http` to a host that is not a loopback address) or TLS cannot be
    /// set up.
    pub fn new(twilio: TwilioConfig, telnyx: TelnyxConfig) -> Result<Self, CarrierError> {
        let twilio_base = twilio.api_base()?;
        telnyx.check()?;
        // The pool is shared, so it takes the longer connect timeout; each request still
        // carries its own carrier's request timeout.
        let connect = twilio.timeouts.connect.max(telnyx.timeouts.connect);
        Ok(Self {
            http: http::build_client(connect)?,
            twilio,
            twilio_base,
            telnyx,
        })
    }

    /// A client for one organization's carrier account.
    #[must_use]
    pub fn client(&self, creds: CarrierCredentials) -> Arc<dyn Carrier> {
        match creds {
            CarrierCredentials::Twilio(creds) => Arc::new(self.twilio(creds)),
            CarrierCredentials::Telnyx(creds) => Arc::new(self.telnyx(creds)),
        }
    }

    /// A Twilio client, for the Twilio-only operations such as
    /// [`TwilioClient::create_subaccount`].
    #[must_use]
    pub fn twilio(&self, creds: TwilioCredentials) -> TwilioClient {
        TwilioClient::from_parts(
            self.http.clone(),
            self.twilio_base.clone(),
            &self.twilio,
            creds,
        )
    }

    /// A Twilio client for an account processed in `region` (`us1`, `ie1`, `au1`, `jp1`), reached
    /// through that region's own edge, so live-call actions go to the region that holds the
    /// account's calls. `None` keeps the gateway-wide region and edge. With a custom base URL (an
    /// emulator, a proxy) the base is used as is, whatever the region.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] for a region with no known edge.
    pub fn twilio_in_region(
        &self,
        creds: TwilioCredentials,
        region: Option<&str>,
    ) -> Result<TwilioClient, CarrierError> {
        let base = match region {
            Some(region) if self.twilio.base_url.is_none() => TwilioConfig {
                region: region.to_owned(),
                // The connection's region decides the edge: the gateway-wide edge belongs to the
                // gateway-wide region.
                edge: None,
                ..self.twilio.clone()
            }
            .api_base()?,
            _ => self.twilio_base.clone(),
        };
        Ok(TwilioClient::from_parts(
            self.http.clone(),
            base,
            &self.twilio,
            creds,
        ))
    }

    /// A client for one organization's carrier account, in the connection's Twilio region (see
    /// [`CarrierClients::twilio_in_region`]; ignored for Telnyx).
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] for a Twilio region with no known edge.
    pub fn client_in_region(
        &self,
        creds: CarrierCredentials,
        twilio_region: Option<&str>,
    ) -> Result<Arc<dyn Carrier>, CarrierError> {
        Ok(match creds {
            CarrierCredentials::Twilio(creds) => {
                Arc::new(self.twilio_in_region(creds, twilio_region)?)
            }
            CarrierCredentials::Telnyx(creds) => Arc::new(self.telnyx(creds)),
        })
    }

    /// A Telnyx client.
    #[must_use]
    pub fn telnyx(&self, creds: TelnyxCredentials) -> TelnyxClient {
        TelnyxClient::from_checked(self.http.clone(), &self.telnyx, creds)
    }
}

/// One carrier account, reached with one organization's credentials.
///
/// The gateway chooses the implementation per organization at run time, so the trait is
/// object safe and used as `Arc<dyn Carrier>`.
#[async_trait]
pub trait Carrier: Send + Sync + std::fmt::Debug {
    /// Which carrier this is.
    fn provider(&self) -> Provider;

    /// Checks the credentials with one read-only call.
    ///
    /// # Errors
    /// [`CarrierError::InvalidCredentials`] when the carrier refuses them; any other class when
    /// the carrier could not be asked.
    async fn verify_credentials(&self) -> Result<AccountInfo, CarrierError>;

    /// One page of the account's numbers (`None`: the first page). Callers walk `next` until it
    /// is `None`, so a large account is never held in memory at once.
    ///
    /// # Errors
    /// Any [`CarrierError`].
    async fn list_numbers(&self, page: Option<&PageCursor>) -> Result<NumberPage, CarrierError>;

    /// One owned number, by E.164.
    ///
    /// # Errors
    /// [`CarrierError::NotFound`] when the account does not own it.
    async fn fetch_number(&self, e164: &E164) -> Result<OwnedNumber, CarrierError>;

    /// Replaces the inbound configuration of the number with carrier id `carrier_id` and
    /// returns what was there before.
    ///
    /// # Errors
    /// [`CarrierError::NotFound`] when the number is gone; any other class on failure, in which
    /// case the carrier kept the previous configuration.
    async fn replace_inbound_config(
        &self,
        carrier_id: &str,
        config: &InboundConfig,
    ) -> Result<InboundConfig, CarrierError>;

    /// Searches the carrier's inventory of numbers for sale.
    ///
    /// # Errors
    /// Any [`CarrierError`].
    async fn search_available(
        &self,
        query: &AvailableQuery,
    ) -> Result<Vec<AvailableNumber>, CarrierError>;

    /// Buys a number and gives it an inbound configuration.
    ///
    /// Once the carrier accepted the purchase, the result is never a retryable error: a number
    /// that is bought but cannot be read yet is [`Purchase::Pending`].
    ///
    /// # Errors
    /// [`CarrierError::Rejected`] when the number is no longer for sale;
    /// [`CarrierError::Protocol`] (saying the number may have been bought) when the carrier
    /// accepted the purchase with an answer that names nothing to look up.
    async fn buy_number(&self, request: &PurchaseRequest) -> Result<Purchase, CarrierError>;

    /// The purchase of `e164` made with `reference` ([`PurchaseRequest::reference`]), as the
    /// carrier holds it now, for a purchase whose answer was lost (the process died, or the
    /// connection dropped, after the carrier was asked): `None` when nothing was bought. A
    /// carrier with orders looks for the order with that reference, pending ones included,
    /// and else for the number in the account; one without (Twilio sells at once) looks for
    /// the number.
    ///
    /// # Errors
    /// Any [`CarrierError`] but [`CarrierError::NotFound`]: the carrier could not be asked.
    async fn find_purchase(
        &self,
        reference: &str,
        e164: &E164,
    ) -> Result<Option<Purchase>, CarrierError> {
        let _ = reference;
        match self.fetch_number(e164).await {
            Ok(number) => Ok(Some(Purchase::Completed { number })),
            Err(CarrierError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The current state of an order that was [`Purchase::Pending`].
    ///
    /// # Errors
    /// [`CarrierError::NotFound`] for an unknown order.
    async fn purchase_status(&self, order_id: &str) -> Result<Purchase, CarrierError>;

    /// Releases a number bought on the platform's account (never called for imported numbers).
    ///
    /// # Errors
    /// Any [`CarrierError`].
    async fn release_number(&self, carrier_id: &str) -> Result<(), CarrierError>;

    /// Places an outbound call.
    ///
    /// # Errors
    /// Any [`CarrierError`]; a [`CarrierError::Protocol`] that says the call may have been placed
    /// when the carrier accepted it with an answer that names no call.
    async fn place_call(&self, call: &OutboundCall) -> Result<CallInfo, CarrierError>;

    /// A call's current state.
    ///
    /// # Errors
    /// [`CarrierError::NotFound`] for an unknown call.
    async fn fetch_call(&self, call_id: &str) -> Result<CallInfo, CarrierError>;

    /// Gives a live call new instructions (a transfer).
    ///
    /// # Errors
    /// [`CarrierError::Rejected`] when the call is already over.
    async fn redirect_call(&self, call_id: &str, target: &CallTarget) -> Result<(), CarrierError>;

    /// Hangs up a live call.
    ///
    /// # Errors
    /// [`CarrierError::Rejected`] when the call is already over, except on Twilio when that
    /// refusal answers a retry after an attempt whose fate is unknown (timed out, dropped, 5xx):
    /// that attempt most likely ended the call, and the hang-up succeeds.
    async fn hangup_call(&self, call_id: &str) -> Result<(), CarrierError>;

    /// Starts recording a live call.
    ///
    /// # Errors
    /// [`CarrierError::Rejected`] when the call is not in progress.
    async fn start_recording(&self, call_id: &str) -> Result<Recording, CarrierError>;

    /// Stops a recording started by [`Carrier::start_recording`].
    ///
    /// # Errors
    /// [`CarrierError::NotFound`] for an unknown recording.
    async fn stop_recording(&self, call_id: &str, recording_id: &str) -> Result<(), CarrierError>;
}
