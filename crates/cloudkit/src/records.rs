//! Typed iMessage records, decoded from CloudKit `Record`s after PCS decryption.
//!
//! These structs are the unit of exchange between the sync engine and the store: the store persists
//! them as they are, so they carry only what was on the wire (no derived state).

use serde::{Deserialize, Serialize};

/// Zone holding `chatEncryptedv2` records.
pub const CHAT_ZONE: &str = "chatManateeZone";
/// Zone holding `MessageEncryptedV3` records.
pub const MESSAGE_ZONE: &str = "messageManateeZone";
/// Zone holding `attachment` records.
pub const ATTACHMENT_ZONE: &str = "attachmentManateeZone";
/// The three zones of the Messages container, in the order a sync walks them.
pub const ZONES: [&str; 3] = [CHAT_ZONE, MESSAGE_ZONE, ATTACHMENT_ZONE];

pub const CHAT_RECORD_TYPE: &str = "chatEncryptedv2";
pub const MESSAGE_RECORD_TYPE: &str = "MessageEncryptedV3";
pub const ATTACHMENT_RECORD_TYPE: &str = "attachment";
pub const SUMMARY_RECORD_TYPE: &str = "MessagesSummary";

/// Chat style values of `stl`.
pub const STYLE_GROUP: i64 = 43;
pub const STYLE_DIRECT: i64 = 45;

/// `MessageEncryptedV3.flags` bits.
pub const FLAG_FROM_ME: u64 = 1 << 2;
pub const FLAG_SYSTEM: u64 = 1 << 14;
pub const FLAG_SERVICE: u64 = 1 << 17;

/// Seconds between the Unix epoch and Apple's epoch (2001-01-01T00:00:00Z).
pub const APPLE_EPOCH_UNIX_SECS: i64 = 978_307_200;

/// Converts nanoseconds since 2001-01-01 (the `time` field) to Unix milliseconds.
pub fn apple_ns_to_unix_ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000) + APPLE_EPOCH_UNIX_SECS * 1000
}

/// Converts Unix milliseconds to nanoseconds since 2001-01-01.
pub fn unix_ms_to_apple_ns(ms: i64) -> i64 {
    (ms - APPLE_EPOCH_UNIX_SECS * 1000).saturating_mul(1_000_000)
}

/// One `chatEncryptedv2` record. A chat (keyed by `chat_id`, the `cid` field) may have several
/// records; its display name is the one of the record modified last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    pub record_name: String,
    /// `cid`: the handle for a DM, `chat…` for a group. Messages refer to it as `chatID`.
    pub chat_id: String,
    /// `gid`
    pub group_id: Option<String>,
    /// `stl`: [`STYLE_GROUP`] or [`STYLE_DIRECT`].
    pub style: i64,
    /// `name`
    pub display_name: Option<String>,
    /// `ptcpts`, as handles (`tel:+1…`, `mailto:…`).
    pub participants: Vec<String>,
    /// `svc`
    pub service: Option<String>,
    /// The record's modification time (`timeStatistics.modification`), Unix ms.
    pub modified_ms: i64,
}

/// One `MessageEncryptedV3` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub record_name: String,
    pub guid: String,
    /// `chatID`: the `cid` of the chat.
    pub chat_id: String,
    /// Sender handle (the own handle for messages from me); empty for system records.
    pub sender: String,
    pub flags: u64,
    /// `time` converted to Unix milliseconds.
    pub ts_ms: i64,
    pub text: Option<String>,
    pub subject: Option<String>,
    /// msgProto field 15 (2000..=2005 tapbacks, 3000..=3005 their removal).
    pub associated_type: Option<u32>,
    /// msgProto field 16.
    pub associated_guid: Option<String>,
    /// `svc`
    pub service: Option<String>,
}

impl MessageRecord {
    pub fn from_me(&self) -> bool {
        self.flags & FLAG_FROM_ME != 0
    }
    /// System and service records (renames, participant changes, …) never become timeline messages.
    pub fn is_system(&self) -> bool {
        self.flags & (FLAG_SYSTEM | FLAG_SERVICE) != 0
    }
}

/// One `attachment` record (the `cm` metadata; the file itself is the `lqa` asset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub record_name: String,
    /// `cm.aguid`
    pub guid: String,
    /// `cm.mimet`
    pub mime_type: Option<String>,
    /// `cm.fn`
    pub filename: Option<String>,
    /// `cm.tb`
    pub total_bytes: i64,
    /// Size of the `lqa` asset as the server reports it.
    pub asset_size: Option<u64>,
}

/// A decoded change from a `record/sync` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    Chat(ChatRecord),
    Message(MessageRecord),
    Attachment(AttachmentRecord),
    /// A change without a record: the record was deleted.
    Deleted { record_name: String },
}
