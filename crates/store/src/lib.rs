//! The bridge's local copy of the iMessage account: chats, messages, attachments and per-zone sync
//! state, behind one async [`Store`] trait with a SQLite backend (default, `sqlite:PATH`) and a
//! PostgreSQL backend (`postgres://…`).
//!
//! Why a trait: the sync engine and (later) Matrix delivery must not care which database holds the
//! data, and one conformance suite (`tests/conformance.rs`) runs against every backend so the two
//! cannot drift apart. The one write the sync engine does per page, [`Store::commit_page`], is a
//! single transaction: records and the continuation token that follows them land together or not
//! at all, which is what makes a killed sync resumable without loss or duplicates.

use async_trait::async_trait;
use imessage::records::{AttachmentRecord, ChatRecord, MessageRecord, RecordChange};
use serde::{Deserialize, Serialize};

mod common;
mod crash;
mod files;
mod migrations;
mod postgres;
mod profiles;
mod revisions;
mod rooms;
mod sqlite;
mod zones;

pub use crash::{crash_point, CRASH_AT_ENV};
pub use files::{AttachmentFile, FileOutcome, FileState, FileSummary};
pub use postgres::PostgresStore;
pub use profiles::GhostProfileRow;
pub use rooms::{OwnerMessages, RoomDelivery};
pub use sqlite::SqliteStore;

/// Errors of the store crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("unsupported database URI {0:?}: use sqlite:PATH or postgres://USER@HOST/DB")]
    UnsupportedUri(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("stored value is invalid ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A database file that should exist does not (see [`schema_state`]).
    #[error("database file {0} does not exist")]
    NotFound(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a zone's sync loop stopped. Persisted as its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The server said there are no more pages (`status == 3`).
    ApiDone,
    /// The server returned the same continuation token without reporting completion.
    TokenUnchanged,
    /// Too many consecutive failures; the token is kept so the next run resumes.
    ErrorBudget,
    /// The server asked for a full reset (token expired); tokens were cleared.
    ResetNeeded,
    /// The zone does not exist on the server.
    ZoneNotFound,
    /// The page limit safety bound was reached.
    PageLimit,
    /// The run was cancelled (Ctrl-C).
    Interrupted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::ApiDone => "api_done",
            StopReason::TokenUnchanged => "token_unchanged",
            StopReason::ErrorBudget => "error_budget",
            StopReason::ResetNeeded => "reset_needed",
            StopReason::ZoneNotFound => "zone_not_found",
            StopReason::PageLimit => "page_limit",
            StopReason::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "api_done" => StopReason::ApiDone,
            "token_unchanged" => StopReason::TokenUnchanged,
            "error_budget" => StopReason::ErrorBudget,
            "reset_needed" => StopReason::ResetNeeded,
            "zone_not_found" => StopReason::ZoneNotFound,
            "page_limit" => StopReason::PageLimit,
            "interrupted" => StopReason::Interrupted,
            _ => return None,
        })
    }
}

/// Statistics of one fetched page, kept for the last page of each zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PageStats {
    /// Changes on the page (records and deletions).
    pub records: i64,
    /// Records of the page of a record type the bridge does not read: neither stored nor failed.
    #[serde(default)]
    pub skipped: i64,
    /// The `status` field of the response.
    pub status: i64,
    /// `status == 3`.
    pub done: bool,
    /// The response carried a continuation token.
    pub has_token: bool,
}

/// A record that could not be decrypted or parsed. `pending` ones are retried (re-fetched after a
/// key refresh); the rest are final and reported as undecryptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRecord {
    pub zone: String,
    pub record_name: String,
    /// Human-readable cause, e.g. `pcs key 1a2b3c4d missing`.
    pub reason: String,
    pub pending: bool,
}

/// Everything one fetched page changes, written in one transaction by [`Store::commit_page`].
#[derive(Debug, Clone, Default)]
pub struct PageCommit {
    pub zone: String,
    /// The continuation token returned with this page (the one to send next).
    pub token: Option<Vec<u8>>,
    pub stats: PageStats,
    /// Changes in server order. Upserts replace an existing row with the same `record_name`;
    /// deletions remove the record (and any failed-record entry for it).
    pub changes: Vec<RecordChange>,
    /// Records of this page that failed to decrypt/parse. Upserted by (zone, record_name).
    pub failed: Vec<FailedRecord>,
}

/// Per-zone sync state as shown by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ZoneState {
    pub zone: String,
    pub token: Option<Vec<u8>>,
    /// Pages committed since the token was last cleared.
    pub pages: i64,
    pub last_page: Option<PageStats>,
    pub stop_reason: Option<StopReason>,
    pub last_error: Option<String>,
    /// Records skipped (of a type the bridge does not read) since the token was last cleared:
    /// the sum of [`PageStats::skipped`] over those pages.
    #[serde(default)]
    pub skipped: i64,
    /// Count reported by the server at the start of the last sync: the first element of
    /// [`server_summary`](Self::server_summary), None if that list was empty or never fetched.
    pub server_count: Option<i64>,
    /// The server's whole `MessagesSummary` answer, a list of integers of which only the first
    /// (the count) is understood. None if it was never stored (databases written before schema
    /// version 5 may have a `server_count` without it).
    #[serde(default)]
    pub server_summary: Option<Vec<i64>>,
}

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

/// The Matrix room of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    pub chat_id: String,
    pub room_id: String,
    /// The name the room was last given (to detect renames).
    pub name: Option<String>,
}

/// A delivery ledger row: the message `guid` was (or is being) sent with `txn_id`; `event_id`
/// is set once the homeserver accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub guid: String,
    pub chat_id: String,
    pub txn_id: String,
    pub event_id: Option<String>,
}

/// Open a store from a URI: `sqlite:PATH` (created if missing) or `postgres://…`. Runs migrations.
pub async fn open(uri: &str) -> Result<Box<dyn Store>> {
    if uri.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(uri).await?))
    } else if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::open(uri).await?))
    } else {
        Err(StoreError::UnsupportedUri(uri.to_string()))
    }
}

/// How far a database's schema is migrated, as [`schema_state`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SchemaState {
    /// The highest applied migration; None if the database has no migration table at all.
    pub applied: Option<i64>,
    /// The highest migration this build knows.
    pub latest: i64,
}

impl SchemaState {
    /// Every migration this build knows is applied (and none it does not know).
    pub fn is_current(&self) -> bool {
        self.applied == Some(self.latest)
    }
}

/// Reads how far the database at `uri` is migrated, without creating, migrating or writing it:
/// safe beside a running bridge, and a missing SQLite file is [`StoreError::NotFound`].
pub async fn schema_state(uri: &str) -> Result<SchemaState> {
    if uri.starts_with("sqlite:") {
        Ok(SchemaState { applied: migrations::applied_sqlite(uri).await?, latest: migrations::latest(false) })
    } else if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
        Ok(SchemaState { applied: migrations::applied_postgres(uri).await?, latest: migrations::latest(true) })
    } else {
        Err(StoreError::UnsupportedUri(uri.to_string()))
    }
}

/// The bridge's persistent state. All methods are safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync {
    /// Writes a page: its changes, its failed records, the zone's new token, `pages += 1`, the
    /// page stats, `skipped += stats.skipped`, and clears `stop_reason`/`last_error` — all in one
    /// transaction.
    async fn commit_page(&self, page: &PageCommit) -> Result<()>;

    /// Stores records recovered by a re-fetch (upsert) and removes their failed-record entries;
    /// updates the remaining `failed` entries (e.g. marks them final). One transaction.
    async fn resolve_failed(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()>;

    /// Failed records of a zone (pending and final).
    async fn failed_records(&self, zone: &str) -> Result<Vec<FailedRecord>>;

    /// State of one zone, None if it was never synced.
    async fn zone_state(&self, zone: &str) -> Result<Option<ZoneState>>;
    /// State of every zone ever synced, ordered by zone name.
    async fn zone_states(&self) -> Result<Vec<ZoneState>>;
    /// Records why the zone's loop stopped, and the last error if any (creates the zone row).
    async fn set_stop(&self, zone: &str, reason: StopReason, last_error: Option<&str>) -> Result<()>;
    /// Records the server's `MessagesSummary` answer for the zone (creates the zone row):
    /// `server_count` becomes its first element (None if it is empty), `server_summary` all of it.
    async fn set_server_summary(&self, zone: &str, summary: &[i64]) -> Result<()>;
    /// Clears every zone's token, page counter, last page, skipped total and stop reason (full
    /// re-sync). Records, failed records and the server summary stay.
    async fn clear_tokens(&self) -> Result<()>;

    /// Number of stored records of the zone's record type
    /// (chat records, messages, or attachments — by zone name).
    async fn stored_count(&self, zone: &str) -> Result<i64>;

    /// The sync version of the last completed full pass, None if never completed.
    async fn sync_version(&self) -> Result<Option<i64>>;
    async fn set_sync_version(&self, version: i64) -> Result<()>;

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

    /// The portal of a chat, if its room was created.
    async fn portal(&self, chat_id: &str) -> Result<Option<Portal>>;
    /// Every portal, ordered by chat_id.
    async fn portals(&self) -> Result<Vec<Portal>>;
    /// Creates or updates a portal.
    async fn save_portal(&self, portal: &Portal) -> Result<()>;
    /// Non-system messages of a chat that have no ledger row, ordered by (ts_ms, guid).
    async fn undelivered(&self, chat_id: &str) -> Result<Vec<MessageRecord>>;
    /// Records that `guid` is about to be sent with `txn_id` (event id unknown).
    async fn begin_delivery(&self, guid: &str, chat_id: &str, txn_id: &str) -> Result<()>;
    /// Records the event id of a delivered message.
    async fn finish_delivery(&self, guid: &str, event_id: &str) -> Result<()>;
    /// Removes a ledger row (an in-flight send that never reached the room).
    async fn forget_delivery(&self, guid: &str) -> Result<()>;
    /// Ledger rows of a chat whose send may have been in flight (no event id).
    async fn in_flight(&self, chat_id: &str) -> Result<Vec<LedgerEntry>>;
    /// Event id a message was delivered as.
    async fn delivered_event(&self, guid: &str) -> Result<Option<String>>;
    /// Number of delivered messages.
    async fn delivered_count(&self) -> Result<i64>;
    /// Delivery per chat (every chat with a chat record), ordered by chat_id: its room, its
    /// messages, how many are delivered, in flight and pending, and the last delivery error.
    async fn room_deliveries(&self) -> Result<Vec<RoomDelivery>>;
    /// Records that the chat's room has taken in its whole history (the first time stays).
    async fn set_room_live(&self, chat_id: &str) -> Result<()>;
    /// Records the error of a delivery round for a chat (None clears it).
    async fn set_delivery_error(&self, chat_id: &str, error: Option<&str>) -> Result<()>;
    /// Counts one message the owner typed in the chat's portal (it cannot reach iMessage) and
    /// returns the chat's count with the time of its last notice about it.
    async fn count_owner_message(&self, chat_id: &str) -> Result<OwnerMessages>;
    /// Records that the chat's portal was told at `at_ms` that owner messages cannot reach iMessage.
    async fn set_owner_notice(&self, chat_id: &str, at_ms: i64) -> Result<()>;
    /// Records that the homeserver refused the event of ledger key `key` for good (`what` it
    /// was, `error` the answer); a key already recorded stays as it was. Counted per chat in
    /// [`Store::room_deliveries`].
    async fn record_refusal(&self, key: &str, chat_id: &str, what: &str, error: &str) -> Result<()>;

    /// Delivered messages of a chat whose record changed or was deleted since (see
    /// `revisions.rs`), ordered by guid: each guid with its current record, None if deleted.
    async fn revised(&self, chat_id: &str) -> Result<Vec<(String, Option<MessageRecord>)>>;
    /// The time of the chat's newest message that put an event into its room (what a message
    /// older than it would be delivered after: a late arrival).
    async fn last_delivered_ts(&self, chat_id: &str) -> Result<Option<i64>>;
    /// The room matches message `guid`'s record again.
    async fn finish_revision(&self, guid: &str) -> Result<()>;
    /// Every event message `guid` put into a room: its ledger keys (`guid`, `guid/…`) with
    /// their event ids, ordered by key.
    async fn delivered_keys(&self, guid: &str) -> Result<Vec<(String, String)>>;

    /// The profile last applied to `handle`'s ghost (see `profiles.rs`).
    async fn ghost_profile(&self, handle: &str) -> Result<Option<GhostProfileRow>>;
    /// Every ghost profile applied, ordered by handle.
    async fn ghost_profiles(&self) -> Result<Vec<GhostProfileRow>>;
    /// Records the profile applied to a ghost (replacing the one before).
    async fn save_ghost_profile(&self, profile: &GhostProfileRow) -> Result<()>;
    /// The `mxc://` URI of the avatar image with this SHA-256 (hex), if it was uploaded.
    async fn avatar_upload(&self, sha256: &str) -> Result<Option<String>>;
    /// Records an avatar upload; the first one recorded for an image stays.
    async fn save_avatar_upload(&self, sha256: &str, mxc: &str) -> Result<()>;
}
