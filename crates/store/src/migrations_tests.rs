//! Migration tests: version order, and that databases older bridges left keep their data.

use super::*;
use crate::SyncStore;

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
    apply(&pool, &sqlite_dialect(), &SQLITE[..3]).await.unwrap();
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
    let log: Vec<(i64, i64, String)> = sqlx::query_as("SELECT seq, deleted, record_name FROM message_log ORDER BY seq").fetch_all(&pool).await.unwrap();
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
    apply(&pool, &sqlite_dialect(), &SQLITE[..4]).await.unwrap();
    let rows = V4_ZONES.replace("{token}", "X'7431'").replace("{yes}", "1").replace("{no}", "0");
    sqlx::raw_sql(&rows).execute(&pool).await.unwrap();
    pool.close().await;
    check_version_4_zones_upgraded(&crate::SqliteStore::open(&uri).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_version_4_zones_survive_migration_5() {
    let uri = pg_support::fresh_database().await;
    let pool = PgPool::connect(&uri).await.unwrap();
    apply(&pool, &postgres_dialect(), &POSTGRES[..4]).await.unwrap();
    let rows = V4_ZONES.replace("{token}", "'\\x7431'::bytea").replace("{yes}", "TRUE").replace("{no}", "FALSE");
    sqlx::raw_sql(&rows).execute(&pool).await.unwrap();
    pool.close().await;
    check_version_4_zones_upgraded(&crate::PostgresStore::open(&uri).await.unwrap()).await;
}

/// A message as a version-5 bridge stored it: chat `c`, sender `tel:+1`, no flags.
pub(crate) fn v5_message(name: &str, ts_ms: i64, text: &str) -> imessage::records::MessageRecord {
    imessage::records::MessageRecord {
        record_name: name.into(),
        guid: format!("g-{name}"),
        chat_id: "c".into(),
        sender: "tel:+1".into(),
        flags: 0,
        ts_ms,
        text: Some(text.into()),
        subject: None,
        associated_type: None,
        associated_guid: None,
        service: None,
        content: Default::default(),
    }
}

/// After migration 6 the version-5 messages read back unchanged with an empty content, and a page
/// then stores content: for a message of then, and for a new one, folded on SQLite (`done`).
async fn check_version_5_messages_upgraded(store: &dyn crate::Store, before: Vec<imessage::records::MessageRecord>) {
    use imessage::records::{ContentPart, MessageContent, RecordChange, MESSAGE_ZONE};
    assert_eq!(store.messages_in_chat("c").await.unwrap(), before);
    assert_eq!(store.undelivered("c").await.unwrap(), before);
    let with_content = |mut m: imessage::records::MessageRecord| {
        m.content = MessageContent {
            parts: vec![ContentPart::Attachment { part: Some(0), guid: Some(format!("at-{}", m.record_name)) }],
            effect: Some("com.apple.MobileSMS.expressivesend.gentle".into()),
            read_ms: Some(m.ts_ms + 1),
            ..MessageContent::default()
        };
        m
    };
    let changed = [with_content(before[0].clone()), with_content(v5_message("r9", 90, "new"))];
    let mut page =
        crate::PageCommit { zone: MESSAGE_ZONE.into(), changes: changed.iter().cloned().map(RecordChange::Message).collect(), ..crate::PageCommit::default() };
    page.stats.done = true;
    store.commit_page(&page).await.unwrap();
    let mut after = before.clone();
    after[0] = changed[0].clone();
    after.push(changed[1].clone());
    assert_eq!(store.messages_in_chat("c").await.unwrap(), after);
}

/// Both tables of the SQLite row shape have the same columns, `content` among them.
async fn check_sqlite_row_shapes(pool: &SqlitePool) {
    let cols = |t: &str| format!("SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}')");
    for (a, b) in [("messages", "message_log"), ("message_log", "messages")] {
        let differ: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ({} EXCEPT {})", cols(a), cols(b))).fetch_one(pool).await.unwrap();
        assert_eq!(differ, 0, "columns of {a} missing from {b}");
    }
    let content: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'content'").fetch_one(pool).await.unwrap();
    assert_eq!(content, 1);
}

/// A SQLite database at version 5 with `sql` run on it: its directory (keep it alive) and URI.
async fn sqlite_at_version_5(sql: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:{}", dir.path().join("v5.db").display());
    let options = uri.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    apply(&pool, &sqlite_dialect(), &SQLITE[..5]).await.unwrap();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
    (dir, uri)
}

/// Messages a version-5 bridge left: folded ones and an ingest log with a message and a deletion.
#[tokio::test]
async fn sqlite_version_5_messages_survive_migration_6() {
    let (_dir, uri) = sqlite_at_version_5(
        "INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms, text) VALUES
             ('r1', 'g-r1', 'c', 'tel:+1', 0, 10, 'one'), ('r2', 'g-r2', 'c', 'tel:+1', 0, 20, 'two');
         INSERT INTO message_log (deleted, record_name, guid, chat_id, sender, flags, ts_ms, text) VALUES
             (0, 'r3', 'g-r3', 'c', 'tel:+1', 0, 30, 'three'), (1, 'r2', NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let store = crate::SqliteStore::open(&uri).await.unwrap();
    let pool = SqlitePool::connect(&uri).await.unwrap();
    check_sqlite_row_shapes(&pool).await;
    check_version_5_messages_upgraded(&store, vec![v5_message("r1", 10, "one"), v5_message("r3", 30, "three")]).await;
    let nulls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE content IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(nulls, 1, "the message not re-committed keeps a NULL content");
}

/// A version-5 initial sync still in its ingest log (`messages` empty): after migration 6 the
/// fold adopts that altered log as `messages`, and the log it creates instead has the same shape.
#[tokio::test]
async fn sqlite_version_5_ingest_log_is_adopted_after_migration_6() {
    let (_dir, uri) = sqlite_at_version_5(
        "INSERT INTO message_log (deleted, record_name, guid, chat_id, sender, flags, ts_ms, text) VALUES
             (0, 'r1', 'g-r1', 'c', 'tel:+1', 0, 10, 'one'), (0, 'r2', 'g-r2', 'c', 'tel:+1', 0, 20, 'two'),
             (1, 'gone', NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;

    let store = crate::SqliteStore::open(&uri).await.unwrap();
    let mut page = crate::PageCommit { zone: imessage::records::MESSAGE_ZONE.into(), ..crate::PageCommit::default() };
    page.stats.done = true;
    page.changes = vec![imessage::records::RecordChange::Message(v5_message("r3", 30, "three"))];
    store.commit_page(&page).await.unwrap();
    let pool = SqlitePool::connect(&uri).await.unwrap();
    let max_seq: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM messages").fetch_one(&pool).await.unwrap();
    let log: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_log").fetch_one(&pool).await.unwrap();
    assert_eq!((max_seq, log), (4, 0), "the log is adopted (its rows keep their numbers), not copied");
    check_sqlite_row_shapes(&pool).await;
    let before = vec![v5_message("r1", 10, "one"), v5_message("r2", 20, "two"), v5_message("r3", 30, "three")];
    check_version_5_messages_upgraded(&store, before).await;
}

#[tokio::test]
async fn postgres_version_5_messages_survive_migration_6() {
    let uri = pg_support::fresh_database().await;
    let pool = PgPool::connect(&uri).await.unwrap();
    apply(&pool, &postgres_dialect(), &POSTGRES[..5]).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO messages (record_name, guid, chat_id, sender, flags, ts_ms, text) VALUES
             ('r1', 'g-r1', 'c', 'tel:+1', 0, 10, 'one'), ('r2', 'g-r2', 'c', 'tel:+1', 0, 20, 'two');",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = crate::PostgresStore::open(&uri).await.unwrap();
    check_version_5_messages_upgraded(&store, vec![v5_message("r1", 10, "one"), v5_message("r2", 20, "two")]).await;
    let pool = PgPool::connect(&uri).await.unwrap();
    let nulls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE content IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(nulls, 1, "the message not re-committed keeps a NULL content");
}
