//! Two `telephony-gateway` processes on one PostgreSQL behave as one: both import the same
//! numbers at once (each number imported once, the other attempt refused), both change the same
//! numbers at once (no lost update), both remove numbers while webhooks signed like Twilio's are
//! routed through both (after a removal has answered and the route cache's bound has passed, no
//! webhook is routed to the removed number by either instance).
//!
//! Needs `TELEPHONY_TEST_POSTGRES_URL` (skipped without it, a failure with `CI=true`).

#![allow(clippy::print_stdout)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Emulator, Env, Http, PgDatabase, free_port, pending_operations, start_emulator};
use telephony_vault::SecretString;

const TWILIO_SID: &str = "AC55555555555555555555555555555555";
const TWILIO_TOKEN: &str = "instances-twilio-auth-token-0001";
const NUMBERS: usize = 8;
/// The route cache's staleness bound given to both instances
/// (`TELEPHONY_ROUTE_CACHE_BOUND_MS`), and the margin the test adds to it before it expects
/// every instance to know a removal.
const ROUTE_CACHE_BOUND_MS: u64 = 200;
const MARGIN_MS: u64 = 300;

fn e164(i: usize) -> String {
    format!("+1415555{:04}", 100 + i)
}

/// A signed Twilio voice webhook for a new call to `to`, sent to `instance`; its status.
async fn voice_webhook(http: &Http, public: &str, instance: &str, to: &str, call: u64) -> u16 {
    let call_sid = format!("CA{call:032x}");
    let params = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", call_sid.as_str()),
        ("From", "+15005550006"),
        ("To", to),
    ];
    let signature = telephony_webhook::twilio::sign(
        &format!("{public}/webhooks/twilio/voice"),
        &params,
        &SecretString::new(TWILIO_TOKEN),
    );
    let body = format!(
        "AccountSid={TWILIO_SID}&CallSid={call_sid}&From=%2B15005550006&To={}",
        to.replace('+', "%2B")
    );
    http.try_send(
        "POST",
        &format!("{instance}/webhooks/twilio/voice"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-twilio-signature", &signature),
        ],
        Some(body),
    )
    .await
    .map_or(0, |(status, _)| status)
}

/// Sends two requests at the same time; both answers.
async fn at_once(
    http: &Http,
    key: &str,
    first: (&str, String, Option<Value>),
    second: (&str, String, Option<Value>),
) -> ((u16, Value), (u16, Value)) {
    tokio::join!(
        http.json(first.0, &first.1, Some(key), first.2),
        http.json(second.0, &second.1, Some(key), second.2),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_import_change_remove_and_route_as_one() {
    let Some(pg) = PgDatabase::create("tg_instances") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (free_port(), free_port());
    // Both instances sit behind one public URL (a load balancer's): numbers point there and
    // webhooks are signed over it, whichever instance receives them.
    let public = format!("http://127.0.0.1:{port_a}");
    let seed = support::twilio_seed(TWILIO_SID, TWILIO_TOKEN, NUMBERS);
    let (_emulator_proc, emulator_url) = start_emulator(&support::write_seed(dir.path(), &seed));
    let mut env_a = Env::new(dir.path(), &pg.url, port_a, &emulator_url);
    env_a.set(
        "TELEPHONY_ROUTE_CACHE_BOUND_MS",
        ROUTE_CACHE_BOUND_MS.to_string(),
    );
    let mut env_b = env_a.clone();
    env_b
        .set("TELEPHONY_LISTEN", format!("127.0.0.1:{port_b}"))
        .set("TELEPHONY_PUBLIC_URL", public.clone());
    let key = env_a.init_org("acme");
    let _a = env_a.serve(&dir.path().join("a.log"));
    let _b = env_b.serve(&dir.path().join("b.log"));
    let http = Http::new();
    let (a, b) = (public.clone(), format!("http://127.0.0.1:{port_b}"));
    support::wait_ready(&http, &a).await;
    support::wait_ready(&http, &b).await;
    let emulator = Emulator {
        http: http.clone(),
        url: emulator_url,
    };
    let api = |instance: &str, path: &str| format!("{instance}/v1{path}");

    let (status, connection) = http
        .json("POST", &api(&a, "/carriers"), Some(&key), Some(json!({"name": "twilio", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN})))
        .await;
    assert_eq!(status, 201, "{connection}");
    let connection = connection["id"].as_str().expect("id").to_owned();
    let mut agents = Vec::new();
    for name in ["Ada", "Grace"] {
        let (status, agent) = http
            .json(
                "POST",
                &api(&b, "/agents"),
                Some(&key),
                Some(json!({"name": name, "target": format!("wss://agents.example.com/{name}")})),
            )
            .await;
        assert_eq!(status, 201, "{agent}");
        agents.push(agent["id"].as_str().expect("id").to_owned());
    }

    // 1. Both import every number at once: one import each, the other attempt refused.
    let mut import_answers: std::collections::BTreeMap<u16, usize> = Default::default();
    for i in 0..NUMBERS {
        let body = json!({"connection_id": connection, "e164": e164(i), "mode": "managed"});
        let (first, second) = at_once(
            &http,
            &key,
            ("POST", api(&a, "/numbers/import"), Some(body.clone())),
            ("POST", api(&b, "/numbers/import"), Some(body)),
        )
        .await;
        let statuses = [first.0, second.0];
        for status in statuses {
            *import_answers.entry(status).or_default() += 1;
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{}: {first:?} {second:?}",
            e164(i)
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{}: {first:?} {second:?}",
            e164(i)
        );
    }
    let (_, list) = http
        .json("GET", &api(&b, "/numbers"), Some(&key), None)
        .await;
    let listed: Vec<Value> = list["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), NUMBERS, "{list}");
    let ids: Vec<String> = (0..NUMBERS)
        .map(|i| {
            let matching: Vec<&Value> = listed.iter().filter(|n| n["e164"] == e164(i)).collect();
            assert_eq!(matching.len(), 1, "{} imported twice: {list}", e164(i));
            matching[0]["id"].as_str().expect("id").to_owned()
        })
        .collect();
    for i in 0..NUMBERS {
        assert_eq!(
            emulator.twilio_voice_url(&e164(i)).await,
            Some(format!("{public}/webhooks/twilio/voice"))
        );
    }

    // 2. Both change every number at once: different fields (an agent on one instance, a
    //    nickname on the other), then the same field (two agents). Every change that answered
    //    200 is there afterwards (different fields), or the last word is one of the answered
    //    ones (same field); both instances show the same.
    let mut lost = Vec::new();
    let mut patches = 0;
    for (i, id) in ids.iter().enumerate() {
        let nickname = format!("line {i}");
        let (by_a, by_b) = at_once(
            &http,
            &key,
            (
                "PATCH",
                api(&a, &format!("/numbers/{id}")),
                Some(json!({"agent_id": agents[0]})),
            ),
            (
                "PATCH",
                api(&b, &format!("/numbers/{id}")),
                Some(json!({"nickname": nickname})),
            ),
        )
        .await;
        patches += 2;
        for (status, body) in [&by_a, &by_b] {
            assert!(*status == 200 || *status == 409, "{status}: {body}");
        }
        let (_, seen_a) = http
            .json("GET", &api(&a, &format!("/numbers/{id}")), Some(&key), None)
            .await;
        let (_, seen_b) = http
            .json("GET", &api(&b, &format!("/numbers/{id}")), Some(&key), None)
            .await;
        assert_eq!(seen_a, seen_b, "the instances disagree");
        if by_a.0 == 200 && seen_a["agent_id"] != agents[0].as_str() {
            lost.push(format!(
                "{}: the agent set through A is lost: {seen_a}",
                e164(i)
            ));
        }
        if by_b.0 == 200 && seen_a["nickname"] != nickname.as_str() {
            lost.push(format!(
                "{}: the nickname set through B is lost: {seen_a}",
                e164(i)
            ));
        }
        let (by_a, by_b) = at_once(
            &http,
            &key,
            (
                "PATCH",
                api(&a, &format!("/numbers/{id}")),
                Some(json!({"agent_id": agents[0]})),
            ),
            (
                "PATCH",
                api(&b, &format!("/numbers/{id}")),
                Some(json!({"agent_id": agents[1]})),
            ),
        )
        .await;
        patches += 2;
        let (_, seen) = http
            .json("GET", &api(&b, &format!("/numbers/{id}")), Some(&key), None)
            .await;
        let answered: Vec<&str> = [(&by_a, &agents[0]), (&by_b, &agents[1])]
            .iter()
            .filter(|((status, _), _)| *status == 200)
            .map(|(_, agent)| agent.as_str())
            .collect();
        assert!(!answered.is_empty(), "both refused: {by_a:?} {by_b:?}");
        if !answered.iter().any(|agent| seen["agent_id"] == *agent) {
            lost.push(format!(
                "{}: agent {} is none of the answered {answered:?}",
                e164(i),
                seen["agent_id"]
            ));
        }
    }
    assert!(lost.is_empty(), "lost updates: {lost:#?}");

    // 3. Webhooks are routed through both instances while both remove the first half of the
    //    numbers. Once a removal has answered and the route cache's bound has passed, neither
    //    instance routes a webhook to that number.
    let routing = Arc::new(AtomicBool::new(true));
    let removed_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; NUMBERS]));
    let bound = Duration::from_millis(ROUTE_CACHE_BOUND_MS + MARGIN_MS);
    let mut routers = Vec::new();
    for worker in 0..4_u64 {
        let (http, public, a, b) = (http.clone(), public.clone(), a.clone(), b.clone());
        let (routing, removed_at) = (Arc::clone(&routing), Arc::clone(&removed_at));
        routers.push(tokio::spawn(async move {
            let (mut sent, mut late, mut failed) = (0_u64, Vec::new(), 0_u64);
            let mut call = worker << 40;
            while routing.load(Ordering::Relaxed) {
                for i in 0..NUMBERS {
                    call += 1;
                    let instance = if call.is_multiple_of(2) { &a } else { &b };
                    let sent_at = Instant::now();
                    let status = voice_webhook(&http, &public, instance, &e164(i), call).await;
                    sent += 1;
                    let removed = removed_at.lock().expect("lock")[i];
                    match (status, removed) {
                        (200, Some(at)) if sent_at > at + bound => {
                            late.push(format!(
                                "{} routed {:?} after its removal",
                                e164(i),
                                sent_at - at
                            ));
                        }
                        (200 | 404, _) => {}
                        _ => failed += 1,
                    }
                }
            }
            (sent, late, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, id) in ids.iter().enumerate().take(NUMBERS / 2) {
        let (first, second) = at_once(
            &http,
            &key,
            ("DELETE", api(&a, &format!("/numbers/{id}")), None),
            ("DELETE", api(&b, &format!("/numbers/{id}")), None),
        )
        .await;
        let statuses = [first.0, second.0];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{}: {first:?} {second:?}",
            e164(i)
        );
        removed_at.lock().expect("lock")[i] = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(bound + Duration::from_millis(500)).await;
    routing.store(false, Ordering::Relaxed);
    let (mut sent, mut late, mut failed) = (0, Vec::new(), 0);
    for router in routers {
        let (s, l, f) = router.await.expect("router");
        sent += s;
        late.extend(l);
        failed += f;
    }
    // And now, explicitly, on both instances: removed numbers are unknown, the others route.
    let mut call = 1_u64 << 50;
    for i in 0..NUMBERS {
        for instance in [&a, &b] {
            call += 1;
            let status = voice_webhook(&http, &public, instance, &e164(i), call).await;
            let expected = if i < NUMBERS / 2 { 404 } else { 200 };
            assert_eq!(status, expected, "{} through {instance}", e164(i));
        }
        let expected_voice = if i < NUMBERS / 2 {
            "https://previous.example.com/voice".to_owned()
        } else {
            format!("{public}/webhooks/twilio/voice")
        };
        assert_eq!(
            emulator.twilio_voice_url(&e164(i)).await,
            Some(expected_voice)
        );
    }
    assert_eq!(
        pending_operations(&env_a).await,
        0,
        "operations left in flight"
    );
    println!(
        "two instances: {NUMBERS} numbers imported through both at once (answers {import_answers:?}, \
         0 imported twice), {patches} concurrent PATCHes (0 lost updates), {sent} webhooks routed \
         through both while {} numbers were removed: {} routed to a removed number after the \
         bound ({} ms), {failed} failed",
        NUMBERS / 2,
        late.len(),
        bound.as_millis()
    );
    assert!(late.is_empty(), "{late:#?}");
    assert_eq!(
        failed, 0,
        "webhooks that were neither routed nor refused as unknown"
    );
}
