//! `status`: what the store knows of each zone and of the attachment files, as the CLI shows it
//! (a table, or `--json` on stdout).

use cloudkit::records::ZONES;
use serde::Serialize;
use store::{PageStats, Store};

use crate::SyncError;

/// Per-zone status: what the server has, what is stored, and what is known to be missing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ZoneStatus {
    pub zone: String,
    /// The zone's count of its record type: the first element of the server's
    /// `MessagesSummary` list, which is what `complete` compares with `stored`.
    pub server_count: Option<i64>,
    /// The `MessagesSummary` list as the server sent it (elements after the first are kept, not
    /// interpreted).
    pub server_summary: Option<Vec<i64>>,
    pub stored: i64,
    /// Records of types the bridge does not read, skipped (as Apple's clients skip them).
    pub skipped: i64,
    pub undecryptable: i64,
    /// Names and reasons of the undecryptable records.
    pub undecryptable_records: Vec<FailedRecordInfo>,
    /// Stored count equals the server count.
    pub complete: bool,
    pub stop_reason: Option<String>,
    pub last_error: Option<String>,
    pub pages: i64,
    pub last_page: Option<PageStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedRecordInfo {
    pub record_name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    pub zones: Vec<ZoneStatus>,
    pub sync_version: Option<i64>,
    /// Messages stored with their text although a content blob of theirs did not decode.
    pub undecodable_blobs: Vec<UndecodableBlob>,
    /// Attachment files by state.
    pub files: store::FileSummary,
}

/// A content blob that did not decode, and the message that kept its text.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UndecodableBlob {
    pub guid: String,
    pub chat_id: String,
    /// `attributedBody`, `messageSummaryInfo` or `payloadData`.
    pub field: String,
    pub reason: String,
}

/// Reads the status of every Messages zone from the store.
pub async fn status(store: &dyn Store) -> Result<Status, SyncError> {
    let mut zones = Vec::new();
    for zone in ZONES {
        let state = store.zone_state(zone).await?.unwrap_or_default();
        let stored = store.stored_count(zone).await?;
        let failed = store.failed_records(zone).await?;
        zones.push(ZoneStatus {
            zone: zone.to_string(),
            server_count: state.server_count,
            server_summary: state.server_summary,
            stored,
            skipped: state.skipped,
            undecryptable: failed.len() as i64,
            undecryptable_records: failed.into_iter().map(|f| FailedRecordInfo { record_name: f.record_name, reason: f.reason }).collect(),
            complete: state.server_count == Some(stored),
            stop_reason: state.stop_reason.map(|r| r.as_str().to_string()),
            last_error: state.last_error,
            pages: state.pages,
            last_page: state.last_page,
        });
    }
    let undecodable_blobs = store
        .undecodable_messages()
        .await?
        .into_iter()
        .flat_map(|m| {
            let (guid, chat_id) = (m.guid, m.chat_id);
            m.content.undecodable.into_iter().map(move |b| UndecodableBlob { guid: guid.clone(), chat_id: chat_id.clone(), field: b.field, reason: b.reason })
        })
        .collect();
    Ok(Status { zones, sync_version: store.sync_version().await?, undecodable_blobs, files: store.file_summary().await? })
}
