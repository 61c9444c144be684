//! The iMessage records a source produces: chats, messages and attachments, and the changes a
//! sync pass applies to them.
//!
//! These structs are the unit of exchange between a source (CloudKit's Messages zones today) and
//! the store and delivery: the store persists them as they are, so they carry only what the
//! source had (no derived state). A source's collections are named as Apple names the Messages
//! zones ([`CHAT_ZONE`], [`MESSAGE_ZONE`], [`ATTACHMENT_ZONE`]); a second source (a macOS
//! `chat.db`, a device backup) names its chat, message and attachment tables the same way, so
//! the store and delivery need not know where records came from.

#![allow(missing_docs)]

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

/// Tapbacks and the other associations, read once (see [`Association`]).
pub use crate::association::{
    AssociatedType, Association, AssociationKind, AssociationTarget, TapbackKind, TargetForm, LEGACY_STICKER_TAPBACK, STICKER_TAPBACK,
};

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

/// Dates of this size or larger are nanoseconds since 2001-01-01; smaller ones are seconds.
/// `chat.db`/`sms.db` switched from seconds to nanoseconds with macOS 10.13 and iOS 11; 10^12
/// seconds are 31,000 years and 10^12 nanoseconds 17 minutes, so the two never meet.
pub const APPLE_NS_THRESHOLD: i64 = 1_000_000_000_000;

/// Converts a Messages database date (nanoseconds or, on old databases, seconds since
/// 2001-01-01) to Unix milliseconds.
pub fn apple_date_to_unix_ms(date: i64) -> i64 {
    if date.abs() >= APPLE_NS_THRESHOLD {
        apple_ns_to_unix_ms(date)
    } else {
        date.saturating_mul(1000).saturating_add(APPLE_EPOCH_UNIX_SECS * 1000)
    }
}

/// A Messages database date as nanoseconds since 2001-01-01, whichever unit it was written in.
pub fn apple_date_to_ns(date: i64) -> i64 {
    if date.abs() >= APPLE_NS_THRESHOLD {
        date
    } else {
        date.saturating_mul(1_000_000_000)
    }
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
    /// msgProto field 15, Apple's number: read it with [`MessageRecord::association`].
    pub associated_type: Option<u32>,
    /// msgProto field 16 (`p:N/GUID`, `bp:GUID` or a GUID): read it with
    /// [`MessageRecord::association`].
    pub associated_guid: Option<String>,
    /// `svc`
    pub service: Option<String>,
    /// What the message's content blobs said (attributedBody, messageSummaryInfo, payloadData,
    /// effect, read and delivery times), decoded.
    #[serde(default)]
    pub content: MessageContent,
}

/// A message's content as Apple's blobs describe it (msgProto fields 4–18 of a CloudKit
/// record, the same columns of a `chat.db` row). Empty for a message that has only `text`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContent {
    /// The parts of the attributedBody, in order: text runs and attachments. Empty when the
    /// message had no attributedBody (its text is then the whole body).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ContentPart>,
    /// Edit history per edited part (messageSummaryInfo `ec`), oldest version first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<PartHistory>,
    /// Parts the sender unsent (messageSummaryInfo `rp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent_parts: Vec<i64>,
    /// messageSummaryInfo says no part remains: the whole message was unsent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsent: bool,
    /// A link preview (payloadData of a link balloon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_preview: Option<LinkPreviewRecord>,
    /// The app balloon's bundle id (msgProto field 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon_bundle_id: Option<String>,
    /// The bubble or screen effect (msgProto field 8), e.g. `com.apple.MobileSMS.expressivesend.impact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// When the message was read / delivered (msgProto 9 / 13), Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_ms: Option<i64>,
    /// The GUID of the message this one replies to (msgProto2 `reply`; `chat.db`'s
    /// `thread_originator_guid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The emoji of an emoji tapback (`associatedMessageType` 2006 / 3006; msgProto4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associated_emoji: Option<String>,
    /// Blobs that did not decode, with the reason; the message keeps its `text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undecodable: Vec<BlobFailure>,
}

impl MessageContent {
    pub fn is_empty(&self) -> bool {
        *self == MessageContent::default()
    }
}

/// One part of a message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        /// The message part number (`__kIMMessagePartAttributeName`), if the body names one.
        part: Option<i64>,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mention: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    /// An attachment (U+FFFC in the text), named by its transfer GUID.
    Attachment { part: Option<i64>, guid: Option<String> },
}

/// The versions of one edited part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHistory {
    pub part: i64,
    pub versions: Vec<TextVersion>,
}

/// One version of an edited part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextVersion {
    /// When this version was sent, nanoseconds since 2001-01-01 (Apple's epoch).
    pub apple_ns: i64,
    pub text: String,
}

/// A link preview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPreviewRecord {
    pub url: Option<String>,
    pub original_url: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_urls: Vec<String>,
}

/// A content blob that did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobFailure {
    /// `attributedBody`, `messageSummaryInfo` or `payloadData`.
    pub field: String,
    pub reason: String,
}

impl MessageRecord {
    /// The tapback (or other association) this message is, and what it is on: both fields read.
    pub fn association(&self) -> Option<Association<'_>> {
        Some(Association::parse(self.associated_type?, self.associated_guid.as_deref()?))
    }

    /// What this message's association is on, whatever its kind.
    pub fn association_target(&self) -> Option<AssociationTarget<'_>> {
        self.associated_guid.as_deref().map(AssociationTarget::parse)
    }

    pub fn from_me(&self) -> bool {
        self.flags & FLAG_FROM_ME != 0
    }
    /// System and service records (renames, participant changes, …) never become timeline messages.
    pub fn is_system(&self) -> bool {
        self.flags & (FLAG_SYSTEM | FLAG_SERVICE) != 0
    }
}

/// One `attachment` record (the `cm` metadata; the file itself is the `lqa` asset, fetched
/// separately and kept beside the database by its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub record_name: String,
    /// `cm.aguid`: the transfer GUID a message's `attributedBody` names the attachment by.
    pub guid: String,
    /// `cm.mimet`
    pub mime_type: Option<String>,
    /// `cm.fn`
    pub filename: Option<String>,
    /// `cm.tb`
    pub total_bytes: i64,
    /// Size of the `lqa` asset as the server reports it; None when the record has no asset.
    pub asset_size: Option<u64>,
    /// The rest of `cm` and of the asset, kept as Messages wrote it.
    #[serde(default)]
    pub details: AttachmentDetails,
}

/// The `cm` keys besides those of [`AttachmentRecord`] (rustpush `AttachmentMeta`), and the
/// asset's identity. Dates are Messages' own: seconds since 2001-01-01, possibly negative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentDetails {
    /// `cm.t`: the uniform type identifier (`public.jpeg`, `com.apple.coreaudio-format`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uti: Option<String>,
    /// `cm.tn`: the file's name as it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_name: Option<String>,
    /// `cm.is`: a sticker (placed on a message rather than sent as one).
    #[serde(skip_serializing_if = "is_false")]
    pub is_sticker: bool,
    /// `cm.ha`: hidden from the transcript (e.g. a link preview's image).
    #[serde(skip_serializing_if = "is_false")]
    pub hide_attachment: bool,
    /// `cm.ig`: sent from this account.
    #[serde(skip_serializing_if = "is_false")]
    pub is_outgoing: bool,
    /// `cm.st`: the transfer state (5 = finished).
    #[serde(skip_serializing_if = "is_zero")]
    pub transfer_state: i64,
    /// `cm.vers`
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
    /// `cm.cdt`
    #[serde(skip_serializing_if = "is_zero")]
    pub created_date: i64,
    /// `cm.sdt`
    #[serde(skip_serializing_if = "is_zero")]
    pub start_date: i64,
    /// `lqa.signature` in hex: the file's MMCS checksum, which changes when the file does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset_signature: Option<String>,
    /// Where a local source (`chat.db`, a device backup) keeps the file, as the database names
    /// it (`~/Library/Messages/Attachments/…`). None for CloudKit, whose files are assets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl AttachmentDetails {
    pub fn is_empty(&self) -> bool {
        *self == AttachmentDetails::default()
    }
}

/// A decoded change from a `record/sync` page.
// A page's changes are moved once each into the store; boxing the message would add an
// allocation per record for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    Chat(ChatRecord),
    Message(MessageRecord),
    Attachment(AttachmentRecord),
    /// A change without a record: the record was deleted.
    Deleted {
        record_name: String,
    },
}
