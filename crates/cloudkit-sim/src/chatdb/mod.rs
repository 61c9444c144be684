//! The simulated account written as a Mac's Messages folder: `chat.db` and `Attachments/`.
//!
//! The bridge also reads a Mac's `~/Library/Messages/chat.db` and the `sms.db` of iPhone
//! backups. Tests of those readers need a database whose truth is known from outside the
//! reader; this module writes the very account the CloudKit simulator serves, with Apple's own
//! DDL ([`ddl`]), so that the truth of CloudKit is (nearly: see [`truth`]) the truth of the
//! folder and every end-to-end check of rooms against truth works for it unchanged.
//!
//! How the account maps onto Messages' tables ([`rows`]):
//! - one `handle` per (address, service), `id` without `tel:`/`mailto:`, some phone numbers
//!   with a human-typed `uncanonicalized_id`;
//! - one `chat` per simulated chat (`iMessage;-;+1555…` / `iMessage;+;chat…`), plus, for the
//!   first DM with a phone number, a second chat `SMS;-;+1555…` for the same person holding
//!   some of that person's messages (service `SMS`): Messages shows both as one conversation,
//!   and so must a reader;
//! - one `message` per generated message in time order (ROWIDs ascending with time), except
//!   deleted and foreign records; renames are `item_type` 2 with `group_title`, participant
//!   notices `item_type` 1 (re-adding a present member, so membership stays as truth says),
//!   other notices `item_type` 3 (group photo) or 6 (FaceTime, in a DM);
//! - one `attachment` per attachment message, its file at `Attachments/xx/yy/GUID/name`, except
//!   one file left out as "Optimize Storage" does ([`rows::Layout::missing`]).
//!
//! A DM whose chat id the simulator suffixed (`tel:+1…-7`, two DMs drawn with the same
//! number) is written as it is: handle and `chat_identifier` `+1…-7`, a distinct chat as in
//! CloudKit truth.

pub mod ddl;
pub mod rows;
pub mod write;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub use ddl::Schema;
pub use rows::Layout;
pub use write::{write_folder, write_folder_with, FolderSummary};

use crate::truth::{attachment_line, message_line, TruthLine};

/// Why a folder could not be written.
#[derive(Debug)]
#[non_exhaustive]
pub enum FolderError {
    /// The folder already has a `chat.db`.
    Exists(PathBuf),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Sql(sqlx::Error),
    /// An attachment whose filename is not below `~/Library/Messages` or `~/Library/SMS`.
    Path(String),
}

impl fmt::Display for FolderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FolderError::Exists(p) => write!(f, "{} already exists; not overwriting a Messages database", p.display()),
            FolderError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            FolderError::Sql(e) => write!(f, "writing chat.db: {e}"),
            FolderError::Path(guid) => write!(f, "attachment {guid} has no path below the Messages folder"),
        }
    }
}

impl std::error::Error for FolderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FolderError::Io { source, .. } => Some(source),
            FolderError::Sql(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for FolderError {
    fn from(e: sqlx::Error) -> Self {
        FolderError::Sql(e)
    }
}

/// One line of the folder's truth: a line of the simulator's truth, or what only a Messages
/// folder has.
// A folder's truth is a stream of lines, each serialized and dropped: the size of the larger
// variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FolderTruth {
    Line(TruthLine),
    Folder(FolderLine),
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FolderLine {
    /// The SMS chat with the same person as DM `chat`: one conversation, two `chat` rows.
    SmsChat { guid: String, chat: String, messages: Vec<String> },
    /// The attachment whose file is not in the folder, and where it would be.
    MissingFile { guid: String, path: String },
}

/// The truth of the folder [`write_folder`] writes for `layout`, worked out from the generator
/// (not read back): chats, then messages in time order, then attachments (as the simulator's
/// truth), then the SMS chat and the missing file.
///
/// Chat ids are the simulator's (`tel:+1…`, `mailto:…`, `chat…`), the SMS chat folded into its
/// DM. Against `cloudkit-sim truth` with the same account it differs only where the folder holds
/// something else: every non-system message has `content.read_ms` (received) or
/// `content.delivered_ms` (sent); a rename's `text` is null (the name is in `group_title`); and
/// for `ios13`/`legacy` unsent messages and emoji tapbacks are absent, edits and replies are
/// gone from `content`, placed stickers are `associated_type` 1000, and (`legacy`) times are
/// whole seconds.
pub fn truth(layout: &Layout<'_>, mut f: impl FnMut(FolderTruth)) {
    let account = layout.account;
    for c in &account.chats {
        f(FolderTruth::Line(account.chat_line(c, false)));
    }
    let mut sms = Vec::new();
    for g in 0..account.history {
        if let Some(row) = layout.message(g) {
            if row.sms {
                sms.push(row.record.guid.clone());
            }
            f(FolderTruth::Line(message_line(row.record, None, None)));
        }
    }
    let mut missing = None;
    for &g in &account.attachments[..account.visible(false).attachments] {
        let (a, bytes) = layout.attachment(u64::from(g));
        if layout.missing == Some(u64::from(g)) {
            let path = a.filename.as_deref().and_then(Layout::relative_path).unwrap_or_default().to_string();
            missing = Some(FolderLine::MissingFile { guid: a.guid.clone(), path });
        }
        f(FolderTruth::Line(attachment_line(a, &bytes)));
    }
    if let (Some(chat), Some(c)) = (layout.sms_chat(), layout.sms_twin) {
        f(FolderTruth::Folder(FolderLine::SmsChat { guid: chat.guid.clone(), chat: account.chats[c].chat_id.clone(), messages: sms }));
    }
    if let Some(line) = missing {
        f(FolderTruth::Folder(line));
    }
}
