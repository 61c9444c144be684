//! The bridge's marks on the events it sends: the `fi.imessage_bridge.*` content keys, the
//! ledger's "nothing sent" event id, and the transaction id of a send.
//!
//! Why a leaf module: the planner (`render`), the sender (`send`), delivery, `revise`, `inbound`
//! and `verify` all read or write these marks. Kept apart from all of them, they can be named by
//! each without any of those modules importing another for one constant.

/// Key in event content carrying the CloudKit message guid, so a room can be checked for it.
pub const GUID_KEY: &str = "fi.imessage_bridge.guid";
/// Key in event content carrying the event's ledger key.
pub const LEDGER_KEY: &str = "fi.imessage_bridge.key";
/// Key in event content carrying the message part an event shows.
pub const PART_KEY: &str = "fi.imessage_bridge.part";
/// Key in event content carrying the original time (ms) of a message delivered late, after
/// newer ones (see `render::mark_late`).
pub const LATE_KEY: &str = "fi.imessage_bridge.original_ts";
/// Key in event content carrying `[i, n]`: the event is piece `i` of `n` (from 1) of a text
/// too long for one event (see `fit.rs`).
pub const CHUNK_KEY: &str = "fi.imessage_bridge.chunk";
/// Key in event content of a notice standing in for an event the homeserver refused for good:
/// what the homeserver answered.
pub const REFUSED_KEY: &str = "fi.imessage_bridge.refused";
/// Content key of the bridge's notice that it cannot send to iMessage (so a reader of the room
/// can tell it from a delivered message).
pub const NOTICE_KEY: &str = "fi.imessage_bridge.notice";
/// The ledger's event id for a message that put nothing into the room.
pub const NO_EVENT: &str = "-";

/// The id of the owner's override push rule that mutes a portal while its history goes in.
/// Its presence also says the history is not finished (a run stopped half-way).
pub fn history_rule_id(room: &str) -> String {
    format!("fi.imessage_bridge.history.{room}")
}

/// The transaction id of a message's send: stable per guid, so a retried request is one event
/// while the homeserver remembers the id.
pub(crate) fn txn_id(guid: &str) -> String {
    format!("imb-{guid}")
}
