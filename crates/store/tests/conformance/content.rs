//! A message's decoded content (`MessageRecord::content`): stored as it is (NULL when empty),
//! replaced by a re-commit, and given back unchanged by every query that returns messages,
//! whichever way SQLite's ingest log reached `messages` (adopted by rename, or folded).

use imessage::records::{BlobFailure, ContentPart, LinkPreviewRecord, PartHistory, TextVersion};

use super::*;

/// A message using every field of `MessageContent` but `unsent`, with `tag` in its values so two
/// versions of one record differ everywhere.
fn rich(name: &str, chat: &str, ts_ms: i64, tag: &str) -> MessageRecord {
    let mut m = msg(name, chat, ts_ms, &format!("g-{name}"));
    m.text = Some(format!("see \u{fffc}\u{fffc} {tag}"));
    m.content = MessageContent {
        parts: vec![
            ContentPart::Text { part: Some(0), text: "see ".into(), mention: Some("tel:+15550002".into()), link: None },
            ContentPart::Attachment { part: Some(1), guid: Some(format!("at_0_{name}_{tag}")) },
            ContentPart::Attachment { part: None, guid: None },
            ContentPart::Text {
                part: Some(3), text: format!("\"{tag}\" é ✓\n\u{0}"), mention: None, link: Some("https://example.org/%C3%A9?a=1&b=2".into())
            },
        ],
        edits: vec![
            PartHistory {
                part: 3,
                versions: vec![
                    TextVersion { apple_ns: i64::MIN, text: "first".into() },
                    TextVersion { apple_ns: i64::MAX, text: format!("\"{tag}\" é ✓\n\u{0}") },
                ],
            },
            PartHistory { part: 0, versions: vec![TextVersion { apple_ns: 0, text: String::new() }] },
        ],
        unsent_parts: vec![2, 7],
        associated_emoji: Some("🫶".into()),
        reply_to: Some(format!("g-reply-{tag}")),
        unsent: false,
        link_preview: Some(LinkPreviewRecord {
            url: Some("https://example.org/é".into()),
            original_url: Some("http://example.org".into()),
            title: Some(format!("Title {tag}")),
            summary: None,
            icon_url: Some("https://example.org/favicon.ico".into()),
            image_urls: vec!["https://example.org/1.jpg".into(), "https://example.org/2.jpg".into()],
        }),
        balloon_bundle_id: Some("com.apple.messages.URLBalloonProvider".into()),
        effect: Some(format!("com.apple.MobileSMS.expressivesend.{tag}")),
        read_ms: Some(1_700_000_000_123),
        delivered_ms: Some(-1),
        undecodable: vec![BlobFailure { field: "messageSummaryInfo".into(), reason: format!("plist: truncated ({tag})") }],
    };
    m
}

/// A message the sender unsent as a whole: content whose only field is `unsent`.
fn unsent(name: &str, chat: &str, ts_ms: i64) -> MessageRecord {
    MessageRecord { text: None, content: MessageContent { unsent: true, ..MessageContent::default() }, ..msg(name, chat, ts_ms, &format!("g-{name}")) }
}

/// Rows of `messages` holding a content value (call after a read, which folds SQLite's log).
async fn stored_contents(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM messages WHERE content IS NOT NULL").await
}

async fn assert_reads(s: &dyn Store, chat: &str, expected: &[MessageRecord]) {
    assert_eq!(s.messages_in_chat(chat).await.unwrap(), expected, "messages_in_chat({chat})");
    assert_eq!(s.undelivered(chat).await.unwrap(), expected, "undelivered({chat})");
}

/// Rich, unsent-only and empty contents round-trip through `commit_page`, `resolve_failed` and a
/// reopen; an empty content is stored as NULL.
pub(crate) async fn rich_content_round_trips(db: TestDb) {
    let s = db.open().await;
    let mut all = vec![rich("m1", "c", 1, "impact"), msg("m2", "c", 2, "g-m2"), unsent("m3", "c", 3)];
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&all))).await.unwrap();
    assert_reads(&*s, "c", &all).await;
    assert_eq!(stored_contents(&db).await, 2, "the empty content is NULL");

    let recovered = rich("m4", "c", 4, "loud");
    s.resolve_failed(MESSAGE_ZONE, &messages(std::slice::from_ref(&recovered)), &[]).await.unwrap();
    all.push(recovered);
    assert_reads(&*s, "c", &all).await;

    drop(s);
    let s = db.open().await;
    assert_reads(&*s, "c", &all).await;
    s.begin_delivery("g-m1", "c", "imb-1").await.unwrap();
    assert_eq!(s.undelivered("c").await.unwrap(), all[1..]);
    assert_eq!(stored_contents(&db).await, 3);
}

/// The initial sync (every name once, ending with the zone's last page: SQLite adopts its ingest
/// log as `messages`), then a later pass folded into that table: contents survive both, and on
/// SQLite the adopted table and the new log keep one row shape, `content` included.
pub(crate) async fn rich_content_survives_the_initial_sync_fold(db: TestDb) {
    let s = db.open().await;
    let first = [rich("r1", "chat", 1, "a"), msg("r2", "chat", 2, "g-r2")];
    let second = [unsent("r3", "chat", 3), rich("r4", "chat", 4, "b"), msg("r5", "chat", 5, "g-r5")];
    let mut changes = messages(&first);
    changes.push(del("never-seen")); // takes a log sequence number: tells adoption from a copy
    s.commit_page(&page(MESSAGE_ZONE, b"t1", changes)).await.unwrap();
    let mut last = page(MESSAGE_ZONE, b"t2", messages(&second));
    last.stats.done = true;
    s.commit_page(&last).await.unwrap();
    if db.kind == Kind::Sqlite {
        assert_eq!(db.scalar("SELECT COUNT(*) FROM message_log").await, 0, "the last page folds the log");
        assert_eq!(db.scalar("SELECT MAX(seq) FROM messages").await, 6, "adopted, not copied");
        for (a, b) in [("messages", "message_log"), ("message_log", "messages")] {
            let cols = |t: &str| format!("SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}')");
            let differ = format!("SELECT COUNT(*) FROM ({} EXCEPT {})", cols(a), cols(b));
            assert_eq!(db.scalar(&differ).await, 0, "columns of {a} missing from {b}");
        }
        let content_cols = "SELECT COUNT(*) FROM pragma_table_info('message_log') WHERE name = 'content'";
        assert_eq!(db.scalar(content_cols).await, 1);
    }
    let mut expected: Vec<MessageRecord> = first.iter().chain(&second).cloned().collect();
    assert_reads(&*s, "chat", &expected).await;
    assert_eq!(stored_contents(&db).await, 3);

    // A later pass: rich content for a plain message, new content for a rich one, a new record.
    let changes = [rich("r2", "chat", 2, "c"), rich("r4", "chat", 4, "d"), rich("r6", "chat", 6, "e")];
    let mut later = page(MESSAGE_ZONE, b"t3", messages(&changes));
    later.stats.done = true;
    s.commit_page(&later).await.unwrap();
    if db.kind == Kind::Sqlite {
        assert_eq!(db.scalar("SELECT COUNT(*) FROM message_log").await, 0);
    }
    expected[1] = changes[0].clone();
    expected[3] = changes[1].clone();
    expected.push(changes[2].clone());
    assert_reads(&*s, "chat", &expected).await;
    drop(s);
    assert_reads(&*db.open().await, "chat", &expected).await;
}

/// A re-commit of a record replaces its content: within a page and across pages, folded into an
/// empty table (a name logged twice) and into a full one, to other content and back to empty
/// (stored as NULL again), and after a deletion.
pub(crate) async fn recommit_replaces_content(db: TestDb) {
    let s = db.open().await;
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&[rich("m1", "c", 1, "a"), msg("m2", "c", 2, "g-m2")]))).await.unwrap();
    let mut second = page(MESSAGE_ZONE, b"t2", messages(&[rich("m1", "c", 1, "b"), rich("m2", "c", 2, "c")]));
    second.stats.done = true;
    s.commit_page(&second).await.unwrap();
    assert_reads(&*s, "c", &[rich("m1", "c", 1, "b"), rich("m2", "c", 2, "c")]).await;

    // Back to empty, with no read in between on SQLite (both versions wait in its log).
    s.commit_page(&page(MESSAGE_ZONE, b"t3", messages(&[msg("m1", "c", 1, "g-m1")]))).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t4", messages(&[rich("m2", "c", 2, "d"), unsent("m2", "c", 2)]))).await.unwrap();
    assert_reads(&*s, "c", &[msg("m1", "c", 1, "g-m1"), unsent("m2", "c", 2)]).await;
    assert_eq!(stored_contents(&db).await, 1);
    let m2 = msg("m2", "c", 2, "g-m2");
    s.commit_page(&page(MESSAGE_ZONE, b"t5", messages(&[rich("m2", "c", 2, "e"), m2.clone()]))).await.unwrap();
    assert_reads(&*s, "c", &[msg("m1", "c", 1, "g-m1"), m2.clone()]).await;
    assert_eq!(stored_contents(&db).await, 0, "empty content is NULL again");

    // Empty to rich again, and a record deleted and re-created with other content.
    s.commit_page(&page(MESSAGE_ZONE, b"t6", messages(&[rich("m1", "c", 1, "f")]))).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t7", vec![del("m1")])).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t8", messages(&[rich("m1", "c", 1, "g")]))).await.unwrap();
    assert_reads(&*s, "c", &[rich("m1", "c", 1, "g"), m2]).await;
    assert_eq!(stored_contents(&db).await, 1);
}

/// A stored content that is not the JSON of a `MessageContent` is `Corrupt` from every query that
/// returns it (no panic, no silent default); other messages' reads are unaffected, and a
/// re-commit of the record repairs it.
pub(crate) async fn corrupt_content_is_an_error(db: TestDb) {
    let s = db.open().await;
    let good = [rich("m1", "c", 1, "a"), msg("m2", "c", 2, "g-m2")];
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&good))).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t2", messages(&[msg("o1", "other", 1, "g-o1")]))).await.unwrap();
    assert_reads(&*s, "c", &good).await; // the rows are in `messages` now
    let bad = [
        "not json",
        "",
        "null",
        "[1, 2]",
        "\"parts\"",
        "{\"parts\": 5}",
        "{\"read_ms\": \"soon\"}",
        "{\"parts\": [{\"kind\": \"video\", \"part\": 0}]}",
        "{\"unsent\": true",
    ];
    for value in bad {
        db.exec(&format!("UPDATE messages SET content = '{value}' WHERE record_name = 'm1'")).await;
        let err = s.messages_in_chat("c").await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { what: "messages.content", .. }), "{value:?}: {err:?}");
        let err = s.undelivered("c").await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { what: "messages.content", .. }), "{value:?}: {err:?}");
        assert_eq!(s.messages_in_chat("other").await.unwrap(), vec![msg("o1", "other", 1, "g-o1")]);
    }
    // An empty object is the JSON of an empty content.
    db.exec("UPDATE messages SET content = '{}' WHERE record_name = 'm1'").await;
    let plain = MessageRecord { content: MessageContent::default(), ..good[0].clone() };
    assert_reads(&*s, "c", &[plain, good[1].clone()]).await;

    db.exec("UPDATE messages SET content = 'not json' WHERE record_name = 'm1'").await;
    s.commit_page(&page(MESSAGE_ZONE, b"t3", messages(&good[..1]))).await.unwrap();
    assert_reads(&*s, "c", &good).await;
}
