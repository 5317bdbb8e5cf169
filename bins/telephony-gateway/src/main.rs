//! `telephony-gateway`: the service binary. It only reads configuration and hands off.

use clap::Parser;

/// Bring-your-own-carrier telephony gateway for voice-AI platforms.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
