//! The Twilio client: REST API 2010-04-01, form-encoded requests, JSON answers (`.json` paths),
//! HTTP Basic authentication with the Account SID and Auth Token or an API Key SID and secret.

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use telephony_vault::SecretString;
use url::Url;

use crate::Carrier;
use crate::error::CarrierError;
use crate::http::{
    Answer, Attempts, Idempotency, RetryPolicy, Timeouts, Transport, check_base_url, classify,
    is_path_id, path_id, protocol_detail, redacted_url,
};
use crate::types::{
    AccountInfo, AvailableNumber, AvailableQuery, CallInfo, CallTarget, Capabilities, E164,
    InboundConfig, NumberPage, NumberType, OutboundCall, OwnedNumber, PageCursor, Provider,
    Purchase, PurchaseRequest, Recording, TwilioVoiceConfig,
};

/// The API version prefix of every path.
const API: &str = "2010-04-01";

/// Twilio's "Call is not in-progress" / "Invalid call state": the answer to an update of a call
/// that is already over.
const CALL_NOT_IN_PROGRESS: &str = "21220";

/// Twilio error codes that mean "this number cannot do voice" when placing a call from it.
/// 21210: the `From` number is not a verified or voice-capable caller id of the account;
/// 21212: an invalid caller phone number.
const NOT_VOICE_CAPABLE_CODES: [&str; 2] = ["21210", "21212"];

/// How to reach Twilio.
///
/// Its `Debug` shows `base_url` without user info, query or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// `None` for the real Twilio, whose host is derived from `region` and `edge`; `Some` for an
    /// emulator or a proxy, used as is (region and edge are then ignored).
    pub base_url: Option<Url>,
    /// The processing region: `us1` (the default), `ie1`, `au1`, `jp1`…
    pub region: String,
    /// The edge location the request enters Twilio by: `ashburn`, `dublin`, `sydney`, `tokyo`…
    /// `None` picks the region's own edge (none at all for `us1`).
    pub edge: Option<String>,
    /// Connect and request timeouts.
    pub timeouts: Timeouts,
    /// Retries of idempotent requests.
    pub retry: RetryPolicy,
    /// Numbers per page when listing an account's numbers (Twilio accepts 1 to 1000).
    pub page_size: u32,
    /// The Pricing API's base (monthly cost of numbers for sale): `None` for the real
    /// `https://pricing.twilio.com`, `Some` for an emulator or a proxy (same rules as
    /// `base_url`).
    pub pricing_base_url: Option<Url>,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            region: "us1".to_owned(),
            edge: None,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            page_size: 50,
            pricing_base_url: None,
        }
    }
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url.as_ref().map(redacted_url))
            .field("region", &self.region)
            .field("edge", &self.edge)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .field(
                "pricing_base_url",
                &self.pricing_base_url.as_ref().map(redacted_url),
            )
            .finish()
    }
}

impl TwilioConfig {
    /// The base URL requests go to.
    ///
    /// With the default base, the host follows Twilio's regional scheme: `api.twilio.com` for
    /// `us1` without an edge, otherwise `api.{edge}.{region}.twilio.com`. The older
    /// `api.{region}.twilio.com` form stopped working in April 2026, so a region other than
    /// `us1` without an edge gets the region's home edge (`ie1` → `dublin`, `au1` → `sydney`,
    /// `jp1` → `tokyo`).
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] for a region or edge that is not a plain DNS label, a
    /// non-`us1` region without a known home edge, or a custom base that is not http(s), carries
    /// user info (`https://user:pass@host`), a query or a fragment, or uses plain `http` for a
    /// host that is not a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn api_base(&self) -> Result<Url, CarrierError> {
        if let Some(base) = &self.base_url {
            check_base_url(base, "twilio")?;
            return Ok(base.clone());
        }
        let region = self.region.trim().to_ascii_lowercase();
        let region = if region.is_empty() {
            "us1".to_owned()
        } else {
            region
        };
        check_label(&region, "region")?;
        let edge = match &self.edge {
            Some(edge) => {
                let edge = edge.trim().to_ascii_lowercase();
                check_label(&edge, "edge")?;
                Some(edge)
            }
            None => home_edge(&region)?.map(str::to_owned),
        };
        let host = match edge {
            None => "api.twilio.com".to_owned(),
            Some(edge) => format!("api.{edge}.{region}.twilio.com"),
        };
        Url::parse(&format!("https://{host}"))
            .map_err(|e| CarrierError::InvalidConfig(format!("twilio host: {e}")))
    }
}

/// The edge a region's API is reached through when none is configured.
fn home_edge(region: &str) -> Result<Option<&'static str>, CarrierError> {
    match region {
        "us1" => Ok(None),
        "ie1" => Ok(Some("dublin")),
        "au1" => Ok(Some("sydney")),
        "jp1" => Ok(Some("tokyo")),
        other => Err(CarrierError::InvalidConfig(format!(
            "twilio region {other} needs an explicit edge"
        ))),
    }
}

/// Region and edge go into a host name: only lowercase letters, digits and inner dashes.
fn check_label(label: &str, what: &str) -> Result<(), CarrierError> {
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CarrierError::InvalidConfig(format!(
            "twilio {what} must be a dns label"
        )))
    }
}

/// How REST requests authenticate.
#[derive(Debug, Clone)]
pub enum TwilioAuth {
    /// The account's Auth Token (also the key of webhook signatures).
    AuthToken(SecretString),
    /// An API key: its `SK…` SID and secret. The Auth Token, still needed to check webhook
    /// signatures, is kept elsewhere and never sent by this client.
    ApiKey {
        /// The `SK…` SID.
        key_sid: String,
        /// The key's secret.
        secret: SecretString,
    },
}

/// One Twilio account's REST credentials.
#[derive(Debug, Clone)]
pub struct TwilioCredentials {
    /// The `AC…` Account SID: every path is under it.
    pub account_sid: String,
    /// The Auth Token or API key.
    pub auth: TwilioAuth,
}

/// A Twilio account reached with one set of credentials.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    transport: Transport,
    base: Url,
    pricing_base: Option<Url>,
    credentials: TwilioCredentials,
    page_size: u32,
}

impl TwilioClient {
    /// A client with its own HTTP connection pool. Prefer [`crate::CarrierClients`], which
    /// shares one pool among all organizations.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] when the configuration cannot be used.
    pub fn new(
        config: &TwilioConfig,
        credentials: TwilioCredentials,
    ) -> Result<Self, CarrierError> {
        let client = crate::http::build_client(config.timeouts.connect)?;
        Self::with_http(client, config, credentials)
    }

    pub(crate) fn with_http(
        client: reqwest::Client,
        config: &TwilioConfig,
        credentials: TwilioCredentials,
    ) -> Result<Self, CarrierError> {
        let base = config.api_base()?;
        Ok(Self::from_parts(client, base, config, credentials))
    }

    /// A client over an already checked base URL.
    /// The API base URL this client sends to (derived from the region and edge, or the
    /// configured custom base).
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub(crate) fn from_parts(
        client: reqwest::Client,
        base: Url,
        config: &TwilioConfig,
        credentials: TwilioCredentials,
    ) -> Self {
        Self {
            transport: Transport {
                client,
                timeouts: config.timeouts,
                retry: config.retry,
            },
            base,
            pricing_base: config.pricing_base_url.clone(),
            credentials,
            page_size: config.page_size.clamp(1, 1000),
        }
    }

    /// Creates a subaccount of this account (managed numbers live in one per organization) and
    /// returns it with its Auth Token. Sent once: a timeout may or may not have created it.
    ///
    /// # Errors
    /// Any [`CarrierError`]; [`CarrierError::Rejected`] when these credentials may not create
    /// subaccounts (they belong to a subaccount themselves).
    pub async fn create_subaccount(
        &self,
        friendly_name: &str,
    ) -> Result<(AccountInfo, SecretString), CarrierError> {
        let url = self.url(&[API, "Accounts.json"])?;
        let form = [("FriendlyName", friendly_name)];
        let answer = self
            .send(
                Idempotency::SendOnce,
                reqwest::Method::POST,
                url,
                &form,
                "twilio account",
            )
            .await?;
        let account: WireAccount = answer.json().map_err(|error| {
            CarrierError::Protocol(format!(
                "{}: twilio accepted the subaccount {friendly_name:?}, which may have been created",
                protocol_detail(error)
            ))
        })?;
        let token = account.auth_token.clone().ok_or_else(|| {
            CarrierError::Protocol(format!(
                "twilio created the subaccount {} without an auth token",
                account.sid
            ))
        })?;
        Ok((account.into_info(), token))
    }

    /// The active subaccount of this account named `friendly_name`, with its Auth Token, if
    /// there is one: how a creation whose answer was lost (or never recorded) is found again
    /// instead of creating a second subaccount. Read-only.
    ///
    /// # Errors
    /// Any [`CarrierError`].
    pub async fn find_subaccount(
        &self,
        friendly_name: &str,
    ) -> Result<Option<(AccountInfo, SecretString)>, CarrierError> {
        let mut url = self.url(&[API, "Accounts.json"])?;
        url.query_pairs_mut()
            .append_pair("FriendlyName", friendly_name)
            .append_pair("Status", "active");
        let list: WireAccountList = self.get(url, "twilio accounts").await?;
        let own = self.credentials.account_sid.as_str();
        Ok(list
            .accounts
            .into_iter()
            .filter(|a| a.sid != own && a.friendly_name.as_deref() == Some(friendly_name))
            .find_map(|mut account| {
                let token = account.auth_token.take()?;
                Some((account.into_info(), token))
            }))
    }

    /// The monthly price of each type of number in `country` (ISO 3166-1 alpha-2), from the
    /// Pricing API (`GET /v1/PhoneNumbers/Countries/{IsoCountry}`): pairs of Twilio's number
    /// type (`local`, `mobile`, `toll free`, ...) and the current price, with the currency.
    /// Read-only.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] for a bad pricing base; any [`CarrierError`].
    pub async fn number_prices(
        &self,
        country: &str,
    ) -> Result<(Vec<(String, String)>, Option<String>), CarrierError> {
        let country = country.to_ascii_uppercase();
        path_id(&country, "twilio number prices of country")?;
        let mut url = match &self.pricing_base {
            Some(base) => {
                check_base_url(base, "twilio pricing")?;
                base.clone()
            }
            None => Url::parse("https://pricing.twilio.com")
                .map_err(|e| CarrierError::InvalidConfig(format!("twilio pricing host: {e}")))?,
        };
        url.path_segments_mut()
            .map_err(|()| CarrierError::InvalidConfig("twilio pricing base url".to_owned()))?
            .pop_if_empty()
            .extend(["v1", "PhoneNumbers", "Countries", &country]);
        let prices: WireNumberPrices = self
            .get(url, &format!("twilio number prices in {country}"))
            .await?;
        let list = prices
            .phone_number_prices
            .into_iter()
            .filter_map(|p| {
                let price = p.current_price.or(p.base_price)?;
                let price = match price {
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::String(s) if s.parse::<f64>().is_ok() => s,
                    _ => return None,
                };
                Some((p.number_type?.to_ascii_lowercase(), price))
            })
            .collect();
        Ok((list, prices.price_unit.map(|u| u.to_ascii_uppercase())))
    }

    /// The URL of `segments` under the base, each segment percent-encoded, so an id taken from
    /// a request can never add path segments or a query.
    fn url(&self, segments: &[&str]) -> Result<Url, CarrierError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| CarrierError::InvalidConfig("twilio base url".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The account SID, refused as [`CarrierError::InvalidCredentials`] (before anything is
    /// sent) when it cannot be one path segment: `..` would address another resource.
    fn account_sid(&self) -> Result<&str, CarrierError> {
        let sid = self.credentials.account_sid.as_str();
        if is_path_id(sid) {
            Ok(sid)
        } else {
            Err(CarrierError::InvalidCredentials)
        }
    }

    /// The URL of a resource under this account: `/2010-04-01/Accounts/{sid}/{segments…}`.
    fn account_url(&self, segments: &[&str]) -> Result<Url, CarrierError> {
        let mut all = vec![API, "Accounts", self.account_sid()?];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials.auth {
            TwilioAuth::AuthToken(token) => {
                request.basic_auth(&self.credentials.account_sid, Some(token.expose()))
            }
            TwilioAuth::ApiKey { key_sid, secret } => {
                request.basic_auth(key_sid, Some(secret.expose()))
            }
        }
    }

    async fn send(
        &self,
        idempotency: Idempotency,
        method: reqwest::Method,
        url: Url,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<Answer, CarrierError> {
        self.send_reporting(idempotency, method, url, form, what)
            .await
            .0
    }

    /// As [`TwilioClient::send`], with what happened to the attempts.
    async fn send_reporting(
        &self,
        idempotency: Idempotency,
        method: reqwest::Method,
        url: Url,
        form: &[(&str, &str)],
        what: &str,
    ) -> (Result<Answer, CarrierError>, Attempts) {
        let build = || {
            let request =
                self.authorize(self.transport.client.request(method.clone(), url.clone()));
            if method == reqwest::Method::POST {
                request.form(form)
            } else {
                request
            }
        };
        let map_error = |status: StatusCode, headers: &HeaderMap, body: &[u8]| {
            twilio_error(status, headers, body, what)
        };
        self.transport
            .send_reporting(idempotency, &build, &map_error)
            .await
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        what: &str,
    ) -> Result<T, CarrierError> {
        self.send(
            Idempotency::Idempotent,
            reqwest::Method::GET,
            url,
            &[],
            what,
        )
        .await?
        .json()
    }

    async fn fetch_number_by_sid(&self, sid: &str) -> Result<WireNumber, CarrierError> {
        let sid = path_id(sid, "twilio phone number")?;
        let url = self.account_url(&["IncomingPhoneNumbers", &format!("{sid}.json")])?;
        self.get(url, &format!("twilio phone number {sid}")).await
    }

    /// The URL a `next_page_uri` cursor points to. The cursor must be a path of this account's
    /// number listing: anything else is refused, so a forged cursor cannot send the credentials
    /// to another host or read another resource.
    fn cursor_url(&self, cursor: &PageCursor) -> Result<Url, CarrierError> {
        let prefix = format!(
            "/{API}/Accounts/{}/IncomingPhoneNumbers.json?",
            self.account_sid()?
        );
        if !cursor.0.starts_with(&prefix) || cursor.0.contains('#') {
            return Err(CarrierError::Rejected {
                status: 400,
                code: "invalid_cursor".to_owned(),
                message: "the page cursor is not a page of this account's numbers".to_owned(),
            });
        }
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{}", cursor.0))
            .map_err(|_| CarrierError::Protocol("twilio gave an unusable next_page_uri".to_owned()))
    }
}

/// Maps a Twilio error answer: `{"code", "message", "more_info", "status"}`.
fn twilio_error(status: StatusCode, headers: &HeaderMap, body: &[u8], what: &str) -> CarrierError {
    let parsed: Option<WireError> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(e) => (
            match e.code {
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::String(s)) => s,
                _ => String::new(),
            },
            e.message.unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    // 20003 is Twilio's "Authenticate": a 403 with it is a credential refusal, any other 403
    // is a permission the account lacks.
    let auth_failure = code == "20003";
    classify(status, headers, code, message, what, auth_failure)
}

#[derive(Deserialize)]
struct WireError {
    code: Option<serde_json::Value>,
    message: Option<String>,
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::new))
}

#[derive(Deserialize)]
struct WireAccount {
    sid: String,
    friendly_name: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "secret_opt")]
    auth_token: Option<SecretString>,
}

impl WireAccount {
    fn into_info(self) -> AccountInfo {
        AccountInfo {
            account_id: self.sid,
            friendly_name: non_empty(self.friendly_name),
            active: self.status.as_deref() == Some("active"),
        }
    }
}

#[derive(Deserialize, Default)]
struct WireCapabilities {
    voice: Option<bool>,
    #[serde(alias = "SMS")]
    sms: Option<bool>,
    #[serde(alias = "MMS")]
    mms: Option<bool>,
    fax: Option<bool>,
}

impl WireCapabilities {
    fn into_capabilities(self) -> Capabilities {
        Capabilities {
            voice: self.voice.unwrap_or(false),
            sms: self.sms.unwrap_or(false),
            mms: self.mms.unwrap_or(false),
            fax: self.fax.unwrap_or(false),
        }
    }
}

#[derive(Deserialize)]
struct WireNumber {
    sid: String,
    phone_number: String,
    friendly_name: Option<String>,
    capabilities: Option<WireCapabilities>,
    voice_url: Option<String>,
    voice_method: Option<String>,
    voice_fallback_url: Option<String>,
    voice_fallback_method: Option<String>,
    status_callback: Option<String>,
    status_callback_method: Option<String>,
    voice_application_sid: Option<String>,
    trunk_sid: Option<String>,
}

/// Twilio shows an unset field as `null` in some places and `""` in others: both are "empty".
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl WireNumber {
    fn voice_config(&self) -> TwilioVoiceConfig {
        TwilioVoiceConfig {
            voice_url: non_empty(self.voice_url.clone()),
            voice_method: non_empty(self.voice_method.clone()),
            voice_fallback_url: non_empty(self.voice_fallback_url.clone()),
            voice_fallback_method: non_empty(self.voice_fallback_method.clone()),
            status_callback: non_empty(self.status_callback.clone()),
            status_callback_method: non_empty(self.status_callback_method.clone()),
            voice_application_sid: non_empty(self.voice_application_sid.clone()),
            trunk_sid: non_empty(self.trunk_sid.clone()),
        }
    }

    fn into_owned(self) -> Result<OwnedNumber, CarrierError> {
        let e164 = E164::parse(&self.phone_number).map_err(|_| {
            CarrierError::Protocol(format!("twilio number {} is not e.164", self.sid))
        })?;
        let inbound = InboundConfig::Twilio(self.voice_config());
        Ok(OwnedNumber {
            carrier_id: self.sid,
            e164,
            friendly_name: non_empty(self.friendly_name),
            capabilities: self.capabilities.unwrap_or_default().into_capabilities(),
            inbound,
        })
    }
}

#[derive(Deserialize)]
struct WireNumberList {
    #[serde(default)]
    incoming_phone_numbers: Vec<WireNumber>,
    next_page_uri: Option<String>,
}

#[derive(Deserialize)]
struct WireAvailable {
    phone_number: String,
    locality: Option<String>,
    region: Option<String>,
    iso_country: Option<String>,
    capabilities: Option<WireCapabilities>,
}

#[derive(Deserialize)]
struct WireNumberPrices {
    #[serde(default)]
    phone_number_prices: Vec<WireNumberPrice>,
    price_unit: Option<String>,
}

/// Prices are numbers in the Pricing API's description and strings in some of its answers.
#[derive(Deserialize)]
struct WireNumberPrice {
    number_type: Option<String>,
    base_price: Option<serde_json::Value>,
    current_price: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireAccountList {
    #[serde(default)]
    accounts: Vec<WireAccount>,
}

#[derive(Deserialize)]
struct WireAvailableList {
    #[serde(default)]
    available_phone_numbers: Vec<WireAvailable>,
}

#[derive(Deserialize)]
struct WireCall {
    sid: String,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    duration: Option<serde_json::Value>,
}

impl WireCall {
    fn into_info(self) -> CallInfo {
        // The spec types `duration` as a string; accept a number too rather than fail a read.
        let duration_secs = match self.duration {
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        CallInfo {
            call_id: self.sid,
            from: self.from.unwrap_or_default(),
            to: self.to.unwrap_or_default(),
            status: self.status.unwrap_or_default(),
            duration_secs,
        }
    }
}

#[derive(Deserialize)]
struct WireRecording {
    sid: String,
    status: Option<String>,
}

/// The form fields that set a number's whole voice configuration. Empty URL and SID fields
/// clear them at Twilio; a method left `None` is not sent, since Twilio has no "empty" method
/// (it defaults to `POST`).
fn voice_form(config: &TwilioVoiceConfig) -> Vec<(&'static str, String)> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut form = vec![
        ("VoiceUrl", text(&config.voice_url)),
        ("VoiceFallbackUrl", text(&config.voice_fallback_url)),
        ("StatusCallback", text(&config.status_callback)),
        ("VoiceApplicationSid", text(&config.voice_application_sid)),
        ("TrunkSid", text(&config.trunk_sid)),
    ];
    for (name, value) in [
        ("VoiceMethod", &config.voice_method),
        ("VoiceFallbackMethod", &config.voice_fallback_method),
        ("StatusCallbackMethod", &config.status_callback_method),
    ] {
        if let Some(method) = value {
            form.push((name, method.clone()));
        }
    }
    form
}

/// What a 2xx answer to a purchase means. Twilio bought the number, so the answer never becomes
/// an error that looks retryable (a caller could buy again, or lose track of a billed number):
/// an answer that does not decode as a number but names its SID is [`Purchase::Pending`] on that
/// SID, which [`Carrier::purchase_status`] reads again; one without a usable SID is a
/// [`CarrierError::Protocol`] error that says the number may have been bought.
fn purchased(answer: &Answer, e164: &E164) -> Result<Purchase, CarrierError> {
    #[derive(Deserialize)]
    struct WireSid {
        sid: String,
    }
    let may_have_been_bought = |detail: &str| {
        CarrierError::Protocol(format!(
            "{detail}: twilio accepted the purchase of {e164}, which may have been bought; \
             check the account's numbers before buying again"
        ))
    };
    let pending = |detail: &str| {
        let sid = answer.json::<WireSid>().ok().map(|n| n.sid);
        match sid {
            Some(sid) if is_path_id(&sid) => {
                tracing::warn!(%sid, detail, "twilio bought a number but its answer could not be read: pending");
                Ok(Purchase::Pending { order_id: sid })
            }
            _ => Err(may_have_been_bought(detail)),
        }
    };
    match answer.json::<WireNumber>() {
        Ok(number) => number
            .into_owned()
            .map(|number| Purchase::Completed { number })
            .or_else(|error| pending(&protocol_detail(error))),
        Err(error) => pending(&protocol_detail(error)),
    }
}

fn twilio_config(config: &InboundConfig) -> Result<&TwilioVoiceConfig, CarrierError> {
    match config {
        InboundConfig::Twilio(config) => Ok(config),
        InboundConfig::Telnyx(_) => Err(CarrierError::Unsupported(
            "a telnyx inbound configuration on a twilio number",
        )),
    }
}

fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[async_trait]
impl Carrier for TwilioClient {
    fn provider(&self) -> Provider {
        Provider::Twilio
    }

    async fn verify_credentials(&self) -> Result<AccountInfo, CarrierError> {
        let sid = self.account_sid()?;
        let url = self.url(&[API, "Accounts", &format!("{sid}.json")])?;
        let account: WireAccount = self.get(url, &format!("twilio account {sid}")).await?;
        Ok(account.into_info())
    }

    async fn list_numbers(&self, page: Option<&PageCursor>) -> Result<NumberPage, CarrierError> {
        let url = match page {
            Some(cursor) => self.cursor_url(cursor)?,
            None => {
                let mut url = self.account_url(&["IncomingPhoneNumbers.json"])?;
                url.query_pairs_mut()
                    .append_pair("PageSize", &self.page_size.to_string());
                url
            }
        };
        let list: WireNumberList = self.get(url, "twilio phone number page").await?;
        let numbers = list
            .incoming_phone_numbers
            .into_iter()
            .map(WireNumber::into_owned)
            .collect::<Result<Vec<_>, _>>()?;
        let next = non_empty(list.next_page_uri).map(PageCursor);
        Ok(NumberPage { numbers, next })
    }

    async fn fetch_number(&self, e164: &E164) -> Result<OwnedNumber, CarrierError> {
        let mut url = self.account_url(&["IncomingPhoneNumbers.json"])?;
        url.query_pairs_mut()
            .append_pair("PhoneNumber", e164.as_str());
        let what = format!("twilio phone number {e164}");
        let list: WireNumberList = self.get(url, &what).await?;
        list.incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number == e164.as_str())
            .ok_or(CarrierError::NotFound { what })?
            .into_owned()
    }

    async fn replace_inbound_config(
        &self,
        carrier_id: &str,
        config: &InboundConfig,
    ) -> Result<InboundConfig, CarrierError> {
        let carrier_id = path_id(carrier_id, "twilio phone number")?;
        let wanted = twilio_config(config)?;
        let previous = self.fetch_number_by_sid(carrier_id).await?.voice_config();
        let url = self.account_url(&["IncomingPhoneNumbers", &format!("{carrier_id}.json")])?;
        let form = voice_form(wanted);
        // Setting absolute values: repeating the update changes nothing more, so it is retried.
        self.send(
            Idempotency::Idempotent,
            reqwest::Method::POST,
            url,
            &pairs(&form),
            &format!("twilio phone number {carrier_id}"),
        )
        .await?;
        Ok(InboundConfig::Twilio(previous))
    }

    async fn search_available(
        &self,
        query: &AvailableQuery,
    ) -> Result<Vec<AvailableNumber>, CarrierError> {
        let kind = match query.number_type {
            NumberType::Local => "Local.json",
            NumberType::Mobile => "Mobile.json",
            NumberType::TollFree => "TollFree.json",
        };
        let country = query.country.to_ascii_uppercase();
        path_id(&country, "twilio available numbers in country")?;
        let mut url = self.account_url(&["AvailablePhoneNumbers", &country, kind])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("VoiceEnabled", "true");
            q.append_pair("PageSize", &query.limit.clamp(1, 1000).to_string());
            if let Some(area_code) = &query.area_code {
                q.append_pair("AreaCode", area_code);
            }
        }
        let list: WireAvailableList = self
            .get(url, &format!("twilio available numbers in {country}"))
            .await?;
        // The search gives no cost: the Pricing API does, per type of number. Numbers are
        // still listed (without a cost) when it cannot be read.
        let wanted = match query.number_type {
            NumberType::Local => "local",
            NumberType::Mobile => "mobile",
            NumberType::TollFree => "toll free",
        };
        let (monthly_cost, currency) = match self.number_prices(&country).await {
            Ok((prices, currency)) => (
                prices
                    .into_iter()
                    .find(|(kind, _)| kind == wanted || kind.replace('_', " ") == wanted)
                    .map(|(_, price)| price),
                currency,
            ),
            Err(error) => {
                tracing::debug!(%error, "twilio number prices unavailable");
                (None, None)
            }
        };
        let currency = monthly_cost.as_ref().and(currency);
        Ok(list
            .available_phone_numbers
            .into_iter()
            // An entry that is not E.164 cannot be bought through this API: skip it.
            .filter_map(|n| {
                Some(AvailableNumber {
                    e164: E164::parse(&n.phone_number).ok()?,
                    capabilities: n.capabilities.unwrap_or_default().into_capabilities(),
                    locality: non_empty(n.locality).or(non_empty(n.region)),
                    country: n.iso_country.unwrap_or_else(|| country.clone()),
                    monthly_cost: monthly_cost.clone(),
                    currency: currency.clone(),
                })
            })
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn buy_number(&self, request: &PurchaseRequest) -> Result<Purchase, CarrierError> {
        let wanted = twilio_config(&request.inbound)?;
        let url = self.account_url(&["IncomingPhoneNumbers.json"])?;
        let mut form = vec![("PhoneNumber", request.e164.as_str().to_owned())];
        form.extend(
            voice_form(wanted)
                .into_iter()
                .filter(|(_, v)| !v.is_empty()),
        );
        let answer = self
            .send(
                Idempotency::SendOnce,
                reqwest::Method::POST,
                url,
                &pairs(&form),
                &format!("twilio available number {}", request.e164),
            )
            .await?;
        purchased(&answer, &request.e164)
    }

    async fn purchase_status(&self, order_id: &str) -> Result<Purchase, CarrierError> {
        // Twilio completes a purchase in the request itself; its "order" is the number's SID.
        let number = self.fetch_number_by_sid(order_id).await?;
        Ok(Purchase::Completed {
            number: number.into_owned()?,
        })
    }

    async fn release_number(&self, carrier_id: &str) -> Result<(), CarrierError> {
        let carrier_id = path_id(carrier_id, "twilio phone number")?;
        let url = self.account_url(&["IncomingPhoneNumbers", &format!("{carrier_id}.json")])?;
        // Sent once: a retried delete that had succeeded would answer 404 and hide the success.
        self.send(
            Idempotency::SendOnce,
            reqwest::Method::DELETE,
            url,
            &[],
            &format!("twilio phone number {carrier_id}"),
        )
        .await?;
        Ok(())
    }

    async fn place_call(&self, call: &OutboundCall) -> Result<CallInfo, CarrierError> {
        let url = self.account_url(&["Calls.json"])?;
        let mut form = vec![("To", call.to.as_str()), ("From", call.from.as_str())];
        match &call.instructions {
            CallTarget::Markup { xml } => form.push(("Twiml", xml)),
            CallTarget::Url { url } => {
                form.push(("Url", url));
                form.push(("Method", "POST"));
            }
        }
        if let Some(callback) = &call.status_callback {
            form.push(("StatusCallback", callback));
        }
        let answer = self
            .send(
                Idempotency::SendOnce,
                reqwest::Method::POST,
                url,
                &form,
                "twilio call",
            )
            .await
            .map_err(|e| match e {
                CarrierError::Rejected { ref code, .. }
                    if NOT_VOICE_CAPABLE_CODES.contains(&code.as_str()) =>
                {
                    CarrierError::NotVoiceCapable {
                        number: call.from.to_string(),
                    }
                }
                other => other,
            })?;
        // The call exists once Twilio answered 2xx: an answer this client cannot use is still
        // not retryable, and says so.
        let detail = match answer.json::<WireCall>() {
            Ok(placed) if is_path_id(&placed.sid) => return Ok(placed.into_info()),
            Ok(_) => format!(
                "twilio answered {} without a usable call sid",
                answer.status
            ),
            Err(error) => protocol_detail(error),
        };
        Err(CarrierError::Protocol(format!(
            "{detail}: twilio accepted the call from {} to {}, which may have been placed",
            call.from, call.to
        )))
    }

    async fn fetch_call(&self, call_id: &str) -> Result<CallInfo, CarrierError> {
        let call_id = path_id(call_id, "twilio call")?;
        let url = self.account_url(&["Calls", &format!("{call_id}.json")])?;
        let call: WireCall = self.get(url, &format!("twilio call {call_id}")).await?;
        Ok(call.into_info())
    }

    async fn redirect_call(&self, call_id: &str, target: &CallTarget) -> Result<(), CarrierError> {
        let call_id = path_id(call_id, "twilio call")?;
        let url = self.account_url(&["Calls", &format!("{call_id}.json")])?;
        let form: Vec<(&str, &str)> = match target {
            CallTarget::Markup { xml } => vec![("Twiml", xml)],
            CallTarget::Url { url } => vec![("Url", url), ("Method", "POST")],
        };
        // Not retried: a repeated redirect restarts the new instructions from the top.
        self.send(
            Idempotency::SendOnce,
            reqwest::Method::POST,
            url,
            &form,
            &format!("twilio call {call_id}"),
        )
        .await?;
        Ok(())
    }

    /// `Status=completed` ends the call whatever its state (`canceled` only ends unanswered
    /// ones), and it is retried. Twilio refuses to update a call that is already over (code
    /// 21220); when that refusal answers a retry whose earlier attempt may have been carried out
    /// (it timed out, its connection dropped, or it got a 5xx), the call most likely ended by
    /// that attempt, and in any case it is over, as asked: the hang-up succeeds. On a first
    /// attempt the refusal stays [`CarrierError::Rejected`].
    async fn hangup_call(&self, call_id: &str) -> Result<(), CarrierError> {
        let call_id = path_id(call_id, "twilio call")?;
        let url = self.account_url(&["Calls", &format!("{call_id}.json")])?;
        let (result, attempts) = self
            .send_reporting(
                Idempotency::Idempotent,
                reqwest::Method::POST,
                url,
                &[("Status", "completed")],
                &format!("twilio call {call_id}"),
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(CarrierError::Rejected { ref code, .. })
                if code == CALL_NOT_IN_PROGRESS && attempts.earlier_fate_unknown =>
            {
                tracing::debug!(
                    attempts = attempts.count,
                    "twilio call already over on a retried hang-up: taken as done"
                );
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn start_recording(&self, call_id: &str) -> Result<Recording, CarrierError> {
        let call_id = path_id(call_id, "twilio call")?;
        let url = self.account_url(&["Calls", call_id, "Recordings.json"])?;
        let answer = self
            .send(
                Idempotency::SendOnce,
                reqwest::Method::POST,
                url,
                &[],
                &format!("twilio call {call_id}"),
            )
            .await?;
        let recording: WireRecording = answer.json().map_err(|e| match e {
            CarrierError::Protocol(detail) => CarrierError::Protocol(format!(
                "{detail}: twilio accepted the recording of call {call_id}, which may have started"
            )),
            other => other,
        })?;
        Ok(Recording {
            recording_id: recording.sid,
            status: recording.status.unwrap_or_else(|| "in-progress".to_owned()),
        })
    }

    async fn stop_recording(&self, call_id: &str, recording_id: &str) -> Result<(), CarrierError> {
        let call_id = path_id(call_id, "twilio call")?;
        let recording_id = path_id(recording_id, "twilio recording")?;
        let url = self.account_url(&[
            "Calls",
            call_id,
            "Recordings",
            &format!("{recording_id}.json"),
        ])?;
        self.send(
            Idempotency::Idempotent,
            reqwest::Method::POST,
            url,
            &[("Status", "stopped")],
            &format!("twilio recording {recording_id}"),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps a recorded error body (a file in `tests/carrier/payloads`) as the client would.
    fn check(status: u16, retry_after: Option<&str>, body: &str, expect: expect_test::Expect) {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        let status = StatusCode::from_u16(status).unwrap();
        let error = twilio_error(status, &headers, body.as_bytes(), "twilio phone number PN1");
        expect.assert_eq(&format!("{error:?}"));
    }

    macro_rules! payload {
        ($name:literal) => {
            include_str!(concat!("../tests/carrier/payloads/", $name))
        };
    }

    #[test]
    fn error_bodies_map_to_error_classes() {
        check(
            401,
            None,
            payload!("twilio_401_authenticate.json"),
            expect_test::expect!["InvalidCredentials"],
        );
        check(
            404,
            None,
            payload!("twilio_404_not_found.json"),
            expect_test::expect![[r#"NotFound { what: "twilio phone number PN1" }"#]],
        );
        check(
            400,
            None,
            payload!("twilio_400_not_available.json"),
            expect_test::expect![[
                r#"Rejected { status: 400, code: "21422", message: "PhoneNumber requested is not available" }"#
            ]],
        );
        check(
            400,
            None,
            payload!("twilio_400_with_details.json"),
            expect_test::expect![[
                r#"Rejected { status: 400, code: "21220", message: "Call is not in-progress. Cannot redirect." }"#
            ]],
        );
        check(
            429,
            Some("3"),
            payload!("twilio_429_too_many.json"),
            expect_test::expect!["RateLimited { retry_after: Some(3s) }"],
        );
        check(
            429,
            None,
            payload!("twilio_429_too_many.json"),
            expect_test::expect!["RateLimited { retry_after: None }"],
        );
        check(
            403,
            None,
            payload!("twilio_403_permission.json"),
            expect_test::expect![[
                r#"Rejected { status: 403, code: "20008", message: "Resource not accessible with Test Account Credentials" }"#
            ]],
        );
        check(
            403,
            None,
            payload!("twilio_401_authenticate.json"),
            expect_test::expect!["InvalidCredentials"],
        );
        check(
            502,
            None,
            payload!("proxy_502.html"),
            expect_test::expect![[r#"Unavailable { reason: "http 502" }"#]],
        );
        check(
            400,
            None,
            "",
            expect_test::expect![[r#"Rejected { status: 400, code: "", message: "" }"#]],
        );
    }

    fn config(region: &str, edge: Option<&str>) -> TwilioConfig {
        TwilioConfig {
            region: region.to_owned(),
            edge: edge.map(str::to_owned),
            ..TwilioConfig::default()
        }
    }

    fn host(config: &TwilioConfig) -> String {
        config.api_base().unwrap().host_str().unwrap().to_owned()
    }

    #[test]
    fn default_region_uses_the_global_host() {
        assert_eq!(host(&TwilioConfig::default()), "api.twilio.com");
        assert_eq!(host(&config("", None)), "api.twilio.com");
    }

    #[test]
    fn region_and_edge_make_the_regional_host() {
        assert_eq!(
            host(&config("ie1", Some("dublin"))),
            "api.dublin.ie1.twilio.com"
        );
        assert_eq!(
            host(&config("au1", Some("sydney"))),
            "api.sydney.au1.twilio.com"
        );
        assert_eq!(
            host(&config("us1", Some("ashburn"))),
            "api.ashburn.us1.twilio.com"
        );
        assert_eq!(
            host(&config("IE1", Some(" Dublin "))),
            "api.dublin.ie1.twilio.com"
        );
    }

    #[test]
    fn a_region_without_edge_gets_its_home_edge() {
        assert_eq!(host(&config("ie1", None)), "api.dublin.ie1.twilio.com");
        assert_eq!(host(&config("au1", None)), "api.sydney.au1.twilio.com");
        assert_eq!(host(&config("jp1", None)), "api.tokyo.jp1.twilio.com");
        assert!(matches!(
            config("br1", None).api_base(),
            Err(CarrierError::InvalidConfig(_))
        ));
    }

    #[test]
    fn region_and_edge_cannot_inject_into_the_host() {
        for (region, edge) in [
            ("ie1", Some("evil.com/")),
            ("ie1", Some("a@b")),
            ("ie1.example.com#", None),
            ("us1", Some("")),
            ("us1", Some("-x")),
        ] {
            assert!(
                matches!(
                    config(region, edge).api_base(),
                    Err(CarrierError::InvalidConfig(_))
                ),
                "{region} {edge:?}"
            );
        }
    }

    #[test]
    fn a_custom_base_is_used_as_is() {
        let base = Url::parse("http://127.0.0.1:4010/twilio/").unwrap();
        let config = TwilioConfig {
            base_url: Some(base.clone()),
            region: "ie1".to_owned(),
            edge: Some("dublin".to_owned()),
            ..TwilioConfig::default()
        };
        assert_eq!(config.api_base().unwrap(), base);
        let bad = TwilioConfig {
            base_url: Some(Url::parse("ftp://example.com").unwrap()),
            ..TwilioConfig::default()
        };
        assert!(bad.api_base().is_err());
    }

    fn client(base: &str) -> TwilioClient {
        let config = TwilioConfig {
            base_url: Some(Url::parse(base).unwrap()),
            ..TwilioConfig::default()
        };
        TwilioClient::new(
            &config,
            TwilioCredentials {
                account_sid: "AC00000000000000000000000000000001".to_owned(),
                auth: TwilioAuth::AuthToken(SecretString::new("token")),
            },
        )
        .unwrap()
    }

    #[test]
    fn requests_of_a_regional_account_go_to_its_edge() {
        let config = TwilioConfig {
            region: "au1".to_owned(),
            edge: Some("sydney".to_owned()),
            ..TwilioConfig::default()
        };
        let client = TwilioClient::new(
            &config,
            TwilioCredentials {
                account_sid: "AC00000000000000000000000000000001".to_owned(),
                auth: TwilioAuth::AuthToken(SecretString::new("token")),
            },
        )
        .unwrap();
        assert_eq!(
            client.account_url(&["Calls.json"]).unwrap().as_str(),
            "https://api.sydney.au1.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls.json"
        );
    }

    #[test]
    fn ids_are_encoded_as_single_path_segments() {
        let client = client("http://127.0.0.1:1/prefix");
        let url = client
            .account_url(&["Calls", "CA1/../../x?y=1.json"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls/CA1%2F..%2F..%2Fx%3Fy=1.json"
        );
    }

    #[test]
    fn cursors_must_be_pages_of_this_accounts_numbers() {
        let client = client("http://127.0.0.1:1");
        let good = PageCursor(
            "/2010-04-01/Accounts/AC00000000000000000000000000000001/IncomingPhoneNumbers.json?PageSize=2&Page=1&PageToken=PA1".to_owned(),
        );
        assert_eq!(
            client.cursor_url(&good).unwrap().as_str(),
            "http://127.0.0.1:1/2010-04-01/Accounts/AC00000000000000000000000000000001/IncomingPhoneNumbers.json?PageSize=2&Page=1&PageToken=PA1"
        );
        for bad in [
            "https://evil.example/2010-04-01/Accounts/AC00000000000000000000000000000001/IncomingPhoneNumbers.json?",
            "/2010-04-01/Accounts/AC99999999999999999999999999999999/IncomingPhoneNumbers.json?Page=1",
            "/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls.json?Page=1",
            "//evil.example/x",
        ] {
            assert!(
                client.cursor_url(&PageCursor(bad.to_owned())).is_err(),
                "{bad}"
            );
        }
    }

    fn answer(body: &str) -> Answer {
        Answer {
            status: StatusCode::CREATED,
            body: body.as_bytes().to_vec(),
        }
    }

    // Finding 2: `answer.json()?` / `into_owned()?` after Twilio bought the number lost it.
    #[test]
    fn a_bought_number_whose_answer_cannot_be_read_is_pending_on_its_sid() {
        let e164 = E164::parse("+14155550190").unwrap();
        let good = answer(
            r#"{"sid": "PN1", "phone_number": "+14155550190", "voice_url": "https://gw.example/v"}"#,
        );
        assert!(matches!(
            purchased(&good, &e164),
            Ok(Purchase::Completed { number }) if number.carrier_id == "PN1"
        ));
        // A number that does not decode, and one that is not E.164: the SID is still known.
        for body in [
            r#"{"sid": "PN2", "phone_number": 4155550190}"#,
            r#"{"sid": "PN2", "phone_number": "(415) 555-0190"}"#,
            r#"{"sid": "PN2"}"#,
        ] {
            assert_eq!(
                purchased(&answer(body), &e164).unwrap(),
                Purchase::Pending {
                    order_id: "PN2".to_owned()
                },
                "{body}"
            );
        }
        // Nothing to look the number up by: an error that is not retryable and says why.
        for body in [
            "",
            "<html>",
            r#"{"sid": ""}"#,
            r#"{"sid": ".."}"#,
            r#"{"code": 1}"#,
        ] {
            let error = purchased(&answer(body), &e164).unwrap_err();
            assert!(
                matches!(&error, CarrierError::Protocol(m) if m.contains("+14155550190") && m.contains("may have been bought")),
                "{body}: {error:?}"
            );
            assert!(!error.is_retryable());
        }
    }

    // Finding 5: the derived `Debug` printed a base URL's user info.
    #[test]
    fn the_config_debug_shows_no_user_info_of_the_base_url() {
        let config = TwilioConfig {
            base_url: Some(Url::parse("https://ops:hunter2@proxy.example/").unwrap()),
            ..TwilioConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("ops"),
            "{debug}"
        );
        assert!(debug.contains("proxy.example"), "{debug}");
        assert!(config.api_base().is_err());
    }

    #[test]
    fn the_voice_form_clears_urls_but_not_methods() {
        let form = voice_form(&TwilioVoiceConfig {
            voice_url: Some("https://gw.example/voice".to_owned()),
            voice_method: Some("POST".to_owned()),
            ..TwilioVoiceConfig::default()
        });
        let text = serde_urlencoded::to_string(&form).unwrap();
        assert_eq!(
            text,
            "VoiceUrl=https%3A%2F%2Fgw.example%2Fvoice&VoiceFallbackUrl=&StatusCallback=&VoiceApplicationSid=&TrunkSid=&VoiceMethod=POST"
        );
    }
}
