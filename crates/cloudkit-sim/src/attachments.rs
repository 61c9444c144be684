//! The attachments of the simulated account: which file each attachment message carries, its
//! `cm` metadata as Messages writes it, and the file's bytes.
//!
//! Each attachment is a pure function of `(seed, g)` like the messages: its kind (a photo, a
//! screenshot, a HEIC, a voice message, a video, a PDF) and size are drawn from its own stream,
//! and its bytes are a real file of that kind ([`crate::media`]) made unique by a salt. Most are
//! small; a few are several MMCS chunks long, so downloads of more than one chunk are exercised.

use cloudkit::records::{AttachmentDetails, AttachmentRecord};
use rand::Rng;

use crate::account::{hex_id, rng, Account, STREAM_NAMES};
use crate::media::{self, MediaKind};

/// The stream attachments draw their kind and size from.
const STREAM_ATTACHMENT: u64 = 6;
/// `cm.st` of a finished transfer.
const TRANSFER_FINISHED: i64 = 5;
const APPLE_EPOCH_UNIX_MS: i64 = 978_307_200_000;

/// What attachment `g` carries: its kind, the salt that makes its bytes unique, and the length
/// its file is padded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    pub kind: MediaKind,
    pub salt: u64,
    pub min_len: usize,
}

pub use crate::truth::sha256_hex;

impl Account {
    /// The transfer GUID of the attachment of the message with `guid` (as its body names it).
    pub fn transfer_guid(message_guid: &str) -> String {
        format!("at_0_{message_guid}")
    }

    /// What file attachment message `g` carries.
    pub fn attachment_file(&self, g: u64) -> FileSpec {
        let mut r = rng(self.spec.seed, STREAM_ATTACHMENT, g);
        if self.is_sticker(g) {
            // Stickers are HEICs as Messages stores them, at their own size.
            return FileSpec { kind: MediaKind::Heic, salt: r.gen(), min_len: 0 };
        }
        let kind = match r.gen_range(0..100) {
            0..=44 => MediaKind::Jpeg,
            45..=64 => MediaKind::Heic,
            65..=74 => MediaKind::Png,
            75..=84 => MediaKind::Caf,
            85..=94 => MediaKind::Mov,
            _ => MediaKind::Pdf,
        };
        let min_len = match r.gen_range(0..1000) {
            // Several chunks of the simulator's MMCS chunk size.
            0..=29 => r.gen_range(1_200_000..3_200_000),
            30..=179 => r.gen_range(16_000..300_000),
            _ => 0,
        };
        FileSpec { kind, salt: r.gen(), min_len }
    }

    /// Whether message `g` is a sticker (its attachment has `cm.is`).
    pub fn is_sticker(&self, g: u64) -> bool {
        let chat = self.chat_of(g);
        let prev = self.prev_in_chat.get(g as usize).copied().unwrap_or(crate::account::NO_PREV);
        self.kind_of(g, chat, prev).0 == crate::account::Kind::Sticker
    }

    /// The bytes of attachment message `g`'s file.
    pub fn attachment_bytes(&self, g: u64) -> Vec<u8> {
        let spec = self.attachment_file(g);
        media::file_bytes(spec.kind, spec.salt, spec.min_len)
    }

    /// The record name of attachment message `g`'s record.
    fn attachment_record_name(&self, g: u64) -> String {
        let mut r = rng(self.spec.seed, STREAM_NAMES, 2_000_000_000 + g);
        format!("A{:08x}{}", (g as u32) ^ 0x3c3c_3c3c, hex_id(&mut r, 24))
    }

    /// The attachment record of attachment message `g` (its `cm` as Messages fills it; the
    /// asset's signature is the server's business and is left out here).
    pub fn attachment(&self, g: u64) -> AttachmentRecord {
        self.attachment_of_size(g, self.attachment_bytes(g).len())
    }

    /// [`Account::attachment`] for a caller that already holds the file's bytes (`size` of them).
    pub fn attachment_of_size(&self, g: u64, size: usize) -> AttachmentRecord {
        let m = self.message(g).record;
        let spec = self.attachment_file(g);
        let size = size as i64;
        let guid = Self::transfer_guid(&m.guid);
        let transfer_name = spec.kind.filename(g);
        let apple_secs = (m.ts_ms - APPLE_EPOCH_UNIX_MS).div_euclid(1000);
        AttachmentRecord {
            record_name: self.attachment_record_name(g),
            filename: Some(format!("~/Library/Messages/Attachments/{:02x}/{:02x}/{guid}/{transfer_name}", g % 256, (g / 256) % 16)),
            guid,
            mime_type: Some(spec.kind.mime_type().into()),
            total_bytes: size,
            asset_size: Some(size as u64),
            details: AttachmentDetails {
                uti: Some(spec.kind.uti().into()),
                transfer_name: Some(transfer_name),
                is_sticker: self.is_sticker(g),
                hide_attachment: false,
                is_outgoing: m.from_me(),
                transfer_state: TRANSFER_FINISHED,
                version: 1,
                created_date: apple_secs,
                start_date: apple_secs,
                asset_signature: None,
                source_path: None,
            },
        }
    }

    /// The attachment message whose record is `record_name`, if it is one.
    pub fn attachment_index(&self, record_name: &str) -> Option<u64> {
        let hex = record_name.strip_prefix('A')?.get(..8)?;
        let g = (u32::from_str_radix(hex, 16).ok()? ^ 0x3c3c_3c3c) as u64;
        (g < self.total && self.attachment_record_name(g) == record_name).then_some(g)
    }
}
