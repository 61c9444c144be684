//! The schema, as versioned migrations: one list per backend, side by side so a reviewer can
//! see the two dialects match. `migrations.rs` applies them.
//!
//! Rules: a migration is never edited once released — a change is a new, higher version.
//! Text key columns are `COLLATE "C"` on PostgreSQL so `ORDER BY` is byte order, as in SQLite:
//! both backends must list chats and zones in the same order whatever the server's locale.

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
