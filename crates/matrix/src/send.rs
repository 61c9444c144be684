//! Sending one planned message ([`crate::render::Plan`]): its part events (text, media), its
//! edits, its reaction or the redaction of one.
//!
//! Ledger keys: each event has its own ledger row, so an interrupted message resumes at the event
//! it stopped at. The message's last event is keyed by the message GUID (which is what marks the
//! message delivered); earlier ones by `{guid}/p{part}` and `{guid}/e{n}`. A message that puts
//! nothing into the room (unsent, a removal of a tapback that is not there, a tapback whose
//! target never reached the room) gets a row with [`NO_EVENT`], so it is not planned again.
//! Every event carries its key ([`LEDGER_KEY`]) so the in-flight check finds it after a crash;
//! part events and reactions also carry the message GUID ([`crate::GUID_KEY`]).

use std::path::PathBuf;

use imessage::records::{AttachmentRecord, MessageRecord};
use serde_json::{json, Value};
use store::FileState;

use crate::delivery::{Deliverer, DeliveryReport};
use crate::keys::txn_id;
use crate::render::{self, Effect, PartContent, Plan, ReactionKey};
use crate::{media, Result, GUID_KEY};

/// The content keys, where the bridge's users have always found them (defined in `keys.rs`).
pub use crate::keys::{CHUNK_KEY, LATE_KEY, LEDGER_KEY, NO_EVENT, PART_KEY, REFUSED_KEY};

/// The ledger key of part `part` of `guid` when it is not the message's last event.
pub fn part_key(guid: &str, part: i64) -> String {
    format!("{guid}/p{part}")
}

/// The ledger key of piece `index` (from 1) of a split part; the first piece is the part's.
fn chunk_key(guid: &str, part: i64, index: usize) -> String {
    match index {
        0 | 1 => part_key(guid, part),
        i => format!("{guid}/p{part}.{i}"),
    }
}

/// One event to send for a message.
pub(crate) struct Outgoing {
    pub key: String,
    pub event_type: &'static str,
    pub content: Value,
    pub ts_ms: i64,
}

impl Deliverer {
    /// The event of part `part` of message `guid`, if it is in the room.
    pub(crate) async fn part_event(&self, guid: &str, part: i64) -> Result<Option<String>> {
        for key in [part_key(guid, part), guid.to_string()] {
            if let Some(id) = self.store.delivered_event(&key).await?.filter(|id| id != NO_EVENT) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Sends one event under its ledger key (skipped when the ledger has it already).
    pub(crate) async fn send_keyed(&self, room: &str, chat_id: &str, sender: &str, out: Outgoing) -> Result<String> {
        if let Some(id) = self.store.delivered_event(&out.key).await? {
            return Ok(id);
        }
        let mut content = out.content;
        content[LEDGER_KEY] = json!(out.key);
        let txn = txn_id(&out.key);
        self.store.begin_delivery(&out.key, chat_id, &txn).await?;
        store::crash_point("before-send");
        let id = match self.hs.send(room, sender, out.event_type, &txn, Some(out.ts_ms), &content).await {
            Ok(id) => id,
            Err(e) if crate::refusal::is_permanent(&e) => {
                // Refused for good: a notice naming what was refused goes in its place (under the
                // same ledger key), so the room goes on. A notice refused too is the room's error.
                let (what, notice) = crate::refusal::notice(out.event_type, &content, &e);
                tracing::warn!(key = %out.key, chat = chat_id, "homeserver refused {what}: {e}; a notice goes in its place");
                let id = self.hs.send(room, sender, "m.room.message", &format!("{txn}-refused"), Some(out.ts_ms), &notice).await?;
                self.store.record_refusal(&out.key, chat_id, &what, &e.to_string()).await?;
                id
            }
            Err(e) => return Err(e),
        };
        store::crash_point("after-send");
        self.store.finish_delivery(&out.key, id.as_str()).await?;
        Ok(id.to_string())
    }

    /// Records that message `guid` puts nothing (more) into the room.
    pub(crate) async fn mark_done(&self, guid: &str, chat_id: &str, event_id: &str) -> Result<()> {
        self.store.begin_delivery(guid, chat_id, &txn_id(guid)).await?;
        self.store.finish_delivery(guid, event_id).await?;
        Ok(())
    }

    /// Sends message `m` as planned; `reactions` is the chat's tapback state before `m`.
    pub(crate) async fn send_message(
        &self,
        room: &str,
        sender: &str,
        m: &MessageRecord,
        reactions: &mut render::Reactions,
        late: bool,
        report: &mut DeliveryReport,
    ) -> Result<()> {
        let plan = render::plan(m, &|handle| crate::ghost::ghost_user_id(handle, &self.config.domain));
        let effect = reactions.apply(m, &plan);
        match plan {
            Plan::Nothing { why } => {
                tracing::debug!(guid = %m.guid, why, "nothing to show");
                self.mark_done(&m.guid, &m.chat_id, NO_EVENT).await
            }
            Plan::Message { parts, edits, reply_to } => self.send_parts(room, sender, m, parts, edits, reply_to, late, report).await,
            Plan::React { target, part, key } => {
                let Some(target_event) = self.part_event(&target, part).await? else {
                    report.orphan_tapbacks += 1;
                    return self.mark_done(&m.guid, &m.chat_id, NO_EVENT).await;
                };
                if let Some(Effect::Add { replaces: Some(old) }) = &effect {
                    self.redact_reaction(room, sender, old, &format!("{}/replaces", m.guid), report).await?;
                }
                let key = match key {
                    ReactionKey::Emoji(e) => e,
                    ReactionKey::Sticker { transfer_guid } => {
                        let found = self.store.attachment_by_transfer_guid(&transfer_guid).await?;
                        match self.upload_attachment(sender, found.as_ref()).await {
                            Ok(Some(content)) => content["url"].as_str().unwrap_or("🖼️").to_string(),
                            // Failed for now: the room backs off and tries again.
                            Err(e) if e.is_transient() => return Err(e),
                            _ => "🖼️".to_string(),
                        }
                    }
                };
                let mut content = json!({
                    "m.relates_to": { "rel_type": "m.annotation", "event_id": target_event, "key": key },
                    GUID_KEY: m.guid,
                });
                if late {
                    render::mark_late(&mut content, m.ts_ms);
                }
                let out = Outgoing { key: m.guid.clone(), event_type: "m.reaction", content, ts_ms: m.ts_ms };
                match self.send_keyed(room, &m.chat_id, sender, out).await {
                    Ok(_) => {
                        report.reactions += 1;
                        Ok(())
                    }
                    // The sender has this very reaction there already: nothing to add.
                    Err(e) if e.errcode() == Some("M_DUPLICATE_ANNOTATION") => {
                        report.duplicate_reactions += 1;
                        self.store.forget_delivery(&m.guid).await?;
                        self.mark_done(&m.guid, &m.chat_id, NO_EVENT).await
                    }
                    Err(e) => Err(e),
                }
            }
            Plan::Unreact { .. } => match effect {
                Some(Effect::Remove { removes }) => {
                    let id = self.redact_reaction(room, sender, &removes, &m.guid, report).await?;
                    self.mark_done(&m.guid, &m.chat_id, id.as_deref().unwrap_or(NO_EVENT)).await
                }
                _ => self.mark_done(&m.guid, &m.chat_id, NO_EVENT).await,
            },
        }
    }

    /// Redacts the reaction tapback `reaction_guid` added, keyed `key`; None if it never made it
    /// into the room.
    async fn redact_reaction(&self, room: &str, sender: &str, reaction_guid: &str, key: &str, report: &mut DeliveryReport) -> Result<Option<String>> {
        let Some(event) = self.store.delivered_event(reaction_guid).await?.filter(|id| id != NO_EVENT) else { return Ok(None) };
        if let Some(id) = self.store.delivered_event(key).await?.filter(|id| id != NO_EVENT) {
            return Ok(Some(id));
        }
        let id = self.hs.redact(room, sender, &event, &txn_id(key), Some("tapback removed")).await?;
        report.redactions += 1;
        Ok(Some(id.to_string()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts(
        &self,
        room: &str,
        sender: &str,
        m: &MessageRecord,
        parts: Vec<render::PartEvent>,
        edits: Vec<render::Edit>,
        reply_to: Option<String>,
        late: bool,
        report: &mut DeliveryReport,
    ) -> Result<()> {
        let reply_event = match &reply_to {
            Some(target) => self.part_event(target, 0).await?,
            None => None,
        };
        let count = parts.len() + edits.len();
        let key_of = |i: usize, fallback: String| if i + 1 == count { m.guid.clone() } else { fallback };
        let mut part_events: Vec<(i64, String)> = Vec::new();
        for (i, p) in parts.into_iter().enumerate() {
            let (event_type, mut content) = match p.content {
                PartContent::Text { body, html, link_preview } => ("m.room.message", render::text_content(&body, html.as_deref(), link_preview.as_ref())),
                PartContent::Attachment { transfer_guid } => ("m.room.message", self.attachment_content(sender, &transfer_guid, report).await?),
                PartContent::Notice { body } => ("m.room.message", json!({ "msgtype": "m.notice", "body": body })),
            };
            content[GUID_KEY] = json!(m.guid);
            content[PART_KEY] = json!(p.part);
            if let Some((index, of)) = p.chunk {
                content[CHUNK_KEY] = json!([index, of]);
            }
            if late {
                render::mark_late(&mut content, m.ts_ms);
            }
            if i == 0 {
                if let Some(target) = &reply_event {
                    content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": target } });
                }
            }
            let key = key_of(i, chunk_key(&m.guid, p.part, p.chunk.map_or(0, |c| c.0)));
            let out = Outgoing { key, event_type, content, ts_ms: m.ts_ms };
            let id = self.send_keyed(room, &m.chat_id, sender, out).await?;
            // An edit replaces the first piece of a split part.
            if p.chunk.is_none_or(|c| c.0 == 1) {
                part_events.push((p.part, id));
            }
        }
        let first_edit = part_events.len();
        for (n, e) in edits.into_iter().enumerate() {
            let Some((_, original)) = part_events.iter().find(|(part, _)| *part == e.part) else { continue };
            let content = render::edit_content(original, &e.body);
            let out = Outgoing { key: key_of(first_edit + n, format!("{}/e{n}", m.guid)), event_type: "m.room.message", content, ts_ms: e.ts_ms };
            self.send_keyed(room, &m.chat_id, sender, out).await?;
            report.edits += 1;
        }
        Ok(())
    }

    /// An attachment's stored file (as `Store::attachment_by_transfer_guid` found it), prepared
    /// and uploaded: the media event's content, None when there is no stored file.
    async fn upload_attachment(&self, sender: &str, found: Option<&(AttachmentRecord, Option<store::AttachmentFile>)>) -> Result<Option<Value>> {
        let Some((record, Some(file))) = found else { return Ok(None) };
        let Some(sha) = file.sha256.as_deref().filter(|_| file.state == FileState::Stored) else { return Ok(None) };
        let path: PathBuf = self.config.attachments_dir.join(sha.get(..2).unwrap_or("00")).join(sha);
        let prepared = media::prepare(&path, record, &self.config.media).await?;
        let content = media::upload(&self.hs, sender, &prepared).await?;
        store::crash_point("mid-upload");
        Ok(Some(content))
    }

    /// The content of an attachment part: the media event, or a notice saying why the file is
    /// not there (the message is never lost for want of its file).
    async fn attachment_content(&self, sender: &str, transfer_guid: &str, report: &mut DeliveryReport) -> Result<Value> {
        let found = self.store.attachment_by_transfer_guid(transfer_guid).await?;
        // Asked once; a homeserver that does not answer it gets every file tried.
        let upload_limit = *self.upload_limit.get_or_init(|| async { self.hs.upload_limit(&self.bot()).await.ok().flatten() }).await;
        let (name, size, why) = match &found {
            None => ("attachment".to_string(), None, "its record is not in the store".to_string()),
            Some((a, file)) => {
                let name = a
                    .details
                    .transfer_name
                    .clone()
                    .or_else(|| a.filename.as_deref().and_then(|f| f.rsplit('/').next()).map(str::to_string))
                    .unwrap_or_else(|| "attachment".into());
                let why = match file.as_ref().map(|f| f.state) {
                    Some(FileState::Stored) if upload_limit.is_some_and(|limit| a.total_bytes as u64 > limit) => {
                        format!("it is larger than the homeserver's upload limit of {:.1} MB", upload_limit.unwrap_or(0) as f64 / 1e6)
                    }
                    Some(FileState::Stored) if (a.total_bytes as u64) <= self.config.media.max_bytes => String::new(),
                    Some(FileState::Stored) | Some(FileState::TooLarge) => "it is larger than the size cap".into(),
                    Some(FileState::Failed) => format!("it could not be fetched: {}", file.as_ref().and_then(|f| f.last_error.clone()).unwrap_or_default()),
                    Some(FileState::Refused) => "the server refused it".into(),
                    None => "it has not been fetched yet".into(),
                };
                (name, Some(a.total_bytes), why)
            }
        };
        let mut why = why;
        if why.is_empty() {
            match self.upload_attachment(sender, found.as_ref()).await {
                Ok(Some(content)) => {
                    report.attachments += 1;
                    return Ok(content);
                }
                Ok(None) => {}
                // Failed for now (transport, 5xx, 429): a notice would lose the file for good, so
                // the message fails and its room backs off and tries again later.
                Err(e) if e.is_transient() => {
                    tracing::warn!(transfer_guid, "attachment upload failed for now; the room retries later: {e}");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(transfer_guid, "attachment not uploaded: {e}");
                    if let crate::MatrixError::Api { status, errcode, .. } = &e {
                        why = format!("the homeserver refused it ({status} {errcode})");
                    }
                }
            }
        }
        report.attachment_notices += 1;
        let size = size.map(|s| format!(" ({:.1} MB)", s as f64 / 1e6)).unwrap_or_default();
        let why = if why.is_empty() { "it could not be prepared".to_string() } else { why };
        Ok(json!({ "msgtype": "m.notice", "body": format!("📎 {name}{size} is not available: {why}") }))
    }
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
