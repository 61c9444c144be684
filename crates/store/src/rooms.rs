//! Delivery per chat, for `status`: how much of each chat's history is in its Matrix room, and
//! the last delivery error. Shared by both backends (the SQL is the same in both dialects).
//!
//! Why counted from the ledger by message guid: the ledger has a row per sent event (parts and
//! reactions have keys of their own), but a message is delivered once the row under its own guid
//! has an event id — which is what `undelivered` asks too, so `pending` here is exactly what the
//! next delivery round sends.
//!
//! Messages the owner types in a portal are counted here too (`owner_messages`): the bridge
//! cannot send them to iMessage, answers with a notice at most once a day per room, and `status`
//! shows the count beside the room's delivery so nothing the owner wrote goes unmentioned.
//!
//! A room is live (`live_rooms`) once a delivery left it with nothing pending: its history is
//! in, and what comes later is the live edge.
//!
//! Events the homeserver refused for good (`refused`) are counted the same way: each went into
//! the room as a notice naming what was refused, and the room went on.

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
    /// Messages the owner typed in the portal, which cannot reach iMessage from this bridge.
    pub owner_messages: i64,
    /// Events the homeserver refused for good, each delivered as a notice naming what was
    /// refused (see [`Store::record_refusal`](crate::Store::record_refusal)).
    pub refused: i64,
    /// When the room had taken in its whole history (ms since the Unix epoch); None while it is
    /// still taking it in (or was never delivered to).
    pub live_since_ms: Option<i64>,
    /// The time of the chat's oldest message not yet delivered (in flight included), None when
    /// nothing waits: `status` shows its age.
    pub oldest_pending_ms: Option<i64>,
}

/// A chat's refused owner messages, as [`Store::count_owner_message`](crate::Store::count_owner_message)
/// returns them after counting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OwnerMessages {
    /// Messages counted so far, this one included.
    pub count: i64,
    /// When the room was last told that they cannot reach iMessage (ms since the Unix epoch).
    pub last_notice_ms: Option<i64>,
}

/// 147456 masks the system (1<<14) and service (1<<17) flags, as `UNDELIVERED` does.
pub(crate) const ROOM_DELIVERIES: &str = "SELECT c.chat_id, p.room_id, e.error, e.at_ms, COALESCE(o.refused, 0) AS owner_messages, \
     (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0) AS stored, \
     (SELECT COUNT(*) FROM messages m JOIN deliveries d ON d.guid = m.guid \
        WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0 AND d.event_id IS NOT NULL) AS delivered, \
     (SELECT COUNT(*) FROM messages m JOIN deliveries d ON d.guid = m.guid \
        WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0 AND d.event_id IS NULL) AS in_flight, \
     (SELECT COUNT(*) FROM refused_events r WHERE r.chat_id = c.chat_id) AS refused, \
     (SELECT MIN(m.ts_ms) FROM messages m WHERE m.chat_id = c.chat_id AND (m.flags & 147456) = 0 \
        AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.guid = m.guid AND d.event_id IS NOT NULL)) AS oldest_pending_ms, \
     l.since_ms AS live_since_ms \
   FROM (SELECT DISTINCT chat_id FROM chat_records) c \
   LEFT JOIN portals p ON p.chat_id = c.chat_id \
   LEFT JOIN delivery_errors e ON e.chat_id = c.chat_id \
   LEFT JOIN owner_messages o ON o.chat_id = c.chat_id \
   LEFT JOIN live_rooms l ON l.chat_id = c.chat_id \
   ORDER BY c.chat_id";
pub(crate) const SET_DELIVERY_ERROR: &str = "INSERT INTO delivery_errors (chat_id, error, at_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (chat_id) DO UPDATE SET error = excluded.error, at_ms = excluded.at_ms";
/// A room becomes live once; the first time stays.
pub(crate) const SET_ROOM_LIVE: &str = "INSERT INTO live_rooms (chat_id, since_ms) VALUES ($1, $2) ON CONFLICT (chat_id) DO NOTHING";
pub(crate) const CLEAR_DELIVERY_ERROR: &str = "DELETE FROM delivery_errors WHERE chat_id = $1";
pub(crate) const COUNT_OWNER_MESSAGE: &str = "INSERT INTO owner_messages (chat_id, refused) VALUES ($1, 1) \
     ON CONFLICT (chat_id) DO UPDATE SET refused = owner_messages.refused + 1 RETURNING refused, last_notice_ms";
pub(crate) const SET_OWNER_NOTICE: &str = "INSERT INTO owner_messages (chat_id, last_notice_ms) VALUES ($1, $2) \
     ON CONFLICT (chat_id) DO UPDATE SET last_notice_ms = excluded.last_notice_ms";

/// A refusal is recorded once per ledger key (a retry after a crash records nothing new).
pub(crate) const RECORD_REFUSAL: &str = "INSERT INTO refused_events (key, chat_id, what, error, at_ms) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (key) DO NOTHING";

pub(crate) fn owner_messages(row: &impl RowExt) -> Result<OwnerMessages> {
    Ok(OwnerMessages { count: row.int("refused")?, last_notice_ms: row.opt_int("last_notice_ms")? })
}

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
        owner_messages: row.int("owner_messages")?,
        refused: row.int("refused")?,
        live_since_ms: row.opt_int("live_since_ms")?,
        oldest_pending_ms: row.opt_int("oldest_pending_ms")?,
    })
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
