//! The test-only control API under `/_emulator/` (no carrier auth): inspect state and the request
//! log, arm faults, reset, and make the carrier place calls and send callbacks.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::EmulatorError;
use crate::model::Fault;
use crate::server::{Reply, Req, Shared};
use crate::webhook::{self, InboundCall};

fn problem(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"error": message}))
}

fn from_error(error: &EmulatorError) -> Reply {
    let status = match error {
        EmulatorError::UnknownNumber(_) | EmulatorError::UnknownCall(_) => 404,
        EmulatorError::NoVoiceUrl(_) | EmulatorError::RoutedElsewhere(_) => 409,
        _ => 500,
    };
    problem(status, &error.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(req: &Req) -> Result<T, Reply> {
    serde_json::from_slice(&req.body).map_err(|e| problem(400, &format!("invalid json body: {e}")))
}

pub(crate) async fn handle(shared: &Arc<Shared>, req: &Req) -> Reply {
    let rest = req.path.trim_start_matches("/_emulator/");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["state"]) => {
            let state = shared.world().state.clone();
            Reply::json(200, &serde_json::to_value(state).unwrap_or(Value::Null))
        }
        ("GET", ["requests"]) => {
            let requests = shared.world().state.requests.clone();
            Reply::json(200, &serde_json::to_value(requests).unwrap_or(Value::Null))
        }
        ("GET", ["webhooks"]) => {
            let webhooks = shared.world().state.webhooks.clone();
            Reply::json(200, &serde_json::to_value(webhooks).unwrap_or(Value::Null))
        }
        ("GET", ["faults"]) => {
            let faults = shared.world().state.faults.clone();
            Reply::json(200, &serde_json::to_value(faults).unwrap_or(Value::Null))
        }
        ("POST", ["faults"]) => match parse::<Fault>(req) {
            Ok(fault) => {
                let body = serde_json::to_value(&fault).unwrap_or(Value::Null);
                shared.world().state.faults.push(fault);
                Reply::json(201, &body)
            }
            Err(reply) => reply,
        },
        ("DELETE", ["faults"]) => {
            shared.world().state.faults.clear();
            Reply::empty(204)
        }
        ("POST", ["reset"]) => match shared.world().reset() {
            Ok(()) => Reply::empty(204),
            Err(error) => from_error(&error),
        },
        ("POST", ["twilio", "inbound"]) => match parse::<InboundCall>(req) {
            Ok(call) => match webhook::twilio_inbound(shared, &call).await {
                Ok(delivery) => {
                    Reply::json(200, &serde_json::to_value(delivery).unwrap_or(Value::Null))
                }
                Err(error) => from_error(&error),
            },
            Err(reply) => reply,
        },
        ("POST", ["telnyx", "inbound"]) => match parse::<InboundCall>(req) {
            Ok(call) => match webhook::telnyx_inbound(shared, &call).await {
                Ok(delivery) => {
                    Reply::json(200, &serde_json::to_value(delivery).unwrap_or(Value::Null))
                }
                Err(error) => from_error(&error),
            },
            Err(reply) => reply,
        },
        ("POST", ["calls", id, "end"]) => match webhook::end_call(shared, id).await {
            Ok(delivery) => Reply::json(
                200,
                &json!({"status_callback": serde_json::to_value(delivery).unwrap_or(Value::Null)}),
            ),
            Err(error) => from_error(&error),
        },
        _ => problem(404, "no such control endpoint"),
    }
}
