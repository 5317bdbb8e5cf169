//! Carrier webhooks: the inbound hot path and call-status callbacks.
//!
//! A webhook is authenticated by its signature alone: the number is looked up by `To`, its
//! connection's webhook secrets verify the signature against the configured public URL (never
//! the Host header), the account must match the connection, and only then is the call routed.
//! Any failure answers 403 (404 for a number the gateway does not know) and routes nothing:
//! a connection without what verification needs fails closed.

use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use telephony_carrier::Provider;
use telephony_registry::{
    Admission, CallAdmission, CallUpdate, Connection, Direction, Number, NumberStatus,
    WebhookSecrets,
};
use telephony_routing as routing;
use telephony_vault::SecretString;
use telephony_webhook::{VerifyError, telnyx, twilio};

use crate::metrics::SIGNATURE_FAILURES;
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
    pub(crate) fn from_form(params: &[(String, String)]) -> Self {
        let mut fields = Self::default();
        for (name, value) in params {
            match name.as_str() {
                "To" => fields.to.clone_from(value),
                "From" => fields.from.clone_from(value),
                "ForwardedFrom" if !value.is_empty() => fields.forwarded_from = Some(value.clone()),
                "CallSid" => fields.call_id.clone_from(value),
                "AccountSid" => fields.account_id = Some(value.clone()),
                "CallStatus" => fields.status = Some(value.clone()),
                "CallDuration" => fields.duration = value.parse().ok(),
                _ => {}
            }
        }
        fields
    }
}

pub(crate) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, WebhookError> {
    serde_urlencoded::from_bytes(body).map_err(|_| WebhookError::BadRequest("malformed form body"))
}

/// The URL the carrier signed: the configured public base URL plus the path and query the
/// request arrived with.
pub(crate) fn signed_url(state: &AppState, uri: &axum::http::Uri) -> String {
    let base = state.public_url().as_str().trim_end_matches('/');
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{base}{path_and_query}")
}

fn refuse(provider: Provider, why: &'static str, error: Option<&VerifyError>) -> WebhookError {
    metrics::counter!(SIGNATURE_FAILURES, "provider" => provider.as_str(), "reason" => why)
        .increment(1);
    tracing::warn!(provider = provider.as_str(), reason = why, error = ?error, "webhook refused");
    WebhookError::Forbidden(why)
}

/// Finds the number a webhook is for and its connection, or 404.
async fn find_number(
    state: &AppState,
    provider: Provider,
    to: &str,
) -> Result<(Number, Connection), WebhookError> {
    let number = match state.registry().number_by_e164(to).await {
        Ok(Some(number)) => number,
        // A `To` that is not E.164 (a SIP URI, garbage) names no number of ours: 404, not a
        // server error, and not worth more than a debug line since anyone can send it.
        Ok(None) | Err(telephony_registry::RegistryError::InvalidPhoneNumber) => {
            tracing::debug!(
                provider = provider.as_str(),
                "webhook for an unknown number"
            );
            return Err(WebhookError::UnknownNumber);
        }
        Err(other) => return Err(other.into()),
    };
    let connection = state
        .registry()
        .connection(&number.org_id, &number.connection_id)
        .await?;
    if connection.provider != provider {
        // A Twilio webhook for a Telnyx number (or the reverse) is not for a number we know.
        return Err(WebhookError::UnknownNumber);
    }
    Ok((number, connection))
}

/// Verifies a Twilio webhook against the number's connection and checks its account.
pub(crate) async fn verify_twilio(
    state: &AppState,
    number: &Number,
    url: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    account: Option<&str>,
) -> Result<(), WebhookError> {
    let WebhookSecrets::Twilio {
        account_sid,
        current,
        previous,
    } = state
        .registry()
        .webhook_secrets(&number.connection_id)
        .await?
    else {
        return Err(refuse(Provider::Twilio, "not_a_twilio_connection", None));
    };
    if current.is_empty() {
        return Err(refuse(Provider::Twilio, "no_auth_token", None));
    }
    let mut tokens: Vec<&SecretString> = vec![&current];
    tokens.extend(previous.as_ref());
    let signature = headers
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    twilio::verify(url, params, signature, &tokens)
        .map_err(|e| refuse(Provider::Twilio, "bad_signature", Some(&e)))?;
    if account != Some(account_sid.as_str()) {
        return Err(refuse(Provider::Twilio, "account_mismatch", None));
    }
    Ok(())
}

/// Verifies a Telnyx webhook against the number's connection.
pub(crate) async fn verify_telnyx(
    state: &AppState,
    number: &Number,
    connection: &Connection,
    account: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<(), WebhookError> {
    let WebhookSecrets::Telnyx { current, previous } = state
        .registry()
        .webhook_secrets(&number.connection_id)
        .await?
    else {
        return Err(refuse(Provider::Telnyx, "not_a_telnyx_connection", None));
    };
    let keys: Vec<telnyx::PublicKey> = current
        .iter()
        .chain(previous.iter())
        .filter_map(|k| telnyx::PublicKey::from_base64(k).ok())
        .collect();
    if keys.is_empty() {
        return Err(refuse(Provider::Telnyx, "no_public_key", None));
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
    .map_err(|e| refuse(Provider::Telnyx, "bad_signature", Some(&e)))?;
    // TeXML webhooks carry the account's `AccountSid`. When the connection knows its account
    // (the admin gave the TeXML account SID), a webhook from any other account is refused; a
    // connection that does not know it relies on the signature alone, which is per account.
    if !connection.account_id.is_empty() && account != Some(connection.account_id.as_str()) {
        return Err(refuse(Provider::Telnyx, "account_mismatch", None));
    }
    Ok(())
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
    format!("voice:{}:{call_id}", number.id)
}

/// Routes a verified inbound call and answers the document, once per call across instances.
async fn route(
    state: &AppState,
    provider: Provider,
    number: &Number,
    fields: &CallFields,
    idempotency_key: &str,
) -> Result<Response, WebhookError> {
    let registry = state.registry();
    if let Some(stored) = registry.stored_response(provider, idempotency_key).await? {
        return Ok(xml(stored));
    }
    // A call forwarded from a registered business number goes by that number's settings: its
    // agent when it has one, else the number's.
    let forwarded = match &fields.forwarded_from {
        Some(business) => registry.forwarded_number_for(&number.id, business).await?,
        None => None,
    };
    let agent_id = forwarded
        .as_ref()
        .and_then(|f| f.agent_id.clone())
        .or_else(|| number.agent_id.clone());
    let agent = match &agent_id {
        Some(agent_id) => match registry.agent(&number.org_id, agent_id).await {
            Ok(agent) => Some(agent),
            Err(telephony_registry::RegistryError::NotFound(_)) => None,
            Err(other) => return Err(other.into()),
        },
        None => None,
    };
    // Admission counts the calls that would reach an agent: against the number's limit and the
    // agent's. A call with no agent is not counted (it hears the fallback or the apology).
    let admission = match &agent {
        Some(agent) => {
            let verdict = registry
                .admit_call(&CallAdmission {
                    provider,
                    carrier_call_id: fields.call_id.clone(),
                    org_id: number.org_id.clone(),
                    number_id: number.id.clone(),
                    agent_id: Some(agent.id.clone()),
                    limit: agent.max_concurrent_calls,
                    number_limit: number.max_concurrent_calls,
                })
                .await?;
            match verdict {
                Admission::NumberAtCapacity => routing::Admission::NumberLimitReached,
                Admission::AtCapacity => routing::Admission::AgentLimitReached,
                _ => routing::Admission::Admitted,
            }
        }
        None => routing::Admission::Admitted,
    };
    let recorded = registry
        .record_call(CallUpdate {
            org_id: number.org_id.clone(),
            provider,
            carrier_call_id: fields.call_id.clone(),
            number: number.e164.clone(),
            direction: Direction::Inbound,
            status: fields
                .status
                .clone()
                .unwrap_or_else(|| "ringing".to_owned()),
            duration_secs: None,
            ended_at: None,
        })
        .await;
    ignore_foreign_call(recorded)?;
    if let Some(business) = fields
        .forwarded_from
        .as_deref()
        .and_then(|f| telephony_carrier::E164::parse(f).ok())
    {
        registry
            .record_forwarded_call(&telephony_registry::ForwardedCall {
                provider,
                carrier_call_id: fields.call_id.clone(),
                org_id: number.org_id.clone(),
                number_id: number.id.clone(),
                business_number: business.into(),
                forwarded_number_id: forwarded.as_ref().map(|f| f.id.clone()),
                created_at: chrono::Utc::now(),
            })
            .await?;
    }

    let token = state
        .call_tokens()
        .mint(&number.id, &fields.call_id, SystemTime::now());
    let call = routing::InboundCall {
        provider: match provider {
            Provider::Twilio => routing::Provider::Twilio,
            _ => routing::Provider::Telnyx,
        },
        to: &fields.to,
        from: &fields.from,
        forwarded_from: fields.forwarded_from.as_deref(),
        call_id: &fields.call_id,
        token: &token,
    };
    let target = agent.as_ref().map(|a| match &a.target {
        telephony_registry::AgentTarget::MediaStream(t)
        | telephony_registry::AgentTarget::Sip(t) => t.as_str(),
    });
    let agent_route = agent
        .as_ref()
        .zip(target)
        .map(|(a, target)| routing::AgentRoute {
            id: &a.id,
            name: &a.name,
            target,
            fallback: a.fallback_number.as_deref(),
        });
    let number_route = routing::NumberRoute {
        id: &number.id,
        nickname: number.nickname.as_deref(),
        reachable: number.status == NumberStatus::Active,
        fallback: None,
    };
    let decision = routing::decide(&call, &number_route, agent_route.as_ref(), admission);
    tracing::info!(
        provider = provider.as_str(),
        number_id = %number.id,
        call_id = %fields.call_id,
        reason = %decision.reason(),
        "inbound call routed"
    );
    let document = decision.render(call.provider.dialect());
    // Insert-if-absent: when two instances race on a retried webhook, both answer the winner's.
    let answer = registry
        .remember_response(provider, idempotency_key, &document)
        .await?;
    Ok(xml(answer))
}

/// `POST /webhooks/twilio/voice`: an inbound call on an imported Twilio number.
pub async fn twilio_voice(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let started = Instant::now();
    let params = parse_form(&body)?;
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let (number, _) = find_number(&state, Provider::Twilio, &fields.to).await?;
    let url = signed_url(&state, &uri);
    verify_twilio(
        &state,
        &number,
        &url,
        &params,
        &headers,
        fields.account_id.as_deref(),
    )
    .await?;
    // Twilio retries a webhook with the same `I-Twilio-Idempotency-Token`, but the CallSid
    // identifies the inbound call, and a call must start one agent session however many times
    // its first webhook arrives: the number and the CallSid are the key.
    let key = idempotency_key(&number, &fields.call_id);
    let response = route(&state, Provider::Twilio, &number, &fields, &key).await;
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        "twilio voice webhook"
    );
    response
}

/// `POST /webhooks/twilio/fallback`: Twilio calls this when the voice URL failed; it answers
/// a polite apology (verified like any webhook, so it cannot be used to probe numbers).
pub async fn twilio_fallback(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let params = parse_form(&body)?;
    let fields = CallFields::from_form(&params);
    let (number, _) = find_number(&state, Provider::Twilio, &fields.to).await?;
    let url = signed_url(&state, &uri);
    verify_twilio(
        &state,
        &number,
        &url,
        &params,
        &headers,
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
pub async fn twilio_status(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let params = parse_form(&body)?;
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let (number, _) = find_number(&state, Provider::Twilio, &fields.to).await?;
    let url = signed_url(&state, &uri);
    verify_twilio(
        &state,
        &number,
        &url,
        &params,
        &headers,
        fields.account_id.as_deref(),
    )
    .await?;
    record_status(&state, Provider::Twilio, &number, &fields).await
}

/// `POST /webhooks/telnyx/texml`: an inbound call on an imported Telnyx number (TeXML form).
pub async fn telnyx_texml(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let params = parse_form(&body)?;
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let (number, connection) = find_number(&state, Provider::Telnyx, &fields.to).await?;
    let account = fields.account_id.as_deref();
    verify_telnyx(&state, &number, &connection, account, &body, &headers).await?;
    let key = idempotency_key(&number, &fields.call_id);
    route(&state, Provider::Telnyx, &number, &fields, &key).await
}

/// `POST /webhooks/telnyx/status`: TeXML call-status callbacks.
pub async fn telnyx_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let params = parse_form(&body)?;
    let fields = CallFields::from_form(&params);
    if fields.to.is_empty() || fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("To and CallSid are required"));
    }
    let (number, connection) = find_number(&state, Provider::Telnyx, &fields.to).await?;
    let account = fields.account_id.as_deref();
    verify_telnyx(&state, &number, &connection, account, &body, &headers).await?;
    record_status(&state, Provider::Telnyx, &number, &fields).await
}
