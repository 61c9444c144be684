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
use crate::{Result, GUID_KEY};

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
}

pub struct Deliverer {
    pub hs: HomeserverClient,
    pub store: Arc<dyn Store>,
    pub config: DeliveryConfig,
    /// Users registered (and named) during this run.
    known_users: Mutex<HashSet<String>>,
}

/// The transaction id of a message's send: stable per guid, so a retried request is one event
/// while the homeserver remembers the id.
fn txn_id(guid: &str) -> String {
    format!("imb-{guid}")
}

/// The reaction key of an iMessage tapback (`associated_type` 2000–2005); None for other kinds
/// (removals 3000–3005 and non-tapbacks), which are delivered as text.
pub fn tapback_key(kind: u32) -> Option<&'static str> {
    Some(match kind {
        2000 => "❤️",
        2001 => "👍",
        2002 => "👎",
        2003 => "😂",
        2004 => "‼️",
        2005 => "❓",
        _ => return None,
    })
}

impl Deliverer {
    pub fn new(hs: HomeserverClient, store: Arc<dyn Store>, config: DeliveryConfig) -> Self {
        Deliverer { hs, store, config, known_users: Mutex::new(HashSet::new()) }
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
        self.hs.register(crate::ghost::BOT_LOCALPART).await?;
        let is_group = chat.style == STYLE_GROUP;
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
            }],
            "power_level_content_override": { "users": { self.config.owner.clone(): 100 } },
        });
        if let Some(name) = &chat.display_name {
            body["name"] = json!(name);
        }
        let room = self.hs.create_room(&bot, &body).await?;
        let portal = Portal { chat_id: chat.chat_id.clone(), room_id: room.to_string(), name: chat.display_name.clone() };
        self.store.save_portal(&portal).await?;
        tracing::info!(chat = %chat.chat_id, room = %room, name = ?chat.display_name, "portal created");
        let mut members = HashSet::from([bot.clone()]);
        self.seat_members(&portal, chat, &mut members).await?;
        Ok((portal, members))
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

    /// Builds the event for a message: a reaction when it is a tapback on a delivered message,
    /// a text message otherwise. Every event carries the guid.
    async fn event_for(&self, m: &MessageRecord) -> Result<(&'static str, Value)> {
        if let (Some(kind), Some(target)) = (m.associated_type, m.associated_guid.as_deref()) {
            let target_guid = target.rsplit('/').next().unwrap_or(target);
            if let (Some(key), Some(event_id)) = (tapback_key(kind), self.store.delivered_event(target_guid).await?) {
                return Ok((
                    "m.reaction",
                    json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": event_id, "key": key }, GUID_KEY: m.guid }),
                ));
            }
        }
        Ok(Self::text_event(m))
    }

    /// The text form of a message (also the fallback of a reaction the homeserver refuses).
    fn text_event(m: &MessageRecord) -> (&'static str, Value) {
        let body = match m.text.as_deref() {
            Some("\u{FFFC}") | None | Some("") => "📎 attachment".to_string(),
            Some(t) => t.to_string(),
        };
        let content = ruma::events::room::message::RoomMessageEventContent::text_plain(body);
        let mut v = serde_json::to_value(&content).unwrap_or_else(|_| json!({ "msgtype": "m.text" }));
        v[GUID_KEY] = json!(m.guid);
        if let Some(subject) = &m.subject {
            v["fi.imessage_bridge.subject"] = json!(subject);
        }
        ("m.room.message", v)
    }

    /// Looks for `guid` among the room's newest events.
    async fn find_in_room(&self, room: &str, guid: &str) -> Result<Option<String>> {
        let page = self.hs.messages(room, &self.bot(), None, "b", INFLIGHT_LOOKBACK).await?;
        Ok(page
            .chunk
            .iter()
            .find(|e| e["content"][GUID_KEY].as_str() == Some(guid))
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
        let mut members = match created_with {
            Some(m) => m,
            None => self.hs.joined_members(&room, &self.bot()).await?,
        };
        let mut ghosts: HashSet<String> = HashSet::new();
        for m in &pending {
            let sender = self.sender_of(m);
            if sender != self.config.owner && !ghosts.contains(&sender) {
                let handle = if m.from_me() { self.config.own_handles.first().cloned().unwrap_or_default() } else { m.sender.clone() };
                self.ensure_ghost(&handle).await?;
                ghosts.insert(sender.clone());
            }
            self.ensure_member(&room, &sender, &mut members).await?;
            let (event_type, content) = self.event_for(m).await?;
            let txn = txn_id(&m.guid);
            self.store.begin_delivery(&m.guid, &chat.chat_id, &txn).await?;
            let event_id = match self.hs.send(&room, &sender, event_type, &txn, Some(m.ts_ms), &content).await {
                // The sender already has this reaction on that message (iMessage toggles a
                // tapback, so an add, a removal and the same add again reach us as two adds
                // while removals are not yet redactions): the message goes in as text instead,
                // never lost. Its own txn id: a homeserver may remember the refused one. (After a
                // crash the in-flight check finds either form by its guid.)
                Err(e) if event_type == "m.reaction" && e.errcode() == Some("M_DUPLICATE_ANNOTATION") => {
                    tracing::debug!(guid = %m.guid, "reaction already there; sent as text");
                    let (text_type, text) = Self::text_event(m);
                    self.hs.send(&room, &sender, text_type, &format!("{txn}-text"), Some(m.ts_ms), &text).await?
                }
                other => other?,
            };
            self.store.finish_delivery(&m.guid, event_id.as_str()).await?;
            report.lock().await.sent += 1;
            progress.sent(&chat.chat_id);
        }
        progress.room_finished(&chat.chat_id);
        Ok(())
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
                if let (Some(guid), Some(event_id)) = (e.guid, e.event_id) {
                    self.store.begin_delivery(&guid, chat_id, &txn_id(&guid)).await?;
                    self.store.finish_delivery(&guid, &event_id).await?;
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
            self.hs.register(crate::ghost::BOT_LOCALPART).await?;
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
