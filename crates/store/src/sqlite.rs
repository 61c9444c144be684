//! SQLite backend: the default, a single file next to the bridge.
//!
//! Why two pools: SQLite allows one writer at a time, so every write goes through a pool of
//! exactly one connection (writes queue in-process instead of spinning on `SQLITE_BUSY`, and
//! that connection's prepared-statement cache stays warm), while reads use a separate read-only
//! pool that WAL lets run beside the writer. Write transactions start with `BEGIN IMMEDIATE`
//! so a second process waits on `busy_timeout` rather than failing on a lock upgrade.
//!
//! Speed: a page is ~200 records and the sync must sustain tens of thousands of records per
//! second, so writes are multi-row `INSERT … VALUES (…),(…)` statements in chunks of power-of-two
//! sizes (at most 8 distinct statements per table, all kept prepared), and lists of names are
//! passed as one JSON parameter to `json_each`. `synchronous=NORMAL` in WAL mode keeps every
//! commit atomic and durable against a crashed process (a power cut may lose the last commits,
//! never consistency).
//!
//! Messages go through an ingest log. CloudKit record names are random, so upserting a page
//! straight into `messages` dirtied one random leaf of every index per message, and each dirty
//! leaf is written whole to the WAL: at a million messages a page commit wrote megabytes and the
//! sync slowed to a quarter of the fetch rate. Instead a page *appends* its messages (and message
//! deletions) to `message_log` — a few sequential pages per commit — in the same transaction as
//! its token, and the log is folded into `messages` once per sync pass (when a zone's last page
//! commits) and before any read of messages: deletions first, then the last logged version of
//! each record in record-name order, which turns random B-tree inserts into one sorted merge. The
//! fold that more than doubles the table (the initial sync) drops the chat/time index and rebuilds
//! it afterwards, which SQLite does with one sort instead of a million random inserts.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use imessage::records::{AttachmentRecord, ChatRecord, MessageRecord, RecordChange, MESSAGE_ZONE};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::db::{self, Db, Param};
use crate::error::Result;
use crate::values::{self, json_strings, Plan};
use crate::zones::{self, FailedRecord, PageCommit, PageWriter};
use crate::{migrations, schema};

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for another process's write lock (a second bridge command).
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Negative `cache_size` is KiB: 2 MiB (SQLite's default size) for the one writer connection.
/// Page commits append to the ingest log and touch few pages, and the fold builds its B-trees
/// from sorted input, so a bigger cache bought no speed (32, 8 and 2 MiB measured the same). It
/// also sizes the fold's sorts (SQLite's sorter spills to temporary files beyond it), so a small
/// one keeps the bridge's peak memory flat in the size of the history: 8 MiB measured 39 MiB at
/// 100k messages and 46 MiB at 1M, 2 MiB 31 and 33 MiB.
const WRITER_CACHE_KIB: &str = "-2048";
/// Checkpoint every ~40 MiB of WAL instead of SQLite's 4 MiB, so the writer stops for a checkpoint
/// (and its fsyncs) rarely; folding the ingest log writes tens of MiB at once.
const WAL_CHECKPOINT_PAGES: &str = "10000";
/// Truncate the WAL back to at most 64 MiB after a checkpoint, so the file does not stay huge.
const WAL_SIZE_LIMIT_BYTES: &str = "67108864";
/// A fold of at least this many logged messages, more than `messages` holds, rebuilds the
/// chat/time index afterwards instead of maintaining it row by row.
const BULK_FOLD_ROWS: i64 = 20_000;
const CHAT_TS_INDEX: &str = "CREATE INDEX messages_chat_ts ON messages (chat_id, ts_ms)";

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// A SQLite-backed [`Store`](crate::Store).
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
            .busy_timeout(LOCK_WAIT);
        let in_memory = uri.contains(":memory:") || uri.contains("mode=memory");
        if !in_memory {
            // `create_if_missing` creates the file, not its directory (e.g. a fresh data dir).
            if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await.map_err(sqlx::Error::Io)?;
            }
            // The database holds the whole message history: readable by its owner only, created
            // so (SQLite gives its -wal and -shm files the database file's mode).
            owner_only(options.get_filename()).map_err(sqlx::Error::Io)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                options
                    .clone()
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

/// Creates `path` if missing and makes it 0600 (Unix; elsewhere the platform's defaults stay).
fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(path)?.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    options.open(path)?;
    Ok(())
}

/// A multi-row upsert statement: `head` + `(?,…),(?,…)` + `tail`, cached per chunk size.
struct Upsert {
    head: &'static str,
    cols: usize,
    tail: &'static str,
    cache: OnceLock<Vec<String>>,
}

/// Chunk sizes, largest first: 128 rows × ≤13 columns stays far below SQLite's 32766 parameters.
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
/// Appends to the ingest log: `deleted` first, then the message columns (NULL for deletions).
static MESSAGE_LOG: Upsert = Upsert::new(
    "INSERT INTO message_log (deleted, record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
     associated_type, associated_guid, service, content)",
    13,
    "",
);
static ATTACHMENTS: Upsert = Upsert::new(
    "INSERT INTO attachments (record_name, guid, mime_type, filename, total_bytes, asset_size, details)",
    7,
    "ON CONFLICT (record_name) DO UPDATE SET guid = excluded.guid, mime_type = excluded.mime_type, \
     filename = excluded.filename, total_bytes = excluded.total_bytes, asset_size = excluded.asset_size, \
     details = excluded.details",
);
static FAILED: Upsert = Upsert::new(
    "INSERT INTO failed_records (zone, record_name, reason, pending)",
    4,
    "ON CONFLICT (zone, record_name) DO UPDATE SET reason = excluded.reason, pending = excluded.pending",
);

/// Writes `rows` with as few statements as the chunk sizes allow.
async fn upsert_rows<'q, T: ?Sized>(
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

fn bind_logged_deletion<'q>(q: Query<'q>, record_name: &'q str) -> Result<Query<'q>> {
    let q = q.bind(true).bind(record_name).bind(None::<&str>).bind(None::<&str>).bind(None::<&str>);
    let q = q.bind(None::<i64>).bind(None::<i64>).bind(None::<&str>).bind(None::<&str>).bind(None::<i64>);
    Ok(q.bind(None::<&str>).bind(None::<&str>).bind(None::<&str>))
}

fn bind_logged_message<'q>(q: Query<'q>, m: &'q MessageRecord) -> Result<Query<'q>> {
    Ok(q.bind(false)
        .bind(m.record_name.as_str())
        .bind(m.guid.as_str())
        .bind(m.chat_id.as_str())
        .bind(m.sender.as_str())
        .bind(values::flags_to_db(m.flags))
        .bind(m.ts_ms)
        .bind(m.text.as_deref())
        .bind(m.subject.as_deref())
        .bind(m.associated_type.map(i64::from))
        .bind(m.associated_guid.as_deref())
        .bind(m.service.as_deref())
        .bind(values::content_to_db(&m.content)?))
}

fn bind_attachment<'q>(q: Query<'q>, a: &'q AttachmentRecord) -> Result<Query<'q>> {
    Ok(q.bind(a.record_name.as_str())
        .bind(a.guid.as_str())
        .bind(a.mime_type.as_deref())
        .bind(a.filename.as_deref())
        .bind(a.total_bytes)
        .bind(values::asset_size_to_db(a.asset_size)?)
        .bind(values::details_to_db(&a.details)?))
}

fn bind_failed<'q>(q: Query<'q>, f: &'q FailedRecord) -> Result<Query<'q>> {
    Ok(q.bind(f.zone.as_str()).bind(f.record_name.as_str()).bind(f.reason.as_str()).bind(f.pending))
}

/// Applies a change plan: deletions, then upserts, then drops the zone's now-obsolete
/// failed-record entries for every touched name. Messages (and deletions, which may name a
/// message) are appended to the ingest log in that same order, so folding it later yields the
/// state a direct apply would have.
async fn apply(conn: &mut SqliteConnection, zone: &str, plan: &Plan<'_>) -> Result<()> {
    if !plan.deleted.is_empty() {
        let names = json_strings(&plan.deleted);
        for table in ["chat_records", "attachments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE record_name IN (SELECT value FROM json_each($1))"))
                .bind(names.as_str())
                .execute(&mut *conn)
                .await?;
        }
        upsert_rows(conn, &MESSAGE_LOG, &plan.deleted, bind_logged_deletion).await?;
    }
    upsert_rows(conn, &CHATS, &plan.chats, bind_chat).await?;
    upsert_rows(conn, &MESSAGE_LOG, &plan.messages, bind_logged_message).await?;
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

/// Folds the ingest log into `messages` and empties it; returns how many log rows it held.
///
/// Equivalent to applying the logged operations in `seq` order: a name with any logged deletion
/// is deleted first, then the *last* logged row of every name is upserted unless that last row is
/// a deletion (SQLite fills the bare columns of a `MAX()` aggregate from the row holding the max).
/// `GROUP BY record_name` sorts, so the upserts arrive in primary-key order.
async fn fold_message_log(conn: &mut SqliteConnection) -> Result<i64> {
    let pending: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq) - MIN(seq) + 1, 0) FROM message_log").fetch_one(&mut *conn).await?;
    if pending == 0 {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let messages_empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM messages)").fetch_one(&mut *conn).await?;
    if messages_empty && adopt_message_log(conn).await? {
        tracing::debug!(logged = pending, adopted = true, ms = started.elapsed().as_millis() as u64, "folded message ingest log");
        return Ok(pending);
    }
    sqlx::query(crate::revisions::SQLITE_NOTE_FROM_LOG).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM messages WHERE record_name IN (SELECT record_name FROM message_log WHERE deleted = 1)").execute(&mut *conn).await?;
    let bulk = pending >= BULK_FOLD_ROWS && pending > sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM messages").fetch_one(&mut *conn).await?;
    if bulk {
        sqlx::query("DROP INDEX messages_chat_ts").execute(&mut *conn).await?;
    }
    sqlx::query(
        "INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms, text, subject, associated_type, \
           associated_guid, service, content) \
         SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, associated_type, associated_guid, \
           service, content FROM ( \
             SELECT MAX(seq), deleted, record_name, guid, chat_id, sender, flags, ts_ms, text, subject, \
               associated_type, associated_guid, service, content FROM message_log GROUP BY record_name \
           ) WHERE deleted = 0 \
         ON CONFLICT (record_name) DO UPDATE SET guid = excluded.guid, chat_id = excluded.chat_id, \
           sender = excluded.sender, flags = excluded.flags, ts_ms = excluded.ts_ms, text = excluded.text, \
           subject = excluded.subject, associated_type = excluded.associated_type, \
           associated_guid = excluded.associated_guid, service = excluded.service, content = excluded.content",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM message_log").execute(&mut *conn).await?;
    if bulk {
        sqlx::query(CHAT_TS_INDEX).execute(&mut *conn).await?;
    }
    tracing::debug!(logged = pending, bulk, ms = started.elapsed().as_millis() as u64, "folded message ingest log");
    Ok(pending)
}

/// Folds the log into an empty `messages` without copying it. When no record name is logged
/// twice, the log holds exactly one row per name, so after its deletions are removed it *is* the
/// table: it is renamed to `messages` (both share one row shape, migration 4) and a new log is
/// created (of the current shape, [`schema::SQLITE_CREATE_MESSAGE_LOG`]). What remains to do
/// is building the two indexes, each with one sort. Returns false, having changed nothing, when a
/// name repeats; the regular fold then decides which row wins.
async fn adopt_message_log(conn: &mut SqliteConnection) -> Result<bool> {
    sqlx::query("SAVEPOINT adopt_message_log").execute(&mut *conn).await?;
    sqlx::query("DROP TABLE messages").execute(&mut *conn).await?;
    // The unique index is built first, over deletions too: a name with a row and a deletion
    // must take the regular fold.
    match sqlx::query("CREATE UNIQUE INDEX messages_record_name ON message_log (record_name)").execute(&mut *conn).await {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            sqlx::query("ROLLBACK TO adopt_message_log").execute(&mut *conn).await?;
            sqlx::query("RELEASE adopt_message_log").execute(&mut *conn).await?;
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    sqlx::query("DELETE FROM message_log WHERE deleted = 1").execute(&mut *conn).await?;
    sqlx::query("ALTER TABLE message_log RENAME TO messages").execute(&mut *conn).await?;
    sqlx::query(CHAT_TS_INDEX).execute(&mut *conn).await?;
    sqlx::query(schema::SQLITE_CREATE_MESSAGE_LOG).execute(&mut *conn).await?;
    sqlx::query("RELEASE adopt_message_log").execute(&mut *conn).await?;
    Ok(true)
}

#[async_trait]
impl Db for SqliteStore {
    type Row = SqliteRow;
    const NOW: &'static str = NOW;

    async fn read_rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqliteRow>> {
        Ok(db::bind(sqlx::query(sql), params).fetch_all(&self.reader).await?)
    }

    async fn read_row(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<SqliteRow>> {
        Ok(db::bind(sqlx::query(sql), params).fetch_optional(&self.reader).await?)
    }

    async fn write(&self, sql: &str, params: &[Param<'_>]) -> Result<()> {
        db::bind(sqlx::query(sql), params).execute(&self.writer).await?;
        Ok(())
    }

    async fn write_returning(&self, sql: &str, params: &[Param<'_>]) -> Result<SqliteRow> {
        Ok(db::bind(sqlx::query(sql), params).fetch_one(&self.writer).await?)
    }

    /// Makes every logged message visible in `messages` before a read of that table.
    async fn settle_messages(&self) -> Result<()> {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM message_log)").fetch_one(&self.reader).await?;
        if pending {
            let mut tx = self.write_tx().await?;
            fold_message_log(&mut tx).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl PageWriter for SqliteStore {
    async fn write_page(&self, page: &PageCommit) -> Result<()> {
        let plan = Plan::new(&page.changes);
        let failed = zones::dedup_failed(&page.failed);
        let mut tx = self.write_tx().await?;
        apply(&mut tx, &page.zone, &plan).await?;
        upsert_rows(&mut tx, &FAILED, &failed, bind_failed).await?;
        sqlx::query(&zones::commit_page(NOW))
            .bind(page.zone.as_str())
            .bind(page.token.as_deref())
            .bind(page.stats.records)
            .bind(page.stats.status)
            .bind(page.stats.done)
            .bind(page.stats.has_token)
            .bind(page.stats.skipped)
            .execute(&mut *tx)
            .await?;
        if page.stats.done && page.zone == MESSAGE_ZONE {
            fold_message_log(&mut tx).await?;
        }
        crate::crash_point("mid-page-commit");
        tx.commit().await?;
        Ok(())
    }

    async fn write_recovered(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()> {
        let plan = Plan::new(recovered);
        let failed = zones::dedup_failed(still_failed);
        let mut tx = self.write_tx().await?;
        apply(&mut tx, zone, &plan).await?;
        upsert_rows(&mut tx, &FAILED, &failed, bind_failed).await?;
        if zone == MESSAGE_ZONE {
            fold_message_log(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
