//! The simulator's CloudKit endpoint: the same four operations the bridge calls, the same framing,
//! serving the generated [`Account`] with the configured faults.
//!
//! Fault model (all decisions come from one seeded RNG, so a run is reproducible given the same
//! request order):
//! - `page_errors`: a request fails (HTTP 503 or an operation-level server error), optionally in
//!   bursts of `error_burst` consecutive failures;
//! - `throttle`: a request gets HTTP 429 with `Retry-After`;
//! - `pcs_late`: some records are encrypted under keys that the zone only publishes after a key
//!   roll — a key shows up in `zone/retrieve` on the `late_refreshes`-th refresh (default the
//!   second) after a record using it was first served; a large value makes the key arrive only
//!   in a later sync, weeks later as far as the bridge can tell;
//! - `pcs_lost`: some records use keys that never appear;
//! - `bad_changes`: some message-zone changes are served as bytes that do not parse as a record
//!   change (the same ones on every request), inside an otherwise valid reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use cloudkit::proto::{self, client_error, server_error, RequestOperation, ResponseOperation};
use cloudkit::records::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::account::{Account, AccountSpec, Kind, Visible, OWN_HANDLES};
use crate::encode::{self, Keying};
use crate::fixtures::AppleFixtures;
use crate::gateway::{self, Refusal};
use crate::keys::{digest, KeyChoice, KeyMaterial, LATE_KEYS, LOST_KEYS, OWN_PROTECTION_EVERY};
use crate::order::Permutation;
use crate::revisions::{RevisionKind, Revisions};
use crate::session::SimSession;
use crate::truth::TruthLine;
use crate::wire::{self, failure, success};

/// Fault injection and paging knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub page_size: usize,
    pub page_errors: f64,
    pub error_burst: u32,
    pub throttle: f64,
    pub retry_after_secs: u64,
    pub pcs_late: f64,
    /// Refreshes after which a late key is published (see `pcs_late`).
    pub late_refreshes: u64,
    pub pcs_lost: f64,
    pub bad_changes: f64,
    /// Probability that a container download fails (503, or a body that breaks off).
    pub asset_errors: f64,
    /// History messages changed after the release: this many deleted, unsent and edited again
    /// each, and one group's participants (see [`crate::revisions`]; 0: none).
    pub revise: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            page_size: 200,
            page_errors: 0.0,
            error_burst: 1,
            throttle: 0.0,
            retry_after_secs: 1,
            pcs_late: 0.0,
            late_refreshes: 2,
            pcs_lost: 0.0,
            bad_changes: 0.0,
            asset_errors: 0.0,
            revise: 0,
        }
    }
}

const STREAM_KEYS: u64 = 7;
const STREAM_DAMAGE: u64 = 9;
/// The record type of the message zone's records the bridge does not know.
pub const FOREIGN_RECORD_TYPE: &str = "SimulatedUnknownType";

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
    /// The session this account accepts (without an anisette URL; see [`Sim::session_at`]).
    pub session: SimSession,
    pub faults: Faults,
    keys: KeyMaterial,
    /// The `X-Apple-I-MD` value the simulator's anisette server issues and the gateway accepts.
    anisette_md: String,
    /// The history's serving order.
    order: Permutation,
    /// Whether the account's later messages have arrived (see [`Sim::release_later`]).
    released: AtomicBool,
    state: Mutex<Mutable>,
    /// `--apple-blobs`: served first in their zones (chat and message), before the account.
    fixtures: Option<AppleFixtures>,
    /// Attachment files and their content host.
    pub assets: crate::assets::Assets,
    /// What changes after the release (`--revise`).
    revisions: Revisions,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An uppercase UUID made of a digest (stable device ids).
fn uuid_of(d: &[u8; 32]) -> String {
    let h = hex(&d[..16]).to_uppercase();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn zone_static(zone: &str) -> Option<&'static str> {
    ZONES.iter().copied().find(|z| *z == zone)
}

impl Sim {
    pub fn new(spec: AccountSpec, faults: Faults) -> Self {
        let seed = spec.seed;
        let account = Account::generate(spec);
        let zones = ZONES.iter().map(|z| (*z, ZoneKeyState { refreshes: 0, late_seen: [None; LATE_KEYS as usize] })).collect();
        let keys = KeyMaterial::new(seed, &ZONES, &[MESSAGE_ZONE]);
        let session = SimSession::new(
            format!("{}", 10_000_000_000u64 + seed % 1_000_000_000),
            format!("_{}", &hex(&digest(seed, "user"))[..32]),
            hex(&digest(seed, "token")),
            &keys.service,
            &keys.master,
            OWN_HANDLES.iter().map(|s| s.to_string()).collect(),
            uuid_of(&digest(seed, "device")),
        );
        let mut sim = Sim {
            session,
            keys,
            anisette_md: base64_of(&digest(seed, "anisette machine data")),
            order: Permutation::new(seed, account.history),
            released: AtomicBool::new(false),
            state: Mutex::new(Mutable { rng: ChaCha8Rng::seed_from_u64(seed ^ 0xfa17), burst_left: 0, zones, stats: Stats::default() }),
            assets: crate::assets::Assets::new(seed, faults.asset_errors),
            faults,
            account,
            fixtures: None,
            revisions: Revisions::default(),
        };
        let revisions = Revisions::pick(&sim.account, sim.faults.revise, |g| {
            !sim.damaged(MESSAGE_ZONE, g) && !matches!(sim.key_choice(MESSAGE_ZONE, g), KeyChoice::Lost(_))
        });
        sim.revisions = revisions;
        sim
    }

    /// The history messages and the group changed after the release (`--revise`).
    pub fn revisions(&self) -> &Revisions {
        &self.revisions
    }

    /// Serves real Apple blobs too (`--apple-blobs`, see [`crate::fixtures`]).
    pub fn with_apple_fixtures(mut self, fixtures: AppleFixtures) -> Self {
        self.fixtures = Some(fixtures);
        self
    }

    pub fn apple_fixtures(&self) -> Option<&AppleFixtures> {
        self.fixtures.as_ref()
    }

    /// How many of a zone's first serving positions are `--apple-blobs` records.
    fn fixture_count(&self, zone: &str) -> u64 {
        match (&self.fixtures, zone) {
            (Some(_), CHAT_ZONE) => 1,
            (Some(f), MESSAGE_ZONE) => f.messages.len() as u64,
            _ => 0,
        }
    }

    /// The `--apple-blobs` record at serving position `p`, if `p` is one.
    fn fixture_record(&self, zone: &'static str, p: u64) -> Option<Result<proto::Record, crate::pcs::PcsError>> {
        let fixtures = self.fixtures.as_ref()?;
        let key = self.keys.zone(zone)?.key(KeyChoice::Current).ok()?.0;
        let owner = &self.session.cloudkit_user_id;
        match zone {
            CHAT_ZONE if p == 0 => Some(encode::chat(zone, owner, &Keying::Zone(key), &fixtures.chat)),
            MESSAGE_ZONE => fixtures.messages.get(p as usize).map(|m| encode::message(zone, owner, &Keying::Zone(key), &m.record, &m.blobs)),
            _ => None,
        }
    }

    /// The compact x of the MasterKey that signs the session's service identity (which the
    /// session does not carry, as a real account's session does not).
    pub fn master_key_x(&self) -> [u8; 32] {
        self.keys.master.public_x()
    }

    /// The session file for a bridge talking to this simulator at `base_url` (which also plays
    /// the anisette server, at `/_sim/anisette`).
    pub fn session_at(&self, base_url: &str) -> SimSession {
        let mut session = self.session.clone();
        session.anisette = Some(crate::session::SimAnisette { url: format!("{}/_sim/anisette", base_url.trim_end_matches('/')) });
        session
    }

    /// The anisette headers the simulator's anisette server hands out (the JSON object an
    /// anisette server answers with).
    pub fn anisette_headers(&self) -> serde_json::Value {
        serde_json::json!({
            "X-Apple-I-MD": self.anisette_md,
            "X-Apple-I-MD-M": base64_of(&digest(self.seed(), "anisette machine id")),
            "X-Apple-I-MD-RINFO": "17106176",
            "X-Apple-I-MD-LU": hex(&digest(self.seed(), "anisette local user")).to_uppercase(),
            "X-Apple-I-Client-Time": "2026-12-01T00:00:00Z",
            "X-Apple-I-TimeZone": "UTC",
            "X-Apple-Locale": "en_US",
        })
    }

    /// Makes the account's later messages (and the chat record versions they create) arrive:
    /// they are appended to the zones' change feeds, after every position served so far, and
    /// the revisions (`--revise`) after them.
    pub fn release_later(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    fn visible(&self) -> Visible {
        self.account.visible(self.released.load(Ordering::SeqCst))
    }

    /// The ground truth of what the server shows now (see [`Account::truth`]), with the
    /// revisions once released (see [`crate::revisions`]).
    pub fn truth(&self, mut f: impl FnMut(TruthLine)) {
        let released = self.released.load(Ordering::SeqCst);
        self.account.truth_with(released, self.fixtures.as_ref(), |line| self.revisions.truth_line(line, released).into_iter().for_each(&mut f))
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().map(|s| s.stats.clone()).unwrap_or_default()
    }

    fn seed(&self) -> u64 {
        self.account.spec.seed
    }

    /// The key a record of `zone` with item index `g` is encrypted under.
    pub fn key_choice(&self, zone: &str, g: u64) -> KeyChoice {
        if zone == MESSAGE_ZONE && g % OWN_PROTECTION_EVERY == 7 {
            return KeyChoice::Own(g / OWN_PROTECTION_EVERY);
        }
        let rotated = if zone == MESSAGE_ZONE && g < self.account.history / 2 { KeyChoice::Previous } else { KeyChoice::Current };
        if zone == CHAT_ZONE || (self.faults.pcs_late <= 0.0 && self.faults.pcs_lost <= 0.0) {
            return rotated;
        }
        let roll = self.roll(STREAM_KEYS + u64::from(zone == ATTACHMENT_ZONE), g);
        if roll < self.faults.pcs_lost {
            KeyChoice::Lost(g % LOST_KEYS)
        } else if roll < self.faults.pcs_lost + self.faults.pcs_late {
            KeyChoice::Late(g % LATE_KEYS)
        } else {
            rotated
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
        zone == MESSAGE_ZONE && g < self.account.total && self.faults.bad_changes > 0.0 && self.roll(STREAM_DAMAGE, g) < self.faults.bad_changes
    }

    /// The damaged changes of the message zone as it is now: how many there are (deletions
    /// included) and the guids of the live messages among them.
    pub fn damaged_messages(&self) -> (u64, Vec<String>) {
        let (mut count, mut guids) = (0, Vec::new());
        for g in (0..self.visible().messages).filter(|&g| self.damaged(MESSAGE_ZONE, g)) {
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
        let (revised_messages, revised_chats) = self.revisions.served(self.released.load(Ordering::SeqCst));
        self.fixture_count(zone)
            + match zone {
                CHAT_ZONE => visible.chat_records as u64 + revised_chats,
                MESSAGE_ZONE => visible.messages + revised_messages,
                _ => visible.attachments as u64,
            }
    }

    /// The message at serving position `p`: the history permuted, later messages in order (and
    /// the revisions after them, at `total..`).
    fn message_at(&self, p: u64) -> u64 {
        if p < self.account.history {
            self.order.at(p)
        } else {
            p
        }
    }

    /// Builds the change at serving position `p` of a zone (also records late-key use).
    fn change_at(&self, zone: &'static str, p: u64, late_used: &mut Vec<u64>) -> Result<proto::RecordChange, proto::OperationResult> {
        let owner = &self.session.cloudkit_user_id;
        let cipher_failed = |e: crate::pcs::PcsError| failure(None, Some(1), None, &format!("simulator cannot encrypt: {e}"));
        if p < self.fixture_count(zone) {
            let record = self.fixture_record(zone, p).ok_or_else(|| failure(None, Some(1), None, "no such fixture"))?.map_err(cipher_failed)?;
            return Ok(change_of(record));
        }
        let p = p - self.fixture_count(zone);
        let revised = p.checked_sub(self.account.total).filter(|_| zone == MESSAGE_ZONE).and_then(|i| self.revisions.messages.get(i as usize));
        let g = match zone {
            MESSAGE_ZONE => revised.map_or_else(|| self.message_at(p), |r| r.g),
            ATTACHMENT_ZONE => u64::from(self.account.attachments[p as usize]),
            _ => p,
        };
        let choice = self.key_choice(zone, g);
        let zone_keys = self.keys.zone(zone).ok_or_else(|| failure(Some(client_error::ZONE_NOT_FOUND), None, None, "zone"))?;
        let (key, own) = zone_keys.key(choice).map_err(cipher_failed)?;
        let keying = match own {
            Some(protection) => Keying::Own { key, protection_info: &protection.der, tag: &protection.tag },
            None => Keying::Zone(key),
        };
        let mut record = match zone {
            CHAT_ZONE => {
                let chat = self.revisions.chat_record(&self.account, p as usize).ok_or_else(|| failure(None, Some(1), None, "no such chat record"))?;
                encode::chat(zone, owner, &keying, chat)
            }
            MESSAGE_ZONE => {
                let gen = revised.map_or_else(|| self.account.message(g), |r| r.served());
                match gen.kind {
                    Kind::Deleted => return Ok(encode::deletion(zone, owner, &gen.record.record_name)),
                    Kind::Foreign => encode::foreign(zone, owner, &keying, &gen.record.record_name, FOREIGN_RECORD_TYPE),
                    _ => encode::message(zone, owner, &keying, &gen.record, &gen.blobs),
                }
            }
            _ => {
                let a = self.account.attachment(g);
                let sealed = self.assets.sealed(&self.account, g);
                let asset = encode::AssetField {
                    signature: &sealed.signature,
                    reference_signature: &sealed.reference_signature,
                    ford_key: &sealed.ford_key,
                    size: sealed.size,
                };
                encode::attachment(zone, owner, &keying, &a, a.asset_size.map(|_| &asset))
            }
        }
        .map_err(cipher_failed)?;
        if revised.is_some() {
            // The record's second version.
            record.etag = Some("2".into());
        }
        if let KeyChoice::Late(i) = choice {
            late_used.push(i);
        }
        Ok(change_of(record))
    }

    fn token(&self, zone: &str, pos: u64) -> Vec<u8> {
        let mut t = b"ckst".to_vec();
        t.extend_from_slice(&pos.to_be_bytes());
        t.extend_from_slice(&digest(self.seed(), &format!("{zone}/{pos}"))[..8]);
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
        let zone = self.zone_of(req.zone_identifier.as_ref())?;
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
        let change = (pos..end).map(|p| self.change_at(zone, p, &mut late)).collect::<Result<_, _>>()?;
        self.mark_late(zone, &late);
        if let Ok(mut st) = self.state.lock() {
            st.stats.pages += 1;
        }
        let first = self.fixture_count(zone);
        let damaged = (pos.max(first)..end).filter(|&p| self.damaged(zone, self.message_at(p - first))).map(|p| (p - pos) as usize).collect();
        let page = proto::RetrieveChangesResponse {
            change,
            sync_continuation_token: Some(self.token(zone, end)),
            status: Some(if end >= len { proto::CHANGES_STATUS_DONE } else { 1 }),
        };
        Ok((page, damaged))
    }

    fn zone_retrieve(&self, req: &proto::ZoneRetrieveRequest) -> Result<proto::ZoneRetrieveResponse, proto::OperationResult> {
        let zone = self.zone_of(req.zone_identifier.as_ref())?;
        let late_refreshes = self.faults.late_refreshes;
        let (refreshes, late) = {
            let mut st = self.state.lock().map_err(|_| failure(None, Some(1), None, "state poisoned"))?;
            let z = st.zones.get_mut(zone).ok_or_else(|| failure(Some(client_error::ZONE_NOT_FOUND), None, None, "zone"))?;
            z.refreshes += 1;
            let late: Vec<u64> = (0..LATE_KEYS).filter(|&i| matches!(z.late_seen[i as usize], Some(s) if z.refreshes >= s + late_refreshes)).collect();
            (z.refreshes, late)
        };
        let keys = self.keys.zone(zone).ok_or_else(|| failure(Some(client_error::ZONE_NOT_FOUND), None, None, "zone"))?;
        let (zone_protection, record_protection) = keys
            .protections(&self.keys.service, &late, refreshes)
            .map_err(|e| failure(None, Some(1), None, &format!("simulator cannot create the zone's protections: {e}")))?;
        Ok(proto::ZoneRetrieveResponse {
            zone_summary: vec![proto::ZoneSummary {
                target_zone: Some(proto::Zone {
                    zone_identifier: req.zone_identifier.clone(),
                    etag: Some(format!("{refreshes}")),
                    protection_info: Some(proto::ProtectionInfo { protection_info: Some(zone_protection.der), protection_info_tag: Some(zone_protection.tag) }),
                    // rustpush leaves the record protection's tag unset (fixtures README).
                    record_protection_info: Some(proto::ProtectionInfo { protection_info: Some(record_protection.der), protection_info_tag: None }),
                }),
            }],
        })
    }

    fn record_retrieve(
        &self,
        req: &proto::RecordRetrieveRequest,
        host: &str,
        index: usize,
    ) -> Result<(proto::RecordRetrieveResponse, Option<proto::BundledRequests>), proto::OperationResult> {
        let id = req.record_identifier.as_ref().ok_or_else(|| failure(Some(client_error::BAD_SYNTAX), None, None, "no record id"))?;
        let zone = self.zone_of(id.zone_identifier.as_ref())?;
        let name = id.record_name().unwrap_or("");
        let not_found = || failure(None, Some(server_error::NOT_FOUND), None, "record not found");
        let fixture = self.fixtures.as_ref().and_then(|f| match zone {
            CHAT_ZONE => (f.chat.record_name == name).then_some(0),
            MESSAGE_ZONE => f.position_of(name).map(|p| p as u64),
            _ => None,
        });
        let first = self.fixture_count(zone);
        let pos = fixture
            .or_else(|| {
                match zone {
                    CHAT_ZONE => self.account.chat_records.iter().position(|c| c.record_name == name).map(|p| p as u64),
                    MESSAGE_ZONE => self.account.message_index(name).and_then(|g| self.position_of(g)),
                    _ => self.account.attachment_index(name).and_then(|g| self.account.attachments.binary_search(&(g as u32)).ok()).map(|p| p as u64),
                }
                .map(|p| p + first)
            })
            .filter(|&p| p < self.items(zone))
            .ok_or_else(not_found)?;
        let mut late = Vec::new();
        let change = self.change_at(zone, pos, &mut late)?;
        self.mark_late(zone, &late);
        let mut record = change.record;
        let wants_assets = req.assets_to_download.as_ref().and_then(|a| a.all_assets).unwrap_or(false);
        let bundled = match (wants_assets, zone, record.as_mut()) {
            (true, ATTACHMENT_ZONE, Some(record)) => self.bundle_assets(record, name, host, index),
            _ => None,
        };
        Ok((proto::RecordRetrieveResponse { record }, bundled))
    }

    /// Bundles the download authorization of an attachment record's `lqa` and names it in the
    /// asset's `bundledRequestId`.
    fn bundle_assets(&self, record: &mut proto::Record, name: &str, host: &str, index: usize) -> Option<proto::BundledRequests> {
        let g = self.account.attachment_index(name)?;
        let field = record.record_field.iter_mut().find(|f| f.identifier.as_ref().and_then(|i| i.name.as_deref()) == Some("lqa"))?;
        let asset = field.value.as_mut()?.asset_value.as_mut()?;
        let asset_id = format!("B{index}-{name}");
        asset.bundled_request_id = Some(asset_id.clone());
        let sealed = self.assets.sealed(&self.account, g);
        Some(proto::BundledRequests { requests: vec![self.assets.authorization(&sealed, name, host, &asset_id)] })
    }

    /// Where message `g` is served now (inverse of [`Sim::message_at`]): its revision's place
    /// once released; none for a deletion.
    fn position_of(&self, g: u64) -> Option<u64> {
        if let Some(i) = self.revisions.index_of(g).filter(|_| self.released.load(Ordering::SeqCst)) {
            let served = self.revisions.messages.get(i).is_some_and(|r| r.kind != RevisionKind::Deleted);
            return served.then_some(self.account.total + i as u64);
        }
        match self.account.message(g).kind {
            Kind::Deleted => None,
            _ if g >= self.account.history => Some(g),
            _ => Some(self.order.position(g)),
        }
    }

    /// `MessagesSummary`: a list of integers per record type. Its meaning on Apple's side is
    /// not known beyond its first element being the zone's count of that type; the simulator
    /// sends that count and a second element (the deleted records of the zone) so that a client
    /// that sums the list is caught.
    fn query(&self, req: &proto::QueryRetrieveRequest) -> Result<proto::QueryRetrieveResponse, proto::OperationResult> {
        let zone = self.zone_of(req.zone_identifier.as_ref())?;
        let owner = &self.session.cloudkit_user_id;
        let released = self.released.load(Ordering::SeqCst);
        // A re-served record is the same record; a revision's tombstone is one live record fewer.
        let deleted = self.revisions.deleted(released);
        let (record_type, counts) = match zone {
            CHAT_ZONE => (CHAT_RECORD_TYPE, [self.items(zone) as i64, 0]),
            MESSAGE_ZONE => (
                MESSAGE_RECORD_TYPE,
                [
                    (self.account.live_message_count(released).saturating_sub(deleted) + self.fixture_count(zone)) as i64,
                    (self.account.deleted + deleted) as i64,
                ],
            ),
            _ => (ATTACHMENT_RECORD_TYPE, [self.items(zone) as i64, 0]),
        };
        let record = encode::summary(zone, owner, record_type, &counts);
        Ok(proto::QueryRetrieveResponse {
            query_results: vec![proto::QueryResult { identifier: record.record_identifier.clone(), record: Some(record) }],
            continuation_marker: None,
        })
    }

    /// The zone an operation names; it must be one of the account's, owned by its user.
    fn zone_of(&self, id: Option<&proto::RecordZoneIdentifier>) -> Result<&'static str, proto::OperationResult> {
        let zone =
            id.and_then(|z| z.zone_name()).and_then(zone_static).ok_or_else(|| failure(Some(client_error::ZONE_NOT_FOUND), None, None, "zone not found"))?;
        let owner = id.and_then(|z| z.owner_identifier.as_ref()).and_then(|o| o.name.as_deref());
        if owner != Some(self.session.cloudkit_user_id.as_str()) {
            return Err(failure(Some(CLIENT_FORBIDDEN), None, None, &format!("zone owner {owner:?} is not the authenticated user")));
        }
        Ok(zone)
    }

    /// The reply to one operation, with the positions of the changes to serve damaged.
    fn answer(&self, kind: i32, index: usize, op: &RequestOperation, host: &str) -> (ResponseOperation, Vec<usize>) {
        let mut reply = ResponseOperation { response: op.request.clone(), ..Default::default() };
        let mut damaged = Vec::new();
        let outcome = if let Err(e) = gateway::check_operation(&self.session, kind, index, op) {
            Err(failure(Some(client_error::BAD_SYNTAX), None, None, &e))
        } else if let Some(r) = &op.retrieve_changes_request {
            self.retrieve_changes(r).map(|(page, bad)| {
                reply.retrieve_changes_response = Some(page);
                damaged = bad;
            })
        } else if let Some(r) = &op.zone_retrieve_request {
            self.zone_retrieve(r).map(|v| reply.zone_retrieve_response = Some(v))
        } else if let Some(r) = &op.record_retrieve_request {
            self.record_retrieve(r, host, index).map(|(v, bundled)| {
                reply.record_retrieve_response = Some(v);
                reply.bundled = bundled;
            })
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

    /// Answers one POST to `/ckdatabase/api/client/{path}`.
    pub fn handle(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
        let kind = match gateway::check_http(&self.session, &self.anisette_md, path, headers) {
            Ok(kind) => kind,
            Err(refusal) => return refused(&refusal),
        };
        let gzipped = headers.get("content-encoding").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        let ops = match wire::read_request(body, gzipped) {
            Ok(ops) if !ops.is_empty() => ops,
            Ok(_) => return refused(&Refusal { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", detail: "no operations in the body".into() }),
            Err(e) => return refused(&Refusal { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", detail: e }),
        };
        let replies: Vec<(ResponseOperation, Vec<usize>)> = match self.fault() {
            Some(Fault::Throttle) => {
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, "THROTTLED: slow down").into_response();
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
            None => {
                let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
                ops.iter().enumerate().map(|(i, op)| self.answer(kind, i, op, host)).collect()
            }
        };
        let body = wire::gzip(&wire::encode_replies(&replies));
        ([("content-type", "application/x-protobuf"), ("content-encoding", "gzip")], body).into_response()
    }
}

fn change_of(record: proto::Record) -> proto::RecordChange {
    proto::RecordChange { identifier: record.record_identifier.clone(), etag: record.etag.clone(), record_type: record.r#type.clone(), record: Some(record) }
}

/// CloudKit's client-error code FORBIDDEN.
const CLIENT_FORBIDDEN: i32 = 5;

fn refused(refusal: &Refusal) -> Response {
    (refusal.status, refusal.body()).into_response()
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    B64.encode(bytes)
}

enum Fault {
    Throttle,
    /// true: HTTP 503; false: operation-level server error.
    Error(bool),
}
