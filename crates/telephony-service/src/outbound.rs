//! Webhooks of the outbound calls the gateway places (`POST /v1/calls`).
//!
//! The call's record id is in the URL the gateway gave the carrier
//! (`/webhooks/{provider}/outbound/{id}` for the instructions when the callee answers, and
//! `.../{id}/status` for status callbacks). The id only says which call the webhook claims to be
//! about: the webhook is authenticated by the signature of the connection the call was placed
//! with, exactly as inbound webhooks are ([`crate::webhooks`]), and the call id it carries must be
//! the call the carrier named when it accepted the placement.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use telephony_carrier::Provider;
use telephony_registry::{
    Admission, CallAdmission, Number, NumberStatus, OutboundCallInfo, RegistryError,
};
use telephony_routing as routing;

use crate::state::AppState;
use crate::webhooks::{
    CallFields, WebhookError, parse_form, signed_url, verify_telnyx, verify_twilio, xml,
};

/// A verified webhook of an outbound call.
struct Verified {
    call: OutboundCallInfo,
    number: Number,
    fields: CallFields,
}

/// Finds the outbound call, verifies the webhook with its connection's secrets and checks that
/// it is about the call the carrier placed.
async fn verify(
    state: &AppState,
    provider: Provider,
    record_id: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, WebhookError> {
    let params = parse_form(body);
    let fields = CallFields::from_form(&params);
    if fields.call_id.is_empty() {
        return Err(WebhookError::BadRequest("CallSid is required"));
    }
    let registry = state.registry();
    let call = registry
        .outbound_call(record_id)
        .await?
        .ok_or(WebhookError::UnknownNumber)?;
    if call.record.provider != provider.as_str() {
        return Err(WebhookError::UnknownNumber);
    }
    let number = match registry.number(&call.record.org_id, &call.number_id).await {
        Ok(number) => number,
        Err(RegistryError::NotFound(_)) => return Err(WebhookError::UnknownNumber),
        Err(other) => return Err(other.into()),
    };
    if number.connection_id != call.connection_id {
        // The number moved to another connection since: the placing account's secrets are no
        // longer at hand to verify with.
        return Err(WebhookError::Forbidden("connection_changed"));
    }
    match provider {
        Provider::Twilio => {
            let url = signed_url(state, uri);
            verify_twilio(
                state,
                &number,
                &url,
                &params,
                headers,
                fields.account_id.as_deref(),
            )
            .await?;
        }
        _ => {
            let connection = registry
                .connection(&call.record.org_id, &call.connection_id)
                .await?;
            let account = fields.account_id.as_deref();
            verify_telnyx(state, &number, &connection, account, body, headers).await?;
        }
    }
    if !call.carrier_call_pending() && call.record.carrier_call_id != fields.call_id {
        tracing::warn!(
            provider = provider.as_str(),
            record_id,
            "outbound webhook names another call"
        );
        return Err(WebhookError::Forbidden("call_mismatch"));
    }
    Ok(Verified {
        call,
        number,
        fields,
    })
}

fn update_error(error: RegistryError) -> WebhookError {
    match error {
        RegistryError::Conflict(_) => WebhookError::Forbidden("call_mismatch"),
        RegistryError::NotFound(_) => WebhookError::UnknownNumber,
        other => other.into(),
    }
}

/// Answers the instructions of an answered outbound call: the routing crate's document that
/// connects the callee to the call's agent. Once per call across instances.
async fn instructions(
    state: &AppState,
    provider: Provider,
    verified: Verified,
) -> Result<Response, WebhookError> {
    let Verified {
        call,
        number,
        fields,
    } = verified;
    let registry = state.registry();
    registry
        .update_outbound_call(
            &call.record.id,
            &fields.call_id,
            fields.status.as_deref().unwrap_or("in-progress"),
            None,
        )
        .await
        .map_err(update_error)?;
    // The record id is part of the key: a CallSid is no secret, and a key of the CallSid alone
    // would let an organization that signs a webhook for its own call read or plant the answer
    // of another organization's call.
    let key = format!("outbound:{}:{}", call.record.id, fields.call_id);
    if let Some(stored) = registry.stored_response(provider, &key).await? {
        return Ok(xml(stored));
    }
    let org_id = &call.record.org_id;
    let agent = match &call.agent_id {
        Some(agent_id) => match registry.agent(org_id, agent_id).await {
            Ok(agent) => Some(agent),
            Err(RegistryError::NotFound(_)) => None,
            Err(other) => return Err(other.into()),
        },
        None => None,
    };
    let admission = match &agent {
        Some(agent) => {
            let verdict = registry
                .admit_call(&CallAdmission {
                    provider,
                    carrier_call_id: fields.call_id.clone(),
                    org_id: org_id.clone(),
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
    let token = state
        .call_tokens()
        .mint(&number.id, &fields.call_id, SystemTime::now());
    let routing_provider = match provider {
        Provider::Twilio => routing::Provider::Twilio,
        _ => routing::Provider::Telnyx,
    };
    // The carrier's `To` is the callee and `From` the organization's number: the agent sees
    // them as the carrier sent them.
    let routed = routing::InboundCall {
        provider: routing_provider,
        to: &fields.to,
        from: &fields.from,
        forwarded_from: None,
        call_id: &fields.call_id,
        token: &token,
    };
    let agent_route = agent.as_ref().map(|a| routing::AgentRoute {
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
    let decision = routing::decide(&routed, &number_route, agent_route.as_ref(), admission);
    tracing::info!(
        provider = provider.as_str(),
        record_id = %call.record.id,
        call_id = %fields.call_id,
        reason = %decision.reason(),
        "outbound call answered"
    );
    let document = decision.render(routing_provider.dialect());
    let answer = registry
        .remember_response(provider, &key, &document)
        .await?;
    Ok(xml(answer))
}

/// Writes a status callback of an outbound call to its record.
async fn status(
    state: &AppState,
    provider: Provider,
    verified: Verified,
) -> Result<Response, WebhookError> {
    let Verified { call, fields, .. } = verified;
    let status = fields.status.as_deref().unwrap_or("unknown");
    let record = state
        .registry()
        .update_outbound_call(&call.record.id, &fields.call_id, status, fields.duration)
        .await
        .map_err(update_error)?;
    if record.ended_at.is_some() {
        state
            .registry()
            .end_active_call_in_org(&call.record.org_id, provider, &fields.call_id)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /webhooks/twilio/outbound/{id}`: the callee answered a Twilio call the gateway placed.
pub async fn twilio_instructions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let verified = verify(&state, Provider::Twilio, &id, &uri, &headers, &body).await?;
    instructions(&state, Provider::Twilio, verified).await
}

/// `POST /webhooks/twilio/outbound/{id}/status`: status callbacks of a placed Twilio call.
pub async fn twilio_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let verified = verify(&state, Provider::Twilio, &id, &uri, &headers, &body).await?;
    status(&state, Provider::Twilio, verified).await
}

/// `POST /webhooks/telnyx/outbound/{id}`: the callee answered a Telnyx (TeXML) call the gateway
/// placed.
pub async fn telnyx_instructions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let verified = verify(&state, Provider::Telnyx, &id, &uri, &headers, &body).await?;
    instructions(&state, Provider::Telnyx, verified).await
}

/// `POST /webhooks/telnyx/outbound/{id}/status`: status callbacks of a placed Telnyx call.
pub async fn telnyx_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let verified = verify(&state, Provider::Telnyx, &id, &uri, &headers, &body).await?;
    status(&state, Provider::Telnyx, verified).await
}
