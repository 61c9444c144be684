//! `message` rows as the domain's [`MessageRecord`]s, a page at a time.
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

use std::collections::{BTreeMap, HashMap};

use imessage::records::{apple_date_to_ns, apple_date_to_unix_ms, AssociatedType, AssociationTarget, ContentPart, MessageRecord, FLAG_FROM_ME, FLAG_SYSTEM};
use imessage::{decode_message_content_and_text, MessageBlobs};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::{ChatDb, Conversations, Result, Skipped, STYLE_GROUP};

/// The columns read from `message`, each NULL where the database lacks it.
const MESSAGE_COLUMNS: [&str; 27] = [
    "text",
    "subject",
    "attributedBody",
    "message_summary_info",
    "payload_data",
    "balloon_bundle_id",
    "expressive_send_style_id",
    "date",
    "date_read",
    "date_delivered",
    "date_edited",
    "date_retracted",
    "is_from_me",
    "service",
    "account",
    "destination_caller_id",
    "associated_message_guid",
    "associated_message_type",
    "associated_message_emoji",
    "thread_originator_guid",
    "thread_originator_part",
    "item_type",
    "group_title",
    "group_action_type",
    "ck_record_id",
    "is_system_message",
    "is_service_message",
];

/// One page of messages.
#[derive(Debug, Default)]
pub struct MessagePage {
    pub records: Vec<MessageRecord>,
    pub skipped: Vec<Skipped>,
    /// The highest ROWID on the page (0 for an empty page).
    pub last_rowid: i64,
    /// Rows read (records + skipped).
    pub rows: usize,
}

impl ChatDb {
    /// The `SELECT … FROM message …` every message query starts with (columns this database
    /// lacks read as NULL). Public so that a benchmark can run the reader's own SQL bare.
    pub fn message_select(&self) -> String {
        let s = &self.schema;
        let cols: Vec<String> = MESSAGE_COLUMNS.iter().map(|c| s.select("message", "m", c)).collect();
        format!(
            "SELECT m.ROWID AS rowid, m.guid AS guid, {}, j.chat_id AS chat_rowid, h.id AS sender_id, {} \
             FROM message m LEFT JOIN chat_message_join j ON j.message_id = m.ROWID LEFT JOIN handle h ON h.ROWID = m.handle_id",
            cols.join(", "),
            s.select("handle", "h", "country").replace("AS country", "AS sender_country"),
        )
    }

    /// The SQL of [`ChatDb::messages_after`]: binds `after`, then `limit`.
    pub fn message_page_sql(&self) -> String {
        format!("{} WHERE m.ROWID > ? ORDER BY m.ROWID LIMIT ?", self.message_select())
    }

    /// Messages with `ROWID > after`, at most `limit` rows, in ROWID order.
    pub async fn messages_after(&self, chats: &Conversations, after: i64, limit: i64, own: &str) -> Result<MessagePage> {
        let sql = self.message_page_sql();
        let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(self.pool()).await?;
        self.page(chats, rows, own).await
    }

    /// Messages read before (`ROWID <= upto`) that were edited or unsent after `changed_ns`.
    pub async fn changed_since(&self, chats: &Conversations, changed_ns: i64, upto: i64, own: &str) -> Result<MessagePage> {
        let cols: Vec<&str> = ["date_edited", "date_retracted"].into_iter().filter(|c| self.schema.has("message", c)).collect();
        if cols.is_empty() {
            return Ok(MessagePage::default());
        }
        // The columns hold ns (or, in theory, seconds): compare in both units.
        let secs = changed_ns / 1_000_000_000;
        let cond: Vec<String> = cols.iter().map(|c| format!("(m.{c} > ?1 OR (m.{c} > ?2 AND m.{c} < 1000000000000))")).collect();
        let sql = format!("{} WHERE m.ROWID <= ?3 AND ({}) ORDER BY m.ROWID", self.message_select(), cond.join(" OR "));
        let rows = sqlx::query(&sql).bind(changed_ns).bind(secs).bind(upto).fetch_all(self.pool()).await?;
        self.page(chats, rows, own).await
    }

    async fn page(&self, chats: &Conversations, rows: Vec<SqliteRow>, own: &str) -> Result<MessagePage> {
        let mut page = MessagePage { rows: rows.len(), ..Default::default() };
        let Some(first) = rows.first().and_then(|r| r.try_get::<i64, _>("rowid").ok()) else { return Ok(page) };
        let last = rows.last().and_then(|r| r.try_get::<i64, _>("rowid").ok()).unwrap_or(first);
        page.last_rowid = last;
        let joined = self.attachments_of(first, last).await?;
        let mut seen = std::collections::HashSet::new();
        let mut handles = Handles::default();
        for row in &rows {
            let rowid: i64 = row.try_get("rowid").unwrap_or(0);
            // A message in two chats (it happens after merges) is read once, in its first.
            if !seen.insert(rowid) {
                page.rows -= 1;
                continue;
            }
            match self.message(row, chats, joined.get(&rowid).map(Vec::as_slice).unwrap_or(&[]), own, &mut handles) {
                Ok(m) => page.records.push(m),
                Err(reason) => page.skipped.push(Skipped { table: "message", rowid, reason }),
            }
        }
        Ok(page)
    }

    /// Transfer GUIDs of each message's attachments (ROWIDs `first..=last`), in join order.
    async fn attachments_of(&self, first: i64, last: i64) -> Result<BTreeMap<i64, Vec<String>>> {
        let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        if !self.schema.has_table("message_attachment_join") || !self.schema.has_table("attachment") {
            return Ok(out);
        }
        let sql = "SELECT j.message_id AS message, a.guid AS guid FROM message_attachment_join j JOIN attachment a ON a.ROWID = j.attachment_id \
                   WHERE j.message_id BETWEEN ? AND ? ORDER BY j.message_id, a.ROWID";
        for row in sqlx::query(sql).bind(first).bind(last).fetch_all(self.pool()).await? {
            if let (Ok(m), Ok(g)) = (row.try_get::<i64, _>("message"), row.try_get::<String, _>("guid")) {
                out.entry(m).or_default().push(g);
            }
        }
        Ok(out)
    }

    fn message(&self, row: &SqliteRow, chats: &Conversations, attachments: &[String], own: &str, handles: &mut Handles) -> Result<MessageRecord, String> {
        let guid: String = row.try_get("guid").map_err(|e| format!("no guid: {e}"))?;
        let chat_rowid: Option<i64> = opt(row, "chat_rowid");
        let chat = chat_rowid.and_then(|c| chats.of_rowid(c)).ok_or_else(|| format!("message {guid} is in no chat"))?;
        let date: i64 = opt(row, "date").ok_or_else(|| format!("message {guid} has no date"))?;
        let blob = |name: &str| -> Option<Vec<u8>> { row.try_get::<Option<Vec<u8>>, _>(name).ok().flatten() };
        let text_col: Option<String> = opt_text(row, "text");
        let body = blob("attributedBody");
        let summary = blob("message_summary_info");
        let payload = blob("payload_data");
        let balloon: Option<String> = opt_text(row, "balloon_bundle_id");
        let effect: Option<String> = opt_text(row, "expressive_send_style_id");
        let (mut content, body_text) = decode_message_content_and_text(&MessageBlobs {
            attributed_body: body.as_deref(),
            message_summary_info: summary.as_deref(),
            payload_data: payload.as_deref(),
            balloon_bundle_id: balloon.as_deref(),
            effect: effect.as_deref(),
            date_read_ns: opt::<i64>(row, "date_read").map(apple_date_to_ns),
            date_delivered_ns: opt::<i64>(row, "date_delivered").map(apple_date_to_ns),
        });
        // macOS 13+ leaves `text` NULL: the text is the body's string, as in CloudKit's `text`.
        let text = text_col.or(body_text.filter(|t| !t.is_empty()));
        if content.parts.iter().all(|p| !matches!(p, ContentPart::Attachment { .. })) && !attachments.is_empty() {
            content.parts = parts_from_join(text.as_deref().unwrap_or(""), attachments);
        }
        if opt::<i64>(row, "date_retracted").unwrap_or(0) > 0 && content.edits.is_empty() {
            content.unsent = true;
        }
        content.reply_to = opt_text(row, "thread_originator_guid").map(|g| match opt_text(row, "thread_originator_part").as_deref().and_then(part_number) {
            Some(part) if part > 0 => AssociationTarget::part_of(&g, part).to_string(),
            _ => g,
        });
        content.associated_emoji = opt_text(row, "associated_message_emoji");

        let from_me = opt::<i64>(row, "is_from_me").unwrap_or(0) != 0;
        let item_type = opt::<i64>(row, "item_type").unwrap_or(0);
        let system = item_type != 0 || opt::<i64>(row, "is_system_message").unwrap_or(0) != 0 || opt::<i64>(row, "is_service_message").unwrap_or(0) != 0;
        let mut flags = if from_me { FLAG_FROM_ME } else { 0 };
        let sender = if system {
            flags |= FLAG_SYSTEM;
            String::new()
        } else if from_me {
            opt_text(row, "destination_caller_id")
                .or_else(|| opt_text(row, "account"))
                .map(|h| handles.canonical(self, h, None))
                .filter(|h| h.starts_with("tel:") || h.starts_with("mailto:"))
                .unwrap_or_else(|| own.to_string())
        } else {
            match opt_text(row, "sender_id") {
                Some(id) => handles.canonical(self, id, opt_text(row, "sender_country")),
                // An incoming message with no handle: in a DM, the other person.
                None if chat.style != STYLE_GROUP => chat.participants.first().cloned().unwrap_or_default(),
                None => return Err(format!("incoming message {guid} in a group names no sender")),
            }
        };
        let associated_type = opt::<i64>(row, "associated_message_type")
            .filter(|t| *t != 0)
            .and_then(|t| u32::try_from(t).ok())
            // One number for a placed sticker, whatever generation wrote it.
            .map(|t| AssociatedType::parse(t).normalized().code());
        Ok(MessageRecord {
            record_name: opt_text(row, "ck_record_id").unwrap_or_else(|| guid.clone()),
            guid,
            chat_id: chat.chat_id.clone(),
            sender,
            flags,
            ts_ms: apple_date_to_unix_ms(date),
            text,
            subject: opt_text(row, "subject"),
            associated_type,
            associated_guid: associated_type.and(opt_text(row, "associated_message_guid")),
            service: opt_text(row, "service"),
            content,
        })
    }
}

/// Handles canonicalized so far on a page: a page names a few people many times, and parsing a
/// phone number is the costliest step of reading a row.
#[derive(Default)]
struct Handles {
    seen: HashMap<(String, Option<String>), String>,
}

impl Handles {
    fn canonical(&mut self, db: &ChatDb, raw: String, country: Option<String>) -> String {
        self.seen.entry((raw, country)).or_insert_with_key(|(raw, country)| db.canonical(raw, country.as_deref())).clone()
    }
}

fn opt<T>(row: &SqliteRow, name: &str) -> Option<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get::<Option<T>, _>(name).ok().flatten()
}

/// A text column, None when NULL, empty, or not text at all (Messages has stored numbers in
/// text columns).
fn opt_text(row: &SqliteRow, name: &str) -> Option<String> {
    opt::<String>(row, name).filter(|s| !s.is_empty())
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
}
