//! Delivery per chat, for `status`: how much of each chat's history is in its Matrix room, and
//! the last delivery error. Shared by both backends (the SQL is the same in both dialects).
//!
//! Why counted from the ledger by message guid: the ledger has a row per sent event (parts and
//! reactions have keys of their own), but a message is delivered once the row under its own guid
//! has an event id — which is what `undelivered` asks too, so `pending` here is exactly what the
//! next delivery round sends.

use serde::Serialize;

use crate::common::RowExt;
use crate::Result;

/// One chat's delivery, as [`Store::room_deliveries`](crate::Store::room_deliveries) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomDelivery {
    pub chat_id: String,
    /// The portal's room, None before it is created.
    pub room_id: Option<String>,
    /// Non-system messages stored for the chat (what delivery sends).
    pub stored: i64,
    /// Of those, delivered (their ledger row has an event id).
    pub delivered: i64,
    /// Of those, sent but not confirmed (ledger row without an event id; the next round checks
    /// the room for them).
    pub in_flight: i64,
    /// Of those, not sent yet: `stored - delivered - in_flight`.
    pub pending: i64,
    /// The error of the last round that left this chat with messages to send.
    pub last_error: Option<String>,
    /// When that error was recorded (ms since the Unix epoch).
    pub last_error_ms: Option<i64>,
}

/// 147456 masks the system (1<<14) and service (1<<17) flags, as `UNDELIVERED` does.
pub(crate) const ROOM_DELIVERIES: &str = "SELECT c.chat_id, p.room_id, e.error, e.at_ms, \
     (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0) AS stored, \
     (SELECT COUNT(*) FROM messages m JOIN deliveries d ON d.guid = m.guid \
        WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0 AND d.event_id IS NOT NULL) AS delivered, \
     (SELECT COUNT(*) FROM messages m JOIN deliveries d ON d.guid = m.guid \
        WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0 AND d.event_id IS NULL) AS in_flight \
   FROM (SELECT DISTINCT chat_id FROM chat_records) c \
   LEFT JOIN portals p ON p.chat_id = c.chat_id \
   LEFT JOIN delivery_errors e ON e.chat_id = c.chat_id \
   ORDER BY c.chat_id";
pub(crate) const SET_DELIVERY_ERROR: &str = "INSERT INTO delivery_errors (chat_id, error, at_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (chat_id) DO UPDATE SET error = excluded.error, at_ms = excluded.at_ms";
pub(crate) const CLEAR_DELIVERY_ERROR: &str = "DELETE FROM delivery_errors WHERE chat_id = $1";

pub(crate) fn room_delivery(row: &impl RowExt) -> Result<RoomDelivery> {
    let (stored, delivered, in_flight) = (row.int("stored")?, row.int("delivered")?, row.int("in_flight")?);
    Ok(RoomDelivery {
        chat_id: row.text("chat_id")?,
        room_id: row.opt_text("room_id")?,
        stored,
        delivered,
        in_flight,
        pending: (stored - delivered - in_flight).max(0),
        last_error: row.opt_text("error")?,
        last_error_ms: row.opt_int("at_ms")?,
    })
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
