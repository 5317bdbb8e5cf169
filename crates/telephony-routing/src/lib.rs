//! The inbound routing policy: given a verified inbound call, the called number's record, its
//! agent and the admission verdict, [`decide`] where the call goes, and render that decision as
//! the TwiML (Twilio) or TeXML (Telnyx) document the carrier executes.
//!
//! ```
//! use telephony_routing::{decide, Admission, AgentRoute, Dialect, InboundCall, NumberRoute, Provider};
//!
//! let call = InboundCall {
//!     provider: Provider::Twilio,
//!     to: "+15550001111",
//!     from: "+15552223333",
//!     forwarded_from: None,
//!     call_id: "CA0123456789abcdef0123456789abcdef",
//!     token: "tok_per_call",
//! };
//! let number = NumberRoute { id: "num_1", nickname: Some("Sales"), reachable: true, fallback: None };
//! let agent = AgentRoute { id: "agt_1", name: "Ada", target: "wss://agents.example.com/media", fallback: None };
//! let decision = decide(&call, &number, Some(&agent), Admission::Admitted);
//! assert_eq!(decision.reason().to_string(), r#"connected to agent "Ada" (agt_1) by media stream"#);
//! let twiml = decision.render(Dialect::TwiML);
//! assert!(twiml.contains(r#"<Parameter name="call_id" value="CA0123456789abcdef0123456789abcdef"/>"#));
//! ```
//!
//! # Design
//!
//! **The decision is a value, separate from its rendering.** [`decide`] returns a [`Decision`]
//! with a [`Cause`] (why), an [`Outcome`] (what the caller gets) and a one-line
//! [`reason`](Decision::reason) for logs; [`Decision::render`] turns it into a document. Tests
//! and diagnostics look at the decision without parsing XML, and one decision renders in either
//! dialect.
//!
//! **Deciding never fails.** A caller on the line must hear something. Bad inputs (an agent
//! target that is not `wss://` or `sip:`, a fallback that is not E.164, an id with a control
//! character) are refused with a typed [`RoutingError`] kept in the decision, and the call goes
//! to the fallback number or hears a polite message. The parse functions
//! ([`AgentTarget::parse`], [`E164::parse`]) are public so the API can refuse the same values
//! when they are saved.
//!
//! **Every value is escaped, and nothing is silently rewritten.** A small XML writer escapes each
//! attribute value and text node (markup characters, line breaks in attributes, characters
//! XML 1.0 forbids). Ids and tokens are refused rather than truncated, because a shortened id is
//! a different id; caller values (`to`, `from`, `forwarded_from`) longer than
//! [`MAX_CALLER_VALUE_LEN`] are left out, because no carrier sends one that long and a truncated
//! caller identity could name someone else.
//!
//! **No secrets in documents.** The carrier reads, and may log, the document. It carries the
//! per-call token the gateway minted for the agent, never a carrier credential; a stream URL with
//! `user:password@` is refused, and so is a SIP URI with a password; a SIP agent gets the token
//! only over `sips:`.
//!
//! **One allocation per call.** The inputs are borrowed, the decision is `Copy`, and rendering
//! writes into one `String` sized up front ([`Decision::render_into`] reuses a buffer).
//!
//! # What it must not know
//!
//! No I/O, no async, no storage, no HTTP, no carrier clients, no clock, no logging: the caller
//! looks up the number and agent, counts live calls, mints the token, logs the reason and sends
//! the document. This crate depends on nothing but `thiserror`.

mod decision;
mod error;
mod input;
mod render;
mod target;
mod transfer;
mod xml;

pub use decision::{
    Cause, Decision, FallbackSource, Limit, MAX_CALLER_VALUE_LEN, Message, Outcome, Reason,
    SkippedFallback, decide,
};
pub use error::{Field, RoutingError};
pub use input::{Admission, AgentRoute, Dialect, InboundCall, NumberRoute, Provider};
pub use render::fallback_document;
pub use target::{
    AgentTarget, E164, MAX_ID_LEN, MAX_SIP_URI_LEN, MAX_STREAM_URL_LEN, MAX_TOKEN_LEN,
    SIP_HEADERS_LIMIT, SipUri, StreamUrl,
};
pub use transfer::TransferTarget;
