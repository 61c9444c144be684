//! The delivery ledger — the [`LedgerStore`] job, for both backends: which message went into
//! its room as which event.
//!
//! Why a ledger row is written before the send: a row with a transaction id and no event id
//! marks a send that may have reached the room. After a crash, delivery asks the room for that
//! transaction id instead of sending again, so a killed bridge neither loses nor doubles a
//! message. Parts and reactions have keys of their own (`guid/…`); a message counts as delivered
//! once the row under its own guid has an event id.

use async_trait::async_trait;
use imessage::records::MessageRecord;
use serde::{Deserialize, Serialize};

use crate::db::{Db, Param, RowExt};
use crate::error::Result;
use crate::values;

/// A delivery ledger row: the message `guid` was (or is being) sent with `txn_id`; `event_id`
/// is set once the homeserver accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub guid: String,
    pub chat_id: String,
    pub txn_id: String,
    pub event_id: Option<String>,
}

/// What was sent as which event.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Non-system messages of a chat that have no ledger row, ordered by (ts_ms, guid).
    async fn undelivered(&self, chat_id: &str) -> Result<Vec<MessageRecord>>;
    /// Records that `guid` is about to be sent with `txn_id` (event id unknown).
    async fn begin_delivery(&self, guid: &str, chat_id: &str, txn_id: &str) -> Result<()>;
    /// Records the event id of a delivered message.
    async fn finish_delivery(&self, guid: &str, event_id: &str) -> Result<()>;
    /// Removes a ledger row (an in-flight send that never reached the room).
    async fn forget_delivery(&self, guid: &str) -> Result<()>;
    /// Ledger rows of a chat whose send may have been in flight (no event id).
    async fn in_flight(&self, chat_id: &str) -> Result<Vec<LedgerEntry>>;
    /// Event id a message was delivered as.
    async fn delivered_event(&self, guid: &str) -> Result<Option<String>>;
    /// Number of delivered messages.
    async fn delivered_count(&self) -> Result<i64>;
}

#[async_trait]
impl<D: Db> LedgerStore for D {
    async fn undelivered(&self, chat_id: &str) -> Result<Vec<MessageRecord>> {
        self.settle_messages().await?;
        self.read_rows(UNDELIVERED, &[Param::Text(chat_id)]).await?.iter().map(values::message).collect()
    }

    async fn begin_delivery(&self, guid: &str, chat_id: &str, txn_id: &str) -> Result<()> {
        self.write(BEGIN_DELIVERY, &[Param::Text(guid), Param::Text(chat_id), Param::Text(txn_id)]).await
    }

    async fn finish_delivery(&self, guid: &str, event_id: &str) -> Result<()> {
        self.write(FINISH_DELIVERY, &[Param::Text(guid), Param::Text(event_id)]).await
    }

    async fn forget_delivery(&self, guid: &str) -> Result<()> {
        self.write(FORGET_DELIVERY, &[Param::Text(guid)]).await
    }

    async fn in_flight(&self, chat_id: &str) -> Result<Vec<LedgerEntry>> {
        self.read_rows(IN_FLIGHT, &[Param::Text(chat_id)]).await?.iter().map(ledger_entry).collect()
    }

    async fn delivered_event(&self, guid: &str) -> Result<Option<String>> {
        self.read_row(DELIVERED_EVENT, &[Param::Text(guid)]).await?.map(|row| row.text("event_id")).transpose()
    }

    async fn delivered_count(&self) -> Result<i64> {
        match self.read_row(DELIVERED_COUNT, &[]).await? {
            Some(row) => row.int("n"),
            None => Ok(0),
        }
    }
}

/// Non-system messages of a chat without a ledger row, in delivery order. 147456 masks the
/// system (1<<14) and service (1<<17) flags.
const UNDELIVERED: &str = "SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
     associated_type, associated_guid, service, content FROM messages m WHERE chat_id = $1 AND (flags & 147456) = 0 \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.guid = m.guid) ORDER BY ts_ms, guid";
const BEGIN_DELIVERY: &str = "INSERT INTO deliveries (guid, chat_id, txn_id, event_id) VALUES ($1, $2, $3, NULL) \
     ON CONFLICT (guid) DO UPDATE SET chat_id = excluded.chat_id, txn_id = excluded.txn_id, event_id = NULL";
const FINISH_DELIVERY: &str = "UPDATE deliveries SET event_id = $2 WHERE guid = $1";
const FORGET_DELIVERY: &str = "DELETE FROM deliveries WHERE guid = $1";
const IN_FLIGHT: &str = "SELECT guid, chat_id, txn_id, event_id FROM deliveries \
     WHERE chat_id = $1 AND event_id IS NULL ORDER BY guid";
const DELIVERED_EVENT: &str = "SELECT event_id FROM deliveries WHERE guid = $1 AND event_id IS NOT NULL";
const DELIVERED_COUNT: &str = "SELECT COUNT(*) AS n FROM deliveries WHERE event_id IS NOT NULL";

fn ledger_entry(row: &impl RowExt) -> Result<LedgerEntry> {
    Ok(LedgerEntry { guid: row.text("guid")?, chat_id: row.text("chat_id")?, txn_id: row.text("txn_id")?, event_id: row.opt_text("event_id")? })
}
