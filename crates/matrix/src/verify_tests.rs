//! Unit tests of `verify.rs` (apart so the module stays readable).

use super::*;
use imessage::records::MessageRecord;
use serde_json::json;

fn msg(guid: &str, tapback: Option<(u32, &str)>, reply_to: Option<&str>) -> MessageRecord {
    let content = imessage::records::MessageContent { reply_to: reply_to.map(str::to_string), ..Default::default() };
    MessageRecord {
        record_name: format!("r-{guid}"),
        guid: guid.into(),
        chat_id: "c".into(),
        sender: "tel:+15550001111".into(),
        flags: 0,
        ts_ms: 1,
        text: Some("hi".into()),
        subject: None,
        associated_type: tapback.map(|(k, _)| k),
        associated_guid: tapback.map(|(_, t)| t.to_string()),
        service: None,
        content,
    }
}

fn event(id: &str, guid: &str, kind: &str, relates_to: serde_json::Value) -> SeenEvent {
    SeenEvent {
        event_id: Some(id.into()),
        event_type: kind.into(),
        sender: "@x:test".into(),
        ts: 1,
        guid: Some(guid.into()),
        key: None,
        part: None,
        rel_type: None,
        is_state: false,
        raw: json!({ "content": { "m.relates_to": relates_to } }),
    }
}

#[test]
fn reactions_and_replies_are_checked_against_their_records() {
    let records = [msg("T", None, None), msg("O", None, None), msg("R", Some((2000, "p:0/T")), None), msg("Q", None, Some("T"))];
    let planned: Vec<(&str, crate::render::Plan)> =
        records.iter().map(|m| (m.guid.as_str(), crate::render::plan(m, &|h| crate::ghost::ghost_user_id(h, "test")))).collect();
    let plans: HashMap<&str, &crate::render::Plan> = planned.iter().map(|(g, p)| (*g, p)).collect();
    let part_of: HashMap<&str, (String, i64)> = HashMap::from([("$t", ("T".to_string(), 0)), ("$o", ("O".to_string(), 0))]);
    let check = |reaction: serde_json::Value, reply: serde_json::Value| {
        let events = [event("$r", "R", "m.reaction", reaction), event("$q", "Q", "m.room.message", reply)];
        relations_wrong(&events, &plans, &part_of)
    };
    let reply_to = |id: &str| json!({ "m.in_reply_to": { "event_id": id } });
    let react = |id: &str, key: &str| json!({ "rel_type": "m.annotation", "event_id": id, "key": key });
    assert_eq!(check(react("$t", "❤️"), reply_to("$t")), (0, 0));
    assert_eq!(check(react("$t", "👍"), reply_to("$t")), (1, 0), "wrong key");
    assert_eq!(check(react("$o", "❤️"), reply_to("$o")), (1, 1), "wrong targets");
    assert_eq!(check(react("$gone", "❤️"), reply_to("$gone")), (0, 0), "a target redacted since is no one's");
}
