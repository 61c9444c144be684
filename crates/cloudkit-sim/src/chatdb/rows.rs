//! What every row of the Messages folder holds, worked out from the generator alone.
//!
//! The writer and the truth export both read these rows, so the folder's truth is the
//! generator's account as one schema generation can hold it — never what a reader (or this
//! writer) made of the database.

use std::collections::HashMap;

use cloudkit::records::{AttachmentRecord, MessageRecord, FLAG_SYSTEM, STYLE_DIRECT, STYLE_GROUP};
use sha2::{Digest, Sha256};

use super::ddl::Schema;
use crate::account::{Account, Generated, Kind, STICKER_TAPBACK};
use crate::encode::ContentBlobs;

/// `message.account` / `chat.account_login` of the owner on iMessage and on SMS.
pub const ACCOUNT_IMESSAGE: &str = "E:me@icloud.example";
pub const ACCOUNT_SMS: &str = "P:+15550000001";
/// The owner's number: `destination_caller_id`, `last_addressed_handle`.
pub const OWN_NUMBER: &str = "+15550000001";
/// `associated_message_type` of a sticker placed on a message before iOS 17's sticker tapbacks.
pub const LEGACY_STICKER: u32 = 1000;
/// After a received message, when it was read; after a sent one, when it was delivered.
const READ_AFTER_MS: i64 = 45_000;
const DELIVERED_AFTER_MS: i64 = 2_000;
/// An unsent message was unsent this long after it was sent.
const UNSENT_AFTER_MS: i64 = 60_000;

/// A handle row: one per (address, service).
#[derive(Debug, Clone)]
pub struct HandleRow {
    /// `id`: the address without `tel:` / `mailto:`.
    pub id: String,
    pub service: &'static str,
    /// A phone number as a person typed it, for some numbers.
    pub uncanonicalized_id: Option<String>,
}

/// A chat row.
#[derive(Debug, Clone)]
pub struct ChatRow {
    pub rowid: i64,
    pub guid: String,
    pub chat_identifier: String,
    pub style: i64,
    /// The current group name; `""` when there is none, as Messages writes it.
    pub display_name: String,
    pub group_id: String,
    pub service: &'static str,
    pub account_login: &'static str,
    /// `room_name`: a group's `chat…` id (NULL for a DM).
    pub room_name: Option<String>,
    pub cloudkit_record_id: Option<String>,
    /// Handle ROWIDs of the members.
    pub members: Vec<i64>,
}

/// A message row, with the record the truth reports for it (times in Unix ms, already at the
/// schema's precision).
pub struct MessageRow {
    pub g: u64,
    pub kind: Kind,
    /// Chat ROWID (the SMS twin's for SMS messages).
    pub chat_rowid: i64,
    pub sms: bool,
    pub record: MessageRecord,
    pub blobs: ContentBlobs,
    pub handle_id: i64,
    pub item_type: i64,
    pub group_action_type: i64,
    pub other_handle: i64,
    pub group_title: Option<String>,
    pub date_edited_ms: Option<i64>,
    pub date_retracted_ms: Option<i64>,
    pub thread_originator_part: Option<String>,
    /// `cache_roomnames` as Messages' trigger fills it.
    pub room_name: Option<String>,
}

/// The address without its scheme.
pub fn bare(address: &str) -> &str {
    address.strip_prefix("tel:").or_else(|| address.strip_prefix("mailto:")).unwrap_or(address)
}

/// `(555) 123-4567` for a US number `+15551234567`.
fn human_format(id: &str) -> Option<String> {
    let d = id.strip_prefix("+1").filter(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()))?;
    Some(format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..]))
}

/// A stable GUID made from `seed` (for a DM's `group_id`, which CloudKit does not carry).
fn derived_guid(seed: &str) -> String {
    let h: String = Sha256::digest(seed.as_bytes()).iter().take(16).map(|b| format!("{b:02X}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The account laid out as the rows of one schema generation.
pub struct Layout<'a> {
    pub account: &'a Account,
    pub schema: Schema,
    /// The DM (an index of `account.chats`) that also has an SMS chat.
    pub sms_twin: Option<usize>,
    /// The attachment message whose file is not in the folder.
    pub missing: Option<u64>,
    /// Handle rows; ROWID = index + 1.
    pub handles: Vec<HandleRow>,
    handle_ids: HashMap<(String, bool), i64>,
    pub chats: Vec<ChatRow>,
}

impl<'a> Layout<'a> {
    pub fn new(account: &'a Account, schema: Schema) -> Self {
        let sms_twin = account
            .chats
            .iter()
            .position(|c| c.style == STYLE_DIRECT && c.chat_id.strip_prefix("tel:+").is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())));
        let history_attachments = account.visible(false).attachments;
        let missing = account.attachments[..history_attachments].iter().map(|&g| u64::from(g)).find(|&g| !account.is_sticker(g));
        let mut layout = Layout { account, schema, sms_twin, missing, handles: Vec::new(), handle_ids: HashMap::new(), chats: Vec::new() };
        for chat in &account.chats {
            for p in &chat.participants {
                layout.add_handle(p, false);
            }
        }
        if let Some(c) = sms_twin {
            layout.add_handle(&account.chats[c].participants[0], true);
        }
        layout.chats = layout.chat_rows();
        layout
    }

    fn add_handle(&mut self, address: &str, sms: bool) {
        let next = self.handles.len() as i64 + 1;
        if let std::collections::hash_map::Entry::Vacant(e) = self.handle_ids.entry((address.to_string(), sms)) {
            e.insert(next);
            let id = bare(address).to_string();
            // Some numbers as a person typed them (exercises canonicalization), by a digest so the
            // choice does not depend on the order handles are met.
            let typed = Sha256::digest(id.as_bytes())[0] % 3 == 0;
            let uncanonicalized_id = if typed { human_format(&id) } else { None };
            self.handles.push(HandleRow { id, service: if sms { "SMS" } else { "iMessage" }, uncanonicalized_id });
        }
    }

    /// The ROWID of `address`'s handle on iMessage or SMS (0 if it has none).
    pub fn handle(&self, address: &str, sms: bool) -> i64 {
        self.handle_ids.get(&(address.to_string(), sms)).copied().unwrap_or(0)
    }

    fn chat_rows(&self) -> Vec<ChatRow> {
        let mut rows = Vec::new();
        for (c, chat) in self.account.chats.iter().enumerate() {
            let group = chat.style == STYLE_GROUP;
            let identifier = if group { chat.chat_id.clone() } else { bare(&chat.chat_id).to_string() };
            let newest = self.account.chat_records[..self.account.visible(false).chat_records]
                .iter()
                .filter(|r| r.chat_id == chat.chat_id)
                .max_by_key(|r| r.modified_ms);
            rows.push(ChatRow {
                rowid: c as i64 + 1,
                guid: format!("iMessage;{};{identifier}", if group { '+' } else { '-' }),
                chat_identifier: identifier,
                style: chat.style,
                display_name: self.account.current_name(&chat.chat_id, false).unwrap_or_default(),
                group_id: chat.group_id.clone().unwrap_or_else(|| derived_guid(&chat.chat_id)),
                service: "iMessage",
                account_login: ACCOUNT_IMESSAGE,
                room_name: group.then(|| chat.chat_id.clone()),
                cloudkit_record_id: newest.map(|r| r.record_name.clone()),
                members: chat.participants.iter().map(|p| self.handle(p, false)).collect(),
            });
        }
        if let Some(c) = self.sms_twin {
            let person = &self.account.chats[c].participants[0];
            let identifier = bare(person).to_string();
            rows.push(ChatRow {
                rowid: rows.len() as i64 + 1,
                guid: format!("SMS;-;{identifier}"),
                chat_identifier: identifier,
                style: STYLE_DIRECT,
                display_name: String::new(),
                group_id: derived_guid(&format!("SMS;{person}")),
                service: "SMS",
                account_login: ACCOUNT_SMS,
                room_name: None,
                cloudkit_record_id: None,
                members: vec![self.handle(person, true)],
            });
        }
        rows
    }

    /// The SMS twin chat's row, if there is one.
    pub fn sms_chat(&self) -> Option<&ChatRow> {
        self.sms_twin.and_then(|_| self.chats.last())
    }

    /// Times at the schema's precision: whole seconds before High Sierra.
    pub fn at_precision(&self, unix_ms: i64) -> i64 {
        if self.schema.dates_in_seconds() {
            let apple = unix_ms - cloudkit::records::APPLE_EPOCH_UNIX_SECS * 1000;
            unix_ms - apple.rem_euclid(1000)
        } else {
            unix_ms
        }
    }

    /// A Unix-ms time as the schema stores it: nanoseconds or seconds since 2001.
    pub fn apple_time(&self, unix_ms: i64) -> i64 {
        let ns = cloudkit::records::unix_ms_to_apple_ns(unix_ms);
        if self.schema.dates_in_seconds() {
            ns.div_euclid(1_000_000_000)
        } else {
            ns
        }
    }

    /// Message `g` as its row, or `None` when the folder has no row for it: deleted and foreign
    /// records, and (before iOS 16/17) unsent messages and emoji tapbacks, which those
    /// generations cannot express.
    pub fn message(&self, g: u64) -> Option<MessageRow> {
        let Generated { mut record, mut blobs, kind } = self.account.message(g);
        if matches!(kind, Kind::Deleted | Kind::Foreign) {
            return None;
        }
        let c = self.account.chat_of(g);
        let chat = &self.account.chats[c];
        let group = chat.style == STYLE_GROUP;
        // Chosen on the generator's message, so every generation puts the same ones in SMS.
        let content = &record.content;
        let plain = content.edits.is_empty() && content.effect.is_none() && content.link_preview.is_none() && content.reply_to.is_none() && !content.unsent;
        let sms = Some(c) == self.sms_twin && matches!(kind, Kind::Text | Kind::Attachment) && plain && g.is_multiple_of(2);
        if self.schema != Schema::Macos {
            if record.content.unsent || record.associated_type.is_some_and(|t| t % 1000 == 6) {
                return None;
            }
            if record.associated_type == Some(STICKER_TAPBACK) {
                record.associated_type = Some(LEGACY_STICKER);
            }
            record.content.edits.clear();
            record.content.reply_to = None;
            blobs.message_summary_info = None;
        }
        record.ts_ms = self.at_precision(record.ts_ms);
        if sms {
            record.service = Some("SMS".into());
        }
        let (from_me, system) = (record.from_me(), record.is_system());
        let handle_id = match () {
            _ if system => 0,
            // Messages files a sent DM message under the other person's handle.
            _ if from_me && group => 0,
            _ if from_me => self.handle(&chat.participants[0], sms),
            _ => self.handle(&record.sender, sms),
        };
        let (mut item_type, mut group_action_type, mut other_handle, mut group_title) = (0, 0, 0, None);
        match kind {
            Kind::Rename => {
                item_type = 2;
                group_title = Some(Account::rename_name(self.account.spec.seed, g));
                record.text = None;
            }
            // A member "added" who already is one: the membership stays what truth says.
            Kind::Notice if group && record.flags & FLAG_SYSTEM != 0 => {
                item_type = 1;
                other_handle = self.handle(&chat.participants[g as usize % chat.participants.len()], false);
            }
            // The group photo changed.
            Kind::Notice if group => (item_type, group_action_type) = (3, 1),
            // A FaceTime call.
            Kind::Notice => item_type = 6,
            _ => {}
        }
        if !system {
            if from_me {
                record.content.delivered_ms = Some(record.ts_ms + DELIVERED_AFTER_MS);
            } else {
                record.content.read_ms = Some(record.ts_ms + READ_AFTER_MS);
            }
        }
        let unsent = record.content.unsent.then_some(record.ts_ms + UNSENT_AFTER_MS);
        let edited = record.content.edits.iter().flat_map(|p| p.versions.last()).map(|v| cloudkit::records::apple_ns_to_unix_ms(v.apple_ns)).max();
        let thread_originator_part = record.content.reply_to.as_ref().map(|_| {
            let len = self.account.reply_target(g).and_then(|t| self.account.message(t).record.text).map_or(0, |t| t.encode_utf16().count());
            format!("0:0:{len}")
        });
        Some(MessageRow {
            g,
            kind,
            chat_rowid: if sms { self.chats.len() as i64 } else { c as i64 + 1 },
            sms,
            record,
            blobs,
            handle_id,
            item_type,
            group_action_type,
            other_handle,
            group_title,
            date_edited_ms: edited.or(unsent),
            date_retracted_ms: unsent,
            thread_originator_part,
            room_name: group.then(|| chat.chat_id.clone()),
        })
    }
}

impl Layout<'_> {
    /// Attachment message `g`'s record as this generation names its file (`~/Library/SMS/…` on
    /// iOS), and the file's bytes.
    pub fn attachment(&self, g: u64) -> (AttachmentRecord, Vec<u8>) {
        let bytes = self.account.attachment_bytes(g);
        let mut a = self.account.attachment_of_size(g, bytes.len());
        if self.schema == Schema::Ios13 {
            a.filename = a.filename.map(|f| f.replacen("~/Library/Messages/", "~/Library/SMS/", 1));
        }
        (a, bytes)
    }

    /// Where an attachment's file lies below the folder: its `filename` without the library
    /// prefix (`Attachments/xx/yy/GUID/name`).
    pub fn relative_path(filename: &str) -> Option<&str> {
        filename.strip_prefix("~/Library/Messages/").or_else(|| filename.strip_prefix("~/Library/SMS/"))
    }
}
