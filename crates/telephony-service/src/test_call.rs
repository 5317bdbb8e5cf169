//! The webhook side of test calls (`POST /v1/numbers/{id}/test-call`).
//!
//! The gateway places a test call from a number to itself; its inbound leg reaches the
//! number's voice webhook like any call. After the webhook's signature is verified, the voice
//! handlers call [`intercept`]: when `From` equals `To` (never for a normal call, so a normal
//! call pays one string comparison) and the number has a test call pending, the leg is
//! recorded as reached, with the agent routing would give it, and answered with a hang-up
//! document instead of being connected to the agent.
//!
//! The placed (outbound) leg's instructions come from [`answer`]: a short message, then hang
//! up. That document is the same for every call and holds nothing secret, so it needs no
//! signature check.

use std::time::Instant;

use axum::response::{IntoResponse, Response};
use telephony_registry::{Agent, Number, RegistryError};

/// What the inbound leg of a test call is answered: hang up at once.
pub const HANGUP: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>";

/// What the placed leg hears: a short message, then the call ends.
pub const ANSWER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>This is a \
     test call from your telephony gateway. Goodbye.</Say><Hangup/></Response>";

/// The path of the placed leg's instructions, per provider (`twilio` or `telnyx`).
#[must_use]
pub fn answer_path(provider: &str) -> String {
    format!("/webhooks/{provider}/test-call/answer")
}

fn xml(body: &'static str) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `POST /webhooks/{twilio,telnyx}/test-call/answer`: the placed leg's instructions.
pub async fn answer() -> Response {
    xml(ANSWER)
}

/// Called by the voice webhooks after the signature is verified and the number found. Returns
/// the answer to send when the call is the inbound leg of a pending test call of `number`;
/// `None` for every other call (at no cost unless `from == to`). `agent` is the agent routing
/// gives the number's calls.
///
/// # Errors
/// [`RegistryError::Database`] when the pending test cannot be read or recorded.
pub async fn intercept(
    registry: &telephony_registry::Registry,
    number: &Number,
    agent: Option<&Agent>,
    from: &str,
    to: &str,
) -> Result<Option<Response>, RegistryError> {
    if from != to || to != number.e164 {
        return Ok(None);
    }
    let started = Instant::now();
    let Some(test) = registry.pending_test_call(&number.e164).await? else {
        return Ok(None);
    };
    if test.number_id != number.id {
        return Ok(None);
    }
    let (agent_id, route) = match agent {
        Some(agent) => (Some(agent.id.as_str()), "agent"),
        None => (None, "no_agent"),
    };
    registry
        .record_test_call_reached(&test.id, agent_id, route, started.elapsed())
        .await?;
    tracing::info!(
        number_id = %number.id,
        test_call = %test.id,
        route,
        "test call reached the gateway"
    );
    Ok(Some(xml(HANGUP)))
}
