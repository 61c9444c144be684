//! Values as both backends store them: a page's changes turned into per-table batches, the
//! column forms of Apple's records (flags, sizes, JSON content) and the NULL-safe mapping of a
//! row back to a record.
//!
//! Why here: the rules that decide what a stored row *means* (which NULLs are allowed, what a
//! bad participants list is) must not differ between SQLite and PostgreSQL, or the conformance
//! suite would be testing two stores. The writes stay per backend, because fast batch writes look
//! different in each (multi-row `VALUES` vs `UNNEST` of arrays).

use std::collections::HashMap;

use imessage::records::{AttachmentDetails, AttachmentRecord, ChatRecord, MessageContent, MessageRecord, RecordChange};

use crate::db::RowExt;
use crate::error::{Result, StoreError};

/// The net effect of a list of changes applied in order, as per-table batches that can be
/// written in any order: first `deleted` (from every table), then the upserts.
///
/// Within a batch each `record_name` appears once (the last upsert wins), which PostgreSQL's
/// `ON CONFLICT DO UPDATE` requires; an upsert followed by a deletion of the same name drops the
/// upsert, and a deletion followed by an upsert keeps both (delete first, then insert).
#[derive(Default)]
pub(crate) struct Plan<'a> {
    pub chats: Vec<&'a ChatRecord>,
    pub messages: Vec<&'a MessageRecord>,
    pub attachments: Vec<&'a AttachmentRecord>,
    pub deleted: Vec<&'a str>,
    /// Every record name the changes touch: their failed-record entries are obsolete.
    pub touched: Vec<&'a str>,
}

impl<'a> Plan<'a> {
    pub fn new(changes: &'a [RecordChange]) -> Plan<'a> {
        // (table, name) -> index of the pending upsert in its Vec; None slots are dropped later.
        let mut chats: Vec<Option<&ChatRecord>> = Vec::new();
        let mut messages: Vec<Option<&MessageRecord>> = Vec::new();
        let mut attachments: Vec<Option<&AttachmentRecord>> = Vec::new();
        let mut index: HashMap<(u8, &str), usize> = HashMap::with_capacity(changes.len());
        let mut plan = Plan { touched: Vec::with_capacity(changes.len()), ..Plan::default() };
        fn put<'a, T>(slots: &mut Vec<Option<&'a T>>, index: &mut HashMap<(u8, &'a str), usize>, key: (u8, &'a str), rec: &'a T) {
            match index.get(&key) {
                Some(&i) => slots[i] = Some(rec),
                None => {
                    index.insert(key, slots.len());
                    slots.push(Some(rec));
                }
            }
        }
        for change in changes {
            match change {
                RecordChange::Chat(r) => put(&mut chats, &mut index, (0, &r.record_name), r),
                RecordChange::Message(r) => put(&mut messages, &mut index, (1, &r.record_name), r),
                RecordChange::Attachment(r) => put(&mut attachments, &mut index, (2, &r.record_name), r),
                RecordChange::Deleted { record_name } => {
                    let name = record_name.as_str();
                    if let Some(i) = index.remove(&(0, name)) {
                        chats[i] = None;
                    }
                    if let Some(i) = index.remove(&(1, name)) {
                        messages[i] = None;
                    }
                    if let Some(i) = index.remove(&(2, name)) {
                        attachments[i] = None;
                    }
                    plan.deleted.push(name);
                }
            }
            plan.touched.push(change_name(change));
        }
        plan.chats = chats.into_iter().flatten().collect();
        plan.messages = messages.into_iter().flatten().collect();
        plan.attachments = attachments.into_iter().flatten().collect();
        plan
    }
}

fn change_name(change: &RecordChange) -> &str {
    match change {
        RecordChange::Chat(r) => &r.record_name,
        RecordChange::Message(r) => &r.record_name,
        RecordChange::Attachment(r) => &r.record_name,
        RecordChange::Deleted { record_name } => record_name,
    }
}

/// JSON array of strings, the portable way to pass a list as one parameter (`json_each` in
/// SQLite) and to store participants.
pub(crate) fn json_strings<S: AsRef<str> + serde::Serialize>(items: &[S]) -> String {
    // Serializing strings cannot fail; fall back to an empty list rather than panic.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
}

/// `flags` is a bit set: stored as the i64 with the same bits, so no flag is ever lost.
pub(crate) fn flags_to_db(flags: u64) -> i64 {
    flags as i64
}

pub(crate) fn asset_size_to_db(size: Option<u64>) -> Result<Option<i64>> {
    size.map(|s| i64::try_from(s).map_err(|_| StoreError::Corrupt { what: "attachments.asset_size", detail: format!("{s} exceeds i64") })).transpose()
}

/// A JSON column's value: the JSON of `value`, or NULL when it is its type's default (most
/// rows, which then cost neither a serialization nor a byte).
fn json_or_null<T: serde::Serialize + Default + PartialEq>(value: &T, what: &'static str) -> Result<Option<String>> {
    if *value == T::default() {
        return Ok(None);
    }
    serde_json::to_string(value).map(Some).map_err(|e| StoreError::Corrupt { what, detail: format!("cannot serialize: {e}") })
}

/// A JSON column read back: the default for NULL, [`StoreError::Corrupt`] for anything that is
/// not the JSON of a `T`.
fn json_or_default<T: serde::de::DeserializeOwned + Default>(raw: Option<String>, what: &'static str) -> Result<T> {
    let Some(raw) = raw else { return Ok(T::default()) };
    serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt { what, detail: format!("{e}: {raw:.80}") })
}

/// The stored form of a message's content.
pub(crate) fn content_to_db(content: &MessageContent) -> Result<Option<String>> {
    json_or_null(content, "messages.content")
}

/// The stored form of an attachment's details.
pub(crate) fn details_to_db(details: &AttachmentDetails) -> Result<Option<String>> {
    json_or_null(details, "attachments.details")
}

fn details_from_db(raw: Option<String>) -> Result<AttachmentDetails> {
    json_or_default(raw, "attachments.details")
}

/// The content a `content` column holds.
pub(crate) fn content_from_db(raw: Option<String>) -> Result<MessageContent> {
    json_or_default(raw, "messages.content")
}

pub(crate) fn participants(row: &impl RowExt) -> Result<Vec<String>> {
    let raw = row.text("participants")?;
    serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt { what: "chat_records.participants", detail: format!("{e}: {raw:.80}") })
}

pub(crate) fn chat_record(row: &impl RowExt) -> Result<ChatRecord> {
    Ok(ChatRecord {
        record_name: row.text("record_name")?,
        chat_id: row.text("chat_id")?,
        group_id: row.opt_text("group_id")?,
        style: row.int("style")?,
        display_name: row.opt_text("display_name")?,
        participants: participants(row)?,
        service: row.opt_text("service")?,
        modified_ms: row.int("modified_ms")?,
    })
}

pub(crate) fn message(row: &impl RowExt) -> Result<MessageRecord> {
    let associated_type = row
        .opt_int("associated_type")?
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt { what: "messages.associated_type", detail: format!("{v} is not a u32") }))
        .transpose()?;
    Ok(MessageRecord {
        record_name: row.text("record_name")?,
        guid: row.text("guid")?,
        chat_id: row.text("chat_id")?,
        sender: row.text("sender")?,
        flags: row.int("flags")? as u64, // bit-preserving, see flags_to_db
        ts_ms: row.int("ts_ms")?,
        text: row.opt_text("text")?,
        subject: row.opt_text("subject")?,
        associated_type,
        associated_guid: row.opt_text("associated_guid")?,
        service: row.opt_text("service")?,
        content: content_from_db(row.opt_text("content")?)?,
    })
}

pub(crate) fn attachment(row: &impl RowExt) -> Result<AttachmentRecord> {
    let asset_size = row
        .opt_int("asset_size")?
        .map(|v| u64::try_from(v).map_err(|_| StoreError::Corrupt { what: "attachments.asset_size", detail: format!("{v} is negative") }))
        .transpose()?;
    Ok(AttachmentRecord {
        record_name: row.text("record_name")?,
        guid: row.text("guid")?,
        mime_type: row.opt_text("mime_type")?,
        filename: row.opt_text("filename")?,
        total_bytes: row.int("total_bytes")?,
        asset_size,
        details: details_from_db(row.opt_text("details")?)?,
    })
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
