//! `telephony-seed`: fills a gateway database for the webhook benchmark
//! (`scripts/bench-webhooks.sh`), and writes the voice-webhook templates `webhook-load` turns
//! into signed requests.
//!
//! It creates `--orgs` organizations, each with `--connections-per-org` Twilio connections and
//! one agent (a media stream), then numbers `+12000000000`, `+12000000001`, ... spread round
//! robin over every connection, through the registry's bulk API (multi-row inserts in
//! transactions). The organizations' ids are kept in a manifest file, so a second run with a
//! larger `--numbers` adds the missing numbers only (1,000 first, then up to 1,000,000).
//!
//! Benchmark credentials only: connection `k` has the Account SID `AC` + `k` in hex and an auth
//! token derived from `k` (see [`auth_token`]), so the requests can be signed without reading the
//! database. Never point it at a production database.
//!
//! The templates file (`--templates-out`) has one JSON object a line, one per called number:
//! `{"path": "/webhooks/twilio/voice", "url": "<--public-url + path, the URL signed over>",
//! "params": [["AccountSid", "AC..."], ["ApiVersion", "2010-04-01"], ...], "token": "..."}`:
//! an incoming-call webhook as Twilio sends it (15 parameters, sorted by name) without its
//! `CallSid`, and the auth token of the number's connection. `webhook-load` adds a CallSid
//! unique to its run to each request and signs it (`X-Twilio-Signature`). The tokens are the
//! benchmark credentials above, generated here, never real ones; the file is a benchmark
//! artifact, not a secret store.
//!
//! The called numbers (`--called-numbers`, default every seeded number) are spread evenly over
//! the seeded ones, and the lines follow them in order, so consecutive requests are on
//! consecutive called numbers (on different connections and organizations). `webhook-load`
//! uses the lines round robin and needs only its pool's first lines: for a run in which every
//! call is to a different number spread over the whole registry, set `--called-numbers` to the
//! pool size.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use telephony_carrier::{CarrierClients, TelnyxConfig, TwilioConfig};
use telephony_registry::{
    AgentTarget, BulkNumber, BulkTenant, BulkTwilioConnection, Registry, RegistryConfig,
};
use telephony_vault::{KeyRing, SecretString};

/// Numbers written per registry call (one transaction each).
const NUMBERS_PER_TRANSACTION: u64 = 10_000;
/// Tenants created per registry call.
const TENANTS_PER_TRANSACTION: usize = 500;
/// The first seeded number, as digits after `+`.
const FIRST_NUMBER: u64 = 12_000_000_000;

#[derive(Debug, Parser)]
#[command(about = "Seed a gateway database for the webhook benchmark (benchmark credentials only)")]
struct Args {
    /// Database URL, as the gateway's `TELEPHONY_DATABASE_URL`.
    #[arg(long, env = "TELEPHONY_DATABASE_URL")]
    database_url: String,
    /// The gateway's master-key file (created if missing, as the gateway does on SQLite).
    #[arg(long, env = "TELEPHONY_MASTER_KEY_FILE")]
    master_key_file: PathBuf,
    /// The gateway's public base URL: the webhooks are signed over it.
    #[arg(long, env = "TELEPHONY_PUBLIC_URL")]
    public_url: String,
    /// Where the organizations' ids are kept between runs.
    #[arg(long)]
    manifest: PathBuf,
    /// Organizations to create on the first run.
    #[arg(long, default_value_t = 1_000)]
    orgs: u32,
    /// Twilio connections per organization (first run).
    #[arg(long, default_value_t = 2)]
    connections_per_org: u32,
    /// How many numbers the database should hold after this run.
    #[arg(long, default_value_t = 1_000)]
    numbers: u64,
    /// Where to write the webhook templates (JSON lines, one per called number; benchmark
    /// credentials only); none when absent.
    #[arg(long)]
    templates_out: Option<PathBuf>,
    /// How many of the seeded numbers the templates call (one template each), evenly spaced
    /// over all of them (default: every one). A scale run calls as many numbers as the base
    /// run, so only the size of the registry differs; set it to webhook-load's `--pool` for a
    /// run whose every call is to a different number.
    #[arg(long)]
    called_numbers: Option<u64>,
}

/// What a run seeded, kept for the next run.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    connections_per_org: u32,
    /// Per organization: its id, its agent's id and its connections' ids.
    tenants: Vec<Tenant>,
    /// Numbers seeded so far (indices `0..numbers`).
    numbers: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Tenant {
    org_id: String,
    agent_id: Option<String>,
    connection_ids: Vec<String>,
}

impl Manifest {
    fn connections(&self) -> u64 {
        self.tenants.len() as u64 * u64::from(self.connections_per_org)
    }

    /// The organization, connection index (global) and agent of number `i`.
    fn owner_of(&self, i: u64) -> (&Tenant, u64) {
        let k = i % self.connections();
        let per_org = u64::from(self.connections_per_org);
        // Both indices are below the manifest's lengths, which came from `usize`s.
        (&self.tenants[(k / per_org) as usize], k)
    }
}

/// The benchmark auth token of connection `k`: 32 hex digits, different for every `k`.
fn auth_token(k: u64) -> SecretString {
    // splitmix64, twice: a fixed, well-spread function of k.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    SecretString::new(format!("{:016x}{:016x}", mix(k), mix(!k)))
}

fn account_sid(k: u64) -> String {
    format!("AC{:032x}", k + 1)
}

fn e164(i: u64) -> String {
    format!("+{}", FIRST_NUMBER + i)
}

#[allow(clippy::print_stderr)]
fn say(text: impl AsRef<str>) {
    eprintln!("telephony-seed: {}", text.as_ref());
}

async fn open(args: &Args) -> anyhow::Result<Registry> {
    if let Some(path) = args.database_url.strip_prefix("sqlite://") {
        let file = PathBuf::from(path.split('?').next().unwrap_or_default());
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    if let Some(dir) = args
        .master_key_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (keyring, _) = KeyRing::load_or_create(&args.master_key_file)
        .context("loading or creating the master-key file")?;
    let clients = CarrierClients::new(TwilioConfig::default(), TelnyxConfig::default())?;
    Ok(Registry::open(
        &args.database_url,
        keyring,
        Arc::new(clients),
        RegistryConfig::new(args.public_url.as_str()),
    )
    .await?)
}

async fn create_tenants(registry: &Registry, args: &Args) -> anyhow::Result<Manifest> {
    anyhow::ensure!(args.orgs > 0, "--orgs must be at least 1");
    anyhow::ensure!(
        args.connections_per_org > 0,
        "--connections-per-org must be at least 1"
    );
    let started = Instant::now();
    let per_org = u64::from(args.connections_per_org);
    let plans: Vec<BulkTenant> = (0..u64::from(args.orgs))
        .map(|org| BulkTenant {
            name: format!("bench org {org}"),
            connections: (0..per_org)
                .map(|c| {
                    let k = org * per_org + c;
                    BulkTwilioConnection {
                        name: format!("twilio {c}"),
                        account_sid: account_sid(k),
                        auth_token: auth_token(k),
                    }
                })
                .collect(),
            agent_target: Some(AgentTarget::MediaStream(format!(
                "wss://agent.example.com/stream/{org}"
            ))),
        })
        .collect();
    let mut tenants = Vec::with_capacity(plans.len());
    for chunk in plans.chunks(TENANTS_PER_TRANSACTION) {
        for seeded in registry.bulk_create_tenants(chunk).await? {
            tenants.push(Tenant {
                org_id: seeded.org_id,
                agent_id: seeded.agent_id,
                connection_ids: seeded.connection_ids,
            });
        }
    }
    say(format!(
        "created {} organizations with {} connections each in {:.1}s",
        args.orgs,
        args.connections_per_org,
        started.elapsed().as_secs_f64()
    ));
    Ok(Manifest {
        connections_per_org: args.connections_per_org,
        tenants,
        numbers: 0,
    })
}

fn save(manifest: &Manifest, path: &PathBuf) -> anyhow::Result<()> {
    let text = serde_json::to_string(manifest)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn seed_numbers(
    registry: &Registry,
    manifest: &mut Manifest,
    args: &Args,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let from = manifest.numbers;
    let mut next = from;
    while next < args.numbers {
        let end = args.numbers.min(next + NUMBERS_PER_TRANSACTION);
        let batch: Vec<BulkNumber> = (next..end)
            .map(|i| {
                let (tenant, k) = manifest.owner_of(i);
                let c = k % u64::from(manifest.connections_per_org);
                BulkNumber {
                    org_id: tenant.org_id.clone(),
                    connection_id: tenant.connection_ids[c as usize].clone(),
                    e164: e164(i),
                    carrier_id: format!("PN{:032x}", i + 1),
                    agent_id: tenant.agent_id.clone(),
                }
            })
            .collect();
        registry.bulk_insert_numbers(&batch).await?;
        next = end;
        manifest.numbers = next;
        save(manifest, &args.manifest)?;
    }
    if next > from {
        registry.refresh_statistics().await?;
        let seconds = started.elapsed().as_secs_f64();
        say(format!(
            "seeded numbers {from}..{next} in {seconds:.1}s ({:.0} numbers/s)",
            (next - from) as f64 / seconds.max(1e-9)
        ));
    }
    Ok(())
}

/// One line of the templates file: an incoming-call webhook without its `CallSid`.
#[derive(Debug, Serialize)]
struct Template<'a> {
    path: &'a str,
    /// The public URL Twilio would request, which the signature covers.
    url: &'a str,
    /// Every form parameter but `CallSid`, sorted by name as Twilio sends them.
    params: [(&'static str, String); 14],
    /// The benchmark auth token of the number's connection (see [`auth_token`]).
    token: &'a str,
}

fn write_templates(manifest: &Manifest, args: &Args, out: &PathBuf) -> anyhow::Result<()> {
    anyhow::ensure!(manifest.numbers > 0, "no numbers seeded");
    let path = "/webhooks/twilio/voice";
    let url = format!("{}{path}", args.public_url.trim_end_matches('/'));
    let called = args
        .called_numbers
        .unwrap_or(manifest.numbers)
        .clamp(1, manifest.numbers);
    let spacing = manifest.numbers / called;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    for c in 0..called {
        let i = c * spacing;
        let (_, k) = manifest.owner_of(i);
        let to = e164(i);
        let from = format!("+1415555{:04}", c % 10_000);
        let token = auth_token(k);
        let line = Template {
            path,
            url: &url,
            // CallSid, which webhook-load adds, goes between ApiVersion and CallStatus.
            params: [
                ("AccountSid", account_sid(k)),
                ("ApiVersion", "2010-04-01".to_owned()),
                ("CallStatus", "ringing".to_owned()),
                ("Called", to.clone()),
                ("CalledCountry", "US".to_owned()),
                ("CalledState", "CA".to_owned()),
                ("Caller", from.clone()),
                ("CallerCountry", "US".to_owned()),
                ("Direction", "inbound".to_owned()),
                ("From", from),
                ("FromCity", "SAN FRANCISCO".to_owned()),
                ("FromCountry", "US".to_owned()),
                ("To", to),
                ("ToCountry", "US".to_owned()),
            ],
            token: token.expose(),
        };
        serde_json::to_writer(&mut writer, &line)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    say(format!(
        "wrote {called} webhook templates (one per called number) to {}",
        out.display()
    ));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let registry = open(&args).await?;
        let mut manifest = match std::fs::read_to_string(&args.manifest) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("reading {}", args.manifest.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let manifest = create_tenants(&registry, &args).await?;
                save(&manifest, &args.manifest)?;
                manifest
            }
            Err(e) => return Err(e).context(format!("reading {}", args.manifest.display())),
        };
        seed_numbers(&registry, &mut manifest, &args).await?;
        if let Some(out) = &args.templates_out {
            write_templates(&manifest, &args, out)?;
        }
        Ok(())
    })
}
