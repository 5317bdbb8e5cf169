//! The carrier abstraction. (Crate documentation to be written with the clients.)

mod error;
mod types;

pub use error::{Blame, CarrierError};
pub use types::*;

use async_trait::async_trait;

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
    /// # Errors
    /// [`CarrierError::Rejected`] when the number is no longer for sale.
    async fn buy_number(&self, request: &PurchaseRequest) -> Result<Purchase, CarrierError>;

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
    /// Any [`CarrierError`].
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
    /// [`CarrierError::Rejected`] when the call is already over.
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
    async fn stop_recording(&self, call_id: &str, recording_id: &str)
    -> Result<(), CarrierError>;
}
