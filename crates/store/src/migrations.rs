//! Versioned schema migrations, one list per backend.
//!
//! Why hand-rolled instead of `sqlx::migrate!`: that macro needs sqlx's `migrate`/`macros`
//! features and a migrations directory per backend; a const list is enough for a handful of
//! tables and keeps the two dialects side by side, where a reviewer can see they match.
//!
//! Rules: a migration is never edited once released — a change is a new, higher version (the
//! Matrix portal and delivery-ledger tables will arrive that way). Each migration runs in its own
//! transaction together with its `schema_migrations` row, so a crash leaves the schema at a
//! version boundary, and reopening applies only what is missing.
//!
//! Text key columns are `COLLATE "C"` on PostgreSQL so `ORDER BY` is byte order, as in SQLite:
//! both backends must list chats and zones in the same order whatever the server's locale.

use sqlx::{PgPool, SqlitePool};

use crate::{Result, StoreError};

/// One schema step: applied once, in `version` order.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The row shape `messages` and `message_log` share on SQLite from migration 4 on: a message, or
/// (in the log only) a deletion of the record `record_name`.
macro_rules! sqlite_message_rows {
    ($table:literal) => {
        concat!(
            "CREATE TABLE ",
            $table,
            " (
    seq             INTEGER PRIMARY KEY,
    deleted         INTEGER NOT NULL DEFAULT 0,
    record_name     TEXT NOT NULL,
    guid            TEXT,
    chat_id         TEXT,
    sender          TEXT,
    flags           INTEGER,
    ts_ms           INTEGER,
    text            TEXT,
    subject         TEXT,
    associated_type INTEGER,
    associated_guid TEXT,
    service         TEXT,
    CHECK (deleted = 1 OR (guid IS NOT NULL AND chat_id IS NOT NULL AND sender IS NOT NULL AND flags IS NOT NULL
        AND ts_ms IS NOT NULL))
) STRICT;"
        )
    };
}

/// Creates an empty `message_log` (the SQLite fold makes a new one after adopting the old one).
pub(crate) const SQLITE_CREATE_MESSAGE_LOG: &str = sqlite_message_rows!("message_log");

pub(crate) const SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "sync_state",
    sql: r#"
CREATE TABLE chat_records (
    record_name  TEXT PRIMARY KEY NOT NULL,
    chat_id      TEXT NOT NULL,
    group_id     TEXT,
    style        INTEGER NOT NULL,
    display_name TEXT,
    participants TEXT NOT NULL,
    service      TEXT,
    modified_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX chat_records_chat_id ON chat_records (chat_id);

CREATE TABLE messages (
    record_name     TEXT PRIMARY KEY NOT NULL,
    guid            TEXT NOT NULL,
    chat_id         TEXT NOT NULL,
    sender          TEXT NOT NULL,
    flags           INTEGER NOT NULL,
    ts_ms           INTEGER NOT NULL,
    text            TEXT,
    subject         TEXT,
    associated_type INTEGER,
    associated_guid TEXT,
    service         TEXT
) STRICT;
CREATE INDEX messages_guid ON messages (guid);
CREATE INDEX messages_chat_ts ON messages (chat_id, ts_ms);

CREATE TABLE attachments (
    record_name TEXT PRIMARY KEY NOT NULL,
    guid        TEXT NOT NULL,
    mime_type   TEXT,
    filename    TEXT,
    total_bytes INTEGER NOT NULL,
    asset_size  INTEGER
) STRICT;

CREATE TABLE zones (
    zone                TEXT PRIMARY KEY NOT NULL,
    token               BLOB,
    pages               INTEGER NOT NULL DEFAULT 0,
    last_page_records   INTEGER,
    last_page_status    INTEGER,
    last_page_done      INTEGER,
    last_page_has_token INTEGER,
    stop_reason         TEXT,
    last_error          TEXT,
    server_count        INTEGER,
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE failed_records (
    zone        TEXT NOT NULL,
    record_name TEXT NOT NULL,
    reason      TEXT NOT NULL,
    pending     INTEGER NOT NULL,
    PRIMARY KEY (zone, record_name)
) STRICT;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
"#,
}, Migration {
    version: 2,
    name: "matrix_delivery",
    sql: r#"
CREATE TABLE portals (
    chat_id    TEXT PRIMARY KEY NOT NULL,
    room_id    TEXT NOT NULL UNIQUE,
    name       TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE TABLE deliveries (
    guid     TEXT PRIMARY KEY NOT NULL,
    chat_id  TEXT NOT NULL,
    txn_id   TEXT NOT NULL,
    event_id TEXT
) STRICT;
CREATE INDEX deliveries_chat ON deliveries (chat_id);
"#,
}, Migration {
    version: 3,
    name: "message_ingest",
    // `messages_guid` was never read (deliveries are looked up by guid in `deliveries`), and each
    // random insert into it cost a dirty index leaf per message. `message_log` is the SQLite
    // ingest log: pages append to it (no secondary index, so a commit writes a few sequential
    // pages), and it is folded into `messages` in record-name order (see `sqlite.rs`).
    sql: r#"
DROP INDEX messages_guid;
CREATE TABLE message_log (
    seq             INTEGER PRIMARY KEY,
    deleted         INTEGER NOT NULL,
    record_name     TEXT NOT NULL,
    guid            TEXT,
    chat_id         TEXT,
    sender          TEXT,
    flags           INTEGER,
    ts_ms           INTEGER,
    text            TEXT,
    subject         TEXT,
    associated_type INTEGER,
    associated_guid TEXT,
    service         TEXT
) STRICT;
"#,
}, Migration {
    version: 4,
    name: "message_rows_shared",
    // `messages` takes the row shape of `message_log`, so that folding a log into an empty
    // `messages` (the initial sync) renames the log instead of copying it (see `sqlite.rs`).
    // `record_name` is kept unique by an index instead of the primary key, which is now the
    // rowid `seq`; `deleted` rows only ever live in the log.
    sql: concat!(
        sqlite_message_rows!("messages_v4"),
        "
INSERT INTO messages_v4 (record_name, guid, chat_id, sender, flags, ts_ms, text, subject, associated_type,
    associated_guid, service)
SELECT record_name, guid, chat_id, sender, flags, ts_ms, text, subject, associated_type, associated_guid, service
FROM messages ORDER BY record_name;
DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;
CREATE UNIQUE INDEX messages_record_name ON messages (record_name);
CREATE INDEX messages_chat_ts ON messages (chat_id, ts_ms);
",
        sqlite_message_rows!("message_log_v4"),
        "
INSERT INTO message_log_v4 SELECT * FROM message_log;
DROP TABLE message_log;
ALTER TABLE message_log_v4 RENAME TO message_log;
"
    ),
}, Migration {
    version: 5,
    name: "zone_skipped_and_summary",
    // Per zone: records of types the bridge does not read, in total since the last clear and on
    // the last page; and the server's whole `MessagesSummary` list (JSON), NULL until fetched.
    sql: r#"
ALTER TABLE zones ADD COLUMN skipped_records INTEGER NOT NULL DEFAULT 0;
ALTER TABLE zones ADD COLUMN last_page_skipped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE zones ADD COLUMN server_summary TEXT;
"#,
}];

pub(crate) const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "sync_state",
    sql: r#"
CREATE TABLE chat_records (
    record_name  TEXT COLLATE "C" PRIMARY KEY,
    chat_id      TEXT COLLATE "C" NOT NULL,
    group_id     TEXT,
    style        BIGINT NOT NULL,
    display_name TEXT,
    participants TEXT NOT NULL,
    service      TEXT,
    modified_ms  BIGINT NOT NULL
);
CREATE INDEX chat_records_chat_id ON chat_records (chat_id);

CREATE TABLE messages (
    record_name     TEXT COLLATE "C" PRIMARY KEY,
    guid            TEXT COLLATE "C" NOT NULL,
    chat_id         TEXT COLLATE "C" NOT NULL,
    sender          TEXT NOT NULL,
    flags           BIGINT NOT NULL,
    ts_ms           BIGINT NOT NULL,
    text            TEXT,
    subject         TEXT,
    associated_type BIGINT,
    associated_guid TEXT,
    service         TEXT
);
CREATE INDEX messages_guid ON messages (guid);
CREATE INDEX messages_chat_ts ON messages (chat_id, ts_ms);

CREATE TABLE attachments (
    record_name TEXT COLLATE "C" PRIMARY KEY,
    guid        TEXT COLLATE "C" NOT NULL,
    mime_type   TEXT,
    filename    TEXT,
    total_bytes BIGINT NOT NULL,
    asset_size  BIGINT
);

CREATE TABLE zones (
    zone                TEXT COLLATE "C" PRIMARY KEY,
    token               BYTEA,
    pages               BIGINT NOT NULL DEFAULT 0,
    last_page_records   BIGINT,
    last_page_status    BIGINT,
    last_page_done      BOOLEAN,
    last_page_has_token BOOLEAN,
    stop_reason         TEXT,
    last_error          TEXT,
    server_count        BIGINT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE failed_records (
    zone        TEXT COLLATE "C" NOT NULL,
    record_name TEXT COLLATE "C" NOT NULL,
    reason      TEXT NOT NULL,
    pending     BOOLEAN NOT NULL,
    PRIMARY KEY (zone, record_name)
);

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
}, Migration {
    version: 2,
    name: "matrix_delivery",
    sql: r#"
CREATE TABLE portals (
    chat_id    TEXT COLLATE "C" PRIMARY KEY,
    room_id    TEXT NOT NULL UNIQUE,
    name       TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE deliveries (
    guid     TEXT COLLATE "C" PRIMARY KEY,
    chat_id  TEXT COLLATE "C" NOT NULL,
    txn_id   TEXT NOT NULL,
    event_id TEXT
);
CREATE INDEX deliveries_chat ON deliveries (chat_id);
"#,
}, Migration {
    version: 3,
    name: "message_ingest",
    // Same version as SQLite's ingest log. PostgreSQL keeps upserting pages straight into
    // `messages`; it only loses the unused guid index.
    sql: "DROP INDEX messages_guid;",
}, Migration {
    version: 4,
    name: "message_rows_shared",
    // SQLite only (its `messages` takes the ingest log's row shape); PostgreSQL writes messages
    // directly and keeps its schema. The step exists so versions mean the same on both backends.
    sql: "SELECT 1",
}, Migration {
    version: 5,
    name: "zone_skipped_and_summary",
    // As on SQLite.
    sql: r#"
ALTER TABLE zones
    ADD COLUMN skipped_records BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_page_skipped BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN server_summary TEXT;
"#,
}];

/// Serializes concurrent openers of one PostgreSQL database (`pg_advisory_xact_lock` key).
const PG_MIGRATION_LOCK: i64 = 0x6d73_6762_7269_6467; // "msgbridg"

fn failed(version: i64) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Migration { version, source }
}

fn warn_if_newer(applied_max: Option<i64>, known: &[Migration]) {
    let known_max = known.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(max) = applied_max.filter(|&v| v > known_max) {
        tracing::warn!(db_version = max, known_version = known_max, "database schema is newer than this build");
    }
}

/// Applies the missing SQLite migrations. `BEGIN IMMEDIATE` takes the write lock up front, so two
/// processes opening the same file apply each migration exactly once.
pub(crate) async fn run_sqlite(pool: &SqlitePool) -> Result<()> {
    apply_sqlite(pool, SQLITE).await
}

/// Applies the migrations of `list` that are missing.
async fn apply_sqlite(pool: &SqlitePool, list: &[Migration]) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY NOT NULL,
            name       TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) STRICT",
    )
    .execute(pool)
    .await
    .map_err(failed(0))?;
    for m in list {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(failed(m.version))?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        if done.is_some() {
            continue; // dropping `tx` rolls the empty transaction back
        }
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(failed(m.version))?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        tx.commit().await.map_err(failed(m.version))?;
        tracing::info!(version = m.version, name = m.name, "applied sqlite migration");
    }
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(failed(0))?;
    warn_if_newer(max, SQLITE);
    Ok(())
}

/// Applies the missing PostgreSQL migrations, each under a transaction-scoped advisory lock so
/// concurrent openers wait for each other instead of racing on `CREATE TABLE`.
pub(crate) async fn run_postgres(pool: &PgPool) -> Result<()> {
    apply_postgres(pool, POSTGRES).await
}

/// Applies the migrations of `list` that are missing.
async fn apply_postgres(pool: &PgPool, list: &[Migration]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(failed(0))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(failed(0))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(failed(0))?;
    tx.commit().await.map_err(failed(0))?;
    for m in list {
        let mut tx = pool.begin().await.map_err(failed(m.version))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(failed(m.version))?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        tx.commit().await.map_err(failed(m.version))?;
        tracing::info!(version = m.version, name = m.name, "applied postgres migration");
    }
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(failed(0))?;
    warn_if_newer(max, POSTGRES);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &[Migration]) {
        for pair in list.windows(2) {
            assert!(pair[0].version < pair[1].version, "versions must increase");
        }
        assert!(list.first().is_some_and(|m| m.version == 1));
    }

    #[test]
    fn versions_increase_and_backends_match() {
        check(SQLITE);
        check(POSTGRES);
        let s: Vec<_> = SQLITE.iter().map(|m| (m.version, m.name)).collect();
        let p: Vec<_> = POSTGRES.iter().map(|m| (m.version, m.name)).collect();
        assert_eq!(s, p, "each migration must exist for both backends");
    }

    /// A database an older bridge left at version 3, with folded messages and a non-empty
    /// ingest log, keeps every row through migration 4, and the upgraded tables take writes.
    #[tokio::test]
    async fn sqlite_version_3_rows_survive_migration_4() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        apply_sqlite(&pool, &SQLITE[..3]).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms, text) VALUES
                 ('r2', 'g2', 'c', 'tel:+1', 0, 20, 'two'), ('r1', 'g1', 'c', '', 16384, 10, NULL);
             INSERT INTO message_log (deleted, record_name, guid, chat_id, sender, flags, ts_ms, text) VALUES
                 (0, 'r3', 'g3', 'c', 'tel:+1', 4, 30, 'three'), (1, 'r2', NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .execute(&pool)
        .await
        .unwrap();
        run_sqlite(&pool).await.unwrap();
        let rows: Vec<(String, String, i64, Option<String>)> =
            sqlx::query_as("SELECT record_name, guid, ts_ms, text FROM messages ORDER BY record_name").fetch_all(&pool).await.unwrap();
        assert_eq!(rows, vec![("r1".into(), "g1".into(), 10, None), ("r2".into(), "g2".into(), 20, Some("two".into()))]);
        let log: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT seq, deleted, record_name FROM message_log ORDER BY seq").fetch_all(&pool).await.unwrap();
        assert_eq!(log, vec![(1, 0, "r3".into()), (2, 1, "r2".into())]);
        // Record names stay unique, and a message row without its columns is refused.
        let dup = sqlx::query("INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms) VALUES ('r1', 'x', 'c', '', 0, 1)");
        assert!(dup.execute(&pool).await.is_err());
        let bare = sqlx::query("INSERT INTO messages (record_name) VALUES ('r9')");
        assert!(bare.execute(&pool).await.is_err());
        let versions: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(Some(versions), SQLITE.last().map(|m| m.version));
    }

    /// Zone rows as a version-4 bridge left them: a zone mid-pass with a server count, and a
    /// zone with only a stop reason. `{token}`, `{yes}`, `{no}` are the dialect's literals.
    const V4_ZONES: &str = "INSERT INTO zones (zone, token, pages, last_page_records, last_page_status, last_page_done, \
         last_page_has_token, server_count) VALUES ('messageManateeZone', {token}, 3, 200, 1, {no}, {yes}, 42); \
         INSERT INTO zones (zone, stop_reason) VALUES ('chatManateeZone', 'api_done');";

    /// After migration 5 the version-4 rows read back unchanged with the new fields at their
    /// defaults (no skipped records, no summary list), and the new columns take writes.
    async fn check_version_4_zones_upgraded(store: &dyn crate::Store) {
        use crate::{PageCommit, PageStats, StopReason, ZoneState};
        let stats = PageStats { records: 200, skipped: 0, status: 1, done: false, has_token: true };
        let messages = ZoneState {
            zone: "messageManateeZone".into(),
            token: Some(b"t1".to_vec()),
            pages: 3,
            last_page: Some(stats),
            server_count: Some(42),
            ..ZoneState::default()
        };
        let chats = ZoneState { zone: "chatManateeZone".into(), stop_reason: Some(StopReason::ApiDone), ..ZoneState::default() };
        assert_eq!(store.zone_states().await.unwrap(), vec![chats, messages.clone()]);

        let stats = PageStats { skipped: 3, ..stats };
        let page = PageCommit { zone: messages.zone.clone(), token: Some(b"t2".to_vec()), stats, ..PageCommit::default() };
        store.commit_page(&page).await.unwrap();
        store.set_server_summary(&messages.zone, &[43, 1]).await.unwrap();
        let z = store.zone_state(&messages.zone).await.unwrap().unwrap();
        assert_eq!((z.pages, z.last_page, z.skipped), (4, Some(stats), 3));
        assert_eq!((z.server_count, z.server_summary), (Some(43), Some(vec![43, 1])));
    }

    #[tokio::test]
    async fn sqlite_version_4_zones_survive_migration_5() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("sqlite:{}", dir.path().join("v4.db").display());
        let options = uri.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        apply_sqlite(&pool, &SQLITE[..4]).await.unwrap();
        let rows = V4_ZONES.replace("{token}", "X'7431'").replace("{yes}", "1").replace("{no}", "0");
        sqlx::raw_sql(&rows).execute(&pool).await.unwrap();
        pool.close().await;
        check_version_4_zones_upgraded(&crate::SqliteStore::open(&uri).await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_version_4_zones_survive_migration_5() {
        let uri = pg_support::fresh_database().await;
        let pool = PgPool::connect(&uri).await.unwrap();
        apply_postgres(&pool, &POSTGRES[..4]).await.unwrap();
        let rows = V4_ZONES.replace("{token}", "'\\x7431'::bytea").replace("{yes}", "TRUE").replace("{no}", "FALSE");
        sqlx::raw_sql(&rows).execute(&pool).await.unwrap();
        pool.close().await;
        check_version_4_zones_upgraded(&crate::PostgresStore::open(&uri).await.unwrap()).await;
    }
}

/// The conformance suite's throwaway PostgreSQL server, for the migration tests above.
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod pg_support;
