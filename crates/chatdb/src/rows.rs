//! A page of `message` rows between reading and decoding: the columns the reader selects, in
//! the order `decode.rs` reads them by position, the rows as read ([`MessageRows`]) and the
//! page they decode into ([`MessagePage`]). A leaf: the reader (`messages.rs`) and the decoder
//! (`decode.rs`) both use it and not each other's types.

use std::collections::BTreeMap;

use imessage::records::MessageRecord;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::Skipped;

/// Where the ROWID is in a row of [`crate::ChatDb::message_select`] (then `guid`, then the
/// [`MESSAGE_COLUMNS`]).
pub(crate) const ROWID: usize = 0;

/// The columns read from `message`, each NULL where the database lacks it (in this order:
/// `decode.rs` reads them by position).
pub(crate) const MESSAGE_COLUMNS: [&str; 27] = [
    "text",
    "subject",
    "attributedBody",
    "message_summary_info",
    "payload_data",
    "balloon_bundle_id",
    "expressive_send_style_id",
    "date",
    "date_read",
    "date_delivered",
    "date_edited",
    "date_retracted",
    "is_from_me",
    "service",
    "account",
    "destination_caller_id",
    "associated_message_guid",
    "associated_message_type",
    "associated_message_emoji",
    "thread_originator_guid",
    "thread_originator_part",
    "item_type",
    "group_title",
    "group_action_type",
    "ck_record_id",
    "is_system_message",
    "is_service_message",
];

/// One page of messages.
#[derive(Debug, Default)]
pub struct MessagePage {
    pub records: Vec<MessageRecord>,
    pub skipped: Vec<Skipped>,
    /// The highest ROWID on the page (0 for an empty page).
    pub last_rowid: i64,
    /// Rows read (records + skipped).
    pub rows: usize,
}

impl MessagePage {
    /// Adds a later piece of the same page (see [`MessageRows::split`]).
    pub fn append(&mut self, piece: MessagePage) {
        self.records.extend(piece.records);
        self.skipped.extend(piece.skipped);
        self.last_rowid = self.last_rowid.max(piece.last_rowid);
        self.rows += piece.rows;
    }
}

/// A page of `message` rows as read, with the transfer GUIDs of their attachments, not yet
/// decoded. Holds its values (no borrow of the database), so it can go to another thread.
#[derive(Default)]
pub struct MessageRows {
    pub(crate) rows: Vec<SqliteRow>,
    pub(crate) attachments: BTreeMap<i64, Vec<String>>,
}

impl MessageRows {
    /// Rows read (a message in two chats counts twice).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The highest ROWID read (0 for no rows).
    pub fn last_rowid(&self) -> i64 {
        self.rows.iter().filter_map(|r| r.try_get::<i64, _>(ROWID).ok()).max().unwrap_or(0)
    }

    /// Cuts the page into at most `pieces` runs of rows, in order, never between two rows of
    /// the same message, each with its messages' attachments: decoded apart and appended in
    /// order, they give the page [`MessageDecoder::decode`] gives for the whole.
    pub fn split(self, pieces: usize) -> Vec<MessageRows> {
        let MessageRows { mut rows, mut attachments } = self;
        let size = rows.len().div_ceil(pieces.max(1)).max(1);
        let mut out = Vec::new();
        while rows.len() > size {
            let mut cut = size;
            let rowid = |i: usize| rows.get(i).and_then(|r| r.try_get::<i64, _>(ROWID).ok());
            while cut < rows.len() && rowid(cut) == rowid(cut - 1) {
                cut += 1;
            }
            if cut == rows.len() {
                break;
            }
            let first_after = rowid(cut).unwrap_or(i64::MAX);
            let rest = rows.split_off(cut);
            let rest_attachments = attachments.split_off(&first_after);
            out.push(MessageRows { rows, attachments });
            rows = rest;
            attachments = rest_attachments;
        }
        out.push(MessageRows { rows, attachments });
        out
    }
}
