//! `telephony-gateway`: the service binary. It reads the command line and environment, starts
//! tracing and the runtime, and hands off to `telephony-service`; nothing else lives here.

use clap::{Parser, Subcommand};
use telephony_service::{Config, commands};

/// mimalloc instead of the C library's allocator: the webhook path allocates many small,
/// short-lived buffers across threads, where glibc's malloc spent a fifth of the request
/// threads' time under load (see `docs/PERFORMANCE.md`).
///
/// It also stands in for `malloc` and `free` of the C code linked in (the `override` feature),
/// which is SQLite: glibc gave back to the kernel, after every statement, the memory SQLite's
/// statement journal had just used, and took it back page fault by page fault for the next
/// one (about 41,000 faults a second under load on a large call table; about 2,700 with
/// mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bring-your-own-carrier telephony gateway for voice-AI platforms.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API, the carrier webhooks and the operator endpoints.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage the master keys that encrypt stored carrier secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization; prints its id and a new API key once, as JSON.
    Create {
        /// The organization's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create the master-key and agent-token key files where missing (never overwrites); on
    /// PostgreSQL, run once and give the same files to every instance.
    Init,
    /// Add a new active master key and re-wrap every stored secret under it.
    Rotate,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Held to the end: dropping it writes the log lines still collected.
    let _log = telephony_service::telemetry::init_tracing(
        cli.config.log_format,
        std::time::Duration::from_millis(cli.config.log_flush_ms),
    )
    .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => commands::serve(cli.config).await?,
            Command::Migrate => commands::migrate(&cli.config).await?,
            Command::Org {
                command: OrgCommand::Create { name },
            } => {
                let created = commands::create_org(&cli.config, &name).await?;
                // The one place the API key is shown: the operator's terminal, once.
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string_pretty(&created)?);
                }
            }
            Command::Keys {
                command: KeysCommand::Init,
            } => {
                let report = commands::init_keys(&cli.config)?;
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
            }
            Command::Keys {
                command: KeysCommand::Rotate,
            } => {
                let report = commands::rotate_master_key(&cli.config).await?;
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
            }
        }
        anyhow::Ok(())
    })
}
