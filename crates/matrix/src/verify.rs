//! `verify`: page every portal backwards from the live end with `GET /messages?dir=b`, as the
//! owner, exactly as a client scrolling up does, until the room's creation — and compare what is
//! reachable with what should be there. Reachability by pagination is the only measure of
//! delivery that matters to a person; "the event ids exist" is not.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use store::Store;

use crate::client::HomeserverClient;
use crate::delivery::Deliverer;
use crate::{Result, GUID_KEY};

/// Events per `/messages` request. Synapse on SQLite spends ~10 s of database time on a page of
/// 1000 in a 25k-event room, far more per event than on smaller pages.
const PAGE: u32 = 250;
/// Safety bound on pages per room.
const MAX_PAGES: usize = 100_000;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChatVerification {
    pub chat_id: String,
    pub room_id: Option<String>,
    pub name: Option<String>,
    /// Messages that should be in the room (stored, not system records).
    pub expected: u64,
    /// Expected messages found by back-pagination.
    pub reachable: u64,
    pub missing: u64,
    /// Extra copies of a guid.
    pub duplicates: u64,
    /// Adjacent events (in timeline order) whose timestamps go backwards; events of messages
    /// delivered late (marked with their original time) are counted in `late` instead.
    pub out_of_order: u64,
    pub late: u64,
    /// Messages not sent by the Matrix user that should send them.
    pub wrong_sender: u64,
    /// Non-state events sent by the bridge bot.
    pub bot_messages: u64,
    pub name_ok: bool,
    /// Pagination reached `m.room.create`.
    pub reached_start: bool,
    /// Media events (`m.image`, `m.video`, `m.audio`, `m.file`) and notices standing in for
    /// attachments, reactions standing, edits (`m.replace`) and replies found.
    pub media: u64,
    pub attachment_notices: u64,
    pub reactions: u64,
    pub edits: u64,
    pub replies: u64,
    /// Events that should not be visible (removed tapbacks, unsent messages and parts, messages
    /// deleted since) but are.
    pub unexpected: u64,
    /// Edited parts whose last `m.replace` in the room does not carry the record's final text
    /// (or that the room edits although the record has no edit).
    pub edits_wrong: u64,
    /// Reactions on another message than their tapback names, or with another key.
    pub reactions_wrong: u64,
    /// Replies whose `m.in_reply_to` is not the event of the message the record answers.
    pub replies_wrong: u64,
    /// Media events whose file cannot be downloaded from the media repository, or whose bytes
    /// are not the source's (SHA-256) or, for a converted file, not of the format it claims.
    pub media_bad: u64,
    /// Stored messages that must show (not system records, not unsent, not tapbacks) with no
    /// event a client shows, found without the delivery plan (see `visible.rs`).
    pub invisible: u64,
    /// Pieces of split texts (each marked `[i, n]`) that are not in the room.
    pub chunks_missing: u64,
    /// The owner's unread notifications in the room (history leaves none; live messages that
    /// arrived since the owner last read do count), None when the bridge cannot act as the owner.
    pub unread_notifications: Option<u64>,
    /// Ghost members whose display name in the room is not their profile's (the contact's
    /// name, else the formatted handle; see `verify_names.rs`).
    pub names_wrong: u64,
    /// 1 when the name a client computes for the room is an alias, a user id or "Empty Room".
    pub alias_named: u64,
    /// The room's name as a client computes it (for the owner).
    pub shown_name: Option<String>,
    /// Why the room could not be read, if it could not (the other rooms are still verified).
    pub error: Option<String>,
}

impl ChatVerification {
    pub fn ok(&self) -> bool {
        self.room_id.is_some()
            && self.error.is_none()
            && self.missing == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.wrong_sender == 0
            && self.bot_messages == 0
            && self.name_ok
            && self.reached_start
            && self.unexpected == 0
            && self.edits_wrong == 0
            && self.reactions_wrong == 0
            && self.replies_wrong == 0
            && self.media_bad == 0
            && self.invisible == 0
            && self.chunks_missing == 0
            && self.names_wrong == 0
            && self.alias_named == 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub chats: Vec<ChatVerification>,
}

/// A timeline event as a client sees it.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    pub event_id: Option<String>,
    pub event_type: String,
    pub sender: String,
    pub ts: i64,
    pub guid: Option<String>,
    /// The event's ledger key (events since part events exist).
    pub key: Option<String>,
    /// The message part it shows.
    pub part: Option<i64>,
    /// `m.relates_to.rel_type` (`m.replace` for edits, `m.annotation` for reactions).
    pub rel_type: Option<String>,
    pub is_state: bool,
    /// The whole event, for checks that look at its content.
    pub raw: serde_json::Value,
}

/// Pages a room backwards from the live end as `user`. Returns events oldest first and whether
/// the room's creation was reached.
pub async fn paginate(hs: &HomeserverClient, room: &str, user: &str) -> Result<(Vec<SeenEvent>, bool)> {
    let mut events = Vec::new();
    let mut from: Option<String> = None;
    let mut reached_start = false;
    for _ in 0..MAX_PAGES {
        let page = hs.messages(room, user, from.as_deref(), "b", PAGE).await?;
        for e in &page.chunk {
            let event_type = e["type"].as_str().unwrap_or("").to_string();
            if event_type == "m.room.create" {
                reached_start = true;
            }
            events.push(SeenEvent {
                event_id: e["event_id"].as_str().map(str::to_string),
                sender: e["sender"].as_str().unwrap_or("").to_string(),
                ts: e["origin_server_ts"].as_i64().unwrap_or(0),
                guid: e["content"][GUID_KEY].as_str().map(str::to_string),
                key: e["content"][crate::send::LEDGER_KEY].as_str().map(str::to_string),
                part: e["content"][crate::send::PART_KEY].as_i64(),
                rel_type: e["content"]["m.relates_to"]["rel_type"].as_str().map(str::to_string),
                is_state: e.get("state_key").is_some(),
                event_type,
                raw: e.clone(),
            });
        }
        match page.end {
            Some(end) if !page.chunk.is_empty() && Some(&end) != from.as_ref() => from = Some(end),
            _ => break,
        }
    }
    events.reverse();
    Ok((events, reached_start))
}

/// Which of a chat's messages the room should show (their GUIDs) and which must not be visible:
/// by the delivery plan, with tapbacks applied in order (removed and replaced reactions are
/// redacted; a tapback on a message the room does not show has nothing to react to).
pub fn expected_in_room(planned: &[Planned<'_>]) -> (Vec<String>, std::collections::HashSet<String>) {
    use crate::render::{Plan, Reactions};
    let mut shown = std::collections::HashSet::new();
    let mut reactions = Reactions::default();
    let mut tapbacks = Vec::new();
    for (m, p) in planned {
        match p {
            Plan::Message { .. } => {
                shown.insert(m.guid.clone());
            }
            Plan::React { target, .. } => {
                // Only a reaction on a message the room shows reaches the reaction state.
                if shown.contains(target) {
                    reactions.apply(m, p);
                }
                tapbacks.push(m.guid.clone());
            }
            Plan::Unreact { .. } => {
                reactions.apply(m, p);
            }
            Plan::Nothing { .. } => {}
        }
    }
    let standing: std::collections::HashSet<&str> = reactions.standing().collect();
    let mut expected: Vec<String> = planned.iter().filter(|(m, _)| shown.contains(&m.guid)).map(|(m, _)| m.guid.clone()).collect();
    expected.extend(tapbacks.iter().filter(|g| standing.contains(g.as_str())).cloned());
    let hidden = planned.iter().map(|(m, _)| &m.guid).filter(|g| !shown.contains(*g) && !standing.contains(g.as_str())).cloned().collect();
    (expected, hidden)
}

/// A chat's messages in time order, each with its delivery plan (planned once per verify).
pub type Planned<'a> = (&'a imessage::records::MessageRecord, crate::render::Plan);

/// Per message the room shows: the parts it shows, and the final text of each edited part.
type ShownParts = (HashMap<String, std::collections::HashSet<i64>>, HashMap<(String, i64), String>);

fn shown_parts(planned: &[Planned<'_>]) -> ShownParts {
    let mut parts = HashMap::new();
    let mut final_texts = HashMap::new();
    for (m, plan) in planned {
        if let crate::render::Plan::Message { parts: p, edits, .. } = plan {
            parts.insert(m.guid.clone(), p.iter().map(|p| p.part).collect());
            for e in edits {
                final_texts.insert((m.guid.clone(), e.part), e.body.clone());
            }
        }
    }
    (parts, final_texts)
}

/// Reactions and replies that point elsewhere than their records say: a reaction must be on an
/// event of the message its tapback names, with the tapback's key (a sticker's: its image); a
/// reply's `m.in_reply_to` must be an event of the message it answers.
fn relations_wrong(events: &[SeenEvent], plans: &HashMap<&str, &crate::render::Plan>, part_of: &HashMap<&str, (String, i64)>) -> (u64, u64) {
    use crate::render::{Plan, ReactionKey};
    let (mut reactions, mut replies) = (0, 0);
    for e in events {
        let Some(plan) = e.guid.as_deref().and_then(|g| plans.get(g)) else { continue };
        let rel = &e.raw["content"]["m.relates_to"];
        let on = |field: &serde_json::Value| field.as_str().and_then(|id| part_of.get(id)).map(|(g, _)| g.as_str());
        match plan {
            Plan::React { target, key, .. } if e.event_type == "m.reaction" => {
                let key_ok = match key {
                    ReactionKey::Emoji(k) => rel["key"].as_str() == Some(k.as_str()),
                    ReactionKey::Sticker { .. } => rel["key"].as_str().is_some_and(|k| k.starts_with("mxc://") || k == "🖼️"),
                };
                // (A target redacted since — deleted, unsent — is no longer anyone's event.)
                if on(&rel["event_id"]).is_some_and(|g| g != target.as_str()) || !key_ok {
                    reactions += 1;
                }
            }
            Plan::Message { reply_to, .. } => {
                let to = &rel["m.in_reply_to"]["event_id"];
                if on(to).is_some_and(|g| Some(g) != reply_to.as_deref()) {
                    replies += 1;
                }
            }
            _ => {}
        }
    }
    (reactions, replies)
}

/// Whether a media event's file downloads and is the source's: the same SHA-256 as the stored
/// file when it went in as it is, the right magic bytes when it was converted (HEIC → JPEG or
/// PNG, CAF → Ogg).
async fn media_matches(deliverer: &Deliverer, reader: &str, e: &SeenEvent, by_guid: &HashMap<&str, &imessage::records::MessageRecord>) -> Result<bool> {
    use sha2::Digest;
    let c = &e.raw["content"];
    let (Some(url), Some(m)) = (c["url"].as_str(), e.guid.as_deref().and_then(|g| by_guid.get(g))) else { return Ok(false) };
    let part = e.part.unwrap_or(0);
    let transfer = m.content.parts.iter().find_map(|p| match p {
        imessage::records::ContentPart::Attachment { part: Some(n), guid: Some(g) } if *n == part => Some(g.as_str()),
        _ => None,
    });
    let Some((record, Some(file))) = (match transfer {
        Some(t) => deliverer.store.attachment_by_transfer_guid(t).await?,
        None => None,
    }) else {
        return Ok(false);
    };
    let Ok(bytes) = deliverer.hs.download(reader, url, deliverer.config.media.max_bytes as usize + 1).await else { return Ok(false) };
    let mime = c["info"]["mimetype"].as_str().unwrap_or("");
    // Sent as it is (under the sender's MIME type, or as `application/octet-stream`).
    if record.mime_type.as_deref() == Some(mime) || mime == "application/octet-stream" {
        let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        return Ok(file.sha256.as_deref() == Some(sha.as_str()));
    }
    Ok(match mime {
        "image/jpeg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        "image/png" => bytes.starts_with(b"\x89PNG"),
        "audio/ogg" => bytes.starts_with(b"OggS"),
        _ => false,
    })
}

/// Verifies every chat in the store against its room.
pub async fn verify_all(deliverer: &Deliverer) -> Result<Verification> {
    let store: &dyn Store = deliverer.store.as_ref();
    let hs = &deliverer.hs;
    let bot = deliverer.bot();
    let reader = deliverer.config.owner.clone();
    let mut chats = Vec::new();
    let unread = match deliverer.config.double_puppet {
        true => Some(hs.unread_notifications(&reader).await?),
        false => None,
    };
    for chat in store.chats().await? {
        let messages: Vec<_> = store.messages_in_chat(&chat.chat_id).await?.into_iter().filter(|m| !m.is_system()).collect();
        let domain = &deliverer.config.domain;
        let planned: Vec<Planned> = messages.iter().map(|m| (m, crate::render::plan(m, &|h| crate::ghost::ghost_user_id(h, domain)))).collect();
        let (expected, hidden) = expected_in_room(&planned);
        let mut v = ChatVerification {
            chat_id: chat.chat_id.clone(),
            room_id: None,
            name: chat.display_name.clone(),
            expected: expected.len() as u64,
            reachable: 0,
            missing: expected.len() as u64,
            duplicates: 0,
            out_of_order: 0,
            late: 0,
            wrong_sender: 0,
            bot_messages: 0,
            name_ok: false,
            reached_start: false,
            media: 0,
            attachment_notices: 0,
            reactions: 0,
            edits: 0,
            replies: 0,
            unexpected: 0,
            edits_wrong: 0,
            reactions_wrong: 0,
            replies_wrong: 0,
            media_bad: 0,
            invisible: messages.iter().filter(|m| crate::visible::must_show(m)).count() as u64,
            chunks_missing: 0,
            unread_notifications: None,
            names_wrong: 0,
            alias_named: 0,
            shown_name: None,
            error: None,
        };
        let Some(portal) = store.portal(&chat.chat_id).await? else {
            chats.push(v);
            continue;
        };
        v.room_id = Some(portal.room_id.clone());
        v.unread_notifications = unread.as_ref().map(|u| u.get(&portal.room_id).copied().unwrap_or(0));
        let (events, reached_start) = match paginate(hs, &portal.room_id, &reader).await {
            Ok(page) => page,
            Err(e) => {
                v.error = Some(e.to_string());
                chats.push(v);
                continue;
            }
        };
        v.reached_start = reached_start;
        let (parts, final_texts) = shown_parts(&planned);
        // Each part event by id, and the text of the last edit of each part, in timeline order.
        let mut part_of: HashMap<&str, (String, i64)> = HashMap::new();
        let mut edited: HashMap<(String, i64), String> = HashMap::new();
        let mut seen: HashMap<(String, i64), u64> = HashMap::new();
        // The pieces of split texts seen, per part: how many there should be, which are there.
        let mut chunks: HashMap<(String, i64), (u64, std::collections::BTreeSet<u64>)> = HashMap::new();
        let mut last_ts = i64::MIN;
        let senders: BTreeMap<&str, String> = messages.iter().map(|m| (m.guid.as_str(), deliverer.sender_of(m))).collect();
        for e in &events {
            let content = &e.raw["content"];
            // The one notice the bot answers the owner's typing with is the bridge speaking
            // on purpose (see `inbound.rs`), not timeline noise.
            if e.sender == bot && !e.is_state && content[crate::inbound::NOTICE_KEY].is_null() {
                v.bot_messages += 1;
            }
            // What the owner typed in the room is theirs, not the bridge's to account for.
            if e.guid.is_none() && content[crate::send::LEDGER_KEY].is_null() {
                continue;
            }
            match (content["msgtype"].as_str(), e.rel_type.as_deref()) {
                (_, Some("m.replace")) => {
                    v.edits += 1;
                    let target = content["m.relates_to"]["event_id"].as_str().and_then(|id| part_of.get(id));
                    if let (Some(target), Some(body)) = (target, content["m.new_content"]["body"].as_str()) {
                        edited.insert(target.clone(), body.to_string());
                    }
                }
                (Some("m.image" | "m.video" | "m.audio" | "m.file"), _) => v.media += 1,
                (Some("m.notice"), _) => v.attachment_notices += 1,
                _ => {}
            }
            if e.event_type == "m.reaction" {
                v.reactions += 1;
            }
            if !content["m.relates_to"]["m.in_reply_to"]["event_id"].is_null() {
                v.replies += 1;
            }
            let Some(guid) = e.guid.as_deref() else { continue };
            let slot = (guid.to_string(), if e.event_type == "m.reaction" { -1 } else { e.part.unwrap_or(0) });
            // Not to be seen: a hidden message, a message the store no longer has (deleted
            // since), a part the message does not show (unsent).
            let part_hidden = e.event_type != "m.reaction" && parts.get(guid).is_some_and(|p| !p.contains(&slot.1));
            if hidden.contains(guid) || !senders.contains_key(guid) || part_hidden {
                v.unexpected += 1;
            }
            // A piece of a split text: its place is counted apart; the first piece is the part's.
            let chunk = content[crate::send::CHUNK_KEY].as_array().and_then(|c| Some((c.first()?.as_u64()?, c.get(1)?.as_u64()?)));
            if let Some((index, of)) = chunk {
                let entry = chunks.entry(slot.clone()).or_default();
                entry.0 = entry.0.max(of);
                if !entry.1.insert(index) {
                    v.duplicates += 1;
                }
            }
            if let (Some(id), true) = (e.event_id.as_deref(), e.event_type != "m.reaction" && chunk.is_none_or(|c| c.0 == 1)) {
                part_of.insert(id, slot.clone());
            }
            if chunk.is_none_or(|c| c.0 == 1) {
                *seen.entry(slot).or_default() += 1;
            }
            if !content[crate::send::LATE_KEY].is_null() {
                v.late += 1;
            } else {
                if e.ts < last_ts {
                    v.out_of_order += 1;
                }
                last_ts = e.ts;
            }
            if senders.get(guid).is_some_and(|s| s != &e.sender) {
                v.wrong_sender += 1;
            }
        }
        let by_guid: HashMap<&str, &imessage::records::MessageRecord> = messages.iter().map(|m| (m.guid.as_str(), m)).collect();
        let plans: HashMap<&str, &crate::render::Plan> = planned.iter().map(|(m, p)| (m.guid.as_str(), p)).collect();
        (v.reactions_wrong, v.replies_wrong) = relations_wrong(&events, &plans, &part_of);
        for e in events.iter().filter(|e| e.raw["content"]["url"].is_string()) {
            if !media_matches(deliverer, &reader, e, &by_guid).await? {
                v.media_bad += 1;
            }
        }
        v.edits_wrong = final_texts.iter().filter(|(slot, text)| edited.get(*slot) != Some(*text)).count() as u64
            + edited.keys().filter(|slot| !final_texts.contains_key(*slot)).count() as u64;
        v.duplicates += seen.values().map(|n| n.saturating_sub(1)).sum::<u64>();
        v.chunks_missing = chunks.values().map(|(of, have)| (1..=*of).filter(|i| !have.contains(i)).count() as u64).sum();
        v.invisible = crate::visible::invisible(&messages, &events);
        let found: std::collections::HashSet<&str> = seen.keys().map(|(g, _)| g.as_str()).collect();
        v.reachable = expected.iter().filter(|g| found.contains(g.as_str())).count() as u64;
        v.missing = v.expected - v.reachable;
        let room_name =
            hs.state(&portal.room_id, &reader, "m.room.name", "").await?.and_then(|c| c["name"].as_str().map(str::to_string)).filter(|n| !n.is_empty());
        v.name_ok = room_name == chat.display_name;
        let handles = chat.participants.iter().chain(messages.iter().map(|m| &m.sender)).chain(&deliverer.config.own_handles);
        let state = hs.room_state(&portal.room_id, &bot).await?;
        (v.names_wrong, v.alias_named, v.shown_name) = names_in_room(deliverer, &state, handles);
        chats.push(v);
    }
    Ok(Verification { ok: chats.iter().all(ChatVerification::ok), chats })
}

/// A room's `names_wrong`, `alias_named` and shown name, from its state (see `verify_names.rs`).
fn names_in_room<'a>(deliverer: &Deliverer, state: &[serde_json::Value], handles: impl Iterator<Item = &'a String>) -> (u64, u64, Option<String>) {
    let (domain, source) = (&deliverer.config.domain, deliverer.profiles());
    let expected: HashMap<String, String> =
        handles.map(|h| (crate::ghost::ghost_user_id(h, domain), crate::profiles::expected_name(source.as_deref(), h))).collect();
    let (prefix, suffix) = (format!("@{}", crate::ghost::GHOST_PREFIX), format!(":{domain}"));
    let is_ghost = |u: &str| u.starts_with(&prefix) && u.ends_with(&suffix);
    let shown = crate::verify_names::room_display_name(state, &deliverer.config.owner);
    (crate::verify_names::names_wrong(state, &expected, &is_ghost), u64::from(shown.alias_named()), Some(shown.name))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
