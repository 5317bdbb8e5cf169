//! What the caller of [`decide`](crate::decide) knows about a call: borrowed, so building one
//! costs nothing on the inbound path.

use std::fmt;

/// The carrier that sent the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Twilio Programmable Voice; answered with TwiML.
    Twilio,
    /// Telnyx TeXML; answered with TeXML.
    Telnyx,
}

impl Provider {
    /// The document dialect this carrier reads.
    #[must_use]
    pub const fn dialect(self) -> Dialect {
        match self {
            Self::Twilio => Dialect::TwiML,
            Self::Telnyx => Dialect::TeXML,
        }
    }

    /// Lower-case name, as sent to the agent in the `provider` stream parameter.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
        }
    }
}

/// The markup a document is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Twilio's TwiML.
    TwiML,
    /// Telnyx's TeXML, which follows TwiML but needs extra `<Stream>` attributes for audio to
    /// flow back to the caller.
    TeXML,
}

/// The inbound call, as read from the (already verified) carrier webhook.
///
/// `to`, `from` and `forwarded_from` are whatever the carrier sent: they may be E.164 numbers,
/// SIP URIs, `anonymous`, or hostile text, and are only ever passed on, escaped. `call_id` and
/// `token` must be visible ASCII (see [`decide`](crate::decide)).
#[derive(Clone, Copy)]
pub struct InboundCall<'a> {
    /// The carrier that sent the call.
    pub provider: Provider,
    /// The called number (`To`).
    pub to: &'a str,
    /// The caller (`From`).
    pub from: &'a str,
    /// The number the call was forwarded from (Twilio `ForwardedFrom`), when the carrier says.
    /// `Some("")` is treated as absent.
    pub forwarded_from: Option<&'a str>,
    /// The carrier's call id (Twilio `CallSid`; Telnyx `CallSid` or call control id).
    pub call_id: &'a str,
    /// The per-call token the gateway minted for the agent, passed to a media-stream agent as
    /// the `token` parameter (and to a `sips:` agent as a header). Never a carrier secret.
    pub token: &'a str,
}

impl fmt::Debug for InboundCall<'_> {
    // Hand-written so that the token never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundCall")
            .field("provider", &self.provider)
            .field("to", &self.to)
            .field("from", &self.from)
            .field("forwarded_from", &self.forwarded_from)
            .field("call_id", &self.call_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The called number's record in the registry, as far as routing needs it.
#[derive(Debug, Clone, Copy)]
pub struct NumberRoute<'a> {
    /// The gateway's id of the number (sent to the agent as `number_id`).
    pub id: &'a str,
    /// The admin's nickname for the number, used only in the decision's reason text.
    pub nickname: Option<&'a str>,
    /// Whether the number is in service on the gateway. `false` (for example while it is paused
    /// or being removed) means the call does not go to the agent; the fallback still applies.
    pub reachable: bool,
    /// The number's fallback phone number, tried before the agent's.
    pub fallback: Option<&'a str>,
}

/// The agent assigned to the number.
#[derive(Debug, Clone, Copy)]
pub struct AgentRoute<'a> {
    /// The gateway's id of the agent (sent to the agent as `agent_id`).
    pub id: &'a str,
    /// The agent's display name, used only in the decision's reason text.
    pub name: &'a str,
    /// Where the agent takes calls: a `wss://` media-stream URL or a `sip:` / `sips:` URI,
    /// parsed with [`AgentTarget::parse`](crate::AgentTarget::parse).
    pub target: &'a str,
    /// The agent's fallback phone number, tried after the number's.
    pub fallback: Option<&'a str>,
}

/// Whether a concurrent-call limit leaves room for this call. The caller counts live calls;
/// this crate only reacts to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission {
    /// Below every limit: the call may go to the agent.
    Admitted,
    /// The number's concurrent-call limit is reached.
    NumberLimitReached,
    /// The agent's concurrent-call limit is reached.
    AgentLimitReached,
}
