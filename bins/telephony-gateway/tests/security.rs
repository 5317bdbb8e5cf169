//! Secrets never leak, with the real binaries: the `telephony-gateway` and `carrier-emulator`
//! processes run the whole story at `RUST_LOG=trace` (two organizations, Twilio with an auth
//! token then rotated to an API key, Telnyx, imports, inbound calls, a forged webhook, errors,
//! the audit log, a master-key rotation), then every log line, every response body (errors
//! included), every audit entry, what `org create` and `keys rotate` print, and the database
//! (every byte of the SQLite files; on PostgreSQL every column of every row of every table) are
//! searched for every secret used: master keys (base64 and raw bytes), the agent-token key, org
//! API keys, Twilio auth tokens, the Twilio API key secret and the Telnyx API key. None may
//! appear. Also: clients that trickle their headers or their body to the real server are
//! disconnected.

#![allow(clippy::print_stdout)]

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Env, Http, PgDatabase, Proc, free_port, start_emulator, wait_ready};

const TWILIO_SID: &str = "AC33333333333333333333333333333333";
const TWILIO_TOKEN: &str = "sec-twilio-auth-token-secret-0001";
const TWILIO_KEY_SID: &str = "SK33333333333333333333333333333333";
const TWILIO_KEY_SECRET: &str = "sec-twilio-api-key-secret-00000001";
const TELNYX_KEY: &str = "KEYSEC000000000000000000000000000001";
const TELNYX_SEED: &str = "i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=";

fn write_seed(dir: &Path, gateway: &str) -> PathBuf {
    let seed = json!({
        "twilio": {"accounts": [{
            "sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "friendly_name": "Sec",
            "api_keys": [{"sid": TWILIO_KEY_SID, "secret": TWILIO_KEY_SECRET}],
            "numbers": [
                {"phone_number": "+14155550100", "voice_url": "https://previous.example.com/voice",
                 "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false}},
                {"phone_number": "+14155550101",
                 "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false}}
            ]}]},
        "telnyx": {"accounts": [{
            "api_key": TELNYX_KEY, "account_sid": "0b1c2d3e-0000-4000-8000-00000000sec0",
            "signing_seed": TELNYX_SEED,
            "numbers": [{"id": "5000000000000000001", "phone_number": "+13125550100", "connection_id": "5999"}],
            "texml_applications": [
                {"id": "5001", "friendly_name": "agents", "voice_url": format!("{gateway}/webhooks/telnyx/texml"),
                 "status_callback": format!("{gateway}/webhooks/telnyx/status")},
                {"id": "5999", "friendly_name": "previous", "voice_url": "https://previous.example.com/texml"}
            ]}]}
    });
    support::write_seed(dir, &seed)
}

/// Every form a secret could take in a log or a file: the text itself, and for the base64 keys
/// their raw bytes, hex and URL-safe base64 too.
fn forms(name: &str, secret: &str) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![(name.to_owned(), secret.as_bytes().to_vec())];
    if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(secret) {
        forms.push((format!("{name} (raw bytes)"), raw.clone()));
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        forms.push((format!("{name} (hex)"), hex.into_bytes()));
        forms.push((
            format!("{name} (url-safe base64)"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(&raw)
                .into_bytes(),
        ));
    }
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The master keys of a key file: `<version>:<base64>` lines.
fn key_file_secrets(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("key file")
        .lines()
        .filter_map(|line| line.split('#').next())
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(_, key)| key.trim().to_owned())
        .collect()
}

/// Sends `head` then one byte every 200 ms; how long until the server closed the connection,
/// or `None` if it was still open after `give_up`.
fn trickle_headers(addr: &str, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("head");
    let mut buf = [0_u8; 1024];
    while start.elapsed() < give_up {
        if stream.write_all(b"a").is_err() {
            return Some(start.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {} // a 408 before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// The database a story runs on.
enum Db<'a> {
    /// An SQLite file in the test's folder: every byte of its files is scanned.
    Sqlite,
    /// A PostgreSQL database: every row of every table is scanned, every column as text.
    Postgres(&'a PgDatabase),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_a_response_an_audit_entry_or_the_database() {
    secrets_story(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_a_response_an_audit_entry_or_the_database_on_postgresql() {
    let Some(pg) = PgDatabase::create("tg_secrets") else {
        return;
    };
    secrets_story(Db::Postgres(&pg)).await;
}

async fn secrets_story(database: Db<'_>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let (_emulator, emulator) = start_emulator(&write_seed(dir.path(), &gateway));
    let master_key_file = dir.path().join("master.key");
    let agent_key_file = dir.path().join("agent.key");
    let database_url = match database {
        Db::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("gateway.db").display()
        ),
        Db::Postgres(pg) => pg.url.clone(),
    };
    let mut env = Env::new(dir.path(), &database_url, port, &emulator);
    env.set("RUST_LOG", "trace");
    let mut printed = Vec::new();
    // On PostgreSQL the keys are created once, by the operator (`keys init`); its output is
    // scanned too.
    env.run(&["keys", "init"], &mut printed);
    let mut org_keys = Vec::new();
    for name in ["acme", "globex"] {
        let out = env.run(&["org", "create", "--name", name], &mut printed);
        let created: Value = serde_json::from_str(&out).expect("org create prints JSON");
        org_keys.push(created["api_key"].as_str().expect("key").to_owned());
    }
    let (key, other_key) = (org_keys[0].clone(), org_keys[1].clone());

    let log_path = dir.path().join("gateway.log");
    let mut gateway_proc = Proc(
        env.command(&["serve"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("gateway starts"),
    );
    let http = Http::new();
    wait_ready(&http, &gateway).await;
    let api = |path: &str| format!("{gateway}{path}");

    // While the story runs: a client trickling its headers must be cut off by the server.
    let addr = format!("127.0.0.1:{port}");
    let slow = matches!(database, Db::Sqlite).then(|| {
        tokio::task::spawn_blocking(move || trickle_headers(&addr, Duration::from_secs(25)))
    });

    // Refused credentials: the error body must not echo them.
    let (status, refused) = http
        .json("POST", &api("/v1/carriers"), Some(&key), Some(json!({"name": "bad", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": "sec-wrong-token-0000000000000001"})))
        .await;
    assert_eq!(status, 422, "{refused}");
    let (status, connection) = http
        .json("POST", &api("/v1/carriers"), Some(&key), Some(json!({"name": "twilio", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN})))
        .await;
    assert_eq!(status, 201, "{connection}");
    let connection = connection["id"].as_str().expect("id").to_owned();
    // Rotate to an API key (REST) with the auth token kept for signatures.
    let (status, rotated) = http
        .json("POST", &api(&format!("/v1/carriers/{connection}/credentials")), Some(&key), Some(json!({"provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "api_key_sid": TWILIO_KEY_SID, "api_key_secret": TWILIO_KEY_SECRET})))
        .await;
    assert!(status == 200 || status == 201, "{rotated}");
    let (status, agent) = http
        .json(
            "POST",
            &api("/v1/agents"),
            Some(&key),
            Some(json!({"name": "Ada", "target": "wss://agents.example.com/media"})),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    let agent = agent["id"].as_str().expect("id").to_owned();
    let (status, imported) = http
        .json("POST", &api("/v1/numbers/import"), Some(&key), Some(json!({"connection_id": connection, "e164": "+14155550100", "mode": "managed", "agent_id": agent})))
        .await;
    assert_eq!(status, 201, "{imported}");
    let number = imported["number"]["id"].as_str().expect("id").to_owned();
    for path in [
        "/v1/carriers".to_owned(),
        format!("/v1/carriers/{connection}"),
        format!("/v1/carriers/{connection}/available-numbers"),
        "/v1/numbers".to_owned(),
        format!("/v1/numbers/{number}"),
        format!("/v1/numbers/{number}/diagnostics"),
        "/v1/agents".to_owned(),
    ] {
        let (status, body) = http.json("GET", &api(&path), Some(&key), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        // The other tenant, a bad key, no key: errors, scanned as well.
        http.json("GET", &api(&path), Some(&other_key), None).await;
        http.json("GET", &api(&path), Some("tgk_not-a-key"), None)
            .await;
        http.json("GET", &api(&path), None, None).await;
    }
    let (status, delivery) = http
        .json(
            "POST",
            &format!("{emulator}/_emulator/twilio/inbound"),
            None,
            Some(json!({"to": "+14155550100", "from": "+15005550006"})),
        )
        .await;
    assert_eq!(
        (status, delivery["status"].clone()),
        (200, json!(200)),
        "{delivery}"
    );
    let call_id = delivery["call_id"].as_str().expect("call id").to_owned();
    // A forged webhook (wrong signature) and a malformed one.
    http.send(
        "POST",
        &api("/webhooks/twilio/voice"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-twilio-signature", "Zm9yZ2Vk"),
        ],
        Some(format!(
            "AccountSid={TWILIO_SID}&CallSid={call_id}&From=%2B15009990000&To=%2B14155550100"
        )),
    )
    .await;
    http.send(
        "POST",
        &api("/webhooks/twilio/voice"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("To=%ff".into()),
    )
    .await;
    http.json(
        "POST",
        &format!("{emulator}/_emulator/calls/{call_id}/end"),
        None,
        None,
    )
    .await;

    // Telnyx.
    let (_, state) = http
        .json("GET", &format!("{emulator}/_emulator/state"), None, None)
        .await;
    let public_key = state["telnyx_accounts"][0]["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    let (status, bad) = http
        .json("POST", &api("/v1/carriers"), Some(&key), Some(json!({"name": "bad", "provider": "telnyx", "api_key": "KEYSECWRONG00000000000000000000000001", "public_key": public_key, "texml_app_id": "5001"})))
        .await;
    assert_eq!(status, 422, "{bad}");
    let support::TelnyxStory {
        connection: telnyx,
        number: telnyx_number,
        ..
    } = support::telnyx_connect_import_and_call(
        &http,
        &gateway,
        &emulator,
        &key,
        &support::TelnyxAccount {
            api_key: TELNYX_KEY,
            texml_app: "5001",
            e164: "+13125550100",
        },
        &agent,
    )
    .await;
    for path in [
        format!("/v1/numbers/{telnyx_number}"),
        format!("/v1/numbers/{number}"),
        format!("/v1/carriers/{telnyx}"),
    ] {
        let (status, body) = http.json("DELETE", &api(&path), Some(&key), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, calls) = http.json("GET", &api("/v1/calls"), Some(&key), None).await;
    assert!(
        calls["data"].as_array().is_some_and(|c| !c.is_empty()),
        "{calls}"
    );
    let (status, audit) = http
        .json("GET", &api("/v1/audit-log"), Some(&key), None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let audit_entries = audit["data"].as_array().map_or(0, Vec::len);
    assert!(audit_entries >= 5, "{audit}");
    let (_, metrics) = http.send("GET", &api("/metrics"), &[], None).await;
    assert!(metrics.contains("# TYPE"), "{metrics}");
    http.send("GET", &api("/openapi.json"), &[], None).await;

    let slow = match slow {
        Some(slow) => Some(slow.await.expect("slow client")),
        None => None,
    };
    // Stopped as an operator would: the log lines it still holds are written on the way out,
    // so the scan below reads every line it logged.
    gateway_proc.stop();

    // A master-key rotation re-wraps every stored secret; its output is scanned too.
    let rotation = env.run(&["keys", "rotate"], &mut printed);
    assert!(rotation.contains("rewrapped"), "{rotation}");

    // The secrets: master keys (both versions), the agent-token key, the org API keys, the
    // carrier credentials, the refused ones.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, master) in key_file_secrets(&master_key_file).iter().enumerate() {
        secrets.extend(forms(&format!("master key {}", i + 1), master));
    }
    assert!(secrets.len() >= 8, "two master keys, four forms each");
    let agent_key = std::fs::read_to_string(&agent_key_file).expect("agent key");
    secrets.extend(forms("agent-token key", agent_key.trim()));
    for (i, org_key) in org_keys.iter().enumerate() {
        secrets.extend(forms(&format!("org API key {}", i + 1), org_key));
    }
    for (name, secret) in [
        ("Twilio auth token", TWILIO_TOKEN),
        (
            "refused Twilio auth token",
            "sec-wrong-token-0000000000000001",
        ),
        ("Twilio API key secret", TWILIO_KEY_SECRET),
        ("Telnyx API key", TELNYX_KEY),
        (
            "refused Telnyx API key",
            "KEYSECWRONG00000000000000000000000001",
        ),
    ] {
        secrets.extend(forms(name, secret));
    }

    let log = std::fs::read(&log_path).expect("log");
    let log_text = String::from_utf8_lossy(&log);
    let log_lines = log_text.lines().count();
    assert!(log_text.contains("TRACE"), "not the most verbose level?");
    assert!(
        log_text.contains("inbound call routed"),
        "the log is empty?"
    );
    let bodies = http.bodies.lock().expect("lock").clone();
    let db_files = match database {
        Db::Sqlite => sqlite_files(dir.path()),
        Db::Postgres(pg) => postgres_tables(pg),
    };
    let db_bytes: usize = db_files.iter().map(|(_, b)| b.len()).sum();
    // The database does hold what we look for in hashed or encrypted form: the key's SHA-256.
    let key_hash: String = ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        db_files
            .iter()
            .any(|(_, b)| contains(b, key_hash.as_bytes())),
        "the API key's hash is not in the database files: wrong files?"
    );
    let audit_text = audit.to_string();
    let mut found = Vec::new();
    for (name, secret) in &secrets {
        if contains(&log, secret) {
            found.push(format!("{name} in the log"));
        }
        for body in &bodies {
            if contains(body.as_bytes(), secret) {
                found.push(format!("{name} in a response body"));
            }
        }
        if contains(audit_text.as_bytes(), secret) {
            found.push(format!("{name} in the audit log"));
        }
        for out in &printed {
            // `org create` prints the new key once, by design: only its own key may appear.
            let own = name.starts_with("org API key") && out.contains("\"api_key\"");
            if !own && contains(out.as_bytes(), secret) {
                found.push(format!("{name} in a subcommand's output"));
            }
        }
        for (file, bytes) in &db_files {
            if contains(bytes, secret) {
                found.push(format!("{name} in {file}"));
            }
        }
    }
    {
        println!(
            "secrets: {} secret forms checked ({} secrets) against {log_lines} log lines \
             ({} bytes, RUST_LOG=trace), {} response bodies, {audit_entries} audit entries, {} \
             subcommand outputs, {} {} ({db_bytes} bytes): found {}",
            secrets.len(),
            secrets.iter().filter(|(n, _)| !n.contains('(')).count(),
            log.len(),
            bodies.len(),
            printed.len(),
            db_files.len(),
            match database {
                Db::Sqlite => "SQLite files",
                Db::Postgres(_) => "PostgreSQL tables (every column of every row)",
            },
            found.len()
        );
    }
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
    if let Some(slow) = slow {
        let slow = slow.expect("the real server kept a client trickling its headers for 25 s");
        assert!(slow < Duration::from_secs(20), "cut off after {slow:?}");
    }
}

/// Every file of the SQLite database (main file, WAL, shared memory), as bytes.
fn sqlite_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("gateway.db") {
            files.push((name, std::fs::read(entry.path()).expect("db file")));
        }
    }
    files
}

/// Every table of the PostgreSQL database, every row and every column in PostgreSQL's text
/// form (`COPY ... TO STDOUT`), vault ciphertext columns included.
fn postgres_tables(pg: &PgDatabase) -> Vec<(String, Vec<u8>)> {
    let tables = pg.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    let tables: Vec<&str> = tables.lines().filter(|t| !t.is_empty()).collect();
    assert!(tables.len() >= 5, "tables: {tables:?}");
    let columns =
        pg.query("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'");
    println!(
        "secrets: PostgreSQL scan covers {} tables, {} columns",
        tables.len(),
        columns.trim()
    );
    tables
        .iter()
        .map(|table| {
            let rows = pg.query(&format!("COPY (SELECT * FROM \"{table}\") TO STDOUT"));
            (format!("table {table}"), rows.into_bytes())
        })
        .collect()
}

/// A client that sends its headers at once and then trickles its body (one byte every 200
/// ms) is answered 408 and disconnected at the body deadline (2 s here), and the server
/// still serves others. Then the same client's bad API keys are braked (429) by the real
/// server, which knows the peer's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_is_cut_off_at_the_body_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let (_emulator, emulator) = start_emulator(&write_seed(dir.path(), &gateway));
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gateway.db").display()
    );
    let mut env = Env::new(dir.path(), &database_url, port, &emulator);
    env.set("TELEPHONY_BODY_READ_TIMEOUT_SECS", "2")
        .set("TELEPHONY_AUTH_FAILURE_LIMIT", "5");
    let key = env.init_org("acme");
    let _gateway = env.serve(&dir.path().join("gateway.log"));
    let http = Http::new();
    wait_ready(&http, &gateway).await;
    let addr = format!("127.0.0.1:{port}");
    let (elapsed, answer) = tokio::task::spawn_blocking(move || {
        trickle_body(
            &addr,
            "POST /webhooks/twilio/voice HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
            Duration::from_secs(20),
        )
    })
    .await
    .expect("slow client");
    let elapsed = elapsed.expect("the server kept a client trickling its body for 20 s");
    println!("slow body: cut off after {elapsed:?} (deadline 2 s), answer: {answer:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "cut off after {elapsed:?}"
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected a 408 before the close: {answer:?}"
    );
    // The same with the REST API's JSON body (a valid key: the body is read).
    let addr = format!("127.0.0.1:{port}");
    let head = format!(
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    let (elapsed, answer) =
        tokio::task::spawn_blocking(move || trickle_body(&addr, &head, Duration::from_secs(20)))
            .await
            .expect("slow client");
    let elapsed = elapsed.expect("the server kept a client trickling its JSON body for 20 s");
    assert!(
        elapsed < Duration::from_secs(10),
        "cut off after {elapsed:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // With a bad key the request is refused before its body is read.
    let addr = format!("127.0.0.1:{port}");
    let (_, answer) = tokio::task::spawn_blocking(move || {
        trickle_body(
            &addr,
            "POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tgk_x\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
            Duration::from_secs(20),
        )
    })
    .await
    .expect("slow client");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    let (status, _) = http
        .send("GET", &format!("{gateway}/healthz"), &[], None)
        .await;
    assert_eq!(status, 200);

    // The real server gives the router the peer's address: bad keys from this client are
    // braked after the configured 5 failures (the JSON body above was one).
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, body) = http
            .json(
                "GET",
                &format!("{gateway}/v1/numbers"),
                Some(&format!("tgk_wrong{i}")),
                None,
            )
            .await;
        statuses.push(status);
        if status == 429 {
            assert_eq!(body["error"]["code"], "too_many_auth_failures", "{body}");
        }
    }
    assert_eq!(statuses.first(), Some(&401), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

/// Sends `head` then one body byte every 200 ms; how long until the server closed the
/// connection (or `None` after `give_up`), and what it answered before closing.
fn trickle_body(addr: &str, head: &str, give_up: Duration) -> (Option<Duration>, String) {
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    let mut answer = Vec::new();
    let mut buf = [0_u8; 1024];
    while start.elapsed() < give_up {
        if stream.write_all(b"a").is_err() {
            return (
                Some(start.elapsed()),
                String::from_utf8_lossy(&answer).into_owned(),
            );
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return (
                    Some(start.elapsed()),
                    String::from_utf8_lossy(&answer).into_owned(),
                );
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return (
                    Some(start.elapsed()),
                    String::from_utf8_lossy(&answer).into_owned(),
                );
            }
        }
    }
    (None, String::from_utf8_lossy(&answer).into_owned())
}
