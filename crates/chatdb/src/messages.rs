//! `message` rows, a page at a time: the queries, and the rows they return before decoding
//! ([`MessageRows`]), so that a caller can decode a page ([`crate::MessageDecoder`], in
//! `decode.rs`) on another thread while it reads the next one. [`ChatDb::messages_after`] and
//! [`ChatDb::changed_since`] do both in one call.

use std::collections::BTreeMap;

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::decode::MessageDecoder;
use crate::rows::{MessagePage, MessageRows, MESSAGE_COLUMNS, ROWID};
use crate::{ChatDb, Conversations, Result};

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
