//! The bridge's local copy of the iMessage account: chats, messages, attachments and per-zone sync
//! state, with a SQLite backend (default, `sqlite:PATH`) and a PostgreSQL backend (`postgres://…`).
//!
//! The store is split by job, the way matrix-rust-sdk keeps its state, event-cache and media
//! stores apart, so a reader finds each table's rules in one module:
//!
//! | trait | module | tables |
//! |---|---|---|
//! | [`SyncStore`] | `zones` | `zones`, `failed_records`, `meta`; writes pages of records |
//! | [`RecordStore`] | `records` | `chat_records`, `messages`, `attachments` (reads) |
//! | [`FileStore`] | `files` | `attachment_files` |
//! | [`RoomStore`] | `rooms` | `portals`, `delivery_errors`, `owner_messages`, `refused_events`, `live_rooms` |
//! | [`LedgerStore`] | `ledger` | `deliveries` |
//! | [`RevisionStore`] | `revisions` | `revisions` |
//! | [`ProfileStore`] | `profiles` | `ghost_profiles`, `avatar_uploads` |
//!
//! [`Store`] is all of them, which both backends are. Each job is written once, as plain code over
//! the `db::Db` seam (run one statement on the read or the write side); a backend only says how to
//! run a statement and how to write a page. Why backends behind traits: the sync engine and Matrix
//! delivery must not care which database holds the data, and one conformance suite
//! (`tests/conformance.rs`, its cases grouped by job) runs against every backend so the two cannot
//! drift apart. The one write the sync engine does per page, [`SyncStore::commit_page`], is a
//! single transaction: records and the continuation token that follows them land together or not
//! at all, which is what makes a killed sync resumable without loss or duplicates.
//!
//! Module order (no module imports one above it): `error` → `db` → `values` → the job modules →
//! `migrations` → the backends → this root.

mod crash;
mod db;
mod error;
mod files;
mod ledger;
mod migrations;
mod postgres;
mod profiles;
mod records;
mod revisions;
mod rooms;
mod schema;
mod sqlite;
mod values;
mod zones;

use serde::Serialize;

pub use crash::{crash_point, CRASH_AT_ENV};
pub use error::{Result, StoreError};
pub use files::{AttachmentFile, FileOutcome, FileState, FileStore, FileSummary};
pub use ledger::{LedgerEntry, LedgerStore};
pub use postgres::PostgresStore;
pub use profiles::{GhostProfileRow, ProfileStore};
pub use records::{Chat, RecordStore};
pub use revisions::RevisionStore;
pub use rooms::{OwnerMessages, Portal, RoomDelivery, RoomStore};
pub use sqlite::SqliteStore;
pub use zones::{FailedRecord, PageCommit, PageStats, StopReason, SyncStore, ZoneState};

/// The bridge's persistent state: every job's trait. All methods are safe to call concurrently.
/// Call sites import the job traits whose methods they use (`use store::{RecordStore, Store}`).
pub trait Store: SyncStore + RecordStore + FileStore + RoomStore + LedgerStore + RevisionStore + ProfileStore {}

impl<T> Store for T where T: SyncStore + RecordStore + FileStore + RoomStore + LedgerStore + RevisionStore + ProfileStore {}

/// Open a store from a URI: `sqlite:PATH` (created if missing) or `postgres://…`. Runs migrations.
pub async fn open(uri: &str) -> Result<Box<dyn Store>> {
    if uri.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(uri).await?))
    } else if is_postgres(uri) {
        Ok(Box::new(PostgresStore::open(uri).await?))
    } else {
        Err(StoreError::UnsupportedUri(uri.to_string()))
    }
}

fn is_postgres(uri: &str) -> bool {
    uri.starts_with("postgres://") || uri.starts_with("postgresql://")
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
        Ok(SchemaState { applied: migrations::applied_sqlite(uri).await?, latest: migrations::latest(schema::SQLITE) })
    } else if is_postgres(uri) {
        Ok(SchemaState { applied: migrations::applied_postgres(uri).await?, latest: migrations::latest(schema::POSTGRES) })
    } else {
        Err(StoreError::UnsupportedUri(uri.to_string()))
    }
}
