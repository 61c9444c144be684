//! Page ingest at sync scale: concurrent zones, changes spread over pages, initial-sync sizes.

use super::*;

pub(crate) async fn concurrent_commits_to_different_zones(db: TestDb) {
    let s = db.open().await;
    let s = &*s;
    let run = |zone: &'static str, prefix: &'static str| async move {
        for i in 0..20 {
            let ms: Vec<_> = (0..10).map(|j| msg(&format!("{prefix}-{i}-{j}"), prefix, i * 10 + j, &format!("{prefix}{i}.{j}"))).collect();
            s.commit_page(&page(zone, format!("{prefix}{i}").as_bytes(), messages(&ms))).await.unwrap();
        }
    };
    tokio::join!(run(MESSAGE_ZONE, "m"), run(CHAT_ZONE, "c"), run(ATTACHMENT_ZONE, "a"));
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 600);
    for (zone, prefix) in [(MESSAGE_ZONE, "m"), (CHAT_ZONE, "c"), (ATTACHMENT_ZONE, "a")] {
        let z = s.zone_state(zone).await.unwrap().unwrap();
        assert_eq!((z.pages, z.token), (20, Some(format!("{prefix}19").into_bytes())));
        assert_eq!(s.messages_in_chat(prefix).await.unwrap().len(), 200);
    }
}

/// Pages applied one after another, with no read in between (SQLite keeps them in its ingest log
/// until a read or the zone's last page) and with reads in between, end in the state of applying
/// every change in order: re-created after deletion, deleted after a fold, edited twice.
pub(crate) async fn changes_across_pages_apply_in_order(db: TestDb) {
    let s = db.open().await;
    let v = |name: &str, ts: i64, text: &str| {
        let mut m = msg(name, "c", ts, &format!("g-{name}"));
        m.text = Some(text.into());
        m
    };
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&[v("m1", 1, "a"), v("m2", 2, "a"), v("m3", 3, "a")]))).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t2", vec![del("m1"), RecordChange::Message(v("m2", 2, "b"))])).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t3", vec![RecordChange::Message(v("m1", 1, "c")), del("m3"), del("never")])).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t4", vec![del("m2"), RecordChange::Message(v("m2", 2, "d"))])).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![v("m1", 1, "c"), v("m2", 2, "d")]);

    s.commit_page(&page(MESSAGE_ZONE, b"t5", vec![del("m1"), RecordChange::Message(v("m3", 3, "e"))])).await.unwrap();
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 2);
    s.commit_page(&page(MESSAGE_ZONE, b"t6", vec![RecordChange::Message(v("m2", 2, "f"))])).await.unwrap();
    assert_eq!(s.messages_in_chat("c").await.unwrap(), vec![v("m2", 2, "f"), v("m3", 3, "e")]);
    let mut guids = s.message_guids().await.unwrap();
    guids.sort();
    assert_eq!(guids, vec!["g-m2", "g-m3"]);
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().token.as_deref(), Some(&b"t6"[..]));
}

/// An initial sync's worth of pages (large enough for SQLite's bulk fold, which rebuilds the
/// chat/time index), ending with the zone's last page: every message is there exactly once, in
/// order per chat, and the index the delivery queries use exists afterwards.
pub(crate) async fn initial_sync_sized_commit(db: TestDb) {
    const PAGES: i64 = 110;
    const PER_PAGE: i64 = 200;
    let s = db.open().await;
    let page_of = |p: i64| {
        let mut changes = messages(
            &(0..PER_PAGE)
                .map(|i| {
                    // Record names in a scattered order, as CloudKit's random names arrive.
                    let n = (p * PER_PAGE + i) * 7919 % (PAGES * PER_PAGE);
                    msg(&format!("rec-{n:06}"), &format!("chat{}", n % 17), n, &format!("guid-{n}"))
                })
                .collect::<Vec<_>>(),
        );
        if p == 1 {
            changes.push(del("rec-000000")); // logged in page 0, deleted in page 1
        }
        let mut commit = page(MESSAGE_ZONE, format!("tok{p}").as_bytes(), changes);
        commit.stats.done = p == PAGES - 1;
        commit
    };
    for p in 0..PAGES {
        s.commit_page(&page_of(p)).await.unwrap();
    }
    if db.kind == Kind::Sqlite {
        assert_eq!(db.scalar("SELECT COUNT(*) FROM message_log").await, 0, "the zone's last page folds the log");
    }
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), PAGES * PER_PAGE - 1);
    let chat0 = s.messages_in_chat("chat0").await.unwrap();
    assert!(chat0.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms));
    assert_eq!(chat0.len() as i64, (PAGES * PER_PAGE + 16) / 17 - 1);
    let index = db.pick(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_chat_ts'",
        "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'messages_chat_ts'",
    );
    assert_eq!(db.scalar(index).await, 1);
}

/// An initial sync in which every record name arrives once, plus a deletion of a record never
/// seen (SQLite adopts its ingest log as `messages` instead of copying it), then later pages that
/// edit, delete and add records in that table, and a reopen.
pub(crate) async fn initial_sync_with_distinct_names_then_later_changes(db: TestDb) {
    const N: i64 = 600;
    let s = db.open().await;
    let history: Vec<MessageRecord> = (0..N).map(|n| msg(&format!("rec-{:04}", n * 37 % N), &format!("chat{}", n % 3), n, &format!("guid-{n}"))).collect();
    let mut first = messages(&history[..N as usize / 2]);
    first.push(del("never-seen"));
    s.commit_page(&page(MESSAGE_ZONE, b"t1", first)).await.unwrap();
    let mut last = page(MESSAGE_ZONE, b"t2", messages(&history[N as usize / 2..]));
    last.stats.done = true;
    s.commit_page(&last).await.unwrap();
    if db.kind == Kind::Sqlite {
        assert_eq!(db.scalar("SELECT COUNT(*) FROM message_log").await, 0);
        // Adopted, not copied: the rows keep their log sequence numbers, which counted the deletion.
        assert_eq!(db.scalar("SELECT MAX(seq) FROM messages").await, N + 1);
        let indexes = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' \
                       AND name IN ('messages_record_name', 'messages_chat_ts')";
        assert_eq!(db.scalar(indexes).await, 2);
    }
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), N);
    let chat1 = s.messages_in_chat("chat1").await.unwrap();
    assert_eq!(chat1, history.iter().filter(|m| m.chat_id == "chat1").cloned().collect::<Vec<_>>());

    let mut edited = history[1].clone();
    edited.text = Some("edited".into());
    let added = msg("rec-new", "chat1", N + 5, "guid-new");
    let changes = vec![RecordChange::Message(edited.clone()), del(&history[4].record_name), RecordChange::Message(added.clone())];
    let mut later = page(MESSAGE_ZONE, b"t3", changes);
    later.stats.done = true;
    s.commit_page(&later).await.unwrap();
    drop(s);
    let s = db.open().await;
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), N);
    let expected: Vec<MessageRecord> = history
        .iter()
        .filter(|m| m.chat_id == "chat1" && m.record_name != history[4].record_name)
        .map(|m| if m.record_name == edited.record_name { edited.clone() } else { m.clone() })
        .chain([added])
        .collect();
    assert_eq!(s.messages_in_chat("chat1").await.unwrap(), expected);
}
