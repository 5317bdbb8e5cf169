//! Decisions and rendered documents, as data: every case goes through one `check` helper that
//! prints the reason and both dialects, compared with an inline snapshot.
//!
//! Update snapshots with `UPDATE_EXPECT=1 cargo test -p telephony-routing`.

use expect_test::{Expect, expect};
use proptest::prelude::*;
use telephony_routing::{
    Admission, AgentRoute, Cause, Dialect, InboundCall, MAX_CALLER_VALUE_LEN, NumberRoute, Outcome,
    Provider, RoutingError, decide, fallback_document,
};

/// Everything `decide` takes, owned, with sensible defaults that each case overrides.
#[derive(Debug, Clone)]
struct Case {
    provider: Provider,
    to: String,
    from: String,
    forwarded_from: Option<String>,
    call_id: String,
    token: String,
    number_id: String,
    nickname: Option<String>,
    reachable: bool,
    number_fallback: Option<String>,
    agent: Option<Agent>,
    admission: Admission,
}

#[derive(Debug, Clone)]
struct Agent {
    id: String,
    name: String,
    target: String,
    fallback: Option<String>,
}

fn case() -> Case {
    Case {
        provider: Provider::Twilio,
        to: "+15550001111".into(),
        from: "+15552223333".into(),
        forwarded_from: None,
        call_id: "CA0123456789abcdef0123456789abcdef".into(),
        token: "tok_abc.def".into(),
        number_id: "num_1".into(),
        nickname: Some("Sales line".into()),
        reachable: true,
        number_fallback: None,
        agent: Some(Agent {
            id: "agt_1".into(),
            name: "Ada".into(),
            target: "wss://agents.example.com/media".into(),
            fallback: None,
        }),
        admission: Admission::Admitted,
    }
}

fn with_target(target: &str) -> Case {
    let mut c = case();
    if let Some(agent) = c.agent.as_mut() {
        agent.target = target.into();
    }
    c
}

/// Decides and renders `case` once in each dialect.
fn run(case: &Case) -> (String, Outcome, Cause, String, String) {
    let call = InboundCall {
        provider: case.provider,
        to: &case.to,
        from: &case.from,
        forwarded_from: case.forwarded_from.as_deref(),
        call_id: &case.call_id,
        token: &case.token,
    };
    let number = NumberRoute {
        id: &case.number_id,
        nickname: case.nickname.as_deref(),
        reachable: case.reachable,
        fallback: case.number_fallback.as_deref(),
    };
    let agent = case.agent.as_ref().map(|a| AgentRoute {
        id: &a.id,
        name: &a.name,
        target: &a.target,
        fallback: a.fallback.as_deref(),
    });
    let decision = decide(&call, &number, agent.as_ref(), case.admission);
    (
        decision.reason().to_string(),
        decision.outcome(),
        decision.cause(),
        decision.render(Dialect::TwiML),
        decision.render(Dialect::TeXML),
    )
}

/// One line per element: every `<` in the output starts a tag, since a `<` in a value is
/// always escaped, so breaking before each tag that follows a tag is safe and readable.
fn pretty(xml: &str) -> String {
    xml.replace("><", ">\n<")
}

fn check(case: Case, expect: Expect) {
    let (reason, outcome, _, twiml, texml) = run(&case);
    assert_well_formed(&twiml);
    assert_well_formed(&texml);
    let doc = if twiml == texml {
        format!("both:\n{}", pretty(&twiml))
    } else {
        format!("twiml:\n{}\ntexml:\n{}", pretty(&twiml), pretty(&texml))
    };
    expect.assert_eq(&format!(
        "reason: {reason}\noutcome: {}\n{doc}\n",
        outcome.as_str()
    ));
}

fn assert_well_formed(xml: &str) {
    match roxmltree::Document::parse(xml) {
        Ok(doc) => assert_eq!(doc.root_element().tag_name().name(), "Response"),
        Err(error) => panic!("not well-formed ({error}):\n{xml}"),
    }
}

#[test]
fn connects_to_a_media_stream() {
    check(
        case(),
        expect![[r#"
            reason: connected to agent "Ada" (agt_1) by media stream
            outcome: connected_stream
            twiml:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Connect>
            <Stream url="wss://agents.example.com/media">
            <Parameter name="number_id" value="num_1"/>
            <Parameter name="call_id" value="CA0123456789abcdef0123456789abcdef"/>
            <Parameter name="agent_id" value="agt_1"/>
            <Parameter name="token" value="tok_abc.def"/>
            <Parameter name="provider" value="twilio"/>
            <Parameter name="from" value="+15552223333"/>
            <Parameter name="to" value="+15550001111"/>
            </Stream>
            </Connect>
            </Response>
            texml:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Connect>
            <Stream url="wss://agents.example.com/media" bidirectionalMode="rtp" bidirectionalCodec="PCMU" codec="PCMU">
            <Parameter name="number_id" value="num_1"/>
            <Parameter name="call_id" value="CA0123456789abcdef0123456789abcdef"/>
            <Parameter name="agent_id" value="agt_1"/>
            <Parameter name="token" value="tok_abc.def"/>
            <Parameter name="provider" value="twilio"/>
            <Parameter name="from" value="+15552223333"/>
            <Parameter name="to" value="+15550001111"/>
            </Stream>
            </Connect>
            </Response>
        "#]],
    );
}

#[test]
fn a_forwarded_telnyx_call_passes_forwarded_from() {
    let mut c = case();
    c.provider = Provider::Telnyx;
    c.call_id = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg".into();
    c.forwarded_from = Some("+15559998888".into());
    check(
        c,
        expect![[r#"
            reason: connected to agent "Ada" (agt_1) by media stream
            outcome: connected_stream
            twiml:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Connect>
            <Stream url="wss://agents.example.com/media">
            <Parameter name="number_id" value="num_1"/>
            <Parameter name="call_id" value="v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"/>
            <Parameter name="agent_id" value="agt_1"/>
            <Parameter name="token" value="tok_abc.def"/>
            <Parameter name="provider" value="telnyx"/>
            <Parameter name="from" value="+15552223333"/>
            <Parameter name="to" value="+15550001111"/>
            <Parameter name="forwarded_from" value="+15559998888"/>
            </Stream>
            </Connect>
            </Response>
            texml:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Connect>
            <Stream url="wss://agents.example.com/media" bidirectionalMode="rtp" bidirectionalCodec="PCMU" codec="PCMU">
            <Parameter name="number_id" value="num_1"/>
            <Parameter name="call_id" value="v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"/>
            <Parameter name="agent_id" value="agt_1"/>
            <Parameter name="token" value="tok_abc.def"/>
            <Parameter name="provider" value="telnyx"/>
            <Parameter name="from" value="+15552223333"/>
            <Parameter name="to" value="+15550001111"/>
            <Parameter name="forwarded_from" value="+15559998888"/>
            </Stream>
            </Connect>
            </Response>
        "#]],
    );
}

#[test]
fn connects_to_a_sip_agent_with_call_headers() {
    check(
        with_target("sip:agent@sip.example.com;transport=tcp"),
        expect![[r#"
            reason: connected to agent "Ada" (agt_1) by sip
            outcome: connected_sip
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Dial>
            <Sip>sip:agent@sip.example.com;transport=tcp?X-Call-Id=CA0123456789abcdef0123456789abcdef&amp;X-Number-Id=num_1&amp;X-Agent-Id=agt_1</Sip>
            </Dial>
            </Response>
        "#]],
    );
}

#[test]
fn a_sips_agent_also_gets_the_token_and_existing_headers_are_kept() {
    let mut c = with_target("sips:agent@sip.example.com?X-Tenant=acme");
    c.call_id = "v3:a/b+c".into();
    check(
        c,
        expect![[r#"
            reason: connected to agent "Ada" (agt_1) by sip
            outcome: connected_sip
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Dial>
            <Sip>sips:agent@sip.example.com?X-Tenant=acme&amp;X-Call-Id=v3%3Aa%2Fb%2Bc&amp;X-Number-Id=num_1&amp;X-Agent-Id=agt_1&amp;X-Gateway-Token=tok_abc.def</Sip>
            </Dial>
            </Response>
        "#]],
    );
}

#[test]
fn sip_headers_that_twilio_would_refuse_go_to_the_fallback() {
    let mut c = with_target("sips:agent@sip.example.com");
    c.token = "t".repeat(1000);
    c.number_fallback = Some("+15557776666".into());
    check(
        c,
        expect![[r#"
            reason: agent "Ada" ("agt_1") has an unusable target: sip uri headers would be 1096 characters, twilio accepts fewer than 1024; dialled the number's fallback
            outcome: fallback_number
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Dial>+15557776666</Dial>
            </Response>
        "#]],
    );
}

#[test]
fn the_sip_header_limit_is_exact() {
    // X-Call-Id=<34>&X-Number-Id=num_1&X-Agent-Id=agt_1&X-Gateway-Token=<t>: 96 + t characters.
    let mut c = with_target("sips:agent@sip.example.com");
    c.token = "t".repeat(927);
    let (_, outcome, _, twiml, _) = run(&c);
    assert_eq!(outcome, Outcome::ConnectedSip);
    let doc = roxmltree::Document::parse(&twiml).unwrap_or_else(|e| panic!("{e}"));
    let sip = doc
        .descendants()
        .find(|n| n.has_tag_name("Sip"))
        .and_then(|n| n.text())
        .unwrap_or_default();
    let headers = sip.split_once('?').map(|(_, h)| h).unwrap_or_default();
    assert_eq!(headers.len(), 1023);
    c.token.push('t');
    let (_, _, cause, _, _) = run(&c);
    assert_eq!(
        cause,
        Cause::InvalidAgentTarget(RoutingError::SipHeadersTooLong {
            len: 1024,
            max: 1024
        })
    );
}

#[test]
fn no_agent_and_no_fallback_says_unavailable() {
    let mut c = case();
    c.agent = None;
    check(
        c,
        expect![[r#"
            reason: no agent assigned to number "num_1" ("Sales line"); said the unavailable message and hung up
            outcome: unavailable
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Say>Sorry, we cannot take your call right now. Please try again later. Goodbye.</Say>
            <Hangup/>
            </Response>
        "#]],
    );
}

#[test]
fn no_agent_with_a_number_fallback_dials_it() {
    let mut c = case();
    c.agent = None;
    c.nickname = None;
    c.number_fallback = Some("+15557776666".into());
    check(
        c,
        expect![[r#"
            reason: no agent assigned to number "num_1"; dialled the number's fallback
            outcome: fallback_number
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Dial>+15557776666</Dial>
            </Response>
        "#]],
    );
}

#[test]
fn busy_with_an_agent_fallback_dials_it() {
    let mut c = case();
    c.admission = Admission::AgentLimitReached;
    if let Some(agent) = c.agent.as_mut() {
        agent.fallback = Some("+442071234567".into());
    }
    check(
        c,
        expect![[r#"
            reason: busy: the agent's concurrent-call limit is reached; dialled the agent's fallback
            outcome: fallback_agent
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Dial>+442071234567</Dial>
            </Response>
        "#]],
    );
}

#[test]
fn the_number_fallback_comes_before_the_agent_fallback() {
    let mut c = case();
    c.admission = Admission::NumberLimitReached;
    c.number_fallback = Some("+15557776666".into());
    if let Some(agent) = c.agent.as_mut() {
        agent.fallback = Some("+442071234567".into());
    }
    let (reason, outcome, cause, twiml, _) = run(&c);
    assert_eq!(
        outcome,
        Outcome::DialledFallback(telephony_routing::FallbackSource::Number)
    );
    assert_eq!(cause, Cause::LimitReached(telephony_routing::Limit::Number));
    assert!(twiml.contains("<Dial>+15557776666</Dial>"), "{twiml}");
    assert_eq!(
        reason,
        "busy: the number's concurrent-call limit is reached; dialled the number's fallback"
    );
}

#[test]
fn busy_without_fallback_says_busy() {
    let mut c = case();
    c.admission = Admission::NumberLimitReached;
    check(
        c,
        expect![[r#"
            reason: busy: the number's concurrent-call limit is reached; said the busy message and hung up
            outcome: busy
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Say>Sorry, all of our lines are busy right now. Please try again in a few minutes. Goodbye.</Say>
            <Hangup/>
            </Response>
        "#]],
    );
}

#[test]
fn an_unreachable_number_does_not_reach_the_agent() {
    let mut c = case();
    c.reachable = false;
    check(
        c,
        expect![[r#"
            reason: number "num_1" ("Sales line") is not reachable; said the unavailable message and hung up
            outcome: unavailable
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Say>Sorry, we cannot take your call right now. Please try again later. Goodbye.</Say>
            <Hangup/>
            </Response>
        "#]],
    );
}

#[test]
fn invalid_agent_targets_are_refused() {
    let cases = [
        (
            "https://agents.example.com/media",
            RoutingError::UnknownTargetScheme,
        ),
        (
            "ws://agents.example.com/media",
            RoutingError::UnknownTargetScheme,
        ),
        (
            "wss://agents.example.com/media?token=secret",
            RoutingError::StreamUrlQuery,
        ),
        (
            "wss://user:pass@agents.example.com/media",
            RoutingError::StreamUrlCredentials,
        ),
        (
            "wss://agents.example.com/a b",
            RoutingError::ForbiddenCharacter {
                field: telephony_routing::Field::StreamUrl,
            },
        ),
        ("tel:+15550001111", RoutingError::UnknownTargetScheme),
        (
            "sip:@",
            RoutingError::MissingHost {
                field: telephony_routing::Field::SipUri,
            },
        ),
        ("", RoutingError::UnknownTargetScheme),
    ];
    for (target, error) in cases {
        let (_, outcome, cause, twiml, _) = run(&with_target(target));
        assert_eq!(cause, Cause::InvalidAgentTarget(error), "{target:?}");
        assert_eq!(outcome, Outcome::SaidUnavailable, "{target:?}");
        assert_well_formed(&twiml);
    }
    let long = format!("wss://a.example/{}", "x".repeat(5000));
    let (reason, _, cause, _, _) = run(&with_target(&long));
    assert!(matches!(
        cause,
        Cause::InvalidAgentTarget(RoutingError::TooLong {
            len: 5016,
            max: 2048,
            ..
        })
    ));
    assert_eq!(
        reason,
        r#"agent "Ada" ("agt_1") has an unusable target: stream url is 5016 bytes, longer than the 2048 allowed; said the unavailable message and hung up"#
    );
}

/// Regression: a SIP target with a password (`sip:user:password@host`) was accepted, so the
/// password went into the document the carrier reads and logs, and into the decision's `Debug`,
/// although a stream URL with credentials is refused for exactly that reason.
#[test]
fn a_sip_uri_with_a_password_is_refused() {
    for target in [
        "sip:alice:s3cret@pbx.example.com",
        "sips:alice:s3cret@pbx.example.com:5061;transport=tls",
        "sip:alice:@pbx.example.com",
    ] {
        assert_eq!(
            telephony_routing::AgentTarget::parse(target),
            Err(RoutingError::ForbiddenCharacter {
                field: telephony_routing::Field::SipUri,
            }),
            "{target}"
        );
        let (reason, outcome, cause, twiml, texml) = run(&with_target(target));
        assert_eq!(
            cause,
            Cause::InvalidAgentTarget(RoutingError::ForbiddenCharacter {
                field: telephony_routing::Field::SipUri,
            }),
            "{target}"
        );
        assert_eq!(outcome, Outcome::SaidUnavailable, "{target}");
        for text in [reason, twiml, texml] {
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
    // A port, URI parameters and headers with colons are not a password.
    for target in [
        "sip:alice@pbx.example.com:5060",
        "sips:alice@pbx.example.com:5061;transport=tls?X-Note=a:b",
        "sip:pbx.example.com:5060",
        "sip:alice%3Abob@pbx.example.com",
    ] {
        let (_, outcome, _, _, _) = run(&with_target(target));
        assert_eq!(outcome, Outcome::ConnectedSip, "{target}");
    }
}

#[test]
fn invalid_fallbacks_are_skipped_and_reported() {
    let mut c = case();
    c.agent = None;
    c.number_fallback = Some("+15550001111".into()); // the called number itself
    check(
        c.clone(),
        expect![[r#"
            reason: no agent assigned to number "num_1" ("Sales line"); said the unavailable message and hung up; the number's fallback was skipped: fallback number is the called number itself, which would loop
            outcome: unavailable
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Say>Sorry, we cannot take your call right now. Please try again later. Goodbye.</Say>
            <Hangup/>
            </Response>
        "#]],
    );
    c.number_fallback = Some("5557776666</Dial><Dial>+1900".into());
    c.agent = Some(Agent {
        id: "agt_1".into(),
        name: "Ada".into(),
        target: "nonsense".into(),
        fallback: Some("+15557776666".into()),
    });
    check(
        c,
        expect![[r#"
            reason: agent "Ada" ("agt_1") has an unusable target: agent target is neither a wss:// media-stream url nor a sip: or sips: uri; dialled the agent's fallback; the number's fallback was skipped: fallback number is not an e.164 number
            outcome: fallback_agent
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Dial>+15557776666</Dial>
            </Response>
        "#]],
    );
}

#[test]
fn unusable_call_data_is_refused_not_mangled() {
    let mut c = case();
    c.call_id = "CA12\n<x>".into();
    check(
        c.clone(),
        expect![[r#"
            reason: call data cannot be passed to the agent: call_id contains a character that is not allowed there; said the unavailable message and hung up
            outcome: unavailable
            both:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Say>Sorry, we cannot take your call right now. Please try again later. Goodbye.</Say>
            <Hangup/>
            </Response>
        "#]],
    );
    c.call_id = "CA1".into();
    c.token = "x".repeat(2000);
    let (reason, _, cause, twiml, _) = run(&c);
    assert_eq!(
        cause,
        Cause::InvalidCallData(RoutingError::TooLong {
            field: telephony_routing::Field::Token,
            len: 2000,
            max: 1024
        })
    );
    // The token never appears anywhere, even when it is the problem.
    assert!(
        !reason.contains("xxx") && !twiml.contains("xxx"),
        "{reason}"
    );
    c.token = String::new();
    assert_eq!(
        run(&c).2,
        Cause::InvalidCallData(RoutingError::Empty {
            field: telephony_routing::Field::Token
        })
    );
}

#[test]
fn hostile_caller_values_are_escaped() {
    let mut c = case();
    c.from = "\"Eve\" <sip:eve@evil.example>&x=']]>\n\r\t\u{0}\u{1b}[31m\u{fffe}😀".into();
    c.to = "+1555'0001111".into();
    c.forwarded_from = Some(String::new()); // treated as absent
    if let Some(agent) = c.agent.as_mut() {
        agent.name = "Ada\n\"root\"".into();
    }
    check(
        c,
        expect![[r#"
            reason: connected to agent "Ada\n\"root\"" (agt_1) by media stream
            outcome: connected_stream
            twiml:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Connect>
            <Stream url="wss://agents.example.com/media">
            <Parameter name="number_id" value="num_1"/>
            <Parameter name="call_id" value="CA0123456789abcdef0123456789abcdef"/>
            <Parameter name="agent_id" value="agt_1"/>
            <Parameter name="token" value="tok_abc.def"/>
            <Parameter name="provider" value="twilio"/>
            <Parameter name="from" value="&quot;Eve&quot; &lt;sip:eve@evil.example&gt;&amp;x=&apos;]]&gt;&#10;&#13;&#9;[31m😀"/>
            <Parameter name="to" value="+1555&apos;0001111"/>
            </Stream>
            </Connect>
            </Response>
            texml:
            <?xml version="1.0" encoding="UTF-8"?>
            <Response>
            <Connect>
            <Stream url="wss://agents.example.com/media" bidirectionalMode="rtp" bidirectionalCodec="PCMU" codec="PCMU">
            <Parameter name="number_id" value="num_1"/>
            <Parameter name="call_id" value="CA0123456789abcdef0123456789abcdef"/>
            <Parameter name="agent_id" value="agt_1"/>
            <Parameter name="token" value="tok_abc.def"/>
            <Parameter name="provider" value="twilio"/>
            <Parameter name="from" value="&quot;Eve&quot; &lt;sip:eve@evil.example&gt;&amp;x=&apos;]]&gt;&#10;&#13;&#9;[31m😀"/>
            <Parameter name="to" value="+1555&apos;0001111"/>
            </Stream>
            </Connect>
            </Response>
        "#]],
    );
}

#[test]
fn hostile_values_in_the_reason_stay_on_one_line() {
    let mut c = case();
    c.agent = None;
    c.number_id = "num\n1".into();
    c.nickname = Some("Sales\r\nINFO fake log line".into());
    let (reason, ..) = run(&c);
    assert!(!reason.contains(['\n', '\r']), "{reason}");
    assert_eq!(
        reason,
        r#"no agent assigned to number "num\n1" ("Sales\r\nINFO fake log line"); said the unavailable message and hung up"#
    );
}

#[test]
fn overlong_caller_values_are_left_out() {
    let mut c = case();
    c.from = "9".repeat(MAX_CALLER_VALUE_LEN + 1);
    c.forwarded_from = Some("8".repeat(MAX_CALLER_VALUE_LEN));
    let (_, outcome, _, twiml, _) = run(&c);
    assert_eq!(outcome, Outcome::ConnectedStream);
    assert!(!twiml.contains(r#"name="from""#), "{twiml}");
    assert!(twiml.contains(&format!(
        r#"<Parameter name="forwarded_from" value="{}"/>"#,
        "8".repeat(256)
    )));
}

#[test]
fn the_fallback_document_apologises_and_hangs_up() {
    let doc = fallback_document();
    assert_well_formed(&doc);
    expect![[r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <Response>
        <Say>We are sorry, a technical problem is keeping us from taking your call. Please try again later. Goodbye.</Say>
        <Hangup/>
        </Response>"#]]
    .assert_eq(&pretty(&doc));
}

#[test]
fn render_into_appends_to_a_reused_buffer() {
    let c = case();
    let (_, _, _, twiml, _) = run(&c);
    let call = InboundCall {
        provider: c.provider,
        to: &c.to,
        from: &c.from,
        forwarded_from: None,
        call_id: &c.call_id,
        token: &c.token,
    };
    let number = NumberRoute {
        id: &c.number_id,
        nickname: None,
        reachable: true,
        fallback: None,
    };
    let agent = AgentRoute {
        id: "agt_1",
        name: "Ada",
        target: "wss://agents.example.com/media",
        fallback: None,
    };
    let decision = decide(&call, &number, Some(&agent), Admission::Admitted);
    let mut buffer = String::from("stale");
    buffer.clear();
    decision.render_into(Dialect::TwiML, &mut buffer);
    assert_eq!(buffer, twiml);
    // The size estimate covers the whole document, so rendering allocates once.
    let rendered = decision.render(Dialect::TeXML);
    assert!(rendered.capacity() >= rendered.len() && rendered.capacity() < rendered.len() * 2);
}

#[test]
fn debug_output_never_shows_the_token() {
    let c = case();
    let call = InboundCall {
        provider: c.provider,
        to: &c.to,
        from: &c.from,
        forwarded_from: None,
        call_id: &c.call_id,
        token: "super-secret-token",
    };
    let number = NumberRoute {
        id: "num_1",
        nickname: None,
        reachable: true,
        fallback: None,
    };
    for target in [
        "wss://agents.example.com/media",
        "sips:agent@sip.example.com",
    ] {
        let agent = AgentRoute {
            id: "agt_1",
            name: "Ada",
            target,
            fallback: None,
        };
        let decision = decide(&call, &number, Some(&agent), Admission::Admitted);
        let debug = format!("{call:?} {decision:?} {}", decision.reason());
        assert!(!debug.contains("super-secret-token"), "{debug}");
        assert!(
            decision
                .render(Dialect::TwiML)
                .contains("super-secret-token")
        );
    }
}

// --- properties --------------------------------------------------------------------------------

/// Characters that break naive XML writers, mixed with arbitrary ones.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '&', '<', '>', '"', '\'', ']', '\n', '\r', '\t', '\0', '\u{1}', '\u{b}', '\u{c}', '\u{1f}',
            '\u{7f}', '\u{85}', '\u{fffe}', '\u{ffff}', '\u{feff}', 'é', '😀', '%', '?', '@', ';', ' ',
        ]),
        2 => prop::char::range('a', 'z'),
    ]
}

fn hostile_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_char(), 0..max).prop_map(String::from_iter)
}

/// Mostly visible-ASCII ids (so that connects happen), sometimes hostile ones.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[!-~]{1,40}", 1 => hostile_string(20)]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        "wss://[a-z]{1,10}\\.example/[!-~]{0,30}",
        "sips?:[a-z]{1,8}@[a-z]{1,10}\\.example[!-~]{0,30}",
        hostile_string(30).prop_map(|s| format!("wss://h/{s}")),
        hostile_string(30).prop_map(|s| format!("sip:a@h{s}")),
        hostile_string(30),
    ]
}

fn fallback() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof!["\\+[1-9][0-9]{1,14}", hostile_string(16)])
}

prop_compose! {
    fn any_case()(
        provider in prop_oneof![Just(Provider::Twilio), Just(Provider::Telnyx)],
        to in hostile_string(20),
        from in prop_oneof![hostile_string(40), hostile_string(300)],
        forwarded_from in prop::option::of(hostile_string(20)),
        call_id in id(),
        token in id(),
        number_id in id(),
        nickname in prop::option::of(hostile_string(20)),
        reachable in prop::bool::weighted(0.9),
        number_fallback in fallback(),
        agent in prop::option::of((id(), hostile_string(20), target(), fallback())),
        admission in prop_oneof![
            6 => Just(Admission::Admitted),
            1 => Just(Admission::NumberLimitReached),
            1 => Just(Admission::AgentLimitReached),
        ],
    ) -> Case {
        Case {
            provider, to, from, forwarded_from, call_id, token, number_id, nickname, reachable, number_fallback,
            agent: agent.map(|(id, name, target, fallback)| Agent { id, name, target, fallback }),
            admission,
        }
    }
}

/// What a value should read as after escaping and parsing: itself minus the characters XML 1.0
/// forbids.
fn xml_clean(value: &str) -> String {
    value
        .chars()
        .filter(|&c| !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'))
        .collect()
}

fn check_round_trip(case: &Case, xml: &str, outcome: Outcome) -> Result<(), TestCaseError> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
    let root = doc.root_element();
    prop_assert_eq!(root.tag_name().name(), "Response");
    let find = |name: &str| root.descendants().find(|n| n.has_tag_name(name));
    match outcome {
        Outcome::ConnectedStream => {
            let agent = case
                .agent
                .as_ref()
                .ok_or_else(|| TestCaseError::fail("connected without agent"))?;
            let stream = find("Stream").ok_or_else(|| TestCaseError::fail("no Stream"))?;
            prop_assert_eq!(stream.attribute("url"), Some(agent.target.as_str()));
            let params: Vec<(&str, &str)> = stream
                .children()
                .filter(|n| n.has_tag_name("Parameter"))
                .map(|n| {
                    (
                        n.attribute("name").unwrap_or_default(),
                        n.attribute("value").unwrap_or_default(),
                    )
                })
                .collect();
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            };
            prop_assert_eq!(get("call_id"), Some(case.call_id.clone()));
            prop_assert_eq!(get("token"), Some(case.token.clone()));
            prop_assert_eq!(get("number_id"), Some(case.number_id.clone()));
            prop_assert_eq!(get("agent_id"), Some(agent.id.clone()));
            let expected_from =
                (case.from.len() <= MAX_CALLER_VALUE_LEN).then(|| xml_clean(&case.from));
            prop_assert_eq!(get("from"), expected_from);
            prop_assert_eq!(get("to"), Some(xml_clean(&case.to)));
            let expected_fwd = case
                .forwarded_from
                .as_deref()
                .filter(|f| !f.is_empty())
                .map(xml_clean);
            prop_assert_eq!(get("forwarded_from"), expected_fwd);
        }
        Outcome::ConnectedSip => {
            let agent = case
                .agent
                .as_ref()
                .ok_or_else(|| TestCaseError::fail("connected without agent"))?;
            let sip = find("Sip").and_then(|n| n.text()).unwrap_or_default();
            prop_assert!(
                sip.starts_with(agent.target.as_str()),
                "{} does not start with {}",
                sip,
                agent.target
            );
            prop_assert!(sip.contains("X-Call-Id="));
        }
        Outcome::DialledFallback(source) => {
            let expected = match source {
                telephony_routing::FallbackSource::Number => case.number_fallback.clone(),
                telephony_routing::FallbackSource::Agent => {
                    case.agent.as_ref().and_then(|a| a.fallback.clone())
                }
            };
            prop_assert_eq!(
                find("Dial").and_then(|n| n.text()).map(str::to_owned),
                expected
            );
        }
        _ => {
            prop_assert!(
                find("Say")
                    .and_then(|n| n.text())
                    .is_some_and(|t| t.starts_with("Sorry"))
            );
            prop_assert!(find("Hangup").is_some());
        }
    }
    Ok(())
}

/// The property below is only worth something if the generator reaches every outcome.
#[test]
fn the_generator_reaches_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = any_case();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        seen.insert(run(&tree.current()).1.as_str());
    }
    let all = [
        "busy",
        "connected_sip",
        "connected_stream",
        "fallback_agent",
        "fallback_number",
        "unavailable",
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever the input, both documents are well-formed XML whose values read back as given.
    #[test]
    fn any_input_renders_well_formed_xml_that_round_trips(case in any_case()) {
        let (reason, outcome, _, twiml, texml) = run(&case);
        check_round_trip(&case, &twiml, outcome)?;
        check_round_trip(&case, &texml, outcome)?;
        prop_assert!(!reason.contains(['\n', '\r']), "{}", reason);
    }
}
