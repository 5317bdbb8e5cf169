//! The seed file format and the emulated carrier state.
//!
//! One set of types serves three purposes: the seed (what a test or the demo file says exists at
//! start), the live state the handlers mutate, and the snapshot tests inspect. Fields a carrier
//! never returns (a call's `Url`, an order's poll count) live here too; the carrier renderers in
//! `twilio.rs` and `telnyx.rs` pick only what the real API shows.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EmulatorError;

/// Everything the emulator starts with. Deserialized from JSON (see the crate docs for the format)
/// or built in code; every field has a default, so `Seed::default()` is an empty world.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// The emulated Twilio side.
    pub twilio: TwilioSeed,
    /// The emulated Telnyx side.
    pub telnyx: TelnyxSeed,
}

impl Seed {
    /// Reads a seed from a JSON file.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::SeedRead`] when the file cannot be read, [`EmulatorError::SeedParse`] when
    /// it is not a valid seed document.
    pub fn from_json_file(path: &Path) -> Result<Seed, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::SeedRead {
            path: path.display().to_string(),
            source,
        })?;
        Seed::from_json_str(&text)
    }

    /// Parses a seed from JSON text.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::SeedParse`] when the text is not a valid seed document.
    pub fn from_json_str(text: &str) -> Result<Seed, EmulatorError> {
        serde_json::from_str(text).map_err(|e| EmulatorError::SeedParse(e.to_string()))
    }
}

/// The Twilio part of a seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioSeed {
    /// Top-level accounts; each may hold subaccounts.
    pub accounts: Vec<TwilioAccountSeed>,
    /// Numbers any account can find with AvailablePhoneNumbers and buy.
    pub available_numbers: Vec<AvailableNumber>,
}

/// A Twilio account in the seed, with its numbers and subaccounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioAccountSeed {
    /// `AC` + 32 hex.
    pub sid: String,
    /// The auth token: Basic-auth password and the HMAC key of webhook signatures.
    pub auth_token: String,
    /// Defaults to the SID.
    pub friendly_name: Option<String>,
    /// `active` (default), `suspended` or `closed`.
    pub status: Option<String>,
    /// API keys that authenticate as this account (and its subaccounts).
    pub api_keys: Vec<ApiKey>,
    /// Informational (`us1` by default).
    pub region: Option<String>,
    /// Requests per second before answering 429 (20429); `None` means no limit.
    pub rate_limit_per_second: Option<u32>,
    /// Numbers owned by this account.
    pub numbers: Vec<TwilioNumber>,
    /// Subaccounts; their numbers are theirs, and this account's credentials may act on them.
    pub subaccounts: Vec<TwilioAccountSeed>,
}

/// A Twilio API key (`SK…`) and its secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKey {
    /// `SK` + 32 hex.
    pub sid: String,
    /// The key's secret (Basic-auth password).
    pub secret: String,
}

/// The Telnyx part of a seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelnyxSeed {
    /// Telnyx accounts (each is one API key).
    pub accounts: Vec<TelnyxAccountSeed>,
    /// Numbers any account can find with `/available_phone_numbers` and order.
    pub available_numbers: Vec<AvailableNumber>,
    /// How a number order completes.
    pub number_orders: OrderBehaviour,
}

/// How long a Telnyx number order stays `pending`. An order becomes `success` when either limit
/// is reached; both zero (the default) means orders succeed at once.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OrderBehaviour {
    /// GET /number_orders/{id} calls that still answer `pending`.
    pub pending_polls: u32,
    /// Seconds after creation during which the order is `pending`.
    pub pending_seconds: u64,
}

/// A Telnyx account in the seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelnyxAccountSeed {
    /// The API v2 key (`KEY…`), sent as `Authorization: Bearer`.
    pub api_key: String,
    /// The account id used in TeXML paths (`/texml/Accounts/{account_sid}/…`).
    pub account_sid: String,
    /// Base64 of the 32-byte Ed25519 seed the emulator signs this account's webhooks with.
    pub signing_seed: String,
    /// Requests per second before answering 429 (10011); `None` means no limit.
    pub rate_limit_per_second: Option<u32>,
    /// `/balance` answer; `"300.00"` by default.
    pub balance: Option<String>,
    /// Numbers owned by this account.
    pub numbers: Vec<TelnyxNumber>,
    /// TeXML applications (their `id` is a connection id numbers point at).
    pub texml_applications: Vec<TexmlApplication>,
}

/// Voice/SMS/MMS/fax capability flags of a number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Capabilities {
    /// Can take and place calls.
    pub voice: bool,
    /// Can send and receive SMS.
    pub sms: bool,
    /// Can send and receive MMS.
    pub mms: bool,
    /// Can send and receive fax.
    pub fax: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            voice: true,
            sms: true,
            mms: false,
            fax: false,
        }
    }
}

/// The kind of number, as the carriers' searches distinguish them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    /// A geographic number.
    #[default]
    Local,
    /// A mobile number.
    Mobile,
    /// A toll-free number.
    TollFree,
}

/// A number in a carrier's inventory, not owned by anyone yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AvailableNumber {
    /// E.164.
    pub phone_number: String,
    /// ISO 3166-1 alpha-2; `US` by default.
    pub iso_country: String,
    /// Local, mobile or toll-free.
    #[serde(rename = "type")]
    pub number_type: NumberType,
    /// Region or state, e.g. `CA`.
    pub region: Option<String>,
    /// City.
    pub locality: Option<String>,
    /// Rate center.
    pub rate_center: Option<String>,
    /// LATA.
    pub lata: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Capabilities the number will have once bought.
    pub capabilities: Capabilities,
}

/// A Twilio IncomingPhoneNumber (`PN…`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioNumber {
    /// `PN` + 32 hex; generated when empty in a seed.
    pub sid: String,
    /// Owner; filled from the enclosing account in a seed.
    pub account_sid: String,
    /// E.164.
    pub phone_number: String,
    /// Defaults to the formatted number, like Twilio.
    pub friendly_name: String,
    /// Capability flags.
    pub capabilities: Capabilities,
    /// Where Twilio sends the inbound-call webhook.
    pub voice_url: Option<String>,
    /// `POST` (default) or `GET`.
    pub voice_method: String,
    /// Fallback webhook.
    pub voice_fallback_url: Option<String>,
    /// Fallback method.
    pub voice_fallback_method: String,
    /// Call status callback.
    pub status_callback: Option<String>,
    /// Status callback method.
    pub status_callback_method: String,
    /// A TwiML application handling voice instead of `voice_url`.
    pub voice_application_sid: Option<String>,
    /// A SIP trunk handling voice.
    pub trunk_sid: Option<String>,
    /// `twilio` or `hosted`.
    pub origin: String,
    /// `local`, `mobile` or `toll-free`.
    pub number_type: Option<String>,
    /// RFC 2822 creation date.
    pub date_created: String,
    /// RFC 2822 last update.
    pub date_updated: String,
}

/// A Telnyx phone number (`record_type: phone_number`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelnyxNumber {
    /// Numeric string id; generated when empty in a seed.
    pub id: String,
    /// Owner's API key is never stored here: this is the owning account's `account_sid`.
    pub account_sid: String,
    /// E.164.
    pub phone_number: String,
    /// `active` by default.
    pub status: String,
    /// Voice routing: a TeXML application, call-control app or SIP connection id.
    pub connection_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Customer reference.
    pub customer_reference: Option<String>,
    /// Billing group.
    pub billing_group_id: Option<String>,
    /// External PIN.
    pub external_pin: Option<String>,
    /// HD voice flag (settable by PATCH; not part of the detailed representation).
    pub hd_voice_enabled: bool,
    /// `local` (default), `toll_free`, `mobile` …
    pub phone_number_type: String,
    /// ISO 3166-1 alpha-2.
    pub country_iso_alpha2: String,
    /// ISO 8601.
    pub purchased_at: String,
    /// ISO 8601.
    pub created_at: String,
    /// ISO 8601.
    pub updated_at: String,
    /// `number_order` or `port_request`.
    pub source_type: String,
}

/// A Telnyx TeXML application.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TexmlApplication {
    /// Numeric string id (also the connection id numbers point at); generated when empty.
    pub id: String,
    /// Owner account's `account_sid`.
    pub account_sid: String,
    /// Name.
    pub friendly_name: String,
    /// Whether the application is active.
    pub active: bool,
    /// Where inbound calls' TeXML webhook goes.
    pub voice_url: String,
    /// Fallback URL.
    pub voice_fallback_url: Option<String>,
    /// `get` or `post` (lower-case, as Telnyx spells it).
    pub voice_method: String,
    /// Call status callback.
    pub status_callback: Option<String>,
    /// `get` or `post`.
    pub status_callback_method: String,
    /// Tags.
    pub tags: Vec<String>,
    /// ISO 8601.
    pub created_at: String,
    /// ISO 8601.
    pub updated_at: String,
}

/// A Telnyx number order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NumberOrder {
    /// UUID.
    pub id: String,
    /// Owner account's `account_sid`.
    pub account_sid: String,
    /// `pending`, `success` or `failure`.
    pub status: String,
    /// The ordered numbers, with per-number ids.
    pub phone_numbers: Vec<OrderedNumber>,
    /// Connection to put the numbers on.
    pub connection_id: Option<String>,
    /// Messaging profile.
    pub messaging_profile_id: Option<String>,
    /// Billing group.
    pub billing_group_id: Option<String>,
    /// Customer reference.
    pub customer_reference: Option<String>,
    /// GET polls so far.
    pub polls: u32,
    /// Unix seconds at creation.
    pub created_unix: i64,
    /// ISO 8601.
    pub created_at: String,
    /// ISO 8601.
    pub updated_at: String,
}

/// One number inside a [`NumberOrder`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OrderedNumber {
    /// UUID of the order line.
    pub id: String,
    /// E.164.
    pub phone_number: String,
    /// `pending`, `success` or `failure`.
    pub status: String,
}

/// Which carrier a call, request or webhook belongs to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    /// Twilio.
    Twilio,
    /// Telnyx.
    Telnyx,
}

/// A call on either carrier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Call {
    /// Twilio `CA…`; Telnyx `v3:…` (both the TeXML CallSid and the call_control_id).
    pub id: String,
    /// Carrier.
    pub carrier: Carrier,
    /// Twilio account SID or Telnyx `account_sid`.
    pub account_sid: String,
    /// Telnyx `call_session_id` (also used as `call_leg_id`); empty for Twilio.
    pub session_id: String,
    /// E.164.
    pub from: String,
    /// E.164.
    pub to: String,
    /// `inbound` or `outbound-api`.
    pub direction: String,
    /// `queued`, `ringing`, `in-progress`, `completed`, `canceled` …
    pub status: String,
    /// Forwarding number when the inbound call was forwarded.
    pub forwarded_from: Option<String>,
    /// Owned number involved (Twilio `PN…` or Telnyx number id).
    pub phone_number_id: Option<String>,
    /// TwiML/TeXML URL the call was created or redirected with.
    pub url: Option<String>,
    /// HTTP method for `url` (`POST` by default).
    pub url_method: String,
    /// Inline TwiML/TeXML the call was created or redirected with.
    pub twiml: Option<String>,
    /// Status callback URL.
    pub status_callback: Option<String>,
    /// Status callback method.
    pub status_callback_method: String,
    /// Telnyx connection (TeXML application) id.
    pub connection_id: Option<String>,
    /// A Telnyx call-control call (dialed with `POST /calls`): its webhooks are JSON events.
    #[serde(default)]
    pub call_control: bool,
    /// Where a transfer action sent the call, if any.
    pub transferred_to: Option<String>,
    /// Unix seconds.
    pub start_unix: i64,
    /// Unix seconds, once ended.
    pub end_unix: Option<i64>,
    /// RFC 2822.
    pub date_created: String,
    /// RFC 2822.
    pub date_updated: String,
}

/// A call recording on either carrier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    /// Twilio `RE…`; Telnyx a UUID.
    pub id: String,
    /// Carrier.
    pub carrier: Carrier,
    /// Call the recording belongs to.
    pub call_id: String,
    /// Account.
    pub account_sid: String,
    /// `in-progress`, `paused`, `stopped` …
    pub status: String,
    /// Telnyx `channels` / Twilio channel count as text.
    pub channels: String,
    /// Telnyx `format` (`wav`/`mp3`); empty for Twilio.
    pub format: String,
    /// RFC 2822.
    pub date_created: String,
    /// RFC 2822.
    pub date_updated: String,
}

/// One HTTP request the emulator answered (or dropped), for tests that check what clients send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// Sequence number from 1.
    pub seq: u64,
    /// Carrier the path belongs to (none for unknown paths).
    pub carrier: Option<Carrier>,
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Request `Content-Type`.
    pub content_type: Option<String>,
    /// Request body as text (carrier request bodies carry no credentials).
    pub body: String,
    /// Authenticated account (Twilio SID / Telnyx `account_sid`), when authentication succeeded.
    pub account: Option<String>,
    /// Answered status; `None` when the connection was dropped by a fault.
    pub status: Option<u16>,
}

/// One webhook the emulator sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookRecord {
    /// Carrier.
    pub carrier: Carrier,
    /// `voice` (inbound call) or `status` (status callback).
    pub kind: String,
    /// Call it concerns.
    pub call_id: String,
    /// Target URL as signed.
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Form parameters sent.
    pub params: Vec<(String, String)>,
    /// Response status, `None` when the request failed.
    pub status: Option<u16>,
    /// Response body, or the transport error text.
    pub response_body: String,
}

/// An installed fault, matched against requests before carrier handling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// HTTP method to match; `None` or `*` matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Path pattern; `*` matches any run of characters (including `/`).
    pub path: String,
    /// Answer this status with the carrier's error body.
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long first (then apply `status`/`drop_connection`, or answer normally).
    #[serde(default)]
    pub delay_ms: u64,
    /// Close the connection without answering.
    #[serde(default)]
    pub drop_connection: bool,
    /// Apply to the next N matching requests only; `None` means until deleted.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What the emulator holds at one moment, as tests and `GET /_emulator/state` see it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateSnapshot {
    /// Twilio accounts (including subaccounts).
    pub twilio_accounts: Vec<TwilioAccount>,
    /// Twilio owned numbers.
    pub twilio_numbers: Vec<TwilioNumber>,
    /// Twilio inventory still for sale.
    pub twilio_available: Vec<AvailableNumber>,
    /// Telnyx accounts.
    pub telnyx_accounts: Vec<TelnyxAccount>,
    /// Telnyx owned numbers.
    pub telnyx_numbers: Vec<TelnyxNumber>,
    /// Telnyx inventory still for sale.
    pub telnyx_available: Vec<AvailableNumber>,
    /// TeXML applications.
    pub texml_applications: Vec<TexmlApplication>,
    /// Telnyx number orders.
    pub number_orders: Vec<NumberOrder>,
    /// Calls on both carriers.
    pub calls: Vec<Call>,
    /// Recordings on both carriers.
    pub recordings: Vec<Recording>,
    /// Requests answered, oldest first.
    pub requests: Vec<RequestRecord>,
    /// Webhooks sent, oldest first.
    pub webhooks: Vec<WebhookRecord>,
    /// Installed faults.
    pub faults: Vec<Fault>,
}

/// A Twilio account as held in state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TwilioAccount {
    /// `AC…`.
    pub sid: String,
    /// Auth token.
    pub auth_token: String,
    /// API keys.
    pub api_keys: Vec<ApiKey>,
    /// Name.
    pub friendly_name: String,
    /// `active`, `suspended`, `closed`.
    pub status: String,
    /// Parent account for subaccounts.
    pub owner_account_sid: Option<String>,
    /// Region.
    pub region: String,
    /// Rate limit.
    pub rate_limit_per_second: Option<u32>,
    /// RFC 2822.
    pub date_created: String,
    /// RFC 2822.
    pub date_updated: String,
}

/// A Telnyx account as held in state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TelnyxAccount {
    /// API key.
    pub api_key: String,
    /// TeXML account id.
    pub account_sid: String,
    /// Base64 Ed25519 seed.
    pub signing_seed: String,
    /// Base64 of the raw 32-byte Ed25519 public key: what the gateway verifies webhooks with.
    pub public_key: String,
    /// Rate limit.
    pub rate_limit_per_second: Option<u32>,
    /// Balance shown by `/balance`.
    pub balance: String,
}
