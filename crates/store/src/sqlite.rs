//! SQLite backend: the default, a single file next to the bridge.
//!
//! Why two pools: SQLite allows one writer at a time, so every write goes through a pool of
//! exactly one connection (writes queue in-process instead of spinning on `SQLITE_BUSY`, and
//! that connection's prepared-statement cache stays warm), while reads use a separate read-only
//! pool that WAL lets run beside the writer. Write transactions start with `BEGIN IMMEDIATE`
//! so a second process waits on `busy_timeout` rather than failing on a lock upgrade.
//!
//! Speed: a page is ~200 records and the sync must sustain tens of thousands of records per
//! second, so upserts are multi-row `INSERT … VALUES (…),(…) ON CONFLICT` statements in chunks
//! of power-of-two sizes (at most 8 distinct statements per table, all kept prepared), and lists
//! of names are passed as one JSON parameter to `json_each`. `synchronous=NORMAL` in WAL mode
//! keeps every commit atomic and durable against a crashed process (a power cut may lose the
//! last commits, never consistency). As the database grows, a commit's cost is dominated by the
//! random index leaves it dirties (guid, chat/time), each written whole to the WAL; see
//! `WAL_CHECKPOINT_PAGES`.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use cloudkit::records::{AttachmentRecord, ChatRecord, MessageRecord, RecordChange};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::common::{self, json_strings, sql, Plan};
use crate::{migrations, Chat, FailedRecord, PageCommit, Result, ZoneState};

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
const READ_CONNECTIONS: u32 = 4;
/// Negative `cache_size` is KiB: 32 MiB for the one writer connection.
const WRITER_CACHE_KIB: &str = "-32768";
/// Checkpoint every ~40 MiB of WAL instead of SQLite's 4 MiB. Each message dirties a few random
/// index leaves (guid, chat/time), so a page commit appends hundreds of pages to the WAL; with
/// the default, the writer stopped for a checkpoint (and its fsyncs) every two or three commits.
/// Measured on 300k–500k messages: about twice the commit throughput.
const WAL_CHECKPOINT_PAGES: &str = "10000";
/// Truncate the WAL back to at most 64 MiB after a checkpoint, so the file does not stay huge.
const WAL_SIZE_LIMIT_BYTES: &str = "67108864";

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// A SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) `sqlite:PATH` and applies pending migrations.
    /// `sqlite::memory:` works too (one connection, for tests).
    pub async fn open(uri: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(uri)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // Statement journals of the multi-row upserts exceed SQLite's 64 KiB spill threshold;
            // in memory they cost nothing, as temp files they were half of all write syscalls.
            .pragma("temp_store", "memory");
        let in_memory = uri.contains(":memory:") || uri.contains("mode=memory");
        if !in_memory {
            // `create_if_missing` creates the file, not its directory (e.g. a fresh data dir).
            if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await.map_err(sqlx::Error::Io)?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                options
                    .clone()
                    // Index pages touched by every page commit stay cached as the database grows.
                    .pragma("cache_size", WRITER_CACHE_KIB)
                    .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES),
            )
            .await?;
        migrations::run_sqlite(&writer).await?;
        let reader = if in_memory {
            // A private in-memory database exists only on its one connection.
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(READ_CONNECTIONS).connect_with(options.read_only(true)).await?
        };
        Ok(SqliteStore { writer, reader })
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// A multi-row upsert statement: `head` + `(?,…),(?,…)` + `tail`, cached per chunk size.
struct Upsert {
    head: &'static str,
    cols: usize,
    tail: &'static str,
    cache: OnceLock<Vec<String>>,
}

/// Chunk sizes, largest first: 128 rows × ≤11 columns stays far below SQLite's 32766 parameters.
const CHUNKS: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

impl Upsert {
    const fn new(head: &'static str, cols: usize, tail: &'static str) -> Self {
        Upsert { head, cols, tail, cache: OnceLock::new() }
    }

    fn sql(&self, chunk: usize) -> &str {
        let all = self.cache.get_or_init(|| {
            CHUNKS
                .iter()
                .map(|&rows| {
                    let row = format!("({})", vec!["?"; self.cols].join(","));
                    format!("{} VALUES {} {}", self.head, vec![row; rows].join(","), self.tail)
                })
                .collect()
        });
        let i = CHUNKS.iter().position(|&c| c == chunk).unwrap_or(CHUNKS.len() - 1);
        &all[i]
    }
}

static CHATS: Upsert = Upsert::new(
    "INSERT INTO chat_records (record_name, chat_id, group_id, style, display_name, participants, service, modified_ms)",
    8,
    "ON CONFLICT (record_name) DO UPDATE SET chat_id = excluded.chat_id, group_id = excluded.group_id, \
     style = excluded.style, display_name = excluded.display_name, participants = excluded.participants, \
     service = excluded.service, modified_ms = excluded.modified_ms",
);
static MESSAGES: Upsert = Upsert::new(
    "INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms, text, subject, associated_type, \
     associated_guid, service)",
    11,
    "ON CONFLICT (record_name) DO UPDATE SET guid = excluded.guid, chat_id = excluded.chat_id, \
     sender = excluded.sender, flags = excluded.flags, ts_ms = excluded.ts_ms, text = excluded.text, \
     subject = excluded.subject, associated_type = excluded.associated_type, \
     associated_guid = excluded.associated_guid, service = excluded.service",
);
static ATTACHMENTS: Upsert = Upsert::new(
    "INSERT INTO attachments (record_name, guid, mime_type, filename, total_bytes, asset_size)",
    6,
    "ON CONFLICT (record_name) DO UPDATE SET guid = excluded.guid, mime_type = excluded.mime_type, \
     filename = excluded.filename, total_bytes = excluded.total_bytes, asset_size = excluded.asset_size",
);
static FAILED: Upsert = Upsert::new(
    "INSERT INTO failed_records (zone, record_name, reason, pending)",
    4,
    "ON CONFLICT (zone, record_name) DO UPDATE SET reason = excluded.reason, pending = excluded.pending",
);

/// Writes `rows` with as few statements as the chunk sizes allow.
async fn upsert_rows<'q, T>(
    conn: &mut SqliteConnection,
    stmt: &'static Upsert,
    rows: &[&'q T],
    bind: fn(Query<'q>, &'q T) -> Result<Query<'q>>,
) -> Result<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let n = CHUNKS.iter().copied().find(|&c| c <= rest.len()).unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        let mut q = sqlx::query(stmt.sql(n));
        for row in chunk {
            q = bind(q, row)?;
        }
        q.execute(&mut *conn).await?;
        rest = tail;
    }
    Ok(())
}

fn bind_chat<'q>(q: Query<'q>, c: &'q ChatRecord) -> Result<Query<'q>> {
    Ok(q.bind(c.record_name.as_str())
        .bind(c.chat_id.as_str())
        .bind(c.group_id.as_deref())
        .bind(c.style)
        .bind(c.display_name.as_deref())
        .bind(json_strings(&c.participants))
        .bind(c.service.as_deref())
        .bind(c.modified_ms))
}

fn bind_message<'q>(q: Query<'q>, m: &'q MessageRecord) -> Result<Query<'q>> {
    Ok(q.bind(m.record_name.as_str())
        .bind(m.guid.as_str())
        .bind(m.chat_id.as_str())
        .bind(m.sender.as_str())
        .bind(common::flags_to_db(m.flags))
        .bind(m.ts_ms)
        .bind(m.text.as_deref())
        .bind(m.subject.as_deref())
        .bind(m.associated_type.map(i64::from))
        .bind(m.associated_guid.as_deref())
        .bind(m.service.as_deref()))
}

fn bind_attachment<'q>(q: Query<'q>, a: &'q AttachmentRecord) -> Result<Query<'q>> {
    Ok(q.bind(a.record_name.as_str())
        .bind(a.guid.as_str())
        .bind(a.mime_type.as_deref())
        .bind(a.filename.as_deref())
        .bind(a.total_bytes)
        .bind(common::asset_size_to_db(a.asset_size)?))
}

fn bind_failed<'q>(q: Query<'q>, f: &'q FailedRecord) -> Result<Query<'q>> {
    Ok(q.bind(f.zone.as_str()).bind(f.record_name.as_str()).bind(f.reason.as_str()).bind(f.pending))
}

/// Applies a change plan: deletions, then upserts, then drops the zone's now-obsolete
/// failed-record entries for every touched name.
async fn apply(conn: &mut SqliteConnection, zone: &str, plan: &Plan<'_>) -> Result<()> {
    if !plan.deleted.is_empty() {
        let names = json_strings(&plan.deleted);
        for table in ["chat_records", "messages", "attachments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE record_name IN (SELECT value FROM json_each($1))"))
                .bind(names.as_str())
                .execute(&mut *conn)
                .await?;
        }
    }
    upsert_rows(conn, &CHATS, &plan.chats, bind_chat).await?;
    upsert_rows(conn, &MESSAGES, &plan.messages, bind_message).await?;
    upsert_rows(conn, &ATTACHMENTS, &plan.attachments, bind_attachment).await?;
    if !plan.touched.is_empty() {
        sqlx::query("DELETE FROM failed_records WHERE zone = $1 AND record_name IN (SELECT value FROM json_each($2))")
            .bind(zone)
            .bind(json_strings(&plan.touched))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

crate::common::impl_store!(SqliteStore, read: reader, write: writer, now: NOW, {
    async fn commit_page(&self, page: &PageCommit) -> Result<()> {
        let plan = Plan::new(&page.changes);
        let failed = common::dedup_failed(&page.failed);
        let mut tx = self.write_tx().await?;
        apply(&mut tx, &page.zone, &plan).await?;
        upsert_rows(&mut tx, &FAILED, &failed, bind_failed).await?;
        sqlx::query(&format!(
            "INSERT INTO zones (zone, token, pages, last_page_records, last_page_status, last_page_done, \
               last_page_has_token, stop_reason, last_error, updated_at) \
             VALUES ($1, $2, 1, $3, $4, $5, $6, NULL, NULL, {NOW}) \
             ON CONFLICT (zone) DO UPDATE SET token = excluded.token, pages = zones.pages + 1, \
               last_page_records = excluded.last_page_records, last_page_status = excluded.last_page_status, \
               last_page_done = excluded.last_page_done, last_page_has_token = excluded.last_page_has_token, \
               stop_reason = NULL, last_error = NULL, updated_at = excluded.updated_at"
        ))
        .bind(page.zone.as_str())
        .bind(page.token.as_deref())
        .bind(page.stats.records)
        .bind(page.stats.status)
        .bind(page.stats.done)
        .bind(page.stats.has_token)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn resolve_failed(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()> {
        let plan = Plan::new(recovered);
        let failed = common::dedup_failed(still_failed);
        let mut tx = self.write_tx().await?;
        apply(&mut tx, zone, &plan).await?;
        upsert_rows(&mut tx, &FAILED, &failed, bind_failed).await?;
        tx.commit().await?;
        Ok(())
    }

});
