//! `webhook-load`: sends signed carrier webhooks, each a new call, at a server and reports
//! throughput and latency percentiles.
//!
//! Two modes:
//! - `--rate R`: open loop. Request `i` is due at `start + i/R`, whatever happened to earlier
//!   ones (no coordinated omission: a slow answer does not delay later sends). tokio's timer
//!   wakes up to 1 ms late, so latency is measured from the send and the largest lateness of a
//!   send is reported apart as `max_lag_ms`.
//! - no `--rate`: closed loop at full speed with `--connections` workers, for throughput.
//!
//! The requests are made from templates, a JSON-lines file (`telephony-seed --templates-out`),
//! one object a line: `{"path": "/webhooks/twilio/voice", "url": "https://public.example/webhooks/twilio/voice",
//! "params": [["AccountSid", "AC..."], ...], "token": "..."}`: a Twilio webhook's form
//! parameters without `CallSid`, the public URL its signature covers and the (benchmark) auth
//! token that signs it.
//!
//! Before any phase, and not timed, `--pool` requests are generated, round robin over the
//! templates (request `n` from template `n % templates`): each gets a `CallSid` unique to the
//! run (`CA` + 32 hex digits: two 64-bit halves, `n` mixed with a random number drawn per run
//! and `n` alone, each scattered by a bijection, so the ids of consecutive calls are as far
//! apart as Twilio's random ones and the database inserts them where random ids go), placed
//! among the parameters in name order as Twilio sends them, and an `X-Twilio-Signature` over the
//! URL and every parameter. All bodies are kept in one buffer, so a send copies nothing. The
//! warm-up and the measured phase draw from the pool in turn; a run that needs more requests
//! than the pool holds starts over from its first, and the summary's `repeated` counts the
//! measured phase's requests sent again that way (0 when every one was a new call).
//!
//! The summary is printed as one JSON object on stdout.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use telephony_vault::SecretString;

/// The signature header, as `telephony_webhook::twilio::SIGNATURE_HEADER` in lower case.
const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
/// Closed loop's default pool: requests per second of run (warm-up and measured).
const CLOSED_POOL_PER_SECOND: u64 = 150_000;

#[derive(Debug, Parser)]
#[command(about = "Send signed carrier webhooks, each a new call, and report latency percentiles")]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    target: String,
    /// JSON-lines file of webhook templates (`telephony-seed --templates-out`).
    #[arg(long)]
    templates: PathBuf,
    /// How many distinct signed requests (calls) to generate before the run. Default: open loop
    /// rate × (warmup + duration) × 1.05 + 1000; closed loop 150,000 × (warmup + duration).
    #[arg(long)]
    pool: Option<u64>,
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
    /// The server's process id: its CPU time over the measured phase is reported per request
    /// beside the load generator's own (`cpu` in the summary; Linux, from `/proc`).
    #[arg(long)]
    server_pid: Option<u32>,
}

impl Args {
    fn pool_size(&self) -> u64 {
        let seconds = self.warmup + self.duration;
        self.pool.unwrap_or_else(|| match self.rate {
            // Rounded up; the open loop sends rate × seconds requests, plus one per phase.
            Some(rate) => (rate as f64 * seconds as f64 * 1.05).ceil() as u64 + 1_000,
            None => CLOSED_POOL_PER_SECOND * seconds,
        })
    }
}

/// One line of the templates file.
#[derive(Debug, Deserialize)]
struct TemplateLine {
    path: String,
    url: String,
    params: Vec<(String, String)>,
    token: String,
}

/// A template ready to be signed: its parameters and its body around the `CallSid`.
#[derive(Debug)]
struct Template {
    /// Index of its URI (target + path) in [`Pool::uris`].
    uri: u32,
    url: String,
    params: Vec<(String, String)>,
    /// Where `CallSid` goes in `params`.
    call_sid_at: usize,
    token: SecretString,
    /// The encoded parameters before `CallSid`, and `&`; empty when there are none.
    head: String,
    /// `&` and the encoded parameters after `CallSid`; empty when there are none.
    tail: String,
}

/// A bijection of the 64-bit integers that scatters consecutive ones (SplitMix64's finalizer):
/// consecutive requests get call ids as far apart as Twilio's random ones, and distinct
/// requests still get distinct ids.
fn scatter(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `CallSid=` + `CA` + 32 hex digits.
const CALL_SID_FIELD_LEN: usize = "CallSid=".len() + 34;

impl Template {
    fn new(line: TemplateLine, uri: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            line.params.iter().all(|(name, _)| name != "CallSid"),
            "a template has a CallSid: webhook-load gives every request its own"
        );
        // Twilio sends the parameters sorted by name: CallSid goes before the first name after it.
        let call_sid_at = line
            .params
            .iter()
            .position(|(name, _)| name.as_str() > "CallSid")
            .unwrap_or(line.params.len());
        let (before, after) = line.params.split_at(call_sid_at);
        let mut head = serde_urlencoded::to_string(before)?;
        if !head.is_empty() {
            head.push('&');
        }
        let mut tail = serde_urlencoded::to_string(after)?;
        if !tail.is_empty() {
            tail.insert(0, '&');
        }
        Ok(Self {
            uri,
            url: line.url,
            params: line.params,
            call_sid_at,
            token: SecretString::new(line.token),
            head,
            tail,
        })
    }

    fn body_len(&self) -> usize {
        self.head.len() + CALL_SID_FIELD_LEN + self.tail.len()
    }
}

/// One pre-generated request.
#[derive(Debug)]
struct Pooled {
    /// Index of its URI in [`Pool::uris`] (templates with the same path share one).
    uri: u32,
    /// Its body: `Pool::bodies[start..end]`.
    start: u32,
    end: u32,
    /// Its `X-Twilio-Signature` (a slice of one shared buffer).
    signature: HeaderValue,
}

/// The pre-generated requests: every body in one buffer.
#[derive(Debug)]
struct Pool {
    bodies: Bytes,
    uris: Vec<Uri>,
    requests: Vec<Pooled>,
    /// How many templates it was made from.
    templates: usize,
    /// Bytes held: bodies, signatures and the request table.
    bytes: usize,
}

impl Pool {
    /// Reads up to `size` templates (more would never be used) and generates `size` signed
    /// requests round robin over them.
    fn generate(path: &PathBuf, target: &str, size: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(size > 0, "--pool must be positive");
        let size = usize::try_from(size).context("--pool is too large")?;
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut uris = Vec::new();
        let mut uri_of_path: HashMap<String, u32> = HashMap::new();
        let mut templates = Vec::new();
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            if templates.len() == size {
                break;
            }
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: TemplateLine = serde_json::from_str(&line)
                .with_context(|| format!("{} line {}", path.display(), number + 1))?;
            let uri = match uri_of_path.get(&parsed.path) {
                Some(&uri) => uri,
                None => {
                    let uri = u32::try_from(uris.len())?;
                    uris.push(
                        format!("{target}{}", parsed.path)
                            .parse::<Uri>()
                            .with_context(|| format!("the URL of {}", parsed.path))?,
                    );
                    uri_of_path.insert(parsed.path.clone(), uri);
                    uri
                }
            };
            templates.push(
                Template::new(parsed, uri)
                    .with_context(|| format!("{} line {}", path.display(), number + 1))?,
            );
        }
        anyhow::ensure!(!templates.is_empty(), "the templates file is empty");

        let body_bytes: usize = (0..size)
            .map(|n| templates[n % templates.len()].body_len())
            .sum();
        anyhow::ensure!(
            u32::try_from(body_bytes).is_ok(),
            "a pool of {size} requests needs {body_bytes} bytes of bodies, more than 4 GiB"
        );
        let prefix: u64 = rand::random();
        let mut bodies = Vec::with_capacity(body_bytes);
        // base64 of a 20-byte HMAC-SHA1.
        let mut signatures = Vec::with_capacity(size * 28);
        let mut signature_ends = Vec::with_capacity(size);
        let mut requests = Vec::with_capacity(size);
        for n in 0..size {
            let template = &templates[n % templates.len()];
            let call_sid = format!(
                "CA{:016x}{:016x}",
                scatter(n as u64 ^ prefix),
                scatter(n as u64)
            );
            let mut params: Vec<(&str, &str)> = Vec::with_capacity(template.params.len() + 1);
            let (before, after) = template.params.split_at(template.call_sid_at);
            params.extend(before.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            params.push(("CallSid", call_sid.as_str()));
            params.extend(after.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let signature =
                telephony_webhook::twilio::sign(&template.url, &params, &template.token);
            signatures.extend_from_slice(signature.as_bytes());
            signature_ends.push(signatures.len());

            let start = bodies.len();
            bodies.extend_from_slice(template.head.as_bytes());
            bodies.extend_from_slice(b"CallSid=");
            bodies.extend_from_slice(call_sid.as_bytes());
            bodies.extend_from_slice(template.tail.as_bytes());
            requests.push(Pooled {
                uri: template.uri,
                // Below 4 GiB, checked above.
                start: start as u32,
                end: bodies.len() as u32,
                signature: HeaderValue::from_static(""),
            });
        }
        let signatures = Bytes::from(signatures);
        let mut from = 0;
        for (request, end) in requests.iter_mut().zip(signature_ends) {
            request.signature = HeaderValue::from_maybe_shared(signatures.slice(from..end))?;
            from = end;
        }
        let bytes = bodies.len() + signatures.len() + requests.len() * size_of::<Pooled>();
        Ok(Self {
            bodies: Bytes::from(bodies),
            uris,
            requests,
            templates: templates.len(),
            bytes,
        })
    }
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
    /// Distinct requests (calls) generated before the run.
    pool: u64,
    /// Requests of the measured phase that were sent before (the run outgrew the pool).
    repeated: u64,
    /// CPU time spent over the measured phase (absent where `/proc` cannot be read).
    cpu: Option<CpuUse>,
}

/// CPU time (user and system, every thread) over the measured phase, per answered request and
/// in cores busy: the server's (`--server-pid`) and the load generator's own. On a machine
/// the two share, the throughput of either server is bounded by the sum per request.
#[derive(Debug, Serialize)]
struct CpuUse {
    server_us_per_request: Option<f64>,
    load_us_per_request: f64,
    server_cores: Option<f64>,
    load_cores: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: Linux's `USER_HZ`, 100 on every
/// architecture it runs on.
const USER_HZ: f64 = 100.0;

/// CPU time a process has used (user and system, all its threads, living and exited), in
/// clock ticks, from `/proc/<pid>/stat` (`self` for this process).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// CPU ticks of the load generator and of the server (when its pid is known) at one moment.
fn cpu_snapshot(server: Option<u32>) -> Option<(u64, Option<u64>)> {
    Some((
        cpu_ticks("self")?,
        server.and_then(|pid| cpu_ticks(&pid.to_string())),
    ))
}

fn cpu_use(
    before: Option<(u64, Option<u64>)>,
    after: Option<(u64, Option<u64>)>,
    requests: u64,
    seconds: f64,
) -> Option<CpuUse> {
    let ((load_0, server_0), (load_1, server_1)) = (before?, after?);
    let requests = requests.max(1) as f64;
    let us = |ticks: u64| ticks as f64 / USER_HZ * 1e6 / requests;
    let cores = |ticks: u64| ticks as f64 / USER_HZ / seconds.max(f64::MIN_POSITIVE);
    let server = server_0.zip(server_1).map(|(a, b)| b.saturating_sub(a));
    let load = load_1.saturating_sub(load_0);
    Some(CpuUse {
        server_us_per_request: server.map(us),
        load_us_per_request: us(load),
        server_cores: server.map(cores),
        load_cores: cores(load),
    })
}

struct Shared {
    client: Client<HttpConnector, Full<Bytes>>,
    pool: Pool,
    next: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    async fn send_one(&self) -> bool {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let pooled = &self.pool.requests[(n % self.pool.requests.len() as u64) as usize];
        let body = self
            .pool
            .bodies
            .slice(pooled.start as usize..pooled.end as usize);
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.pool.uris[pooled.uri as usize].clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(SIGNATURE, pooled.signature.clone());
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

#[allow(clippy::print_stderr)]
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate != Some(0), "--rate must be positive");
    let target = args.target.trim_end_matches('/').to_owned();
    let generating = Instant::now();
    let pool = Pool::generate(&args.templates, &target, args.pool_size())?;
    eprintln!(
        "webhook-load: pool of {} signed requests over {} templates generated in {:.2}s ({:.0} MiB)",
        pool.requests.len(),
        pool.templates,
        generating.elapsed().as_secs_f64(),
        pool.bytes as f64 / (1024.0 * 1024.0)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(run(args, pool))?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

async fn run(args: Args, pool: Pool) -> anyhow::Result<Summary> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.connections.max(64))
        .build(connector);
    let pool_size = pool.requests.len() as u64;
    let shared = Arc::new(Shared {
        client,
        pool,
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });

    if args.warmup > 0 {
        let _ = phase(&shared, &args, Duration::from_secs(args.warmup)).await?;
        shared.ok.store(0, Ordering::Relaxed);
        shared.errors.store(0, Ordering::Relaxed);
    }
    let measured = Duration::from_secs(args.duration);
    let first = shared.next.load(Ordering::Relaxed);
    let cpu_before = cpu_snapshot(args.server_pid);
    let (histogram, elapsed, max_lag) = phase(&shared, &args, measured).await?;
    let cpu_after = cpu_snapshot(args.server_pid);
    // Every send of the phase has been answered: `next` is one past its last request.
    let last = shared.next.load(Ordering::Relaxed);

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
        pool: pool_size,
        repeated: last.saturating_sub(first.max(pool_size)),
        cpu: cpu_use(cpu_before, cpu_after, ok + errors, elapsed.as_secs_f64()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_calls_get_ids_far_apart_and_never_the_same() {
        let ids: Vec<u64> = (0..10_000u64).map(scatter).collect();
        let distinct: std::collections::HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
        // Consecutive integers would be 1 apart; random 64-bit ids are about 2^62 apart on
        // average (a third of the range).
        let mean_gap = ids
            .windows(2)
            .map(|w| w[0].abs_diff(w[1]) as f64)
            .sum::<f64>()
            / (ids.len() - 1) as f64;
        assert!(mean_gap > 2f64.powi(61), "mean gap {mean_gap:e}");
        // Sorted, the ids are not in request order (an index inserts them all over).
        let in_order = ids.windows(2).filter(|w| w[0] < w[1]).count();
        assert!(
            (4_000..6_000).contains(&in_order),
            "{in_order} of 9,999 in order"
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn cpu_time_is_read_from_proc_and_divided_per_request() {
        let before = cpu_ticks("self").expect("this process's CPU time");
        // Busy for at least three clock ticks of this thread's own CPU.
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_ticks("self").expect("this process's CPU time");
        assert!(after >= before + 3, "{before} -> {after}");
        assert_eq!(cpu_ticks("not-a-pid"), None);

        // 150 ticks (1.5 s) of server and 50 of load generator over 10,000 requests in 2 s.
        let usage = cpu_use(
            Some((100, Some(1000))),
            Some((150, Some(1150))),
            10_000,
            2.0,
        )
        .expect("both snapshots");
        assert_eq!(usage.server_us_per_request, Some(150.0));
        assert_eq!(usage.load_us_per_request, 50.0);
        assert_eq!(usage.server_cores, Some(0.75));
        assert_eq!(usage.load_cores, 0.25);
        let no_server = cpu_use(Some((0, None)), Some((10, None)), 100, 1.0).expect("load only");
        assert_eq!(no_server.server_us_per_request, None);
        assert!(cpu_use(None, Some((10, None)), 100, 1.0).is_none());
    }

    #[test]
    fn every_request_is_a_new_signed_call_round_robin_over_the_templates() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("webhook-load-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("templates.jsonl");
        let line = |to: &str, token: &str| {
            serde_json::json!({
                "path": "/webhooks/twilio/voice",
                "url": "https://gw.example/webhooks/twilio/voice",
                "params": [["AccountSid", "AC01"], ["ApiVersion", "2010-04-01"],
                           ["CallStatus", "ringing"], ["From", "+14155550000"], ["To", to]],
                "token": token,
            })
            .to_string()
        };
        std::fs::write(
            &file,
            format!(
                "{}\n\n{}\n",
                line("+12000000000", "token-a"),
                line("+12000000001", "token b")
            ),
        )?;
        let pool = Pool::generate(&file, "http://127.0.0.1:1", 5)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(
            (pool.requests.len(), pool.templates, pool.uris.len()),
            (5, 2, 1)
        );
        assert_eq!(
            pool.uris[0].to_string(),
            "http://127.0.0.1:1/webhooks/twilio/voice"
        );
        let mut call_sids = std::collections::HashSet::new();
        for (n, request) in pool.requests.iter().enumerate() {
            let body = &pool.bodies[request.start as usize..request.end as usize];
            let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)?;
            let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                names,
                [
                    "AccountSid",
                    "ApiVersion",
                    "CallSid",
                    "CallStatus",
                    "From",
                    "To"
                ]
            );
            let call_sid = &params[2].1;
            assert!(
                call_sid.starts_with("CA") && call_sid.len() == 34,
                "{call_sid}"
            );
            assert!(
                call_sid[2..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            );
            assert!(call_sids.insert(call_sid.clone()));
            assert_eq!(
                u64::from_str_radix(&call_sid[18..], 16)?,
                scatter(n as u64),
                "the second half is request {n}'s number, scattered"
            );
            let (to, token) = if n % 2 == 0 {
                ("+12000000000", "token-a")
            } else {
                ("+12000000001", "token b")
            };
            assert_eq!(params[5].1, to);
            telephony_webhook::twilio::verify(
                "https://gw.example/webhooks/twilio/voice",
                &params,
                Some(request.signature.to_str()?),
                &[&SecretString::new(token)],
            )?;
        }
        Ok(())
    }
}
