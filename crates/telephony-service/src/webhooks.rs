//! Carrier webhooks: the inbound hot path and call-status callbacks.
//!
//! A webhook is authenticated by its signature alone: the number is looked up by `To`, its
//! connection's webhook secrets verify the signature against the configured public URL (never
//! the Host header), the account must match the connection, and only then is the call routed.
//! Any failure answers 403 (404 for a number the gateway does not know) and routes nothing:
//! a connection without what verification needs fails closed.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use telephony_carrier::Provider;
use telephony_registry::{
    Admission, Agent, CallUpdate, Connection, Direction, InboundCall, InboundRoute, Number,
    NumberStatus, RegistryError, WebhookSecrets,
};
use telephony_routing as routing;
use telephony_webhook::{VerifyError, telnyx, twilio};

use crate::metrics::SIGNATURE_FAILURES;
use crate::route_cache::{Lookup, Route};
use crate::state::AppState;

/// A webhook refused or failed; the answer carries no detail a forger could use.
#[derive(Debug)]
pub enum WebhookError {
    /// Signature, account or configuration check failed.
    Forbidden(&'static str),
    /// The called number is not imported.
    UnknownNumber,
    /// The body is not a webhook.
    BadRequest(&'static str),
    /// The registry failed.
    Internal,
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::UnknownNumber => (StatusCode::NOT_FOUND, "unknown number"),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        (status, text).into_response()
    }
}

impl From<telephony_registry::RegistryError> for WebhookError {
    fn from(error: telephony_registry::RegistryError) -> Self {
        tracing::error!(error = %error, "registry failed on a webhook");
        Self::Internal
    }
}

/// The fields of a voice or status webhook the gateway uses.
#[derive(Debug, Default)]
pub(crate) struct CallFields {
    pub(crate) to: String,
    pub(crate) from: String,
    pub(crate) forwarded_from: Option<String>,
    pub(crate) call_id: String,
    pub(crate) account_id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) duration: Option<u64>,
}

impl CallFields {
    pub(crate) fn from_form(params: &[Param<'_>]) -> Self {
        let mut fields = Self::default();
        for (name, value) in params {
            let value = value.as_ref();
            match name.as_ref() {
                "To" => value.clone_into(&mut fields.to),
                "From" => value.clone_into(&mut fields.from),
                "ForwardedFrom" if !value.is_empty() => {
                    fields.forwarded_from = Some(value.to_owned());
                }
                "CallSid" => value.clone_into(&mut fields.call_id),
                "AccountSid" => fields.account_id = Some(value.to_owned()),
                "CallStatus" => fields.status = Some(value.to_owned()),
                "CallDuration" => fields.duration = value.parse().ok(),
                _ => {}
            }
        }
        fields
    }
}

/// One decoded form parameter: borrowed from the body unless it had to be decoded.
pub(crate) type Param<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The parameters of a form body, in order, repeated names included, exactly as
/// `form_urlencoded::parse` gives them (empty pairs skipped, `+` a space, a `%` not followed by
/// two hex digits kept). Names and values that need no decoding borrow from the body; invalid
/// UTF-8 is replaced, as a browser would.
///
/// A carrier's body is ASCII: it is checked as UTF-8 once, and its parts are then borrowed
/// without a check of their own (`String::from_utf8_lossy` on each part was about a quarter
/// of the form's parsing, docs/PERFORMANCE.md, session 30). A body that is not UTF-8 is read
/// part by part, each part replaced as it needs.
pub(crate) fn parse_form(body: &[u8]) -> Vec<Param<'_>> {
    let mut params = Vec::with_capacity(body.iter().filter(|b| **b == b'&').count() + 1);
    let text = std::str::from_utf8(body).ok();
    // `&` and `=` are ASCII, so the byte ranges of the parts are also ranges of `text`.
    let decode = |part: Range<usize>| match text.and_then(|text| text.get(part.clone())) {
        Some(text) => decode_form_text(text),
        None => decode_form_part(&body[part]),
    };
    let mut start = 0;
    for pair in body.split(|b| *b == b'&') {
        let range = start..start + pair.len();
        start = range.end + 1;
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (
                range.start..range.start + at,
                range.start + at + 1..range.end,
            ),
            None => (range.clone(), range.end..range.end),
        };
        params.push((decode(name), decode(value)));
    }
    params
}

/// A part of a body known to be UTF-8: borrowed unless it has a `+` or a `%`.
fn decode_form_text(part: &str) -> Cow<'_, str> {
    if has_escapes(part.as_bytes()) {
        Cow::Owned(decode_escaped(part.as_bytes()))
    } else {
        Cow::Borrowed(part)
    }
}

/// One name or value of a form whose body is not UTF-8: its invalid bytes replaced.
fn decode_form_part(part: &[u8]) -> Cow<'_, str> {
    if has_escapes(part) {
        Cow::Owned(decode_escaped(part))
    } else {
        String::from_utf8_lossy(part)
    }
}

/// Whether a part of a form needs decoding.
fn has_escapes(part: &[u8]) -> bool {
    part.iter().any(|b| matches!(b, b'+' | b'%'))
}

/// One name or value of a form: `+` is a space, then percent-decoded, invalid UTF-8 replaced.
/// It is decoded into one buffer of its length (a webhook's phone numbers all start with
/// `%2B`): `form_urlencoded` grows a buffer byte by byte, and its allocations were most of a
/// webhook's form parsing (docs/PERFORMANCE.md, session 21).
fn decode_escaped(part: &[u8]) -> String {
    let mut decoded = Vec::with_capacity(part.len());
    // No escape spans a `+` (it is not a hex digit), so decoding the pieces between the `+`s
    // is decoding after replacing them.
    for (index, piece) in part.split(|b| *b == b'+').enumerate() {
        if index > 0 {
            decoded.push(b' ');
        }
        decoded.extend(percent_encoding::percent_decode(piece));
    }
    match String::from_utf8(decoded) {
        Ok(text) => text,
        Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    }
}

/// The URL the carrier signed: the configured public base URL plus the path and query the
/// request arrived with.
pub(crate) fn signed_url(state: &AppState, uri: &axum::http::Uri) -> String {
    let base = state.public_url().as_str().trim_end_matches('/');
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut url = String::with_capacity(base.len() + path_and_query.len());
    url.push_str(base);
    url.push_str(path_and_query);
    url
}

fn refuse(provider: Provider, why: &'static str, error: Option<&VerifyError>) -> WebhookError {
    metrics::counter!(SIGNATURE_FAILURES, "provider" => provider.as_str(), "reason" => why)
        .increment(1);
    tracing::warn!(provider = provider.as_str(), reason = why, error = ?error, "webhook refused");
    WebhookError::Forbidden(why)
}

/// Why a webhook was refused: a reason for the metric and log line, and the verifier's error.
type Refusal = (&'static str, Option<VerifyError>);

/// What a carrier signed, per carrier.
#[derive(Clone, Copy)]
enum Signed<'a> {
    /// Twilio signs the URL it called and the form parameters.
    Twilio {
        url: &'a str,
        params: &'a [Param<'a>],
    },
    /// Telnyx signs the timestamp and the raw body.
    Telnyx { body: &'a [u8] },
}

/// Checks a Twilio signature and account against a connection's secrets (read for this
/// webhook: outbound calls). The previous token verifies only while `previous_ok` (its grace
/// period has not ended).
fn check_twilio(
    secrets: &WebhookSecrets,
    previous_ok: bool,
    url: &str,
    params: &[Param<'_>],
    headers: &HeaderMap,
    account: Option<&str>,
) -> Result<(), Refusal> {
    let WebhookSecrets::Twilio {
        account_sid,
        current,
        previous,
    } = secrets
    else {
        return Err(("not_a_twilio_connection", None));
    };
    let Some(current) = twilio::TwilioKey::new(current) else {
        return Err(("no_auth_token", None));
    };
    let previous = previous
        .as_ref()
        .filter(|_| previous_ok)
        .and_then(twilio::TwilioKey::new);
    let signed = TwilioSigned {
        url,
        params,
        headers,
        account,
    };
    signed.check(account_sid, &current, previous.as_ref())
}

/// A Twilio webhook as it is checked against a connection's keys.
struct TwilioSigned<'a> {
    url: &'a str,
    params: &'a [Param<'a>],
    headers: &'a HeaderMap,
    account: Option<&'a str>,
}

impl TwilioSigned<'_> {
    /// Checks the signature against the current key and the previous one (when given: its
    /// grace period runs), then the account.
    fn check(
        &self,
        account_sid: &str,
        current: &twilio::TwilioKey,
        previous: Option<&twilio::TwilioKey>,
    ) -> Result<(), Refusal> {
        let both;
        let keys: &[&twilio::TwilioKey] = match previous {
            Some(previous) => {
                both = [current, previous];
                &both
            }
            None => std::slice::from_ref(&current),
        };
        let signature = self
            .headers
            .get(twilio::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        twilio::verify_with_keys(self.url, self.params, signature, keys)
            .map_err(|e| ("bad_signature", Some(e)))?;
        if self.account != Some(account_sid) {
            return Err(("account_mismatch", None));
        }
        Ok(())
    }
}

/// Checks a Telnyx signature against a connection's public keys, and the account when the
/// connection knows it (`account_id` not empty).
fn check_telnyx(
    state: &AppState,
    secrets: &WebhookSecrets,
    previous_ok: bool,
    account_id: &str,
    account: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let WebhookSecrets::Telnyx { current, previous } = secrets else {
        return Err(("not_a_telnyx_connection", None));
    };
    let keys: Vec<telnyx::PublicKey> = current
        .iter()
        .chain(previous.iter().filter(|_| previous_ok))
        .filter_map(|k| telnyx::PublicKey::from_base64(k).ok())
        .collect();
    if keys.is_empty() {
        return Err(("no_public_key", None));
    }
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    telnyx::verify(
        body,
        header(telnyx::SIGNATURE_HEADER),
        header(telnyx::TIMESTAMP_HEADER),
        &keys,
        SystemTime::now(),
        state.telnyx_tolerance(),
    )
    .map_err(|e| ("bad_signature", Some(e)))?;
    // TeXML webhooks carry the account's `AccountSid`. When the connection knows its account
    // (the admin gave the TeXML account SID), a webhook from any other account is refused; a
    // connection that does not know it relies on the signature alone, which is per account.
    if !account_id.is_empty() && account != Some(account_id) {
        return Err(("account_mismatch", None));
    }
    Ok(())
}

/// Checks a Twilio webhook against a route's keys (see [`Route`]) and its account.
fn check_twilio_route(
    route: &Route,
    previous_ok: bool,
    signed: &TwilioSigned<'_>,
) -> Result<(), Refusal> {
    let WebhookSecrets::Twilio { account_sid, .. } = &route.secrets else {
        return Err(("not_a_twilio_connection", None));
    };
    let (Some(current), previous) = route.twilio_keys() else {
        return Err(("no_auth_token", None));
    };
    signed.check(account_sid, current, previous.filter(|_| previous_ok))
}

/// Checks a webhook against a route read from the registry (or the cache).
fn check_route(
    state: &AppState,
    route: &Route,
    signed: Signed<'_>,
    headers: &HeaderMap,
    account: Option<&str>,
) -> Result<(), Refusal> {
    // A cached route may outlive the previous secret's grace period: it carries the end.
    let previous_ok = route.previous_valid_at(chrono::Utc::now());
    match signed {
        Signed::Twilio { url, params } => check_twilio_route(
            route,
            previous_ok,
            &TwilioSigned {
                url,
                params,
                headers,
                account,
            },
        ),
        Signed::Telnyx { body } => check_telnyx(
            state,
            &route.secrets,
            previous_ok,
            &route.account_id,
            account,
            body,
            headers,
        ),
    }
}

/// The route of the number a webhook is for (404 when unknown, or another carrier's), once
/// the webhook is verified against it (403 otherwise).
///
/// The route may come from the instance's cache (see [`crate::route_cache`]). A webhook that
/// fails against a cached route is checked again against a fresh read before it is refused, so
/// a credential rotated on another instance is accepted at once.
async fn verified_route(
    state: &AppState,
    provider: Provider,
    to: &str,
    signed: Signed<'_>,
    headers: &HeaderMap,
    account: Option<&str>,
) -> Result<Arc<Route>, WebhookError> {
    // The cache is keyed by the canonical E.164 only: a `To` padded or spelled another way is
    // the same number, and must not become another entry (anyone can send webhooks).
    let Ok(canonical) = telephony_carrier::E164::parse(to.trim()) else {
        return found(provider, Ok(None)).map(|lookup| lookup.route);
    };
    let to = canonical.as_str();
    let cache = state.route_cache();
    let lookup = found(provider, cache.lookup(state.registry(), provider, to).await)?;
    let refusal = match check_route(state, &lookup.route, signed, headers, account) {
        Ok(()) => return Ok(lookup.route),
        Err(refusal) if !lookup.cached => refusal,
        Err(_) => {
            let fresh = found(
                provider,
                cache.refresh(state.registry(), provider, to).await,
            )?;
            match check_route(state, &fresh.route, signed, headers, account) {
                Ok(()) => return Ok(fresh.route),
                Err(refusal) => refusal,
            }
        }
    };
    Err(refuse(provider, refusal.0, refusal.1.as_ref()))
}

/// A route found, or 404.
fn found(
    provider: Provider,
    lookup: Result<Option<Lookup>, RegistryError>,
) -> Result<Lookup, WebhookError> {
    match lookup {
        Ok(Some(lookup)) => Ok(lookup),
        // A `To` that is not E.164 (a SIP URI, garbage) names no number of ours: 404, not a
        // server error, and not worth more than a debug line since anyone can send it. A
        // Twilio webhook for a Telnyx number (or the reverse) is not for a number we know.
        Ok(None) | Err(RegistryError::InvalidPhoneNumber) => {
            tracing::debug!(
                provider = provider.as_str(),
                "webhook for an unknown number"
            );
            Err(WebhookError::UnknownNumber)
        }
        Err(other) => Err(other.into()),
    }
}

/// Verifies a Twilio webhook against the number's connection and checks its account, reading
/// the connection's secrets (for webhooks outside the inbound route cache: outbound calls).
pub(crate) async fn verify_twilio(
    state: &AppState,
    number: &Number,
    url: &str,
    params: &[Param<'_>],
    headers: &HeaderMap,
    account: Option<&str>,
) -> Result<(), WebhookError> {
    let secrets = state
        .registry()
        .webhook_secrets(&number.connection_id)
        .await?;
    // The registry gives the previous token only while its grace period runs.
    check_twilio(&secrets, true, url, params, headers, account)
        .map_err(|(why, error)| refuse(Provider::Twilio, why, error.as_ref()))
}

/// Verifies a Telnyx webhook against the number's connection, reading its keys (for webhooks
/// outside the inbound route cache: outbound calls).
pub(crate) async fn verify_telnyx(
    state: &AppState,
    number: &Number,
    connection: &Connection,
    account: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<(), WebhookError> {
    let secrets = state
        .registry()
        .webhook_secrets(&number.connection_id)
        .await?;
    check_telnyx(
        state,
        &secrets,
        true,
        &connection.account_id,
        account,
        body,
        headers,
    )
    .map_err(|(why, error)| refuse(Provider::Telnyx, why, error.as_ref()))
}

pub(crate) fn xml(body: String) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A call id already recorded by another organization is refused by the registry, which changes
/// nothing. Carriers' call ids are unique, so that only happens when someone signs webhooks with
/// their own credentials and another organization's call id: the record is left alone, and the
/// caller on the line is still answered.
fn ignore_foreign_call<T>(
    recorded: Result<T, telephony_registry::RegistryError>,
) -> Result<(), WebhookError> {
    match recorded {
        Ok(_) => Ok(()),
        Err(telephony_registry::RegistryError::NotFound(_)) => {
            tracing::warn!("a webhook named a call id another organization holds; not recorded");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// The idempotency key of a voice webhook. The number is part of it: a CallSid is an identifier,
/// not a secret, and an organization can sign webhooks for its own numbers with any CallSid, so
/// a key of the CallSid alone would let it read or plant another organization's answer.
fn idempotency_key(number: &Number, call_id: &str) -> String {
    let mut key = String::with_capacity(7 + number.id.len() + call_id.len());
    for part in ["voice:", &number.id, ":", call_id] {
        key.push_str(part);
    }
    key
}

/// Routes a verified inbound call and answers the document, once per call across instances.
///
/// Reads nothing more for a call that is not forwarded (the route holds the number and its
/// agent); admission, the call record and the answer are one registry transaction, which a
/// call with no limit to count does not wait for (see `Registry::answer_inbound_call`). The
/// document depends only on the call, the number's settings and the call's token, the same
/// for every delivery within the token's window: a retried webhook gets the same answer on
/// any instance.
async fn route(
    state: &AppState,
    provider: Provider,
    route: &InboundRoute,
    fields: &CallFields,
    idempotency_key: &str,
) -> Result<Response, WebhookError> {
    let registry = state.registry();
    let number = &route.number;
    // The inbound leg of a test call (From = To) is recorded and hung up: see `test_call`.
    if let Some(answer) = crate::test_call::intercept(
        registry,
        number,
        route.agent.as_ref(),
        &fields.from,
        &fields.to,
    )
    .await?
    {
        return Ok(answer);
    }
    // A call forwarded from a registered business number goes by that number's settings: its
    // agent when it has one, else the number's.
    let forwarded = match &fields.forwarded_from {
        Some(business) => registry.forwarded_number_for(&number.id, business).await?,
        None => None,
    };
    let fetched;
    let agent: Option<&Agent> = match forwarded.as_ref().and_then(|f| f.agent_id.as_deref()) {
        Some(agent_id) if Some(agent_id) != number.agent_id.as_deref() => {
            fetched = match registry.agent(&number.org_id, agent_id).await {
                Ok(agent) => Some(agent),
                Err(RegistryError::NotFound(_)) => None,
                Err(other) => return Err(other.into()),
            };
            fetched.as_ref()
        }
        _ => route.agent.as_ref(),
    };
    let business = fields
        .forwarded_from
        .as_deref()
        .and_then(|f| telephony_carrier::E164::parse(f).ok());

    let token = state
        .call_tokens()
        .mint(&number.id, &fields.call_id, SystemTime::now());
    let dialect_provider = match provider {
        Provider::Twilio => routing::Provider::Twilio,
        _ => routing::Provider::Telnyx,
    };
    // Admission counts the calls that would reach an agent: against the number's limit and the
    // agent's. A call with no agent is not counted (it hears the fallback or the apology).
    let call = routing::InboundCall {
        provider: dialect_provider,
        to: &fields.to,
        from: &fields.from,
        forwarded_from: fields.forwarded_from.as_deref(),
        call_id: &fields.call_id,
        token: &token,
    };
    let agent_route = agent.map(|a| routing::AgentRoute {
        id: &a.id,
        name: &a.name,
        target: match &a.target {
            telephony_registry::AgentTarget::MediaStream(t)
            | telephony_registry::AgentTarget::Sip(t) => t.as_str(),
        },
        fallback: a.fallback_number.as_deref(),
    });
    let number_route = routing::NumberRoute {
        id: &number.id,
        nickname: number.nickname.as_deref(),
        reachable: number.status == NumberStatus::Active,
        fallback: None,
    };
    let decide = |admission: Admission| {
        let admission = match admission {
            Admission::NumberAtCapacity => routing::Admission::NumberLimitReached,
            Admission::AtCapacity => routing::Admission::AgentLimitReached,
            _ => routing::Admission::Admitted,
        };
        routing::decide(&call, &number_route, agent_route.as_ref(), admission)
    };
    // Almost every call is admitted: decided once, for its document and its log line.
    let admitted = decide(Admission::Admitted);
    let admitted_document = admitted.render(call.provider.dialect());
    let answer = registry
        .answer_inbound_call(
            &InboundCall {
                provider,
                carrier_call_id: &fields.call_id,
                number,
                agent,
                status: fields.status.as_deref().unwrap_or("ringing"),
                forwarded: business
                    .as_ref()
                    .map(|b| (b.as_str(), forwarded.as_ref().map(|f| f.id.as_str()))),
                idempotency_key,
            },
            |admission| match admission {
                Admission::Admitted | Admission::AlreadyAdmitted => admitted_document.clone(),
                refused => decide(refused).render(call.provider.dialect()),
            },
        )
        .await?;
    // A call connected to its agent is logged at debug: it is the common case, its record
    // (`GET /v1/calls`) and the metrics already show it, and at info a line per call cost a
    // tenth of the webhook's CPU under load (docs/PERFORMANCE.md). A call that did not reach
    // an agent (no agent, a limit, a number not reachable) is logged at info.
    match answer.admission {
        Some(Admission::Admitted | Admission::AlreadyAdmitted)
            if admitted.cause() == routing::Cause::Admitted =>
        {
            tracing::debug!(
                provider = provider.as_str(),
                number_id = %number.id,
                call_id = %fields.call_id,
                reason = %admitted.reason(),
                "inbound call routed"
            );
        }
        Some(Admission::Admitted | Admission::AlreadyAdmitted) => tracing::info!(
            provider = provider.as_str(),
            number_id = %number.id,
            call_id = %fields.call_id,
            reason = %admitted.reason(),
            "inbound call routed"
        ),
        Some(refused) => tracing::info!(
            provider = provider.as_str(),
            number_id = %number.id,
            call_id = %fields.call_id,
            reason = %decide(refused).reason(),
            "inbound call routed"
        ),
        None => tracing::debug!(
            provider = provider.as_str(),
            number_id = %number.id,
            call_id = %fields.call_id,
            "inbound call answered again (a retried webhook)"
        ),
    }
    Ok(xml(answer.body))
}

/// `POST /webhooks/twilio/voice`: an inbound call on an imported Twilio number.
async fn twilio_voice(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, WebhookError> {
    let started = Instant::now();
    let params = parse_form(body);
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let url = signed_url(state, uri);
    let route = verified_route(
        state,
        Provider::Twilio,
        &fields.to,
        Signed::Twilio {
            url: &url,
            params: &params,
        },
        headers,
        fields.account_id.as_deref(),
    )
    .await?;
    // Twilio retries a webhook with the same `I-Twilio-Idempotency-Token`, but the CallSid
    // identifies the inbound call, and a call must start one agent session however many times
    // its first webhook arrives: the number and the CallSid are the key.
    let key = idempotency_key(&route.number, &fields.call_id);
    let response = self::route(state, Provider::Twilio, &route, &fields, &key).await;
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        "twilio voice webhook"
    );
    response
}

/// `POST /webhooks/twilio/fallback`: Twilio calls this when the voice URL failed; it answers
/// a polite apology (verified like any webhook, so it cannot be used to probe numbers).
async fn twilio_fallback(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, WebhookError> {
    let params = parse_form(body);
    let fields = CallFields::from_form(&params);
    let url = signed_url(state, uri);
    verified_route(
        state,
        Provider::Twilio,
        &fields.to,
        Signed::Twilio {
            url: &url,
            params: &params,
        },
        headers,
        fields.account_id.as_deref(),
    )
    .await?;
    Ok(xml(routing::fallback_document()))
}

/// Writes a status callback to the call record and ends the call's admission slot when over.
async fn record_status(
    state: &AppState,
    provider: Provider,
    number: &Number,
    fields: &CallFields,
) -> Result<Response, WebhookError> {
    let status = fields
        .status
        .clone()
        .unwrap_or_else(|| "unknown".to_owned());
    let over = matches!(
        status.as_str(),
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    );
    let recorded = state
        .registry()
        .record_call(CallUpdate {
            org_id: number.org_id.clone(),
            provider,
            carrier_call_id: fields.call_id.clone(),
            number: number.e164.clone(),
            direction: Direction::Inbound,
            status,
            duration_secs: fields.duration,
            ended_at: over.then(chrono::Utc::now),
        })
        .await;
    ignore_foreign_call(recorded)?;
    if over {
        state
            .registry()
            .end_active_call_in_org(&number.org_id, provider, &fields.call_id)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /webhooks/twilio/status`: call-status callbacks.
async fn twilio_status(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, WebhookError> {
    let params = parse_form(body);
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let url = signed_url(state, uri);
    let route = verified_route(
        state,
        Provider::Twilio,
        &fields.to,
        Signed::Twilio {
            url: &url,
            params: &params,
        },
        headers,
        fields.account_id.as_deref(),
    )
    .await?;
    record_status(state, Provider::Twilio, &route.number, &fields).await
}

/// `POST /webhooks/telnyx/texml`: an inbound call on an imported Telnyx number (TeXML form).
async fn telnyx_texml(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, WebhookError> {
    let params = parse_form(body);
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let route = verified_route(
        state,
        Provider::Telnyx,
        &fields.to,
        Signed::Telnyx { body },
        headers,
        fields.account_id.as_deref(),
    )
    .await?;
    let key = idempotency_key(&route.number, &fields.call_id);
    self::route(state, Provider::Telnyx, &route, &fields, &key).await
}

/// `POST /webhooks/telnyx/status`: TeXML call-status callbacks.
async fn telnyx_status(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, WebhookError> {
    let params = parse_form(body);
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let route = verified_route(
        state,
        Provider::Telnyx,
        &fields.to,
        Signed::Telnyx { body },
        headers,
        fields.account_id.as_deref(),
    )
    .await?;
    record_status(state, Provider::Telnyx, &route.number, &fields).await
}

/// The carriers' webhooks at fixed paths: the inbound hot path. [`crate::app::App`] answers
/// them before any routing; [`crate::app::router`] routes them too ([`Webhook::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// `POST /webhooks/twilio/voice`: an inbound call on an imported Twilio number.
    TwilioVoice,
    /// `POST /webhooks/twilio/fallback`: Twilio's fallback when the voice URL failed.
    TwilioFallback,
    /// `POST /webhooks/twilio/status`: Twilio's call-status callbacks.
    TwilioStatus,
    /// `POST /webhooks/telnyx/texml`: an inbound call on an imported Telnyx number.
    TelnyxTexml,
    /// `POST /webhooks/telnyx/status`: Telnyx's TeXML call-status callbacks.
    TelnyxStatus,
}

impl Webhook {
    /// Every webhook of this kind.
    pub const ALL: [Self; 5] = [
        Self::TwilioVoice,
        Self::TwilioFallback,
        Self::TwilioStatus,
        Self::TelnyxTexml,
        Self::TelnyxStatus,
    ];

    /// The path the carrier posts to (also the route's label in the metrics).
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Self::TwilioVoice => "/webhooks/twilio/voice",
            Self::TwilioFallback => "/webhooks/twilio/fallback",
            Self::TwilioStatus => "/webhooks/twilio/status",
            Self::TelnyxTexml => "/webhooks/telnyx/texml",
            Self::TelnyxStatus => "/webhooks/telnyx/status",
        }
    }

    /// The webhook posted to `path`, if any.
    #[must_use]
    pub fn at(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|hook| hook.path() == path)
    }

    /// Answers the webhook: `uri` as the request arrived (the signed URL is the public base
    /// URL plus its path and query), its headers and its whole body.
    pub async fn answer(
        self,
        state: &AppState,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let answered = match self {
            Self::TwilioVoice => twilio_voice(state, uri, headers, body).await,
            Self::TwilioFallback => twilio_fallback(state, uri, headers, body).await,
            Self::TwilioStatus => twilio_status(state, uri, headers, body).await,
            Self::TelnyxTexml => telnyx_texml(state, headers, body).await,
            Self::TelnyxStatus => telnyx_status(state, headers, body).await,
        };
        answered.unwrap_or_else(IntoResponse::into_response)
    }

    /// The webhook's route in [`crate::app::router`]: `POST` answered by [`Webhook::answer`].
    pub fn route(self) -> axum::routing::MethodRouter<AppState> {
        axum::routing::post(
            move |State(state): State<AppState>,
                  OriginalUri(uri): OriginalUri,
                  headers: HeaderMap,
                  body: Bytes| async move {
                self.answer(&state, &uri, &headers, &body).await
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::parse_form;

    /// What `form_urlencoded` gives for `body`, the decoding `parse_form` must match.
    fn reference(body: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    fn parsed(body: &[u8]) -> Vec<(String, String)> {
        parse_form(body)
            .into_iter()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    #[test]
    fn a_webhook_body_decodes_as_form_urlencoded_does() {
        let cases: &[&[u8]] = &[
            b"",
            b"&&",
            b"To=%2B14155550100&From=%2B14155550199&CallSid=CA0123&Direction=inbound",
            b"CallerName=Ada+Lovelace&City=SAN+FRANCISCO&Empty=&NoValue&=novalue",
            b"a=%2&b=%zz&c=%&d=%4+1&e=%+41&f=100%25&g=%41%42%43",
            b"plus=%2B%2b+&space=%20+%20&eq=a=b=c&amp=%26",
            b"utf8=%C3%A9t%C3%A9&bad=%C3%28&raw=\xff\xfe&lone=%FF",
            b"repeated=1&repeated=2&repeated=%33",
        ];
        for body in cases {
            assert_eq!(
                parsed(body),
                reference(body),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_mix_of_escapes_plus_signs_and_separators_decodes_as_form_urlencoded_does(
            body in proptest::collection::vec(
                proptest::sample::select(b"%+=&aAfF09gZ \xc3\xa9\xff2B".to_vec()),
                0..48,
            )
        ) {
            proptest::prop_assert_eq!(parsed(&body), reference(&body));
        }
    }
}
