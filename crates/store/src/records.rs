//! The records themselves: chats, messages and attachments as the sync stored them — the
//! [`RecordStore`] job, read by delivery, `verify` and `status`, for both backends.
//!
//! Why reads only: records are written with their page (see [`SyncStore`](crate::SyncStore)), so
//! a record and the token after it land together; here they are read back, in the orders delivery
//! relies on (a chat's messages by time, then guid).

use async_trait::async_trait;
use imessage::records::{AttachmentRecord, ChatRecord, MessageRecord};
use serde::{Deserialize, Serialize};

use crate::db::{Db, Param, RowExt};
use crate::error::Result;
use crate::values;

/// A chat as the bridge sees it: the newest chat record wins for name and participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub chat_id: String,
    pub group_id: Option<String>,
    pub style: i64,
    /// Display name of the most recently modified chat record (None if that record has none).
    pub display_name: Option<String>,
    pub participants: Vec<String>,
    pub modified_ms: i64,
}

/// Reading the stored records.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// All chats, newest chat record per `chat_id`, ordered by `chat_id`.
    async fn chats(&self) -> Result<Vec<Chat>>;
    /// Messages of a chat ordered by (ts_ms, guid).
    async fn messages_in_chat(&self, chat_id: &str) -> Result<Vec<MessageRecord>>;
    /// Every stored message guid (any order).
    async fn message_guids(&self) -> Result<Vec<String>>;
    /// Messages kept although one of their content blobs did not decode, in time order.
    async fn undecodable_messages(&self) -> Result<Vec<MessageRecord>>;
    /// All chat records (every version), ordered by record_name.
    async fn chat_records(&self) -> Result<Vec<ChatRecord>>;
    /// All attachment records, ordered by record_name.
    async fn attachments(&self) -> Result<Vec<AttachmentRecord>>;
}

#[async_trait]
impl<D: Db> RecordStore for D {
    async fn chats(&self) -> Result<Vec<Chat>> {
        self.read_rows(CHATS, &[]).await?.iter().map(chat).collect()
    }

    async fn messages_in_chat(&self, chat_id: &str) -> Result<Vec<MessageRecord>> {
        self.settle_messages().await?;
        self.read_rows(MESSAGES_IN_CHAT, &[Param::Text(chat_id)]).await?.iter().map(values::message).collect()
    }

    async fn message_guids(&self) -> Result<Vec<String>> {
        self.settle_messages().await?;
        self.read_rows(MESSAGE_GUIDS, &[]).await?.iter().map(|row| row.text("guid")).collect()
    }

    async fn undecodable_messages(&self) -> Result<Vec<MessageRecord>> {
        self.settle_messages().await?;
        let messages: Vec<MessageRecord> = self.read_rows(UNDECODABLE, &[]).await?.iter().map(values::message).collect::<Result<_>>()?;
        Ok(messages.into_iter().filter(|m| !m.content.undecodable.is_empty()).collect())
    }

    async fn chat_records(&self) -> Result<Vec<ChatRecord>> {
        self.read_rows(CHAT_RECORDS, &[]).await?.iter().map(values::chat_record).collect()
    }

    async fn attachments(&self) -> Result<Vec<AttachmentRecord>> {
        self.read_rows(ATTACHMENTS, &[]).await?.iter().map(values::attachment).collect()
    }
}

const CHAT_RECORDS: &str = "SELECT record_name, chat_id, group_id, style, display_name, participants, service, \
     modified_ms FROM chat_records ORDER BY record_name";
const CHATS: &str = "SELECT chat_id, group_id, style, display_name, participants, modified_ms FROM (\
       SELECT chat_id, group_id, style, display_name, participants, modified_ms, ROW_NUMBER() OVER (\
         PARTITION BY chat_id ORDER BY modified_ms DESC, record_name DESC) AS rn FROM chat_records\
     ) newest WHERE rn = 1 ORDER BY chat_id";
const MESSAGES_IN_CHAT: &str = "SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
     associated_type, associated_guid, service, content FROM messages WHERE chat_id = $1 ORDER BY ts_ms, guid";
const MESSAGE_GUIDS: &str = "SELECT guid FROM messages";
/// Messages with a content blob that did not decode (their content JSON names the failures).
const UNDECODABLE: &str = "SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
     associated_type, associated_guid, service, content FROM messages WHERE content LIKE '%\"undecodable\"%' \
     ORDER BY ts_ms, guid";
const ATTACHMENTS: &str = "SELECT record_name, guid, mime_type, filename, total_bytes, asset_size, details \
     FROM attachments ORDER BY record_name";

fn chat(row: &impl RowExt) -> Result<Chat> {
    Ok(Chat {
        chat_id: row.text("chat_id")?,
        group_id: row.opt_text("group_id")?,
        style: row.int("style")?,
        display_name: row.opt_text("display_name")?,
        participants: values::participants(row)?,
        modified_ms: row.int("modified_ms")?,
    })
}
