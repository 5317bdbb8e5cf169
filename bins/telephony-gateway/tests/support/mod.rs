//! What the process-level tests share: the real `telephony-gateway` and `carrier-emulator`
//! binaries as child processes, an HTTP client that keeps what the gateway answered, the
//! emulator's control API, a fresh PostgreSQL database per test, and a registry handle on the
//! gateway's database for checks the API does not show (operations left in flight).
#![allow(dead_code, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// A child process killed (SIGKILL) when dropped, whatever happens.
pub struct Proc(pub Child);

impl Proc {
    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Stops the process as an operator would (SIGTERM), waits up to 30 s for it to exit (it
    /// writes the log lines it still holds on the way out), then kills it if it has not.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The gateway binary under test.
pub fn gateway_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_telephony-gateway"))
}

/// The emulator binary sits beside the gateway's in the target folder; build it when a
/// narrower `cargo test -p telephony-gateway` did not.
pub fn emulator_exe() -> PathBuf {
    let exe =
        gateway_exe().with_file_name(format!("carrier-emulator{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "carrier-emulator"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building carrier-emulator failed");
    }
    exe
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An HTTP client that keeps every body the gateway answered (not the emulator's control
/// API, which shows carrier secrets by design), for secret scans.
#[derive(Clone)]
pub struct Http {
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub bodies: Arc<Mutex<Vec<String>>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            bodies: Arc::default(),
        }
    }

    /// Sends a request; `None` when the connection failed.
    pub async fn try_send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Option<(u16, String)> {
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let response = self.client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !url.contains("/_emulator/") {
            self.bodies.lock().expect("lock").push(text.clone());
        }
        Some((status, text))
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (u16, String) {
        self.try_send(method, url, headers, body)
            .await
            .unwrap_or_else(|| panic!("{method} {url}: the server did not answer"))
    }

    pub async fn try_json(
        &self,
        method: &str,
        url: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let (status, text) = self
            .try_send(method, url, &headers, body.map(|b| b.to_string()))
            .await?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn json(
        &self,
        method: &str,
        url: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_json(method, url, key, body)
            .await
            .unwrap_or_else(|| panic!("{method} {url}: the server did not answer"))
    }
}

/// Writes an emulator seed file.
pub fn write_seed(dir: &Path, seed: &Value) -> PathBuf {
    let path = dir.join("seed.json");
    std::fs::write(&path, seed.to_string()).expect("seed written");
    path
}

/// Starts the emulator on a free port; returns it and its base URL (no trailing slash).
pub fn start_emulator(seed: &Path) -> (Proc, String) {
    let mut child = Command::new(emulator_exe())
        .args([
            "--seed",
            seed.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("emulator prints its address");
    // Keep reading until the emulator exits: closing the pipe now would kill it with a broken
    // pipe at its next line of output.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("an address")
        .trim_end_matches('/')
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "unexpected emulator banner: {line}"
    );
    (Proc(child), url)
}

/// The environment of the gateway's subcommands (nothing inherited but `PATH`).
#[derive(Clone)]
pub struct Env {
    pub vars: Vec<(&'static str, String)>,
}

impl Env {
    /// The usual settings: `database_url`, listening on `port` (also the public URL), keys in
    /// `dir`, carriers at `emulator`.
    pub fn new(dir: &Path, database_url: &str, port: u16, emulator: &str) -> Self {
        Self {
            vars: vec![
                ("TELEPHONY_DATABASE_URL", database_url.to_owned()),
                ("TELEPHONY_LISTEN", format!("127.0.0.1:{port}")),
                ("TELEPHONY_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
                (
                    "TELEPHONY_MASTER_KEY_FILE",
                    dir.join("master.key").display().to_string(),
                ),
                (
                    "TELEPHONY_AGENT_TOKEN_KEY_FILE",
                    dir.join("agent.key").display().to_string(),
                ),
                ("TELEPHONY_TWILIO_API_BASE", format!("{emulator}/")),
                ("TELEPHONY_TELNYX_API_BASE", format!("{emulator}/v2")),
                ("RUST_LOG", "info".into()),
            ],
        }
    }

    /// Sets (or replaces) one variable.
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.vars.retain(|(k, _)| *k != name);
        self.vars.push((name, value.into()));
        self
    }

    /// The value of a variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(gateway_exe());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.vars {
            command.env(k, v);
        }
        command
    }

    /// Runs a subcommand; returns its stdout (also kept in `printed` with its stderr) after
    /// checking success.
    pub fn run(&self, args: &[&str], printed: &mut Vec<String>) -> String {
        let output = self.command(args).output().expect("runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{args:?}: {stderr}");
        printed.push(stdout.clone());
        printed.push(stderr);
        stdout
    }

    /// `keys init` then `org create`: the organization's API key.
    pub fn init_org(&self, name: &str) -> String {
        let mut printed = Vec::new();
        self.run(&["keys", "init"], &mut printed);
        let out = self.run(&["org", "create", "--name", name], &mut printed);
        let created: Value = serde_json::from_str(&out).expect("org create prints JSON");
        created["api_key"].as_str().expect("key").to_owned()
    }

    /// Starts `serve`, its log (stderr) written to `log`.
    pub fn serve(&self, log: &Path) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        Proc(
            self.command(&["serve"])
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .expect("gateway starts"),
        )
    }
}

/// Waits until `url/readyz` answers 200 (30 s at most).
pub async fn wait_ready(http: &Http, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = tokio::time::timeout(
            Duration::from_secs(1),
            http.client
                .get(format!("{url}/readyz").parse().expect("uri")),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|r| r.status().is_success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PostgreSQL database created for one test and dropped after it.
pub struct PgDatabase {
    server: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl PgDatabase {
    /// A fresh database named after `prefix` on `TELEPHONY_TEST_POSTGRES_URL`'s server; `None`
    /// (skip) when the variable is not set, a failure when `CI=true`.
    pub fn create(prefix: &str) -> Option<Self> {
        let Ok(server) = std::env::var("TELEPHONY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must set TELEPHONY_TEST_POSTGRES_URL"
            );
            eprintln!("skipping PostgreSQL: TELEPHONY_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("{prefix}_{}", std::process::id());
        let created = Command::new("psql")
            .args([
                server.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .status()
            .expect("psql runs");
        assert!(created.success(), "cannot create the test database");
        let base = server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self { server, name, url })
    }

    /// Runs `sql` with psql on this database; its unaligned output.
    pub fn query(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args([self.url.as_str(), "-AtXq", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.server.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

/// The emulator's control API.
#[derive(Clone)]
pub struct Emulator {
    pub http: Http,
    pub url: String,
}

impl Emulator {
    pub async fn state(&self) -> Value {
        self.http
            .json("GET", &format!("{}/_emulator/state", self.url), None, None)
            .await
            .1
    }

    /// The carrier requests logged so far.
    pub async fn requests(&self) -> Vec<Value> {
        let (_, log) = self
            .http
            .json(
                "GET",
                &format!("{}/_emulator/requests", self.url),
                None,
                None,
            )
            .await;
        log.as_array().cloned().unwrap_or_default()
    }

    /// The sequence number of the last logged carrier request (0 when none).
    pub async fn last_seq(&self) -> u64 {
        self.requests()
            .await
            .last()
            .and_then(|r| r["seq"].as_u64())
            .unwrap_or(0)
    }

    /// The carrier requests logged after `seq`, as `(method, path)`.
    pub async fn requests_after(&self, seq: u64) -> Vec<(String, String)> {
        self.requests()
            .await
            .iter()
            .filter(|r| r["seq"].as_u64().is_some_and(|s| s > seq))
            .filter(|r| !r["carrier"].is_null())
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or_default().to_owned(),
                    r["path"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Installs a fault (see the emulator's `Fault`).
    pub async fn fault(&self, fault: Value) {
        let (status, body) = self
            .http
            .json(
                "POST",
                &format!("{}/_emulator/faults", self.url),
                None,
                Some(fault),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Removes every fault.
    pub async fn clear_faults(&self) {
        let (status, _) = self
            .http
            .send(
                "DELETE",
                &format!("{}/_emulator/faults", self.url),
                &[],
                None,
            )
            .await;
        assert_eq!(status, 204);
    }

    /// The Telnyx number as the emulator holds it (`None` when no account holds it).
    pub async fn telnyx_number(&self, e164: &str) -> Option<Value> {
        self.state().await["telnyx_numbers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["phone_number"] == e164)
            .cloned()
    }

    /// The Telnyx number's connection (the TeXML application it is routed to).
    pub async fn telnyx_connection_id(&self, e164: &str) -> Option<String> {
        self.telnyx_number(e164)
            .await
            .and_then(|n| n["connection_id"].as_str().map(str::to_owned))
    }

    /// The Twilio number's voice URL.
    pub async fn twilio_voice_url(&self, e164: &str) -> Option<String> {
        self.state().await["twilio_numbers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["phone_number"] == e164)
            .and_then(|n| n["voice_url"].as_str().map(str::to_owned))
    }
}

/// A registry opened on the gateway's database with its keys, for checks the API does not
/// show (operations left in flight).
pub async fn registry(env: &Env) -> telephony_registry::Registry {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: telephony_service::Config,
    }
    let cli = Cli::try_parse_from([
        "test",
        "--database-url",
        env.get("TELEPHONY_DATABASE_URL").expect("database url"),
        "--master-key-file",
        env.get("TELEPHONY_MASTER_KEY_FILE").expect("key file"),
    ])
    .expect("configuration");
    telephony_service::commands::open_registry(&cli.config)
        .await
        .expect("registry opens")
}

/// How many operations are in flight in the gateway's database (the registry's intent rows).
pub async fn pending_operations(env: &Env) -> u64 {
    registry(env)
        .await
        .pending_operations()
        .await
        .expect("operations")
}

/// A JSON body for a Twilio account with voice-capable numbers `+1415555010x` (x from 0),
/// each with a customer voice URL.
pub fn twilio_seed(sid: &str, token: &str, numbers: usize) -> Value {
    let numbers: Vec<Value> = (0..numbers)
        .map(|i| {
            json!({"phone_number": format!("+1415555{:04}", 100 + i),
                   "voice_url": "https://previous.example.com/voice",
                   "capabilities": {"voice": true, "sms": true, "mms": false, "fax": false}})
        })
        .collect();
    json!({"twilio": {"accounts": [{
        "sid": sid, "auth_token": token, "friendly_name": "Test", "numbers": numbers}]}})
}

/// The customer's TeXML application previous to an import (see [`telnyx_seed`]).
pub const TELNYX_PREVIOUS_APP_URL: &str = "https://previous.example.com/texml";

/// The TeXML applications of [`telnyx_seed`]'s account: the one given to the gateway (`gateway_app`, its voice URL and status callback the gateway's at
/// `gateway`) and each previous one (`previous_apps`, the customer's own).
fn telnyx_texml_apps(gateway: &str, gateway_app: &str, previous_apps: &[&str]) -> Value {
    let mut apps = vec![json!({
        "id": gateway_app, "friendly_name": "agents",
        "voice_url": format!("{gateway}/webhooks/telnyx/texml"),
        "status_callback": format!("{gateway}/webhooks/telnyx/status")})];
    for id in previous_apps {
        apps.push(json!({"id": id, "friendly_name": format!("previous {id}"),
                         "voice_url": TELNYX_PREVIOUS_APP_URL}));
    }
    Value::Array(apps)
}

/// A JSON body for a Telnyx account (`api_key`, webhooks signed with `signing_seed`) holding
/// `numbers`, each `(e164, connection)` on the customer's own TeXML application `connection`,
/// and the TeXML application `gateway_app` whose voice URL is the gateway's at `gateway`.
pub fn telnyx_seed(
    api_key: &str,
    signing_seed: &str,
    gateway: &str,
    gateway_app: &str,
    numbers: &[(&str, &str)],
) -> Value {
    let mut previous: Vec<&str> = numbers.iter().map(|(_, app)| *app).collect();
    previous.dedup();
    let held: Vec<Value> = numbers
        .iter()
        .enumerate()
        .map(|(i, (e164, app))| {
            json!({"id": format!("40000000000000000{:02}", i + 1), "phone_number": e164,
                   "connection_id": app})
        })
        .collect();
    json!({"telnyx": {"accounts": [{
        "api_key": api_key, "account_sid": "0b1c2d3e-0000-4000-8000-00000000fa17",
        "signing_seed": signing_seed,
        "numbers": held,
        "texml_applications": telnyx_texml_apps(gateway, gateway_app, &previous)}]}})
}

/// A customer's Telnyx account as the end-to-end stories connect it.
pub struct TelnyxAccount<'a> {
    /// The API v2 key.
    pub api_key: &'a str,
    /// The TeXML application given to the gateway (its voice URL is the gateway's).
    pub texml_app: &'a str,
    /// The number imported.
    pub e164: &'a str,
}

/// What [`telnyx_connect_import_and_call`] leaves.
pub struct TelnyxStory {
    /// The connection's id.
    pub connection: String,
    /// The imported number's id.
    pub number: String,
    /// The emulator's record of the inbound call it delivered to the gateway.
    pub delivery: Value,
}

/// The Telnyx steps of the end-to-end stories (`e2e.rs`, `security.rs`): through the gateway at
/// `gateway` with the organization's API `key`, connect `account` (with the emulator's public
/// key for webhook signatures), import its number in `managed` mode on `agent`, and have the
/// emulator at `emulator` place an inbound call to it, which the gateway must answer 200.
pub async fn telnyx_connect_import_and_call(
    http: &Http,
    gateway: &str,
    emulator: &str,
    key: &str,
    account: &TelnyxAccount<'_>,
    agent: &str,
) -> TelnyxStory {
    let (_, state) = http
        .json("GET", &format!("{emulator}/_emulator/state"), None, None)
        .await;
    let public_key = state["telnyx_accounts"][0]["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    let (status, created) = http
        .json(
            "POST",
            &format!("{gateway}/v1/carriers"),
            Some(key),
            Some(
                json!({"name": "telnyx", "provider": "telnyx", "api_key": account.api_key,
                        "public_key": public_key, "texml_app_id": account.texml_app}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let connection = created["id"].as_str().expect("id").to_owned();
    let (status, imported) = http
        .json(
            "POST",
            &format!("{gateway}/v1/numbers/import"),
            Some(key),
            Some(
                json!({"connection_id": connection, "e164": account.e164, "mode": "managed",
                        "agent_id": agent}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{imported}");
    let number = imported["number"]["id"].as_str().expect("id").to_owned();
    let (status, delivery) = http
        .json(
            "POST",
            &format!("{emulator}/_emulator/telnyx/inbound"),
            None,
            Some(json!({"to": account.e164, "from": "+15005550006"})),
        )
        .await;
    assert_eq!(
        (status, delivery["status"].clone()),
        (200, json!(200)),
        "{delivery}"
    );
    TelnyxStory {
        connection,
        number,
        delivery,
    }
}
