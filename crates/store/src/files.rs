//! What became of each attachment's file (the `attachment_files` table), shared by both backends.
//!
//! Why a table of its own: records and files arrive separately. A sync stores the `attachment`
//! record with its page; the file is fetched afterwards, may be large, may fail and be retried,
//! may be refused by the server or be over the operator's size cap. Keeping that outcome apart
//! from the record means a re-synced record never loses a file already fetched, and a failed
//! download never holds back the records. The bytes themselves are not here: they live beside
//! the database, named by their SHA-256, which this table records.

use async_trait::async_trait;
use imessage::records::AttachmentRecord;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db, Param, RowExt};
use crate::error::{Result, StoreError};
use crate::values;

/// The state of an attachment's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Fetched, decrypted, checked and stored under its SHA-256.
    Stored,
    /// The last attempt failed (retried while attempts are below the caller's limit).
    Failed,
    /// Larger than the configured cap: not fetched.
    TooLarge,
    /// The server refused the download (not retried).
    Refused,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Stored => "stored",
            FileState::Failed => "failed",
            FileState::TooLarge => "too_large",
            FileState::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stored" => FileState::Stored,
            "failed" => FileState::Failed,
            "too_large" => FileState::TooLarge,
            "refused" => FileState::Refused,
            _ => return None,
        })
    }
}

/// One attachment's file row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentFile {
    /// The `attachment` record's name.
    pub record_name: String,
    pub state: FileState,
    /// Lowercase hex SHA-256 of the stored bytes (for [`FileState::Stored`]).
    pub sha256: Option<String>,
    /// Stored length, or the asset's size for [`FileState::TooLarge`].
    pub bytes: Option<i64>,
    /// Fetch attempts so far.
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The outcome of one fetch attempt, as [`FileStore::record_file`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Stored { sha256: String, bytes: i64 },
    Failed { error: String },
    TooLarge { bytes: i64 },
    Refused { error: String },
}

impl FileOutcome {
    fn state(&self) -> FileState {
        match self {
            FileOutcome::Stored { .. } => FileState::Stored,
            FileOutcome::Failed { .. } => FileState::Failed,
            FileOutcome::TooLarge { .. } => FileState::TooLarge,
            FileOutcome::Refused { .. } => FileState::Refused,
        }
    }
}

/// Counts of attachment files by state, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileSummary {
    /// Attachments that have an asset.
    pub with_asset: i64,
    pub stored: i64,
    pub stored_bytes: i64,
    pub failed: i64,
    pub too_large: i64,
    pub refused: i64,
}

impl FileSummary {
    /// Attachments with an asset and no final outcome yet (never tried, or failed).
    pub fn pending(&self) -> i64 {
        self.with_asset - self.stored - self.too_large - self.refused
    }
}

/// The attachment files' job: which files are still to fetch, and what became of each.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Attachments with an asset whose file is still to fetch (never tried, or failed fewer than
    /// `max_attempts` times), ordered by record_name, those after `after`, at most `limit`.
    async fn files_to_fetch(&self, after: &str, max_attempts: i64, limit: i64) -> Result<Vec<AttachmentRecord>>;
    /// Records the outcome of one fetch attempt of an attachment's file (`attempts += 1`).
    async fn record_file(&self, record_name: &str, outcome: &FileOutcome) -> Result<()>;
    /// Every attachment file row, ordered by record_name.
    async fn attachment_files(&self) -> Result<Vec<AttachmentFile>>;
    /// Attachment files by state.
    async fn file_summary(&self) -> Result<FileSummary>;
    /// The attachment a message part names by its transfer GUID (`cm.aguid`), with its file row.
    async fn attachment_by_transfer_guid(&self, guid: &str) -> Result<Option<(AttachmentRecord, Option<AttachmentFile>)>>;
}

#[async_trait]
impl<D: Db> FileStore for D {
    async fn files_to_fetch(&self, after: &str, max_attempts: i64, limit: i64) -> Result<Vec<AttachmentRecord>> {
        let params = [Param::Text(after), Param::Int(max_attempts), Param::Int(limit)];
        self.read_rows(TO_FETCH, &params).await?.iter().map(values::attachment).collect()
    }

    async fn record_file(&self, record_name: &str, outcome: &FileOutcome) -> Result<()> {
        let (state, sha256, bytes, error) = outcome_columns(outcome);
        let params = [Param::Text(record_name), Param::Text(state), Param::OptText(sha256), Param::OptInt(bytes), Param::OptText(error), Param::Int(now_ms())];
        self.write(RECORD, &params).await
    }

    async fn attachment_files(&self) -> Result<Vec<AttachmentFile>> {
        self.read_rows(ALL, &[]).await?.iter().map(file).collect()
    }

    async fn file_summary(&self) -> Result<FileSummary> {
        match self.read_row(SUMMARY, &[]).await? {
            Some(row) => summary(&row),
            None => Ok(FileSummary::default()),
        }
    }

    async fn attachment_by_transfer_guid(&self, guid: &str) -> Result<Option<(AttachmentRecord, Option<AttachmentFile>)>> {
        let row = self.read_row(BY_TRANSFER_GUID, &[Param::Text(guid)]).await?;
        row.map(|row| Ok((values::attachment(&row)?, joined_file(&row)?))).transpose()
    }
}

/// Attachments with an asset whose file is still to fetch, after `$1`, at most `$3`: no row yet,
/// or a failed row with fewer than `$2` attempts.
const TO_FETCH: &str = "SELECT a.record_name, a.guid, a.mime_type, a.filename, a.total_bytes, a.asset_size, a.details \
     FROM attachments a LEFT JOIN attachment_files f ON f.record_name = a.record_name \
     WHERE a.asset_size IS NOT NULL AND a.record_name > $1 \
       AND (f.record_name IS NULL OR (f.state = 'failed' AND f.attempts < $2)) \
     ORDER BY a.record_name LIMIT $3";

/// Binds `$1` record_name, `$2` state, `$3` sha256, `$4` bytes, `$5` last_error, `$6` updated_ms.
const RECORD: &str = "INSERT INTO attachment_files (record_name, state, sha256, bytes, attempts, last_error, updated_ms) \
     VALUES ($1, $2, $3, $4, 1, $5, $6) \
     ON CONFLICT (record_name) DO UPDATE SET state = excluded.state, sha256 = excluded.sha256, \
       bytes = excluded.bytes, attempts = attachment_files.attempts + 1, last_error = excluded.last_error, \
       updated_ms = excluded.updated_ms";

/// The attachment record with transfer GUID `$1` and its file row, if any.
const BY_TRANSFER_GUID: &str = "SELECT a.record_name, a.guid, a.mime_type, a.filename, a.total_bytes, a.asset_size, a.details, \
       f.state, f.sha256, f.bytes, f.attempts, f.last_error \
     FROM attachments a LEFT JOIN attachment_files f ON f.record_name = a.record_name WHERE a.guid = $1 \
     ORDER BY a.record_name LIMIT 1";

const ALL: &str = "SELECT record_name, state, sha256, bytes, attempts, last_error FROM attachment_files ORDER BY record_name";

const SUMMARY: &str = "SELECT \
       (SELECT COUNT(*) FROM attachments WHERE asset_size IS NOT NULL) AS with_asset, \
       COUNT(CASE WHEN f.state = 'stored' THEN 1 END) AS stored, \
       CAST(COALESCE(SUM(CASE WHEN f.state = 'stored' THEN f.bytes END), 0) AS BIGINT) AS stored_bytes, \
       COUNT(CASE WHEN f.state = 'failed' THEN 1 END) AS failed, \
       COUNT(CASE WHEN f.state = 'too_large' THEN 1 END) AS too_large, \
       COUNT(CASE WHEN f.state = 'refused' THEN 1 END) AS refused \
     FROM attachment_files f JOIN attachments a ON a.record_name = f.record_name";

/// The values [`RECORD`] binds after the record name: state, sha256, bytes, last_error.
fn outcome_columns(outcome: &FileOutcome) -> (&'static str, Option<&str>, Option<i64>, Option<&str>) {
    let state = outcome.state().as_str();
    match outcome {
        FileOutcome::Stored { sha256, bytes } => (state, Some(sha256.as_str()), Some(*bytes), None),
        FileOutcome::Failed { error } | FileOutcome::Refused { error } => (state, None, None, Some(error.as_str())),
        FileOutcome::TooLarge { bytes } => (state, None, Some(*bytes), None),
    }
}

fn file(row: &impl RowExt) -> Result<AttachmentFile> {
    let raw = row.text("state")?;
    let state = FileState::parse(&raw).ok_or_else(|| StoreError::Corrupt { what: "attachment_files.state", detail: format!("unknown state {raw:?}") })?;
    Ok(AttachmentFile {
        record_name: row.text("record_name")?,
        state,
        sha256: row.opt_text("sha256")?,
        bytes: row.opt_int("bytes")?,
        attempts: row.int("attempts")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// A [`BY_TRANSFER_GUID`] row's file part (None when the attachment has no file row yet).
fn joined_file(row: &impl RowExt) -> Result<Option<AttachmentFile>> {
    if row.opt_text("state")?.is_none() {
        return Ok(None);
    }
    file(row).map(Some)
}

fn summary(row: &impl RowExt) -> Result<FileSummary> {
    Ok(FileSummary {
        with_asset: row.int("with_asset")?,
        stored: row.int("stored")?,
        stored_bytes: row.int("stored_bytes")?,
        failed: row.int("failed")?,
        too_large: row.int("too_large")?,
        refused: row.int("refused")?,
    })
}
