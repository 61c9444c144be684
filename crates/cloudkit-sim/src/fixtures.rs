//! `--apple-blobs DIR`: real blobs written by Apple's Messages, served as they are, so that they
//! run through the bridge's whole pipeline (CloudKit record, PCS, sync, store) and not only
//! through a decoder's unit tests.
//!
//! Every file under `DIR/attributed-body/`, `DIR/summary-info/` and `DIR/payload/` becomes one
//! message of a group chat named "Apple fixtures", carrying the file's bytes as that `msgProto`
//! field (`attributedBody`, `messageSummaryInfo`, `payloadData`). The simulator does not decode
//! them: `truth` names each message's file, and a test compares what the bridge stored with what
//! the fixtures' README says each file holds.

use std::path::Path;

use cloudkit::records::{ChatRecord, MessageRecord, STYLE_GROUP};
use sha2::{Digest, Sha256};

use crate::encode::ContentBlobs;

pub const FIXTURE_CHAT_NAME: &str = "Apple fixtures";
/// The balloon of a link preview's `payloadData`.
const URL_BALLOON: &str = "com.apple.messages.URLBalloonProvider";
/// Larger files are not message blobs; refuse rather than serve them.
const MAX_BLOB_BYTES: u64 = 4 << 20;
/// When the fixture messages were "sent": 2014-12-31, before the generated history.
const FIXTURE_T0_MS: i64 = 1_420_000_000_000;

/// One served fixture: the file it came from, the message around it, the blob.
#[derive(Debug, Clone)]
pub struct FixtureMessage {
    /// The path below DIR, e.g. `summary-info/Edited.plist`.
    pub file: String,
    /// The message as served (its `content` stays empty: what the blob decodes to is the
    /// bridge's business, checked against the fixtures' README).
    pub record: MessageRecord,
    pub blobs: ContentBlobs,
}

#[derive(Debug, Clone)]
pub struct AppleFixtures {
    pub chat: ChatRecord,
    pub messages: Vec<FixtureMessage>,
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

impl AppleFixtures {
    /// Reads the three folders of `dir` (missing folders are empty; files in name order).
    pub fn load(dir: &Path, friend: &str) -> std::io::Result<Self> {
        let chat_id = "chat-apple-fixtures".to_string();
        let mut messages = Vec::new();
        for folder in ["attributed-body", "summary-info", "payload"] {
            let Ok(entries) = std::fs::read_dir(dir.join(folder)) else { continue };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_file())).collect();
            files.sort_by_key(|e| e.file_name());
            for entry in files {
                let size = entry.metadata()?.len();
                if size > MAX_BLOB_BYTES {
                    return Err(std::io::Error::other(format!("{}: {size} bytes is not a message blob", entry.path().display())));
                }
                let bytes = std::fs::read(entry.path())?;
                let file = format!("{folder}/{}", entry.file_name().to_string_lossy());
                let id = Sha256::digest(file.as_bytes());
                let guid = {
                    let h = hex_upper(&id[..16]);
                    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
                };
                let mut blobs = ContentBlobs::default();
                match folder {
                    "attributed-body" => blobs.attributed_body = Some(bytes),
                    "summary-info" => blobs.message_summary_info = Some(bytes),
                    _ => {
                        blobs.payload_data = Some(bytes);
                        blobs.balloon_bundle_id = Some(URL_BALLOON.into());
                    }
                }
                let n = messages.len() as i64;
                messages.push(FixtureMessage {
                    record: MessageRecord {
                        record_name: format!("F{}", hex_upper(&id[16..28])),
                        guid,
                        chat_id: chat_id.clone(),
                        sender: friend.to_string(),
                        flags: 0,
                        ts_ms: FIXTURE_T0_MS + n * 60_000,
                        text: None,
                        subject: None,
                        associated_type: None,
                        associated_guid: None,
                        service: Some("iMessage".into()),
                        content: Default::default(),
                    },
                    file,
                    blobs,
                });
            }
        }
        let chat = ChatRecord {
            record_name: "CAPPLEFIXTURES".into(),
            chat_id,
            group_id: Some("A99LE000-F1X7-0000-0000-000000000001".into()),
            style: STYLE_GROUP,
            display_name: Some(FIXTURE_CHAT_NAME.into()),
            participants: vec![friend.to_string()],
            service: Some("iMessage".into()),
            modified_ms: FIXTURE_T0_MS,
        };
        Ok(AppleFixtures { chat, messages })
    }

    pub fn position_of(&self, record_name: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.record.record_name == record_name)
    }
}
