//! Group commit of inbound calls: the calls that arrive while a transaction is being written
//! are written together in the next one, so a burst of webhooks costs a handful of statements
//! and one commit (one fsync) instead of a transaction each.
//!
//! Each [`crate::Registry`] (with its clones) has one writer task on SQLite, which has one
//! writer at a time, and [`POSTGRES_WRITERS`] on PostgreSQL (with a pool of connections of
//! their own), started on its first inbound call on a thread of their own
//! (`spawn_own_thread`). A webhook hands its call to the writers. A call counted against a
//! limit waits for its answer: it is answered only after the transaction holding its call
//! record, its admission and its remembered answer has committed, exactly as when it had a
//! transaction of its own. A call with nothing to count is answered before its write
//! ([`InboundWriter::queue_detached`]): the registry's reads of calls wait for those writes
//! ([`InboundWriter::settle`]). A writer
//! takes every call queued (up to its [`Limits`]; two deliveries of one webhook go in different
//! batches; a batch nobody waits for keeps collecting for up to [`LINGER`]) and writes them in
//! one transaction, in this order:
//!
//! 1. the numbers' last-call times, in one statement, for the numbers whose time is older than
//!    [`LAST_CALL_RESOLUTION`] (a retried webhook notes the time too); a number this registry
//!    noted less than half of that ago is not even looked at ([`LastCallNotes`]);
//! 2. the answers of the calls counted against a limit, one multi-row insert in key order that
//!    skips the keys answered before: those calls write nothing more and get the first answer.
//!    A call with no limit stores no answer: its answer depends on nothing the database holds;
//! 3. the calls with no limit (almost all): one statement each for their active calls (only
//!    where a limit applies by now), call records (an upsert: a final or `in-progress` status
//!    is never replaced by a non-final one, another organization's record is left alone) and
//!    forwarded calls, all idempotent, so a retried webhook's second write changes nothing
//!    (see [`crate::inbound_rows`]);
//! 4. the calls counted against a limit, one by one: admitted or refused, recorded, and a
//!    refusal's document put in place of the stored answer.
//!
//! On PostgreSQL the rows of the batch's numbers, and of its agents that have limits, are
//! locked first in the order of their ids, and answers are inserted in key order, so batches
//! of this and other instances wait for each other instead of deadlocking, and calls on one
//! agent are counted one after the other across instances; a batch without counted calls
//! copies its records in (`COPY`), after one statement for its numbers and limits, unless a
//! batch of the last ten seconds found a record of one of its calls: a batch that finds one
//! fails whole, writing nothing, and is written again as a single statement that upserts its
//! records ([`RecordWrite`]). When a batch fails, its calls are
//! written again one per transaction (a deadlocked or busy one up to three times), so one bad
//! call cannot fail the others.
//! Correctness never depends on this process's queue: everything is decided inside the
//! database transaction.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockType, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, TransactionTrait,
};
use telephony_carrier::Provider;
use tokio::sync::{mpsc, oneshot};

use crate::call_keys;
use crate::entity::{active_call, agent, idempotency, number};
use crate::error::{RegistryError, Result};
use crate::inbound::InboundAnswer;
use crate::inbound_rows::{self, RecordWrite, Row};
use crate::model::Admission;
use crate::registry::{new_id, now};

/// How many writers, the most calls written in one transaction, and how many may wait for the
/// writers, by back end (see [`Limits::of`]). The statements of a batch's uncounted calls bind
/// them as one JSON parameter (or, on PostgreSQL, copy them in), so their number is not bound by
/// the databases' parameter limits; the counted calls of a batch are (see [`WAITING_BATCH`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// How many writers take batches from the queue: one on SQLite, which writes one
    /// transaction at a time; [`POSTGRES_WRITERS`] on PostgreSQL.
    pub writers: usize,
    /// The most calls in one batch.
    pub max_batch: usize,
    /// Calls waiting for the writers beyond this many wait to be queued.
    pub queue: usize,
}

impl Limits {
    /// PostgreSQL: batches of up to 2,048 calls, written by up to [`POSTGRES_WRITERS`] at once,
    /// 8,192 queued. Under a closed-loop load the writers fill batches; a larger batch shares
    /// one commit (one fsync) among more calls (docs/PERFORMANCE.md, session 20); batches of up
    /// to 16,384 made no difference there (session 26), so the smaller bound, which bounds how
    /// long a counted call waits behind a batch, is kept.
    const POSTGRES: Self = Self {
        writers: POSTGRES_WRITERS,
        max_batch: 2048,
        queue: 8192,
    };

    /// SQLite: batches of up to 16,384 calls, 16,384 queued. SQLite writes every page a
    /// transaction changed to its log at the commit, and the checkpoint writes each back to
    /// the file; a call changes one page of the random call-id index of its own
    /// (`ux_call_records_call_key` then; since migration 11 the key tables, whose recent one
    /// stays small and is merged in key order: `call_keys`) unless another call of its batch
    /// shares that page. On a
    /// large table (the index has thousands of pages) a batch of 2,048 calls changed almost a
    /// page a call. Under a load the writer cannot keep up with at that cost, the calls that
    /// queue while it writes make the next batch, so larger batches let it catch up: with up
    /// to 16,384, the closed loop over 700,000 call records served 43,700 to 48,800 calls/s
    /// instead of 33,200 to 40,400, and in the full benchmark the median round read 0.522,
    /// 0.520, 0.477 and 0.536 of the reference with 32,768 queued and 0.480 and 0.451 with
    /// these limits (the same calls a second within the noise; the reference's speed moved)
    /// instead of 0.378 and 0.381 (docs/PERFORMANCE.md, session 26). At an ordinary rate the
    /// batches stay small (the linger ends them, [`LINGER`]). The cost, under such a load: a
    /// counted call waits behind the batch being written (batches of 12,000 calls took about
    /// 0.3 s on a 2-core machine over 700,000 records) and the calls queued before it (up to
    /// 16,384: one more such batch), against 2,048 and 8,192 before; its own batch takes no
    /// more calls once it holds [`WAITING_BATCH`]. A longer queue (32,768) served no more calls
    /// and would double that wait, and what [`SETTLE_LIMIT`] must cover.
    const SQLITE: Self = Self {
        writers: 1,
        max_batch: 16_384,
        queue: 16_384,
    };

    /// Whether a batch of `len` calls may take one more: it holds fewer than `max_batch`, and,
    /// once it holds a call that waits for its write (`waits`), fewer than [`WAITING_BATCH`].
    fn has_room(self, len: usize, waits: bool) -> bool {
        let limit = if waits {
            self.max_batch.min(WAITING_BATCH)
        } else {
            self.max_batch
        };
        len < limit
    }

    /// The limits of a writer on `backend`.
    pub(crate) fn of(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Self::POSTGRES,
            _ => Self::SQLITE,
        }
    }
}

/// A batch that holds a call that waits for its write (a counted call) takes no more calls
/// once it holds this many (or at once, if it holds more already): that call then waits
/// behind the batch being written and the calls queued before it, not also behind a large
/// batch of the calls queued after it. It also bounds the counted calls of a batch, whose
/// answers one statement inserts with four parameters each (`write_plain`): within SQLite's
/// limit of 32,766 parameters and PostgreSQL's of 65,535.
const WAITING_BATCH: usize = 2048;
const _: () = assert!(4 * WAITING_BATCH <= 32_766);
/// How long a batch of calls that nobody waits for keeps collecting calls before it is
/// written (see `linger`): how much later than its answer a call answered before its write can
/// reach the database (plus the commit). 50 ms rather than 5: under load, batches of a few
/// hundred calls became full batches (then 2,048 calls), for 2 to 11 % less of the gateway's CPU
/// per call on SQLite and 8 to 25 % less of PostgreSQL's (docs/PERFORMANCE.md, session 20); a
/// read that needs those calls (`settle`) and a call that waits for its write end the linger at
/// once.
const LINGER: Duration = Duration::from_millis(50);
/// The longest a read waits for the calls answered before their write (see `settle`): more
/// than a full queue and batch take to write on SQLite under a closed loop on a 2-core machine
/// (about 0.75 s over 700,000 records, see [`Limits`]).
const SETTLE_LIMIT: Duration = Duration::from_secs(2);
/// Batches written at once on PostgreSQL, which commits concurrent transactions together by
/// itself (SQLite has one writer: one batch at a time).
const POSTGRES_WRITERS: usize = 4;
/// The writers after the first start a batch only when at least this many calls wait in the
/// queue: at an ordinary rate one writer keeps up, and more of them would only cut its batches
/// into more, smaller transactions, whose database work competes with the webhooks for the
/// machine (measured: the p99 at 1,000 calls/s was 1.4 to 1.7 ms with one writer, 2.0 to 2.1
/// with four); under a load one writer cannot keep up with, they write beside it.
const BACKLOG: usize = 256;
/// How often a waiting extra writer looks at the queue.
const BACKLOG_CHECK: Duration = Duration::from_millis(5);

/// A number's last-call time is noted to within this much: a call that comes sooner after the
/// time noted leaves it alone, so a busy number's row is written about once a minute rather
/// than in every group commit.
pub(crate) const LAST_CALL_RESOLUTION: Duration = Duration::from_secs(60);

/// Numbers whose last-call time is older than this (or unset) take the time of a call at `at`.
fn last_call_stale(at: DateTime<Utc>) -> DateTime<Utc> {
    chrono::Duration::from_std(LAST_CALL_RESOLUTION)
        .ok()
        .and_then(|step| at.checked_sub_signed(step))
        .unwrap_or(at)
}

/// The most numbers [`LastCallNotes`] remembers per generation (two generations): about 100
/// bytes each, so at most about 10 MB however many numbers are called.
const NOTES_PER_GENERATION: usize = 50_000;

/// The numbers whose last-call time this registry's writers wrote lately, and the time they
/// wrote: a number noted less than half of [`LAST_CALL_RESOLUTION`] ago is left out of the next
/// batches' update, which would find its time recent and skip it anyway (on PostgreSQL after
/// locking its row). Only what this process wrote and saw committed is remembered, and a
/// number's time only ever moves forward, so the database holds that time or a later one; the
/// half-resolution margin covers a status callback of another instance writing a slightly
/// older time (clocks a few seconds apart). Nothing depends on it for correctness: a number
/// not remembered (another instance noted it, this process restarted, the generation was
/// full) is looked at in the database as before.
#[derive(Debug, Default)]
pub(crate) struct LastCallNotes {
    generations: std::sync::Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    /// When `current` began; it becomes `previous` half a resolution later.
    started: Option<DateTime<Utc>>,
    current: HashMap<String, DateTime<Utc>>,
    previous: HashMap<String, DateTime<Utc>>,
}

impl LastCallNotes {
    fn window() -> chrono::Duration {
        chrono::Duration::from_std(LAST_CALL_RESOLUTION / 2).unwrap_or(chrono::Duration::zero())
    }

    /// The distinct numbers among `numbers` whose last-call time a batch at `at` must look at:
    /// all but those noted less than half a resolution before `at`.
    pub(crate) fn to_touch<'a>(
        &self,
        numbers: impl IntoIterator<Item = &'a str>,
        at: DateTime<Utc>,
    ) -> Vec<&'a str> {
        let recent = at.checked_sub_signed(Self::window()).unwrap_or(at);
        let generations = lock(&self.generations);
        let mut seen = HashSet::new();
        numbers
            .into_iter()
            .filter(|number| seen.insert(*number))
            .filter(|number| {
                let noted = generations
                    .current
                    .get(*number)
                    .or_else(|| generations.previous.get(*number));
                !noted.is_some_and(|noted| *noted > recent && *noted <= at)
            })
            .collect()
    }

    /// Remembers that `numbers` were given the last-call time `at` (committed).
    pub(crate) fn noted(&self, numbers: Vec<String>, at: DateTime<Utc>) {
        if numbers.is_empty() {
            return;
        }
        let mut generations = lock(&self.generations);
        let started = *generations.started.get_or_insert(at);
        if at.signed_duration_since(started) >= Self::window() || at < started {
            generations.previous = std::mem::take(&mut generations.current);
            generations.started = Some(at);
        }
        for number in numbers {
            if generations.current.len() >= NOTES_PER_GENERATION {
                break;
            }
            generations.current.insert(number, at);
        }
    }
}

/// Statuses after which a call record's status never changes back.
pub(crate) const CALL_RECORD_FINAL: [&str; 5] =
    ["completed", "busy", "failed", "no-answer", "canceled"];

/// Statuses an inbound webhook's non-final status does not replace: the final ones and
/// `in-progress`, which a status callback may have written before a late delivery of the
/// webhook (whose status, `ringing`, is older news).
pub(crate) const CALL_RECORD_ANSWERED: [&str; 6] = [
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
    "in-progress",
];

/// An inbound call to write, with everything the transaction needs (owned, to cross to the
/// writer task).
///
/// Its text (call id, organization, number, agent, status, idempotency key, forwarding) is one
/// allocation, not one string each: the writer's thread frees it 50 to 100 ms after a webhook's
/// thread made it, and a block freed by another thread comes back to the webhooks' threads
/// cold, a cache miss at the next allocation that reuses it (docs/PERFORMANCE.md, session 21).
#[derive(Debug, Clone)]
pub(crate) struct PendingCall {
    pub provider: Provider,
    /// The text fields, one after another, and where each ends (see [`Field`]).
    text: Box<str>,
    ends: [usize; Field::COUNT],
    pub number_limit: Option<u32>,
    /// Whether the call would reach an agent, and that agent's limit.
    agent_limit: Option<Option<u32>>,
    /// 0: not forwarded; 1: forwarded, without a registration; 2: with one.
    forwarding: u8,
    /// The document answered when the call is admitted (or has no agent); empty for a call
    /// that is not counted, which stores no answer and was answered already.
    pub admitted: String,
    /// The document answered when the number is at its limit (only when it has one).
    pub number_full: Option<String>,
    /// The document answered when the agent is at its limit (only when it has one).
    pub agent_full: Option<String>,
}

/// The text fields of a [`PendingCall`], in the order they are stored.
#[derive(Clone, Copy)]
enum Field {
    CarrierCallId,
    OrgId,
    NumberId,
    E164,
    AgentId,
    Status,
    IdempotencyKey,
    Business,
    Registration,
}

impl Field {
    const COUNT: usize = 9;
}

/// What a [`PendingCall`] is made of, borrowed from the webhook.
pub(crate) struct CallParts<'a> {
    pub provider: Provider,
    pub carrier_call_id: &'a str,
    pub org_id: &'a str,
    pub number_id: &'a str,
    pub e164: &'a str,
    pub number_limit: Option<u32>,
    /// The agent the call would reach, and its limit.
    pub agent: Option<(&'a str, Option<u32>)>,
    pub status: &'a str,
    /// The business number a forwarded call was forwarded from, and its registration.
    pub forwarded: Option<(&'a str, Option<&'a str>)>,
    pub idempotency_key: &'a str,
}

impl PendingCall {
    /// The call of `parts`, with no documents yet.
    pub(crate) fn new(parts: &CallParts<'_>) -> Self {
        let (business, registration) = match parts.forwarded {
            Some((business, registration)) => (business, registration.unwrap_or("")),
            None => ("", ""),
        };
        let fields: [&str; Field::COUNT] = [
            parts.carrier_call_id,
            parts.org_id,
            parts.number_id,
            parts.e164,
            parts.agent.map_or("", |(id, _)| id),
            parts.status,
            parts.idempotency_key,
            business,
            registration,
        ];
        let mut text = String::with_capacity(fields.iter().map(|f| f.len()).sum());
        let mut ends = [0; Field::COUNT];
        for (end, field) in ends.iter_mut().zip(fields) {
            text.push_str(field);
            *end = text.len();
        }
        Self {
            provider: parts.provider,
            text: text.into_boxed_str(),
            ends,
            number_limit: parts.number_limit,
            agent_limit: parts.agent.map(|(_, limit)| limit),
            forwarding: match parts.forwarded {
                None => 0,
                Some((_, None)) => 1,
                Some((_, Some(_))) => 2,
            },
            admitted: String::new(),
            number_full: None,
            agent_full: None,
        }
    }

    fn field(&self, field: Field) -> &str {
        let index = field as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        self.text.get(start..self.ends[index]).unwrap_or_default()
    }

    pub(crate) fn carrier_call_id(&self) -> &str {
        self.field(Field::CarrierCallId)
    }

    pub(crate) fn org_id(&self) -> &str {
        self.field(Field::OrgId)
    }

    pub(crate) fn number_id(&self) -> &str {
        self.field(Field::NumberId)
    }

    pub(crate) fn e164(&self) -> &str {
        self.field(Field::E164)
    }

    /// The agent the call would reach, and its limit.
    pub(crate) fn agent(&self) -> Option<(&str, Option<u32>)> {
        self.agent_limit
            .map(|limit| (self.field(Field::AgentId), limit))
    }

    pub(crate) fn status(&self) -> &str {
        self.field(Field::Status)
    }

    pub(crate) fn idempotency_key(&self) -> &str {
        self.field(Field::IdempotencyKey)
    }

    /// The business number a forwarded call was forwarded from, and its registration.
    pub(crate) fn forwarded(&self) -> Option<(&str, Option<&str>)> {
        match self.forwarding {
            0 => None,
            1 => Some((self.field(Field::Business), None)),
            _ => Some((
                self.field(Field::Business),
                Some(self.field(Field::Registration)),
            )),
        }
    }

    /// Whether admission control must count this call (one of its limits applies).
    pub(crate) fn counted(&self) -> bool {
        self.agent_limit
            .is_some_and(|limit| limit.is_some() || self.number_limit.is_some())
    }

    fn key(&self) -> (&'static str, &str) {
        (self.provider.as_str(), self.idempotency_key())
    }
}

struct Job {
    call: PendingCall,
    reply: Reply,
}

/// Who waits for a call's write.
enum Reply {
    /// The webhook, for its answer (a call counted against a limit).
    Wait(oneshot::Sender<Result<InboundAnswer>>),
    /// Nobody: the webhook was answered when the call was queued. The ticket keeps the call
    /// in [`InFlight`] until the job is done with (written, failed or dropped).
    Detached(Ticket),
}

/// The calls answered before their write, still queued or being written: reads of this
/// registry wait for the ones queued before them ([`InboundWriter::settle`]).
#[derive(Default)]
struct InFlight {
    /// The next call's sequence number, and the numbers of the calls not yet written.
    calls: std::sync::Mutex<(u64, BTreeSet<u64>)>,
    /// Woken when calls leave `calls`.
    written: tokio::sync::Notify,
    /// Notified by a read that waits for them: a lingering batch is written at once.
    wanted: tokio::sync::Notify,
    /// Notified when a call that waits for its write is queued, or when a whole batch waits:
    /// a lingering batch is written at once. Other calls do not wake the writer (see `linger`).
    urgent: tokio::sync::Notify,
}

/// One call in [`InFlight`]; dropping it takes the call out.
struct Ticket {
    seq: u64,
    in_flight: Arc<InFlight>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.in_flight.calls).1.remove(&self.seq);
        self.in_flight.written.notify_waiters();
    }
}

/// The in-flight set's lock (its holder never panics while holding it, but a poisoned lock
/// still holds a consistent set).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The handle to a registry's writer task (started on first use).
#[derive(Default)]
pub(crate) struct InboundWriter {
    /// The writers' queue and its limits, made when the first call is queued.
    queue: OnceLock<(mpsc::Sender<Job>, Limits)>,
    in_flight: Arc<InFlight>,
}

impl std::fmt::Debug for InboundWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundWriter")
            .field("started", &self.queue.get().is_some())
            .finish()
    }
}

/// What the writer needs of the registry (not the registry itself: the task must end when the
/// last registry handle is dropped, which closes its queue).
#[derive(Clone)]
pub(crate) struct WriterContext {
    pub db: DatabaseConnection,
    pub max_call_age: Duration,
    /// The numbers whose last-call time this registry's writers noted lately.
    pub notes: Arc<LastCallNotes>,
    /// When this registry's PostgreSQL writers last found a record of a batch's call.
    pub record_conflicts: Arc<RecordConflicts>,
}

/// After a PostgreSQL batch's plain insert of records found one that exists, the batches of
/// the next [`UPSERT_AFTER_CONFLICT`] use the upsert at once: conflicts come in runs (a
/// carrier retrying webhooks it timed out on, status callbacks overtaking a backlog), and each
/// would cost the batch a failed statement before its upsert. Only a cost depends on it: a
/// batch is written right either way.
#[derive(Debug, Default)]
pub(crate) struct RecordConflicts {
    last: std::sync::Mutex<Option<Instant>>,
}

/// How long after a conflict the batches upsert their records (see [`RecordConflicts`]).
const UPSERT_AFTER_CONFLICT: Duration = Duration::from_secs(10);

impl RecordConflicts {
    /// How a batch written at `now` writes its records.
    fn record_write(&self, now: Instant) -> RecordWrite {
        match *lock(&self.last) {
            Some(last) if now.saturating_duration_since(last) < UPSERT_AFTER_CONFLICT => {
                RecordWrite::Upsert
            }
            _ => RecordWrite::Insert,
        }
    }

    /// Notes that a batch's plain insert found a record at `now`.
    fn conflicted(&self, now: Instant) {
        *lock(&self.last) = Some(now);
    }
}

impl InboundWriter {
    /// Writes `call` in the next group commit and returns its answer once committed.
    pub(crate) async fn answer(
        &self,
        context: impl FnOnce() -> WriterContext,
        call: PendingCall,
    ) -> Result<InboundAnswer> {
        let (reply, answer) = oneshot::channel();
        self.queue(context)
            .0
            .send(Job {
                call,
                reply: Reply::Wait(reply),
            })
            .await
            .map_err(|_| writer_stopped())?;
        self.in_flight.urgent.notify_one();
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Queues `call` for the next group commit without waiting for it (waiting only while the
    /// queue is full). [`InboundWriter::settle`] waits for it.
    pub(crate) async fn queue_detached(
        &self,
        context: impl FnOnce() -> WriterContext,
        call: PendingCall,
    ) -> Result<()> {
        let ticket = {
            let mut calls = lock(&self.in_flight.calls);
            let seq = calls.0;
            calls.0 += 1;
            calls.1.insert(seq);
            Ticket {
                seq,
                in_flight: self.in_flight.clone(),
            }
        };
        let (queue, limits) = self.queue(context);
        queue
            .send(Job {
                call,
                reply: Reply::Detached(ticket),
            })
            .await
            .map_err(|_| writer_stopped())?;
        // A full batch is written at once rather than at the end of the linger.
        if queue.max_capacity() - queue.capacity() >= limits.max_batch {
            self.in_flight.urgent.notify_one();
        }
        Ok(())
    }

    /// Waits until every call queued by [`InboundWriter::queue_detached`] before this moment
    /// is written (or its write failed), for at most [`SETTLE_LIMIT`]: a write stuck in the
    /// database must not stop every read of calls with it (the read then goes on, and may miss
    /// those calls). Returns at once when none is in flight.
    pub(crate) async fn settle(&self) {
        if tokio::time::timeout(SETTLE_LIMIT, self.settle_all())
            .await
            .is_err()
        {
            tracing::warn!(
                limit_ms = SETTLE_LIMIT.as_millis() as u64,
                "inbound calls answered before their write are still unwritten; reading without them"
            );
        }
    }

    async fn settle_all(&self) {
        let last = {
            let calls = lock(&self.in_flight.calls);
            match calls.1.first() {
                None => return,
                Some(_) => calls.0,
            }
        };
        self.in_flight.wanted.notify_one();
        loop {
            let written = self.in_flight.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if lock(&self.in_flight.calls)
                .1
                .first()
                .is_none_or(|first| *first >= last)
            {
                return;
            }
            written.await;
        }
    }

    fn queue(&self, context: impl FnOnce() -> WriterContext) -> &(mpsc::Sender<Job>, Limits) {
        self.queue.get_or_init(|| {
            let context = context();
            let limits = Limits::of(context.db.get_database_backend());
            let (sender, receiver) = mpsc::channel(limits.queue);
            let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
            let in_flight = self.in_flight.clone();
            spawn_own_thread(
                move |context: WriterContext| {
                    (0..limits.writers)
                        .map(|writer| {
                            run(
                                context.clone(),
                                receiver.clone(),
                                in_flight.clone(),
                                limits,
                                writer == 0,
                            )
                        })
                        .collect()
                },
                context,
            );
            (sender, limits)
        })
    }
}

/// Runs the writers on a thread of their own (with a runtime of its own), not as tasks among
/// the webhooks. A group commit is several statements, each a hand-off to the database and
/// back, and a writer woken behind a queue of webhooks waited milliseconds for each, so the
/// writer, not the machine, limited how many calls SQLite wrote per second. And a writer
/// preparing a batch (a thousand rows made into the statement's parameter) held up the
/// webhooks queued behind it on its worker: on PostgreSQL, moving its four writers off the
/// webhooks' workers, with connections of their own, raised the closed loop's throughput by
/// about 5 % (three interleaved pairs).
///
/// On PostgreSQL the writers get a pool of their own ([`POSTGRES_WRITERS`] connections, the
/// registry pool's settings), opened on this thread's runtime, which drives their sockets, and
/// closed when the writers end: a connection opened here must not serve the registry's other
/// work, which would stop when this thread does. SQLite's connections are threads of their
/// own, whichever runtime waits for them. The thread ends when the queue closes (the last
/// registry handle is dropped).
fn spawn_own_thread<W, M>(make_writers: M, context: WriterContext)
where
    W: std::future::Future<Output = ()> + Send + 'static,
    M: FnOnce(WriterContext) -> Vec<W> + Send + 'static,
{
    // The runtime is built on the thread: one dropped on the caller's task, should the thread
    // not start, would panic inside the caller's runtime.
    let started = std::thread::Builder::new()
        .name("inbound-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(async move {
                    let own_pool = writers_pool(&context.db);
                    let context = WriterContext {
                        db: own_pool.clone().unwrap_or_else(|| context.db.clone()),
                        ..context
                    };
                    let tasks: Vec<_> = make_writers(context)
                        .into_iter()
                        .map(tokio::spawn)
                        .collect();
                    for task in tasks {
                        if let Err(error) = task.await {
                            tracing::error!(%error, "an inbound call writer stopped");
                        }
                    }
                    if let Some(pool) = own_pool {
                        let _ = pool.close().await;
                    }
                }),
                Err(error) => {
                    tracing::error!(%error, "no runtime for the inbound call writers");
                }
            }
        });
    if let Err(error) = started {
        // The queue's receiver went with the thread: calls fail with "the writer stopped".
        tracing::error!(%error, "the inbound call writers' thread could not start");
    }
}

/// On PostgreSQL, a pool for the writers alone: [`POSTGRES_WRITERS`] connections with the
/// settings of `db`'s pool, opened when first used, on the runtime current when this is called
/// (see [`spawn_own_thread`]). None on SQLite (and for a connection that is not a pool).
fn writers_pool(db: &DatabaseConnection) -> Option<DatabaseConnection> {
    let sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &db.inner else {
        return None;
    };
    let registry_pool = db.get_postgres_connection_pool();
    let pool = registry_pool
        .options()
        .clone()
        .min_connections(0)
        .max_connections(POSTGRES_WRITERS as u32)
        .connect_lazy_with(registry_pool.connect_options().as_ref().clone());
    Some(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
        pool,
    ))
}

fn writer_stopped() -> RegistryError {
    RegistryError::Database(sea_orm::DbErr::Custom(
        "the inbound call writer stopped".into(),
    ))
}

/// One writer: takes batches from the queue and writes them. The `first` writer always does;
/// the others only while calls back up behind it (see [`BACKLOG`]).
async fn run(
    context: WriterContext,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    in_flight: Arc<InFlight>,
    limits: Limits,
    first: bool,
) {
    let mut next: Vec<Job> = Vec::new();
    // Calls written since the recent call keys were last counted (SQLite: see `call_keys`).
    let mut unchecked = 0;
    let sqlite = context.db.get_database_backend() == DbBackend::Sqlite;
    loop {
        let mut batch = std::mem::take(&mut next);
        // One writer waits on the queue at a time; it writes after letting go of it. A writer
        // with deliveries left over from its last batch does not wait for the queue (the writer
        // holding it may be waiting for calls that wait for those deliveries' answers).
        if batch.is_empty() {
            let mut receiver = queue.lock().await;
            while !first && receiver.len() < BACKLOG && !receiver.is_closed() {
                drop(receiver);
                tokio::time::sleep(BACKLOG_CHECK).await;
                receiver = queue.lock().await;
            }
            // The first call, waiting for it; `linger` takes the rest, within the limits.
            if receiver.recv_many(&mut batch, 1).await == 0 {
                return;
            }
            linger(&mut receiver, &mut batch, limits, &in_flight).await;
        } else if let Ok(mut queue) = queue.try_lock() {
            drain(&mut queue, &mut batch, limits);
        }
        // Two deliveries of one webhook go in different transactions: the second then finds
        // the first's answer.
        let first_delivery: Vec<bool> = {
            let mut seen = HashSet::with_capacity(batch.len());
            batch
                .iter()
                .map(|job| seen.insert((job.call.provider, job.call.idempotency_key())))
                .collect()
        };
        let mut first_delivery = first_delivery.into_iter();
        let (mut batch, later): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|_| first_delivery.next().unwrap_or(true));
        next = later;
        // Every writer inserts the answers of counted calls in the order of the keys, so two
        // batches holding some of the same keys wait for each other rather than deadlock. A
        // batch with no counted call stores no answer and is not sorted: on PostgreSQL its one
        // statement orders its rows itself, and SQLite has one writer at a time. (Comparing
        // keys that share a long prefix was a quarter of this task's time.)
        if batch.iter().any(|job| job.call.counted()) {
            batch.sort_unstable_by(|a, b| a.call.key().cmp(&b.call.key()));
        }
        let written = batch.len();
        write(&context, batch).await;
        // After the batch's answers are out: none of its calls waits for a merge, but a
        // counted call queued meanwhile does (0.37 s over 1,500,000 records; see `call_keys`).
        unchecked += written;
        if sqlite && unchecked >= call_keys::CHECK_EVERY {
            unchecked = 0;
            call_keys::merge_when_due(&context.db).await;
        }
    }
}

/// Keeps collecting calls for up to [`LINGER`] while nobody waits for the batch (every call in
/// it was answered already), so a steady stream of calls is written in a few large
/// transactions rather than many small ones that would take the machine from the webhooks. A
/// call that waits for its write, a read that waits for the batch (`settle`) or a full batch
/// ends the wait at once.
///
/// The writer does not wait on the queue meanwhile, so the calls arriving during the linger
/// do not each wake it (a thread woken per call cost as much as the rest of the call's write):
/// it sleeps until the linger ends or it is told to stop waiting, then takes what was queued.
async fn linger(
    queue: &mut mpsc::Receiver<Job>,
    batch: &mut Vec<Job>,
    limits: Limits,
    in_flight: &InFlight,
) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let wanted = in_flight.wanted.notified();
    tokio::pin!(wanted);
    loop {
        if drain(queue, batch, limits) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            () = &mut wanted => break,
            () = in_flight.urgent.notified() => {}
        }
    }
    drain(queue, batch, limits);
}

/// Takes the calls queued now into `batch`, within `limits` ([`Limits::has_room`]); whether
/// the batch is ready to be written (full, or holding a call that waits for its write).
fn drain(queue: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, limits: Limits) -> bool {
    let mut waits = batch.iter().any(Job::waits);
    while limits.has_room(batch.len(), waits) {
        match queue.try_recv() {
            Ok(job) => {
                waits |= job.waits();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    waits || batch.len() >= limits.max_batch
}

async fn write(context: &WriterContext, batch: Vec<Job>) {
    let calls: Vec<&PendingCall> = batch.iter().map(|job| &job.call).collect();
    metrics::histogram!("telephony_inbound_commit_calls").record(calls.len() as f64);
    let started = Instant::now();
    let written = write_batch(context, &calls).await;
    metrics::histogram!("telephony_inbound_commit_seconds").record(started.elapsed().as_secs_f64());
    match written {
        Ok(answers) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                job.done(Ok(answer));
            }
        }
        Err(error) if batch.len() == 1 && !error_is_transient(&error) => {
            if let Some(job) = batch.into_iter().next() {
                job.done(Err(error));
            }
        }
        Err(error) => {
            if batch.len() > 1 {
                tracing::warn!(%error, calls = batch.len(), "a group commit failed; writing its calls one by one");
            }
            for job in batch {
                let result = write_alone(context, &job.call, error_is_transient(&error)).await;
                job.done(result);
            }
        }
    }
}

impl Job {
    /// Whether a webhook waits for this call's write.
    fn waits(&self) -> bool {
        matches!(self.reply, Reply::Wait(_))
    }

    /// Hands the outcome of the call's write to whoever waits for it. A call answered before
    /// its write has nobody to tell of a failure but the log and the
    /// `telephony_inbound_write_failures_total` counter: its webhook was answered, and the
    /// carrier's status callback for it records the call again (without its forwarding
    /// details or its active-call row).
    fn done(self, result: Result<InboundAnswer>) {
        match self.reply {
            Reply::Wait(reply) => {
                let _ = reply.send(result);
            }
            Reply::Detached(_ticket) => {
                if let Err(error) = result {
                    metrics::counter!("telephony_inbound_write_failures_total").increment(1);
                    tracing::error!(
                        %error,
                        provider = self.call.provider.as_str(),
                        number_id = %self.call.number_id(),
                        call_id = %self.call.carrier_call_id(),
                        "an inbound call answered before its write could not be recorded"
                    );
                }
            }
        }
    }
}

/// Writes one call in its own transaction, again (`retry`) when a batch holding it failed
/// with an error another attempt can cure (a deadlock or serialization failure: PostgreSQL
/// rolled back one of two transactions waiting for each other).
async fn write_alone(
    context: &WriterContext,
    call: &PendingCall,
    retry: bool,
) -> Result<InboundAnswer> {
    let mut attempts = if retry { 3 } else { 1 };
    loop {
        attempts -= 1;
        match write_batch(context, &[call]).await {
            Ok(mut answers) => return Ok(answers.remove(0)),
            Err(error) if attempts > 0 && error_is_transient(&error) => {
                tracing::debug!(%error, "an inbound call's transaction is retried");
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether the database rolled the transaction back to resolve a conflict with another one
/// (PostgreSQL's `40P01` deadlock and `40001` serialization failure; SQLite's busy database).
fn error_is_transient(error: &RegistryError) -> bool {
    let RegistryError::Database(db) = error else {
        return false;
    };
    let code = match db {
        sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))
        | sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error)) => error
            .as_database_error()
            .and_then(|e| e.code().map(|c| c.into_owned())),
        _ => None,
    };
    matches!(code.as_deref(), Some("40P01" | "40001" | "5" | "517"))
}

/// Writes `calls` (distinct idempotency keys) in one transaction; their answers, in order.
async fn write_batch(
    context: &WriterContext,
    calls: &[&PendingCall],
) -> Result<Vec<InboundAnswer>> {
    let db = &context.db;
    let backend = db.get_database_backend();
    let at = now();
    if backend == DbBackend::Postgres && !calls.iter().any(|c| c.counted()) {
        let ids: Vec<String> = calls.iter().map(|_| new_id()).collect();
        let rows: Vec<Row<'_>> = calls
            .iter()
            .zip(&ids)
            .map(|(call, id)| Row::of(call, id))
            .collect();
        let touch = context
            .notes
            .to_touch(calls.iter().map(|c| c.number_id()), at);
        let stale = last_call_stale(at);
        let records = context.record_conflicts.record_write(Instant::now());
        let first = match (records, &db.inner) {
            (
                RecordWrite::Insert,
                sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_),
            ) => {
                let pool = db.get_postgres_connection_pool();
                inbound_rows::copy_postgres_batch(pool, &rows, &touch, at, stale).await
            }
            _ => inbound_rows::write_postgres_batch(db, &rows, &touch, at, stale, records).await,
        };
        let touched = match first {
            Err(error)
                if records == RecordWrite::Insert && inbound_rows::is_record_conflict(&error) =>
            {
                // The failed batch wrote nothing (its transaction rolled back): it is written
                // again, whole.
                context.record_conflicts.conflicted(Instant::now());
                metrics::counter!("telephony_inbound_record_conflicts_total").increment(1);
                inbound_rows::write_postgres_batch(
                    db,
                    &rows,
                    &touch,
                    at,
                    stale,
                    RecordWrite::Upsert,
                )
                .await?
            }
            written => written?,
        };
        context.notes.noted(touched, at);
        return Ok(calls.iter().map(|call| admitted(call)).collect());
    }
    let txn = db.begin().await?;
    // The first statement writes, so SQLite takes its write lock here (waiting up to the busy
    // timeout) rather than failing to upgrade a read snapshot later. On PostgreSQL the batch
    // first takes the lock its record inserts will take anyway, before it reads any limit or
    // writes any row, so that the count of calls in progress when a limit is set (which holds
    // SHARE on `call_records`) and this batch run one after the other: the count sees the
    // batch's records, or the batch sees the limit, and neither waits on a row the other holds
    // (`count_calls_in_progress`). Then it locks the numbers' rows (see `lock_rows`). A retried
    // webhook notes the time too.
    if backend == DbBackend::Postgres {
        txn.execute_unprepared("LOCK TABLE call_records IN ROW EXCLUSIVE MODE")
            .await?;
        lock_rows(&txn, calls).await?;
    }
    let touch = context
        .notes
        .to_touch(calls.iter().map(|c| c.number_id()), at);
    let touched = inbound_rows::touch_numbers(&txn, &touch, at, last_call_stale(at)).await?;
    // Every call's answer is inserted if absent, in key order, before anything else is written
    // for it: a call answered before writes nothing more.
    let mut answers = write_plain(&txn, calls, at).await?;
    for (i, call) in calls.iter().enumerate() {
        if call.counted() && answers[i].fresh {
            answers[i] = write_counted(&txn, context, call, at).await?;
        }
    }
    txn.commit().await?;
    context.notes.noted(touched, at);
    Ok(answers)
}

/// On PostgreSQL, locks the batch's numbers, then its agents that have limits, each in the
/// order of their ids, before anything else is written: every batch, on every instance, takes
/// its locks in that order, so batches wait for each other instead of deadlocking, and the
/// calls counted against one number or agent are counted one after the other. (The update of
/// the numbers' last-call times cannot stand in for the lock: it skips a number whose time is
/// recent, which is every busy number.)
async fn lock_rows<C: ConnectionTrait>(txn: &C, calls: &[&PendingCall]) -> Result<()> {
    let backend = txn.get_database_backend();
    let mut numbers: Vec<&str> = calls.iter().map(|c| c.number_id()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut lock = Query::select();
    lock.column(number::Column::Id)
        .from(number::Entity)
        .and_where(Expr::col(number::Column::Id).is_in(numbers))
        .order_by(number::Column::Id, Order::Asc)
        .lock(LockType::Update);
    txn.query_all_raw(backend.build(&lock)).await?;
    let mut agents: Vec<&str> = calls
        .iter()
        .filter_map(|c| match c.agent() {
            Some((id, Some(_))) => Some(id),
            _ => None,
        })
        .collect();
    if agents.is_empty() {
        return Ok(());
    }
    agents.sort_unstable();
    agents.dedup();
    let mut lock = Query::select();
    lock.column(agent::Column::Id)
        .from(agent::Entity)
        .and_where(Expr::col(agent::Column::Id).is_in(agents))
        .order_by(agent::Column::Id, Order::Asc)
        .lock(LockType::Update);
    txn.query_all_raw(backend.build(&lock)).await?;
    Ok(())
}

/// Stores the answers of the counted calls among `calls` where none is stored yet (the
/// admitted document, replaced by [`write_counted`] when refused), then writes the calls no
/// limit applies to, a few statements for all of them; the answers, in order (`fresh` when
/// written now).
///
/// A call with no limit to count stores no answer: it was answered before its write with the
/// document its webhook always renders, and writing it again (a retried webhook) changes
/// nothing, as its writes are idempotent (its active call and forwarding are inserted if absent,
/// its record upserted so a final or `in-progress` status stays). That keeps the widest row of the hot path,
/// the document, out of the database for almost every call.
async fn write_plain<C: ConnectionTrait>(
    txn: &C,
    calls: &[&PendingCall],
    at: DateTime<Utc>,
) -> Result<Vec<InboundAnswer>> {
    // 1. The counted calls' answers, where none is stored yet: those whose answer went in are
    //    fresh.
    let counted: Vec<&PendingCall> = calls.iter().copied().filter(|c| c.counted()).collect();
    let mut fresh_keys: HashSet<(String, String)> = HashSet::new();
    if !counted.is_empty() {
        let stored =
            idempotency::Entity::insert_many(counted.iter().map(|c| idempotency::ActiveModel {
                provider: Set(c.provider.as_str().to_owned()),
                idempotency_key: Set(c.idempotency_key().to_owned()),
                response_body: Set(c.admitted.clone()),
                created_at: Set(at),
            }))
            .on_conflict_do_nothing()
            .exec_with_returning_keys(txn)
            .await;
        // Every key already answered shows as absent from the keys returned (all of them:
        // `Conflicted`); any error fails the batch, whose calls are then written one by one.
        if let sea_orm::TryInsertResult::Inserted(keys) = stored? {
            fresh_keys.extend(keys);
        }
    }
    let is_fresh = |c: &PendingCall| {
        !c.counted()
            || fresh_keys.contains(&(
                c.provider.as_str().to_owned(),
                c.idempotency_key().to_owned(),
            ))
    };
    // The calls counted against a limit are written one by one afterwards (`write_counted`).
    let fresh: Vec<&PendingCall> = calls
        .iter()
        .copied()
        .filter(|c| !c.counted() && is_fresh(c))
        .collect();
    // 2. The calls with no limit: their records (and active calls where a limit applies by
    //    now, and forwarding), a few statements for all of them.
    //    One row per carrier call id: the same call id on two numbers (a forger's, or a
    //    carrier's mistake) is written once, as PostgreSQL's upsert cannot touch a row twice in
    //    one statement.
    let mut seen = HashSet::new();
    let fresh: Vec<&PendingCall> = fresh
        .into_iter()
        .filter(|c| seen.insert((c.provider, c.carrier_call_id())))
        .collect();
    let ids: Vec<String> = fresh.iter().map(|_| new_id()).collect();
    let rows: Vec<Row<'_>> = fresh
        .iter()
        .zip(&ids)
        .map(|(call, id)| Row::of(call, id))
        .collect();
    inbound_rows::write_uncounted(txn, &rows, at).await?;
    // 3. The first answers of the calls answered before.
    let answered_before: Vec<String> = calls
        .iter()
        .filter(|c| !is_fresh(c))
        .map(|c| c.idempotency_key().to_owned())
        .collect();
    let mut first: HashMap<(String, String), String> = HashMap::new();
    if !answered_before.is_empty() {
        for row in idempotency::Entity::find()
            .filter(idempotency::Column::IdempotencyKey.is_in(answered_before))
            .all(txn)
            .await?
        {
            first.insert((row.provider, row.idempotency_key), row.response_body);
        }
    }
    calls
        .iter()
        .map(|c| {
            if is_fresh(c) {
                return Ok(admitted(c));
            }
            let (provider, key) = c.key();
            first
                .remove(&(provider.to_owned(), key.to_owned()))
                .map(|body| InboundAnswer {
                    body,
                    fresh: false,
                    admission: None,
                })
                .ok_or_else(|| RegistryError::Conflict("idempotency record vanished".into()))
        })
        .collect()
}

/// The answer of a call written as admitted: its admitted document (empty for a call that is
/// not counted, answered already).
fn admitted(call: &PendingCall) -> InboundAnswer {
    InboundAnswer {
        body: call.admitted.clone(),
        fresh: true,
        admission: Some(Admission::Admitted),
    }
}

/// One call that admission control counts, whose answer was just stored as admitted: it is
/// admitted or refused, recorded, and a refusal's document replaces the stored answer.
async fn write_counted<C: ConnectionTrait>(
    txn: &C,
    context: &WriterContext,
    call: &PendingCall,
    at: DateTime<Utc>,
) -> Result<InboundAnswer> {
    let admission = admit(txn, context, call, at).await?;
    // The record names the agent only when the call was connected to it.
    let id = new_id();
    let mut row = Row::of(call, &id);
    if !matches!(admission, Admission::Admitted | Admission::AlreadyAdmitted) {
        row = row.without_agent();
    }
    inbound_rows::write_record(txn, row, at).await?;
    let document = match admission {
        Admission::NumberAtCapacity => call.number_full.as_ref(),
        Admission::AtCapacity => call.agent_full.as_ref(),
        Admission::Admitted | Admission::AlreadyAdmitted => None,
    };
    if let Some(document) = document {
        idempotency::Entity::update_many()
            .col_expr(
                idempotency::Column::ResponseBody,
                Expr::value(document.as_str()),
            )
            .filter(idempotency::Column::Provider.eq(call.provider.as_str()))
            .filter(idempotency::Column::IdempotencyKey.eq(call.idempotency_key()))
            .exec(txn)
            .await?;
    }
    Ok(InboundAnswer {
        body: document.unwrap_or(&call.admitted).clone(),
        fresh: true,
        admission: Some(admission),
    })
}

/// Counts the call against its number's and its agent's limits: its `active_calls` row is
/// inserted, then the active calls (younger than the maximum call age) counted; a refused
/// call's row is deleted.
async fn admit<C: ConnectionTrait>(
    txn: &C,
    context: &WriterContext,
    call: &PendingCall,
    at: DateTime<Utc>,
) -> Result<Admission> {
    let Some((agent_id, agent_limit)) = call.agent() else {
        return Ok(Admission::Admitted);
    };
    let row = active_call::Entity::insert(active_call::ActiveModel {
        provider: Set(call.provider.as_str().to_owned()),
        carrier_call_id: Set(call.carrier_call_id().to_owned()),
        org_id: Set(call.org_id().to_owned()),
        number_id: Set(call.number_id().to_owned()),
        agent_id: Set(Some(agent_id.to_owned())),
        started_at: Set(at),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await?;
    if !inserted(&row) {
        return Ok(Admission::AlreadyAdmitted);
    }
    let age = chrono::Duration::from_std(context.max_call_age).unwrap_or(chrono::Duration::MAX);
    let cutoff = at.checked_sub_signed(age).unwrap_or_default();
    let count = |column: active_call::Column, id: &str| {
        use sea_orm::PaginatorTrait;
        active_call::Entity::find()
            .filter(column.eq(id.to_owned()))
            .filter(active_call::Column::StartedAt.gte(cutoff))
            .count(txn)
    };
    let verdict = if let Some(limit) = call.number_limit
        && count(active_call::Column::NumberId, call.number_id()).await? > u64::from(limit)
    {
        Admission::NumberAtCapacity
    } else if let Some(limit) = agent_limit
        && count(active_call::Column::AgentId, agent_id).await? > u64::from(limit)
    {
        Admission::AtCapacity
    } else {
        return Ok(Admission::Admitted);
    };
    active_call::Entity::delete_by_id((
        call.provider.as_str().to_owned(),
        call.carrier_call_id().to_owned(),
    ))
    .exec(txn)
    .await?;
    Ok(verdict)
}

/// Whether an insert-if-absent inserted (a conflict shows as `Conflicted` or as zero rows
/// inserted, depending on the back end).
fn inserted(result: &sea_orm::TryInsertResult<u64>) -> bool {
    !matches!(
        result,
        sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Inserted(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_call_gives_back_each_of_its_fields() {
        let parts = |agent, forwarded| CallParts {
            provider: Provider::Twilio,
            carrier_call_id: "CA0123",
            org_id: "org-1",
            number_id: "number-1",
            e164: "+14155550100",
            number_limit: Some(3),
            agent,
            status: "ringing",
            forwarded,
            idempotency_key: "voice:number-1:CA0123",
        };
        for (agent, forwarded) in [
            (None, None),
            (Some(("agent-1", None)), Some(("+12125550199", None))),
            (
                Some(("agent-2", Some(5))),
                Some(("+12125550199", Some("reg-1"))),
            ),
            (Some(("", Some(1))), Some(("", Some("")))),
        ] {
            let call = PendingCall::new(&parts(agent, forwarded));
            assert_eq!(call.carrier_call_id(), "CA0123");
            assert_eq!(call.org_id(), "org-1");
            assert_eq!(call.number_id(), "number-1");
            assert_eq!(call.e164(), "+14155550100");
            assert_eq!(call.number_limit, Some(3));
            assert_eq!(call.agent(), agent);
            assert_eq!(call.status(), "ringing");
            assert_eq!(call.forwarded(), forwarded);
            assert_eq!(call.idempotency_key(), "voice:number-1:CA0123");
            assert_eq!(call.key(), ("twilio", "voice:number-1:CA0123"));
            assert_eq!(call.counted(), agent.is_some(), "the number has a limit");
            assert!(call.admitted.is_empty() && call.number_full.is_none());
        }
        let unlimited = PendingCall::new(&CallParts {
            number_limit: None,
            ..parts(Some(("agent-1", None)), None)
        });
        assert!(!unlimited.counted());
    }

    /// A queued call for [`drain`]: one that waits for its write (`waits`), or one answered
    /// before it.
    fn job(in_flight: &Arc<InFlight>, seq: u64, waits: bool) -> Job {
        let call = PendingCall::new(&CallParts {
            provider: Provider::Twilio,
            carrier_call_id: "CA0123",
            org_id: "org-1",
            number_id: "number-1",
            e164: "+14155550100",
            number_limit: None,
            agent: None,
            status: "ringing",
            forwarded: None,
            idempotency_key: "voice:number-1:CA0123",
        });
        let reply = if waits {
            Reply::Wait(oneshot::channel().0)
        } else {
            Reply::Detached(Ticket {
                seq,
                in_flight: in_flight.clone(),
            })
        };
        Job { call, reply }
    }

    /// Queues `count` calls answered before their write, then one that waits for it if
    /// `then_waiting`.
    fn queue_calls(
        sender: &mpsc::Sender<Job>,
        in_flight: &Arc<InFlight>,
        count: u64,
        then_waiting: bool,
    ) {
        for seq in 0..count {
            assert!(sender.try_send(job(in_flight, seq, false)).is_ok());
        }
        if then_waiting {
            assert!(sender.try_send(job(in_flight, count, true)).is_ok());
        }
    }

    #[test]
    fn sqlite_batches_and_queue_hold_16384_calls_and_a_batch_stops_soon_after_a_call_that_waits() {
        let limits = Limits::of(DbBackend::Sqlite);
        assert_eq!(
            limits,
            Limits {
                writers: 1,
                max_batch: 16_384,
                queue: 16_384
            }
        );
        let in_flight = Arc::new(InFlight::default());
        let (sender, mut queue) = mpsc::channel(limits.queue);
        let mut take = |batch: &mut Vec<Job>| {
            batch.clear();
            drain(&mut queue, batch, limits)
        };
        let mut batch = Vec::new();

        queue_calls(&sender, &in_flight, 16_384, false);
        assert!(
            sender.try_send(job(&in_flight, 0, false)).is_err(),
            "the queue is full"
        );
        assert!(take(&mut batch), "a full batch is written at once");
        assert_eq!(batch.len(), 16_384);
        queue_calls(&sender, &in_flight, 3_616, false);
        assert!(!take(&mut batch), "a batch nobody waits for lingers");
        assert_eq!(batch.len(), 3_616);

        // A call that waits, queued after 3,000 others: its batch takes it and no more.
        queue_calls(&sender, &in_flight, 3_000, true);
        queue_calls(&sender, &in_flight, 3_000, false);
        assert!(take(&mut batch));
        assert_eq!(batch.len(), 3_001);
        assert!(batch.last().is_some_and(Job::waits));
        // One queued after 10 others: its batch goes on to 2,048 calls, then stops.
        assert!(!take(&mut batch));
        assert_eq!(batch.len(), 3_000);
        queue_calls(&sender, &in_flight, 10, true);
        queue_calls(&sender, &in_flight, 5_000, false);
        assert!(take(&mut batch));
        assert_eq!(batch.len(), 2_048);
        assert_eq!(batch.iter().filter(|job| job.waits()).count(), 1);
        assert!(!take(&mut batch));
        assert_eq!(batch.len(), 5_011 - 2_048);
    }

    #[test]
    fn postgresql_batches_hold_at_most_2048_calls() {
        let limits = Limits::of(DbBackend::Postgres);
        let in_flight = Arc::new(InFlight::default());
        let (sender, mut queue) = mpsc::channel(limits.queue);
        queue_calls(&sender, &in_flight, 5_000, false);
        let mut batch = Vec::new();
        assert!(drain(&mut queue, &mut batch, limits));
        assert_eq!(batch.len(), 2_048);
        assert_eq!(
            limits,
            Limits {
                writers: POSTGRES_WRITERS,
                max_batch: 2_048,
                queue: 8_192
            }
        );
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    #[test]
    fn records_are_upserted_for_ten_seconds_after_a_conflict_then_inserted_again() {
        let conflicts = RecordConflicts::default();
        let start = Instant::now();
        assert_eq!(conflicts.record_write(start), RecordWrite::Insert);
        conflicts.conflicted(start);
        assert_eq!(conflicts.record_write(start), RecordWrite::Upsert);
        let later = |secs| start + Duration::from_secs(secs);
        assert_eq!(conflicts.record_write(later(9)), RecordWrite::Upsert);
        assert_eq!(conflicts.record_write(later(10)), RecordWrite::Insert);
        conflicts.conflicted(later(10));
        assert_eq!(
            conflicts.record_write(later(19)),
            RecordWrite::Upsert,
            "each conflict starts the ten seconds again"
        );
    }

    #[test]
    fn a_number_noted_within_half_the_resolution_is_left_out() {
        let notes = LastCallNotes::default();
        assert_eq!(
            notes.to_touch(["n1", "n2", "n1"], at(0)),
            ["n1", "n2"],
            "nothing noted yet: every number, once"
        );
        notes.noted(vec!["n1".to_owned()], at(0));
        assert_eq!(notes.to_touch(["n1", "n2"], at(29)), ["n2"]);
        assert_eq!(
            notes.to_touch(["n1", "n2"], at(30)),
            ["n1", "n2"],
            "half a resolution later the database is asked again"
        );
        assert_eq!(
            notes.to_touch(["n1"], at(-1)),
            ["n1"],
            "a clock that went back trusts nothing noted after it"
        );
    }

    #[test]
    fn notes_outlive_one_generation_and_no_more() {
        let notes = LastCallNotes::default();
        notes.noted(vec!["n1".to_owned()], at(0));
        notes.noted(vec!["n2".to_owned()], at(25));
        // The generation that holds n1 ends; n2 moves with it to `previous`, still recent.
        notes.noted(vec!["n3".to_owned()], at(31));
        assert_eq!(notes.to_touch(["n1", "n2", "n3"], at(40)), ["n1"]);
        notes.noted(vec!["n4".to_owned()], at(62));
        let generations = lock(&notes.generations);
        assert!(!generations.current.contains_key("n1"));
        assert!(!generations.previous.contains_key("n1"), "forgotten");
        assert!(generations.previous.contains_key("n3"));
    }

    #[test]
    fn a_generation_holds_a_bounded_number_of_notes() {
        let notes = LastCallNotes::default();
        let numbers: Vec<String> = (0..=NOTES_PER_GENERATION)
            .map(|i| format!("n{i}"))
            .collect();
        notes.noted(numbers.clone(), at(0));
        assert_eq!(lock(&notes.generations).current.len(), NOTES_PER_GENERATION);
        let last = numbers.last().expect("a number").as_str();
        assert_eq!(
            notes.to_touch(["n0", last], at(1)),
            [last],
            "a number not remembered is looked at in the database"
        );
    }
}
