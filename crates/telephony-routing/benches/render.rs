//! The inbound hot path of this crate: `decide` followed by `render`, per decision kind.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use telephony_routing::{
    Admission, AgentRoute, Dialect, InboundCall, NumberRoute, Provider, decide,
};

fn bench(c: &mut Criterion) {
    let call = InboundCall {
        provider: Provider::Twilio,
        to: "+15550001111",
        from: "+15552223333",
        forwarded_from: Some("+15559998888"),
        call_id: "CA0123456789abcdef0123456789abcdef",
        token: "eyJhbGciOiJIUzI1NiJ9.eyJjYWxsIjoiQ0EwMTIzIiwiZXhwIjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJl",
    };
    let number = NumberRoute {
        id: "0190f1c2-7a3b-7c4d-8e5f-6a7b8c9d0e1f",
        nickname: Some("Sales"),
        reachable: true,
        fallback: Some("+15557776666"),
    };
    let stream = AgentRoute {
        id: "0190f1c2-7a3b-7c4d-8e5f-000000000001",
        name: "Ada",
        target: "wss://agents.example.com/v1/media",
        fallback: None,
    };
    let sip = AgentRoute {
        target: "sips:agent@sip.example.com;transport=tls",
        ..stream
    };
    let hostile_call = InboundCall {
        from: "\"Eve\" <sip:eve@evil.example>&x=']]>\n",
        ..call
    };

    let mut group = c.benchmark_group("decide_and_render");
    for (name, call, agent, admission, dialect) in [
        (
            "stream_twiml",
            &call,
            &stream,
            Admission::Admitted,
            Dialect::TwiML,
        ),
        (
            "stream_texml",
            &call,
            &stream,
            Admission::Admitted,
            Dialect::TeXML,
        ),
        (
            "stream_hostile_from",
            &hostile_call,
            &stream,
            Admission::Admitted,
            Dialect::TwiML,
        ),
        (
            "sip_twiml",
            &call,
            &sip,
            Admission::Admitted,
            Dialect::TwiML,
        ),
        (
            "busy_fallback",
            &call,
            &stream,
            Admission::AgentLimitReached,
            Dialect::TwiML,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let decision = decide(
                    black_box(call),
                    black_box(&number),
                    Some(black_box(agent)),
                    admission,
                );
                black_box(decision.render(dialect))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
