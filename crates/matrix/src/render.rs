//! What one iMessage becomes in a Matrix room, decided from the message alone (no I/O).
//!
//! Why a plan before any request: a message is several events (each attachment and each text
//! part is its own event, edits are `m.replace` events after them), a tapback is a reaction or
//! the redaction of one, an unsent message is nothing at all. Delivery sends the plan, keeps a
//! ledger row per event, and `verify` expects what the same plan says — so what a room should
//! hold is defined once.

use imessage::records::{AssociationTarget, ContentPart, MessageRecord, TapbackKind};
use serde_json::{json, Value};

pub use crate::part::{text_content, PartContent, PartEvent};

/// A later version of an edited part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub part: i64,
    pub ts_ms: i64,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReactionKey {
    Emoji(String),
    /// A sticker placed on a message (MSC4027: the key is the sticker's `mxc://` URI).
    Sticker {
        transfer_guid: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing goes into the room: the message was unsent (a removed tapback is an
    /// [`Plan::Unreact`]). A message with nothing readable is a notice, never nothing.
    Nothing { why: &'static str },
    /// The parts in order (each an event), then the edits, replying to `reply_to` (a GUID).
    Message { parts: Vec<PartEvent>, edits: Vec<Edit>, reply_to: Option<String> },
    /// A tapback on part `part` of message `target`.
    React { target: String, part: i64, key: ReactionKey },
    /// The removal of the sender's tapback of `kind` (Apple's number of the tapback removed) on
    /// part `part` of `target`.
    Unreact { target: String, part: i64, kind: u32 },
}

/// Who has which tapback on which part of which message, as a chat's tapbacks add, change and
/// remove them (iMessage keeps one tapback per person per part: a new one replaces the old).
#[derive(Debug, Default)]
pub struct Reactions {
    current: std::collections::HashMap<(String, String, i64), (u32, String)>,
}

/// What a tapback does to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new reaction, replacing the sender's earlier one on that part (its message GUID).
    Add { replaces: Option<String> },
    /// Removes the reaction the tapback with this GUID added.
    Remove { removes: String },
    /// A removal of a tapback that is not there.
    Nothing,
}

impl Reactions {
    /// Applies `m` (planned as `plan`); None for a message that is not a tapback.
    pub fn apply(&mut self, m: &MessageRecord, plan: &Plan) -> Option<Effect> {
        match plan {
            Plan::React { target, part, .. } => {
                let kind = m.associated_type.unwrap_or(0);
                let previous = self.current.insert((m.sender.clone(), target.clone(), *part), (kind, m.guid.clone()));
                Some(Effect::Add { replaces: previous.map(|(_, guid)| guid) })
            }
            Plan::Unreact { target, part, kind } => {
                let key = (m.sender.clone(), target.clone(), *part);
                match self.current.get(&key) {
                    Some((k, _)) if k == kind => self.current.remove(&key).map(|(_, removes)| Effect::Remove { removes }),
                    _ => Some(Effect::Nothing),
                }
            }
            _ => None,
        }
    }

    /// The GUIDs of the tapbacks whose reactions stand.
    pub fn standing(&self) -> impl Iterator<Item = &str> {
        self.current.values().map(|(_, guid)| guid.as_str())
    }
}

/// The reaction key of a classic tapback.
pub fn tapback_key(kind: TapbackKind) -> Option<&'static str> {
    Some(match kind {
        TapbackKind::Love => "❤️",
        TapbackKind::Like => "👍",
        TapbackKind::Dislike => "👎",
        TapbackKind::Laugh => "😂",
        TapbackKind::Emphasize => "‼️",
        TapbackKind::Question => "❓",
        TapbackKind::Emoji | TapbackKind::Sticker => return None,
    })
}

/// The part and message GUID of an `associatedMessageGuid` (read by
/// [`AssociationTarget::parse`]: `p:N/GUID`, `bp:GUID`, or a bare GUID, which names part 0).
pub fn associated_target(associated: &str) -> (i64, &str) {
    let target = AssociationTarget::parse(associated);
    (target.part, target.guid)
}

/// Schemes a link part may keep as an `href`. The URL is the sender's: `javascript:`, `data:`,
/// `file:`, `intent:` and the like would run or open something in a Matrix client, so any other
/// scheme (or none a browser would read the same way, e.g. with leading blanks) stays plain text.
const LINK_SCHEMES: [&str; 4] = ["http", "https", "mailto", "tel"];

fn linkable(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, _)| LINK_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A text run as (plain text, HTML, whether the HTML says more than the plain text).
type Run = (String, String, bool);
/// The runs of one text part, or an attachment's transfer GUID.
type Group = Result<Vec<Run>, String>;

/// Plans message `m`. `mention` turns a handle into the Matrix user a mention pill points at.
pub fn plan(m: &MessageRecord, mention: &dyn Fn(&str) -> String) -> Plan {
    let c = &m.content;
    if let Some(association) = m.association() {
        let (part, target) = (association.target.part, association.target.guid.to_string());
        match (association.kind.tapback(), association.kind.removal) {
            (Some(kind), true) => return Plan::Unreact { target, part, kind: kind.code() },
            (Some(kind), false) if kind.is_classic() => {
                return Plan::React { target, part, key: ReactionKey::Emoji(tapback_key(kind).unwrap_or("❤️").into()) }
            }
            (Some(TapbackKind::Emoji), false) => {
                if let Some(emoji) = &c.associated_emoji {
                    return Plan::React { target, part, key: ReactionKey::Emoji(emoji.clone()) };
                }
            }
            (Some(TapbackKind::Sticker), false) => {
                let sticker = c.parts.iter().find_map(|p| match p {
                    ContentPart::Attachment { guid: Some(g), .. } => Some(g.clone()),
                    _ => None,
                });
                if let Some(transfer_guid) = sticker {
                    return Plan::React { target, part, key: ReactionKey::Sticker { transfer_guid } };
                }
            }
            // Anything else (an app's balloon update, a poll, a number not known yet) shows as
            // the message it is.
            _ => {}
        }
    }
    if c.unsent {
        return Plan::Nothing { why: "unsent" };
    }
    let edited = |part: i64| c.edits.iter().find(|e| e.part == part && e.versions.len() > 1);
    // Runs of one part (text, mentions, links) make one event; an attachment is its own.
    let mut groups: Vec<(i64, Group)> = Vec::new();
    for p in &c.parts {
        match p {
            ContentPart::Attachment { part, guid: Some(g) } => groups.push((part.unwrap_or(0), Err(g.clone()))),
            ContentPart::Attachment { guid: None, .. } => {}
            ContentPart::Text { part, text, mention: who, link } => {
                let number = part.unwrap_or(0);
                let run = match (who, link) {
                    (Some(handle), _) => (text.clone(), format!("<a href=\"https://matrix.to/#/{}\">{}</a>", escape(&mention(handle)), escape(text)), true),
                    (None, Some(url)) if linkable(url) => (text.clone(), format!("<a href=\"{}\">{}</a>", escape(url), escape(text)), true),
                    _ => (text.clone(), escape(text), false),
                };
                match groups.last_mut() {
                    Some((n, Ok(runs))) if *n == number => runs.push(run),
                    _ => groups.push((number, Ok(vec![run]))),
                }
            }
        }
    }
    let mut parts: Vec<PartEvent> = groups
        .into_iter()
        .map(|(part, g)| {
            let content = match g {
                Err(transfer_guid) => PartContent::Attachment { transfer_guid },
                Ok(runs) => {
                    let formatted = runs.iter().any(|r| r.2);
                    PartContent::Text {
                        body: runs.iter().map(|r| r.0.as_str()).collect(),
                        html: formatted.then(|| runs.iter().map(|r| r.1.as_str()).collect()),
                        link_preview: None,
                    }
                }
            };
            PartEvent { part, content, chunk: None }
        })
        .collect();
    let before = parts.len();
    parts.retain(|p| !c.unsent_parts.contains(&p.part));
    let all_parts_unsent = before > 0 && parts.is_empty();
    if c.parts.is_empty() {
        // No attributedBody: the text field is the body; when it is absent, an edited message
        // shows its latest version and a link balloon its link.
        let latest = c.edits.iter().find(|e| e.part == 0).and_then(|e| e.versions.last()).map(|v| v.text.clone());
        let link = c.link_preview.as_ref().and_then(|p| p.original_url.clone().or_else(|| p.url.clone()));
        let text = m.text.clone().filter(|t| !t.is_empty()).or(latest).or(link).unwrap_or_default();
        if !text.is_empty() && text != "\u{FFFC}" {
            parts.push(PartEvent { part: 0, content: PartContent::Text { body: text, html: None, link_preview: None }, chunk: None });
        }
    }
    // A part that only the edit history has (the body lacks it) shows too: as its versions.
    for history in &c.edits {
        let shown = parts.iter().any(|p| p.part == history.part) || c.unsent_parts.contains(&history.part);
        let Some(last) = history.versions.last().filter(|v| !shown && !v.text.is_empty()) else { continue };
        let at = parts.iter().position(|p| p.part > history.part).unwrap_or(parts.len());
        let content = PartContent::Text { body: last.text.clone(), html: None, link_preview: None };
        parts.insert(at, PartEvent { part: history.part, content, chunk: None });
    }
    // An edited part goes in as its first version; the later ones follow as edits.
    let mut edits = Vec::new();
    for p in &mut parts {
        if let (PartContent::Text { body, html, .. }, Some(history)) = (&mut p.content, edited(p.part)) {
            *body = history.versions[0].text.clone();
            *html = None;
            for v in &history.versions[1..] {
                edits.push(Edit { part: p.part, ts_ms: imessage::records::apple_ns_to_unix_ms(v.apple_ns), body: v.text.clone() });
            }
        }
    }
    if let Some(preview) = &c.link_preview {
        if let Some(PartEvent { content: PartContent::Text { link_preview, .. }, .. }) =
            parts.iter_mut().find(|p| matches!(p.content, PartContent::Text { .. }))
        {
            *link_preview = Some(preview.clone());
        }
    }
    if let Some(subject) = m.subject.as_deref().filter(|s| !s.is_empty()) {
        match parts.iter_mut().find(|p| matches!(p.content, PartContent::Text { .. })) {
            Some(PartEvent { content: PartContent::Text { body, html, .. }, .. }) => {
                let rest = html.take().unwrap_or_else(|| escape(body));
                *html = Some(format!("<strong>{}</strong><br>{rest}", escape(subject)));
                *body = format!("{subject}\n{body}");
            }
            _ => parts.insert(
                0,
                PartEvent {
                    part: 0,
                    content: PartContent::Text { body: subject.to_string(), html: Some(format!("<strong>{}</strong>", escape(subject))), link_preview: None },
                    chunk: None,
                },
            ),
        }
    }
    if parts.is_empty() && all_parts_unsent {
        return Plan::Nothing { why: "unsent" };
    }
    if parts.is_empty() {
        parts.push(PartEvent { part: 0, content: PartContent::Notice { body: unreadable_notice(m) }, chunk: None });
    }
    Plan::Message { parts: crate::fit::fit(parts), edits, reply_to: c.reply_to.clone() }
}

/// The notice standing in for a message with nothing readable, with why.
fn unreadable_notice(m: &MessageRecord) -> String {
    let c = &m.content;
    let why = if let Some(f) = c.undecodable.first() {
        format!("its {} could not be read ({})", f.field, f.reason)
    } else if let Some(app) = &c.balloon_bundle_id {
        format!("it is a message of the app {app}, which the bridge cannot show")
    } else if c.parts.iter().any(|p| matches!(p, ContentPart::Attachment { guid: None, .. })) {
        "it names an attachment without saying which one".to_string()
    } else {
        "it has no text, no attachment and no edit".to_string()
    };
    format!("⚠️ This message cannot be shown: {why}.")
}

/// The content of an edit of `original` (an `m.replace` with the new text).
/// Marks the content of an event of a message that arrives after newer ones are in the room
/// (a record whose key appeared only later): [`crate::keys::LATE_KEY`] carries its original
/// time, and a text body starts with it, so a reader sees why it sits where it does.
pub fn mark_late(content: &mut Value, ts_ms: i64) {
    content[crate::keys::LATE_KEY] = json!(ts_ms);
    let Some(when) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000).ok() else { return };
    let when = format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", when.year(), u8::from(when.month()), when.day(), when.hour(), when.minute());
    if !matches!(content["msgtype"].as_str(), Some("m.text" | "m.notice" | "m.emote")) {
        return;
    }
    for (field, sep) in [("body", " · "), ("formatted_body", " · ")] {
        if let Some(text) = content[field].as_str() {
            content[field] = json!(format!("⏱ {when}{sep}{text}"));
        }
    }
}

pub fn edit_content(original: &str, body: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("* {body}"),
        "m.new_content": { "msgtype": "m.text", "body": body },
        "m.relates_to": { "rel_type": "m.replace", "event_id": original },
    })
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
