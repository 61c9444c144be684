//! Bringing a room in line with records that changed after their message was delivered.
//!
//! Why: iMessage lets a sender unsend a message or a part of it and edit it again later, and a
//! message can be deleted; CloudKit then serves the record again (or a deletion). The room
//! already holds the message's events and is append-only, so the change becomes events of its
//! own, as on the iPhone: the events of a deleted or unsent message (or of an unsent part) are
//! redacted, and each edit the room has not seen yet is an `m.replace` of its part. The store
//! notes which delivered messages changed (`Store::revised`); a revision is done once the room
//! matches the record, and repeating one (after a crash) changes nothing more: each redaction
//! has its own ledger row (`{key}/redacted`), each new edit its key (`{guid}/e{n}`).

use std::collections::HashSet;

use imessage::records::MessageRecord;

use crate::delivery::{Deliverer, DeliveryReport};
use crate::keys::txn_id;
use crate::keys::{NO_EVENT, PART_KEY};
use crate::render::{self, Plan};
use crate::send::Outgoing;
use crate::Result;

/// Suffix of the ledger row of a redaction the bridge made of the event keyed before it.
const REDACTED: &str = "/redacted";

/// One event a message put into the room, as the room has it now.
struct ShownEvent {
    key: String,
    event_id: String,
    sender: String,
    /// The part it shows (None for a reaction).
    part: Option<i64>,
    /// An `m.replace` of the part's event.
    is_edit: bool,
}

impl Deliverer {
    /// Applies every noted revision of the chat's delivered messages.
    pub(crate) async fn apply_revisions(&self, room: &str, chat_id: &str, report: &mut DeliveryReport) -> Result<()> {
        for (guid, current) in self.store.revised(chat_id).await? {
            self.revise(room, chat_id, &guid, current.as_ref(), report).await?;
            self.store.finish_revision(&guid).await?;
        }
        Ok(())
    }

    /// The message's events that are still in the room (not redacted), keyed as delivered.
    async fn shown_events(&self, room: &str, guid: &str) -> Result<Vec<ShownEvent>> {
        let keys = self.store.delivered_keys(guid).await?;
        let redacted: HashSet<&str> = keys.iter().filter_map(|(k, _)| k.strip_suffix(REDACTED)).collect();
        let mut shown = Vec::new();
        for (key, event_id) in &keys {
            // Not events of the message's own: redactions the bridge made, and rows of nothing.
            if event_id == NO_EVENT || key.ends_with(REDACTED) || key.ends_with("/replaces") || redacted.contains(key.as_str()) {
                continue;
            }
            let event = self.hs.event(room, &self.bot(), event_id).await?;
            let content = &event["content"];
            let kind = event["type"].as_str().unwrap_or_default();
            // Redactions (the record of a removed tapback) and events already redacted.
            if !matches!(kind, "m.room.message" | "m.reaction" | "m.sticker") || content.as_object().is_none_or(|c| c.is_empty()) {
                continue;
            }
            let is_edit = content["m.relates_to"]["rel_type"] == "m.replace";
            let part = if kind == "m.reaction" { None } else { Some(content[PART_KEY].as_i64().unwrap_or(0)) };
            shown.push(ShownEvent {
                key: key.clone(),
                event_id: event_id.clone(),
                sender: event["sender"].as_str().unwrap_or_default().to_string(),
                part,
                is_edit,
            });
        }
        Ok(shown)
    }

    /// Makes the room show message `guid` as its record `current` says (None: deleted).
    async fn revise(&self, room: &str, chat_id: &str, guid: &str, current: Option<&MessageRecord>, report: &mut DeliveryReport) -> Result<()> {
        let shown = self.shown_events(room, guid).await?;
        let plan = current.map(|m| render::plan(m, &|h| crate::ghost::ghost_user_id(h, &self.config.domain)));
        // The parts that stay; None when nothing of the message does.
        let keep: Option<HashSet<i64>> = match &plan {
            Some(Plan::Message { parts, .. }) => Some(parts.iter().map(|p| p.part).collect()),
            // A tapback's record changed: its reaction stays as it is.
            Some(Plan::React { .. } | Plan::Unreact { .. }) => return Ok(()),
            Some(Plan::Nothing { .. }) | None => None,
        };
        let why = if current.is_none() { "deleted" } else { "unsent" };
        for e in &shown {
            let goes = match &keep {
                None => true,
                Some(keep) => e.part.is_some_and(|p| !keep.contains(&p)),
            };
            if goes {
                self.redact_shown(room, chat_id, e, why).await?;
                report.redactions += 1;
            }
        }
        let (Some(m), Some(Plan::Message { edits, .. }), Some(keep)) = (current, plan, keep) else { return Ok(()) };
        // Edits the room has not seen: the plan lists every edit in order, the room has the first ones.
        let seen = shown.iter().filter(|e| e.is_edit).count();
        let sender = self.sender_of(m);
        for (n, edit) in edits.into_iter().enumerate().skip(seen) {
            let original = shown.iter().find(|e| !e.is_edit && e.part == Some(edit.part));
            let Some(original) = original.filter(|_| keep.contains(&edit.part)) else { continue };
            let content = render::edit_content(&original.event_id, &edit.body);
            let out = Outgoing { key: format!("{guid}/e{n}"), event_type: "m.room.message", content, ts_ms: edit.ts_ms };
            self.send_keyed(room, chat_id, &sender, out).await?;
            report.edits += 1;
        }
        Ok(())
    }

    /// Redacts one event, as its sender (who may have left the room: then as the bot), once.
    async fn redact_shown(&self, room: &str, chat_id: &str, e: &ShownEvent, why: &str) -> Result<()> {
        let key = format!("{}{REDACTED}", e.key);
        let txn = txn_id(&key);
        self.store.begin_delivery(&key, chat_id, &txn).await?;
        let reason = Some(why);
        let id = match self.hs.redact(room, &e.sender, &e.event_id, &txn, reason).await {
            Ok(id) => id,
            Err(err) if err.errcode() == Some("M_FORBIDDEN") => self.hs.redact(room, &self.bot(), &e.event_id, &txn, reason).await?,
            Err(err) => return Err(err),
        };
        self.store.finish_delivery(&key, id.as_str()).await?;
        Ok(())
    }
}
