//! History delivery into portals (the rooms themselves: `portal.rs`).
//!
//! A portal is the Matrix room of one chat. It is created by the bot with the chat's *current*
//! name, the owner and the participants' ghosts; then every stored message of the chat that the
//! delivery ledger does not list is sent, oldest first, with `?ts=` set to the original time —
//! one forward sequence, which is what lets clients paginate back to message one. Later syncs
//! only append (the undelivered set is, by construction, newer than the room's last send).
//! Which room sends when, in turns, is `live.rs`'s; a turn resumes where the last one stopped.
//!
//! Crash safety: before a send the ledger gets a row with the transaction id (`imb-<guid>`); after
//! it, the event id. A row without an event id is the one send that may have been in flight; on
//! restart the bridge looks for its key in the room before re-sending (back to the newest event
//! the ledger knows, past any live traffic since), because the homeserver's transaction-id cache
//! does not survive its own restarts.

use std::collections::HashSet;
use std::sync::Arc;

use imessage::records::MessageRecord;
use serde::Serialize;
use serde_json::json;
use store::{Chat, Portal, Store};
use tokio::sync::Mutex;

use crate::client::HomeserverClient;
use crate::ghost::{bot_user_id, ghost_user_id};
use crate::keys::{LEDGER_KEY, NO_EVENT};
use crate::turn::{Turn, TurnEnd};
use crate::{Result, GUID_KEY};

/// Events per page, and pages at most, of the search for an in-flight send (a million events:
/// the bound only keeps a broken room from being paged forever).
const INFLIGHT_PAGE: u32 = 500;
const INFLIGHT_MAX_PAGES: u32 = 2000;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub domain: String,
    /// The Matrix user who owns the bridge (invited to every portal).
    pub owner: String,
    /// Send from-me messages as the owner (the owner is in the registration's namespace).
    pub double_puppet: bool,
    /// The account's own handles; the first one's ghost sends from-me messages without double puppeting.
    pub own_handles: Vec<String>,
    /// Rooms delivered at the same time.
    pub concurrency: usize,
    /// The room version new portals get (None: the homeserver's default).
    pub room_version: Option<String>,
    /// The attachment folder (files named by SHA-256) and how files become Matrix media.
    pub attachments_dir: std::path::PathBuf,
    pub media: crate::media::MediaConfig,
}

/// Progress callbacks per room.
pub trait DeliveryProgress: Send + Sync {
    fn room_started(&self, _chat_id: &str, _name: &str, _pending: usize) {}
    fn sent(&self, _chat_id: &str) {}
    fn room_finished(&self, _chat_id: &str) {}
}

pub struct NoDeliveryProgress;
impl DeliveryProgress for NoDeliveryProgress {}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryReport {
    pub rooms_created: u64,
    pub rooms: u64,
    pub sent: u64,
    pub recovered_in_flight: u64,
    pub resent_in_flight: u64,
    pub renamed: u64,
    /// Rooms found by their `m.bridge` state after an interruption (see `adopt_unrecorded_rooms`).
    pub adopted: u64,
    /// Attachments uploaded and sent as media.
    pub attachments: u64,
    /// Attachments sent as a notice because their file is missing, too large or unconvertible.
    pub attachment_notices: u64,
    pub reactions: u64,
    /// Reactions redacted (tapbacks removed or replaced).
    pub redactions: u64,
    pub edits: u64,
    /// Tapbacks whose target never reached the room (nothing to react to).
    pub orphan_tapbacks: u64,
    /// Tapbacks the homeserver already had from that sender on that event.
    pub duplicate_reactions: u64,
    /// Messages older than the room's newest, delivered at the live edge with their time shown.
    pub late: u64,
    /// Why nothing was delivered this round (the history is not complete yet), if so.
    pub waiting: Option<String>,
    /// Rooms whose delivery failed this round (each is retried after its own backoff).
    pub failed_rooms: Vec<RoomFailure>,
    /// Rooms left out this round because they are backing off after failures.
    pub backing_off: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomFailure {
    pub chat_id: String,
    pub error: String,
}

/// The first wait before a room that failed is tried again; doubles per failure up to the max.
pub(crate) const ROOM_BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);
pub(crate) const ROOM_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(600);

impl DeliveryReport {
    pub(crate) fn add(&mut self, r: &DeliveryReport) {
        self.sent += r.sent;
        self.attachments += r.attachments;
        self.attachment_notices += r.attachment_notices;
        self.reactions += r.reactions;
        self.redactions += r.redactions;
        self.edits += r.edits;
        self.orphan_tapbacks += r.orphan_tapbacks;
        self.duplicate_reactions += r.duplicate_reactions;
        self.late += r.late;
    }
}

pub struct Deliverer {
    pub hs: HomeserverClient,
    pub store: Arc<dyn Store>,
    pub config: DeliveryConfig,
    /// Users registered (and named) during this run.
    pub(crate) known_users: Mutex<HashSet<String>>,
    /// Serializes read-modify-write of the owner's `m.direct` (rooms are delivered concurrently).
    pub(crate) direct_lock: Mutex<()>,
    /// The homeserver's default room version (portals are created with it).
    pub(crate) room_version: tokio::sync::OnceCell<Option<String>>,
    /// The media repository's largest upload (asked once).
    pub(crate) upload_limit: tokio::sync::OnceCell<Option<u64>>,
    /// Set by [`Deliverer::request_stop`]: rooms stop after the message in flight.
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    /// Rooms whose last delivery failed: how many times in a row, and when to try again.
    pub(crate) backoff: std::sync::Mutex<std::collections::HashMap<String, (u32, tokio::time::Instant)>>,
    /// Where ghosts' names and photos come from (None: the formatted handle; see `profiles.rs`).
    pub(crate) profiles: std::sync::RwLock<Option<Arc<dyn crate::profile_source::ProfileSource>>>,
    /// Older portals' canonical aliases emptied (once per run; see `clear_canonical_aliases`).
    pub(crate) aliases_cleared: tokio::sync::OnceCell<u64>,
}

pub use crate::keys::history_rule_id;
pub(crate) use crate::keys::txn_id;

impl Deliverer {
    pub fn new(hs: HomeserverClient, store: Arc<dyn Store>, config: DeliveryConfig) -> Self {
        Deliverer {
            hs,
            store,
            config,
            known_users: Mutex::new(HashSet::new()),
            direct_lock: Mutex::new(()),
            room_version: tokio::sync::OnceCell::new(),
            upload_limit: tokio::sync::OnceCell::new(),
            stop: tokio::sync::watch::Sender::new(false),
            backoff: Default::default(),
            profiles: Default::default(),
            aliases_cleared: Default::default(),
        }
    }

    /// The deliverer with ghost profiles from `source` (see `profiles.rs`).
    pub fn with_profiles(self, source: Option<Arc<dyn crate::profile_source::ProfileSource>>) -> Self {
        self.set_profiles(source);
        self
    }

    pub fn bot(&self) -> String {
        bot_user_id(&self.config.domain)
    }

    /// The Matrix user that sends a message.
    pub fn sender_of(&self, m: &MessageRecord) -> String {
        if m.from_me() || self.config.own_handles.iter().any(|h| h == &m.sender) {
            if self.config.double_puppet {
                return self.config.owner.clone();
            }
            let own = self.config.own_handles.first().map(String::as_str).unwrap_or("me");
            return ghost_user_id(own, &self.config.domain);
        }
        ghost_user_id(&m.sender, &self.config.domain)
    }

    /// Looks for the event with ledger key `key` (events of older versions carry only the guid)
    /// in the room, newest first. The bridge sends into a room one event at a time, so the
    /// in-flight send, if it arrived, is newer than every event whose ledger row is finished:
    /// the search stops at the first such event. Whatever came in after it (the owner typing,
    /// live messages) is looked through, however much it is.
    async fn find_in_room(&self, room: &str, key: &str) -> Result<Option<String>> {
        let bot = self.bot();
        let mut from: Option<String> = None;
        for _ in 0..INFLIGHT_MAX_PAGES {
            let page = self.hs.messages(room, &bot, from.as_deref(), "b", INFLIGHT_PAGE).await?;
            for e in &page.chunk {
                let c = &e["content"];
                let Some(event_key) = c[LEDGER_KEY].as_str().or_else(|| c[GUID_KEY].as_str()) else { continue };
                if event_key == key {
                    return Ok(e["event_id"].as_str().map(str::to_string));
                }
                if self.store.delivered_event(event_key).await?.is_some() {
                    return Ok(None);
                }
            }
            match page.end {
                Some(end) if !page.chunk.is_empty() => from = Some(end),
                _ => return Ok(None),
            }
        }
        tracing::warn!(room, key, pages = INFLIGHT_MAX_PAGES, "in-flight send not found within the search bound; sending it again");
        Ok(None)
    }

    /// One turn of a chat: creates its portal if needed, renames it if its name changed, resolves
    /// the in-flight send of a previous run, then sends the undelivered messages in order until
    /// they are all sent ([`TurnEnd::Done`]) or the turn is over ([`TurnEnd::More`]).
    pub(crate) async fn deliver_chat(&self, chat: &Chat, progress: &dyn DeliveryProgress, report: &Mutex<DeliveryReport>, turn: &Turn<'_>) -> Result<TurnEnd> {
        let (portal, created_with) = match self.store.portal(&chat.chat_id).await? {
            Some(p) => (p, None),
            None => {
                let (p, members) = self.create_portal(chat).await?;
                report.lock().await.rooms_created += 1;
                (p, Some(members))
            }
        };
        let room = portal.room_id.clone();
        if portal.name != chat.display_name {
            if let Some(name) = &chat.display_name {
                self.hs.put_state(&room, &self.bot(), "m.room.name", "", &json!({ "name": name })).await?;
                report.lock().await.renamed += 1;
            }
            self.store.save_portal(&Portal { name: chat.display_name.clone(), ..portal.clone() }).await?;
        }
        for entry in self.store.in_flight(&chat.chat_id).await? {
            match self.find_in_room(&room, &entry.guid).await? {
                Some(event_id) => {
                    self.store.finish_delivery(&entry.guid, &event_id).await?;
                    report.lock().await.recovered_in_flight += 1;
                }
                None => {
                    // Not in the room: send it again below (it is still undelivered).
                    self.store.forget_delivery(&entry.guid).await?;
                    report.lock().await.resent_in_flight += 1;
                }
            }
        }
        // What is sent comes from a whole sync pass: the stored history's state is the same
        // before and after it is read (a pass under way, in `run`'s sync beside this, waits).
        let Ok(before) = self.history_state().await? else { return Ok(TurnEnd::Waiting) };
        let pending: Vec<MessageRecord> = self.store.undelivered(&chat.chat_id).await?;
        let messages = if pending.is_empty() { Vec::new() } else { self.store.messages_in_chat(&chat.chat_id).await? };
        if self.history_state().await?.ok().as_ref() != Some(&before) {
            return Ok(TurnEnd::Waiting);
        }
        // The portal's history is still going in while the owner's history mute is there (a
        // run that stopped half-way left it): it stays until the last history event is sent.
        let history = self.config.double_puppet && self.hs.has_override_rule(&self.config.owner, &history_rule_id(&room)).await?;
        // Who is in the room already: known when we just created it, else asked once, so no
        // sender costs an invite and a join per run.
        let mut members = match created_with {
            Some(m) => m,
            None => self.hs.joined_members(&room, &self.bot()).await?,
        };
        let mut room_report = DeliveryReport::default();
        if !pending.is_empty() {
            progress.room_started(&chat.chat_id, chat.display_name.as_deref().unwrap_or(&chat.chat_id), pending.len());
            let all_sent = self.send_pending(&room, &chat.chat_id, &pending, &messages, &mut members, &mut room_report, progress, turn).await?;
            if !all_sent {
                // The rest in a later turn (or run); what follows is for the live edge.
                report.lock().await.add(&room_report);
                return Ok(TurnEnd::More);
            }
        }
        // Then what changed in messages the room has (unsends, later edits, deletions), and who
        // is in the chat now: both at the live edge.
        self.apply_revisions(&room, &chat.chat_id, &mut room_report).await?;
        self.follow_participants(&room, chat, &mut members).await?;
        // History leaves nothing unread: the owner's read markers go on its last event, then
        // the mute is lifted and later messages notify as usual.
        if history {
            if let Some(last) = self.last_event(&pending).await? {
                self.hs.set_read_markers(&room, &self.config.owner, &last).await?;
            }
            self.hs.delete_override_rule(&self.config.owner, &history_rule_id(&room)).await?;
        }
        report.lock().await.add(&room_report);
        if !pending.is_empty() {
            progress.room_finished(&chat.chat_id);
        }
        Ok(TurnEnd::Done)
    }

    /// Sends a chat's undelivered messages in order, each by its sender (joined first), until
    /// a stop or the end of the turn; true when all were sent. `chat` is every message of it.
    #[allow(clippy::too_many_arguments)]
    async fn send_pending(
        &self,
        room: &str,
        chat_id: &str,
        pending: &[MessageRecord],
        chat: &[MessageRecord],
        members: &mut HashSet<String>,
        room_report: &mut DeliveryReport,
        progress: &dyn DeliveryProgress,
        turn: &Turn<'_>,
    ) -> Result<bool> {
        // The chat's tapback state as the room has it: every message delivered so far.
        let waiting: HashSet<&str> = pending.iter().map(|m| m.guid.as_str()).collect();
        let mut reactions = crate::render::Reactions::default();
        for m in chat.iter().filter(|m| !m.is_system() && !waiting.contains(m.guid.as_str())) {
            let plan = crate::render::plan(m, &|h| crate::ghost::ghost_user_id(h, &self.config.domain));
            reactions.apply(m, &plan);
        }
        // A message older than the room's newest (its key appeared only later) can only go in at
        // the live edge now: it is marked with its original time and counted (see `late.rs`).
        let newest_in_room = self.store.last_delivered_ts(chat_id).await?;
        let mut ghosts: HashSet<String> = HashSet::new();
        let mut late_shown: HashSet<String> = HashSet::new();
        for m in pending {
            if self.stopping() || turn.over() {
                return Ok(false);
            }
            let late = newest_in_room.is_some_and(|t| m.ts_ms < t);
            if late && crate::late::superseded(m, chat) {
                self.mark_done(&m.guid, &m.chat_id, NO_EVENT).await?;
                continue;
            }
            if late {
                room_report.late += 1;
                tracing::info!(chat = chat_id, guid = %m.guid, ts_ms = m.ts_ms, "delivering a message that arrived after newer ones, marked with its time");
                if m.associated_type.is_none() {
                    late_shown.insert(m.guid.clone());
                }
            }
            self.send_as_sender(room, m, members, &mut ghosts, &mut reactions, late, room_report).await?;
            progress.sent(chat_id);
        }
        // Tapbacks that found no target because it was one of those late messages go in now.
        for m in crate::late::tapbacks_on(chat, &late_shown) {
            if waiting.contains(m.guid.as_str()) || self.store.delivered_event(&m.guid).await?.as_deref() != Some(NO_EVENT) {
                continue;
            }
            self.store.forget_delivery(&m.guid).await?;
            room_report.late += 1;
            self.send_as_sender(room, m, members, &mut ghosts, &mut reactions, true, room_report).await?;
        }
        Ok(true)
    }

    /// Sends one message by its sender, who is registered and joined first.
    #[allow(clippy::too_many_arguments)]
    async fn send_as_sender(
        &self,
        room: &str,
        m: &MessageRecord,
        members: &mut HashSet<String>,
        ghosts: &mut HashSet<String>,
        reactions: &mut crate::render::Reactions,
        late: bool,
        room_report: &mut DeliveryReport,
    ) -> Result<()> {
        let sender = self.sender_of(m);
        if sender != self.config.owner && !ghosts.contains(&sender) {
            let handle = if m.from_me() { self.config.own_handles.first().cloned().unwrap_or_default() } else { m.sender.clone() };
            self.ensure_ghost(&handle).await?;
            ghosts.insert(sender.clone());
        }
        self.ensure_member(room, &sender, members).await?;
        self.send_message(room, &sender, m, reactions, late, room_report).await?;
        room_report.sent += 1;
        Ok(())
    }

    /// The newest event the delivered `messages` put into the room.
    async fn last_event(&self, messages: &[MessageRecord]) -> Result<Option<String>> {
        for m in messages.iter().rev() {
            if let Some(id) = self.store.delivered_event(&m.guid).await?.filter(|id| id != NO_EVENT) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Why the stored history is not complete yet, None when it is: every zone's last pass
    /// reached its end (`api_done`) and no message record waits for a key. CloudKit serves a
    /// zone's records in no time order, so what a pass cut short left out can be older than what
    /// it stored; and a room's timeline is append-only, so order must be right the first time.
    pub async fn history_incomplete(&self) -> Result<Option<String>> {
        Ok(self.history_state().await?.err())
    }

    /// The stored history's state when it is complete (each zone's token and pages: any page a
    /// sync commits changes it), else why it is not (see [`Self::history_incomplete`]).
    async fn history_state(&self) -> Result<std::result::Result<Vec<(Option<Vec<u8>>, i64)>, String>> {
        let mut state = Vec::new();
        for zone in imessage::records::ZONES {
            let z = self.store.zone_state(zone).await?;
            match z.as_ref().and_then(|z| z.stop_reason) {
                Some(store::StopReason::ApiDone) => {}
                Some(other) => return Ok(Err(format!("the last sync of {zone} stopped early ({})", other.as_str()))),
                None => return Ok(Err(format!("{zone} has not been synced to its end yet"))),
            }
            state.extend(z.map(|z| (z.token, z.pages)));
        }
        let waiting = self.store.failed_records(imessage::records::MESSAGE_ZONE).await?.iter().filter(|f| f.pending).count();
        Ok(if waiting > 0 { Err(format!("{waiting} message record(s) wait for a key refresh")) } else { Ok(state) })
    }

    /// Delivers every chat once (see [`Self::deliver_rooms`]): each room until nothing of it
    /// is pending, `concurrency` rooms at a time, within a room strictly in order. Nothing is
    /// delivered while the history is incomplete (see [`Self::history_incomplete`]).
    pub async fn deliver_all(&self, progress: &dyn DeliveryProgress) -> Result<DeliveryReport> {
        self.deliver_rooms(progress, None, &|_| {}).await
    }

    /// Asks a delivery under way to stop after the message each room is sending (what is not
    /// sent stays undelivered for the next run).
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}
