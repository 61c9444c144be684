//! What both backends share: turning a page's changes into per-table batches, value conversions,
//! NULL-safe row → struct mapping, and the read queries whose SQL is identical in both dialects.
//!
//! Why here: the rules that decide what a stored row *means* (which NULLs are allowed, what a bad
//! participants list or stop reason is) must not differ between SQLite and PostgreSQL, or the
//! conformance suite would be testing two stores. The writes stay per backend, because fast batch
//! writes look different in each (multi-row `VALUES` vs `UNNEST` of arrays).

use std::collections::HashMap;

use imessage::records::{
    AttachmentDetails, AttachmentRecord, ChatRecord, MessageContent, MessageRecord, RecordChange, ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE,
};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::{Chat, FailedRecord, Result, StoreError};

/// The net effect of a list of changes applied in order, as per-table batches that can be
/// written in any order: first `deleted` (from every table), then the upserts.
///
/// Within a batch each `record_name` appears once (the last upsert wins), which PostgreSQL's
/// `ON CONFLICT DO UPDATE` requires; an upsert followed by a deletion of the same name drops the
/// upsert, and a deletion followed by an upsert keeps both (delete first, then insert).
#[derive(Default)]
pub(crate) struct Plan<'a> {
    pub chats: Vec<&'a ChatRecord>,
    pub messages: Vec<&'a MessageRecord>,
    pub attachments: Vec<&'a AttachmentRecord>,
    pub deleted: Vec<&'a str>,
    /// Every record name the changes touch: their failed-record entries are obsolete.
    pub touched: Vec<&'a str>,
}

impl<'a> Plan<'a> {
    pub fn new(changes: &'a [RecordChange]) -> Plan<'a> {
        // (table, name) -> index of the pending upsert in its Vec; None slots are dropped later.
        let mut chats: Vec<Option<&ChatRecord>> = Vec::new();
        let mut messages: Vec<Option<&MessageRecord>> = Vec::new();
        let mut attachments: Vec<Option<&AttachmentRecord>> = Vec::new();
        let mut index: HashMap<(u8, &str), usize> = HashMap::with_capacity(changes.len());
        let mut plan = Plan { touched: Vec::with_capacity(changes.len()), ..Plan::default() };
        fn put<'a, T>(slots: &mut Vec<Option<&'a T>>, index: &mut HashMap<(u8, &'a str), usize>, key: (u8, &'a str), rec: &'a T) {
            match index.get(&key) {
                Some(&i) => slots[i] = Some(rec),
                None => {
                    index.insert(key, slots.len());
                    slots.push(Some(rec));
                }
            }
        }
        for change in changes {
            match change {
                RecordChange::Chat(r) => put(&mut chats, &mut index, (0, &r.record_name), r),
                RecordChange::Message(r) => put(&mut messages, &mut index, (1, &r.record_name), r),
                RecordChange::Attachment(r) => put(&mut attachments, &mut index, (2, &r.record_name), r),
                RecordChange::Deleted { record_name } => {
                    let name = record_name.as_str();
                    if let Some(i) = index.remove(&(0, name)) {
                        chats[i] = None;
                    }
                    if let Some(i) = index.remove(&(1, name)) {
                        messages[i] = None;
                    }
                    if let Some(i) = index.remove(&(2, name)) {
                        attachments[i] = None;
                    }
                    plan.deleted.push(name);
                }
            }
            plan.touched.push(change_name(change));
        }
        plan.chats = chats.into_iter().flatten().collect();
        plan.messages = messages.into_iter().flatten().collect();
        plan.attachments = attachments.into_iter().flatten().collect();
        plan
    }
}

fn change_name(change: &RecordChange) -> &str {
    match change {
        RecordChange::Chat(r) => &r.record_name,
        RecordChange::Message(r) => &r.record_name,
        RecordChange::Attachment(r) => &r.record_name,
        RecordChange::Deleted { record_name } => record_name,
    }
}

/// Failed records deduplicated by (zone, record_name), last one wins, in first-seen order.
pub(crate) fn dedup_failed(failed: &[FailedRecord]) -> Vec<&FailedRecord> {
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(failed.len());
    let mut out: Vec<&FailedRecord> = Vec::with_capacity(failed.len());
    for f in failed {
        match index.get(&(f.zone.as_str(), f.record_name.as_str())) {
            Some(&i) => out[i] = f,
            None => {
                index.insert((&f.zone, &f.record_name), out.len());
                out.push(f);
            }
        }
    }
    out
}

/// JSON array of strings, the portable way to pass a list as one parameter (`json_each` in
/// SQLite) and to store participants.
pub(crate) fn json_strings<S: AsRef<str> + serde::Serialize>(items: &[S]) -> String {
    // Serializing strings cannot fail; fall back to an empty list rather than panic.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
}

/// The table holding a zone's records, None for a zone the store does not keep records of.
pub(crate) fn table_for_zone(zone: &str) -> Option<&'static str> {
    match zone {
        CHAT_ZONE => Some("chat_records"),
        MESSAGE_ZONE => Some("messages"),
        ATTACHMENT_ZONE => Some("attachments"),
        _ => None,
    }
}

/// `flags` is a bit set: stored as the i64 with the same bits, so no flag is ever lost.
pub(crate) fn flags_to_db(flags: u64) -> i64 {
    flags as i64
}

pub(crate) fn asset_size_to_db(size: Option<u64>) -> Result<Option<i64>> {
    size.map(|s| i64::try_from(s).map_err(|_| StoreError::Corrupt { what: "attachments.asset_size", detail: format!("{s} exceeds i64") })).transpose()
}

/// A JSON column's value: the JSON of `value`, or NULL when it is its type's default (most
/// rows, which then cost neither a serialization nor a byte).
fn json_or_null<T: serde::Serialize + Default + PartialEq>(value: &T, what: &'static str) -> Result<Option<String>> {
    if *value == T::default() {
        return Ok(None);
    }
    serde_json::to_string(value).map(Some).map_err(|e| StoreError::Corrupt { what, detail: format!("cannot serialize: {e}") })
}

/// A JSON column read back: the default for NULL, [`StoreError::Corrupt`] for anything that is
/// not the JSON of a `T`.
fn json_or_default<T: serde::de::DeserializeOwned + Default>(raw: Option<String>, what: &'static str) -> Result<T> {
    let Some(raw) = raw else { return Ok(T::default()) };
    serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt { what, detail: format!("{e}: {raw:.80}") })
}

/// The stored form of a message's content.
pub(crate) fn content_to_db(content: &MessageContent) -> Result<Option<String>> {
    json_or_null(content, "messages.content")
}

/// The stored form of an attachment's details.
pub(crate) fn details_to_db(details: &AttachmentDetails) -> Result<Option<String>> {
    json_or_null(details, "attachments.details")
}

fn details_from_db(raw: Option<String>) -> Result<AttachmentDetails> {
    json_or_default(raw, "attachments.details")
}

/// The content a `content` column holds.
pub(crate) fn content_from_db(raw: Option<String>) -> Result<MessageContent> {
    json_or_default(raw, "messages.content")
}

/// Shared read queries: `$N` placeholders work in SQLite too, and the schema makes ordering
/// byte-wise in both.
pub(crate) mod sql {
    pub const CHAT_RECORDS: &str = "SELECT record_name, chat_id, group_id, style, display_name, participants, service, \
         modified_ms FROM chat_records ORDER BY record_name";
    pub const CHATS: &str = "SELECT chat_id, group_id, style, display_name, participants, modified_ms FROM (\
           SELECT chat_id, group_id, style, display_name, participants, modified_ms, ROW_NUMBER() OVER (\
             PARTITION BY chat_id ORDER BY modified_ms DESC, record_name DESC) AS rn FROM chat_records\
         ) newest WHERE rn = 1 ORDER BY chat_id";
    pub const MESSAGES_IN_CHAT: &str = "SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
         associated_type, associated_guid, service, content FROM messages WHERE chat_id = $1 ORDER BY ts_ms, guid";
    pub const MESSAGE_GUIDS: &str = "SELECT guid FROM messages";
    /// Messages with a content blob that did not decode (their content JSON names the failures).
    pub const UNDECODABLE: &str = "SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
         associated_type, associated_guid, service, content FROM messages WHERE content LIKE '%\"undecodable\"%' \
         ORDER BY ts_ms, guid";
    pub const ATTACHMENTS: &str = "SELECT record_name, guid, mime_type, filename, total_bytes, asset_size, details \
         FROM attachments ORDER BY record_name";
    pub const FAILED: &str = "SELECT zone, record_name, reason, pending FROM failed_records WHERE zone = $1 \
         ORDER BY record_name";
    pub const PORTAL: &str = "SELECT chat_id, room_id, name FROM portals WHERE chat_id = $1";
    pub const PORTALS: &str = "SELECT chat_id, room_id, name FROM portals ORDER BY chat_id";
    pub const SAVE_PORTAL: &str = "INSERT INTO portals (chat_id, room_id, name) VALUES ($1, $2, $3) \
         ON CONFLICT (chat_id) DO UPDATE SET room_id = excluded.room_id, name = excluded.name";
    /// Non-system messages of a chat without a ledger row, in delivery order. 147456 masks the
    /// system (1<<14) and service (1<<17) flags.
    pub const UNDELIVERED: &str = "SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
         associated_type, associated_guid, service, content FROM messages m WHERE chat_id = $1 AND (flags & 147456) = 0 \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.guid = m.guid) ORDER BY ts_ms, guid";
    pub const BEGIN_DELIVERY: &str = "INSERT INTO deliveries (guid, chat_id, txn_id, event_id) VALUES ($1, $2, $3, NULL) \
         ON CONFLICT (guid) DO UPDATE SET chat_id = excluded.chat_id, txn_id = excluded.txn_id, event_id = NULL";
    pub const FINISH_DELIVERY: &str = "UPDATE deliveries SET event_id = $2 WHERE guid = $1";
    pub const FORGET_DELIVERY: &str = "DELETE FROM deliveries WHERE guid = $1";
    pub const IN_FLIGHT: &str = "SELECT guid, chat_id, txn_id, event_id FROM deliveries \
         WHERE chat_id = $1 AND event_id IS NULL ORDER BY guid";
    pub const DELIVERED_EVENT: &str = "SELECT event_id FROM deliveries WHERE guid = $1 AND event_id IS NOT NULL";
    pub const DELIVERED_COUNT: &str = "SELECT COUNT(*) FROM deliveries WHERE event_id IS NOT NULL";
    pub const SYNC_VERSION: &str = "SELECT value FROM meta WHERE key = 'sync_version'";
    pub const SET_SYNC_VERSION: &str = "INSERT INTO meta (key, value) VALUES ('sync_version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value";
}

/// NULL-safe typed column access: a NULL in a non-optional column, or a value of the wrong type,
/// is reported as [`StoreError::Corrupt`] naming the column instead of panicking.
pub(crate) trait RowExt {
    fn text(&self, col: &'static str) -> Result<String>;
    fn opt_text(&self, col: &'static str) -> Result<Option<String>>;
    fn int(&self, col: &'static str) -> Result<i64>;
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>>;
    fn boolean(&self, col: &'static str) -> Result<bool>;
    fn opt_bool(&self, col: &'static str) -> Result<Option<bool>>;
    fn opt_bytes(&self, col: &'static str) -> Result<Option<Vec<u8>>>;
}

fn column_error(col: &'static str, e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt { what: col, detail: source.to_string() },
        other => StoreError::Database(other),
    }
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, col: &'static str) -> Result<String> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn int(&self, col: &'static str) -> Result<i64> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_int(&self, col: &'static str) -> Result<Option<i64>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn boolean(&self, col: &'static str) -> Result<bool> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_bool(&self, col: &'static str) -> Result<Option<bool>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_bytes(&self, col: &'static str) -> Result<Option<Vec<u8>>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
        }
    };
}
impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

fn participants(row: &impl RowExt) -> Result<Vec<String>> {
    let raw = row.text("participants")?;
    serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt { what: "chat_records.participants", detail: format!("{e}: {raw:.80}") })
}

pub(crate) fn chat_record(row: &impl RowExt) -> Result<ChatRecord> {
    Ok(ChatRecord {
        record_name: row.text("record_name")?,
        chat_id: row.text("chat_id")?,
        group_id: row.opt_text("group_id")?,
        style: row.int("style")?,
        display_name: row.opt_text("display_name")?,
        participants: participants(row)?,
        service: row.opt_text("service")?,
        modified_ms: row.int("modified_ms")?,
    })
}

pub(crate) fn chat(row: &impl RowExt) -> Result<Chat> {
    Ok(Chat {
        chat_id: row.text("chat_id")?,
        group_id: row.opt_text("group_id")?,
        style: row.int("style")?,
        display_name: row.opt_text("display_name")?,
        participants: participants(row)?,
        modified_ms: row.int("modified_ms")?,
    })
}

pub(crate) fn message(row: &impl RowExt) -> Result<MessageRecord> {
    let associated_type = row
        .opt_int("associated_type")?
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt { what: "messages.associated_type", detail: format!("{v} is not a u32") }))
        .transpose()?;
    Ok(MessageRecord {
        record_name: row.text("record_name")?,
        guid: row.text("guid")?,
        chat_id: row.text("chat_id")?,
        sender: row.text("sender")?,
        flags: row.int("flags")? as u64, // bit-preserving, see flags_to_db
        ts_ms: row.int("ts_ms")?,
        text: row.opt_text("text")?,
        subject: row.opt_text("subject")?,
        associated_type,
        associated_guid: row.opt_text("associated_guid")?,
        service: row.opt_text("service")?,
        content: content_from_db(row.opt_text("content")?)?,
    })
}

pub(crate) fn portal(row: &impl RowExt) -> Result<crate::Portal> {
    Ok(crate::Portal { chat_id: row.text("chat_id")?, room_id: row.text("room_id")?, name: row.opt_text("name")? })
}

pub(crate) fn ledger_entry(row: &impl RowExt) -> Result<crate::LedgerEntry> {
    Ok(crate::LedgerEntry { guid: row.text("guid")?, chat_id: row.text("chat_id")?, txn_id: row.text("txn_id")?, event_id: row.opt_text("event_id")? })
}

pub(crate) fn attachment(row: &impl RowExt) -> Result<AttachmentRecord> {
    let asset_size = row
        .opt_int("asset_size")?
        .map(|v| u64::try_from(v).map_err(|_| StoreError::Corrupt { what: "attachments.asset_size", detail: format!("{v} is negative") }))
        .transpose()?;
    Ok(AttachmentRecord {
        record_name: row.text("record_name")?,
        guid: row.text("guid")?,
        mime_type: row.opt_text("mime_type")?,
        filename: row.opt_text("filename")?,
        total_bytes: row.int("total_bytes")?,
        asset_size,
        details: details_from_db(row.opt_text("details")?)?,
    })
}

pub(crate) fn failed_record(row: &impl RowExt) -> Result<FailedRecord> {
    Ok(FailedRecord { zone: row.text("zone")?, record_name: row.text("record_name")?, reason: row.text("reason")?, pending: row.boolean("pending")? })
}

pub(crate) fn sync_version(value: Option<String>) -> Result<Option<i64>> {
    value.map(|v| v.parse::<i64>().map_err(|e| StoreError::Corrupt { what: "meta.sync_version", detail: format!("{v:?}: {e}") })).transpose()
}

#[cfg(test)]
#[path = "common_tests.rs"]
mod tests;

/// Emits a backend's `impl Store`: the methods given in braces (the backend-specific ones) plus
/// every method whose SQL is the same on SQLite and PostgreSQL, run on the `read` / `write` pool
/// fields; `now` is the backend's SQL for the current time. One place for the shared queries
/// keeps the backends from drifting apart. The backend also provides an inherent
/// `async fn settle_messages(&self) -> Result<()>` that makes every committed message visible in
/// `messages`; it runs before each read of that table.
macro_rules! impl_store {
    ($ty:ty, read: $read:ident, write: $write:ident, now: $now:expr, { $($specific:tt)* }) => {
        #[async_trait::async_trait]
        impl crate::Store for $ty {
            $($specific)*

            async fn set_stop(&self, zone: &str, reason: crate::StopReason, last_error: Option<&str>) -> Result<()> {
                sqlx::query(&crate::zones::set_stop($now))
                    .bind(zone)
                    .bind(reason.as_str())
                    .bind(last_error)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn set_server_summary(&self, zone: &str, summary: &[i64]) -> Result<()> {
                sqlx::query(&crate::zones::set_server_summary($now))
                    .bind(zone)
                    .bind(summary.first().copied())
                    .bind(crate::zones::summary_to_db(summary))
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn clear_tokens(&self) -> Result<()> {
                sqlx::query(&crate::zones::clear_tokens($now)).execute(&self.$write).await?;
                Ok(())
            }

            async fn stored_count(&self, zone: &str) -> Result<i64> {
                let Some(table) = crate::common::table_for_zone(zone) else { return Ok(0) };
                if table == "messages" {
                    self.settle_messages().await?;
                }
                Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.$read).await?)
            }

            async fn failed_records(&self, zone: &str) -> Result<Vec<FailedRecord>> {
                let rows = sqlx::query(sql::FAILED).bind(zone).fetch_all(&self.$read).await?;
                rows.iter().map(common::failed_record).collect()
            }

            async fn zone_state(&self, zone: &str) -> Result<Option<ZoneState>> {
                let row = sqlx::query(&crate::zones::select_one()).bind(zone).fetch_optional(&self.$read).await?;
                row.as_ref().map(crate::zones::zone_state).transpose()
            }

            async fn zone_states(&self) -> Result<Vec<ZoneState>> {
                let rows = sqlx::query(&crate::zones::select_all()).fetch_all(&self.$read).await?;
                rows.iter().map(crate::zones::zone_state).collect()
            }

            async fn sync_version(&self) -> Result<Option<i64>> {
                let value: Option<String> = sqlx::query_scalar(sql::SYNC_VERSION).fetch_optional(&self.$read).await?;
                common::sync_version(value)
            }

            async fn set_sync_version(&self, version: i64) -> Result<()> {
                sqlx::query(sql::SET_SYNC_VERSION).bind(version.to_string()).execute(&self.$write).await?;
                Ok(())
            }

            async fn chats(&self) -> Result<Vec<Chat>> {
                let rows = sqlx::query(sql::CHATS).fetch_all(&self.$read).await?;
                rows.iter().map(common::chat).collect()
            }

            async fn messages_in_chat(&self, chat_id: &str) -> Result<Vec<MessageRecord>> {
                self.settle_messages().await?;
                let rows = sqlx::query(sql::MESSAGES_IN_CHAT).bind(chat_id).fetch_all(&self.$read).await?;
                rows.iter().map(common::message).collect()
            }

            async fn message_guids(&self) -> Result<Vec<String>> {
                self.settle_messages().await?;
                Ok(sqlx::query_scalar(sql::MESSAGE_GUIDS).fetch_all(&self.$read).await?)
            }

            async fn undecodable_messages(&self) -> Result<Vec<MessageRecord>> {
                self.settle_messages().await?;
                let rows = sqlx::query(sql::UNDECODABLE).fetch_all(&self.$read).await?;
                let messages: Vec<MessageRecord> = rows.iter().map(common::message).collect::<Result<_>>()?;
                Ok(messages.into_iter().filter(|m| !m.content.undecodable.is_empty()).collect())
            }

            async fn chat_records(&self) -> Result<Vec<ChatRecord>> {
                let rows = sqlx::query(sql::CHAT_RECORDS).fetch_all(&self.$read).await?;
                rows.iter().map(common::chat_record).collect()
            }

            async fn attachments(&self) -> Result<Vec<AttachmentRecord>> {
                let rows = sqlx::query(sql::ATTACHMENTS).fetch_all(&self.$read).await?;
                rows.iter().map(common::attachment).collect()
            }

            async fn files_to_fetch(&self, after: &str, max_attempts: i64, limit: i64) -> Result<Vec<AttachmentRecord>> {
                let rows = sqlx::query(crate::files::TO_FETCH).bind(after).bind(max_attempts).bind(limit).fetch_all(&self.$read).await?;
                rows.iter().map(common::attachment).collect()
            }

            async fn record_file(&self, record_name: &str, outcome: &crate::FileOutcome) -> Result<()> {
                let (state, sha256, bytes, error) = crate::files::outcome_columns(outcome);
                sqlx::query(crate::files::RECORD)
                    .bind(record_name)
                    .bind(state)
                    .bind(sha256)
                    .bind(bytes)
                    .bind(error)
                    .bind(crate::files::now_ms())
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn attachment_files(&self) -> Result<Vec<crate::AttachmentFile>> {
                let rows = sqlx::query(crate::files::ALL).fetch_all(&self.$read).await?;
                rows.iter().map(crate::files::file).collect()
            }

            async fn attachment_by_transfer_guid(&self, guid: &str) -> Result<Option<(AttachmentRecord, Option<crate::AttachmentFile>)>> {
                let row = sqlx::query(crate::files::BY_TRANSFER_GUID).bind(guid).fetch_optional(&self.$read).await?;
                row.map(|row| Ok((common::attachment(&row)?, crate::files::joined_file(&row)?))).transpose()
            }

            async fn file_summary(&self) -> Result<crate::FileSummary> {
                let row = sqlx::query(crate::files::SUMMARY).fetch_one(&self.$read).await?;
                crate::files::summary(&row)
            }

            async fn portal(&self, chat_id: &str) -> Result<Option<crate::Portal>> {
                let row = sqlx::query(sql::PORTAL).bind(chat_id).fetch_optional(&self.$read).await?;
                row.as_ref().map(common::portal).transpose()
            }

            async fn portals(&self) -> Result<Vec<crate::Portal>> {
                let rows = sqlx::query(sql::PORTALS).fetch_all(&self.$read).await?;
                rows.iter().map(common::portal).collect()
            }

            async fn save_portal(&self, portal: &crate::Portal) -> Result<()> {
                sqlx::query(sql::SAVE_PORTAL).bind(&portal.chat_id).bind(&portal.room_id).bind(&portal.name).execute(&self.$write).await?;
                Ok(())
            }

            async fn undelivered(&self, chat_id: &str) -> Result<Vec<MessageRecord>> {
                self.settle_messages().await?;
                let rows = sqlx::query(sql::UNDELIVERED).bind(chat_id).fetch_all(&self.$read).await?;
                rows.iter().map(common::message).collect()
            }

            async fn begin_delivery(&self, guid: &str, chat_id: &str, txn_id: &str) -> Result<()> {
                sqlx::query(sql::BEGIN_DELIVERY).bind(guid).bind(chat_id).bind(txn_id).execute(&self.$write).await?;
                Ok(())
            }

            async fn finish_delivery(&self, guid: &str, event_id: &str) -> Result<()> {
                sqlx::query(sql::FINISH_DELIVERY).bind(guid).bind(event_id).execute(&self.$write).await?;
                Ok(())
            }

            async fn forget_delivery(&self, guid: &str) -> Result<()> {
                sqlx::query(sql::FORGET_DELIVERY).bind(guid).execute(&self.$write).await?;
                Ok(())
            }

            async fn in_flight(&self, chat_id: &str) -> Result<Vec<crate::LedgerEntry>> {
                let rows = sqlx::query(sql::IN_FLIGHT).bind(chat_id).fetch_all(&self.$read).await?;
                rows.iter().map(common::ledger_entry).collect()
            }

            async fn delivered_event(&self, guid: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(sql::DELIVERED_EVENT).bind(guid).fetch_optional(&self.$read).await?)
            }

            async fn delivered_count(&self) -> Result<i64> {
                Ok(sqlx::query_scalar(sql::DELIVERED_COUNT).fetch_one(&self.$read).await?)
            }

            async fn room_deliveries(&self) -> Result<Vec<crate::RoomDelivery>> {
                self.settle_messages().await?;
                let rows = sqlx::query(crate::rooms::ROOM_DELIVERIES).fetch_all(&self.$read).await?;
                rows.iter().map(crate::rooms::room_delivery).collect()
            }

            async fn ghost_profile(&self, handle: &str) -> Result<Option<crate::GhostProfileRow>> {
                let row = sqlx::query(&crate::profiles::ghost_profile_sql()).bind(handle).fetch_optional(&self.$read).await?;
                row.as_ref().map(crate::profiles::ghost_profile).transpose()
            }
            async fn ghost_profiles(&self) -> Result<Vec<crate::GhostProfileRow>> {
                sqlx::query(&crate::profiles::ghost_profiles_sql()).fetch_all(&self.$read).await?.iter().map(crate::profiles::ghost_profile).collect()
            }
            async fn save_ghost_profile(&self, p: &crate::GhostProfileRow) -> Result<()> {
                let q = sqlx::query(crate::profiles::SAVE_GHOST_PROFILE).bind(&p.handle).bind(&p.display_name);
                q.bind(&p.avatar_sha256).bind(&p.avatar_mxc).bind(p.updated_ms).execute(&self.$write).await?;
                Ok(())
            }
            async fn avatar_upload(&self, sha256: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(crate::profiles::AVATAR_UPLOAD).bind(sha256).fetch_optional(&self.$read).await?)
            }
            async fn save_avatar_upload(&self, sha256: &str, mxc: &str) -> Result<()> {
                sqlx::query(crate::profiles::SAVE_AVATAR_UPLOAD).bind(sha256).bind(mxc).bind(crate::rooms::now_ms()).execute(&self.$write).await?;
                Ok(())
            }
            async fn set_room_live(&self, chat_id: &str) -> Result<()> {
                sqlx::query(crate::rooms::SET_ROOM_LIVE).bind(chat_id).bind(crate::rooms::now_ms()).execute(&self.$write).await?;
                Ok(())
            }

            async fn set_delivery_error(&self, chat_id: &str, error: Option<&str>) -> Result<()> {
                let q = match error {
                    Some(e) => sqlx::query(crate::rooms::SET_DELIVERY_ERROR).bind(chat_id).bind(e).bind(crate::rooms::now_ms()),
                    None => sqlx::query(crate::rooms::CLEAR_DELIVERY_ERROR).bind(chat_id),
                };
                q.execute(&self.$write).await?;
                Ok(())
            }

            async fn count_owner_message(&self, chat_id: &str) -> Result<crate::OwnerMessages> {
                let row = sqlx::query(crate::rooms::COUNT_OWNER_MESSAGE).bind(chat_id).fetch_one(&self.$write).await?;
                crate::rooms::owner_messages(&row)
            }

            async fn set_owner_notice(&self, chat_id: &str, at_ms: i64) -> Result<()> {
                sqlx::query(crate::rooms::SET_OWNER_NOTICE).bind(chat_id).bind(at_ms).execute(&self.$write).await?;
                Ok(())
            }

            async fn record_refusal(&self, key: &str, chat_id: &str, what: &str, error: &str) -> Result<()> {
                let q = sqlx::query(crate::rooms::RECORD_REFUSAL).bind(key).bind(chat_id).bind(what).bind(error);
                q.bind(crate::rooms::now_ms()).execute(&self.$write).await?;
                Ok(())
            }

            async fn revised(&self, chat_id: &str) -> Result<Vec<(String, Option<MessageRecord>)>> {
                self.settle_messages().await?;
                let rows = sqlx::query(crate::revisions::REVISED).bind(chat_id).fetch_all(&self.$read).await?;
                rows.iter().map(crate::revisions::revised).collect()
            }

            async fn last_delivered_ts(&self, chat_id: &str) -> Result<Option<i64>> {
                self.settle_messages().await?;
                Ok(sqlx::query_scalar(crate::revisions::LAST_DELIVERED_TS).bind(chat_id).fetch_one(&self.$read).await?)
            }

            async fn finish_revision(&self, guid: &str) -> Result<()> {
                sqlx::query(crate::revisions::FINISH_REVISION).bind(guid).execute(&self.$write).await?;
                Ok(())
            }

            async fn delivered_keys(&self, guid: &str) -> Result<Vec<(String, String)>> {
                let (from, to) = crate::revisions::key_range(guid);
                let rows = sqlx::query(crate::revisions::DELIVERED_KEYS).bind(guid).bind(from).bind(to).fetch_all(&self.$read).await?;
                rows.iter().map(crate::revisions::delivered_key).collect()
            }
        }
    };
}
pub(crate) use impl_store;
