//! Sustained webhook load on the real gateway while the carrier misbehaves: signed Twilio voice
//! webhooks and status callbacks at a fixed rate for 15 s, while REST workflows on another
//! number run against a carrier emulator injecting faults (503, 429, dropped connections,
//! timeouts) into their carrier calls. Every valid webhook must be answered 200, and the
//! gateway's resident memory must not grow (VmRSS after a warm-up against the end).

#![allow(clippy::print_stdout)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Emulator, Env, Http, free_port, start_emulator, wait_ready};
use telephony_vault::SecretString;

const TWILIO_SID: &str = "AC66666666666666666666666666666666";
const TWILIO_TOKEN: &str = "load-twilio-auth-token-secret-01";
/// Calls started per second; each is a voice webhook and a status callback.
const CALLS_PER_SEC: u64 = 100;
const DURATION: Duration = Duration::from_secs(15);
const WARM_UP: Duration = Duration::from_secs(4);
const CONCURRENCY: usize = 32;

fn e164(i: usize) -> String {
    format!("+1415555{:04}", 100 + i)
}

/// Signs and sends a Twilio webhook to `path`; its status (0: no answer).
async fn webhook(http: &Http, gateway: &str, path: &str, params: &[(&str, &str)]) -> u16 {
    let url = format!("{gateway}{path}");
    let signature = telephony_webhook::twilio::sign(&url, params, &SecretString::new(TWILIO_TOKEN));
    let body = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    http.try_send(
        "POST",
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-twilio-signature", &signature),
        ],
        Some(body),
    )
    .await
    .map_or(0, |(status, _)| status)
}

/// The gateway's resident set size, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_webhook_load_with_carrier_faults_has_no_errors_and_no_memory_growth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let seed = support::twilio_seed(TWILIO_SID, TWILIO_TOKEN, 3);
    let (_emulator_proc, emulator_url) = start_emulator(&support::write_seed(dir.path(), &seed));
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gateway.db").display()
    );
    let mut env = Env::new(dir.path(), &database_url, port, &emulator_url);
    env.set("TELEPHONY_CARRIER_TIMEOUT_MS", "500")
        .set("TELEPHONY_RECOVERY_INTERVAL_SECS", "1")
        .set("TELEPHONY_STALE_OPERATION_SECS", "3")
        .set("RUST_LOG", "warn");
    let key = env.init_org("acme");
    let gateway_proc = env.serve(&dir.path().join("gateway.log"));
    let pid = gateway_proc.pid();
    let http = Http::new();
    wait_ready(&http, &gateway).await;
    let emulator = Emulator {
        http: http.clone(),
        url: emulator_url,
    };
    let api = |path: &str| format!("{gateway}/v1{path}");
    let (status, connection) = http
        .json("POST", &api("/carriers"), Some(&key), Some(json!({"name": "twilio", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN})))
        .await;
    assert_eq!(status, 201, "{connection}");
    let connection = connection["id"].as_str().expect("id").to_owned();
    let (status, agent) = http
        .json(
            "POST",
            &api("/agents"),
            Some(&key),
            Some(json!({"name": "Ada", "target": "wss://agents.example.com/media"})),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    let agent = agent["id"].as_str().expect("id").to_owned();
    for i in 0..2 {
        let (status, body) = http
            .json("POST", &api("/numbers/import"), Some(&key), Some(json!({"connection_id": connection, "e164": e164(i), "mode": "managed", "agent_id": agent})))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // REST workflows on the third number, each carrier call meeting a fault in turn.
    let running = Arc::new(AtomicBool::new(true));
    let workflows = {
        let (http, emulator, key, connection, api_base) = (
            http.clone(),
            emulator.clone(),
            key.clone(),
            connection.clone(),
            format!("{gateway}/v1"),
        );
        let running = Arc::clone(&running);
        tokio::spawn(async move {
            let faults = [
                json!({"path": "/2010-04-01/*", "status": 503, "times": 1}),
                json!({"path": "/2010-04-01/*", "status": 429, "times": 1}),
                json!({"path": "/2010-04-01/*", "drop_connection": true, "times": 1}),
                json!({"path": "/2010-04-01/*", "delay_ms": 900, "times": 1}),
            ];
            let (mut installed, mut workflows, mut server_errors) = (0_u64, 0_u64, 0_u64);
            let mut round = 0_usize;
            while running.load(Ordering::Relaxed) {
                let fault = faults[round % faults.len()].clone();
                round += 1;
                emulator.fault(fault).await;
                installed += 1;
                let (_, list) = http
                    .json("GET", &format!("{api_base}/numbers"), Some(&key), None)
                    .await;
                let existing = list["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|n| n["e164"] == e164(2))
                    .and_then(|n| n["id"].as_str().map(str::to_owned));
                let (status, _) = match existing {
                    None => {
                        http.json("POST", &format!("{api_base}/numbers/import"), Some(&key),
                            Some(json!({"connection_id": connection, "e164": e164(2), "mode": "managed"}))).await
                    }
                    Some(id) if round.is_multiple_of(3) => {
                        http.json("DELETE", &format!("{api_base}/numbers/{id}"), Some(&key), None).await
                    }
                    Some(id) => {
                        let mode = if round.is_multiple_of(2) { "managed" } else { "outbound_only" };
                        http.json("PATCH", &format!("{api_base}/numbers/{id}"), Some(&key),
                            Some(json!({"webhook_mode": mode}))).await
                    }
                };
                workflows += 1;
                if status == 500 {
                    server_errors += 1;
                }
            }
            let (_, left) = emulator
                .http
                .json(
                    "GET",
                    &format!("{}/_emulator/faults", emulator.url),
                    None,
                    None,
                )
                .await;
            let unused = left.as_array().map_or(0, Vec::len) as u64;
            emulator.clear_faults().await;
            (installed - unused, workflows, server_errors)
        })
    };

    // The webhook load: CALLS_PER_SEC calls a second, each a voice webhook then its
    // status callback, at most CONCURRENCY in flight.
    let served = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / CALLS_PER_SEC));
    let mut rss_start = None;
    let mut call = 0_u64;
    while start.elapsed() < DURATION {
        tick.tick().await;
        if rss_start.is_none() && start.elapsed() >= WARM_UP {
            rss_start = Some(rss_kib(pid));
        }
        call += 1;
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore");
        let (http, gateway, served, errors) = (
            http.clone(),
            gateway.clone(),
            Arc::clone(&served),
            Arc::clone(&errors),
        );
        tokio::spawn(async move {
            let call_sid = format!("CA{call:032x}");
            let to = e164(usize::from(call.is_multiple_of(2)));
            let mut params = vec![
                ("AccountSid", TWILIO_SID),
                ("CallSid", call_sid.as_str()),
                ("From", "+15005550006"),
                ("To", to.as_str()),
            ];
            let status = webhook(&http, &gateway, "/webhooks/twilio/voice", &params).await;
            if status == 200 {
                served.fetch_add(1, Ordering::Relaxed);
            } else {
                errors
                    .lock()
                    .expect("lock")
                    .push(format!("voice {call_sid}: {status}"));
            }
            params.push(("CallStatus", "completed"));
            let status = webhook(&http, &gateway, "/webhooks/twilio/status", &params).await;
            if (200..300).contains(&status) {
                served.fetch_add(1, Ordering::Relaxed);
            } else {
                errors
                    .lock()
                    .expect("lock")
                    .push(format!("status {call_sid}: {status}"));
            }
            drop(permit);
        });
    }
    // Let the last calls finish.
    let _ = permits
        .acquire_many(u32::try_from(CONCURRENCY).expect("small"))
        .await
        .expect("semaphore");
    let elapsed = start.elapsed();
    running.store(false, Ordering::Relaxed);
    let (faults_injected, workflows, server_errors) = workflows.await.expect("workflows");
    let rss_end = rss_kib(pid);
    let rss_start = rss_start.expect("sampled after the warm-up");
    let served = served.load(Ordering::Relaxed);
    let errors = errors.lock().expect("lock").clone();
    println!(
        "load with faults: {call} calls, {served} webhooks served in {:.1} s ({:.0} rps), \
         {} errors; {workflows} REST workflows with {faults_injected} carrier faults injected \
         ({server_errors} answered 500); RSS after {} s warm-up {rss_start} KiB, at the end \
         {rss_end} KiB ({:+.1}%)",
        elapsed.as_secs_f64(),
        served as f64 / elapsed.as_secs_f64(),
        errors.len(),
        WARM_UP.as_secs(),
        (rss_end as f64 - rss_start as f64) * 100.0 / rss_start as f64
    );
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert_eq!(served, call * 2);
    assert!(faults_injected > 0, "no carrier fault was injected");
    assert_eq!(server_errors, 0, "a REST workflow answered 500");
    // Allowed slack: 20% and 8 MiB (allocator and database page caches settling).
    assert!(
        rss_end <= rss_start + rss_start / 5 + 8 * 1024,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
}

/// Calls with no limit to count are answered before their write (see
/// `Registry::answer_inbound_call`); a gateway told to stop (SIGTERM) writes them before it
/// exits, so every call it answered is on record after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_under_load_records_every_call_it_answered() {
    const CALLS: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let seed = support::twilio_seed(TWILIO_SID, TWILIO_TOKEN, 1);
    let (_emulator_proc, emulator_url) = start_emulator(&support::write_seed(dir.path(), &seed));
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gateway.db").display()
    );
    let env = Env::new(dir.path(), &database_url, port, &emulator_url);
    let key = env.init_org("acme");
    let log = dir.path().join("gateway.log");
    let mut gateway_proc = env.serve(&log);
    let http = Http::new();
    wait_ready(&http, &gateway).await;
    let api = |path: &str| format!("{gateway}/v1{path}");
    let (status, connection) = http
        .json("POST", &api("/carriers"), Some(&key), Some(json!({"name": "twilio", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN})))
        .await;
    assert_eq!(status, 201, "{connection}");
    let (status, agent) = http
        .json(
            "POST",
            &api("/agents"),
            Some(&key),
            Some(json!({"name": "Ada", "target": "wss://agents.example.com/media"})),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    let (status, body) = http
        .json("POST", &api("/numbers/import"), Some(&key), Some(json!({"connection_id": connection["id"], "e164": e164(0), "mode": "managed", "agent_id": agent["id"]})))
        .await;
    assert_eq!(status, 201, "{body}");

    let answers = futures::future::join_all((0..CALLS).map(|call| {
        let (http, gateway) = (http.clone(), gateway.clone());
        async move {
            let call_sid = format!("CA{call:032x}");
            let to = e164(0);
            let params = [
                ("AccountSid", TWILIO_SID),
                ("CallSid", call_sid.as_str()),
                ("From", "+15005550006"),
                ("To", to.as_str()),
            ];
            webhook(&http, &gateway, "/webhooks/twilio/voice", &params).await
        }
    }))
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    // Stopped at once, while the last calls may still wait for their write.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &gateway_proc.pid().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let exit = gateway_proc.0.wait().expect("gateway exits");
    assert!(exit.success(), "{exit:?}");

    // Restarted on another port: between the stop and the restart, the stopped gateway's port
    // can be taken as the local port of any outgoing connection (the other test of this
    // binary runs a load in parallel), and the restart would fail to listen.
    let port = free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let restarted_env = Env::new(dir.path(), &database_url, port, &emulator_url);
    let _restarted = restarted_env.serve(&log);
    wait_ready(&http, &gateway).await;
    let (status, calls) = http
        .json(
            "GET",
            &format!("{gateway}/v1/calls?limit=500"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{calls}");
    let recorded = calls["data"].as_array().map_or(0, Vec::len);
    println!("stopped right after {CALLS} answered calls: {recorded} recorded after a restart");
    assert_eq!(recorded, CALLS, "an answered call was lost at shutdown");
}
