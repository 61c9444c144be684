//! Messages that arrive after newer ones are in the room: what they mean for tapbacks.
//!
//! Why a module: a room's timeline is append-only, so a message whose record could only be read
//! later (its key appeared weeks after the rest) goes in at the live edge, out of time order.
//! Two tapback rules then need the chat's whole history, not just the order of sending: a late
//! tapback that a newer tapback of the same person on the same part already replaced (or
//! removed) must not come back; and a tapback that found no target when it was delivered, because
//! its target was one of the late messages, must go in now that the target is there.

use std::collections::HashSet;

use imessage::records::{AssociatedType, MessageRecord};

/// Who, on which part of which message (the slot iMessage keeps one tapback in).
fn slot(m: &MessageRecord) -> Option<(&str, &str, i64)> {
    let target = m.association_target()?;
    Some((m.sender.as_str(), target.guid, target.part))
}

/// Whether tapback `late` is superseded by a newer tapback of the same sender on the same part
/// in `chat` (a new one of any kind, or the removal of this kind).
pub fn superseded(late: &MessageRecord, chat: &[MessageRecord]) -> bool {
    let (Some(kind), Some(at)) = (late.associated_type.map(AssociatedType::parse), slot(late)) else { return false };
    if !kind.adds() {
        return false;
    }
    chat.iter().any(|m| {
        (m.ts_ms, m.guid.as_str()) > (late.ts_ms, late.guid.as_str())
            && slot(m) == Some(at)
            && m.associated_type.map(AssociatedType::parse).is_some_and(|k| k.adds() || k.removes(kind))
    })
}

/// The tapbacks of `chat` on one of `targets` (message GUIDs), in time order.
pub fn tapbacks_on<'a>(chat: &'a [MessageRecord], targets: &HashSet<String>) -> Vec<&'a MessageRecord> {
    chat.iter().filter(|m| slot(m).is_some_and(|(_, target, _)| targets.contains(target))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(guid: &str, ts: i64, sender: &str, tapback: Option<(u32, &str)>) -> MessageRecord {
        MessageRecord {
            record_name: format!("r-{guid}"),
            guid: guid.into(),
            chat_id: "c".into(),
            sender: sender.into(),
            flags: 0,
            ts_ms: ts,
            text: None,
            subject: None,
            associated_type: tapback.map(|(k, _)| k),
            associated_guid: tapback.map(|(_, t)| t.to_string()),
            service: None,
            content: Default::default(),
        }
    }

    #[test]
    fn a_late_tapback_yields_to_a_newer_one_of_the_same_person_and_part() {
        let late = msg("L", 10, "a", Some((2000, "p:0/T")));
        let chat = vec![msg("T", 1, "b", None), late.clone(), msg("N", 20, "a", Some((2001, "p:0/T"))), msg("X", 30, "c", Some((2003, "p:0/T")))];
        assert!(superseded(&late, &chat));
        // Someone else's newer tapback, another part, or the removal of another kind: it stands.
        let chat =
            vec![late.clone(), msg("X", 30, "c", Some((2003, "p:0/T"))), msg("P", 31, "a", Some((2001, "p:1/T"))), msg("R", 32, "a", Some((3001, "p:0/T")))];
        assert!(!superseded(&late, &chat));
        let removed = vec![late.clone(), msg("R", 40, "a", Some((3000, "p:0/T")))];
        assert!(superseded(&late, &removed));
    }

    #[test]
    fn tapbacks_on_the_late_targets_are_found_by_their_part_guid() {
        let chat = vec![
            msg("T", 1, "b", None),
            msg("A", 2, "a", Some((2000, "p:0/T"))),
            msg("B", 3, "a", Some((2000, "p:0/U"))),
            msg("C", 4, "c", Some((2004, "bp:T"))),
        ];
        let found: Vec<&str> = tapbacks_on(&chat, &HashSet::from(["T".to_string()])).iter().map(|m| m.guid.as_str()).collect();
        assert_eq!(found, vec!["A", "C"]);
    }
}
