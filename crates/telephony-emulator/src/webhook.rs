//! Webhooks the carriers send: the inbound-call webhook and the call-status callback, signed the
//! way each carrier signs them (Twilio HMAC-SHA1 `X-Twilio-Signature`, Telnyx Ed25519 over
//! `timestamp|body`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::EmulatorError;
use crate::model::{Call, Carrier, WebhookRecord};
use crate::server::Shared;
use crate::util;
use crate::world::telnyx_key_pair;

/// What a webhook target answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The call the webhook concerns.
    pub call_id: String,
    /// URL the webhook was sent to (and signed over).
    pub url: String,
    /// HTTP status, `None` when the request failed before an answer.
    pub status: Option<u16>,
    /// Response `Content-Type`.
    pub content_type: Option<String>,
    /// Response body, or the transport error when `status` is `None`.
    pub body: String,
}

/// An inbound call to place.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InboundCall {
    /// The called number (must be owned in the emulator).
    pub to: String,
    /// The caller.
    pub from: String,
    /// The number the call was forwarded from, if forwarded.
    #[serde(default)]
    pub forwarded_from: Option<String>,
}

/// Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 over the URL followed by every POST parameter
/// name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    let mut data = url.to_string();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

fn country(e164: &str) -> &'static str {
    if e164.starts_with("+1") { "US" } else { "" }
}

fn push(params: &mut Vec<(String, String)>, name: &str, value: &str) {
    params.push((name.to_string(), value.to_string()));
}

/// Places an inbound Twilio call to an owned number and returns what its voice URL answered.
pub(crate) async fn twilio_inbound(
    shared: &Arc<Shared>,
    inbound: &InboundCall,
) -> Result<WebhookDelivery, EmulatorError> {
    let (call, number, token) = {
        let mut world = shared.world();
        let number = world
            .state
            .twilio_numbers
            .iter()
            .find(|n| n.phone_number == inbound.to)
            .cloned()
            .ok_or_else(|| EmulatorError::UnknownNumber(inbound.to.clone()))?;
        let token = world
            .twilio_account(&number.account_sid)
            .map(|a| a.auth_token.clone())
            .ok_or_else(|| EmulatorError::UnknownNumber(inbound.to.clone()))?;
        // Twilio hands the call to the TwiML application or SIP trunk instead of VoiceUrl.
        if number.voice_application_sid.is_some() || number.trunk_sid.is_some() {
            return Err(EmulatorError::RoutedElsewhere(inbound.to.clone()));
        }
        if number.voice_url.is_none() {
            return Err(EmulatorError::NoVoiceUrl(inbound.to.clone()));
        }
        let now = util::now();
        let call = Call {
            id: util::twilio_sid("CA"),
            carrier: Carrier::Twilio,
            account_sid: number.account_sid.clone(),
            session_id: String::new(),
            from: inbound.from.clone(),
            to: inbound.to.clone(),
            direction: "inbound".into(),
            status: "ringing".into(),
            forwarded_from: inbound.forwarded_from.clone(),
            phone_number_id: Some(number.sid.clone()),
            url: number.voice_url.clone(),
            url_method: number.voice_method.clone(),
            twiml: None,
            status_callback: number.status_callback.clone(),
            status_callback_method: number.status_callback_method.clone(),
            connection_id: None,
            call_control: false,
            transferred_to: None,
            start_unix: now.timestamp(),
            end_unix: None,
            date_created: util::rfc2822(now),
            date_updated: util::rfc2822(now),
        };
        world.state.calls.push(call.clone());
        (call, number, token)
    };

    let mut params = twilio_call_params(&call, "ringing");
    if let Some(forwarded) = &call.forwarded_from {
        push(&mut params, "ForwardedFrom", forwarded);
    }
    let targets = [
        (
            number.voice_url.clone(),
            number.voice_method.clone(),
            "voice",
        ),
        (
            number.voice_fallback_url.clone(),
            number.voice_fallback_method.clone(),
            "voice_fallback",
        ),
    ];
    let mut last = None;
    for (url, method, kind) in targets {
        let Some(url) = url else { continue };
        let delivery = send_twilio(shared, &token, &call.id, kind, &url, &method, &params).await;
        let ok = delivery.status.is_some_and(|s| (200..300).contains(&s));
        last = Some(delivery);
        if ok {
            break;
        }
    }
    let delivery = last.ok_or_else(|| EmulatorError::NoVoiceUrl(inbound.to.clone()))?;
    let answered = delivery.status.is_some_and(|s| (200..300).contains(&s));
    if let Some(stored) = shared.world().call_mut(&call.id) {
        if answered {
            stored.status = "in-progress".into();
        } else {
            stored.status = "failed".into();
            stored.end_unix = Some(util::now().timestamp());
        }
    }
    Ok(delivery)
}

fn twilio_call_params(call: &Call, status: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    push(&mut params, "AccountSid", &call.account_sid);
    push(&mut params, "ApiVersion", "2010-04-01");
    push(&mut params, "CallSid", &call.id);
    push(&mut params, "CallStatus", status);
    push(&mut params, "Called", &call.to);
    push(&mut params, "CalledCountry", country(&call.to));
    push(&mut params, "Caller", &call.from);
    push(&mut params, "CallerCountry", country(&call.from));
    push(&mut params, "Direction", &call.direction);
    push(&mut params, "From", &call.from);
    push(&mut params, "FromCountry", country(&call.from));
    push(&mut params, "To", &call.to);
    push(&mut params, "ToCountry", country(&call.to));
    params
}

async fn send_twilio(
    shared: &Arc<Shared>,
    token: &str,
    call_id: &str,
    kind: &str,
    url: &str,
    method: &str,
    params: &[(String, String)],
) -> WebhookDelivery {
    let is_get = method.eq_ignore_ascii_case("GET");
    // For GET the parameters travel in the query and the signature covers the URL alone.
    let (target, signature) = if is_get {
        let sep = if url.contains('?') { '&' } else { '?' };
        let full = format!("{url}{sep}{}", util::encode_pairs(params));
        let sig = twilio_signature(token, &full, &[]);
        (full, sig)
    } else {
        (url.to_string(), twilio_signature(token, url, params))
    };
    let builder = if is_get {
        shared.http.get(&target)
    } else {
        shared
            .http
            .post(&target)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(util::encode_pairs(params))
    };
    let builder = builder
        .header("x-twilio-signature", signature)
        .header("i-twilio-idempotency-token", util::uuid())
        .header("user-agent", "TwilioProxy/1.1");
    deliver(
        shared,
        pending(Carrier::Twilio, kind, call_id, &target, method, params),
        builder,
    )
    .await
}

/// A webhook about to be sent, logged with its outcome once answered.
fn pending(
    carrier: Carrier,
    kind: &str,
    call_id: &str,
    url: &str,
    method: &str,
    params: &[(String, String)],
) -> WebhookRecord {
    WebhookRecord {
        carrier,
        kind: kind.to_string(),
        call_id: call_id.to_string(),
        url: url.to_string(),
        method: method.to_ascii_uppercase(),
        params: params.to_vec(),
        status: None,
        response_body: String::new(),
    }
}

async fn deliver(
    shared: &Arc<Shared>,
    mut record: WebhookRecord,
    builder: reqwest::RequestBuilder,
) -> WebhookDelivery {
    let (status, content_type, body) = match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.text().await.unwrap_or_default();
            (Some(status), content_type, body)
        }
        Err(error) => (None, None, error.to_string()),
    };
    record.status = status;
    record.response_body = body.clone();
    let delivery = WebhookDelivery {
        call_id: record.call_id.clone(),
        url: record.url.clone(),
        status,
        content_type,
        body,
    };
    shared.world().log_webhook(record);
    delivery
}

/// Places an inbound Telnyx call to an owned number and returns what its TeXML application's
/// voice URL answered.
pub(crate) async fn telnyx_inbound(
    shared: &Arc<Shared>,
    inbound: &InboundCall,
) -> Result<WebhookDelivery, EmulatorError> {
    let (call, app, seed) = {
        let mut world = shared.world();
        let number = world
            .state
            .telnyx_numbers
            .iter()
            .find(|n| n.phone_number == inbound.to)
            .cloned()
            .ok_or_else(|| EmulatorError::UnknownNumber(inbound.to.clone()))?;
        let app = number
            .connection_id
            .as_ref()
            .and_then(|id| world.state.texml_applications.iter().find(|a| &a.id == id))
            .cloned()
            .ok_or_else(|| EmulatorError::NoVoiceUrl(inbound.to.clone()))?;
        let seed = world
            .telnyx_by_sid(&number.account_sid)
            .map(|a| a.signing_seed.clone())
            .ok_or_else(|| EmulatorError::UnknownNumber(inbound.to.clone()))?;
        let now = util::now();
        let call = Call {
            id: util::call_control_id(),
            carrier: Carrier::Telnyx,
            account_sid: number.account_sid.clone(),
            session_id: util::uuid(),
            from: inbound.from.clone(),
            to: inbound.to.clone(),
            direction: "inbound".into(),
            status: "ringing".into(),
            forwarded_from: inbound.forwarded_from.clone(),
            phone_number_id: Some(number.id.clone()),
            url: Some(app.voice_url.clone()),
            url_method: app.voice_method.to_ascii_uppercase(),
            twiml: None,
            status_callback: app.status_callback.clone(),
            status_callback_method: app.status_callback_method.to_ascii_uppercase(),
            connection_id: Some(app.id.clone()),
            call_control: false,
            transferred_to: None,
            start_unix: now.timestamp(),
            end_unix: None,
            date_created: util::rfc2822(now),
            date_updated: util::rfc2822(now),
        };
        world.state.calls.push(call.clone());
        (call, app, seed)
    };
    let mut params = telnyx_call_params(&call, "ringing");
    if let Some(forwarded) = &call.forwarded_from {
        push(&mut params, "ForwardedFrom", forwarded);
    }
    let delivery = send_telnyx(
        shared,
        &seed,
        &call.id,
        "voice",
        &app.voice_url,
        &app.voice_method,
        &params,
    )
    .await?;
    let answered = delivery.status.is_some_and(|s| (200..300).contains(&s));
    if let Some(stored) = shared.world().call_mut(&call.id) {
        if answered {
            stored.status = "in-progress".into();
        } else {
            stored.status = "failed".into();
            stored.end_unix = Some(util::now().timestamp());
        }
    }
    Ok(delivery)
}

/// TeXML webhook fields: Twilio-compatible names plus Telnyx's own (CallSessionId, ConnectionId).
fn telnyx_call_params(call: &Call, status: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    push(&mut params, "AccountSid", &call.account_sid);
    push(&mut params, "CallSid", &call.id);
    push(&mut params, "CallSidLegacy", &call.id);
    push(&mut params, "CallSessionId", &call.session_id);
    push(&mut params, "CallStatus", status);
    push(
        &mut params,
        "ConnectionId",
        call.connection_id.as_deref().unwrap_or_default(),
    );
    push(&mut params, "Direction", &call.direction);
    push(&mut params, "From", &call.from);
    push(&mut params, "To", &call.to);
    params
}

/// Telnyx's signature: base64 Ed25519 over `timestamp|body`.
pub(crate) fn telnyx_signature(
    signing_seed: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<String, EmulatorError> {
    let pair = telnyx_key_pair(signing_seed)?;
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'|');
    message.extend_from_slice(body);
    Ok(base64::engine::general_purpose::STANDARD.encode(pair.sign(&message).as_ref()))
}

async fn send_telnyx(
    shared: &Arc<Shared>,
    seed: &str,
    call_id: &str,
    kind: &str,
    url: &str,
    method: &str,
    params: &[(String, String)],
) -> Result<WebhookDelivery, EmulatorError> {
    let timestamp = util::now().timestamp().to_string();
    let is_get = method.eq_ignore_ascii_case("get");
    let (target, body) = if is_get {
        let sep = if url.contains('?') { '&' } else { '?' };
        (
            format!("{url}{sep}{}", util::encode_pairs(params)),
            String::new(),
        )
    } else {
        (url.to_string(), util::encode_pairs(params))
    };
    let signature = telnyx_signature(seed, &timestamp, body.as_bytes())?;
    let builder = if is_get {
        shared.http.get(&target)
    } else {
        shared
            .http
            .post(&target)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let builder = builder
        .header("telnyx-signature-ed25519", signature)
        .header("telnyx-timestamp", timestamp)
        .header("user-agent", "telnyx-webhooks");
    Ok(deliver(
        shared,
        pending(Carrier::Telnyx, kind, call_id, &target, method, params),
        builder,
    )
    .await)
}

/// Ends a live call (as if the caller hung up) and sends its status callback. A call that has
/// already ended only gets its callback (re)sent.
pub(crate) async fn end_call(
    shared: &Arc<Shared>,
    call_id: &str,
) -> Result<Option<WebhookDelivery>, EmulatorError> {
    {
        let mut world = shared.world();
        let call = world
            .call_mut(call_id)
            .ok_or_else(|| EmulatorError::UnknownCall(call_id.to_string()))?;
        if matches!(call.status.as_str(), "queued" | "ringing" | "in-progress") {
            let now = util::now();
            call.status = "completed".into();
            call.end_unix = Some(now.timestamp());
            call.date_updated = util::rfc2822(now);
        }
        for r in world
            .state
            .recordings
            .iter_mut()
            .filter(|r| r.call_id == call_id && r.status != "stopped")
        {
            r.status = "stopped".into();
        }
    }
    status_callback(shared, call_id).await
}

/// Sends the status callback of a call in its current state; `None` when it has no callback URL.
pub(crate) async fn status_callback(
    shared: &Arc<Shared>,
    call_id: &str,
) -> Result<Option<WebhookDelivery>, EmulatorError> {
    let (call, secret) = {
        let world = shared.world();
        let call = world
            .state
            .calls
            .iter()
            .find(|c| c.id == call_id)
            .cloned()
            .ok_or_else(|| EmulatorError::UnknownCall(call_id.to_string()))?;
        let secret = match call.carrier {
            Carrier::Twilio => world
                .twilio_account(&call.account_sid)
                .map(|a| a.auth_token.clone()),
            Carrier::Telnyx => world
                .telnyx_by_sid(&call.account_sid)
                .map(|a| a.signing_seed.clone()),
        };
        (
            call,
            secret.ok_or_else(|| EmulatorError::UnknownCall(call_id.to_string()))?,
        )
    };
    let Some(url) = call.status_callback.clone() else {
        return Ok(None);
    };
    let duration = call
        .end_unix
        .map(|end| (end - call.start_unix).max(0))
        .unwrap_or(0)
        .to_string();
    match call.carrier {
        Carrier::Twilio => {
            let mut params = twilio_call_params(&call, &call.status);
            push(&mut params, "CallDuration", &duration);
            push(&mut params, "Duration", &duration);
            push(&mut params, "CallbackSource", "call-progress-events");
            push(&mut params, "SequenceNumber", "0");
            push(&mut params, "Timestamp", &util::rfc2822(util::now()));
            Ok(Some(
                send_twilio(
                    shared,
                    &secret,
                    &call.id,
                    "status",
                    &url,
                    &call.status_callback_method,
                    &params,
                )
                .await,
            ))
        }
        Carrier::Telnyx if call.call_control => {
            send_event(shared, &secret, &call, "call.hangup", &url)
                .await
                .map(Some)
        }
        Carrier::Telnyx => {
            let mut params = telnyx_call_params(&call, &call.status);
            push(&mut params, "CallDuration", &duration);
            push(&mut params, "Timestamp", &util::iso8601(util::now()));
            send_telnyx(
                shared,
                &secret,
                &call.id,
                "status",
                &url,
                &call.status_callback_method,
                &params,
            )
            .await
            .map(Some)
        }
    }
}

/// A call placed to a number the emulator holds rings that number, as on the real carriers: in
/// the background, its inbound leg is delivered to the number's voice URL (signed by the
/// number's account) like any inbound call. What the URL answers is recorded, not run.
pub(crate) fn spawn_inbound_leg(shared: &Arc<Shared>, carrier: Carrier, call_id: String) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let inbound = {
            let world = shared.world();
            let Some(call) = world.state.calls.iter().find(|c| c.id == call_id) else {
                return;
            };
            let owned = match carrier {
                Carrier::Twilio => world
                    .state
                    .twilio_numbers
                    .iter()
                    .any(|n| n.phone_number == call.to),
                Carrier::Telnyx => world
                    .state
                    .telnyx_numbers
                    .iter()
                    .any(|n| n.phone_number == call.to),
            };
            if !owned {
                return;
            }
            InboundCall {
                to: call.to.clone(),
                from: call.from.clone(),
                forwarded_from: None,
            }
        };
        // A number without a voice URL (or routed elsewhere) rings nothing the emulator
        // reports: the error is the absence of a delivery.
        let _ = match carrier {
            Carrier::Twilio => twilio_inbound(&shared, &inbound).await,
            Carrier::Telnyx => telnyx_inbound(&shared, &inbound).await,
        };
    });
}

/// Fetches an outbound call's TwiML/TeXML from its `Url` in the background, as the carriers do
/// once the callee answers. The answer is only logged: the emulator does not run the markup.
pub(crate) fn spawn_call_url(shared: &Arc<Shared>, call_id: String) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let found = {
            let world = shared.world();
            world
                .state
                .calls
                .iter()
                .find(|c| c.id == call_id)
                .cloned()
                .and_then(|call| {
                    let secret = match call.carrier {
                        Carrier::Twilio => world
                            .twilio_account(&call.account_sid)
                            .map(|a| a.auth_token.clone()),
                        Carrier::Telnyx => world
                            .telnyx_by_sid(&call.account_sid)
                            .map(|a| a.signing_seed.clone()),
                    };
                    secret.map(|secret| (call, secret))
                })
        };
        let Some((call, secret)) = found else { return };
        let Some(url) = call.url.clone() else { return };
        match call.carrier {
            Carrier::Twilio => {
                let params = twilio_call_params(&call, "in-progress");
                send_twilio(
                    &shared,
                    &secret,
                    &call.id,
                    "call_url",
                    &url,
                    &call.url_method,
                    &params,
                )
                .await;
            }
            Carrier::Telnyx => {
                let params = telnyx_call_params(&call, "in-progress");
                if let Err(error) = send_telnyx(
                    &shared,
                    &secret,
                    &call.id,
                    "call_url",
                    &url,
                    &call.url_method,
                    &params,
                )
                .await
                {
                    tracing::warn!(%error, "call url not fetched");
                }
            }
        }
    });
}

/// A call-control event (`call.initiated`, `call.answered`, `call.hangup`) in Telnyx's JSON
/// envelope, Ed25519-signed over `timestamp|body`.
async fn send_event(
    shared: &Arc<Shared>,
    seed: &str,
    call: &Call,
    event_type: &str,
    url: &str,
) -> Result<WebhookDelivery, EmulatorError> {
    let iso = |unix: i64| {
        chrono::DateTime::from_timestamp(unix, 0)
            .map(util::iso8601)
            .unwrap_or_default()
    };
    let state = match event_type {
        "call.initiated" => "bridging",
        "call.answered" => "answered",
        _ => "hangup",
    };
    let mut payload = serde_json::json!({
        "call_control_id": call.id,
        "call_leg_id": call.session_id,
        "call_session_id": call.session_id,
        "connection_id": call.connection_id,
        "client_state": serde_json::Value::Null,
        "from": call.from,
        "to": call.to,
        "state": state,
        "start_time": iso(call.start_unix),
    });
    // Each event carries the fields its schema declares: direction only on call.initiated,
    // the hang-up cause only on call.hangup.
    if let Some(object) = payload.as_object_mut() {
        match event_type {
            "call.initiated" => {
                let direction = if call.direction == "inbound" {
                    "incoming"
                } else {
                    "outgoing"
                };
                object.insert("direction".into(), direction.into());
            }
            "call.hangup" => {
                object.insert("hangup_cause".into(), "normal_clearing".into());
                object.insert("hangup_source".into(), "caller".into());
            }
            _ => {}
        }
    }
    let envelope = serde_json::json!({
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": util::uuid(),
            "occurred_at": util::iso8601(util::now()),
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": url},
    });
    let body = envelope.to_string();
    let timestamp = util::now().timestamp().to_string();
    let signature = telnyx_signature(seed, &timestamp, body.as_bytes())?;
    let builder = shared
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("telnyx-signature-ed25519", signature)
        .header("telnyx-timestamp", timestamp)
        .header("user-agent", "telnyx-webhooks")
        .body(body);
    let params = vec![("event_type".to_string(), event_type.to_string())];
    Ok(deliver(
        shared,
        pending(Carrier::Telnyx, event_type, &call.id, url, "POST", &params),
        builder,
    )
    .await)
}

/// Sends `call.initiated` then `call.answered` for a dialed call-control call, in the background.
pub(crate) fn spawn_call_control_answered(shared: &Arc<Shared>, call_id: String) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let found = {
            let world = shared.world();
            world
                .state
                .calls
                .iter()
                .find(|c| c.id == call_id)
                .cloned()
                .and_then(|call| {
                    world
                        .telnyx_by_sid(&call.account_sid)
                        .map(|a| (call, a.signing_seed.clone()))
                })
        };
        let Some((call, seed)) = found else { return };
        let Some(url) = call.status_callback.clone() else {
            return;
        };
        for event in ["call.initiated", "call.answered"] {
            if let Err(error) = send_event(&shared, &seed, &call, event, &url).await {
                tracing::warn!(%error, "call-control event not sent");
            }
        }
    });
}

/// Sends a status callback in the background, as the carriers do after a REST hang-up.
pub(crate) fn spawn_status_callback(shared: &Arc<Shared>, call_id: String) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        if let Err(error) = status_callback(&shared, &call_id).await {
            tracing::warn!(%error, "status callback not sent");
        }
    });
}

/// The client the emulator sends webhooks with. TLS uses rustls with ring, with no roots: webhook
/// targets in tests are plain `http://` on loopback.
pub(crate) fn http_client() -> Result<reqwest::Client, EmulatorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EmulatorError::Http(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| EmulatorError::Http(e.to_string()))
}
