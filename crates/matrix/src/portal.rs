//! Portal rooms: creating a chat's room once, seating its members, finding rooms an interrupted
//! run created but never recorded.
//!
//! A portal is created by the bot with the chat's *current* name, the owner and the
//! participants' ghosts. A DM is created as one (`is_direct`, the contact invited by
//! `createRoom`, `m.direct` for the owner), and the bot is a functional member so clients name
//! the room after the people in it. `createRoom` is sent once: a request that fails without an
//! answer may still have made the room, which the `m.bridge` state search then adopts.
//!
//! Each portal has an alias derived from its chat id, claimed with `PUT /directory/room` once
//! the room exists: the first room to hold it is the chat's, so a second room made by a run that
//! died mid-createRoom is given up. It is never the room's `m.room.canonical_alias` (clients
//! would name the room after it instead of its members); rooms of older versions that carry one
//! have it emptied at start. Ghosts get their names and photos before they are invited (see
//! `profiles.rs`), and a DM's contact is invited once, by `createRoom`.

use std::collections::HashSet;

use imessage::records::STYLE_GROUP;
use serde_json::{json, Value};
use store::{Chat, Portal};

use crate::delivery::{history_rule_id, txn_id, Deliverer};
use crate::ghost::{ghost_localpart, ghost_user_id};
use crate::Result;

/// The bridge bot's display name.
const BOT_DISPLAY_NAME: &str = "iMessage bridge";

impl Deliverer {
    /// Registers a ghost and gives it its profile (name and photo, see `profiles.rs`), once per
    /// run, before it is invited anywhere: its first membership already shows the name.
    pub(crate) async fn ensure_ghost(&self, handle: &str) -> Result<String> {
        let user = ghost_user_id(handle, &self.config.domain);
        if self.known_users.lock().await.contains(&user) {
            return Ok(user);
        }
        self.hs.register(&ghost_localpart(handle)).await?;
        self.apply_profile(handle, &user, true, &mut crate::profiles::ProfileReport::default()).await?;
        self.known_users.lock().await.insert(user.clone());
        Ok(user)
    }

    /// Makes sure `user` is in the room (invited by the bot, then joined).
    pub(crate) async fn ensure_member(&self, room: &str, user: &str, members: &mut HashSet<String>) -> Result<()> {
        if members.contains(user) {
            return Ok(());
        }
        self.hs.invite(room, &self.bot(), user).await?;
        self.hs.join(room, user).await?;
        members.insert(user.to_string());
        Ok(())
    }

    /// Creates the chat's room with its members; returns the portal and who is joined.
    pub(crate) async fn create_portal(&self, chat: &Chat) -> Result<(Portal, HashSet<String>)> {
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
                return self.adopted_portal(chat).await?.ok_or(e);
            }
            Err(e) => return Err(e),
        };
        store::crash_point("after-create-room");
        // The portal alias, claimed after the room exists and never published in it (clients
        // would name the room after it): the first room to claim it is the chat's, so a second
        // room (a createRoom of a run that stopped while it was being served) is given up.
        if !self.claim_alias(&chat.chat_id, &room).await? {
            tracing::warn!(chat = %chat.chat_id, room, "another room of this chat holds its alias; leaving the new one");
            if let Some(contact) = &contact {
                self.hs.leave(&room, contact).await?;
            }
            self.hs.leave(&room, &bot).await?;
            let fail = || crate::MatrixError::BadResponse { what: "portal alias".into(), detail: format!("names a room that is not {}'s", chat.chat_id) };
            return self.adopted_portal(chat).await?.ok_or_else(fail);
        }
        let portal = Portal { chat_id: chat.chat_id.clone(), room_id: room.clone(), name: chat.display_name.clone() };
        self.store.save_portal(&portal).await?;
        tracing::info!(chat = %chat.chat_id, room = %room, name = ?chat.display_name, "portal created");
        // Mute the owner's notifications for the room before they are in it (their invite
        // included); the history's last send lifts it (see `deliver_chat`).
        if self.config.double_puppet {
            self.ensure_owner().await?;
            self.hs.mute_room_override(&self.config.owner, &history_rule_id(&room), &room).await?;
        }
        let mut members = HashSet::from([bot.clone()]);
        // The DM's contact was invited by createRoom (with is_direct): joined, not invited again.
        if let Some(contact) = &contact {
            self.hs.join(&room, contact).await?;
            members.insert(contact.clone());
        }
        self.seat_members(&portal, chat, &mut members).await?;
        if let (Some(contact), true) = (&contact, self.config.double_puppet) {
            self.mark_direct(contact, &room).await?;
        }
        Ok((portal, members))
    }

    /// The `users` of a portal's power levels: the owner, and the bot where the room version
    /// needs it. Before version 12 the override replaces the creator's entry, so the bot must
    /// be listed; from 12 on the creator has power by being the creator and must not be.
    pub(crate) async fn power_users(&self) -> Result<Value> {
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

    /// The owner is in our namespace: makes sure the account exists before acting as it.
    pub(crate) async fn ensure_owner(&self) -> Result<()> {
        let owner = &self.config.owner;
        if self.known_users.lock().await.contains(owner) {
            return Ok(());
        }
        if let Some(local) = owner.strip_prefix('@').and_then(|o| o.split(':').next()) {
            self.hs.register(local).await?;
        }
        self.known_users.lock().await.insert(owner.clone());
        Ok(())
    }

    /// Registers the bot and gives it a display name, once per run.
    pub(crate) async fn ensure_bot(&self) -> Result<()> {
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
    pub(crate) async fn mark_direct(&self, contact: &str, room: &str) -> Result<()> {
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
    pub(crate) async fn seat_members(&self, portal: &Portal, chat: &Chat, members: &mut HashSet<String>) -> Result<()> {
        let bot = self.bot();
        if self.config.double_puppet {
            self.ensure_owner().await?;
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

    /// Makes the room's ghosts the chat's participants now: who joined the chat joins the room,
    /// who left it leaves (a former participant's ghost also came in to send their history).
    /// The owner, the bot and the ghost of the account's own handle stay.
    pub(crate) async fn follow_participants(&self, room: &str, chat: &Chat, members: &mut HashSet<String>) -> Result<()> {
        let domain = &self.config.domain;
        let mut wanted: HashSet<String> = chat.participants.iter().map(|h| ghost_user_id(h, domain)).collect();
        wanted.extend(self.config.own_handles.iter().map(|h| ghost_user_id(h, domain)));
        for handle in &chat.participants {
            if !members.contains(&ghost_user_id(handle, domain)) {
                let ghost = self.ensure_ghost(handle).await?;
                self.ensure_member(room, &ghost, members).await?;
            }
        }
        let ghost_prefix = format!("@{}", crate::ghost::GHOST_PREFIX);
        let suffix = format!(":{domain}");
        let leaving: Vec<String> = members.iter().filter(|u| u.starts_with(&ghost_prefix) && u.ends_with(&suffix) && !wanted.contains(*u)).cloned().collect();
        for user in leaving {
            self.hs.leave(room, &user).await?;
            members.remove(&user);
            tracing::info!(room, user, "left the portal: no longer in the chat");
        }
        Ok(())
    }

    /// Finds rooms the bot created for a chat but never recorded (the bridge stopped between
    /// `createRoom` and saving the portal, or its database was replaced) and records them, so a
    /// restart adopts the room instead of creating a second one. Only rooms the bot is in that no portal names are looked at,
    /// and a room counts only if its `m.bridge` state names a chat we have. Returns how many.
    pub(crate) async fn adopt_unrecorded_rooms(&self, chats: &[Chat]) -> Result<u64> {
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
            // A run that stopped right after createRoom left the room without its alias.
            if !self.claim_alias(chat_id, &room).await? {
                tracing::warn!(chat = chat_id, room = %room, "the portal alias names another room of this chat");
            }
            tracing::info!(chat = chat_id, room = %room, "adopted a room created before an interruption");
            let mut members = self.hs.joined_members(&room, &bot).await?;
            self.seat_members(&portal, chat, &mut members).await?;
            adopted += 1;
        }
        Ok(adopted)
    }
}

impl Deliverer {
    /// The chat's room found among the rooms the bot is in (see [`Self::adopt_unrecorded_rooms`])
    /// with who is joined, None if there is none.
    async fn adopted_portal(&self, chat: &Chat) -> Result<Option<(Portal, HashSet<String>)>> {
        self.adopt_unrecorded_rooms(std::slice::from_ref(chat)).await?;
        let Some(p) = self.store.portal(&chat.chat_id).await? else { return Ok(None) };
        let members = self.hs.joined_members(&p.room_id, &self.bot()).await?;
        Ok(Some((p, members)))
    }

    /// Points the chat's portal alias at `room` (with `PUT /directory/room`, so no
    /// `m.room.canonical_alias` is sent). False when it names another room the bot is in: that
    /// one is the chat's. A room the bot is not in (it left it, or was removed) is no portal any
    /// more, so the alias moves to `room`.
    pub(crate) async fn claim_alias(&self, chat_id: &str, room: &str) -> Result<bool> {
        let bot = self.bot();
        let alias = format!("#{}:{}", crate::ghost::portal_alias_localpart(chat_id), self.config.domain);
        if self.hs.set_alias(&bot, &alias, room).await? {
            return Ok(true);
        }
        match self.hs.resolve_alias(&bot, &alias).await? {
            Some(held) if held == room => return Ok(true),
            Some(held) if self.hs.joined_rooms(&bot).await?.contains(&held) => return Ok(false),
            _ => {}
        }
        tracing::warn!(chat = chat_id, alias, "the portal alias names a room the bridge is not in; moving it to the new room");
        self.hs.delete_alias(&bot, &alias).await?;
        self.hs.set_alias(&bot, &alias, room).await
    }

    /// Rooms bridged by older versions carry their alias as `m.room.canonical_alias`, and
    /// clients name them after it: it is emptied (`{}`), once per room; later starts find it
    /// empty and send nothing. Returns how many rooms were changed. A room that cannot be read
    /// is logged and left for the next start.
    pub(crate) async fn clear_canonical_aliases(&self) -> Result<u64> {
        let bot = self.bot();
        let mut cleared = 0;
        for portal in self.store.portals().await? {
            let room = portal.room_id.as_str();
            let content = match self.hs.state(room, &bot, "m.room.canonical_alias", "").await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(room, "cannot read the room's canonical alias: {e}");
                    continue;
                }
            };
            let published =
                content.is_some_and(|c| c["alias"].as_str().is_some_and(|a| !a.is_empty()) || c["alt_aliases"].as_array().is_some_and(|a| !a.is_empty()));
            if published {
                self.hs.put_state(room, &bot, "m.room.canonical_alias", "", &json!({})).await?;
                tracing::info!(room, chat = %portal.chat_id, "the room's alias is no longer its canonical alias (clients named the room after it)");
                cleared += 1;
            }
        }
        Ok(cleared)
    }
}
