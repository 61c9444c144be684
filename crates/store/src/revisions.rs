//! Revisions: delivered messages whose record changed or disappeared afterwards.
//!
//! Why the store keeps them: a Matrix room is append-only, so an unsend, a later edit or a
//! deletion of a message that is already in the room needs events of its own (redactions, an
//! `m.replace`), and only the store sees the record change. Each backend notes the change in
//! the same transaction that applies it — SQLite when it folds its ingest log into `messages`,
//! PostgreSQL when it applies a page — comparing the new row with the stored one, so re-serving
//! an unchanged record (a full re-sync) notes nothing. Delivery works through the rows and
//! removes each one when the room matches the record again.

use async_trait::async_trait;
use imessage::records::MessageRecord;

use crate::db::{Db, Param, RowExt};
use crate::error::Result;
use crate::values;

/// Delivered messages that changed since, for delivery to bring their rooms up to date.
#[async_trait]
pub trait RevisionStore: Send + Sync {
    /// Delivered messages of a chat whose record changed or was deleted since, ordered by guid:
    /// each guid with its current record, None if deleted.
    async fn revised(&self, chat_id: &str) -> Result<Vec<(String, Option<MessageRecord>)>>;
    /// The time of the chat's newest message that put an event into its room (what a message
    /// older than it would be delivered after: a late arrival).
    async fn last_delivered_ts(&self, chat_id: &str) -> Result<Option<i64>>;
    /// The room matches message `guid`'s record again.
    async fn finish_revision(&self, guid: &str) -> Result<()>;
    /// Every event message `guid` put into a room: its ledger keys (`guid`, `guid/…`) with
    /// their event ids, ordered by key.
    async fn delivered_keys(&self, guid: &str) -> Result<Vec<(String, String)>>;
}

#[async_trait]
impl<D: Db> RevisionStore for D {
    async fn revised(&self, chat_id: &str) -> Result<Vec<(String, Option<MessageRecord>)>> {
        self.settle_messages().await?;
        self.read_rows(REVISED, &[Param::Text(chat_id)]).await?.iter().map(revised).collect()
    }

    async fn last_delivered_ts(&self, chat_id: &str) -> Result<Option<i64>> {
        self.settle_messages().await?;
        match self.read_row(LAST_DELIVERED_TS, &[Param::Text(chat_id)]).await? {
            Some(row) => row.opt_int("ts_ms"),
            None => Ok(None),
        }
    }

    async fn finish_revision(&self, guid: &str) -> Result<()> {
        self.write(FINISH_REVISION, &[Param::Text(guid)]).await
    }

    async fn delivered_keys(&self, guid: &str) -> Result<Vec<(String, String)>> {
        let (from, to) = key_range(guid);
        let rows = self.read_rows(DELIVERED_KEYS, &[Param::Text(guid), Param::Text(&from), Param::Text(&to)]).await?;
        rows.iter().map(delivered_key).collect()
    }
}

/// The revised messages of a chat: their guids and, unless deleted, their current rows
/// (`values::message` columns), ordered by guid.
const REVISED: &str = "SELECT r.guid AS revised_guid, m.record_name, m.guid, m.chat_id, m.sender, m.flags, m.ts_ms, \
    m.text, m.subject, m.associated_type, m.associated_guid, m.service, m.content \
    FROM revisions r LEFT JOIN messages m ON m.chat_id = r.chat_id AND m.guid = r.guid \
    WHERE r.chat_id = $1 ORDER BY r.guid";

/// A row of `REVISED`: the guid and the current record, None if it was deleted.
fn revised(row: &impl RowExt) -> Result<(String, Option<MessageRecord>)> {
    let current = if row.opt_text("record_name")?.is_some() { Some(values::message(row)?) } else { None };
    Ok((row.text("revised_guid")?, current))
}

/// A row of `DELIVERED_KEYS`.
fn delivered_key(row: &impl RowExt) -> Result<(String, String)> {
    Ok((row.text("guid")?, row.text("event_id")?))
}

/// The time of the newest message of chat `$1` that put an event into its room.
const LAST_DELIVERED_TS: &str = "SELECT MAX(m.ts_ms) AS ts_ms FROM messages m JOIN deliveries d ON d.guid = m.guid \
    WHERE m.chat_id = $1 AND d.event_id IS NOT NULL AND d.event_id <> '-'";

const FINISH_REVISION: &str = "DELETE FROM revisions WHERE guid = $1";

/// Ledger rows of one message: the key `$1` itself and `$1/…` (between `$1/` and `$10`,
/// since `0` follows `/`), with their event ids.
const DELIVERED_KEYS: &str = "SELECT guid, event_id FROM deliveries \
    WHERE (guid = $1 OR (guid >= $2 AND guid < $3)) AND event_id IS NOT NULL ORDER BY guid";

/// The bounds `DELIVERED_KEYS` takes for message `guid`.
fn key_range(guid: &str) -> (String, String) {
    (format!("{guid}/"), format!("{guid}0"))
}

/// SQLite, run by the fold before it applies the ingest log: every delivered message the log
/// deletes or changes.
pub(crate) const SQLITE_NOTE_FROM_LOG: &str = "INSERT INTO revisions (guid, chat_id) \
    SELECT m.guid, m.chat_id FROM message_log l JOIN messages m ON m.record_name = l.record_name \
    JOIN deliveries d ON d.guid = m.guid \
    WHERE l.deleted = 1 OR l.text IS NOT m.text OR l.content IS NOT m.content OR l.flags IS NOT m.flags \
    ON CONFLICT (guid) DO NOTHING";

/// PostgreSQL, before a page deletes records `$1`.
pub(crate) const PG_NOTE_DELETED: &str = "INSERT INTO revisions (guid, chat_id) \
    SELECT m.guid, m.chat_id FROM messages m JOIN deliveries d ON d.guid = m.guid \
    WHERE m.record_name = ANY($1) ON CONFLICT (guid) DO NOTHING";

/// PostgreSQL, before a page upserts messages (record names, texts, contents, flags).
pub(crate) const PG_NOTE_CHANGED: &str = "INSERT INTO revisions (guid, chat_id) \
    SELECT m.guid, m.chat_id FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS i(record_name, text, content, flags) \
    JOIN messages m ON m.record_name = i.record_name JOIN deliveries d ON d.guid = m.guid \
    WHERE i.text IS DISTINCT FROM m.text OR i.content IS DISTINCT FROM m.content OR i.flags IS DISTINCT FROM m.flags \
    ON CONFLICT (guid) DO NOTHING";
