//! The inbound-call hot path, in process, for instruction counting (`scripts/hotpath-check.sh`
//! runs it under `valgrind --tool=callgrind`).
//!
//! Usage: `hotpath [WEBHOOKS]` (default 100). It seeds a fresh SQLite database in a temporary
//! folder with 4 organizations × 2 Twilio connections and 64 numbers (through the registry's
//! bulk API), then drives `WEBHOOKS` signed incoming-call webhooks, each a new call, through the
//! service ([`telephony_service::App`], as the binary serves it) with `oneshot` on a current-thread runtime: parse, number lookup, secret
//! decryption, signature check, idempotency, admission, call record, routing and rendering,
//! each webhook's write awaited before the next (its answer does not wait for it).
//! Every answer must be `200` with a `<Connect><Stream>` document, or it exits non-zero, so a
//! broken path cannot pass for a fast one. Nothing is timed: the script runs it with two counts
//! and divides the difference of instructions by the difference of webhooks.

mod fixture;

async fn run(webhooks: u64) -> anyhow::Result<()> {
    let (app, registry, _dir) = fixture::app().await?;
    for j in 0..webhooks {
        // Spread over every number, and so every organization and connection.
        fixture::drive(&app, fixture::webhook(j % fixture::NUMBERS, j)?)
            .await
            .map_err(|e| anyhow::anyhow!("webhook {j}: {e}"))?;
        // The call was answered before its write: wait for it, so each webhook is counted
        // with its own transaction (the worst case of group commit) whatever the timing.
        registry.settle_inbound_calls().await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let webhooks = match std::env::args().nth(1) {
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| anyhow::anyhow!("WEBHOOKS must be a whole number, got {text:?}"))?,
        None => 100,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(webhooks))
}
