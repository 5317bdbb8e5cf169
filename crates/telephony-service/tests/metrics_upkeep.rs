//! A gateway that nobody scrapes keeps a bounded amount of metrics in memory: the service's
//! upkeep folds every webhook's latency sample into its histogram's buckets, where `/metrics`
//! finds them.
//!
//! Its own test binary: it counts every byte the process allocates (`cap`), which other tests
//! running beside it would disturb.
//!
//! The runtime has one thread, so the upkeep folds between the rounds of recording, never
//! during one. A fold that meets a recording in flight can lose samples in the exporter's
//! sample store (metrics-util 0.20's `AtomicBucket`: a recording that starts a new block
//! publishes it before linking the blocks behind it, and a fold in between misses them); that
//! race is the library's, and here it would only make the count below uncertain.

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use telephony_service::metrics::{WEBHOOK_LATENCY, install_recorder, run_upkeep};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Latencies recorded in all: kept sample by sample, they took 16 MB.
const SAMPLES: usize = 1_000_000;
const ROUND: usize = 20_000;

// One thread (see above): the upkeep runs only while the test sleeps between rounds.
#[tokio::test(flavor = "current_thread")]
async fn webhook_latencies_recorded_while_nobody_scrapes_metrics_take_bounded_memory() {
    let handle = install_recorder().expect("recorder");
    let route = "/webhooks/twilio/voice";
    let latency = metrics::histogram!(WEBHOOK_LATENCY, "route" => route);
    let upkeep = tokio::spawn(run_upkeep(handle.clone(), Duration::from_millis(2)));
    // The histogram's storage and the upkeep's first pass exist before the count starts.
    latency.record(0.000_1);
    tokio::time::sleep(Duration::from_millis(20)).await;

    let before = ALLOCATOR.allocated();
    let mut most = 0;
    for _ in 0..SAMPLES / ROUND {
        for _ in 0..ROUND {
            latency.record(0.000_3);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        most = most.max(ALLOCATOR.allocated().saturating_sub(before));
    }
    upkeep.abort();

    // A quarter of what keeping them costs: room for an upkeep pass delayed on a busy machine,
    // and for the blocks a pass frees only once no thread still reads them.
    assert!(
        most < SAMPLES * 4,
        "{SAMPLES} latencies grew the heap by up to {most} bytes: samples are kept, not folded"
    );
    // Every sample was folded once: none lost, none counted twice.
    let rendered = handle.render();
    let prefix = format!("{WEBHOOK_LATENCY}_count{{route=\"{route}\"}} ");
    let counted: Option<usize> = rendered
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|count| count.parse().ok());
    assert!(
        counted == Some(SAMPLES + 1),
        "the folded samples are all in /metrics: counted {counted:?} of {}",
        SAMPLES + 1
    );
}
