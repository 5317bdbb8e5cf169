//! Criterion bench of the inbound-call hot path in process: one signed Twilio incoming-call
//! webhook, a new call each time, through the service ([`telephony_service::App`], `oneshot`)
//! over a seeded SQLite registry. The same path `scripts/hotpath-check.sh` counts instructions of; this one reports
//! time per webhook (`cargo bench -p telephony-service --bench hotpath`). A call with no limit
//! is answered before its write, so this is the time to an answer, with the group-committed
//! writes running between iterations (a full queue of writes makes a webhook wait).

use criterion::{Criterion, criterion_group, criterion_main};

#[allow(dead_code)]
#[path = "../examples/hotpath/fixture.rs"]
mod fixture;

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, _registry, _dir) = runtime.block_on(fixture::app()).expect("the fixture");
    let mut call = 0_u64;
    c.bench_function("twilio_voice_webhook_in_process", |b| {
        b.iter(|| {
            call += 1;
            let request = fixture::webhook(call % fixture::NUMBERS, call).expect("a request");
            runtime
                .block_on(fixture::drive(&app, request))
                .expect("answered with the agent's stream");
        });
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
