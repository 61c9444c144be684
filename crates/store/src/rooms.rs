//! Portals and delivery per chat — the [`RoomStore`] job, for both backends (the SQL is the same
//! in both dialects): each chat's Matrix room, and for `status` how much of each chat's history is
//! in it, and the last delivery error.
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

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db, Param, RowExt};
use crate::error::Result;

/// The Matrix room of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    pub chat_id: String,
    pub room_id: String,
    /// The name the room was last given (to detect renames).
    pub name: Option<String>,
}

/// One chat's delivery, as [`RoomStore::room_deliveries`] reports it.
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
    /// refused (see [`RoomStore::record_refusal`]).
    pub refused: i64,
    /// When the room had taken in its whole history (ms since the Unix epoch); None while it is
    /// still taking it in (or was never delivered to).
    pub live_since_ms: Option<i64>,
    /// The time of the chat's oldest message not yet delivered (in flight included), None when
    /// nothing waits: `status` shows its age.
    pub oldest_pending_ms: Option<i64>,
}

/// A chat's refused owner messages, as [`RoomStore::count_owner_message`]
/// returns them after counting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OwnerMessages {
    /// Messages counted so far, this one included.
    pub count: i64,
    /// When the room was last told that they cannot reach iMessage (ms since the Unix epoch).
    pub last_notice_ms: Option<i64>,
}

/// Portals and per-room delivery bookkeeping.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// The portal of a chat, if its room was created.
    async fn portal(&self, chat_id: &str) -> Result<Option<Portal>>;
    /// Every portal, ordered by chat_id.
    async fn portals(&self) -> Result<Vec<Portal>>;
    /// Creates or updates a portal.
    async fn save_portal(&self, portal: &Portal) -> Result<()>;
    /// Delivery per chat (every chat with a chat record), ordered by chat_id: its room, its
    /// messages, how many are delivered, in flight and pending, and the last delivery error.
    async fn room_deliveries(&self) -> Result<Vec<RoomDelivery>>;
    /// Records that the chat's room has taken in its whole history (the first time stays).
    async fn set_room_live(&self, chat_id: &str) -> Result<()>;
    /// Records the error of a delivery round for a chat (None clears it).
    async fn set_delivery_error(&self, chat_id: &str, error: Option<&str>) -> Result<()>;
    /// Counts one message the owner typed in the chat's portal (it cannot reach iMessage) and
    /// returns the chat's count with the time of its last notice about it.
    async fn count_owner_message(&self, chat_id: &str) -> Result<OwnerMessages>;
    /// Records that the chat's portal was told at `at_ms` that owner messages cannot reach iMessage.
    async fn set_owner_notice(&self, chat_id: &str, at_ms: i64) -> Result<()>;
    /// Records that the homeserver refused the event of ledger key `key` for good (`what` it
    /// was, `error` the answer); a key already recorded stays as it was. Counted per chat in
    /// [`RoomStore::room_deliveries`].
    async fn record_refusal(&self, key: &str, chat_id: &str, what: &str, error: &str) -> Result<()>;
}

#[async_trait]
impl<D: Db> RoomStore for D {
    async fn portal(&self, chat_id: &str) -> Result<Option<Portal>> {
        self.read_row(PORTAL, &[Param::Text(chat_id)]).await?.as_ref().map(portal).transpose()
    }

    async fn portals(&self) -> Result<Vec<Portal>> {
        self.read_rows(PORTALS, &[]).await?.iter().map(portal).collect()
    }

    async fn save_portal(&self, p: &Portal) -> Result<()> {
        self.write(SAVE_PORTAL, &[Param::Text(&p.chat_id), Param::Text(&p.room_id), Param::OptText(p.name.as_deref())]).await
    }

    async fn room_deliveries(&self) -> Result<Vec<RoomDelivery>> {
        self.settle_messages().await?;
        self.read_rows(ROOM_DELIVERIES, &[]).await?.iter().map(room_delivery).collect()
    }

    async fn set_room_live(&self, chat_id: &str) -> Result<()> {
        self.write(SET_ROOM_LIVE, &[Param::Text(chat_id), Param::Int(now_ms())]).await
    }

    async fn set_delivery_error(&self, chat_id: &str, error: Option<&str>) -> Result<()> {
        match error {
            Some(e) => self.write(SET_DELIVERY_ERROR, &[Param::Text(chat_id), Param::Text(e), Param::Int(now_ms())]).await,
            None => self.write(CLEAR_DELIVERY_ERROR, &[Param::Text(chat_id)]).await,
        }
    }

    async fn count_owner_message(&self, chat_id: &str) -> Result<OwnerMessages> {
        owner_messages(&self.write_returning(COUNT_OWNER_MESSAGE, &[Param::Text(chat_id)]).await?)
    }

    async fn set_owner_notice(&self, chat_id: &str, at_ms: i64) -> Result<()> {
        self.write(SET_OWNER_NOTICE, &[Param::Text(chat_id), Param::Int(at_ms)]).await
    }

    async fn record_refusal(&self, key: &str, chat_id: &str, what: &str, error: &str) -> Result<()> {
        let params = [Param::Text(key), Param::Text(chat_id), Param::Text(what), Param::Text(error), Param::Int(now_ms())];
        self.write(RECORD_REFUSAL, &params).await
    }
}

const PORTAL: &str = "SELECT chat_id, room_id, name FROM portals WHERE chat_id = $1";
const PORTALS: &str = "SELECT chat_id, room_id, name FROM portals ORDER BY chat_id";
const SAVE_PORTAL: &str = "INSERT INTO portals (chat_id, room_id, name) VALUES ($1, $2, $3) \
     ON CONFLICT (chat_id) DO UPDATE SET room_id = excluded.room_id, name = excluded.name";

fn portal(row: &impl RowExt) -> Result<Portal> {
    Ok(Portal { chat_id: row.text("chat_id")?, room_id: row.text("room_id")?, name: row.opt_text("name")? })
}

/// 147456 masks the system (1<<14) and service (1<<17) flags, as `UNDELIVERED` does.
const ROOM_DELIVERIES: &str = "SELECT c.chat_id, p.room_id, e.error, e.at_ms, COALESCE(o.refused, 0) AS owner_messages, \
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
const SET_DELIVERY_ERROR: &str = "INSERT INTO delivery_errors (chat_id, error, at_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (chat_id) DO UPDATE SET error = excluded.error, at_ms = excluded.at_ms";
/// A room becomes live once; the first time stays.
const SET_ROOM_LIVE: &str = "INSERT INTO live_rooms (chat_id, since_ms) VALUES ($1, $2) ON CONFLICT (chat_id) DO NOTHING";
const CLEAR_DELIVERY_ERROR: &str = "DELETE FROM delivery_errors WHERE chat_id = $1";
const COUNT_OWNER_MESSAGE: &str = "INSERT INTO owner_messages (chat_id, refused) VALUES ($1, 1) \
     ON CONFLICT (chat_id) DO UPDATE SET refused = owner_messages.refused + 1 RETURNING refused, last_notice_ms";
const SET_OWNER_NOTICE: &str = "INSERT INTO owner_messages (chat_id, last_notice_ms) VALUES ($1, $2) \
     ON CONFLICT (chat_id) DO UPDATE SET last_notice_ms = excluded.last_notice_ms";

/// A refusal is recorded once per ledger key (a retry after a crash records nothing new).
const RECORD_REFUSAL: &str = "INSERT INTO refused_events (key, chat_id, what, error, at_ms) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (key) DO NOTHING";

fn owner_messages(row: &impl RowExt) -> Result<OwnerMessages> {
    Ok(OwnerMessages { count: row.int("refused")?, last_notice_ms: row.opt_int("last_notice_ms")? })
}

fn room_delivery(row: &impl RowExt) -> Result<RoomDelivery> {
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
