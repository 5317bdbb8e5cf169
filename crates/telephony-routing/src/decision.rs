//! The routing policy: [`decide`] and what it returns.

use std::fmt;

use crate::error::{Field, RoutingError};
use crate::input::{Admission, AgentRoute, InboundCall, NumberRoute, Provider};
use crate::target::{
    AgentTarget, E164, MAX_ID_LEN, MAX_TOKEN_LEN, SIP_HEADERS_LIMIT, SipUri, StreamUrl, check_id,
};

/// The longest `to`, `from` or `forwarded_from` passed on to an agent, in bytes. Longer values
/// are left out of the stream parameters rather than cut: no carrier sends a phone number or SIP
/// URI that long, and a shortened caller identity could name a different caller.
pub const MAX_CALLER_VALUE_LEN: usize = 256;

/// A fixed message said to the caller before hanging up. The texts are constants of this crate:
/// nothing a user typed is ever spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Message {
    /// The call cannot go to an agent and there is no fallback number.
    Unavailable,
    /// A concurrent-call limit is reached and there is no fallback number.
    Busy,
    /// The gateway itself failed (the carrier fetched the fallback URL).
    Apology,
}

impl Message {
    /// The words the carrier's text-to-speech says.
    #[must_use]
    pub const fn text(self) -> &'static str {
        match self {
            Self::Unavailable => {
                "Sorry, we cannot take your call right now. Please try again later. Goodbye."
            }
            Self::Busy => {
                "Sorry, all of our lines are busy right now. Please try again in a few minutes. Goodbye."
            }
            Self::Apology => {
                "We are sorry, a technical problem is keeping us from taking your call. Please try again later. Goodbye."
            }
        }
    }
}

/// Whose fallback number was used (or skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackSource {
    /// The called number's fallback. Tried first: it was set for this very number.
    Number,
    /// The agent's fallback. Tried when the number has none (or an unusable one).
    Agent,
}

impl FallbackSource {
    const fn owner(self) -> &'static str {
        match self {
            Self::Number => "number's",
            Self::Agent => "agent's",
        }
    }
}

/// Which concurrent-call limit turned the call away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The number's limit.
    Number,
    /// The agent's limit.
    Agent,
}

/// Why the call went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// Everything needed was there: the call goes to the agent.
    Admitted,
    /// The number is not in service on the gateway ([`NumberRoute::reachable`] is false).
    NumberUnreachable,
    /// No agent is assigned to the number.
    NoAgent,
    /// A value that must reach the agent (call id, number id, agent id, token) is unusable.
    InvalidCallData(RoutingError),
    /// The agent's target is unusable.
    InvalidAgentTarget(RoutingError),
    /// A concurrent-call limit is reached.
    LimitReached(Limit),
}

/// What the caller hears, in one word, for metrics labels and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Connected to the agent's media stream.
    ConnectedStream,
    /// Connected to the agent's SIP endpoint.
    ConnectedSip,
    /// Dialled a fallback number.
    DialledFallback(FallbackSource),
    /// Heard the unavailable message, then the call hung up.
    SaidUnavailable,
    /// Heard the busy message, then the call hung up.
    SaidBusy,
}

impl Outcome {
    /// A stable snake-case label: `connected_stream`, `connected_sip`, `fallback_number`,
    /// `fallback_agent`, `unavailable`, `busy`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConnectedStream => "connected_stream",
            Self::ConnectedSip => "connected_sip",
            Self::DialledFallback(FallbackSource::Number) => "fallback_number",
            Self::DialledFallback(FallbackSource::Agent) => "fallback_agent",
            Self::SaidUnavailable => "unavailable",
            Self::SaidBusy => "busy",
        }
    }
}

/// A fallback number that was configured but could not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SkippedFallback {
    /// Whose fallback it was.
    pub source: FallbackSource,
    /// Why it was skipped ([`RoutingError::NotE164`] or [`RoutingError::FallbackLoop`]).
    pub error: RoutingError,
}

/// The checked values handed to the agent, as stream parameters or SIP headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params<'a> {
    pub(crate) provider: Provider,
    pub(crate) number_id: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) agent_id: &'a str,
    pub(crate) token: &'a str,
    pub(crate) from: Option<&'a str>,
    pub(crate) to: Option<&'a str>,
    pub(crate) forwarded_from: Option<&'a str>,
}

/// What the document tells the carrier to do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action<'a> {
    Stream {
        url: StreamUrl<'a>,
        params: Params<'a>,
    },
    Sip {
        uri: SipUri<'a>,
        params: Params<'a>,
    },
    Dial {
        number: E164<'a>,
        source: FallbackSource,
    },
    Say(Message),
}

impl fmt::Debug for Action<'_> {
    // Hand-written so that the token in `Params` never reaches a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream { url, params } => f
                .debug_struct("Stream")
                .field("url", url)
                .field("call_id", &params.call_id)
                .field("number_id", &params.number_id)
                .field("agent_id", &params.agent_id)
                .finish_non_exhaustive(),
            Self::Sip { uri, params } => f
                .debug_struct("Sip")
                .field("uri", uri)
                .field("call_id", &params.call_id)
                .field("number_id", &params.number_id)
                .field("agent_id", &params.agent_id)
                .finish_non_exhaustive(),
            Self::Dial { number, source } => f
                .debug_struct("Dial")
                .field("number", number)
                .field("source", source)
                .finish(),
            Self::Say(message) => f.debug_tuple("Say").field(message).finish(),
        }
    }
}

/// Where an inbound call goes, ready to be rendered for the carrier.
///
/// It borrows the inputs of [`decide`]; render it before they go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub(crate) action: Action<'a>,
    cause: Cause,
    skipped_fallback: Option<SkippedFallback>,
    number_id: &'a str,
    number_nickname: Option<&'a str>,
    agent: Option<(&'a str, &'a str)>,
}

impl<'a> Decision<'a> {
    /// Why the call went where it went.
    #[must_use]
    pub const fn cause(&self) -> Cause {
        self.cause
    }

    /// What the caller gets.
    #[must_use]
    pub const fn outcome(&self) -> Outcome {
        match self.action {
            Action::Stream { .. } => Outcome::ConnectedStream,
            Action::Sip { .. } => Outcome::ConnectedSip,
            Action::Dial { source, .. } => Outcome::DialledFallback(source),
            Action::Say(Message::Busy) => Outcome::SaidBusy,
            Action::Say(_) => Outcome::SaidUnavailable,
        }
    }

    /// A configured fallback number that could not be used, if any: worth a warning in the
    /// number's diagnostics.
    #[must_use]
    pub const fn skipped_fallback(&self) -> Option<SkippedFallback> {
        self.skipped_fallback
    }

    /// A one-line, human-readable account of the decision for logs and diagnostics, e.g.
    /// `connected to agent "Ada" (agt_1) by media stream` or
    /// `no agent assigned to number "num_1"; dialled the number's fallback`.
    ///
    /// Text that came from users (names, nicknames, ids that failed validation) is quoted with
    /// control characters escaped, so the line stays one line. The token never appears.
    #[must_use]
    pub const fn reason(&self) -> Reason<'_, 'a> {
        Reason(self)
    }
}

/// The [`Display`](fmt::Display)able reason of a [`Decision`]; see [`Decision::reason`].
#[derive(Debug, Clone, Copy)]
pub struct Reason<'d, 'a>(&'d Decision<'a>);

impl fmt::Display for Reason<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let (agent_id, agent_name) = d.agent.unwrap_or_default();
        match (d.cause, d.action) {
            (Cause::Admitted, Action::Stream { .. }) => {
                return write!(
                    f,
                    "connected to agent {agent_name:?} ({agent_id}) by media stream"
                );
            }
            (Cause::Admitted, _) => {
                return write!(f, "connected to agent {agent_name:?} ({agent_id}) by sip");
            }
            (Cause::NumberUnreachable, _) => {
                f.write_str("number ")?;
                write_number(f, d)?;
                f.write_str(" is not reachable")?;
            }
            (Cause::NoAgent, _) => {
                f.write_str("no agent assigned to number ")?;
                write_number(f, d)?;
            }
            (Cause::InvalidCallData(error), _) => {
                write!(f, "call data cannot be passed to the agent: {error}")?
            }
            (Cause::InvalidAgentTarget(error), _) => {
                write!(
                    f,
                    "agent {agent_name:?} ({agent_id:?}) has an unusable target: {error}"
                )?;
            }
            (Cause::LimitReached(Limit::Number), _) => {
                f.write_str("busy: the number's concurrent-call limit is reached")?
            }
            (Cause::LimitReached(Limit::Agent), _) => {
                f.write_str("busy: the agent's concurrent-call limit is reached")?
            }
        }
        match d.action {
            Action::Dial { source, .. } => write!(f, "; dialled the {} fallback", source.owner())?,
            Action::Say(Message::Busy) => f.write_str("; said the busy message and hung up")?,
            _ => f.write_str("; said the unavailable message and hung up")?,
        }
        if let Some(skipped) = d.skipped_fallback {
            write!(
                f,
                "; the {} fallback was skipped: {}",
                skipped.source.owner(),
                skipped.error
            )?;
        }
        Ok(())
    }
}

fn write_number(f: &mut fmt::Formatter<'_>, d: &Decision<'_>) -> fmt::Result {
    write!(f, "{:?}", d.number_id)?;
    match d.number_nickname {
        Some(nickname) if !nickname.is_empty() => write!(f, " ({nickname:?})"),
        _ => Ok(()),
    }
}

/// Decides where an inbound call goes. Pure and infallible: every input, however wrong, yields
/// a document the carrier can play.
///
/// In order:
/// 1. the number must be [`reachable`](NumberRoute::reachable) and have an agent;
/// 2. the call id, number id, agent id (each at most [`MAX_ID_LEN`] bytes) and token (at most
///    [`MAX_TOKEN_LEN`] bytes) must be non-empty visible ASCII, and the agent's target must parse
///    ([`AgentTarget::parse`]); for a SIP agent the call headers must fit Twilio's limit;
/// 3. the [`Admission`] must be [`Admitted`](Admission::Admitted).
///
/// Then the call is connected to the agent: a media stream gets the values as `<Parameter>`s
/// (`number_id`, `call_id`, `agent_id`, `token`, `provider`, `from`, `to` and, when known,
/// `forwarded_from`); a SIP agent gets `X-Call-Id`, `X-Number-Id` and `X-Agent-Id` headers, and
/// `X-Gateway-Token` only when its URI is `sips:` (a `sip:` INVITE travels in clear text).
///
/// Otherwise the call is sent to a fallback number: the number's, else the agent's (a fallback
/// that is not E.164 or is the called number itself is skipped and reported). With no usable
/// fallback the caller hears [`Message::Busy`] when a limit was reached and
/// [`Message::Unavailable`] otherwise, and the call hangs up.
#[must_use]
pub fn decide<'a>(
    call: &InboundCall<'a>,
    number: &NumberRoute<'a>,
    agent: Option<&AgentRoute<'a>>,
    admission: Admission,
) -> Decision<'a> {
    let (action, cause, skipped_fallback) = match connect(call, number, agent, admission) {
        Ok(action) => (action, Cause::Admitted, None),
        Err(cause) => {
            let (fallback, skipped) = pick_fallback(call, number, agent);
            let action = match (fallback, cause) {
                (Some((number, source)), _) => Action::Dial { number, source },
                (None, Cause::LimitReached(_)) => Action::Say(Message::Busy),
                (None, _) => Action::Say(Message::Unavailable),
            };
            (action, cause, skipped)
        }
    };
    Decision {
        action,
        cause,
        skipped_fallback,
        number_id: number.id,
        number_nickname: number.nickname,
        agent: agent.map(|agent| (agent.id, agent.name)),
    }
}

/// The connect action, or why there is none.
fn connect<'a>(
    call: &InboundCall<'a>,
    number: &NumberRoute<'a>,
    agent: Option<&AgentRoute<'a>>,
    admission: Admission,
) -> Result<Action<'a>, Cause> {
    if !number.reachable {
        return Err(Cause::NumberUnreachable);
    }
    let agent = agent.ok_or(Cause::NoAgent)?;
    let params = params(call, number, agent).map_err(Cause::InvalidCallData)?;
    let action = match AgentTarget::parse(agent.target).map_err(Cause::InvalidAgentTarget)? {
        AgentTarget::Stream(url) => Action::Stream { url, params },
        AgentTarget::Sip(uri) => {
            let len = sip_headers_len(&uri, &params);
            if len >= SIP_HEADERS_LIMIT {
                return Err(Cause::InvalidAgentTarget(RoutingError::SipHeadersTooLong {
                    len,
                    max: SIP_HEADERS_LIMIT,
                }));
            }
            Action::Sip { uri, params }
        }
    };
    match admission {
        Admission::Admitted => Ok(action),
        Admission::NumberLimitReached => Err(Cause::LimitReached(Limit::Number)),
        Admission::AgentLimitReached => Err(Cause::LimitReached(Limit::Agent)),
    }
}

fn params<'a>(
    call: &InboundCall<'a>,
    number: &NumberRoute<'a>,
    agent: &AgentRoute<'a>,
) -> Result<Params<'a>, RoutingError> {
    check_id(call.call_id, Field::CallId, MAX_ID_LEN)?;
    check_id(number.id, Field::NumberId, MAX_ID_LEN)?;
    check_id(agent.id, Field::AgentId, MAX_ID_LEN)?;
    check_id(call.token, Field::Token, MAX_TOKEN_LEN)?;
    let caller_value = |value: &'a str| (value.len() <= MAX_CALLER_VALUE_LEN).then_some(value);
    Ok(Params {
        provider: call.provider,
        number_id: number.id,
        call_id: call.call_id,
        agent_id: agent.id,
        token: call.token,
        from: caller_value(call.from),
        to: caller_value(call.to),
        forwarded_from: call
            .forwarded_from
            .filter(|value| !value.is_empty())
            .and_then(caller_value),
    })
}

/// The first usable fallback (the number's, then the agent's) and the first one skipped.
fn pick_fallback<'a>(
    call: &InboundCall<'a>,
    number: &NumberRoute<'a>,
    agent: Option<&AgentRoute<'a>>,
) -> (Option<(E164<'a>, FallbackSource)>, Option<SkippedFallback>) {
    let candidates = [
        (number.fallback, FallbackSource::Number),
        (
            agent.and_then(|agent| agent.fallback),
            FallbackSource::Agent,
        ),
    ];
    let mut skipped = None;
    for (text, source) in candidates {
        let Some(text) = text else { continue };
        let parsed = E164::parse(text).and_then(|e164| {
            // Dialling the called number would bring the call straight back here.
            if e164.as_str() == call.to {
                Err(RoutingError::FallbackLoop)
            } else {
                Ok(e164)
            }
        });
        match parsed {
            Ok(e164) => return (Some((e164, source)), skipped),
            Err(error) => {
                skipped.get_or_insert(SkippedFallback { source, error });
            }
        }
    }
    (None, skipped)
}

/// The SIP header names and values added to an agent's URI, in order.
pub(crate) fn sip_headers<'a>(
    uri: &SipUri<'_>,
    params: &Params<'a>,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    let token = uri.is_secure().then_some(("X-Gateway-Token", params.token));
    [
        ("X-Call-Id", params.call_id),
        ("X-Number-Id", params.number_id),
        ("X-Agent-Id", params.agent_id),
    ]
    .into_iter()
    .chain(token)
}

/// Whether `b` goes into a SIP header value as is. RFC 3261 allows more, but this small set is
/// unambiguous to every parser between us and the agent.
pub(crate) const fn is_sip_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// The length of the URI's header part (after `?`) once the call headers are added.
fn sip_headers_len(uri: &SipUri<'_>, params: &Params<'_>) -> usize {
    let existing = uri.headers().unwrap_or_default();
    let mut len = existing.len();
    for (name, value) in sip_headers(uri, params) {
        if len > 0 {
            len += 1; // the `&` separator
        }
        len += name.len() + 1; // `name=`
        len += value
            .bytes()
            .map(|b| if is_sip_plain(b) { 1 } else { 3 })
            .sum::<usize>();
    }
    len
}
