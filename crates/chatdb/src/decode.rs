//! One `message` row, as read by [`crate::ChatDb::message_rows_after`], into a
//! [`MessageRecord`].
//!
//! Columns map as CloudKit's `msgProto` fields do (the blobs are the same), with what differs:
//! - `text` is NULL on macOS 13 and later when the message has an `attributedBody`: the text is
//!   then the body's string (attachments as U+FFFC), as CloudKit's `text` field has it;
//! - `is_from_me` with the sender from `destination_caller_id`/`account` (the owner's handle);
//! - `item_type` other than 0 (renames, participant changes, group actions) is a system record;
//!   a group's name is the `chat` row's and membership its `chat_handle_join`;
//! - `date_retracted` marks an unsent message even without its summary info;
//! - a message whose body names no attachments but that has some in `message_attachment_join`
//!   (old databases without `attributedBody`) gets its parts from the join, in order, so every
//!   attachment reaches its message.
//!
//! Why it is apart from the queries: decoding is pure CPU work on rows already read (the
//! typedstream of `attributedBody` above all), so [`MessageDecoder`] owns everything it needs
//! and can run on another thread while the next page is read and the previous one stored. It
//! reads columns by position and borrows text and blobs from the row instead of copying them:
//! at a million rows, name lookups and copies were a good part of the import's CPU.

use std::collections::HashMap;

use imessage::records::{apple_date_to_ns, apple_date_to_unix_ms, AssociatedType, AssociationTarget, ContentPart, MessageRecord, FLAG_FROM_ME, FLAG_SYSTEM};
use imessage::{decode_message_content_and_text, MessageBlobs};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::rows::{MessagePage, MessageRows, MESSAGE_COLUMNS, ROWID};
use crate::{canonical_in, Conversations, Skipped, STYLE_GROUP};

/// Where each column is in a row of [`crate::ChatDb::message_select`]: `rowid`, `guid`, the
/// [`MESSAGE_COLUMNS`], then `chat_rowid`, `sender_id`, `sender_country` ([`ROWID`] is first).
const GUID: usize = 1;
const CHAT_ROWID: usize = 2 + MESSAGE_COLUMNS.len();
const SENDER_ID: usize = CHAT_ROWID + 1;
const SENDER_COUNTRY: usize = CHAT_ROWID + 2;

/// The position of a message column, worked out at compile time; a name that is not one fails
/// the build.
macro_rules! col {
    ($name:literal) => {
        const { at($name) }
    };
}

const fn at(name: &str) -> usize {
    let mut i = 0;
    while i < MESSAGE_COLUMNS.len() {
        let (a, b) = (MESSAGE_COLUMNS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return 2 + i;
            }
        }
        i += 1;
    }
    panic!("not a message column")
}

/// What decoding a page of rows needs besides the chats, owned, so that it can go to another
/// thread: the default region for phone numbers and the owner's handle for sent messages whose
/// row names none.
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    pub(crate) region: Option<String>,
    pub(crate) own: String,
}

impl MessageDecoder {
    /// The rows as records, or as skipped rows with their reason. A message in two chats (it
    /// happens after merges) comes twice in a row and is read once, in its first.
    pub fn decode(&self, chats: &Conversations, rows: MessageRows) -> MessagePage {
        let MessageRows { rows, attachments } = rows;
        let mut page = MessagePage { rows: rows.len(), ..Default::default() };
        let mut handles = Handles::default();
        let mut previous = None;
        for row in &rows {
            let rowid: i64 = row.try_get(ROWID).unwrap_or(0);
            page.last_rowid = page.last_rowid.max(rowid);
            if previous == Some(rowid) {
                page.rows -= 1;
                continue;
            }
            previous = Some(rowid);
            match self.message(row, chats, attachments.get(&rowid).map(Vec::as_slice).unwrap_or(&[]), &mut handles) {
                Ok(m) => page.records.push(m),
                Err(reason) => page.skipped.push(Skipped { table: "message", rowid, reason }),
            }
        }
        page
    }

    fn message(&self, row: &SqliteRow, chats: &Conversations, attachments: &[String], handles: &mut Handles) -> Result<MessageRecord, String> {
        let guid: &str = row.try_get(GUID).map_err(|e| format!("no guid: {e}"))?;
        let chat = int(row, CHAT_ROWID).and_then(|c| chats.of_rowid(c)).ok_or_else(|| format!("message {guid} is in no chat"))?;
        let date = int(row, col!("date")).ok_or_else(|| format!("message {guid} has no date"))?;
        let (mut content, body_text) = decode_message_content_and_text(&MessageBlobs {
            attributed_body: blob(row, col!("attributedBody")),
            message_summary_info: blob(row, col!("message_summary_info")),
            payload_data: blob(row, col!("payload_data")),
            balloon_bundle_id: text(row, col!("balloon_bundle_id")),
            effect: text(row, col!("expressive_send_style_id")),
            date_read_ns: int(row, col!("date_read")).map(apple_date_to_ns),
            date_delivered_ns: int(row, col!("date_delivered")).map(apple_date_to_ns),
        });
        // macOS 13+ leaves `text` NULL: the text is the body's string, as in CloudKit's `text`.
        let text_col = text(row, col!("text")).map(str::to_string);
        let message_text = text_col.or(body_text.filter(|t| !t.is_empty()));
        if content.parts.iter().all(|p| !matches!(p, ContentPart::Attachment { .. })) && !attachments.is_empty() {
            content.parts = parts_from_join(message_text.as_deref().unwrap_or(""), attachments);
        }
        if int(row, col!("date_retracted")).unwrap_or(0) > 0 && content.edits.is_empty() {
            content.unsent = true;
        }
        content.reply_to = text(row, col!("thread_originator_guid")).map(|g| match text(row, col!("thread_originator_part")).and_then(part_number) {
            Some(part) if part > 0 => AssociationTarget::part_of(g, part).to_string(),
            _ => g.to_string(),
        });
        content.associated_emoji = text(row, col!("associated_message_emoji")).map(str::to_string);

        let from_me = int(row, col!("is_from_me")).unwrap_or(0) != 0;
        let item_type = int(row, col!("item_type")).unwrap_or(0);
        let system = item_type != 0 || int(row, col!("is_system_message")).unwrap_or(0) != 0 || int(row, col!("is_service_message")).unwrap_or(0) != 0;
        let mut flags = if from_me { FLAG_FROM_ME } else { 0 };
        let sender = if system {
            flags |= FLAG_SYSTEM;
            String::new()
        } else if from_me {
            let handle = text(row, col!("destination_caller_id")).or_else(|| text(row, col!("account"))).map(|h| handles.canonical(self, h, None));
            // `account` may be an account GUID rather than an address.
            handle.filter(|h| h.starts_with("tel:") || h.starts_with("mailto:")).map_or_else(|| self.own.clone(), str::to_string)
        } else {
            match text(row, SENDER_ID) {
                Some(id) => handles.canonical(self, id, text(row, SENDER_COUNTRY)).to_string(),
                // An incoming message with no handle: in a DM, the other person.
                None if chat.style != STYLE_GROUP => chat.participants.first().cloned().unwrap_or_default(),
                None => return Err(format!("incoming message {guid} in a group names no sender")),
            }
        };
        let associated_type = int(row, col!("associated_message_type"))
            .filter(|t| *t != 0)
            .and_then(|t| u32::try_from(t).ok())
            // One number for a placed sticker, whatever generation wrote it.
            .map(|t| AssociatedType::parse(t).normalized().code());
        Ok(MessageRecord {
            record_name: text(row, col!("ck_record_id")).unwrap_or(guid).to_string(),
            guid: guid.to_string(),
            chat_id: chat.chat_id.clone(),
            sender,
            flags,
            ts_ms: apple_date_to_unix_ms(date),
            text: message_text,
            subject: text(row, col!("subject")).map(str::to_string),
            associated_type,
            associated_guid: associated_type.and(text(row, col!("associated_message_guid")).map(str::to_string)),
            service: text(row, col!("service")).map(str::to_string),
            content,
        })
    }
}

/// Handles canonicalized so far on a page: a page names a few people many times, and parsing a
/// phone number is the costliest step of reading a row. Looked up by the row's own text, so a
/// handle seen before costs no allocation.
#[derive(Default)]
struct Handles {
    /// raw handle → (country, canonical handle) for each country it came with (nearly always one).
    seen: HashMap<String, Vec<(Option<String>, String)>>,
}

impl Handles {
    fn canonical(&mut self, decoder: &MessageDecoder, raw: &str, country: Option<&str>) -> &str {
        let known = self.seen.entry(raw.to_string()).or_default();
        let i = match known.iter().position(|(c, _)| c.as_deref() == country) {
            Some(i) => i,
            None => {
                known.push((country.map(str::to_string), canonical_in(raw, country, decoder.region.as_deref())));
                known.len() - 1
            }
        };
        &known[i].1
    }
}

fn int(row: &SqliteRow, i: usize) -> Option<i64> {
    row.try_get::<Option<i64>, _>(i).ok().flatten()
}

/// A text column, None when NULL, empty, or not text at all (Messages has stored numbers in
/// text columns).
fn text(row: &SqliteRow, i: usize) -> Option<&str> {
    row.try_get::<Option<&str>, _>(i).ok().flatten().filter(|s| !s.is_empty())
}

fn blob(row: &SqliteRow, i: usize) -> Option<&[u8]> {
    row.try_get::<Option<&[u8]>, _>(i).ok().flatten()
}

/// `thread_originator_part` is `N:start:len` (part N of the original).
fn part_number(part: &str) -> Option<i64> {
    part.split(':').next()?.trim().parse().ok()
}

/// Parts for a message whose body does not name its attachments: each U+FFFC of the text takes
/// the next joined attachment; attachments left over come after the text.
fn parts_from_join(text: &str, attachments: &[String]) -> Vec<ContentPart> {
    let mut parts = Vec::new();
    let mut next = attachments.iter();
    let mut number = 0;
    for (i, piece) in text.split('\u{FFFC}').enumerate() {
        if i > 0 {
            if let Some(guid) = next.next() {
                parts.push(ContentPart::Attachment { part: Some(number), guid: Some(guid.clone()) });
                number += 1;
            }
        }
        if !piece.trim().is_empty() {
            parts.push(ContentPart::Text { part: Some(number), text: piece.to_string(), mention: None, link: None });
            number += 1;
        }
    }
    for guid in next {
        parts.push(ContentPart::Attachment { part: Some(number), guid: Some(guid.clone()) });
        number += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_attachments_take_their_places() {
        let parts = parts_from_join("\u{FFFC}look\u{FFFC}", &["a".into(), "b".into(), "c".into()]);
        let kinds: Vec<String> = parts
            .iter()
            .map(|p| match p {
                ContentPart::Attachment { guid, .. } => guid.clone().unwrap_or_default(),
                ContentPart::Text { text, .. } => format!("'{text}'"),
            })
            .collect();
        assert_eq!(kinds, ["a", "'look'", "b", "c"]);
    }

    #[test]
    fn originator_parts() {
        assert_eq!(part_number("1:0:12"), Some(1));
        assert_eq!(part_number("x"), None);
    }

    #[test]
    fn column_positions_follow_the_select() {
        assert_eq!(col!("text"), 2);
        assert_eq!(MESSAGE_COLUMNS[col!("ck_record_id") - 2], "ck_record_id");
        assert_eq!(SENDER_COUNTRY, MESSAGE_COLUMNS.len() + 4);
    }
}
