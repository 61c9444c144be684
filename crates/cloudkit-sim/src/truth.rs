//! The simulator's ground truth: one line per chat, message and attachment the account shows
//! (`cloudkit-sim truth`), as tests and benchmarks compare a bridge's result with it.
//!
//! Why a leaf module: the account's generator, its revisions and the Messages folder writer
//! all emit these lines; apart from all of them, none imports another for the line's shape.

use cloudkit::records::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One line of `cloudkit-sim truth`.
// Lines are written out one at a time; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TruthLine {
    Chat {
        chat: String,
        name: Option<String>,
        participants: Vec<String>,
        group: bool,
    },
    Message {
        chat: String,
        guid: String,
        sender: String,
        from_me: bool,
        system: bool,
        text: Option<String>,
        ts_ms: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        associated_type: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        associated_guid: Option<String>,
        /// For `--apple-blobs` messages: the fixture file the message carries.
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        /// What the message's content blobs hold (parts, edits, unsends, link preview, effect).
        #[serde(skip_serializing_if = "MessageContent::is_empty")]
        content: MessageContent,
        /// For a message changed after the release (`--revise`): how.
        #[serde(skip_serializing_if = "Option::is_none")]
        revised: Option<RevisionKind>,
    },
    /// An attachment record, and the file its asset serves (`sha256` of the plaintext bytes).
    Attachment {
        guid: String,
        mime_type: Option<String>,
        filename: Option<String>,
        total_bytes: i64,
        #[serde(skip_serializing_if = "AttachmentDetails::is_empty")]
        details: AttachmentDetails,
        sha256: String,
    },
}

/// What happened to a revised message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionKind {
    Deleted,
    Unsent,
    Edited,
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The truth line of an attachment record whose file is `bytes`.
pub(crate) fn attachment_line(a: AttachmentRecord, bytes: &[u8]) -> TruthLine {
    TruthLine::Attachment {
        guid: a.guid,
        mime_type: a.mime_type,
        filename: a.filename,
        total_bytes: a.total_bytes,
        details: a.details,
        sha256: sha256_hex(bytes),
    }
}

pub(crate) fn message_line(m: MessageRecord, file: Option<String>, revised: Option<RevisionKind>) -> TruthLine {
    TruthLine::Message {
        system: m.is_system(),
        from_me: m.from_me(),
        chat: m.chat_id,
        guid: m.guid,
        sender: m.sender,
        text: m.text,
        ts_ms: m.ts_ms,
        associated_type: m.associated_type,
        associated_guid: m.associated_guid,
        file,
        content: m.content,
        revised,
    }
}
