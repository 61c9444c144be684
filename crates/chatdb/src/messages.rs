//! `message` rows, a page at a time: the queries, and the rows they return before decoding
//! ([`MessageRows`]), so that a caller can decode a page ([`crate::MessageDecoder`], in
//! `decode.rs`) on another thread while it reads the next one. [`ChatDb::messages_after`] and
//! [`ChatDb::changed_since`] do both in one call.

use std::collections::BTreeMap;

use imessage::records::MessageRecord;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::decode::{MessageDecoder, ROWID};
use crate::{ChatDb, Conversations, Result, Skipped};

/// The columns read from `message`, each NULL where the database lacks it (in this order:
/// `decode.rs` reads them by position).
pub(crate) const MESSAGE_COLUMNS: [&str; 27] = [
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

impl MessagePage {
    /// Adds a later piece of the same page (see [`MessageRows::split`]).
    pub fn append(&mut self, piece: MessagePage) {
        self.records.extend(piece.records);
        self.skipped.extend(piece.skipped);
        self.last_rowid = self.last_rowid.max(piece.last_rowid);
        self.rows += piece.rows;
    }
}

/// A page of `message` rows as read, with the transfer GUIDs of their attachments, not yet
/// decoded. Holds its values (no borrow of the database), so it can go to another thread.
#[derive(Default)]
pub struct MessageRows {
    pub(crate) rows: Vec<SqliteRow>,
    pub(crate) attachments: BTreeMap<i64, Vec<String>>,
}

impl MessageRows {
    /// Rows read (a message in two chats counts twice).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The highest ROWID read (0 for no rows).
    pub fn last_rowid(&self) -> i64 {
        self.rows.iter().filter_map(|r| r.try_get::<i64, _>(ROWID).ok()).max().unwrap_or(0)
    }

    /// Cuts the page into at most `pieces` runs of rows, in order, never between two rows of
    /// the same message, each with its messages' attachments: decoded apart and appended in
    /// order, they give the page [`MessageDecoder::decode`] gives for the whole.
    pub fn split(self, pieces: usize) -> Vec<MessageRows> {
        let MessageRows { mut rows, mut attachments } = self;
        let size = rows.len().div_ceil(pieces.max(1)).max(1);
        let mut out = Vec::new();
        while rows.len() > size {
            let mut cut = size;
            let rowid = |i: usize| rows.get(i).and_then(|r| r.try_get::<i64, _>(ROWID).ok());
            while cut < rows.len() && rowid(cut) == rowid(cut - 1) {
                cut += 1;
            }
            if cut == rows.len() {
                break;
            }
            let first_after = rowid(cut).unwrap_or(i64::MAX);
            let rest = rows.split_off(cut);
            let rest_attachments = attachments.split_off(&first_after);
            out.push(MessageRows { rows, attachments });
            rows = rest;
            attachments = rest_attachments;
        }
        out.push(MessageRows { rows, attachments });
        out
    }
}

impl ChatDb {
    /// What decodes this database's rows: the owner's handle `own` for sent messages whose row
    /// names none, and the database's default region for phone numbers.
    pub fn message_decoder(&self, own: &str) -> MessageDecoder {
        MessageDecoder { region: self.region.clone(), own: own.to_string() }
    }

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
        let rows = self.message_rows_after(after, limit).await?;
        Ok(self.message_decoder(own).decode(chats, rows))
    }

    /// The rows of [`ChatDb::messages_after`], not yet decoded.
    pub async fn message_rows_after(&self, after: i64, limit: i64) -> Result<MessageRows> {
        let sql = self.message_page_sql();
        let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(self.pool()).await?;
        self.with_attachments(rows).await
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
        let rows = self.with_attachments(rows).await?;
        Ok(self.message_decoder(own).decode(chats, rows))
    }

    async fn with_attachments(&self, rows: Vec<SqliteRow>) -> Result<MessageRows> {
        let rowids = rows.iter().filter_map(|r| r.try_get::<i64, _>(ROWID).ok());
        let attachments = match (rowids.clone().min(), rowids.max()) {
            (Some(first), Some(last)) => self.attachments_of(first, last).await?,
            _ => BTreeMap::new(),
        };
        Ok(MessageRows { rows, attachments })
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
}
