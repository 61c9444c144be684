//! An event the homeserver refuses for good becomes a notice naming what was refused.
//!
//! Why: a room is delivered strictly in order, so one event that can never go in (413
//! `M_TOO_LARGE`, a 400 for content the homeserver will not take) would hold back every later
//! message of its chat forever, retried after each backoff. The plan keeps events small
//! (`fit.rs`), but whatever a homeserver still refuses with a 4xx other than 429 goes in as a
//! notice by the same sender, with the event's keys (ledger key, message GUID, part), so the
//! room goes on, `verify` sees the message, and `status` counts it (`Store::record_refusal`).
//! A notice that is refused too is the room's error (the homeserver refuses everything: an
//! expired token, a room the sender is not in), retried as any error is.

use serde_json::{json, Value};

use crate::keys::{CHUNK_KEY, LATE_KEY, LEDGER_KEY, PART_KEY, REFUSED_KEY};
use crate::{MatrixError, GUID_KEY};

/// How much of a refused text the notice quotes, in characters.
const QUOTE_CHARS: usize = 200;

/// Whether `e` refuses the event for good: a 4xx answer other than 429 (and other than a
/// duplicate reaction, which the reaction path resolves itself).
pub fn is_permanent(e: &MatrixError) -> bool {
    match e {
        MatrixError::Api { status, errcode, .. } => (400..500).contains(status) && *status != 429 && errcode != "M_DUPLICATE_ANNOTATION",
        _ => false,
    }
}

/// What the refused event was (in words) and the notice that stands in for it.
pub fn notice(event_type: &str, content: &Value, e: &MatrixError) -> (String, Value) {
    let what = describe(event_type, content);
    let answer = match e {
        MatrixError::Api { status, errcode, error, .. } => format!("{status} {errcode}: {error}"),
        other => other.to_string(),
    };
    let mut notice = json!({
        "msgtype": "m.notice",
        "body": format!("⚠️ The homeserver refused {what} ({answer}), so it is not shown here as it was."),
        REFUSED_KEY: { "event_type": event_type, "error": answer },
    });
    for key in [LEDGER_KEY, GUID_KEY, PART_KEY, CHUNK_KEY, LATE_KEY] {
        if !content[key].is_null() {
            notice[key] = content[key].clone();
        }
    }
    // A reply stays a reply; an edit or a reaction relation would make the notice one.
    if !content["m.relates_to"]["m.in_reply_to"].is_null() {
        notice["m.relates_to"] = json!({ "m.in_reply_to": content["m.relates_to"]["m.in_reply_to"].clone() });
    }
    (what, notice)
}

/// The refused event in words: a text (its length and first words), an edit, a reaction, a file.
fn describe(event_type: &str, content: &Value) -> String {
    let body = content["body"].as_str().unwrap_or_default();
    let quote = |text: &str| {
        let mut q: String = text.chars().take(QUOTE_CHARS).collect();
        if q.len() < text.len() {
            q.push('…');
        }
        q
    };
    if event_type == "m.reaction" {
        return format!("a reaction {}", quote(content["m.relates_to"]["key"].as_str().unwrap_or("?")));
    }
    if event_type != "m.room.message" {
        return format!("an event of type {event_type}");
    }
    if content["m.relates_to"]["rel_type"] == "m.replace" {
        let new = content["m.new_content"]["body"].as_str().unwrap_or(body);
        return format!("an edit to a text of {} characters: “{}”", new.chars().count(), quote(new));
    }
    match content["msgtype"].as_str().unwrap_or_default() {
        "m.image" => format!("the image {}", quote(body)),
        "m.video" => format!("the video {}", quote(body)),
        "m.audio" => format!("the audio {}", quote(body)),
        "m.file" => format!("the file {}", quote(body)),
        _ => format!("a text of {} characters: “{}”", body.chars().count(), quote(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, errcode: &str) -> MatrixError {
        MatrixError::Api { what: "send".into(), status, errcode: errcode.into(), error: "no".into() }
    }

    #[test]
    fn only_client_errors_other_than_rate_limits_are_permanent() {
        assert!(is_permanent(&api(413, "M_TOO_LARGE")));
        assert!(is_permanent(&api(400, "M_BAD_JSON")));
        assert!(!is_permanent(&api(429, "M_LIMIT_EXCEEDED")));
        assert!(!is_permanent(&api(500, "M_UNKNOWN")));
        assert!(!is_permanent(&api(400, "M_DUPLICATE_ANNOTATION")));
    }

    #[test]
    fn the_notice_names_what_was_refused_and_keeps_the_event_keys() {
        let content = json!({
            "msgtype": "m.text",
            "body": "x".repeat(70_000),
            LEDGER_KEY: "G/p0", GUID_KEY: "G", PART_KEY: 0,
            "m.relates_to": { "m.in_reply_to": { "event_id": "$r" } },
        });
        let (what, n) = notice("m.room.message", &content, &api(413, "M_TOO_LARGE"));
        assert!(what.starts_with("a text of 70000 characters"), "{what}");
        let body = n["body"].as_str().unwrap();
        assert!(body.contains("413 M_TOO_LARGE") && body.chars().count() < 400, "{body}");
        assert_eq!((n["msgtype"].as_str(), &n[LEDGER_KEY], &n[GUID_KEY], &n[PART_KEY]), (Some("m.notice"), &json!("G/p0"), &json!("G"), &json!(0)));
        assert_eq!(n["m.relates_to"]["m.in_reply_to"]["event_id"], "$r");
        let reaction = json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": "$t", "key": "❤️" } });
        let (what, n) = notice("m.reaction", &reaction, &api(400, "M_UNKNOWN"));
        assert_eq!(what, "a reaction ❤️");
        assert!(n["m.relates_to"].is_null(), "the notice is no reaction");
    }
}
