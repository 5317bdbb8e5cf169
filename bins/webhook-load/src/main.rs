//! `webhook-load`: replays prepared, signed carrier webhooks against a server and reports
//! throughput and latency percentiles.
//!
//! Two modes:
//! - `--rate R`: open loop. Request `i` is due at `start + i/R`, whatever happened to earlier
//!   ones (no coordinated omission: a slow answer does not delay later sends). tokio's timer
//!   wakes up to 1 ms late, so latency is measured from the send and the largest lateness of a
//!   send is reported apart as `max_lag_ms`.
//! - no `--rate`: closed loop at full speed with `--connections` workers, for throughput.
//!
//! The requests come from a JSON-lines file, one object a line:
//! `{"path": "/webhooks/twilio/voice", "body": "AccountSid=...", "headers": [["X-Twilio-Signature", "..."]]}`,
//! used round robin. The summary is printed as one JSON object on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(about = "Replay signed carrier webhooks and report latency percentiles")]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    target: String,
    /// JSON-lines file of prepared requests.
    #[arg(long)]
    requests: PathBuf,
    /// Requests per second (open loop). Without it, closed loop at full speed.
    #[arg(long)]
    rate: Option<u64>,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent workers in closed-loop mode.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of warm-up before measuring (same load, not recorded).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// A label copied into the summary.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Deserialize)]
struct Prepared {
    path: String,
    body: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct Summary {
    label: String,
    mode: &'static str,
    target_rate: Option<u64>,
    seconds: f64,
    requests: u64,
    ok: u64,
    errors: u64,
    throughput_rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    max_lag_ms: f64,
}

struct Shared {
    client: Client<HttpConnector, Full<Bytes>>,
    target: String,
    requests: Vec<Prepared>,
    next: AtomicUsize,
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    async fn send_one(&self) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.requests.len();
        let prepared = &self.requests[i];
        let mut builder = http::Request::post(format!("{}{}", self.target, prepared.path))
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in &prepared.headers {
            builder = builder.header(name, value);
        }
        let Ok(request) = builder.body(Full::new(Bytes::from(prepared.body.clone()))) else {
            return false;
        };
        match self.client.request(request).await {
            Ok(response) => {
                let success = response.status().is_success();
                let drained = response.into_body().collect().await.is_ok();
                success && drained
            }
            Err(_) => false,
        }
    }

    fn count(&self, success: bool) {
        if success {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.requests)
        .with_context(|| format!("reading {}", args.requests.display()))?;
    let requests = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str::<Prepared>)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the requests file")?;
    anyhow::ensure!(!requests.is_empty(), "the requests file is empty");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(run(args, requests))?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

async fn run(args: Args, requests: Vec<Prepared>) -> anyhow::Result<Summary> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.connections.max(64))
        .build(connector);
    let shared = Arc::new(Shared {
        client,
        target: args.target.trim_end_matches('/').to_owned(),
        requests,
        next: AtomicUsize::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });

    if args.warmup > 0 {
        let _ = phase(&shared, &args, Duration::from_secs(args.warmup)).await?;
        shared.ok.store(0, Ordering::Relaxed);
        shared.errors.store(0, Ordering::Relaxed);
    }
    let measured = Duration::from_secs(args.duration);
    let (histogram, elapsed, max_lag) = phase(&shared, &args, measured).await?;

    let ok = shared.ok.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Summary {
        label: args.label.clone(),
        mode: if args.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        },
        target_rate: args.rate,
        seconds: elapsed.as_secs_f64(),
        requests: ok + errors,
        ok,
        errors,
        throughput_rps: ok as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: histogram.max() as f64 / 1000.0,
        max_lag_ms: max_lag.as_secs_f64() * 1000.0,
    })
}

/// Runs one phase and returns the latency histogram (microseconds), how long it took and the
/// largest delay between a request's due time and its send (open loop).
async fn phase(
    shared: &Arc<Shared>,
    args: &Args,
    length: Duration,
) -> anyhow::Result<(Histogram<u64>, Duration, Duration)> {
    let new_histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let mut histogram = new_histogram()?;
    let started = Instant::now();
    let deadline = started + length;
    let mut max_lag = Duration::ZERO;
    match args.rate {
        Some(rate) => {
            anyhow::ensure!(rate > 0, "--rate must be positive");
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let mut due = started;
            let mut tasks = Vec::new();
            while due < deadline {
                tokio::time::sleep_until(due.into()).await;
                let shared = Arc::clone(shared);
                let scheduled = due;
                tasks.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let success = shared.send_one().await;
                    shared.count(success);
                    // tokio's timer wakes up to 1 ms late, so the latency is measured from the
                    // send; the lateness of the send itself is reported apart (`max_lag_ms`), so
                    // a stalled server still shows: its backlog delays the sends.
                    (sent.elapsed(), sent.saturating_duration_since(scheduled))
                }));
                due += interval;
            }
            for task in tasks {
                let (latency, lag) = task.await?;
                histogram.record(micros(latency))?;
                max_lag = max_lag.max(lag);
            }
        }
        None => {
            let mut workers = Vec::new();
            for _ in 0..args.connections.max(1) {
                let shared = Arc::clone(shared);
                let mut own = new_histogram()?;
                workers.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        let success = shared.send_one().await;
                        shared.count(success);
                        own.record(micros(sent.elapsed()))?;
                    }
                    Ok::<_, hdrhistogram::RecordError>(own)
                }));
            }
            for worker in workers {
                histogram.add(worker.await??)?;
            }
        }
    }
    Ok((histogram, started.elapsed(), max_lag))
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}
