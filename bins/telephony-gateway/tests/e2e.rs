//! The whole story, with the real `telephony-gateway` binary and the real `carrier-emulator`
//! binary as separate processes talking HTTP: create an organization, connect a carrier, list
//! its numbers, import one in managed mode, assign an agent, take an inbound call, refuse a
//! forged webhook, end the call and see its record, remove the number and find the carrier's
//! previous voice URL restored. On SQLite, and on PostgreSQL when `TELEPHONY_TEST_POSTGRES_URL`
//! is set (required when `CI=true`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Env, Http, Proc, free_port, start_emulator, wait_ready};

const TWILIO_SID: &str = "AC22222222222222222222222222222222";
const TWILIO_TOKEN: &str = "e2e-twilio-auth-token-secret-0001";
const TELNYX_KEY: &str = "KEYE2E000000000000000000000000000001";

fn write_seed(dir: &Path, gateway: &str) -> PathBuf {
    let seed = json!({
        "twilio": {"accounts": [{
            "sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "friendly_name": "E2E",
            "numbers": [
                {"phone_number": "+14155550100", "voice_url": "https://previous.example.com/voice",
                 "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false}},
                {"phone_number": "+14155550102", "capabilities": {"voice": false, "sms": true, "mms": false, "fax": false}}
            ]}]},
        "telnyx": {"accounts": [{
            "api_key": TELNYX_KEY, "account_sid": "0b1c2d3e-0000-4000-8000-00000000e2e0",
            "signing_seed": "i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=",
            "numbers": [{"id": "4000000000000000001", "phone_number": "+13125550100", "connection_id": "4999"}],
            "texml_applications": [
                {"id": "4001", "friendly_name": "agents", "voice_url": format!("{gateway}/webhooks/telnyx/texml"),
                 "status_callback": format!("{gateway}/webhooks/telnyx/status")},
                {"id": "4999", "friendly_name": "previous", "voice_url": "https://previous.example.com/texml"}
            ]}]}
    });
    support::write_seed(dir, &seed)
}

/// Runs the story against a gateway on `database_url`.
async fn story(database_url: String) {
    let database_url = database_url.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let gateway = format!("http://127.0.0.1:{port}");
    let (_emulator, emulator) = start_emulator(&write_seed(dir.path(), &gateway));
    let env = Env {
        vars: vec![
            ("TELEPHONY_DATABASE_URL", database_url.to_owned()),
            ("TELEPHONY_LISTEN", format!("127.0.0.1:{port}")),
            ("TELEPHONY_PUBLIC_URL", gateway.clone()),
            (
                "TELEPHONY_MASTER_KEY_FILE",
                dir.path().join("master.key").display().to_string(),
            ),
            (
                "TELEPHONY_AGENT_TOKEN_KEY_FILE",
                dir.path().join("agent.key").display().to_string(),
            ),
            ("TELEPHONY_TWILIO_API_BASE", format!("{emulator}/")),
            ("TELEPHONY_TELNYX_API_BASE", format!("{emulator}/v2")),
            ("RUST_LOG", "debug".into()),
        ],
    };

    // On PostgreSQL the instances must share their keys: none is invented behind the operator's
    // back; `keys init` creates them once.
    if database_url.starts_with("postgres") {
        let refused = env
            .command(&["org", "create", "--name", "acme"])
            .output()
            .expect("runs");
        assert!(
            !refused.status.success(),
            "started on PostgreSQL without shared keys"
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("keys init"), "{stderr}");
    }
    let init = env
        .command(&["keys", "init"])
        .output()
        .expect("keys init runs");
    assert!(
        init.status.success(),
        "keys init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let init: Value = serde_json::from_slice(&init.stdout).expect("keys init prints JSON");
    assert_eq!(init["master_key_created"], true);
    let again = env
        .command(&["keys", "init"])
        .output()
        .expect("keys init runs");
    let again: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(
        again["master_key_created"], false,
        "keys init overwrote a key file"
    );

    let created = env
        .command(&["org", "create", "--name", "acme"])
        .output()
        .expect("org create runs");
    assert!(
        created.status.success(),
        "org create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).expect("org create prints JSON");
    let key = created["api_key"].as_str().expect("an api key").to_owned();

    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let _gateway = Proc(
        env.command(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gateway starts"),
    );
    let http = Http::new();
    wait_ready(&http, &gateway).await;
    let api = |path: &str| format!("{gateway}{path}");

    // Twilio.
    let (status, connection) = http
        .json("POST", &api("/v1/carriers"), Some(&key), Some(json!({"name": "twilio", "provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN})))
        .await;
    assert_eq!(status, 201, "{connection}");
    let connection = connection["id"].as_str().expect("id").to_owned();
    let (status, numbers) = http
        .json(
            "GET",
            &api(&format!("/v1/carriers/{connection}/available-numbers")),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{numbers}");
    assert_eq!(
        numbers["data"].as_array().map(Vec::len),
        Some(1),
        "only the voice-capable number: {numbers}"
    );
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
        .json(
            "POST",
            &api("/v1/numbers/import"),
            Some(&key),
            Some(json!({"connection_id": connection, "e164": "+14155550100", "mode": "managed"})),
        )
        .await;
    assert_eq!(status, 201, "{imported}");
    let number = imported["number"]["id"].as_str().expect("id").to_owned();
    let (status, _) = http
        .json(
            "PATCH",
            &api(&format!("/v1/numbers/{number}")),
            Some(&key),
            Some(json!({"agent_id": agent})),
        )
        .await;
    assert_eq!(status, 200);

    let (status, delivery) = http
        .json(
            "POST",
            &format!("{emulator}/_emulator/twilio/inbound"),
            None,
            Some(json!({"to": "+14155550100", "from": "+15005550006"})),
        )
        .await;
    assert_eq!(status, 200, "{delivery}");
    assert_eq!(delivery["status"], 200, "{delivery}");
    let twiml = delivery["body"].as_str().expect("TwiML");
    assert!(
        twiml.contains(r#"<Stream url="wss://agents.example.com/media">"#),
        "{twiml}"
    );
    let call_id = delivery["call_id"].as_str().expect("call id").to_owned();

    // Tampered: the emulator's parameters with another caller, the original signature.
    let url = format!("{gateway}/webhooks/twilio/voice");
    let params = [
        ("AccountSid", TWILIO_SID),
        ("CallSid", call_id.as_str()),
        ("From", "+15005550006"),
        ("To", "+14155550100"),
    ];
    let signature = telephony_webhook::twilio::sign(
        &url,
        &params,
        &telephony_vault::SecretString::new(TWILIO_TOKEN),
    );
    let tampered =
        format!("AccountSid={TWILIO_SID}&CallSid={call_id}&From=%2B15009990000&To=%2B14155550100");
    let (status, _) = http
        .send(
            "POST",
            &url,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-twilio-signature", &signature),
            ],
            Some(tampered),
        )
        .await;
    assert_eq!(status, 403);

    let (status, ended) = http
        .json(
            "POST",
            &format!("{emulator}/_emulator/calls/{call_id}/end"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    let (_, calls) = http.json("GET", &api("/v1/calls"), Some(&key), None).await;
    let record = calls["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["carrier_call_id"] == call_id.as_str())
        .cloned();
    assert_eq!(
        record.as_ref().map(|r| r["status"].clone()),
        Some(json!("completed")),
        "{calls}"
    );

    let (status, removed) = http
        .json(
            "DELETE",
            &api(&format!("/v1/numbers/{number}")),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (status, removed["restore"].clone()),
        (200, json!("restored")),
        "{removed}"
    );
    let (_, state) = http
        .json("GET", &format!("{emulator}/_emulator/state"), None, None)
        .await;
    let voice_url = state["twilio_numbers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["phone_number"] == "+14155550100")
        .map(|n| n["voice_url"].clone());
    assert_eq!(voice_url, Some(json!("https://previous.example.com/voice")));

    // Telnyx.
    let support::TelnyxStory {
        number: telnyx_number,
        delivery,
        ..
    } = support::telnyx_connect_import_and_call(
        &http,
        &gateway,
        &emulator,
        &key,
        &support::TelnyxAccount {
            api_key: TELNYX_KEY,
            texml_app: "4001",
            e164: "+13125550100",
        },
        &agent,
    )
    .await;
    assert!(
        delivery["body"]
            .as_str()
            .is_some_and(|b| b.contains("<Stream")),
        "{delivery}"
    );
    let (status, _) = http
        .send(
            "POST",
            &format!("{gateway}/webhooks/telnyx/texml"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some("To=%2B13125550100&CallSid=forged".into()),
        )
        .await;
    assert_eq!(status, 403);
    let (status, removed) = http
        .json(
            "DELETE",
            &api(&format!("/v1/numbers/{telnyx_number}")),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (status, removed["restore"].clone()),
        (200, json!("restored")),
        "{removed}"
    );
    let (_, state) = http
        .json("GET", &format!("{emulator}/_emulator/state"), None, None)
        .await;
    let connection_id = state["telnyx_numbers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["phone_number"] == "+13125550100")
        .map(|n| n["connection_id"].clone());
    assert_eq!(connection_id, Some(json!("4999")));

    // Nothing secret in the most verbose log, nor in what the API showed. The gateway writes
    // its log lines in batches every 50 ms (`TELEPHONY_LOG_FLUSH_MS`): a few batches later
    // every line logged so far is in the file.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("inbound call routed"), "the log is empty?");
    for secret in [TWILIO_TOKEN, TELNYX_KEY, key.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    let (_, audit) = http
        .json("GET", &api("/v1/audit-log"), Some(&key), None)
        .await;
    assert!(!audit.to_string().contains(TWILIO_TOKEN) && !audit.to_string().contains(TELNYX_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_story_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    story(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gateway.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_story_on_postgresql() {
    let Ok(server) = std::env::var("TELEPHONY_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must set TELEPHONY_TEST_POSTGRES_URL"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping PostgreSQL: TELEPHONY_TEST_POSTGRES_URL is not set");
        }
        return;
    };
    let name = format!("tg_e2e_{}", std::process::id());
    let created = Command::new("psql")
        .args([
            server.as_str(),
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name}"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .expect("psql runs");
    assert!(created.success(), "cannot create the test database");
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    story(format!("{base}/{name}")).await;
    let _ = Command::new("psql")
        .args([
            server.as_str(),
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}
