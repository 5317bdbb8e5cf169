//! The mutable world behind the lock: built from a seed, reset to it, and asked the questions
//! every handler shares (who is this caller, are they over their rate limit, is a fault armed).

use std::collections::HashMap;

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::EmulatorError;
use crate::model::{
    Call, Fault, Recording, RequestRecord, Seed, StateSnapshot, TelnyxAccount, TelnyxNumber,
    TexmlApplication, TwilioAccount, TwilioAccountSeed, TwilioNumber, WebhookRecord,
};
use crate::util;

/// Everything the emulator knows, guarded by one mutex in [`crate::server::Shared`].
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) seed: Seed,
    pub(crate) state: StateSnapshot,
    /// Per-account fixed one-second windows: (unix second, requests in it).
    rate_windows: HashMap<String, (i64, u32)>,
    next_seq: u64,
}

impl World {
    pub(crate) fn from_seed(seed: Seed) -> Result<World, EmulatorError> {
        let state = build_state(&seed)?;
        Ok(World {
            seed,
            state,
            rate_windows: HashMap::new(),
            next_seq: 1,
        })
    }

    /// Back to the seed: state, logs, faults and rate windows all cleared.
    pub(crate) fn reset(&mut self) -> Result<(), EmulatorError> {
        self.state = build_state(&self.seed)?;
        self.rate_windows.clear();
        self.next_seq = 1;
        Ok(())
    }

    pub(crate) fn log_request(&mut self, mut record: RequestRecord) -> u64 {
        record.seq = self.next_seq;
        self.next_seq += 1;
        let seq = record.seq;
        self.state.requests.push(record);
        trim(&mut self.state.requests);
        seq
    }

    pub(crate) fn finish_request(
        &mut self,
        seq: u64,
        account: Option<String>,
        status: Option<u16>,
    ) {
        if let Some(r) = self.state.requests.iter_mut().rev().find(|r| r.seq == seq) {
            r.account = account;
            r.status = status;
        }
    }

    pub(crate) fn log_webhook(&mut self, record: WebhookRecord) {
        self.state.webhooks.push(record);
        trim(&mut self.state.webhooks);
    }

    /// Finds the first armed fault for this request and consumes one use of it.
    pub(crate) fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let idx = self.state.faults.iter().position(|f| {
            let method_ok = match f.method.as_deref() {
                None | Some("*") => true,
                Some(m) => m.eq_ignore_ascii_case(method),
            };
            method_ok && util::glob_match(&f.path, path) && f.times != Some(0)
        })?;
        let fault = self.state.faults[idx].clone();
        if let Some(times) = self.state.faults[idx].times.as_mut() {
            *times -= 1;
            if *times == 0 {
                self.state.faults.remove(idx);
            }
        }
        Some(fault)
    }

    /// Counts one request for `account` against `limit` per second; `None` when unlimited.
    pub(crate) fn count_request(
        &mut self,
        account: &str,
        limit: Option<u32>,
    ) -> Option<RateWindow> {
        let limit = limit?;
        let second = util::now().timestamp();
        let window = self
            .rate_windows
            .entry(account.to_string())
            .or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        Some(RateWindow {
            limit,
            used: window.1,
        })
    }

    // ---- Twilio lookups ----

    pub(crate) fn twilio_account(&self, sid: &str) -> Option<&TwilioAccount> {
        self.state.twilio_accounts.iter().find(|a| a.sid == sid)
    }

    /// The account a Basic-auth pair authenticates as, if any.
    pub(crate) fn twilio_principal(&self, user: &str, pass: &str) -> Option<&TwilioAccount> {
        self.state.twilio_accounts.iter().find(|a| {
            (a.sid == user && ct_eq(&a.auth_token, pass))
                || a.api_keys
                    .iter()
                    .any(|k| k.sid == user && ct_eq(&k.secret, pass))
        })
    }

    /// Whether `principal` may act on `target`: itself, or one of its subaccounts.
    pub(crate) fn twilio_may_act_on(&self, principal: &str, target: &str) -> bool {
        principal == target
            || self
                .twilio_account(target)
                .is_some_and(|t| t.owner_account_sid.as_deref() == Some(principal))
    }

    // ---- Telnyx lookups ----

    pub(crate) fn telnyx_by_key(&self, key: &str) -> Option<&TelnyxAccount> {
        self.state
            .telnyx_accounts
            .iter()
            .find(|a| ct_eq(&a.api_key, key))
    }

    pub(crate) fn telnyx_by_sid(&self, sid: &str) -> Option<&TelnyxAccount> {
        self.state
            .telnyx_accounts
            .iter()
            .find(|a| a.account_sid == sid)
    }
}

/// Logs keep the most recent entries only, so a long-running emulator does not grow without
/// bound; tests never come near the limit.
const LOG_LIMIT: usize = 10_000;

fn trim<T>(log: &mut Vec<T>) {
    if log.len() > LOG_LIMIT + LOG_LIMIT / 10 {
        log.drain(..log.len() - LOG_LIMIT);
    }
}

/// One account's use of its current one-second window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateWindow {
    pub(crate) limit: u32,
    pub(crate) used: u32,
}

impl RateWindow {
    pub(crate) fn exceeded(self) -> bool {
        self.used > self.limit
    }

    pub(crate) fn remaining(self) -> u32 {
        self.limit.saturating_sub(self.used)
    }
}

/// Equality that does not stop at the first differing byte, so the emulator does not teach
/// clients a timing habit the real carriers would punish.
fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The Ed25519 key pair of a Telnyx account seed.
pub(crate) fn telnyx_key_pair(signing_seed: &str) -> Result<Ed25519KeyPair, EmulatorError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(signing_seed.trim())
        .map_err(|_| EmulatorError::InvalidSeed("telnyx signing_seed is not base64".into()))?;
    Ed25519KeyPair::from_seed_unchecked(&bytes)
        .map_err(|_| EmulatorError::InvalidSeed("telnyx signing_seed must be 32 bytes".into()))
}

fn build_state(seed: &Seed) -> Result<StateSnapshot, EmulatorError> {
    let mut state = StateSnapshot::default();
    let created = util::rfc2822(util::now());
    for account in &seed.twilio.accounts {
        add_twilio_account(&mut state, account, None, &created)?;
    }
    state.twilio_available = seed.twilio.available_numbers.clone();
    for a in &mut state.twilio_available {
        if a.iso_country.is_empty() {
            a.iso_country = "US".into();
        }
    }

    let iso_now = util::iso8601(util::now());
    for account in &seed.telnyx.accounts {
        if account.api_key.is_empty() || account.account_sid.is_empty() {
            return Err(EmulatorError::InvalidSeed(
                "every telnyx account needs api_key and account_sid".into(),
            ));
        }
        let pair = telnyx_key_pair(&account.signing_seed)?;
        let public_key =
            base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref());
        state.telnyx_accounts.push(TelnyxAccount {
            api_key: account.api_key.clone(),
            account_sid: account.account_sid.clone(),
            signing_seed: account.signing_seed.clone(),
            public_key,
            rate_limit_per_second: account.rate_limit_per_second,
            balance: account.balance.clone().unwrap_or_else(|| "300.00".into()),
        });
        for n in &account.numbers {
            state
                .telnyx_numbers
                .push(normalize_telnyx_number(n, &account.account_sid, &iso_now));
        }
        for app in &account.texml_applications {
            state
                .texml_applications
                .push(normalize_texml_app(app, &account.account_sid, &iso_now));
        }
    }
    state.telnyx_available = seed.telnyx.available_numbers.clone();
    for a in &mut state.telnyx_available {
        if a.iso_country.is_empty() {
            a.iso_country = "US".into();
        }
    }
    Ok(state)
}

fn add_twilio_account(
    state: &mut StateSnapshot,
    seed: &TwilioAccountSeed,
    owner: Option<&str>,
    created: &str,
) -> Result<(), EmulatorError> {
    if seed.sid.is_empty() || seed.auth_token.is_empty() {
        return Err(EmulatorError::InvalidSeed(
            "every twilio account needs sid and auth_token".into(),
        ));
    }
    state.twilio_accounts.push(TwilioAccount {
        sid: seed.sid.clone(),
        auth_token: seed.auth_token.clone(),
        api_keys: seed.api_keys.clone(),
        friendly_name: seed
            .friendly_name
            .clone()
            .unwrap_or_else(|| seed.sid.clone()),
        status: seed.status.clone().unwrap_or_else(|| "active".into()),
        owner_account_sid: owner.map(str::to_string),
        region: seed.region.clone().unwrap_or_else(|| "us1".into()),
        rate_limit_per_second: seed.rate_limit_per_second,
        date_created: created.to_string(),
        date_updated: created.to_string(),
    });
    for n in &seed.numbers {
        state
            .twilio_numbers
            .push(normalize_twilio_number(n, &seed.sid, created));
    }
    for sub in &seed.subaccounts {
        add_twilio_account(state, sub, Some(&seed.sid), created)?;
    }
    Ok(())
}

pub(crate) fn normalize_twilio_number(n: &TwilioNumber, account: &str, now: &str) -> TwilioNumber {
    let mut n = n.clone();
    if n.sid.is_empty() {
        n.sid = util::twilio_sid("PN");
    }
    n.account_sid = account.to_string();
    if n.friendly_name.is_empty() {
        n.friendly_name = util::format_number(&n.phone_number);
    }
    for method in [
        &mut n.voice_method,
        &mut n.voice_fallback_method,
        &mut n.status_callback_method,
    ] {
        if method.is_empty() {
            *method = "POST".into();
        }
    }
    if n.origin.is_empty() {
        n.origin = "twilio".into();
    }
    if n.date_created.is_empty() {
        n.date_created = now.to_string();
    }
    if n.date_updated.is_empty() {
        n.date_updated = now.to_string();
    }
    n
}

pub(crate) fn normalize_telnyx_number(n: &TelnyxNumber, account: &str, now: &str) -> TelnyxNumber {
    let mut n = n.clone();
    if n.id.is_empty() {
        n.id = util::numeric_id();
    }
    n.account_sid = account.to_string();
    for (field, default) in [
        (&mut n.status, "active"),
        (&mut n.phone_number_type, "local"),
        (&mut n.country_iso_alpha2, "US"),
        (&mut n.source_type, "number_order"),
        (&mut n.purchased_at, now),
        (&mut n.created_at, now),
        (&mut n.updated_at, now),
    ] {
        if field.is_empty() {
            *field = default.to_string();
        }
    }
    n
}

pub(crate) fn normalize_texml_app(
    app: &TexmlApplication,
    account: &str,
    now: &str,
) -> TexmlApplication {
    let mut app = app.clone();
    if app.id.is_empty() {
        app.id = util::numeric_id();
    }
    app.account_sid = account.to_string();
    for (field, default) in [
        (&mut app.voice_method, "post"),
        (&mut app.status_callback_method, "post"),
        (&mut app.created_at, now),
        (&mut app.updated_at, now),
    ] {
        if field.is_empty() {
            *field = default.to_string();
        }
    }
    app
}

/// Calls and recordings are looked up by id across carriers.
impl World {
    pub(crate) fn call_mut(&mut self, id: &str) -> Option<&mut Call> {
        self.state.calls.iter_mut().find(|c| c.id == id)
    }

    pub(crate) fn recording_mut(&mut self, id: &str) -> Option<&mut Recording> {
        self.state.recordings.iter_mut().find(|r| r.id == id)
    }
}
