//! The reader against Apple's own DDL: the real macOS database of `shared/fixtures/chatdb/`
//! (imessage-exporter's test data, GPL-3.0-or-later), and databases built in this test from that
//! DDL and from an older generation's, with rows carrying the real blobs of
//! `shared/fixtures/apple/`. Every expected value comes from SQL run here on the same file, or
//! from the fixtures' README, never from the reader.

use std::path::{Path, PathBuf};

use chatdb::ChatDb;
use imessage::records::{ContentPart, MessageRecord, FLAG_FROM_ME, STYLE_DIRECT, STYLE_GROUP};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures").join(name)
}

fn blob(name: &str) -> Vec<u8> {
    std::fs::read(shared(&format!("apple/{name}"))).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

async fn writer(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path).create_if_missing(true)).await.unwrap()
}

/// Apple's DDL (tables only: the triggers call functions only Messages defines).
fn apple_tables() -> String {
    let ddl = std::fs::read_to_string(shared("chatdb/macos-messages.schema.sql")).unwrap();
    ddl.lines().filter(|l| l.starts_with("CREATE TABLE") && !l.contains("sqlite_sequence")).collect::<Vec<_>>().join("\n")
}

async fn all_messages(db: &ChatDb, own: &str) -> (Vec<MessageRecord>, Vec<chatdb::Skipped>) {
    let chats = db.chats().await.unwrap();
    let (mut records, mut skipped, mut after) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = db.messages_after(&chats, after, 2, own).await.unwrap();
        if page.rows == 0 {
            return (records, skipped);
        }
        after = page.last_rowid;
        records.extend(page.records);
        skipped.extend(page.skipped);
    }
}

#[tokio::test]
async fn the_real_macos_database_is_recognised() {
    let path = shared("chatdb/macos-messages.db");
    let db = ChatDb::open(&path, None).await.expect("Apple's own database opens");
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path).read_only(true)).await.unwrap();
    let columns: i64 = sqlx::query("SELECT COUNT(*) FROM pragma_table_info('message')").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(db.schema().message_columns() as i64, columns);
    let counts = db.counts().await.unwrap();
    let messages: i64 = sqlx::query("SELECT COUNT(*) FROM message").fetch_one(&mut conn).await.unwrap().get(0);
    let attachments: i64 = sqlx::query("SELECT COUNT(*) FROM attachment").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!((counts.messages, counts.attachments), (messages, attachments));
    // Its messages belong to no chat: each is reported, none is lost without a word.
    let (records, skipped) = all_messages(&db, "tel:+15550000001").await;
    let in_chats: i64 = sqlx::query("SELECT COUNT(DISTINCT message_id) FROM chat_message_join").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(records.len() as i64, in_chats);
    assert_eq!((records.len() + skipped.len()) as i64, messages);
    assert!(skipped.iter().all(|s| s.reason.contains("in no chat")), "{skipped:?}");
    let (rows, _) = db.attachments_after(0, 100).await.unwrap();
    let stickers: i64 = sqlx::query("SELECT COUNT(*) FROM attachment WHERE is_sticker = 1").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(rows.iter().filter(|a| a.record.details.is_sticker).count() as i64, stickers);
    let first_path: String = sqlx::query("SELECT filename FROM attachment ORDER BY ROWID LIMIT 1").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(rows[0].record.details.source_path.as_deref(), Some(first_path.as_str()));
}

/// A database of today's macOS, built from Apple's DDL.
async fn build_macos(path: &Path) {
    let mut c = writer(path).await;
    sqlx::raw_sql(&apple_tables()).execute(&mut c).await.unwrap();
    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut c).await.unwrap();
    let q = |sql: &'static str| sqlx::query(sql);
    // Handles: one person by iMessage and by SMS, two more for a group.
    q("INSERT INTO handle (ROWID, id, country, service, uncanonicalized_id) VALUES (1, '+15551230001', 'us', 'iMessage', NULL), (2, '+15551230001', 'us', 'SMS', '(555) 123-0001'), (3, 'Kim@Example.com', 'us', 'iMessage', NULL), (4, '+15551230004', 'us', 'iMessage', NULL)").execute(&mut c).await.unwrap();
    q("INSERT INTO chat (ROWID, guid, style, chat_identifier, service_name, display_name, account_login) VALUES \
       (1, 'iMessage;-;+15551230001', 45, '+15551230001', 'iMessage', '', 'E:me@icloud.example'), \
       (2, 'SMS;-;+15551230001', 45, '+15551230001', 'SMS', '', 'P:+15550000001'), \
       (3, 'iMessage;+;chat900000000000000001', 43, 'chat900000000000000001', 'iMessage', 'Climbing crew', 'E:me@icloud.example')")
    .execute(&mut c)
    .await
    .unwrap();
    q("INSERT INTO chat_handle_join (chat_id, handle_id) VALUES (1, 1), (2, 2), (3, 3), (3, 4)").execute(&mut c).await.unwrap();
    let ns = |minute: i64| 700_000_000_000_000_000i64 + minute * 60_000_000_000;
    let body_text_only = blob("attributed-body/AttributedBodyTextOnly");
    let multipart = blob("attributed-body/MultiPart");
    let url_body = blob("attributed-body/URL");
    let edited = blob("summary-info/Edited.plist");
    let deleted = blob("summary-info/Deleted.plist");
    let payload = blob("payload/URL.plist");
    // (rowid, guid, chat, handle, from_me, text, body, summary, payload, balloon, date, assoc guid, assoc type, reply, service, retracted)
    type Row<'a> = (
        i64,
        &'a str,
        i64,
        i64,
        i64,
        Option<&'a str>,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Option<&'a str>,
        i64,
        Option<&'a str>,
        i64,
        Option<&'a str>,
        &'a str,
        i64,
    );
    let rows: Vec<Row> = vec![
        (1, "G-TEXT-ONLY", 1, 1, 0, None, Some(&body_text_only), None, None, None, ns(1), None, 0, None, "iMessage", 0),
        (2, "G-SMS", 2, 2, 0, Some("by sms"), None, None, None, None, ns(2), None, 0, None, "SMS", 0),
        (3, "G-MULTI", 3, 3, 0, None, Some(&multipart), None, None, None, ns(3), None, 0, None, "iMessage", 0),
        (4, "G-LINK", 3, 0, 1, None, Some(&url_body), None, Some(&payload), Some("com.apple.messages.URLBalloonProvider"), ns(4), None, 0, None, "iMessage", 0),
        (5, "G-EDITED", 3, 4, 0, Some("Edited message"), None, Some(&edited), None, None, ns(5), None, 0, None, "iMessage", 0),
        (6, "G-UNSENT", 3, 0, 1, None, None, Some(&deleted), None, None, ns(6), None, 0, None, "iMessage", ns(7)),
        (7, "G-TAPBACK", 3, 4, 0, Some("Loved a message"), None, None, None, None, ns(8), Some("p:1/G-MULTI"), 2000, None, "iMessage", 0),
        (8, "G-REPLY", 1, 0, 1, Some("answer"), None, None, None, None, ns(9), None, 0, Some("G-TEXT-ONLY"), "iMessage", 0),
    ];
    for r in &rows {
        sqlx::query(
            "INSERT INTO message (ROWID, guid, handle_id, is_from_me, text, attributedBody, message_summary_info, payload_data, balloon_bundle_id, date, \
             associated_message_guid, associated_message_type, thread_originator_guid, service, date_retracted, destination_caller_id, account) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.0)
        .bind(r.1)
        .bind(r.3)
        .bind(r.4)
        .bind(r.5)
        .bind(r.6)
        .bind(r.7)
        .bind(r.8)
        .bind(r.9)
        .bind(r.10)
        .bind(r.11)
        .bind(r.12)
        .bind(r.13)
        .bind(r.14)
        .bind(r.15)
        .bind((r.4 == 1).then_some("me@icloud.example"))
        .bind((r.4 == 1).then_some("E:me@icloud.example"))
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query("INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (?, ?, ?)")
            .bind(r.2)
            .bind(r.0)
            .bind(r.10)
            .execute(&mut c)
            .await
            .unwrap();
    }
    // A group rename, as Messages records it.
    q("INSERT INTO message (ROWID, guid, handle_id, item_type, group_title, date) VALUES (9, 'G-RENAME', 3, 2, 'Climbing crew', 700000000600000000)")
        .execute(&mut c)
        .await
        .unwrap();
    q("INSERT INTO chat_message_join (chat_id, message_id) VALUES (3, 9)").execute(&mut c).await.unwrap();
    // MultiPart names three attachments (`at_0_…`, `at_2_…`, `at_4_…` with one suffix).
    for (i, part) in [0, 2, 4].iter().enumerate() {
        sqlx::query(
            "INSERT INTO attachment (ROWID, guid, original_guid, filename, mime_type, transfer_name, total_bytes) VALUES (?, ?, ?, ?, 'image/jpeg', ?, 3)",
        )
        .bind(i as i64 + 1)
        .bind(format!("at_{part}_F0668F79-20C2-49C9-A87F-1B007ABB0CED"))
        .bind(format!("orig-{part}"))
        .bind(format!("~/Library/Messages/Attachments/0{i}/00/at_{part}/IMG_{i}.jpeg"))
        .bind(format!("IMG_{i}.jpeg"))
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query("INSERT INTO message_attachment_join (message_id, attachment_id) VALUES (3, ?)").bind(i as i64 + 1).execute(&mut c).await.unwrap();
    }
    // Checkpoint now: the reader's check below compares the file's bytes.
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_macos_database_reads_as_cloudkit_would_have_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    build_macos(&path).await;
    let bytes_before = std::fs::read(&path).unwrap();
    let db = ChatDb::open(&path, None).await.unwrap();

    // The owner's handles come from the account fields.
    let own = db.own_handles().await.unwrap();
    assert_eq!(own.first().map(String::as_str), Some("mailto:me@icloud.example"), "{own:?}");
    assert!(own.contains(&"tel:+15550000001".to_string()), "{own:?}");

    // One person's iMessage and SMS chats are one conversation; the group keeps its name.
    let chats = db.chats().await.unwrap();
    let ids: std::collections::BTreeSet<&str> = chats.records.iter().map(|c| c.chat_id.as_str()).collect();
    assert_eq!(ids, ["chat900000000000000001", "tel:+15551230001"].into_iter().collect());
    let group = chats.records.iter().find(|c| c.style == STYLE_GROUP).unwrap();
    assert_eq!(group.display_name.as_deref(), Some("Climbing crew"));
    assert_eq!(group.participants, ["mailto:kim@example.com", "tel:+15551230004"]);
    assert!(chats.records.iter().filter(|c| c.style == STYLE_DIRECT).all(|c| c.participants == ["tel:+15551230001"]));

    let (records, skipped) = all_messages(&db, &own[0]).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let by_guid = |g: &str| records.iter().find(|m| m.guid == g).unwrap_or_else(|| panic!("{g} read"));

    // Text only in attributedBody (macOS 13+): the fixture README's text.
    let m = by_guid("G-TEXT-ONLY");
    assert_eq!(m.text.as_deref(), Some("Noter test"));
    assert_eq!((m.chat_id.as_str(), m.sender.as_str()), ("tel:+15551230001", "tel:+15551230001"));
    // The SMS thread's message lands in the same conversation, keeping its service.
    let sms = by_guid("G-SMS");
    assert_eq!((sms.chat_id.as_str(), sms.service.as_deref()), ("tel:+15551230001", Some("SMS")));
    // Parts and attachments in U+FFFC order.
    let multi = by_guid("G-MULTI");
    assert_eq!(multi.text.as_deref(), Some("\u{FFFC}test 1\u{FFFC}test 2 \u{FFFC}test 3"));
    let attachments: Vec<&str> = multi
        .content
        .parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Attachment { guid, .. } => guid.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(
        attachments,
        ["at_0_F0668F79-20C2-49C9-A87F-1B007ABB0CED", "at_2_F0668F79-20C2-49C9-A87F-1B007ABB0CED", "at_4_F0668F79-20C2-49C9-A87F-1B007ABB0CED"]
    );
    assert_eq!(multi.sender, "mailto:kim@example.com");
    // A link preview, sent by the owner.
    let link = by_guid("G-LINK");
    assert_eq!(link.flags & FLAG_FROM_ME, FLAG_FROM_ME);
    assert_eq!(link.sender, "mailto:me@icloud.example");
    let preview = link.content.link_preview.as_ref().expect("payload_data decoded");
    assert_eq!(preview.title.as_deref(), Some("Christopher Sardegna"));
    // Edits: four versions; unsent: no part remains.
    assert_eq!(by_guid("G-EDITED").content.edits.first().map(|e| e.versions.len()), Some(4));
    assert!(by_guid("G-UNSENT").content.unsent);
    // A tapback on part 1, and a reply.
    let tapback = by_guid("G-TAPBACK");
    assert_eq!((tapback.associated_type, tapback.associated_guid.as_deref()), (Some(2000), Some("p:1/G-MULTI")));
    assert_eq!(by_guid("G-REPLY").content.reply_to.as_deref(), Some("G-TEXT-ONLY"));
    // A rename is a system record, never a timeline message.
    assert!(by_guid("G-RENAME").is_system());
    // Dates: ns since 2001, as the SQL has them.
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path).read_only(true)).await.unwrap();
    let date: i64 = sqlx::query("SELECT date FROM message WHERE guid = 'G-SMS'").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(sms.ts_ms, date / 1_000_000 + 978_307_200_000);
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM message").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(records.len() as i64, total);

    // Attachments: each with its path, resolved in the database's folder.
    let (rows, _) = db.attachments_after(0, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    let resolved = chatdb::resolve_attachment_path(db.folder(), rows[0].record.details.source_path.as_deref().unwrap()).unwrap();
    assert_eq!(resolved, dir.path().join("Attachments/00/00/at_0/IMG_0.jpeg"));
    drop(conn);
    db.close().await;
    // Read-only: the database file is byte for byte what it was.
    assert_eq!(std::fs::read(&path).unwrap(), bytes_before);
}

#[tokio::test]
async fn a_pre_high_sierra_database_has_seconds_and_no_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.db");
    let mut c = writer(&path).await;
    // The columns of an old generation: no attributedBody, replies, edits or emoji.
    sqlx::raw_sql(
        "CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT, handle_id INTEGER DEFAULT 0, service TEXT, date INTEGER, is_from_me INTEGER DEFAULT 0, cache_has_attachments INTEGER DEFAULT 0);
         CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER, chat_identifier TEXT, service_name TEXT, display_name TEXT);
         CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT, service TEXT NOT NULL);
         CREATE TABLE chat_handle_join (chat_id INTEGER, handle_id INTEGER);
         CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER);
         CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, filename TEXT, mime_type TEXT, transfer_name TEXT, total_bytes INTEGER);
         CREATE TABLE message_attachment_join (message_id INTEGER, attachment_id INTEGER);
         INSERT INTO handle VALUES (1, '020 7946 0018', 'gb', 'SMS');
         INSERT INTO chat VALUES (1, 'SMS;-;020 7946 0018', 45, '020 7946 0018', 'SMS', NULL);
         INSERT INTO chat_handle_join VALUES (1, 1);
         INSERT INTO message VALUES (1, 'OLD-1', 'hello from 2012', 1, 'SMS', 370000000, 0, 0);
         INSERT INTO message VALUES (2, 'OLD-2', char(65532), 0, 'SMS', 370000060, 1, 1);
         INSERT INTO chat_message_join VALUES (1, 1), (1, 2);
         INSERT INTO attachment VALUES (1, 'OLD-ATT', '/var/mobile/Library/SMS/Attachments/aa/00/IMG_1.jpg', 'image/jpeg', 'IMG_1.jpg', 10);
         INSERT INTO message_attachment_join VALUES (2, 1);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let db = ChatDb::open(&path, Some("US")).await.unwrap();
    assert!(db.schema().describe().contains("plain text only"), "{}", db.schema().describe());
    let (records, skipped) = all_messages(&db, "tel:+447700900001").await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let date: i64 = sqlx::query("SELECT date FROM message WHERE guid = 'OLD-1'").fetch_one(&mut c).await.unwrap().get(0);
    // Seconds since 2001, and the handle's own country (gb) wins over the default region.
    assert_eq!(records[0].ts_ms, (date + 978_307_200) * 1000);
    assert_eq!(records[0].chat_id, "tel:+442079460018");
    assert_eq!(records[0].sender, "tel:+442079460018");
    // The owner's message with an attachment gets it from the join.
    assert_eq!(records[1].sender, "tel:+447700900001");
    assert_eq!(records[1].content.parts, [ContentPart::Attachment { part: Some(0), guid: Some("OLD-ATT".into()) }]);
}

#[tokio::test]
async fn what_is_not_a_messages_database_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let mut c = writer(&path).await;
    sqlx::raw_sql("CREATE TABLE notes (id INTEGER)").execute(&mut c).await.unwrap();
    let err = ChatDb::open(&path, None).await.err().expect("refused");
    assert!(err.to_string().contains("not a Messages database"), "{err}");
    let missing = ChatDb::open(&dir.path().join("nope.db"), None).await.err().expect("refused");
    assert!(missing.to_string().contains("nope.db"), "{missing}");
}

/// A page cut into pieces (to be decoded on several threads) decodes, piece by piece and
/// appended in order, to what the whole page decodes to, and a message in two chats is still
/// read once, never split between two pieces.
#[tokio::test]
async fn a_page_cut_into_pieces_decodes_as_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    build_macos(&path).await;
    // G-MULTI (ROWID 3) is in the DM as well as in the group: two rows for one message.
    let mut c = writer(&path).await;
    sqlx::query("INSERT INTO chat_message_join (chat_id, message_id) VALUES (1, 3)").execute(&mut c).await.unwrap();
    c.close().await.unwrap();
    let db = ChatDb::open(&path, None).await.unwrap();
    let own = db.own_handles().await.unwrap();
    let chats = db.chats().await.unwrap();
    let decoder = db.message_decoder(&own[0]);
    let total: usize = db.message_rows_after(0, 100).await.unwrap().len();
    assert_eq!(total, 10, "nine messages, one of them twice");
    let whole = decoder.decode(&chats, db.message_rows_after(0, 100).await.unwrap());
    assert_eq!((whole.records.len(), whole.rows, whole.last_rowid), (9, 9, 9));
    assert!(whole.skipped.is_empty(), "{:?}", whole.skipped);
    for n in 1..=12 {
        let pieces = db.message_rows_after(0, 100).await.unwrap().split(n);
        assert!(pieces.len() <= n && !pieces.is_empty(), "{n}: {} pieces", pieces.len());
        assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), total, "{n}: every row in one piece");
        let mut page = chatdb::MessagePage::default();
        for piece in pieces {
            page.append(decoder.decode(&chats, piece));
        }
        assert_eq!(page.records, whole.records, "{n} pieces");
        assert_eq!((page.rows, page.last_rowid), (whole.rows, whole.last_rowid), "{n} pieces");
        // G-MULTI keeps its three attachments whichever piece it is in.
        let multi = page.records.iter().find(|m| m.guid == "G-MULTI").unwrap();
        assert_eq!(multi.content.parts.iter().filter(|p| matches!(p, ContentPart::Attachment { .. })).count(), 3, "{n} pieces");
    }
    db.close().await;
}
