//! The Telnyx client: API v2, JSON bodies, `Authorization: Bearer <API key>`.
//!
//! See [`TelnyxClient`] for how live calls are driven.

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use telephony_vault::SecretString;
use url::Url;

use crate::Carrier;
use crate::error::CarrierError;
use crate::http::{
    Answer, Idempotency, RetryPolicy, Timeouts, Transport, check_base_url, classify, is_path_id,
    path_id, protocol_detail, redacted_url,
};
use crate::types::{
    AccountInfo, AvailableNumber, AvailableQuery, CallInfo, CallTarget, Capabilities, E164,
    InboundConfig, NumberPage, NumberType, OutboundCall, OwnedNumber, PageCursor, Provider,
    Purchase, PurchaseRequest, Recording, TelnyxVoiceConfig,
};

/// How to reach Telnyx.
///
/// Its `Debug` shows `base_url` without user info, query or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct TelnyxConfig {
    /// The API base, `https://api.telnyx.com/v2` by default; an emulator's in tests.
    pub base_url: Url,
    /// Connect and request timeouts.
    pub timeouts: Timeouts,
    /// Retries of idempotent requests.
    pub retry: RetryPolicy,
    /// Numbers per page when listing an account's numbers (Telnyx accepts up to 250).
    pub page_size: u32,
}

impl Default for TelnyxConfig {
    fn default() -> Self {
        Self {
            base_url: Url::parse("https://api.telnyx.com/v2").unwrap_or_else(|_| unreachable!()),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            page_size: 100,
        }
    }
}

impl std::fmt::Debug for TelnyxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxConfig")
            .field("base_url", &redacted_url(&self.base_url))
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl TelnyxConfig {
    /// Checks that the base URL can be used.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] when it is not an http(s) URL that can take a path, when
    /// it carries user info (`https://user:pass@host`), a query or a fragment, or when it uses
    /// plain `http` for a host that is not a loopback address (`127.0.0.0/8`, `::1`,
    /// `localhost`): the API key would cross the network in clear text.
    pub fn check(&self) -> Result<(), CarrierError> {
        check_base_url(&self.base_url, "telnyx")
    }
}

/// One Telnyx account's credentials.
#[derive(Debug, Clone)]
pub struct TelnyxCredentials {
    /// The API v2 key (`KEY…`).
    pub api_key: SecretString,
    /// The account SID of TeXML paths (`/texml/Accounts/{account_sid}/…`), also sent as
    /// `AccountSid` in TeXML webhooks. Not a secret. Without it, placing, reading and
    /// redirecting calls answer [`CarrierError::Unsupported`]; everything else works.
    pub account_sid: Option<String>,
}

impl TelnyxCredentials {
    /// Credentials with an API key only (no TeXML account SID).
    #[must_use]
    pub fn new(api_key: SecretString) -> Self {
        Self {
            api_key,
            account_sid: None,
        }
    }
}

/// A Telnyx account reached with one API key.
///
/// # Live calls
///
/// The gateway answers Telnyx calls with TeXML, so its calls are TeXML calls, and their id is
/// the `CallSid` of TeXML webhooks (a `call_control_id`). Placing, reading and redirecting a call
/// use the TeXML REST API (`/texml/Accounts/{account_sid}/Calls…`): it is the only API that gives
/// a live call new TeXML or a new instructions URL, and placing a call there follows TeXML from a
/// URL as inbound calls do. It needs the TeXML account SID ([`TelnyxCredentials::account_sid`]),
/// which an API key alone does not reveal. Hanging up and recording use Call Control commands
/// (`/calls/{id}/actions/…`) on the same id: they need only the API key, and each carries a
/// `command_id` that Telnyx deduplicates, which makes a retried hang-up safe. A recording is
/// per call, so its id is the call id.
///
/// # Numbers
///
/// A Telnyx number's voice routing is its `connection_id` (a TeXML application or another
/// connection). Telnyx reports no capabilities for owned numbers: an active number counts as
/// voice capable. Orders that Telnyx completes later are [`Purchase::Pending`] until
/// [`Carrier::purchase_status`] sees them succeed or fail.
#[derive(Debug, Clone)]
pub struct TelnyxClient {
    transport: Transport,
    base: Url,
    credentials: TelnyxCredentials,
    page_size: u32,
}

impl TelnyxClient {
    /// A client with its own HTTP connection pool. Prefer [`crate::CarrierClients`], which
    /// shares one pool among all organizations.
    ///
    /// # Errors
    /// [`CarrierError::InvalidConfig`] when the configuration cannot be used.
    pub fn new(
        config: &TelnyxConfig,
        credentials: TelnyxCredentials,
    ) -> Result<Self, CarrierError> {
        let client = crate::http::build_client(config.timeouts.connect)?;
        Self::with_http(client, config, credentials)
    }

    pub(crate) fn with_http(
        client: reqwest::Client,
        config: &TelnyxConfig,
        credentials: TelnyxCredentials,
    ) -> Result<Self, CarrierError> {
        config.check()?;
        Ok(Self::from_checked(client, config, credentials))
    }

    /// A client over a configuration that passed [`TelnyxConfig::check`].
    pub(crate) fn from_checked(
        client: reqwest::Client,
        config: &TelnyxConfig,
        credentials: TelnyxCredentials,
    ) -> Self {
        Self {
            transport: Transport {
                client,
                timeouts: config.timeouts,
                retry: config.retry,
            },
            base: config.base_url.clone(),
            credentials,
            page_size: config.page_size.clamp(1, 250),
        }
    }

    /// The URL of `segments` under the base, each percent-encoded as one segment.
    fn url(&self, segments: &[&str]) -> Result<Url, CarrierError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| CarrierError::InvalidConfig("telnyx base url".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The URL of a TeXML call resource: `/texml/Accounts/{account_sid}/Calls[/{call_sid}]`.
    ///
    /// An account SID that cannot be one path segment is refused as
    /// [`CarrierError::InvalidCredentials`], a call SID as [`CarrierError::NotFound`].
    fn texml_calls_url(&self, call_sid: Option<&str>) -> Result<Url, CarrierError> {
        let account = self
            .credentials
            .account_sid
            .as_deref()
            .ok_or(CarrierError::Unsupported(
                "telnyx texml calls without the account sid in the credentials",
            ))?;
        if !is_path_id(account) {
            return Err(CarrierError::InvalidCredentials);
        }
        match call_sid {
            Some(sid) => {
                let sid = path_id(sid, "telnyx call")?;
                self.url(&["texml", "Accounts", account, "Calls", sid])
            }
            None => self.url(&["texml", "Accounts", account, "Calls"]),
        }
    }

    async fn send(
        &self,
        idempotency: Idempotency,
        method: reqwest::Method,
        url: Url,
        body: Option<Body<'_>>,
        what: &str,
    ) -> Result<Answer, CarrierError> {
        let build = || {
            let request = self
                .transport
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(self.credentials.api_key.expose())
                .header(http::header::ACCEPT, "application/json");
            match body {
                Some(Body::Json(body)) => request.json(body),
                Some(Body::Form(form)) => request.form(form),
                None => request,
            }
        };
        let map_error = |status: StatusCode, headers: &HeaderMap, body: &[u8]| {
            telnyx_error(status, headers, body, what)
        };
        self.transport.send(idempotency, &build, &map_error).await
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
            None,
            what,
        )
        .await?
        .json()
    }

    async fn numbers_page(
        &self,
        page: u32,
        size: u32,
    ) -> Result<WireList<WireNumber>, CarrierError> {
        let mut url = self.url(&["phone_numbers"])?;
        url.query_pairs_mut()
            .append_pair("page[number]", &page.to_string())
            .append_pair("page[size]", &size.to_string());
        self.get(url, "telnyx phone number page").await
    }

    async fn number_by_id(&self, id: &str) -> Result<WireNumber, CarrierError> {
        let id = path_id(id, "telnyx phone number")?;
        let url = self.url(&["phone_numbers", id])?;
        let answer: WireData<WireNumber> =
            self.get(url, &format!("telnyx phone number {id}")).await?;
        Ok(answer.data)
    }

    /// What an order's state means. A successful order is [`Purchase::Completed`] with the
    /// number as now owned; when that number cannot be read right now (the follow-up read
    /// fails, however it fails), the purchase stays [`Purchase::Pending`]: the number is bought
    /// and billed, so an error here would invite the caller to buy again or forget it, while
    /// [`Carrier::purchase_status`] finishes the purchase later.
    async fn order_outcome(&self, order: WireOrder) -> Result<Purchase, CarrierError> {
        match order.status.as_deref() {
            Some("success") => {
                let number = order
                    .phone_numbers
                    .first()
                    .and_then(|n| E164::parse(&n.phone_number).ok())
                    .ok_or_else(|| {
                        CarrierError::Protocol(format!(
                            "telnyx order {} succeeded but names no number: look the order up \
                             before buying again",
                            order.id
                        ))
                    })?;
                match self.fetch_number(&number).await {
                    Ok(number) => Ok(Purchase::Completed { number }),
                    Err(error) => {
                        tracing::warn!(order_id = %order.id, %error, "telnyx order succeeded but its number could not be read: pending");
                        Ok(Purchase::Pending { order_id: order.id })
                    }
                }
            }
            Some("failure") => Ok(Purchase::Failed {
                reason: order
                    .phone_numbers
                    .iter()
                    .filter_map(|n| n.status.as_deref())
                    .find(|s| *s != "success")
                    .map_or_else(|| "the order failed".to_owned(), |s| format!("number {s}")),
                order_id: order.id,
            }),
            _ => Ok(Purchase::Pending { order_id: order.id }),
        }
    }

    /// A Call Control command on a live call. Each command carries a fresh `command_id`, which
    /// Telnyx uses to ignore a repeated command on the same call.
    async fn call_action(
        &self,
        idempotency: Idempotency,
        call_id: &str,
        action: &str,
        mut body: Value,
    ) -> Result<(), CarrierError> {
        if let Value::Object(map) = &mut body {
            map.insert("command_id".to_owned(), Value::String(command_id()));
        }
        let call_id = path_id(call_id, "telnyx call")?;
        let url = self.url(&["calls", call_id, "actions", action])?;
        self.send(
            idempotency,
            reqwest::Method::POST,
            url,
            Some(Body::Json(&body)),
            &format!("telnyx call {call_id}"),
        )
        .await?;
        Ok(())
    }
}

/// A request body: JSON for the v2 API, form-encoded for TeXML updates (Twilio-compatible).
#[derive(Clone, Copy)]
enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// A random idempotency key for a Call Control command.
fn command_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Maps a Telnyx error answer: `{"errors": [{"code", "title", "detail"}]}`.
fn telnyx_error(status: StatusCode, headers: &HeaderMap, body: &[u8], what: &str) -> CarrierError {
    let first = serde_json::from_slice::<WireErrors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next());
    let (code, message) = match first {
        Some(e) => (
            match e.code {
                Some(Value::String(s)) => s,
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            },
            e.detail.or(e.title).unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    // 10009 "Authentication failed" and 10010 "Authorization failed": the key is refused.
    let auth_failure = code == "10009" || code == "10010";
    classify(status, headers, code, message, what, auth_failure)
}

#[derive(Deserialize)]
struct WireErrors {
    #[serde(default)]
    errors: Vec<WireError>,
}

#[derive(Deserialize)]
struct WireError {
    code: Option<Value>,
    title: Option<String>,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct WireData<T> {
    data: T,
}

#[derive(Deserialize)]
struct WireList<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    meta: Option<WireMeta>,
}

#[derive(Deserialize)]
struct WireMeta {
    total_pages: Option<u32>,
    page_number: Option<u32>,
}

#[derive(Deserialize)]
struct WireNumber {
    id: String,
    phone_number: String,
    status: Option<String>,
    connection_id: Option<String>,
    customer_reference: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

impl WireNumber {
    fn into_owned(self) -> Result<OwnedNumber, CarrierError> {
        let e164 = E164::parse(&self.phone_number).map_err(|_| {
            CarrierError::Protocol(format!("telnyx number {} is not e.164", self.id))
        })?;
        // Telnyx reports no capabilities on owned numbers: every number takes voice once it is
        // active; messaging and fax depend on profiles this client does not read.
        let active = matches!(self.status.as_deref(), None | Some("active"));
        Ok(OwnedNumber {
            carrier_id: self.id,
            e164,
            friendly_name: self
                .customer_reference
                .filter(|r| !r.is_empty())
                .or_else(|| self.tags.into_iter().next()),
            capabilities: Capabilities {
                voice: active,
                ..Capabilities::default()
            },
            inbound: InboundConfig::Telnyx(TelnyxVoiceConfig {
                connection_id: self.connection_id.filter(|c| !c.is_empty()),
            }),
        })
    }
}

#[derive(Deserialize)]
struct WireAvailable {
    phone_number: String,
    #[serde(default)]
    region_information: Vec<WireRegion>,
    cost_information: Option<WireCost>,
    #[serde(default)]
    features: Vec<WireFeature>,
}

#[derive(Deserialize)]
struct WireRegion {
    region_type: Option<String>,
    region_name: Option<String>,
}

#[derive(Deserialize)]
struct WireCost {
    monthly_cost: Option<String>,
    currency: Option<String>,
}

#[derive(Deserialize)]
struct WireFeature {
    name: String,
}

#[derive(Deserialize)]
struct WireOrder {
    id: String,
    status: Option<String>,
    #[serde(default)]
    phone_numbers: Vec<WireOrderNumber>,
}

#[derive(Deserialize)]
struct WireOrderNumber {
    phone_number: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct WireTexmlCall {
    sid: String,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    duration: Option<Value>,
}

#[derive(Deserialize)]
struct WirePlacedCall {
    call_sid: Option<String>,
    status: Option<String>,
}

fn telnyx_config(config: &InboundConfig) -> Result<&TelnyxVoiceConfig, CarrierError> {
    match config {
        InboundConfig::Telnyx(config) => Ok(config),
        InboundConfig::Twilio(_) => Err(CarrierError::Unsupported(
            "a twilio inbound configuration on a telnyx number",
        )),
    }
}

/// The page number a cursor carries (Telnyx pages are numbered from 1).
fn cursor_page(cursor: &PageCursor) -> Result<u32, CarrierError> {
    cursor
        .0
        .parse::<u32>()
        .ok()
        .filter(|page| *page >= 1)
        .ok_or_else(|| CarrierError::Rejected {
            status: 400,
            code: "invalid_cursor".to_owned(),
            message: "the page cursor is not a telnyx page number".to_owned(),
        })
}

#[async_trait]
impl Carrier for TelnyxClient {
    fn provider(&self) -> Provider {
        Provider::Telnyx
    }

    /// Reads the account balance: read-only and cheap. Telnyx API v2 names no account behind a
    /// key, so `account_id` is the TeXML account SID when the credentials carry one, else empty.
    async fn verify_credentials(&self) -> Result<AccountInfo, CarrierError> {
        let url = self.url(&["balance"])?;
        let _: WireData<Value> = self.get(url, "telnyx balance").await?;
        Ok(AccountInfo {
            account_id: self.credentials.account_sid.clone().unwrap_or_default(),
            friendly_name: None,
            active: true,
        })
    }

    async fn list_numbers(&self, page: Option<&PageCursor>) -> Result<NumberPage, CarrierError> {
        let number = page.map(cursor_page).transpose()?.unwrap_or(1);
        let list = self.numbers_page(number, self.page_size).await?;
        let current = list
            .meta
            .as_ref()
            .and_then(|m| m.page_number)
            .unwrap_or(number);
        let total = list.meta.as_ref().and_then(|m| m.total_pages).unwrap_or(0);
        // Stop on an empty page too, so a wrong `total_pages` cannot make an endless walk.
        let next = (!list.data.is_empty() && current < total)
            .then(|| PageCursor((current + 1).to_string()));
        let numbers = list
            .data
            .into_iter()
            .map(WireNumber::into_owned)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NumberPage { numbers, next })
    }

    async fn fetch_number(&self, e164: &E164) -> Result<OwnedNumber, CarrierError> {
        let mut url = self.url(&["phone_numbers"])?;
        url.query_pairs_mut()
            .append_pair("filter[phone_number]", e164.as_str());
        let what = format!("telnyx phone number {e164}");
        let list: WireList<WireNumber> = self.get(url, &what).await?;
        list.data
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
        let carrier_id = path_id(carrier_id, "telnyx phone number")?;
        let wanted = telnyx_config(config)?;
        let previous = self.number_by_id(carrier_id).await?;
        let url = self.url(&["phone_numbers", carrier_id])?;
        // `null` unties the number from any connection, which is how a number that had none
        // is restored.
        let body = json!({ "connection_id": wanted.connection_id });
        self.send(
            Idempotency::Idempotent,
            reqwest::Method::PATCH,
            url,
            Some(Body::Json(&body)),
            &format!("telnyx phone number {carrier_id}"),
        )
        .await?;
        Ok(InboundConfig::Telnyx(TelnyxVoiceConfig {
            connection_id: previous.connection_id.filter(|c| !c.is_empty()),
        }))
    }

    async fn search_available(
        &self,
        query: &AvailableQuery,
    ) -> Result<Vec<AvailableNumber>, CarrierError> {
        let kind = match query.number_type {
            NumberType::Local => "local",
            NumberType::Mobile => "mobile",
            NumberType::TollFree => "toll_free",
        };
        let country = query.country.to_ascii_uppercase();
        let mut url = self.url(&["available_phone_numbers"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filter[country_code]", &country);
            q.append_pair("filter[phone_number_type]", kind);
            q.append_pair("filter[features][]", "voice");
            q.append_pair("filter[limit]", &query.limit.clamp(1, 1000).to_string());
            if let Some(area_code) = &query.area_code {
                q.append_pair("filter[national_destination_code]", area_code);
            }
        }
        let list: WireList<WireAvailable> = self
            .get(url, &format!("telnyx available numbers in {country}"))
            .await?;
        Ok(list
            .data
            .into_iter()
            .filter_map(|n| {
                let has = |feature: &str| n.features.iter().any(|f| f.name == feature);
                // The most local region Telnyx names: rate centre (a town), then state.
                let region = |kind: &str| {
                    n.region_information
                        .iter()
                        .find(|r| r.region_type.as_deref() == Some(kind))
                        .and_then(|r| r.region_name.clone())
                };
                let locality = region("rate_center")
                    .or_else(|| region("location"))
                    .or_else(|| region("state"));
                Some(AvailableNumber {
                    e164: E164::parse(&n.phone_number).ok()?,
                    capabilities: Capabilities {
                        voice: has("voice"),
                        sms: has("sms"),
                        mms: has("mms"),
                        fax: has("fax"),
                    },
                    locality,
                    country: country.clone(),
                    monthly_cost: n
                        .cost_information
                        .as_ref()
                        .and_then(|c| c.monthly_cost.clone()),
                    currency: n.cost_information.and_then(|c| c.currency),
                })
            })
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn buy_number(&self, request: &PurchaseRequest) -> Result<Purchase, CarrierError> {
        let wanted = telnyx_config(&request.inbound)?;
        let url = self.url(&["number_orders"])?;
        let mut body = json!({ "phone_numbers": [{ "phone_number": request.e164.as_str() }] });
        if let Value::Object(map) = &mut body {
            if let Some(connection) = &wanted.connection_id {
                map.insert(
                    "connection_id".to_owned(),
                    Value::String(connection.clone()),
                );
            }
            if let Some(reference) = &request.reference {
                map.insert(
                    "customer_reference".to_owned(),
                    Value::String(reference.clone()),
                );
            }
        }
        let answer = self
            .send(
                Idempotency::SendOnce,
                reqwest::Method::POST,
                url,
                Some(Body::Json(&body)),
                &format!("telnyx available number {}", request.e164),
            )
            .await?;
        match answer.json::<WireData<WireOrder>>() {
            Ok(order) if is_path_id(&order.data.id) => self.order_outcome(order.data).await,
            Ok(_) => Err(CarrierError::Protocol(format!(
                "telnyx accepted the order of {} without a usable order id: the number may \
                 have been bought; check the account's numbers and orders before buying again",
                request.e164
            ))),
            Err(error) => Err(CarrierError::Protocol(format!(
                "{}: telnyx accepted the order of {}, which may have been bought; check the \
                 account's numbers and orders before buying again",
                protocol_detail(error),
                request.e164
            ))),
        }
    }

    /// The number order made with `reference` (its `customer_reference`), read again by its id
    /// (the list may lag the order); without one, the number in the account.
    async fn find_purchase(
        &self,
        reference: &str,
        e164: &E164,
    ) -> Result<Option<Purchase>, CarrierError> {
        let mut url = self.url(&["number_orders"])?;
        url.query_pairs_mut()
            .append_pair("filter[customer_reference]", reference)
            .append_pair("page[size]", "20");
        let list: WireList<WireOrder> = self
            .get(url, &format!("telnyx number orders of {e164}"))
            .await?;
        let order = list.data.into_iter().find(|order| {
            is_path_id(&order.id)
                && order
                    .phone_numbers
                    .iter()
                    .any(|n| n.phone_number == e164.as_str())
        });
        if let Some(order) = order {
            return self.purchase_status(&order.id).await.map(Some);
        }
        match self.fetch_number(e164).await {
            Ok(number) => Ok(Some(Purchase::Completed { number })),
            Err(CarrierError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn purchase_status(&self, order_id: &str) -> Result<Purchase, CarrierError> {
        let order_id = path_id(order_id, "telnyx number order")?;
        let url = self.url(&["number_orders", order_id])?;
        let order: WireData<WireOrder> = self
            .get(url, &format!("telnyx number order {order_id}"))
            .await?;
        self.order_outcome(order.data).await
    }

    async fn release_number(&self, carrier_id: &str) -> Result<(), CarrierError> {
        let carrier_id = path_id(carrier_id, "telnyx phone number")?;
        let url = self.url(&["phone_numbers", carrier_id])?;
        // Sent once: a retried delete that had succeeded would answer 404 and hide the success.
        self.send(
            Idempotency::SendOnce,
            reqwest::Method::DELETE,
            url,
            None,
            &format!("telnyx phone number {carrier_id}"),
        )
        .await?;
        Ok(())
    }

    /// Starts a TeXML call from the TeXML application the `from` number is tied to. The TeXML
    /// API fetches the first instructions from a URL; inline markup is refused before anything
    /// is sent.
    async fn place_call(&self, call: &OutboundCall) -> Result<CallInfo, CarrierError> {
        let instructions = match &call.instructions {
            CallTarget::Url { url } => url.clone(),
            CallTarget::Markup { .. } => {
                return Err(CarrierError::Unsupported(
                    "inline texml when placing a telnyx call (give a url)",
                ));
            }
        };
        let url = self.texml_calls_url(None)?;
        let from = self.fetch_number(&call.from).await?;
        let application = match from.inbound {
            InboundConfig::Telnyx(TelnyxVoiceConfig {
                connection_id: Some(id),
            }) if from.capabilities.voice => id,
            _ => {
                return Err(CarrierError::NotVoiceCapable {
                    number: call.from.to_string(),
                });
            }
        };
        let mut body = json!({
            "ApplicationSid": application,
            "To": call.to.as_str(),
            "From": call.from.as_str(),
            "Url": instructions,
            "UrlMethod": "POST",
        });
        if let (Some(callback), Value::Object(map)) = (&call.status_callback, &mut body) {
            map.insert("StatusCallback".to_owned(), Value::String(callback.clone()));
            map.insert(
                "StatusCallbackMethod".to_owned(),
                Value::String("POST".to_owned()),
            );
        }
        let answer = self
            .send(
                Idempotency::SendOnce,
                reqwest::Method::POST,
                url,
                Some(Body::Json(&body)),
                "telnyx call",
            )
            .await?;
        let placed: WirePlacedCall = answer.json().map_err(|error| {
            CarrierError::Protocol(format!(
                "{}: telnyx accepted the call from {} to {}, which may have been placed",
                protocol_detail(error),
                call.from,
                call.to
            ))
        })?;
        let call_id = placed.call_sid.filter(|s| is_path_id(s)).ok_or_else(|| {
            CarrierError::Protocol(format!(
                "telnyx answered {} to the call from {} to {} without a usable call sid: the \
                 call may have been placed",
                answer.status.as_u16(),
                call.from,
                call.to
            ))
        })?;
        Ok(CallInfo {
            call_id,
            from: call.from.to_string(),
            to: call.to.to_string(),
            status: placed.status.unwrap_or_else(|| "queued".to_owned()),
            duration_secs: None,
        })
    }

    async fn fetch_call(&self, call_id: &str) -> Result<CallInfo, CarrierError> {
        let url = self.texml_calls_url(Some(call_id))?;
        let call: WireTexmlCall = self.get(url, &format!("telnyx call {call_id}")).await?;
        let duration_secs = match call.duration {
            Some(Value::String(s)) => s.parse().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        Ok(CallInfo {
            call_id: call.sid,
            from: call.from.unwrap_or_default(),
            to: call.to.unwrap_or_default(),
            status: call.status.unwrap_or_default(),
            duration_secs,
        })
    }

    async fn redirect_call(&self, call_id: &str, target: &CallTarget) -> Result<(), CarrierError> {
        let form: Vec<(&str, &str)> = match target {
            CallTarget::Markup { xml } => vec![("Texml", xml)],
            CallTarget::Url { url } => vec![("Url", url), ("Method", "POST")],
        };
        let url = self.texml_calls_url(Some(call_id))?;
        // Not retried: a repeated redirect restarts the new instructions from the top.
        self.send(
            Idempotency::SendOnce,
            reqwest::Method::POST,
            url,
            Some(Body::Form(&form)),
            &format!("telnyx call {call_id}"),
        )
        .await?;
        Ok(())
    }

    async fn hangup_call(&self, call_id: &str) -> Result<(), CarrierError> {
        self.call_action(Idempotency::Idempotent, call_id, "hangup", json!({}))
            .await
    }

    /// Recording on Telnyx is per call: the recording id is the call id.
    async fn start_recording(&self, call_id: &str) -> Result<Recording, CarrierError> {
        self.call_action(
            Idempotency::SendOnce,
            call_id,
            "record_start",
            json!({ "format": "mp3", "channels": "dual" }),
        )
        .await?;
        Ok(Recording {
            recording_id: call_id.to_owned(),
            status: "in-progress".to_owned(),
        })
    }

    async fn stop_recording(&self, call_id: &str, recording_id: &str) -> Result<(), CarrierError> {
        let body = if recording_id == call_id {
            json!({})
        } else {
            json!({ "recording_id": recording_id })
        };
        self.call_action(Idempotency::Idempotent, call_id, "record_stop", body)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps a recorded error body (a file in `tests/carrier/payloads`) as the client would.
    fn check(status: u16, body: &str, expect: expect_test::Expect) {
        let status = StatusCode::from_u16(status).unwrap();
        let error = telnyx_error(
            status,
            &HeaderMap::new(),
            body.as_bytes(),
            "telnyx call v3:1",
        );
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
            payload!("telnyx_401_authentication.json"),
            expect_test::expect!["InvalidCredentials"],
        );
        check(
            403,
            payload!("telnyx_403_authorization.json"),
            expect_test::expect!["InvalidCredentials"],
        );
        check(
            404,
            payload!("telnyx_404_bare.json"),
            expect_test::expect![[r#"NotFound { what: "telnyx call v3:1" }"#]],
        );
        check(
            422,
            payload!("telnyx_422_bad_request.json"),
            expect_test::expect![[
                r#"Rejected { status: 422, code: "10015", message: "The request failed because it was not well-formed." }"#
            ]],
        );
        check(
            422,
            payload!("telnyx_422_call_ended.json"),
            expect_test::expect![[
                r#"Rejected { status: 422, code: "90018", message: "This call is no longer active and can't receive commands." }"#
            ]],
        );
        check(
            429,
            payload!("telnyx_429_too_many.json"),
            expect_test::expect!["RateLimited { retry_after: None }"],
        );
        check(
            503,
            payload!("proxy_502.html"),
            expect_test::expect![[r#"Unavailable { reason: "http 503" }"#]],
        );
    }

    #[test]
    fn cursors_are_page_numbers_from_one() {
        assert_eq!(cursor_page(&PageCursor("3".to_owned())).unwrap(), 3);
        for bad in ["0", "-1", "x", "", "/phone_numbers?page=2"] {
            assert!(cursor_page(&PageCursor(bad.to_owned())).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_ids_are_fresh() {
        assert_ne!(command_id(), command_id());
        assert_eq!(command_id().len(), 32);
    }

    #[test]
    fn the_default_base_is_api_v2() {
        assert_eq!(
            TelnyxConfig::default().base_url.as_str(),
            "https://api.telnyx.com/v2"
        );
    }

    #[test]
    fn ids_are_single_path_segments_under_the_base() {
        let client = TelnyxClient::new(
            &TelnyxConfig::default(),
            TelnyxCredentials::new(SecretString::new("KEY")),
        )
        .unwrap();
        let url = client
            .url(&["calls", "v3:abc/../x", "actions", "hangup"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.telnyx.com/v2/calls/v3:abc%2F..%2Fx/actions/hangup"
        );
    }
}
