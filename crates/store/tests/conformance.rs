//! The store conformance suite: every case is written once, as an async fn taking a [`TestDb`],
//! and the `conformance!` macro instantiates it as a test for each backend, grouped by the store
//! job (trait) it checks (`on_sqlite::sync::*`, `on_postgres::rooms::*`, …). A behaviour difference between SQLite and PostgreSQL is a failing test.
//!
//! PostgreSQL runs from a server this binary starts itself (see `support`); if its binaries are
//! missing the PostgreSQL tests fail (never skip) and say to run `scripts/install-postgres.sh`.

mod support;

// Cases by topic, in `tests/conformance/` (a path attribute, so cargo does not take them for test
// targets of their own); each is listed in `conformance!` below like the cases of this file.
#[path = "conformance/content.rs"]
mod content;
#[path = "conformance/delivery.rs"]
mod delivery;
#[path = "conformance/ingest.rs"]
mod ingest;
#[path = "conformance/zones.rs"]
mod zones;
use content::*;
use delivery::*;
use ingest::*;
use zones::*;

use imessage::records::{
    AttachmentDetails, AttachmentRecord, ChatRecord, MessageContent, MessageRecord, RecordChange, ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE,
};
use sqlx::{Connection, Executor};
use store::{FailedRecord, FileOutcome, FileState, FileSummary, PageCommit, PageStats, StopReason, Store, StoreError};
use tempfile::TempDir;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// One empty database of one backend, reopenable by URI.
struct TestDb {
    kind: Kind,
    uri: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let uri = format!("sqlite:{}", dir.path().join("store.db").display());
        TestDb { kind: Kind::Sqlite, uri, _dir: Some(dir) }
    }

    async fn postgres() -> TestDb {
        TestDb { kind: Kind::Postgres, uri: support::fresh_database().await, _dir: None }
    }

    async fn open(&self) -> Box<dyn Store> {
        store::open(&self.uri).await.unwrap_or_else(|e| panic!("open {}: {e}", self.uri))
    }

    /// Runs raw SQL (possibly several statements) on a connection of its own, past the store.
    async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.uri).await.expect("connect");
                c.execute(sqlx::raw_sql(sql)).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                let _ = c.close().await;
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.uri).await.expect("connect");
                c.execute(sqlx::raw_sql(sql)).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                let _ = c.close().await;
            }
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.uri).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.uri).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    fn pick<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self.kind {
            Kind::Sqlite => sqlite,
            Kind::Postgres => postgres,
        }
    }
}

/// Instantiates each case for both backends, grouped by the store job it checks:
/// `on_sqlite::<job>::<case>` and `on_postgres::<job>::<case>`.
macro_rules! conformance {
    ($($job:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        mod on_sqlite {
            $( mod $job {
                $( #[tokio::test] async fn $case() { crate::$case(crate::TestDb::sqlite().await).await } )*
            } )*
        }
        mod on_postgres {
            $( mod $job {
                $( #[tokio::test] async fn $case() { crate::$case(crate::TestDb::postgres().await).await } )*
            } )*
        }
    };
}

conformance!(
    // SyncStore: pages, tokens, zone state, failed records.
    sync: [
        page_commit_is_atomic_and_persists_token,
        deletion_removes_record_and_failed_entry,
        failed_records_pending_to_final,
        zone_states_ordered_by_name,
        stop_reason_round_trip,
        clear_tokens_keeps_records,
        sync_version_round_trip,
        stored_count_by_zone,
        concurrent_commits_to_different_zones,
        changes_across_pages_apply_in_order,
        initial_sync_sized_commit,
        initial_sync_with_distinct_names_then_later_changes,
        skipped_total_accumulates_and_resets,
        server_summary_round_trip,
        corrupt_server_summary_is_an_error,
    ],
    // RecordStore: what the records read back as.
    records: [
        upsert_replaces,
        newest_chat_record_wins,
        null_fields_round_trip,
        corrupt_values_are_errors,
        messages_ordered_by_ts_then_guid,
        rich_content_round_trips,
        rich_content_survives_the_initial_sync_fold,
        recommit_replaces_content,
        corrupt_content_is_an_error,
    ],
    files: [attachment_files_move_through_their_states],
    // RoomStore and LedgerStore: portals, the delivery ledger, per-room bookkeeping.
    rooms: [
        portals_and_delivery_ledger,
        room_deliveries_count_by_message,
        owner_messages_count_and_remember_the_notice,
        refused_events_are_counted_once_per_key,
    ],
    revisions: [revisions_note_changed_and_deleted_delivered_messages],
    profiles: [ghost_profiles_and_avatar_uploads],
    // The schema: migrations and reopening.
    schema: [reopen_is_idempotent_and_keeps_data, schema_state_reads_without_migrating],
);

async fn attachment_files_move_through_their_states(db: TestDb) {
    let s = db.open().await;
    let no_asset = AttachmentRecord { asset_size: None, ..att("a0") };
    let atts = vec![no_asset, att("a1"), att("a2"), att("a3"), att("a4")];
    s.commit_page(&page(ATTACHMENT_ZONE, b"t", atts.iter().cloned().map(RecordChange::Attachment).collect())).await.unwrap();
    let names = |v: Vec<AttachmentRecord>| v.into_iter().map(|a| a.record_name).collect::<Vec<_>>();
    // Only attachments with an asset are fetched, in name order, keyset-paged.
    assert_eq!(names(s.files_to_fetch("", 3, 10).await.unwrap()), ["a1", "a2", "a3", "a4"]);
    assert_eq!(names(s.files_to_fetch("a2", 3, 1).await.unwrap()), ["a3"]);
    s.record_file("a1", &FileOutcome::Stored { sha256: "ab".repeat(32), bytes: 1200 }).await.unwrap();
    s.record_file("a2", &FileOutcome::Failed { error: "broke off".into() }).await.unwrap();
    s.record_file("a3", &FileOutcome::TooLarge { bytes: 1200 }).await.unwrap();
    s.record_file("a4", &FileOutcome::Refused { error: "gone".into() }).await.unwrap();
    // A failed file is fetched again until it has used its attempts.
    assert_eq!(names(s.files_to_fetch("", 3, 10).await.unwrap()), ["a2"]);
    s.record_file("a2", &FileOutcome::Failed { error: "again".into() }).await.unwrap();
    s.record_file("a2", &FileOutcome::Failed { error: "and again".into() }).await.unwrap();
    assert!(s.files_to_fetch("", 3, 10).await.unwrap().is_empty());
    let files = s.attachment_files().await.unwrap();
    let a2 = files.iter().find(|f| f.record_name == "a2").unwrap();
    assert_eq!((a2.state, a2.attempts, a2.last_error.as_deref()), (FileState::Failed, 3, Some("and again")));
    let a1 = files.iter().find(|f| f.record_name == "a1").unwrap();
    assert_eq!((a1.state, a1.sha256.clone(), a1.bytes, a1.attempts), (FileState::Stored, Some("ab".repeat(32)), Some(1200), 1));
    let summary = s.file_summary().await.unwrap();
    assert_eq!(summary, FileSummary { with_asset: 4, stored: 1, stored_bytes: 1200, failed: 1, too_large: 1, refused: 1 });
    assert_eq!(summary.pending(), 1);
    // Attachment details round-trip.
    assert_eq!(s.attachments().await.unwrap(), atts);
    // A message part finds its attachment and file by transfer GUID.
    let (a, f) = s.attachment_by_transfer_guid("aguid-a1").await.unwrap().unwrap();
    assert_eq!((a, f.map(|f| f.state)), (atts[1].clone(), Some(FileState::Stored)));
    let (a, f) = s.attachment_by_transfer_guid("aguid-a0").await.unwrap().unwrap();
    assert_eq!((a.record_name.as_str(), f), ("a0", None));
    assert!(s.attachment_by_transfer_guid("nope").await.unwrap().is_none());
}

// ---- record builders ----

fn msg(name: &str, chat: &str, ts_ms: i64, guid: &str) -> MessageRecord {
    MessageRecord {
        record_name: name.into(),
        guid: guid.into(),
        chat_id: chat.into(),
        sender: "tel:+15550001".into(),
        flags: 0,
        ts_ms,
        text: Some(format!("text of {name}")),
        subject: None,
        associated_type: None,
        associated_guid: None,
        service: Some("iMessage".into()),
        content: MessageContent::default(),
    }
}

fn chat(name: &str, chat_id: &str, modified_ms: i64, display: Option<&str>, participants: &[&str]) -> ChatRecord {
    ChatRecord {
        record_name: name.into(),
        chat_id: chat_id.into(),
        group_id: Some(format!("gid-{chat_id}")),
        style: 43,
        display_name: display.map(Into::into),
        participants: participants.iter().map(|p| p.to_string()).collect(),
        service: Some("iMessage".into()),
        modified_ms,
    }
}

fn att(name: &str) -> AttachmentRecord {
    AttachmentRecord {
        record_name: name.into(),
        guid: format!("aguid-{name}"),
        mime_type: Some("image/jpeg".into()),
        filename: Some(format!("{name}.jpg")),
        total_bytes: 1234,
        asset_size: Some(1200),
        details: AttachmentDetails {
            uti: Some("public.jpeg".into()),
            transfer_name: Some(format!("{name}.jpg")),
            is_outgoing: true,
            transfer_state: 5,
            version: 1,
            created_date: -12,
            asset_signature: Some("04ab".into()),
            ..Default::default()
        },
    }
}

fn failed(zone: &str, name: &str, pending: bool) -> FailedRecord {
    FailedRecord { zone: zone.into(), record_name: name.into(), reason: format!("pcs key for {name} missing"), pending }
}

fn del(name: &str) -> RecordChange {
    RecordChange::Deleted { record_name: name.into() }
}

fn stats(records: i64) -> PageStats {
    PageStats { records, skipped: 0, status: 1, done: false, has_token: true }
}

fn page(zone: &str, token: &[u8], changes: Vec<RecordChange>) -> PageCommit {
    PageCommit { zone: zone.into(), token: Some(token.to_vec()), stats: stats(changes.len() as i64), changes, failed: vec![] }
}

fn messages(ms: &[MessageRecord]) -> Vec<RecordChange> {
    ms.iter().cloned().map(RecordChange::Message).collect()
}

// ---- cases ----

async fn page_commit_is_atomic_and_persists_token(db: TestDb) {
    let s = db.open().await;
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap(), None);

    let first = page(MESSAGE_ZONE, b"t1", messages(&[msg("m1", "c", 1, "g1"), msg("m2", "c", 2, "g2")]));
    s.commit_page(&first).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().expect("zone row");
    assert_eq!(z.token.as_deref(), Some(&b"t1"[..]));
    assert_eq!(z.pages, 1);
    assert_eq!(z.last_page, Some(stats(2)));
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 2);

    let mut last = page(MESSAGE_ZONE, b"t2", messages(&[msg("m3", "c", 3, "g3")]));
    last.stats = PageStats { records: 1, skipped: 0, status: 3, done: true, has_token: false };
    s.commit_page(&last).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.token.as_deref(), z.pages, z.last_page), (Some(&b"t2"[..]), 2, Some(last.stats)));

    // A failure late in the transaction (a trigger rejecting the last record) must leave
    // nothing behind: no records of the page, token and page count unchanged.
    db.exec(db.pick(
        "CREATE TRIGGER boom BEFORE INSERT ON attachments WHEN NEW.record_name = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'boom'); END",
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.record_name = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER boom BEFORE INSERT ON attachments FOR EACH ROW EXECUTE FUNCTION boom()",
    ))
    .await;
    let mut doomed = page(MESSAGE_ZONE, b"t3", messages(&[msg("m4", "c", 4, "g4"), msg("m5", "c", 5, "g5")]));
    doomed.changes.push(RecordChange::Attachment(att("boom")));
    doomed.failed.push(failed(MESSAGE_ZONE, "f1", true));
    doomed.stats.skipped = 4;
    let err = s.commit_page(&doomed).await.expect_err("trigger must abort the page");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.token.as_deref(), z.pages, z.skipped), (Some(&b"t2"[..]), 2, 0));
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 3);
    assert_eq!(s.stored_count(ATTACHMENT_ZONE).await.unwrap(), 0);
    assert!(s.failed_records(MESSAGE_ZONE).await.unwrap().is_empty());

    // The store is usable afterwards and the same page then commits.
    db.exec(db.pick("DROP TRIGGER boom", "DROP TRIGGER boom ON attachments")).await;
    s.commit_page(&doomed).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.token.as_deref(), z.pages, z.skipped), (Some(&b"t3"[..]), 3, 4));
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 5);
    assert_eq!(s.failed_records(MESSAGE_ZONE).await.unwrap(), vec![failed(MESSAGE_ZONE, "f1", true)]);

    // A page without a token stores NULL.
    let mut tokenless = page(MESSAGE_ZONE, b"", vec![]);
    tokenless.token = None;
    s.commit_page(&tokenless).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.token, z.pages), (None, 4));
}

async fn upsert_replaces(db: TestDb) {
    let s = db.open().await;
    let mut m = msg("m1", "c", 10, "g1");
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&[m.clone()]))).await.unwrap();
    m.text = Some("edited".into());
    m.ts_ms = 11;
    s.commit_page(&page(MESSAGE_ZONE, b"t2", messages(&[m.clone()]))).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![m.clone()]);

    // The same record twice in one page: the later one wins.
    let mut a = m.clone();
    a.text = Some("first".into());
    let mut b = m.clone();
    b.text = Some("second".into());
    s.commit_page(&page(MESSAGE_ZONE, b"t3", messages(&[a, b.clone()]))).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![b]);
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 1);

    let mut c = chat("r1", "chat1", 5, Some("Old"), &["tel:+1"]);
    s.commit_page(&page(CHAT_ZONE, b"t1", vec![RecordChange::Chat(c.clone())])).await.unwrap();
    c.display_name = Some("New".into());
    c.participants.push("mailto:a@b.c".into());
    s.commit_page(&page(CHAT_ZONE, b"t2", vec![RecordChange::Chat(c.clone())])).await.unwrap();
    assert_eq!(s.chat_records().await.unwrap(), vec![c]);

    let mut x = att("a1");
    s.commit_page(&page(ATTACHMENT_ZONE, b"t1", vec![RecordChange::Attachment(x.clone())])).await.unwrap();
    x.filename = Some("renamed.jpg".into());
    s.commit_page(&page(ATTACHMENT_ZONE, b"t2", vec![RecordChange::Attachment(x.clone())])).await.unwrap();
    assert_eq!(s.attachments().await.unwrap(), vec![x]);
}

async fn deletion_removes_record_and_failed_entry(db: TestDb) {
    let s = db.open().await;
    let mut first = page(
        MESSAGE_ZONE,
        b"t1",
        vec![
            RecordChange::Message(msg("m1", "c", 1, "g1")),
            RecordChange::Message(msg("m2", "c", 2, "g2")),
            RecordChange::Attachment(att("a1")),
            RecordChange::Chat(chat("r1", "c", 1, None, &[])),
        ],
    );
    first.failed = vec![failed(MESSAGE_ZONE, "bad1", true), failed(MESSAGE_ZONE, "bad2", false)];
    s.commit_page(&first).await.unwrap();
    assert_eq!(s.failed_records(MESSAGE_ZONE).await.unwrap().len(), 2);

    s.commit_page(&page(MESSAGE_ZONE, b"t2", vec![del("m1"), del("a1"), del("r1"), del("bad1"), del("never-existed")])).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![msg("m2", "c", 2, "g2")]);
    assert!(s.attachments().await.unwrap().is_empty());
    assert!(s.chat_records().await.unwrap().is_empty());
    assert_eq!(s.failed_records(MESSAGE_ZONE).await.unwrap(), vec![failed(MESSAGE_ZONE, "bad2", false)]);

    // Order within a page matters: delete-then-upsert keeps, upsert-then-delete removes.
    let changes = vec![del("m3"), RecordChange::Message(msg("m3", "c", 3, "g3")), RecordChange::Message(msg("m4", "c", 4, "g4")), del("m4")];
    s.commit_page(&page(MESSAGE_ZONE, b"t3", changes)).await.unwrap();
    let guids: Vec<_> = s.messages_in_chat("c").await.unwrap().into_iter().map(|m| m.guid).collect();
    assert_eq!(guids, vec!["g2", "g3"]);
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().pages, 3);
}

async fn newest_chat_record_wins(db: TestDb) {
    let s = db.open().await;
    let newest = chat("rec-b", "chat1", 2_000, Some("New name"), &["tel:+1", "tel:+2"]);
    let oldest = chat("rec-a", "chat1", 1_000, Some("Old name"), &["tel:+1"]);
    // The newest arrives first: insertion order must not matter.
    s.commit_page(&page(CHAT_ZONE, b"t1", vec![RecordChange::Chat(newest.clone())])).await.unwrap();
    s.commit_page(&page(CHAT_ZONE, b"t2", vec![RecordChange::Chat(oldest.clone())])).await.unwrap();
    let other = chat("rec-0", "chat0", 500, None, &[]);
    s.commit_page(&page(CHAT_ZONE, b"t3", vec![RecordChange::Chat(other.clone())])).await.unwrap();

    let chats = s.chats().await.unwrap();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0].chat_id, "chat0");
    assert_eq!(chats[0].display_name, None);
    assert_eq!(chats[1].chat_id, "chat1");
    assert_eq!(chats[1].display_name.as_deref(), Some("New name"));
    assert_eq!(chats[1].participants, vec!["tel:+1", "tel:+2"]);
    assert_eq!((chats[1].modified_ms, chats[1].style, chats[1].group_id.as_deref()), (2_000, 43, Some("gid-chat1")));
    assert_eq!(s.chat_records().await.unwrap(), vec![other, oldest, newest]);

    // A newer record without a name wins too (its name is None, no fallback to older names).
    let unnamed = chat("rec-c", "chat1", 3_000, None, &["tel:+3"]);
    s.commit_page(&page(CHAT_ZONE, b"t4", vec![RecordChange::Chat(unnamed)])).await.unwrap();
    let chats = s.chats().await.unwrap();
    assert_eq!((chats[1].display_name.as_deref(), chats[1].participants.clone()), (None, vec!["tel:+3".to_string()]));

    // Equal modification times: the greater record_name wins.
    let tie_low = chat("tie-1", "chat2", 7, Some("low"), &[]);
    let tie_high = chat("tie-2", "chat2", 7, Some("high"), &[]);
    s.commit_page(&page(CHAT_ZONE, b"t5", vec![RecordChange::Chat(tie_high), RecordChange::Chat(tie_low)])).await.unwrap();
    let chats = s.chats().await.unwrap();
    assert_eq!(chats[2].display_name.as_deref(), Some("high"));
}

async fn null_fields_round_trip(db: TestDb) {
    let s = db.open().await;
    let bare_msg = MessageRecord {
        record_name: "m-null".into(),
        guid: "g-null".into(),
        chat_id: "c".into(),
        sender: String::new(),
        flags: 0,
        ts_ms: 0,
        text: None,
        subject: None,
        associated_type: None,
        associated_guid: None,
        service: None,
        content: MessageContent::default(),
    };
    let full_msg = MessageRecord {
        record_name: "m-full".into(),
        guid: "g-full".into(),
        chat_id: "c".into(),
        sender: "mailto:x@y.z".into(),
        flags: u64::MAX, // every bit, including the sign bit of the stored i64
        ts_ms: -5,
        text: Some(String::new()),
        subject: Some("subj ✓".into()),
        associated_type: Some(u32::MAX),
        associated_guid: Some("p:0/g-null".into()),
        service: Some("SMS".into()),
        content: MessageContent::default(),
    };
    let bare_chat = ChatRecord {
        record_name: "r-null".into(),
        chat_id: "tel:+1".into(),
        group_id: None,
        style: 45,
        display_name: None,
        participants: vec![],
        service: None,
        modified_ms: 0,
    };
    let bare_att = AttachmentRecord {
        record_name: "a-null".into(),
        guid: "ag".into(),
        mime_type: None,
        filename: None,
        total_bytes: 0,
        asset_size: None,
        details: Default::default(),
    };
    let big_att = AttachmentRecord { asset_size: Some(i64::MAX as u64), ..att("a-big") };
    s.commit_page(&PageCommit {
        zone: MESSAGE_ZONE.into(),
        token: None,
        stats: PageStats::default(),
        changes: vec![
            RecordChange::Message(bare_msg.clone()),
            RecordChange::Message(full_msg.clone()),
            RecordChange::Chat(bare_chat.clone()),
            RecordChange::Attachment(bare_att.clone()),
            RecordChange::Attachment(big_att.clone()),
        ],
        failed: vec![],
    })
    .await
    .unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![full_msg, bare_msg]);
    assert_eq!(s.chat_records().await.unwrap(), vec![bare_chat]);
    assert_eq!(s.attachments().await.unwrap(), vec![big_att, bare_att]);
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.token, z.last_page, z.stop_reason, z.last_error, z.server_count), (None, Some(PageStats::default()), None, None, None));

    // Values that cannot be stored are refused, not truncated.
    let huge = AttachmentRecord { asset_size: Some(u64::MAX), ..att("a-huge") };
    let err = s.commit_page(&page(ATTACHMENT_ZONE, b"t", vec![RecordChange::Attachment(huge)])).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

async fn failed_records_pending_to_final(db: TestDb) {
    let s = db.open().await;
    let mut p = page(MESSAGE_ZONE, b"t1", messages(&[msg("ok", "c", 1, "g-ok")]));
    p.failed = vec![failed(MESSAGE_ZONE, "f1", true), failed(MESSAGE_ZONE, "f2", true), failed(MESSAGE_ZONE, "f3", true)];
    s.commit_page(&p).await.unwrap();
    let mut other = page(ATTACHMENT_ZONE, b"a1", vec![]);
    other.failed = vec![failed(ATTACHMENT_ZONE, "f1", true)];
    s.commit_page(&other).await.unwrap();
    assert_eq!(s.failed_records(MESSAGE_ZONE).await.unwrap(), p.failed);

    // Re-fetch after a key refresh: f1 decrypts, f2 is final, f3 still pending.
    let recovered = messages(&[msg("f1", "c", 2, "g-f1")]);
    let still = vec![FailedRecord { reason: "no key".into(), ..failed(MESSAGE_ZONE, "f2", false) }];
    s.resolve_failed(MESSAGE_ZONE, &recovered, &still).await.unwrap();
    assert_eq!(s.failed_records(MESSAGE_ZONE).await.unwrap(), vec![still[0].clone(), failed(MESSAGE_ZONE, "f3", true)]);
    let guids: Vec<_> = s.messages_in_chat("c").await.unwrap().into_iter().map(|m| m.guid).collect();
    assert_eq!(guids, vec!["g-ok", "g-f1"]);
    // Other zones' entries are untouched, and resolving does not count as a page.
    assert_eq!(s.failed_records(ATTACHMENT_ZONE).await.unwrap(), other.failed);
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().pages, 1);

    // A record that later syncs fine is no longer failed.
    s.commit_page(&page(MESSAGE_ZONE, b"t2", messages(&[msg("f3", "c", 3, "g-f3")]))).await.unwrap();
    assert_eq!(s.failed_records(MESSAGE_ZONE).await.unwrap(), still);
}

async fn sync_version_round_trip(db: TestDb) {
    let s = db.open().await;
    assert_eq!(s.sync_version().await.unwrap(), None);
    s.set_sync_version(5).await.unwrap();
    assert_eq!(s.sync_version().await.unwrap(), Some(5));
    s.set_sync_version(-7).await.unwrap();
    assert_eq!(s.sync_version().await.unwrap(), Some(-7));
}

async fn reopen_is_idempotent_and_keeps_data(db: TestDb) {
    let s = db.open().await;
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&[msg("m1", "c", 1, "g1")]))).await.unwrap();
    s.set_sync_version(3).await.unwrap();
    let migrations = db.scalar("SELECT COUNT(*) FROM schema_migrations").await;
    assert!(migrations >= 1);
    drop(s);
    for _ in 0..2 {
        let s = db.open().await;
        assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![msg("m1", "c", 1, "g1")]);
        assert_eq!(s.sync_version().await.unwrap(), Some(3));
        assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().token.as_deref(), Some(&b"t1"[..]));
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM schema_migrations").await, migrations);
    assert_eq!(db.scalar("SELECT COUNT(DISTINCT version) FROM schema_migrations").await, migrations);
    // Two stores opened at once on the same database agree on the schema too.
    let (a, b) = tokio::join!(store::open(&db.uri), store::open(&db.uri));
    a.unwrap();
    b.unwrap();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM schema_migrations").await, migrations);
}

async fn corrupt_values_are_errors(db: TestDb) {
    let s = db.open().await;
    s.commit_page(&page(CHAT_ZONE, b"t", vec![RecordChange::Chat(chat("r1", "c", 1, Some("n"), &["tel:+1"]))])).await.unwrap();
    s.set_stop(MESSAGE_ZONE, StopReason::ApiDone, None).await.unwrap();
    db.exec("UPDATE chat_records SET participants = 'not json'").await;
    let err = s.chats().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { what: "chat_records.participants", .. }), "{err:?}");
    assert!(matches!(s.chat_records().await.unwrap_err(), StoreError::Corrupt { .. }));
    db.exec("UPDATE chat_records SET participants = '[1, 2]'").await;
    assert!(matches!(s.chats().await.unwrap_err(), StoreError::Corrupt { .. }));

    db.exec("UPDATE zones SET stop_reason = 'gave_up' WHERE zone = 'messageManateeZone'").await;
    let err = s.zone_state(MESSAGE_ZONE).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { what: "zones.stop_reason", .. }), "{err:?}");
    assert!(matches!(s.zone_states().await.unwrap_err(), StoreError::Corrupt { .. }));

    db.exec("INSERT INTO meta (key, value) VALUES ('sync_version', 'seven')").await;
    assert!(matches!(s.sync_version().await.unwrap_err(), StoreError::Corrupt { .. }));

    db.exec("UPDATE zones SET stop_reason = NULL, last_page_records = 5, last_page_status = NULL").await;
    assert!(matches!(s.zone_state(MESSAGE_ZONE).await.unwrap_err(), StoreError::Corrupt { .. }));

    s.commit_page(&page(MESSAGE_ZONE, b"t", messages(&[msg("m1", "c", 1, "g1")]))).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap().len(), 1); // the row is in `messages` now
    db.exec("UPDATE messages SET associated_type = -1").await;
    assert!(matches!(s.messages_in_chat("c").await.unwrap_err(), StoreError::Corrupt { .. }));
}

async fn messages_ordered_by_ts_then_guid(db: TestDb) {
    let s = db.open().await;
    let scrambled = [
        msg("r1", "chat", 300, "b"),
        msg("r2", "chat", 100, "z"),
        msg("r3", "chat", 200, "c"),
        msg("r4", "chat", 200, "B"), // byte order: "B" < "a" < "c"
        msg("r5", "other", 150, "x"),
        msg("r6", "chat", 200, "a"),
    ];
    // Spread over two pages, newest first.
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&scrambled[..3]))).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t2", messages(&scrambled[3..]))).await.unwrap();
    let order: Vec<_> = s.messages_in_chat("chat").await.unwrap().into_iter().map(|m| (m.ts_ms, m.guid)).collect();
    let expected: Vec<(i64, String)> = vec![(100, "z".into()), (200, "B".into()), (200, "a".into()), (200, "c".into()), (300, "b".into())];
    assert_eq!(order, expected);
    assert!(s.messages_in_chat("nobody").await.unwrap().is_empty());
    let mut guids = s.message_guids().await.unwrap();
    guids.sort();
    assert_eq!(guids, vec!["B", "a", "b", "c", "x", "z"]);
}

async fn stored_count_by_zone(db: TestDb) {
    let s = db.open().await;
    for zone in [CHAT_ZONE, MESSAGE_ZONE, ATTACHMENT_ZONE, "otherZone"] {
        assert_eq!(s.stored_count(zone).await.unwrap(), 0);
    }
    // Counted by record type, whatever zone the page was committed under.
    s.commit_page(&page(
        MESSAGE_ZONE,
        b"t",
        vec![
            RecordChange::Chat(chat("r1", "c", 1, None, &[])),
            RecordChange::Message(msg("m1", "c", 1, "g1")),
            RecordChange::Message(msg("m2", "c", 2, "g2")),
            RecordChange::Attachment(att("a1")),
            RecordChange::Attachment(att("a2")),
            RecordChange::Attachment(att("a3")),
        ],
    ))
    .await
    .unwrap();
    let counts = [
        s.stored_count(CHAT_ZONE).await.unwrap(),
        s.stored_count(MESSAGE_ZONE).await.unwrap(),
        s.stored_count(ATTACHMENT_ZONE).await.unwrap(),
        s.stored_count("otherZone").await.unwrap(),
    ];
    assert_eq!(counts, [1, 2, 3, 0]);
}

#[tokio::test]
async fn sqlite_memory_and_missing_directories() {
    let s = store::open("sqlite::memory:").await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t", messages(&[msg("m1", "c", 1, "g1")]))).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![msg("m1", "c", 1, "g1")]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/data/dir/store.db");
    let s = store::open(&format!("sqlite:{}", path.display())).await.unwrap();
    s.set_sync_version(1).await.unwrap();
    assert!(path.is_file());
}

#[tokio::test]
async fn open_rejects_unknown_uri() {
    for uri in ["mysql://x/y", "/tmp/x.db", ""] {
        assert!(matches!(store::open(uri).await, Err(StoreError::UnsupportedUri(_))), "{uri}");
    }
}

#[tokio::test]
async fn schema_state_of_a_missing_sqlite_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let err = store::schema_state(&format!("sqlite:{}", path.display())).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(!path.exists(), "reading the schema state must not create the file");
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::sqlite().await;
    drop(db.open().await);
    let path = db.uri.strip_prefix("sqlite:").unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
}
