//! `verify`'s check that no message vanished, made without the delivery plan.
//!
//! Why apart from the plan: `verify` expects in a room what `render::plan` says a message
//! becomes, so a message the plan turned into nothing was expected to be nothing, and a room
//! that showed nothing for it passed. This check asks the records and the room alone: every
//! stored message that is not a system record, not unsent and not a tapback (tapbacks are
//! reactions, checked against the tapback state) must have at least one event a client shows,
//! an `m.room.message` or `m.sticker` with a body that is not an edit, carrying its GUID.
//! What has none is `invisible`.

use std::collections::HashSet;

use imessage::records::{ContentPart, MessageRecord};

#[cfg(test)]
use crate::verify::SeenEvent;

/// What this check reads of a timeline event. `verify`'s events are read through it (`seen.rs`),
/// so that this check, which `verify` runs, does not import `verify` back.
pub trait ShownEvent {
    /// `type`.
    fn event_type(&self) -> &str;
    /// `content.m.relates_to.rel_type`.
    fn rel_type(&self) -> Option<&str>;
    /// `content.body`.
    fn body(&self) -> Option<&str>;
    /// The GUID the event carries (`crate::keys::GUID_KEY`).
    fn guid(&self) -> Option<&str>;
}

/// Whether a record must show in its room (see the module docs).
pub fn must_show(m: &MessageRecord) -> bool {
    let c = &m.content;
    if m.is_system() || c.unsent {
        return false;
    }
    let tapback = m.association().is_some_and(|a| a.kind.in_tapback_range());
    if tapback {
        return false;
    }
    // Unsent part by part until no part is left.
    let mut numbers: HashSet<i64> = c
        .parts
        .iter()
        .map(|p| match p {
            ContentPart::Text { part, .. } | ContentPart::Attachment { part, .. } => part.unwrap_or(0),
        })
        .collect();
    numbers.extend(c.edits.iter().map(|e| e.part));
    if numbers.is_empty() {
        numbers.insert(0);
    }
    c.unsent_parts.is_empty() || !numbers.iter().all(|n| c.unsent_parts.contains(n))
}

/// The GUIDs of the messages `events` show (see the module docs).
pub fn shown_guids<E: ShownEvent>(events: &[E]) -> HashSet<&str> {
    events
        .iter()
        .filter(|e| matches!(e.event_type(), "m.room.message" | "m.sticker"))
        .filter(|e| e.rel_type() != Some("m.replace"))
        .filter(|e| e.body().is_some_and(|b| !b.trim().is_empty()))
        .filter_map(|e| e.guid())
        .collect()
}

/// How many of `messages` must show but have no event in `events`.
pub fn invisible<E: ShownEvent>(messages: &[MessageRecord], events: &[E]) -> u64 {
    let shown = shown_guids(events);
    messages.iter().filter(|m| must_show(m) && !shown.contains(m.guid.as_str())).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(guid: &str) -> MessageRecord {
        MessageRecord {
            record_name: format!("r-{guid}"),
            guid: guid.into(),
            chat_id: "c".into(),
            sender: "tel:+1".into(),
            flags: 0,
            ts_ms: 1,
            text: None,
            subject: None,
            associated_type: None,
            associated_guid: None,
            service: None,
            content: Default::default(),
        }
    }

    fn event(guid: &str, kind: &str, content: serde_json::Value) -> SeenEvent {
        SeenEvent {
            event_id: Some(format!("${guid}")),
            event_type: kind.into(),
            sender: "@x:t".into(),
            ts: 1,
            guid: Some(guid.into()),
            key: None,
            part: None,
            rel_type: content["m.relates_to"]["rel_type"].as_str().map(str::to_string),
            is_state: false,
            raw: json!({ "content": content }),
        }
    }

    #[test]
    fn a_message_without_a_shown_event_is_invisible_whatever_the_plan_says() {
        let mut unsent = msg("U");
        unsent.content.unsent = true;
        let mut tapback = msg("T");
        (tapback.associated_type, tapback.associated_guid) = (Some(2000), Some("p:0/A".into()));
        let mut all_parts_unsent = msg("P");
        all_parts_unsent.content.parts = vec![ContentPart::Text { part: Some(0), text: "x".into(), mention: None, link: None }];
        all_parts_unsent.content.unsent_parts = vec![0];
        let mut system = msg("S");
        system.flags = imessage::records::FLAG_SYSTEM;
        let messages = [msg("A"), msg("B"), msg("C"), msg("D"), unsent, tapback, all_parts_unsent, system];
        let events = [
            event("A", "m.room.message", json!({ "msgtype": "m.text", "body": "hi" })),
            // Only an edit, only a reaction, only an empty body: none shows the message.
            event("B", "m.room.message", json!({ "body": "* x", "m.relates_to": { "rel_type": "m.replace", "event_id": "$x" } })),
            event("C", "m.reaction", json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": "$A", "key": "x" } })),
            event("D", "m.room.message", json!({ "msgtype": "m.text", "body": " " })),
        ];
        assert_eq!(invisible(&messages, &events), 3);
        let notice = event("D", "m.room.message", json!({ "msgtype": "m.notice", "body": "⚠️ cannot be shown" }));
        assert_eq!(invisible(&messages, &[events[0].clone(), notice]), 2);
    }
}
