//! Portals and history delivery.
//!
//! A portal is the Matrix room of one chat. It is created by the bot with the chat's *current*
//! name, the owner and the participants' ghosts; then every stored message of the chat that the
//! delivery ledger does not list is sent, oldest first, with `?ts=` set to the original time —
//! one forward sequence, which is what lets clients paginate back to message one. Later syncs
//! only append (the undelivered set is, by construction, newer than the room's last send).
//!
//! Crash safety: before a send the ledger gets a row with the transaction id (`imb-<guid>`); after
//! it, the event id. A row without an event id is the one send that may have been in flight; on
//! restart the bridge looks for its guid in the room's newest events before re-sending, because
//! the homeserver's transaction-id cache does not survive its own restarts.

use std::collections::HashSet;
use std::sync::Arc;

use imessage::records::{MessageRecord, STYLE_GROUP};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use store::{Chat, Portal, Store};
use tokio::sync::Mutex;

use crate::client::HomeserverClient;
use crate::ghost::{bot_user_id, display_name, ghost_localpart, ghost_user_id};
use crate::send::{LEDGER_KEY, NO_EVENT};
use crate::{Result, GUID_KEY};

/// The bridge bot's display name.
const BOT_DISPLAY_NAME: &str = "iMessage bridge";

/// How many of a room's newest events are searched for an in-flight guid.
const INFLIGHT_LOOKBACK: u32 = 100;

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
}

impl DeliveryReport {
    fn add(&mut self, r: &DeliveryReport) {
        self.sent += r.sent;
        self.attachments += r.attachments;
        self.attachment_notices += r.attachment_notices;
        self.reactions += r.reactions;
        self.redactions += r.redactions;
        self.edits += r.edits;
        self.orphan_tapbacks += r.orphan_tapbacks;
        self.duplicate_reactions += r.duplicate_reactions;
    }
}

pub struct Deliverer {
    pub hs: HomeserverClient,
    pub store: Arc<dyn Store>,
    pub config: DeliveryConfig,
    /// Users registered (and named) during this run.
    known_users: Mutex<HashSet<String>>,
    /// Serializes read-modify-write of the owner's `m.direct` (rooms are delivered concurrently).
    direct_lock: Mutex<()>,
    /// The homeserver's default room version (portals are created with it).
    room_version: tokio::sync::OnceCell<Option<String>>,
}

/// The transaction id of a message's send: stable per guid, so a retried request is one event
/// while the homeserver remembers the id.
pub(crate) fn txn_id(guid: &str) -> String {
    format!("imb-{guid}")
}

impl Deliverer {
    pub fn new(hs: HomeserverClient, store: Arc<dyn Store>, config: DeliveryConfig) -> Self {
        Deliverer { hs, store, config, known_users: Mutex::new(HashSet::new()), direct_lock: Mutex::new(()), room_version: tokio::sync::OnceCell::new() }
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

    /// Registers a ghost and sets its display name, once per run.
    async fn ensure_ghost(&self, handle: &str) -> Result<String> {
        let user = ghost_user_id(handle, &self.config.domain);
        if self.known_users.lock().await.contains(&user) {
            return Ok(user);
        }
        self.hs.register(&ghost_localpart(handle)).await?;
        self.hs.set_displayname(&user, &display_name(handle)).await?;
        self.known_users.lock().await.insert(user.clone());
        Ok(user)
    }

    /// Makes sure `user` is in the room (invited by the bot, then joined).
    async fn ensure_member(&self, room: &str, user: &str, members: &mut HashSet<String>) -> Result<()> {
        if members.contains(user) {
            return Ok(());
        }
        self.hs.invite(room, &self.bot(), user).await?;
        self.hs.join(room, user).await?;
        members.insert(user.to_string());
        Ok(())
    }

    /// Creates the chat's room with its members; returns the portal and who is joined.
    async fn create_portal(&self, chat: &Chat) -> Result<(Portal, HashSet<String>)> {
        let bot = self.bot();
        self.ensure_bot().await?;
        let is_group = chat.style == STYLE_GROUP;
        // A DM is created as one: the contact's ghost invited by createRoom with is_direct.
        let contact = (!is_group).then(|| chat.participants.first().map(|h| ghost_user_id(h, &self.config.domain))).flatten();
        if let Some(handle) = chat.participants.first().filter(|_| !is_group) {
            self.ensure_ghost(handle).await?;
        }
        let mut body = json!({
            "visibility": "private",
            "preset": "private_chat",
            "is_direct": !is_group,
            "creation_content": { "m.federate": false },
            "initial_state": [{
                "type": "m.bridge",
                "state_key": format!("fi.imessage_bridge://imessage/{}", chat.chat_id),
                "content": {
                    "bridgebot": bot,
                    "protocol": { "id": "imessage", "displayname": "iMessage" },
                    "channel": { "id": chat.chat_id, "displayname": chat.display_name },
                }
            }, {
                // Clients leave the bot out of the room name they compute (Element's
                // functional members), so a DM is named after the contact.
                "type": "io.element.functional_members",
                "state_key": "",
                "content": { "service_members": [bot] },
            }],
            "power_level_content_override": { "users": self.power_users().await? },
        });
        if let Some(contact) = &contact {
            body["invite"] = json!([contact]);
        }
        if let Some(version) = &self.config.room_version {
            body["room_version"] = json!(version);
        }
        if let Some(name) = &chat.display_name {
            body["name"] = json!(name);
        }
        // Sent once: a request that fails without an answer may still have made the room, which
        // the m.bridge search then adopts instead of making a second one.
        let room = match self.hs.create_room(&bot, &body).await {
            Ok(room) => room.to_string(),
            Err(e) if e.is_transient() => {
                tracing::warn!(chat = %chat.chat_id, "createRoom failed ({e}); looking for a room it may have made");
                self.adopt_unrecorded_rooms(std::slice::from_ref(chat)).await?;
                match self.store.portal(&chat.chat_id).await? {
                    Some(p) => {
                        let members = self.hs.joined_members(&p.room_id, &bot).await?;
                        return Ok((p, members));
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let portal = Portal { chat_id: chat.chat_id.clone(), room_id: room.clone(), name: chat.display_name.clone() };
        self.store.save_portal(&portal).await?;
        tracing::info!(chat = %chat.chat_id, room = %room, name = ?chat.display_name, "portal created");
        let mut members = HashSet::from([bot.clone()]);
        self.seat_members(&portal, chat, &mut members).await?;
        if let (Some(contact), true) = (&contact, self.config.double_puppet) {
            self.mark_direct(contact, &room).await?;
        }
        Ok((portal, members))
    }

    /// The `users` of a portal's power levels: the owner, and the bot where the room version
    /// needs it. Before version 12 the override replaces the creator's entry, so the bot must
    /// be listed; from 12 on the creator has power by being the creator and must not be.
    async fn power_users(&self) -> Result<Value> {
        let bot = self.bot();
        let version = match &self.config.room_version {
            Some(pinned) => Some(pinned.clone()),
            None => self.room_version.get_or_try_init(|| self.hs.default_room_version(&bot)).await?.clone(),
        };
        let before_12 = version.as_deref().and_then(|v| v.parse::<u32>().ok()).is_some_and(|v| v < 12);
        let mut users = json!({ self.config.owner.clone(): 100 });
        if before_12 {
            users[self.bot()] = json!(100);
        }
        Ok(users)
    }

    /// Registers the bot and gives it a display name, once per run.
    async fn ensure_bot(&self) -> Result<()> {
        let bot = self.bot();
        if self.known_users.lock().await.contains(&bot) {
            return Ok(());
        }
        self.hs.register(crate::ghost::BOT_LOCALPART).await?;
        self.hs.set_displayname(&bot, BOT_DISPLAY_NAME).await?;
        self.known_users.lock().await.insert(bot);
        Ok(())
    }

    /// Lists `room` as the owner's DM with `contact` in their `m.direct` account data.
    async fn mark_direct(&self, contact: &str, room: &str) -> Result<()> {
        let _guard = self.direct_lock.lock().await;
        let owner = &self.config.owner;
        let mut direct = self.hs.account_data(owner, "m.direct").await?.filter(Value::is_object).unwrap_or_else(|| json!({}));
        let rooms = direct[contact].as_array().cloned().unwrap_or_default();
        if !rooms.iter().any(|r| r == room) {
            let mut rooms = rooms;
            rooms.push(json!(room));
            direct[contact] = Value::Array(rooms);
            self.hs.set_account_data(owner, "m.direct", &direct).await?;
        }
        Ok(())
    }

    /// Puts the owner and a ghost per participant into the portal, skipping `members` (who are
    /// already joined) and adding whoever it joins.
    async fn seat_members(&self, portal: &Portal, chat: &Chat, members: &mut HashSet<String>) -> Result<()> {
        let bot = self.bot();
        if self.config.double_puppet {
            // The owner is in our namespace: make sure the account exists before acting as it.
            if let Some(local) = self.config.owner.strip_prefix('@').and_then(|o| o.split(':').next()) {
                self.hs.register(local).await?;
            }
            self.ensure_member(&portal.room_id, &self.config.owner, members).await?;
        } else {
            self.hs.invite(&portal.room_id, &bot, &self.config.owner).await?;
        }
        for handle in &chat.participants {
            let ghost = self.ensure_ghost(handle).await?;
            self.ensure_member(&portal.room_id, &ghost, members).await?;
        }
        Ok(())
    }

    /// Looks for the event with ledger key `key` among the room's newest events (events of
    /// older versions carry only the guid).
    async fn find_in_room(&self, room: &str, key: &str) -> Result<Option<String>> {
        let page = self.hs.messages(room, &self.bot(), None, "b", INFLIGHT_LOOKBACK).await?;
        Ok(page
            .chunk
            .iter()
            .find(|e| {
                let c = &e["content"];
                c[LEDGER_KEY].as_str() == Some(key) || (c[LEDGER_KEY].is_null() && c[GUID_KEY].as_str() == Some(key))
            })
            .and_then(|e| e["event_id"].as_str().map(str::to_string)))
    }

    /// Delivers one chat: creates its portal if needed, renames it if its name changed, resolves
    /// the in-flight send of a previous run, then sends every undelivered message in order.
    async fn deliver_chat(&self, chat: &Chat, progress: &dyn DeliveryProgress, report: &Mutex<DeliveryReport>) -> Result<()> {
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
        let pending: Vec<MessageRecord> = self.store.undelivered(&chat.chat_id).await?;
        if pending.is_empty() {
            return Ok(());
        }
        progress.room_started(&chat.chat_id, chat.display_name.as_deref().unwrap_or(&chat.chat_id), pending.len());
        // Who is in the room already: known when we just created it, else asked once, so no
        // sender costs an invite and a join per run.
        let history = created_with.is_some() && self.config.double_puppet;
        let mut members = match created_with {
            Some(m) => m,
            None => self.hs.joined_members(&room, &self.bot()).await?,
        };
        // The chat's tapback state as the room has it: every message before the first pending.
        let mut reactions = crate::render::Reactions::default();
        let first_pending = pending.first().map(|m| (m.ts_ms, m.guid.clone()));
        for m in self.store.messages_in_chat(&chat.chat_id).await? {
            if Some((m.ts_ms, m.guid.clone())) >= first_pending {
                break;
            }
            if !m.is_system() {
                let plan = crate::render::plan(&m, &|h| crate::ghost::ghost_user_id(h, &self.config.domain));
                reactions.apply(&m, &plan);
            }
        }
        // History goes in without notifying the owner: their push rule for the room is muted
        // while it does, and their read markers end up on its last event.
        let muted = if history { self.mute_owner(&room).await? } else { false };
        let mut ghosts: HashSet<String> = HashSet::new();
        let mut room_report = DeliveryReport::default();
        for m in &pending {
            let sender = self.sender_of(m);
            if sender != self.config.owner && !ghosts.contains(&sender) {
                let handle = if m.from_me() { self.config.own_handles.first().cloned().unwrap_or_default() } else { m.sender.clone() };
                self.ensure_ghost(&handle).await?;
                ghosts.insert(sender.clone());
            }
            self.ensure_member(&room, &sender, &mut members).await?;
            self.send_message(&room, &sender, m, &mut reactions, &mut room_report).await?;
            room_report.sent += 1;
            progress.sent(&chat.chat_id);
        }
        if history {
            if let Some(last) = self.last_event(&pending).await? {
                self.hs.set_read_markers(&room, &self.config.owner, &last).await?;
            }
        }
        if muted {
            self.hs.delete_room_push_rule(&self.config.owner, &room).await?;
        }
        report.lock().await.add(&room_report);
        progress.room_finished(&chat.chat_id);
        Ok(())
    }

    /// Mutes the owner's notifications for `room` unless they set a rule of their own there;
    /// returns whether it did (and so must lift it).
    async fn mute_owner(&self, room: &str) -> Result<bool> {
        if self.hs.room_push_rule(&self.config.owner, room).await?.is_some() {
            return Ok(false);
        }
        self.hs.set_room_push_rule(&self.config.owner, room, &json!([])).await?;
        Ok(true)
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

    /// Finds rooms the bot created for a chat but never recorded (the bridge stopped between
    /// `createRoom` and saving the portal, or its database was replaced) and records them, so a
    /// restart adopts the room instead of creating a second one. Only rooms the bot is in that no portal names are looked at,
    /// and a room counts only if its `m.bridge` state names a chat we have. Returns how many.
    async fn adopt_unrecorded_rooms(&self, chats: &[Chat]) -> Result<u64> {
        let known: HashSet<String> = self.store.portals().await?.into_iter().map(|p| p.room_id).collect();
        let bot = self.bot();
        let mut adopted = 0;
        for room in self.hs.joined_rooms(&bot).await? {
            if known.contains(&room) {
                continue;
            }
            let state = self.hs.room_state(&room, &bot).await?;
            let chat_id = state
                .iter()
                .filter(|e| e["type"] == "m.bridge" && e["content"]["bridgebot"] == bot.as_str())
                .find_map(|e| e["content"]["channel"]["id"].as_str());
            let Some(chat) = chat_id.and_then(|id| chats.iter().find(|c| c.chat_id == id)) else { continue };
            let chat_id = chat.chat_id.as_str();
            if self.store.portal(chat_id).await?.is_some() {
                tracing::warn!(chat = chat_id, room = %room, "a second room claims this chat; keeping the recorded one");
                continue;
            }
            let name = state.iter().find(|e| e["type"] == "m.room.name").and_then(|e| e["content"]["name"].as_str()).map(str::to_string);
            // Messages already in the room (a wiped database next to a kept homeserver) go into
            // the ledger, so adopting the room never sends them a second time.
            let (events, _) = crate::verify::paginate(&self.hs, &room, &bot).await?;
            for e in events {
                if let (Some(key), Some(event_id)) = (e.key.or(e.guid), e.event_id) {
                    self.store.begin_delivery(&key, chat_id, &txn_id(&key)).await?;
                    self.store.finish_delivery(&key, &event_id).await?;
                }
            }
            let portal = Portal { chat_id: chat_id.to_string(), room_id: room.clone(), name };
            self.store.save_portal(&portal).await?;
            tracing::info!(chat = chat_id, room = %room, "adopted a room created before an interruption");
            let mut members = self.hs.joined_members(&room, &bot).await?;
            self.seat_members(&portal, chat, &mut members).await?;
            adopted += 1;
        }
        Ok(adopted)
    }

    /// Delivers every chat, `concurrency` rooms at a time; within a room strictly in order.
    pub async fn deliver_all(&self, progress: &dyn DeliveryProgress) -> Result<DeliveryReport> {
        let chats = self.store.chats().await?;
        let report = Mutex::new(DeliveryReport { rooms: chats.len() as u64, ..Default::default() });
        let recorded = self.store.portals().await?.len();
        if recorded < chats.len() {
            self.ensure_bot().await?;
            report.lock().await.adopted = self.adopt_unrecorded_rooms(&chats).await?;
        }
        let results: Vec<Result<()>> = stream::iter(chats.iter())
            .map(|chat| self.deliver_chat(chat, progress, &report))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(report.into_inner())
    }
}
