//! The simulator's CloudKit endpoint: the same four operations the bridge calls, the same framing,
//! serving the generated [`Account`] with the configured faults.
//!
//! Fault model (all decisions come from one seeded RNG, so a run is reproducible given the same
//! request order):
//! - `page_errors`: a request fails (HTTP 503 or an operation-level server error), optionally in
//!   bursts of `error_burst` consecutive failures;
//! - `throttle`: a request gets HTTP 429 with `Retry-After`;
//! - `pcs_late`: some records are encrypted under keys that the zone only publishes after a key
//!   roll — a key shows up in `zone/retrieve` on the second refresh after a record using it was
//!   first served;
//! - `pcs_lost`: some records use keys that never appear;
//! - `bad_changes`: some message-zone changes are served as bytes that do not parse as a record
//!   change (the same ones on every request), inside an otherwise valid reply.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use cloudkit::client::{failure, success};
use cloudkit::codec::{encode_attachment, encode_chat, encode_message, summary_record};
use cloudkit::framing::{decode_body, gzip};
use cloudkit::pcs::{seal_zone_keys, PcsKey};
use cloudkit::proto::{self, client_error, server_error, RequestOperation, ResponseOperation};
use cloudkit::records::*;
use cloudkit::Session;
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::account::{Account, AccountSpec, Kind, TruthLine, Visible, OWN_HANDLES};

/// Fault injection and paging knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub page_size: usize,
    pub page_errors: f64,
    pub error_burst: u32,
    pub throttle: f64,
    pub retry_after_secs: u64,
    pub pcs_late: f64,
    pub pcs_lost: f64,
    pub bad_changes: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { page_size: 200, page_errors: 0.0, error_burst: 1, throttle: 0.0, retry_after_secs: 1, pcs_late: 0.0, pcs_lost: 0.0, bad_changes: 0.0 }
    }
}

const LATE_KEYS: u64 = 4;
const LOST_KEYS: u64 = 2;
const STREAM_KEYS: u64 = 7;
const STREAM_DAMAGE: u64 = 9;
/// What a damaged change is served as: a record identifier field whose length runs past the end.
const DAMAGED_CHANGE: &[u8] = &[0x0a, 0x7f, 0x01];

/// Which key encrypts a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    Default,
    Late(u64),
    Lost(u64),
}

struct ZoneKeyState {
    refreshes: u64,
    late_seen: [Option<u64>; LATE_KEYS as usize],
}

struct Mutable {
    rng: ChaCha8Rng,
    burst_left: u32,
    zones: HashMap<&'static str, ZoneKeyState>,
    stats: Stats,
}

/// Request counters, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub pages: u64,
    pub injected_errors: u64,
    pub throttled: u64,
}

pub struct Sim {
    pub account: Account,
    pub session: Session,
    pub faults: Faults,
    service_key: PcsKey,
    /// Every zone's keys, derived once: deriving a key costs several HMACs and an AES key
    /// schedule, which is more than encrypting a record's fields with it.
    keys: Vec<(&'static str, KeyChoice, PcsKey)>,
    /// The history's serving permutation `p → (a·p + b) mod history`.
    perm_a: u64,
    perm_b: u64,
    /// Whether the account's later messages have arrived (see [`Sim::release_later`]).
    released: AtomicBool,
    state: Mutex<Mutable>,
}

fn derive(seed: u64, label: &str) -> [u8; 32] {
    Sha256::new().chain_update(seed.to_be_bytes()).chain_update(label.as_bytes()).finalize().into()
}

fn key16(seed: u64, label: &str) -> PcsKey {
    let d = derive(seed, label);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    PcsKey::new(k)
}

fn derive_zone_key(seed: u64, zone: &str, choice: KeyChoice) -> PcsKey {
    match choice {
        KeyChoice::Default => key16(seed, &format!("{zone}/default")),
        KeyChoice::Late(i) => key16(seed, &format!("{zone}/late/{i}")),
        KeyChoice::Lost(i) => key16(seed, &format!("{zone}/lost/{i}")),
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The session file the simulator accepts for `seed`.
pub fn session_for(seed: u64) -> Session {
    let hex = |b: &[u8]| cloudkit::pcs::hex(b);
    Session {
        account_id: format!("{}", 10_000_000_000u64 + seed % 1_000_000_000),
        cloudkit_user_id: format!("_{}", &hex(&derive(seed, "user"))[..32]),
        auth_token: hex(&derive(seed, "token")),
        handles: OWN_HANDLES.iter().map(|s| s.to_string()).collect(),
        service_key: Session::encode_key(&key16(seed, "service")),
        container: cloudkit::session::MESSAGES_CONTAINER.into(),
        bundle_id: cloudkit::session::MESSAGES_BUNDLE.into(),
    }
}

fn zone_static(zone: &str) -> Option<&'static str> {
    ZONES.iter().copied().find(|z| *z == zone)
}

impl Sim {
    pub fn new(spec: AccountSpec, faults: Faults) -> Self {
        let seed = spec.seed;
        let account = Account::generate(spec);
        let n = account.history.max(1);
        let mut a = (n as f64 * 0.618_033_988_7) as u64 | 1;
        while gcd(a, n) != 1 {
            a += 2;
        }
        let zones = ZONES
            .iter()
            .map(|z| (*z, ZoneKeyState { refreshes: 0, late_seen: [None; LATE_KEYS as usize] }))
            .collect();
        let keys = ZONES
            .iter()
            .flat_map(|&zone| {
                let choices = std::iter::once(KeyChoice::Default)
                    .chain((0..LATE_KEYS).map(KeyChoice::Late))
                    .chain((0..LOST_KEYS).map(KeyChoice::Lost));
                choices.map(move |choice| (zone, choice, derive_zone_key(seed, zone, choice)))
            })
            .collect();
        Sim {
            session: session_for(seed),
            service_key: key16(seed, "service"),
            keys,
            perm_a: a % n.max(2),
            perm_b: (seed % n),
            released: AtomicBool::new(false),
            faults,
            state: Mutex::new(Mutable { rng: ChaCha8Rng::seed_from_u64(seed ^ 0xfa17), burst_left: 0, zones, stats: Stats::default() }),
            account,
        }
    }

    /// Makes the account's later messages (and the chat record versions they create) arrive:
    /// they are appended to the zones' change feeds, after every position served so far.
    pub fn release_later(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    fn visible(&self) -> Visible {
        self.account.visible(self.released.load(Ordering::SeqCst))
    }

    /// The ground truth of what the server shows now (see [`Account::truth`]).
    pub fn truth(&self, f: impl FnMut(TruthLine)) {
        self.account.truth(self.released.load(Ordering::SeqCst), f)
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().map(|s| s.stats.clone()).unwrap_or_default()
    }

    fn seed(&self) -> u64 {
        self.account.spec.seed
    }

    fn zone_key(&self, zone: &str, choice: KeyChoice) -> Cow<'_, PcsKey> {
        match self.keys.iter().find(|(z, c, _)| *z == zone && *c == choice) {
            Some((_, _, key)) => Cow::Borrowed(key),
            None => Cow::Owned(derive_zone_key(self.seed(), zone, choice)),
        }
    }

    /// The key a record of `zone` with item index `g` is encrypted under.
    pub fn key_choice(&self, zone: &str, g: u64) -> KeyChoice {
        if zone == CHAT_ZONE || (self.faults.pcs_late <= 0.0 && self.faults.pcs_lost <= 0.0) {
            return KeyChoice::Default;
        }
        let roll = self.roll(STREAM_KEYS + u64::from(zone == ATTACHMENT_ZONE), g);
        if roll < self.faults.pcs_lost {
            KeyChoice::Lost(g % LOST_KEYS)
        } else if roll < self.faults.pcs_lost + self.faults.pcs_late {
            KeyChoice::Late(g % LATE_KEYS)
        } else {
            KeyChoice::Default
        }
    }

    /// A uniform number in [0, 1) fixed by the seed, a fault stream and item index `g`.
    fn roll(&self, stream: u64, g: u64) -> f64 {
        let mut r = ChaCha8Rng::seed_from_u64(self.seed());
        r.set_stream(stream);
        r.set_word_pos((g as u128) << 4);
        r.gen()
    }

    /// Whether message `g` is served damaged by `record/sync` (see [`Faults::bad_changes`]).
    pub fn damaged(&self, zone: &str, g: u64) -> bool {
        zone == MESSAGE_ZONE && self.faults.bad_changes > 0.0 && self.roll(STREAM_DAMAGE, g) < self.faults.bad_changes
    }

    /// The damaged changes of the message zone as it is now: how many there are (deletions
    /// included) and the guids of the live messages among them.
    pub fn damaged_messages(&self) -> (u64, Vec<String>) {
        let (mut count, mut guids) = (0, Vec::new());
        for g in (0..self.items(MESSAGE_ZONE)).filter(|&g| self.damaged(MESSAGE_ZONE, g)) {
            count += 1;
            let m = self.account.message(g);
            if m.kind != Kind::Deleted {
                guids.push(m.record.guid);
            }
        }
        (count, guids)
    }

    fn items(&self, zone: &str) -> u64 {
        let visible = self.visible();
        match zone {
            CHAT_ZONE => visible.chat_records as u64,
            MESSAGE_ZONE => visible.messages,
            _ => visible.attachments as u64,
        }
    }

    /// The message at serving position `p`: the history permuted, later messages in order.
    fn message_at(&self, p: u64) -> u64 {
        if p < self.account.history {
            (self.perm_a.wrapping_mul(p) + self.perm_b) % self.account.history.max(1)
        } else {
            p
        }
    }

    /// Builds the change at serving position `p` of a zone (also records late-key use).
    fn change_at(&self, zone: &'static str, p: u64, late_used: &mut Vec<u64>) -> proto::RecordChange {
        let owner = &self.session.cloudkit_user_id;
        let (record, g) = match zone {
            CHAT_ZONE => {
                let c = &self.account.chat_records[p as usize];
                (Some(encode_chat(owner, &self.zone_key(zone, KeyChoice::Default), c)), p)
            }
            MESSAGE_ZONE => {
                let g = self.message_at(p);
                let gen = self.account.message(g);
                if gen.kind == Kind::Deleted {
                    let id = proto::RecordIdentifier {
                        value: Some(proto::Identifier { name: Some(gen.record.record_name), r#type: Some(1) }),
                        zone_identifier: Some(proto::zone_id(zone, owner)),
                    };
                    return proto::RecordChange { identifier: Some(id), ..Default::default() };
                }
                let choice = self.key_choice(zone, g);
                (Some(encode_message(owner, &self.zone_key(zone, choice), &gen.record)), g)
            }
            _ => {
                let g = self.account.attachments[p as usize] as u64;
                let choice = self.key_choice(zone, g);
                (Some(encode_attachment(owner, &self.zone_key(zone, choice), &self.account.attachment(g))), g)
            }
        };
        if let KeyChoice::Late(i) = self.key_choice(zone, g) {
            late_used.push(i);
        }
        let record = record.unwrap_or_default();
        proto::RecordChange {
            identifier: record.record_identifier.clone(),
            etag: record.etag.clone(),
            record_type: record.r#type.clone(),
            record: Some(record),
        }
    }

    fn token(&self, zone: &str, pos: u64) -> Vec<u8> {
        let mut t = b"ckst".to_vec();
        t.extend_from_slice(&pos.to_be_bytes());
        t.extend_from_slice(&derive(self.seed(), &format!("{zone}/{pos}"))[..8]);
        t
    }

    fn parse_token(&self, zone: &str, token: &[u8]) -> Option<u64> {
        let pos = u64::from_be_bytes(token.get(4..12)?.try_into().ok()?);
        (self.token(zone, pos) == token).then_some(pos)
    }

    fn mark_late(&self, zone: &'static str, used: &[u64]) {
        if used.is_empty() {
            return;
        }
        if let Ok(mut st) = self.state.lock() {
            if let Some(z) = st.zones.get_mut(zone) {
                for &i in used {
                    let refreshes = z.refreshes;
                    z.late_seen[i as usize].get_or_insert(refreshes);
                }
            }
        }
    }

    /// One page of a zone's changes, with the positions in it of the changes to serve damaged.
    fn retrieve_changes(&self, req: &proto::RetrieveChangesRequest) -> Result<(proto::RetrieveChangesResponse, Vec<usize>), proto::OperationResult> {
        let zone = zone_of(req.zone_identifier.as_ref())?;
        let len = self.items(zone);
        let pos = match &req.sync_continuation_token {
            None => 0,
            Some(t) => self
                .parse_token(zone, t)
                .filter(|p| *p <= len)
                .ok_or_else(|| failure(Some(client_error::FULL_RESET_NEEDED), None, None, "sync token expired"))?,
        };
        let size = match req.max_changes {
            Some(m) if m > 0 => (m as usize).min(self.faults.page_size),
            _ => self.faults.page_size,
        } as u64;
        let end = (pos + size).min(len);
        let mut late = Vec::new();
        let change = (pos..end).map(|p| self.change_at(zone, p, &mut late)).collect();
        self.mark_late(zone, &late);
        if let Ok(mut st) = self.state.lock() {
            st.stats.pages += 1;
        }
        let damaged = (pos..end).filter(|&p| self.damaged(zone, self.message_at(p))).map(|p| (p - pos) as usize).collect();
        let page = proto::RetrieveChangesResponse {
            change,
            sync_continuation_token: Some(self.token(zone, end)),
            status: Some(if end >= len { proto::CHANGES_STATUS_DONE } else { 1 }),
        };
        Ok((page, damaged))
    }

    fn zone_retrieve(&self, req: &proto::ZoneRetrieveRequest) -> Result<proto::ZoneRetrieveResponse, proto::OperationResult> {
        let zone = zone_of(req.zone_identifier.as_ref())?;
        let mut keys = vec![self.zone_key(zone, KeyChoice::Default).into_owned()];
        let refreshes = {
            let mut st = self.state.lock().map_err(|_| failure(None, Some(1), None, "state poisoned"))?;
            let z = st.zones.get_mut(zone).ok_or_else(|| failure(Some(client_error::ZONE_NOT_FOUND), None, None, "zone"))?;
            z.refreshes += 1;
            for (i, seen) in z.late_seen.iter().enumerate() {
                if matches!(seen, Some(s) if z.refreshes >= s + 2) {
                    keys.push(self.zone_key(zone, KeyChoice::Late(i as u64)).into_owned());
                }
            }
            z.refreshes
        };
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&derive(self.seed(), &format!("{zone}/nonce/{refreshes}"))[..12]);
        let blob = seal_zone_keys(&self.service_key, &keys, nonce);
        Ok(proto::ZoneRetrieveResponse {
            zone_summary: vec![proto::ZoneSummary {
                target_zone: Some(proto::Zone {
                    zone_identifier: req.zone_identifier.clone(),
                    etag: Some(format!("{refreshes}")),
                    protection_info: None,
                    record_protection_info: Some(proto::ProtectionInfo { protection_info: Some(blob), protection_info_tag: None }),
                }),
            }],
        })
    }

    fn record_retrieve(&self, req: &proto::RecordRetrieveRequest) -> Result<proto::RecordRetrieveResponse, proto::OperationResult> {
        let id = req.record_identifier.as_ref().ok_or_else(|| failure(Some(client_error::BAD_SYNTAX), None, None, "no record id"))?;
        let zone = zone_of(id.zone_identifier.as_ref())?;
        let name = id.record_name().unwrap_or("");
        let not_found = || failure(None, Some(server_error::NOT_FOUND), None, "record not found");
        let pos = match zone {
            CHAT_ZONE => self.account.chat_records.iter().position(|c| c.record_name == name).map(|p| p as u64),
            MESSAGE_ZONE => self
                .account
                .message_index(name)
                .filter(|g| self.account.message(*g).kind != Kind::Deleted)
                .map(|g| self.position_of(g)),
            _ => self
                .account
                .attachment_index(name)
                .and_then(|g| self.account.attachments.binary_search(&(g as u32)).ok())
                .map(|p| p as u64),
        }
        .filter(|&p| p < self.items(zone))
        .ok_or_else(not_found)?;
        let mut late = Vec::new();
        let change = self.change_at(zone, pos, &mut late);
        self.mark_late(zone, &late);
        Ok(proto::RecordRetrieveResponse { record: change.record })
    }

    /// Inverse of [`Sim::message_at`].
    fn position_of(&self, g: u64) -> u64 {
        if g >= self.account.history {
            return g;
        }
        let n = self.account.history.max(1) as i128;
        // a * p + b ≡ g (mod n)  =>  p ≡ a⁻¹ (g − b)
        let (mut t, mut new_t, mut r, mut new_r) = (0i128, 1i128, n, self.perm_a as i128);
        while new_r != 0 {
            let q = r / new_r;
            (t, new_t) = (new_t, t - q * new_t);
            (r, new_r) = (new_r, r - q * new_r);
        }
        let inv = t.rem_euclid(n);
        ((inv * (g as i128 - self.perm_b as i128)).rem_euclid(n)) as u64
    }

    fn query(&self, req: &proto::QueryRetrieveRequest) -> Result<proto::QueryRetrieveResponse, proto::OperationResult> {
        let zone = zone_of(req.zone_identifier.as_ref())?;
        let owner = &self.session.cloudkit_user_id;
        let released = self.released.load(Ordering::SeqCst);
        let visible = self.account.visible(released);
        let (record_type, count) = match zone {
            CHAT_ZONE => (CHAT_RECORD_TYPE, visible.chat_records as i64),
            MESSAGE_ZONE => (MESSAGE_RECORD_TYPE, self.account.live_message_count(released) as i64),
            _ => (ATTACHMENT_RECORD_TYPE, visible.attachments as i64),
        };
        let record = summary_record(zone, owner, record_type, count);
        Ok(proto::QueryRetrieveResponse {
            query_results: vec![proto::QueryResult { identifier: record.record_identifier.clone(), record: Some(record) }],
            continuation_marker: None,
        })
    }

    /// The reply to one operation, with the positions of the changes to serve damaged.
    fn answer(&self, op: &RequestOperation) -> (ResponseOperation, Vec<usize>) {
        let mut reply = ResponseOperation { response: op.request.clone(), ..Default::default() };
        let mut damaged = Vec::new();
        let outcome = if let Some(r) = &op.retrieve_changes_request {
            self.retrieve_changes(r).map(|(page, bad)| {
                reply.retrieve_changes_response = Some(page);
                damaged = bad;
            })
        } else if let Some(r) = &op.zone_retrieve_request {
            self.zone_retrieve(r).map(|v| reply.zone_retrieve_response = Some(v))
        } else if let Some(r) = &op.record_retrieve_request {
            self.record_retrieve(r).map(|v| reply.record_retrieve_response = Some(v))
        } else if let Some(r) = &op.query_retrieve_request {
            self.query(r).map(|v| reply.query_retrieve_response = Some(v))
        } else {
            Err(failure(Some(client_error::NOT_SUPPORTED), None, None, "operation not supported by the simulator"))
        };
        reply.result = Some(outcome.err().unwrap_or_else(success));
        (reply, damaged)
    }

    /// Decides whether to inject a fault into this request.
    fn fault(&self) -> Option<Fault> {
        let mut st = self.state.lock().ok()?;
        st.stats.requests += 1;
        if st.burst_left > 0 {
            st.burst_left -= 1;
            st.stats.injected_errors += 1;
            return Some(Fault::Error(st.rng.gen_bool(0.5)));
        }
        if self.faults.throttle > 0.0 && st.rng.gen_bool(self.faults.throttle.min(1.0)) {
            st.stats.throttled += 1;
            return Some(Fault::Throttle);
        }
        if self.faults.page_errors > 0.0 && st.rng.gen_bool(self.faults.page_errors.min(1.0)) {
            st.burst_left = self.faults.error_burst.saturating_sub(1);
            st.stats.injected_errors += 1;
            return Some(Fault::Error(st.rng.gen_bool(0.5)));
        }
        None
    }

    pub fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let token = headers.get("x-cloudkit-authtoken").and_then(|v| v.to_str().ok());
        if token != Some(self.session.auth_token.as_str()) {
            return (StatusCode::UNAUTHORIZED, "bad auth token").into_response();
        }
        let gzipped = headers.get("content-encoding").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        let ops: Vec<RequestOperation> = match decode_body(body, gzipped) {
            Ok(ops) => ops,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        let replies: Vec<(ResponseOperation, Vec<usize>)> = match self.fault() {
            Some(Fault::Throttle) => {
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                if let Ok(v) = HeaderValue::from_str(&self.faults.retry_after_secs.to_string()) {
                    resp.headers_mut().insert("retry-after", v);
                }
                return resp;
            }
            Some(Fault::Error(true)) => return (StatusCode::SERVICE_UNAVAILABLE, "injected failure").into_response(),
            Some(Fault::Error(false)) => ops
                .iter()
                .map(|op| {
                    let reply = ResponseOperation {
                        response: op.request.clone(),
                        result: Some(failure(None, Some(1), None, "injected server error")),
                        ..Default::default()
                    };
                    (reply, Vec::new())
                })
                .collect(),
            None => ops.iter().map(|op| self.answer(op)).collect(),
        };
        let body = gzip(&encode_replies(&replies), flate2::Compression::fast());
        ([("content-type", "application/x-protobuf"), ("content-encoding", "gzip")], body).into_response()
    }
}

/// The length-delimited reply stream. A reply with damaged changes goes out through the
/// wire-compatible raw view, with [`DAMAGED_CHANGE`] in place of those changes.
fn encode_replies(replies: &[(ResponseOperation, Vec<usize>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (reply, damaged) in replies {
        // Writing into a Vec cannot run out of space.
        match (&reply.retrieve_changes_response, damaged.is_empty()) {
            (Some(page), false) => {
                let change = page
                    .change
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if damaged.contains(&i) { Bytes::from_static(DAMAGED_CHANGE) } else { Bytes::from(c.encode_to_vec()) })
                    .collect();
                let raw = proto::ResponseOperationRaw {
                    response: reply.response.clone(),
                    result: reply.result.clone(),
                    retrieve_changes_response: Some(proto::RetrieveChangesResponseRaw {
                        change,
                        sync_continuation_token: page.sync_continuation_token.clone(),
                        status: page.status,
                    }),
                };
                let _ = raw.encode_length_delimited(&mut out);
            }
            _ => {
                let _ = reply.encode_length_delimited(&mut out);
            }
        }
    }
    out
}

enum Fault {
    Throttle,
    /// true: HTTP 503; false: operation-level server error.
    Error(bool),
}

fn zone_of(id: Option<&proto::RecordZoneIdentifier>) -> Result<&'static str, proto::OperationResult> {
    id.and_then(|z| z.zone_name())
        .and_then(zone_static)
        .ok_or_else(|| failure(Some(client_error::ZONE_NOT_FOUND), None, None, "zone not found"))
}

async fn endpoint(State(sim): State<Arc<Sim>>, Path(_op): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let sim2 = sim.clone();
    match tokio::task::spawn_blocking(move || sim2.handle(&headers, &body)).await {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `POST /_sim/release-later`: the simulator's own control endpoint (not CloudKit's), so a demo
/// or a test driving a separate simulator process can make the later messages arrive.
async fn release_later(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.release_later();
    tracing::info!(messages = sim.account.total - sim.account.history, "later messages released");
    StatusCode::NO_CONTENT
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/ckdatabase/api/client/{*op}", post(endpoint))
        .route("/_sim/release-later", post(release_later))
        .with_state(sim)
}

/// Binds `addr` (port 0 allowed) and serves until the task is dropped. Returns the real address.
pub async fn spawn(sim: Arc<Sim>, addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(sim)).await {
            tracing::error!("simulator server stopped: {e}");
        }
    });
    Ok((local, handle))
}
