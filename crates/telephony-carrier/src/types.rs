//! Values exchanged with a carrier, independent of which carrier it is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Twilio, REST API 2010-04-01.
    Twilio,
    /// Telnyx, API v2.
    Telnyx,
}

impl Provider {
    /// The lowercase name used in URLs, storage and JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phone number in E.164 form: `+`, a country code that does not start with 0, at most 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// A string that is not an E.164 phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an E.164 phone number (expected + followed by 2 to 15 digits, first digit not 0)")]
pub struct InvalidE164;

impl E164 {
    /// Parses an E.164 number. Surrounding white space is not accepted: callers trim.
    ///
    /// # Errors
    /// [`InvalidE164`] when the text is not `+` followed by 2 to 15 digits, the first not 0.
    pub fn parse(text: &str) -> Result<Self, InvalidE164> {
        let digits = text.strip_prefix('+').ok_or(InvalidE164)?;
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidE164)
        }
    }

    /// The number as text, with its leading `+`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = InvalidE164;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

/// What a number can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Can take and place voice calls.
    pub voice: bool,
    /// Can send and receive SMS.
    pub sms: bool,
    /// Can send and receive MMS.
    pub mms: bool,
    /// Can send and receive faxes.
    pub fax: bool,
}

/// The account a set of credentials belongs to, as the carrier reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Twilio Account SID (`AC…`) or a Telnyx identifier of the account.
    pub account_id: String,
    /// The account's friendly name, when the carrier has one.
    pub friendly_name: Option<String>,
    /// Whether the account is active (not suspended or closed).
    pub active: bool,
}

/// A number owned by the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedNumber {
    /// The carrier's id of the number: Twilio `PN…` SID, Telnyx phone number id.
    pub carrier_id: String,
    /// The number.
    pub e164: E164,
    /// The carrier's friendly name or tag, when set.
    pub friendly_name: Option<String>,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Its inbound configuration as it is now.
    pub inbound: InboundConfig,
}

/// One page of the account's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPage {
    /// The numbers on this page.
    pub numbers: Vec<OwnedNumber>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<PageCursor>,
}

/// An opaque position in a paginated listing, handed back to get the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCursor(pub String);

/// The whole inbound configuration of a number: what the gateway saves before it changes
/// anything and puts back when it lets go of the number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum InboundConfig {
    /// A Twilio IncomingPhoneNumber's voice settings.
    Twilio(TwilioVoiceConfig),
    /// A Telnyx phone number's voice settings: the webhook lives on the connection/application.
    Telnyx(TelnyxVoiceConfig),
}

/// Twilio voice settings of an IncomingPhoneNumber. `None` means empty at Twilio.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioVoiceConfig {
    /// `VoiceUrl`.
    pub voice_url: Option<String>,
    /// `VoiceMethod` (`GET` or `POST`).
    pub voice_method: Option<String>,
    /// `VoiceFallbackUrl`.
    pub voice_fallback_url: Option<String>,
    /// `VoiceFallbackMethod`.
    pub voice_fallback_method: Option<String>,
    /// `StatusCallback`.
    pub status_callback: Option<String>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<String>,
    /// `VoiceApplicationSid`: when set, Twilio ignores the voice URLs.
    pub voice_application_sid: Option<String>,
    /// `TrunkSid`: when set, Twilio ignores the voice URLs and the application.
    pub trunk_sid: Option<String>,
}

/// Telnyx voice settings of a phone number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelnyxVoiceConfig {
    /// The connection or TeXML application the number is tied to.
    pub connection_id: Option<String>,
}

/// The kind of number searched for or bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    /// A local (geographic) number.
    Local,
    /// A mobile number.
    Mobile,
    /// A toll-free number.
    TollFree,
}

/// A search of the carrier's inventory of numbers for sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableQuery {
    /// ISO 3166-1 alpha-2 country code, e.g. `US`.
    pub country: String,
    /// Area code / national destination code, e.g. `415`.
    pub area_code: Option<String>,
    /// Local, mobile or toll-free.
    pub number_type: NumberType,
    /// At most this many results.
    pub limit: u32,
}

/// A number for sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableNumber {
    /// The number.
    pub e164: E164,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Locality or region, when the carrier says.
    pub locality: Option<String>,
    /// ISO country code.
    pub country: String,
    /// Monthly cost as a decimal string in `currency`, when the carrier says.
    pub monthly_cost: Option<String>,
    /// ISO 4217 currency of `monthly_cost`.
    pub currency: Option<String>,
}

/// A request to buy a number and point it somewhere at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    /// The number to buy (from a search).
    pub e164: E164,
    /// The inbound configuration to give it (Twilio voice URL, Telnyx connection).
    pub inbound: InboundConfig,
    /// The buyer's own reference for the purchase (the gateway's order id), kept by a carrier
    /// whose orders have one (Telnyx's `customer_reference`), so that a purchase whose answer
    /// was lost can be found again ([`crate::Carrier::find_purchase`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The state of a purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
// A purchase is made a few times a day, never held in bulk: boxing the number would only make
// every caller's pattern match noisier.
#[allow(clippy::large_enum_variant)]
pub enum Purchase {
    /// The number is bought and in the account.
    Completed {
        /// The number as now owned.
        number: OwnedNumber,
    },
    /// The carrier completes the order later (Telnyx number orders).
    Pending {
        /// The carrier's order id, to ask again.
        order_id: String,
    },
    /// The carrier refused or cancelled the order.
    Failed {
        /// The carrier's order id.
        order_id: String,
        /// Why, as the carrier said.
        reason: String,
    },
}

/// Where to send a live call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallTarget {
    /// Replace the call's instructions with this TwiML / TeXML document.
    Markup {
        /// The XML document.
        xml: String,
    },
    /// Fetch new instructions from this URL.
    Url {
        /// The URL (`POST`).
        url: String,
    },
}

/// A recording of a live call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The carrier's recording id (Twilio `RE…`; Telnyx: the call id when recording is per call).
    pub recording_id: String,
    /// `in-progress`, `paused`, `stopped`, `completed`, as the carrier says.
    pub status: String,
}

/// A request to place an outbound call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundCall {
    /// The caller id: a number owned by the account.
    pub from: E164,
    /// The destination.
    pub to: E164,
    /// What to do when the callee answers.
    pub instructions: CallTarget,
    /// Where the carrier sends call-status callbacks.
    pub status_callback: Option<String>,
}

/// A call as the carrier reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// Twilio `CA…` call SID; Telnyx call control id / TeXML call sid.
    pub call_id: String,
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// The carrier's status: `queued`, `ringing`, `in-progress`, `completed`, `busy`, `failed`, `no-answer`, `canceled`.
    pub status: String,
    /// Duration in seconds, once the call is over.
    pub duration_secs: Option<u64>,
}

impl CallInfo {
    /// Whether the call is over (no live-call action can apply to it any more).
    #[must_use]
    pub fn is_over(&self) -> bool {
        matches!(
            self.status.as_str(),
            "completed" | "busy" | "failed" | "no-answer" | "canceled"
        )
    }
}
