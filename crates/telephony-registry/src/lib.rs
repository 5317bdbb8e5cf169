//! The number registry of the telephony gateway: organizations and their API keys, carrier
//! connections with their encrypted credentials, imported phone numbers, voice agents, the
//! audit log of carrier calls, call records, and the workflows that change a carrier account
//! and the database together (connect, rotate, import, switch mode, remove, disconnect,
//! diagnose, detect drift, recover).
//!
//! # Data model
//!
//! | table | what it holds |
//! | --- | --- |
//! | `organizations` | tenants |
//! | `api_keys` | SHA-256 of each key (the key itself is shown once), revocation time |
//! | `connections` | a carrier account of an organization: provider, non-secret ids (Account SID, TeXML application id, region, API key SID, Telnyx public key), vault ciphertexts of the secrets, the previous signing key and when it stops verifying, `active`/`degraded` |
//! | `numbers` | imported numbers; `e164` is UNIQUE across all organizations; webhook mode, status (`importing`/`active`/`removing`), the saved and the applied inbound configuration as JSON, concurrency limit |
//! | `agents` | where calls go (media stream URL or SIP URI), fallback number, concurrency limit |
//! | `audit_log` | every carrier call made for an organization: when, action, number, whether it changed the account, outcome code; never a secret or a carrier message |
//! | `call_records` | calls by (provider, carrier call id): direction, status, duration, times; for an inbound call, the number it called and the agent it was connected to |
//! | `call_keys_recent`, `call_keys` | SQLite only: the call-id index of `call_records`, from a compact key of the call id to the record, recent calls and merged ones (see migrations 11 and 12, and [`Registry::merge_recent_call_keys`]); written by the registry with each new record, moved or dropped by triggers when a record's call id changes or it is deleted |
//! | `operations` | workflows in flight (see below) |
//! | `webhook_idempotency` | the first answer to a webhook, by (provider, key), insert-if-absent |
//! | `active_calls` | calls in progress counted for admission control: those a limit applied to (on their number or agent) when they were written or when the limit was set, and outbound calls |
//! | `outbound_calls` | the outbound calls placed through the API: number, connection and agent of each call record |
//! | `api_idempotency_keys` | the first answer to each `Idempotency-Key` of an organization, by (organization, key), insert-if-absent |
//! | `managed_accounts` | per organization and provider, the connection holding its managed numbers (a Twilio subaccount, or the platform's Telnyx account); see [`managed`](crate::PlatformAccounts) |
//! | `managed_orders` | purchases of managed numbers: `buying`, `pending` (finished by [`Registry::refresh_managed_orders`]), `completed`, `failed`, `released` |
//! | `forwarded_numbers` | business numbers forwarded to a number of the organization, with their own agent |
//! | `forwarded_calls` | inbound calls that arrived forwarded, with the business number |
//! | `route_version`, `route_changes` | the change log of inbound routes, filled by triggers: a version per change to a number, a connection or an agent (see [`Registry::route_changes_since`]) |
//!
//! # Intent and recovery
//!
//! A workflow that changes both the carrier account and the database (import in `managed`
//! mode, mode switches, removal, and so disconnection) records an `operations` row before its
//! first carrier call and deletes it in the transaction of its last database write. A carrier
//! error midway is resolved at once; a process that dies between two steps, or a database write
//! that fails after a successful carrier change, leaves the row, and
//! [`Registry::recover_pending_operations`] (called at start and periodically) resolves it.
//! Resolution reads the carrier, because only the carrier knows what it did, and goes one fixed
//! way per kind:
//!
//! | kind | direction | what it does |
//! | --- | --- | --- |
//! | import, switch to `managed` | undo | if the carrier holds the gateway's configuration, put the saved one back; drop the `importing` row |
//! | switch to `outbound_only`, remove | finish | if the carrier still holds the gateway's configuration, restore the saved one; update or delete the row |
//! | repoint (after a new public URL) | follow the carrier | if the carrier holds the new gateway configuration, record it as applied; otherwise drop the operation, the old applied one stays, so `applied` always says what the carrier holds |
//!
//! Undoing a change to the customer's account and finishing a restoration of it are the two
//! directions that never leave a number pointing somewhere its owner did not choose. A carrier
//! that cannot be reached leaves the operation for the next attempt. One that refuses for good
//! (a 4xx) ends it: a refused restoration leaves the number as it was, and a refused undo rolls
//! forward (the number stays `managed`, the customer's configuration saved, so removing it later
//! restores it). Recovery skips operations younger than
//! [`RegistryConfig::stale_operation_after`] (another instance may be running them) and claims
//! each one with a compare-and-set, so two instances never resolve the same operation.
//!
//! # Invariants
//!
//! - Only this crate names sea-orm; the public API speaks in [`model`] types.
//! - Nothing lives in process memory: several gateway instances share one PostgreSQL, so
//!   uniqueness, idempotency, admission counts and operations are all rows.
//! - A secret is plaintext only inside a [`telephony_vault::SecretString`], for the moment of
//!   a carrier call; it never reaches a log line, an error message, an audit entry or `Debug`.
//! - Errors never reveal another organization's data: a number imported elsewhere is only
//!   `number_already_imported`, another organization's id is `not_found`.
//! - The gateway never releases an imported number at the carrier; a managed number (bought in
//!   the platform's account) is released only by [`Registry::release_managed_number`].
//!
//! # What it must not know
//!
//! HTTP routes, webhook signature formats, TwiML or routing policy: those belong to the service,
//! webhook and routing crates. It reaches carriers only through the [`telephony_carrier::Carrier`]
//! trait, built by a [`ClientFactory`].

mod agents;
mod bulk;
mod call_keys;
mod calls;
mod connections;
mod entity;
mod error;
mod forwarding;
mod inbound;
mod inbound_rows;
mod inbound_writer;
mod keys;
mod live_calls;
mod managed;
pub mod model;
mod numbers;
mod ops;
mod orgs;
mod registry;
mod route_changes;
mod test_calls;

pub use bulk::{BulkNumber, BulkTenant, BulkTwilioConnection, SeededTenant};
pub use error::{RegistryError, Result};
pub use forwarding::{ForwardedCall, ForwardedNumber, NewForwardedNumber};
pub use inbound::{InboundAnswer, InboundCall, InboundRoute};
pub use live_calls::{CallerId, IdempotencyClaim, IdempotencyLease, OutboundCallInfo, PlaceCall};
pub use managed::{
    ManagedOrder, ManagedRelease, NumberPath, OrderRefresh, OrderStatus, PlatformAccounts,
    PlatformTelnyx, PlatformTwilio,
};
pub use model::*;
pub use numbers::AccountNumberPage;
pub use registry::{CARRIER_CALLS_METRIC, ClientFactory, Registry, RegistryConfig};
pub use route_changes::{RouteChange, RouteChangeKind, RouteChanges};
pub use test_calls::{TestCall, TestCallState};
