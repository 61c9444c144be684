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
/// (in the log only) a deletion of the record `record_name`. Later migrations add columns to both
/// tables (at the end, as `ALTER TABLE … ADD COLUMN` does); `$added` are their definitions, so the
/// shape of migration 4 stays what it was and a log created today matches the altered tables.
macro_rules! sqlite_message_rows {
    ($table:literal $(, $added:literal)*) => {
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
",
            $("    ", $added, ",\n",)*
            "    CHECK (deleted = 1 OR (guid IS NOT NULL AND chat_id IS NOT NULL AND sender IS NOT NULL AND flags IS NOT NULL
        AND ts_ms IS NOT NULL))
) STRICT;"
        )
    };
}

/// Creates an empty `message_log` of the current row shape (the SQLite fold makes a new one after
/// adopting the old one): migration 4's plus the columns of migration 6.
pub(crate) const SQLITE_CREATE_MESSAGE_LOG: &str = sqlite_message_rows!("message_log", "content         TEXT");

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
}, Migration {
    version: 6,
    name: "message_content",
    // The decoded content of a message's blobs (`MessageContent` as JSON), NULL when it is empty
    // (most messages). Added to both tables of the shared row shape, as their last column, which
    // is where `SQLITE_CREATE_MESSAGE_LOG` puts it in the logs the fold creates.
    sql: r#"
ALTER TABLE messages ADD COLUMN content TEXT;
ALTER TABLE message_log ADD COLUMN content TEXT;
"#,
}, Migration {
    version: 7,
    name: "attachment_files",
    // `details`: the rest of an attachment's `cm` as JSON, NULL when empty. `attachment_files`:
    // what became of each attachment's file (see `files.rs`); the bytes live beside the database,
    // named by their SHA-256.
    sql: r#"
ALTER TABLE attachments ADD COLUMN details TEXT;
CREATE TABLE attachment_files (
    record_name TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL,
    sha256      TEXT,
    bytes       INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_ms  INTEGER NOT NULL
) STRICT;
"#,
}, Migration {
    version: 8,
    name: "delivery_errors",
    // The error of the last delivery round that left a chat with messages still to send (for
    // `status`); the row goes when a round leaves the chat with nothing pending.
    sql: r#"
CREATE TABLE delivery_errors (
    chat_id TEXT PRIMARY KEY NOT NULL,
    error   TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
) STRICT;
"#,
}, Migration {
    version: 9,
    name: "revisions",
    // Delivered messages whose record changed or was deleted since (an unsend, a later edit, a
    // deletion): delivery brings the room in line (redactions, new edits) and removes the row.
    sql: r#"
CREATE TABLE revisions (
    guid    TEXT PRIMARY KEY NOT NULL,
    chat_id TEXT NOT NULL
) STRICT;
CREATE INDEX revisions_chat ON revisions (chat_id);
"#,
}, Migration {
    version: 10,
    name: "owner_messages",
    // Messages the owner typed in a portal (they cannot reach iMessage): the count per chat for
    // `status`, and when the room was last told so (a notice at most once a day).
    sql: "CREATE TABLE owner_messages (chat_id TEXT PRIMARY KEY NOT NULL, refused INTEGER NOT NULL DEFAULT 0, last_notice_ms INTEGER) STRICT;",
}, Migration {
    version: 11,
    name: "refused_events",
    // Events the homeserver refused for good (a 4xx other than 429: too large, say), by ledger
    // key: each went in as a notice naming what was refused, and `status` counts them per chat.
    sql: "CREATE TABLE refused_events (key TEXT PRIMARY KEY NOT NULL, chat_id TEXT NOT NULL, what TEXT NOT NULL, error TEXT NOT NULL, at_ms INTEGER NOT NULL) STRICT;\nCREATE INDEX refused_events_chat ON refused_events (chat_id);",
}, Migration {
    version: 12,
    name: "live_rooms",
    // Chats whose room has taken in its whole history (and since when): `status` shows them as
    // live, and delivery gives them slots of their own (see `matrix::live`).
    sql: "CREATE TABLE live_rooms (chat_id TEXT PRIMARY KEY NOT NULL, since_ms INTEGER NOT NULL) STRICT;",
}, Migration {
    version: 13,
    name: "ghost_profiles",
    // The profile last applied to each ghost and the avatars uploaded (see `profiles.rs`).
    sql: crate::profiles::SQLITE_MIGRATION,
}];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
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
    },
    Migration {
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
    },
    Migration {
        version: 3,
        name: "message_ingest",
        // Same version as SQLite's ingest log. PostgreSQL keeps upserting pages straight into
        // `messages`; it only loses the unused guid index.
        sql: "DROP INDEX messages_guid;",
    },
    Migration {
        version: 4,
        name: "message_rows_shared",
        // SQLite only (its `messages` takes the ingest log's row shape); PostgreSQL writes messages
        // directly and keeps its schema. The step exists so versions mean the same on both backends.
        sql: "SELECT 1",
    },
    Migration {
        version: 5,
        name: "zone_skipped_and_summary",
        // As on SQLite.
        sql: r#"
ALTER TABLE zones
    ADD COLUMN skipped_records BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_page_skipped BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN server_summary TEXT;
"#,
    },
    Migration {
        version: 6,
        name: "message_content",
        // As on SQLite (PostgreSQL has no ingest log).
        sql: "ALTER TABLE messages ADD COLUMN content TEXT;",
    },
    Migration {
        version: 7,
        name: "attachment_files",
        sql: r#"
ALTER TABLE attachments ADD COLUMN details TEXT;
CREATE TABLE attachment_files (
    record_name TEXT COLLATE "C" PRIMARY KEY,
    state       TEXT NOT NULL,
    sha256      TEXT,
    bytes       BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_ms  BIGINT NOT NULL
);
"#,
    },
    Migration {
        version: 8,
        name: "delivery_errors",
        // As on SQLite.
        sql: r#"
CREATE TABLE delivery_errors (
    chat_id TEXT COLLATE "C" PRIMARY KEY,
    error   TEXT NOT NULL,
    at_ms   BIGINT NOT NULL
);
"#,
    },
    Migration {
        version: 9,
        name: "revisions",
        // As on SQLite.
        sql: r#"
CREATE TABLE revisions (
    guid    TEXT COLLATE "C" PRIMARY KEY,
    chat_id TEXT COLLATE "C" NOT NULL
);
CREATE INDEX revisions_chat ON revisions (chat_id);
"#,
    },
    Migration {
        version: 10,
        name: "owner_messages",
        // As on SQLite.
        sql: r#"CREATE TABLE owner_messages (chat_id TEXT COLLATE "C" PRIMARY KEY, refused BIGINT NOT NULL DEFAULT 0, last_notice_ms BIGINT);"#,
    },
    Migration {
        version: 11,
        name: "refused_events",
        // As on SQLite.
        sql: r#"CREATE TABLE refused_events (key TEXT COLLATE "C" PRIMARY KEY, chat_id TEXT COLLATE "C" NOT NULL, what TEXT NOT NULL, error TEXT NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX refused_events_chat ON refused_events (chat_id);"#,
    },
    Migration {
        version: 12,
        name: "live_rooms",
        // As on SQLite.
        sql: r#"CREATE TABLE live_rooms (chat_id TEXT COLLATE "C" PRIMARY KEY, since_ms BIGINT NOT NULL);"#,
    },
    Migration { version: 13, name: "ghost_profiles", sql: crate::profiles::POSTGRES_MIGRATION },
];

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
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(pool).await.map_err(failed(0))?;
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
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await.map_err(failed(0))?;
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
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await.map_err(failed(m.version))?;
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
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(pool).await.map_err(failed(0))?;
    warn_if_newer(max, POSTGRES);
    Ok(())
}

/// The highest applied migration of a SQLite file, read without creating, migrating or writing
/// anything (`doctor` runs beside a running bridge). None: the file has no migration table.
pub(crate) async fn applied_sqlite(uri: &str) -> Result<Option<i64>> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let options = <SqliteConnectOptions as std::str::FromStr>::from_str(uri)?;
    if !options.get_filename().exists() {
        return Err(StoreError::NotFound(options.get_filename().display().to_string()));
    }
    let mut conn = options.read_only(true).create_if_missing(false).connect().await?;
    let table: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetch_one(&mut conn).await?;
    let applied = if table == 0 { None } else { sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(&mut conn).await? };
    conn.close().await?;
    Ok(applied)
}

/// As [`applied_sqlite`], for PostgreSQL (a plain connection that only reads).
pub(crate) async fn applied_postgres(uri: &str) -> Result<Option<i64>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(uri).await?;
    let table: bool = sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL").fetch_one(&mut conn).await?;
    let applied = if table { sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(&mut conn).await? } else { None };
    conn.close().await?;
    Ok(applied)
}

/// The highest migration version this build knows for a backend.
pub(crate) fn latest(postgres: bool) -> i64 {
    let list = if postgres { POSTGRES } else { SQLITE };
    list.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests;

/// The conformance suite's throwaway PostgreSQL server, for the migration tests above.
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod pg_support;
