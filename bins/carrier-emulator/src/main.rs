//! `carrier-emulator`: serves the Twilio and Telnyx emulator from a seed file until Ctrl-C.
//!
//! It only parses flags, starts tracing and hands off to `telephony_emulator::Emulator`; it knows
//! nothing of the carriers itself.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use telephony_emulator::{Emulator, Seed};

/// Local Twilio + Telnyx emulator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Seed file (JSON) with accounts, numbers and inventory.
    #[arg(long, env = "EMULATOR_SEED")]
    seed: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "EMULATOR_LISTEN", default_value = "127.0.0.1:4010")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the listen address, for scripts to read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let seed = Seed::from_json_file(&args.seed)
        .with_context(|| format!("loading seed {}", args.seed.display()))?;
    let emulator = Emulator::start(seed, args.listen)
        .await
        .context("starting the emulator")?;
    // The address goes to stdout so scripts can read the chosen port.
    #[allow(clippy::print_stdout)]
    {
        println!("carrier emulator listening on {}", emulator.base_url());
        println!("  twilio base url: {}", emulator.twilio_base_url());
        println!("  telnyx base url: {}", emulator.telnyx_base_url());
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    emulator.shutdown().await;
    Ok(())
}
