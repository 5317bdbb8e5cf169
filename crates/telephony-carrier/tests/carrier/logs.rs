//! What the clients log: every request at `debug` with method, path, status and attempt, and
//! never a credential, even when requests fail and are retried.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use telephony_carrier::Carrier;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::support::*;

/// Keeps every event of this crate as one line of text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("telephony_carrier")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn requests_are_logged_without_any_credential() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let emulator = emulator().await;
    // Another test's thread that hit a callsite for the first time while `set_default` ran may
    // have cached "never" for it (tracing computes a callsite's interest once, from the
    // subscribers it saw); recompute, now that this subscriber is known to every thread.
    tracing::callsite::rebuild_interest_cache();
    let mut failing = fault("GET", "/v2/balance");
    failing.status = Some(503);
    failing.times = Some(1);
    emulator.add_fault(failing);

    twilio(&emulator).verify_credentials().await.unwrap();
    telnyx(&emulator).verify_credentials().await.unwrap();
    let _ = twilio_with(&emulator, twilio_token("wrong"))
        .list_numbers(None)
        .await;

    let lines = capture.0.lock().unwrap().clone();
    let text = lines.join("\n");
    assert!(
        text.contains("method=GET")
            && text.contains("path=/v2/balance")
            && text.contains("status=503")
            && text.contains("attempt=2"),
        "{text}"
    );
    for secret in [TWILIO_TOKEN, TELNYX_KEY, "wrong", "Basic ", "Bearer "] {
        assert!(!text.contains(secret), "{secret} in the logs:\n{text}");
    }
}
