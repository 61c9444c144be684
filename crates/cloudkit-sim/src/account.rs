//! The simulated iMessage account: a pure function of `(seed, sizes)`.
//!
//! Every message is generated on demand from its global index `g` (a ChaCha stream positioned at
//! `g`), so a million-message account costs a few bytes per message of precomputed links (the
//! previous message of the same chat, for tapbacks) and nothing else. The same generator feeds the
//! server and the `truth` export, which is what makes truth trustworthy for tests: it is not
//! derived from anything the bridge did.
//!
//! Timestamps grow strictly with `g`, so a chat's chronological order is its index order; the
//! server deliberately serves history in a permuted order so the bridge cannot rely on it.
//!
//! History and later messages: the first `messages + big_chat` indexes are the history the
//! account has when the server starts. `later` more indexes are messages that arrive afterwards
//! (newer than all history, spread over every chat, the first one renaming a group); the server
//! serves them, and their chat record versions, only once released — the live edge a bridge must
//! append after the history it already delivered.

use cloudkit::records::*;

use crate::fixtures::AppleFixtures;
use crate::truth::{attachment_line, message_line, TruthLine};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Size and shape of the generated account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    pub seed: u64,
    /// Chats besides the big chat.
    pub chats: u32,
    /// Messages spread over those chats.
    pub messages: u64,
    /// Messages of the one big group chat (0: no big chat).
    pub big_chat: u64,
    /// Messages that arrive after the history, served once released (0: none).
    pub later: u64,
}

/// Kinds of generated message records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Group rename (system record, empty sender).
    Rename,
    /// Participant change or service notice (system record, empty sender).
    Notice,
    Tapback,
    /// A sticker: placed on a message nearby (tapback 2007) when there is one, else sent on its
    /// own. Either way it has an attachment record (a HEIC with `is` set).
    Sticker,
    Attachment,
    /// Served as a deletion tombstone; not in truth.
    Deleted,
    /// Served as a record of a type the bridge does not know (Apple's zones hold more types than
    /// a Messages client reads); skipped, counted, not in truth.
    Foreign,
}

pub const OWN_HANDLES: [&str; 2] = ["tel:+15550000001", "mailto:me@icloud.example"];
const T0_MS: i64 = 1_420_070_400_000; // 2015-01-01
const GAP_MS: i64 = 90_000;
pub(crate) const NO_PREV: u32 = u32::MAX;

const WORDS: [&str; 24] = [
    "hey", "lunch", "tomorrow", "sounds", "good", "see", "you", "there", "did", "the", "train", "leave", "yet", "photo", "haha", "ok", "running", "late",
    "love", "this", "café", "weekend", "🎉", "👍",
];
const GROUP_NAMES: [&str; 8] = ["Family", "Climbing crew", "Book club", "Flat 4B", "Road trip", "Team lunch", "Choir", "Cousins"];

#[derive(Debug, Clone, Serialize)]
pub struct ChatInfo {
    pub chat_id: String,
    pub group_id: Option<String>,
    pub style: i64,
    pub participants: Vec<String>,
    pub initial_name: Option<String>,
    pub created_ms: i64,
}

pub struct Account {
    pub spec: AccountSpec,
    pub chats: Vec<ChatInfo>,
    /// Every version of every chat record, in serving order: the history's versions, then the
    /// versions later renames create.
    pub chat_records: Vec<ChatRecord>,
    /// Global indexes of attachment messages (the attachment zone's items), ascending.
    pub attachments: Vec<u32>,
    /// For each message, the index of the previous message of the same chat.
    pub(crate) prev_in_chat: Vec<u32>,
    /// Messages served as deletions (all in the history).
    pub deleted: u64,
    /// Message-zone records of a type the bridge does not know (all in the history).
    pub foreign: u64,
    /// Indexes of the history: `0..history`.
    pub history: u64,
    /// All indexes, later messages included.
    pub total: u64,
    /// How many chat records and attachments belong to the history (prefixes of their lists).
    history_chat_records: usize,
    history_attachments: usize,
}

/// How much of the account the server shows: everything up to these counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible {
    pub messages: u64,
    pub chat_records: usize,
    pub attachments: usize,
}

/// A generated message and what the server does with it.
pub struct Generated {
    /// The message as the bridge must store it (its `content` is what the blobs decode to).
    pub record: MessageRecord,
    /// The blobs its `msgProto` carries.
    pub blobs: crate::encode::ContentBlobs,
    pub kind: Kind,
}

pub(crate) fn rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r.set_word_pos((index as u128) << 10);
    r
}

pub(crate) fn hex_id(r: &mut ChaCha8Rng, len: usize) -> String {
    (0..len).map(|_| char::from_digit(r.gen_range(0..16), 16).unwrap_or('0')).collect()
}

pub(crate) fn guid(r: &mut ChaCha8Rng) -> String {
    let h = hex_id(r, 32).to_uppercase();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

const STREAM_CHAT: u64 = 1;
const STREAM_MSG: u64 = 2;
pub(crate) const STREAM_NAMES: u64 = 3;
const STREAM_CONTENT: u64 = 4;
/// Where a sticker is placed (stream 5 is the tapbacks', in [`crate::reactions`]).
const STREAM_STICKER: u64 = 13;
/// `associatedMessageType` of a sticker placed on a message.
pub const STICKER_TAPBACK: u32 = 2007;

impl Account {
    pub fn generate(spec: AccountSpec) -> Self {
        let contacts: Vec<String> = (0..(spec.chats as u64 * 2 + 12))
            .map(|i| {
                let mut r = rng(spec.seed, STREAM_NAMES, i);
                if r.gen_bool(0.8) {
                    format!("tel:+1555{:07}", r.gen_range(1_000_000..9_999_999))
                } else {
                    format!("mailto:friend{i}@example.com")
                }
            })
            .collect();
        let mut chats = Vec::new();
        let pick_group = |r: &mut ChaCha8Rng, n: usize| -> Vec<String> {
            let mut p: Vec<String> = Vec::new();
            while p.len() < n {
                let c = contacts[r.gen_range(0..contacts.len())].clone();
                if !p.contains(&c) {
                    p.push(c);
                }
            }
            p
        };
        let new_group = |r: &mut ChaCha8Rng, n: usize, name: Option<String>| ChatInfo {
            chat_id: format!("chat{:018}", r.gen_range(0..1_000_000_000_000_000_000u64)),
            group_id: Some(guid(r)),
            style: STYLE_GROUP,
            participants: pick_group(r, n),
            initial_name: name,
            created_ms: T0_MS - 3_600_000,
        };
        if spec.big_chat > 0 {
            let mut r = rng(spec.seed, STREAM_CHAT, 0);
            chats.push(new_group(&mut r, 5, Some("The Big Chat".into())));
        }
        for c in 1..=spec.chats as u64 {
            let mut r = rng(spec.seed, STREAM_CHAT, c);
            let chat = if r.gen_bool(0.35) {
                let n = r.gen_range(2..=6);
                let name = r.gen_bool(0.75).then(|| format!("{} {c}", GROUP_NAMES[r.gen_range(0..GROUP_NAMES.len())]));
                new_group(&mut r, n, name)
            } else {
                let handle = contacts[(c as usize * 2) % contacts.len()].clone();
                ChatInfo {
                    chat_id: handle.clone(),
                    group_id: None,
                    style: STYLE_DIRECT,
                    participants: vec![handle],
                    initial_name: None,
                    created_ms: T0_MS - 3_600_000,
                }
            };
            chats.push(chat);
        }
        // Duplicate DM handles would merge chats; keep them apart.
        let mut seen = std::collections::HashSet::new();
        for (i, c) in chats.iter_mut().enumerate() {
            if !seen.insert(c.chat_id.clone()) {
                c.chat_id = format!("{}-{i}", c.chat_id);
                c.participants = vec![c.chat_id.clone()];
            }
        }
        let mut account = Account {
            spec: spec.clone(),
            chats,
            chat_records: Vec::new(),
            attachments: Vec::new(),
            prev_in_chat: Vec::new(),
            deleted: 0,
            foreign: 0,
            history: spec.messages + spec.big_chat,
            total: spec.messages + spec.big_chat + spec.later,
            history_chat_records: 0,
            history_attachments: 0,
        };
        account.index();
        account
    }

    /// Walks every message once: links each to the previous message of its chat, collects
    /// attachments and group renames (which become chat record versions).
    fn index(&mut self) {
        let total = self.total;
        let mut last: Vec<u32> = vec![NO_PREV; self.chats.len()];
        let mut prev = Vec::with_capacity(total as usize);
        let mut versions: Vec<Vec<(i64, Option<String>)>> = self.chats.iter().map(|c| vec![(c.created_ms, c.initial_name.clone())]).collect();
        let mut later_versions: Vec<(usize, i64, String, u64)> = Vec::new();
        let mut attachments = Vec::new();
        for g in 0..total {
            let chat = self.chat_of(g);
            prev.push(last[chat]);
            let (kind, _) = self.kind_of(g, chat, last[chat]);
            match kind {
                Kind::Rename if g >= self.history => later_versions.push((chat, self.ts_of(g), Self::rename_name(self.spec.seed, g), g)),
                Kind::Rename => versions[chat].push((self.ts_of(g), Some(Self::rename_name(self.spec.seed, g)))),
                Kind::Attachment | Kind::Sticker => attachments.push(g as u32),
                Kind::Deleted => self.deleted += 1,
                Kind::Foreign => self.foreign += 1,
                _ => {}
            }
            last[chat] = g as u32;
        }
        self.prev_in_chat = prev;
        self.history_attachments = attachments.partition_point(|&g| u64::from(g) < self.history);
        self.attachments = attachments;
        // Serve newest versions first so "last written wins" would pick a stale name.
        let mut records = Vec::new();
        for (c, chat_versions) in versions.iter().enumerate() {
            for (v, (ts, name)) in chat_versions.iter().enumerate().rev() {
                let r = rng(self.spec.seed, STREAM_CHAT, 1_000_000 + (c as u64) * 1000 + v as u64);
                records.push(self.chat_version(c, r, *ts, name.clone()));
            }
        }
        self.history_chat_records = records.len();
        for (c, ts, name, g) in later_versions {
            let r = rng(self.spec.seed, STREAM_NAMES, 3_000_000_000 + g);
            records.push(self.chat_version(c, r, ts, Some(name)));
        }
        self.chat_records = records;
    }

    /// One version of chat `c`'s record; `r` makes its record name.
    pub(crate) fn chat_version(&self, c: usize, mut r: ChaCha8Rng, modified_ms: i64, name: Option<String>) -> ChatRecord {
        let chat = &self.chats[c];
        ChatRecord {
            record_name: format!("C{}", hex_id(&mut r, 32)),
            chat_id: chat.chat_id.clone(),
            group_id: chat.group_id.clone(),
            style: chat.style,
            display_name: name,
            participants: chat.participants.clone(),
            service: Some("iMessage".into()),
            modified_ms,
        }
    }

    /// What the server shows before (`released == false`) and after the later messages arrive.
    pub fn visible(&self, released: bool) -> Visible {
        if released {
            Visible { messages: self.total, chat_records: self.chat_records.len(), attachments: self.attachments.len() }
        } else {
            Visible { messages: self.history, chat_records: self.history_chat_records, attachments: self.history_attachments }
        }
    }

    pub(crate) fn rename_name(seed: u64, g: u64) -> String {
        let mut r = rng(seed, STREAM_NAMES, 1_000_000_000 + g);
        format!("{} ({})", GROUP_NAMES[r.gen_range(0..GROUP_NAMES.len())], g)
    }

    /// The chat of message `g`: in the history the big chat takes exactly `big_chat` evenly spread
    /// indexes; later messages go to any chat, the first one to the first group (it renames it).
    pub fn chat_of(&self, g: u64) -> usize {
        if g >= self.history {
            if g == self.history {
                if let Some(group) = self.chats.iter().position(|c| c.style == STYLE_GROUP) {
                    return group;
                }
            }
            let mut r = rng(self.spec.seed, STREAM_MSG, g);
            return r.gen_range(0..self.chats.len().max(1));
        }
        let big = self.spec.big_chat as u128;
        let total = self.history.max(1) as u128;
        let g128 = g as u128;
        if big > 0 && ((g128 + 1) * big / total) > (g128 * big / total) {
            return 0;
        }
        let first_normal = usize::from(self.spec.big_chat > 0);
        let normal = self.chats.len() - first_normal;
        if normal == 0 {
            return 0;
        }
        let mut r = rng(self.spec.seed, STREAM_MSG, g);
        first_normal + r.gen_range(0..normal)
    }

    pub fn ts_of(&self, g: u64) -> i64 {
        let mut r = rng(self.spec.seed, STREAM_MSG, g);
        r.set_word_pos(((g as u128) << 10) + 8);
        T0_MS + g as i64 * GAP_MS + r.gen_range(0..GAP_MS - 1)
    }

    pub(crate) fn kind_of(&self, g: u64, chat: usize, prev: u32) -> (Kind, ChaCha8Rng) {
        let mut r = rng(self.spec.seed, STREAM_MSG, g);
        r.set_word_pos(((g as u128) << 10) + 16);
        let roll = r.gen_range(0..1000);
        let group = self.chats[chat].style == STYLE_GROUP;
        let kind = match roll {
            _ if g == self.history && group => Kind::Rename,
            0..=7 if group => Kind::Rename,
            0..=14 => Kind::Notice,
            15..=59 if prev != NO_PREV => Kind::Tapback,
            60..=64 if prev != NO_PREV => Kind::Sticker,
            65..=79 => Kind::Attachment,
            // The big chat keeps exactly `big_chat` live messages; later messages are not deleted.
            80..=89 if !(chat == 0 && self.spec.big_chat > 0) && g < self.history => Kind::Deleted,
            90..=91 if !(chat == 0 && self.spec.big_chat > 0) && g < self.history => Kind::Foreign,
            _ => Kind::Text,
        };
        (kind, r)
    }

    /// Generates message `g`.
    pub fn message(&self, g: u64) -> Generated {
        let chat_idx = self.chat_of(g);
        let chat = &self.chats[chat_idx];
        let prev = self.prev_in_chat.get(g as usize).copied().unwrap_or(NO_PREV);
        let (mut kind, mut r) = self.kind_of(g, chat_idx, prev);
        let guid = guid(&mut r);
        let record_name = format!("M{:08x}{}", (g as u32) ^ 0x5a5a_5a5a, hex_id(&mut r, 24));
        let from_me = r.gen_bool(0.4);
        let sender = if from_me { OWN_HANDLES[0].to_string() } else { chat.participants[r.gen_range(0..chat.participants.len())].clone() };
        let words: Vec<&str> = (0..r.gen_range(1..12)).map(|_| WORDS[r.gen_range(0..WORDS.len())]).collect();
        let text = format!("{} (#{g})", words.join(" "));
        let mut m = MessageRecord {
            record_name,
            guid,
            chat_id: chat.chat_id.clone(),
            sender,
            flags: if from_me { FLAG_FROM_ME } else { 0 },
            ts_ms: self.ts_of(g),
            text: Some(text),
            subject: None,
            associated_type: None,
            associated_guid: None,
            service: Some("iMessage".into()),
            content: Default::default(),
        };
        match kind {
            Kind::Rename => {
                m.sender.clear();
                m.flags = FLAG_SYSTEM;
                m.text = Some(format!("named the conversation “{}”", Self::rename_name(self.spec.seed, g)));
            }
            Kind::Notice => {
                m.sender.clear();
                m.flags = if r.gen_bool(0.5) { FLAG_SYSTEM } else { FLAG_SERVICE };
                m.text = None;
            }
            Kind::Tapback => match self.tapback(g) {
                Some(t) => {
                    if let Some(sender) = t.sender_of_removed {
                        m.sender = sender;
                        m.flags = if m.sender == OWN_HANDLES[0] { FLAG_FROM_ME } else { 0 };
                    }
                    m.associated_type = Some(t.kind);
                    m.associated_guid = Some(format!("p:{}/{}", t.part, self.message_guid(t.target)));
                    m.content.associated_emoji = t.emoji.map(str::to_string);
                    m.text = Some(match (t.kind, t.emoji) {
                        (_, Some(e)) => format!("Reacted {e} to a message"),
                        (3000.., _) => "Removed a reaction".into(),
                        _ => "Loved a message".into(),
                    });
                }
                // Nothing to react to nearby: an ordinary message.
                None => kind = Kind::Text,
            },
            Kind::Sticker => {
                m.text = Some("\u{FFFC}".into());
                if let Some((target, part)) = self.reaction_target(g, STREAM_STICKER) {
                    m.associated_type = Some(STICKER_TAPBACK);
                    m.associated_guid = Some(format!("p:{part}/{}", self.message_guid(target)));
                }
            }
            Kind::Attachment => m.text = Some("\u{FFFC}".into()),
            Kind::Text | Kind::Deleted | Kind::Foreign => {}
        }
        // The blobs Messages would have written, and what they decode to (an encoder error leaves
        // the message as plain text, which is then also what truth expects).
        let mut content_rng = rng(self.spec.seed, STREAM_CONTENT, g);
        let blobs = match kind {
            Kind::Text => {
                let reply = self.reply_target(g).map(|t| self.message_guid(t));
                crate::dress::text_message(&mut m, g, &mut content_rng).inspect(|_| m.content.reply_to = reply)
            }
            Kind::Attachment | Kind::Sticker => {
                let transfer = Self::transfer_guid(&m.guid);
                let caption = (kind == Kind::Attachment && self.captioned(g)).then(|| format!("look at this (#{g})"));
                crate::dress::attachment_message(&mut m, &transfer, caption.as_deref())
            }
            _ => Ok(Default::default()),
        }
        .unwrap_or_else(|e| {
            tracing::warn!(g, "cannot encode the content of message {g}: {e}");
            m.content = Default::default();
            Default::default()
        });
        Generated { record: m, blobs, kind }
    }

    pub(crate) fn message_guid(&self, g: u64) -> String {
        let chat_idx = self.chat_of(g);
        let prev = self.prev_in_chat.get(g as usize).copied().unwrap_or(NO_PREV);
        let (_, mut r) = self.kind_of(g, chat_idx, prev);
        guid(&mut r)
    }

    /// Index encoded in a message record name, if it is one of ours.
    pub fn message_index(&self, record_name: &str) -> Option<u64> {
        let hex = record_name.strip_prefix('M')?.get(..8)?;
        let g = (u32::from_str_radix(hex, 16).ok()? ^ 0x5a5a_5a5a) as u64;
        (g < self.total && self.message(g).record.record_name == record_name).then_some(g)
    }

    /// The display name a chat has now (its newest visible record's).
    pub fn current_name(&self, chat_id: &str, released: bool) -> Option<String> {
        self.chat_records[..self.visible(released).chat_records]
            .iter()
            .filter(|c| c.chat_id == chat_id)
            .max_by_key(|c| c.modified_ms)
            .and_then(|c| c.display_name.clone())
    }

    /// Number of live messages the server shows (not deleted, of the message record type).
    pub fn live_message_count(&self, released: bool) -> u64 {
        self.visible(released).messages - self.deleted - self.foreign
    }
}

impl Account {
    /// Calls `f` for every truth line of what the server shows (history, plus the later
    /// messages once `released`): chats first, then messages in index (= time) order, then
    /// attachments.
    pub fn truth(&self, released: bool, f: impl FnMut(TruthLine)) {
        self.truth_with(released, None, f)
    }

    /// [`Account::truth`] with the `--apple-blobs` chat and messages, if any (its chat after the
    /// others, its messages, older than the history, first).
    pub fn truth_with(&self, released: bool, fixtures: Option<&AppleFixtures>, mut f: impl FnMut(TruthLine)) {
        let visible = self.visible(released);
        for c in &self.chats {
            f(self.chat_line(c, released));
        }
        if let Some(fx) = fixtures {
            f(TruthLine::Chat { chat: fx.chat.chat_id.clone(), name: fx.chat.display_name.clone(), participants: fx.chat.participants.clone(), group: true });
            for m in &fx.messages {
                f(message_line(m.record.clone(), Some(m.file.clone()), None));
            }
        }
        for g in 0..visible.messages {
            let Generated { record: m, kind, .. } = self.message(g);
            if matches!(kind, Kind::Deleted | Kind::Foreign) {
                continue;
            }
            f(message_line(m, None, None));
        }
        for &g in &self.attachments[..visible.attachments] {
            let bytes = self.attachment_bytes(g as u64);
            f(attachment_line(self.attachment_of_size(g as u64, bytes.len()), &bytes));
        }
    }

    /// The truth line of chat `c`.
    pub(crate) fn chat_line(&self, c: &ChatInfo, released: bool) -> TruthLine {
        TruthLine::Chat {
            chat: c.chat_id.clone(),
            name: self.current_name(&c.chat_id, released),
            participants: c.participants.clone(),
            group: c.style == STYLE_GROUP,
        }
    }
}
