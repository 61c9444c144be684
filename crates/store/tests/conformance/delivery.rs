//! Matrix delivery state: portals and the delivery ledger.

use super::*;

pub(crate) async fn portals_and_delivery_ledger(db: TestDb) {
    let s = db.open().await;
    let mut system = msg("r3", "chat", 150, "sys");
    system.flags = 1 << 14;
    let mut service = msg("r5", "chat", 160, "svc");
    service.flags = 1 << 17;
    let ms = [msg("r1", "chat", 200, "g2"), msg("r2", "chat", 100, "g1"), system, msg("r4", "other", 50, "o1"), service];
    s.commit_page(&page(MESSAGE_ZONE, b"t", messages(&ms))).await.unwrap();

    assert_eq!(s.portal("chat").await.unwrap(), None);
    let p = store::Portal { chat_id: "chat".into(), room_id: "!a:x".into(), name: Some("Old".into()) };
    s.save_portal(&p).await.unwrap();
    s.save_portal(&store::Portal { name: Some("New".into()), ..p.clone() }).await.unwrap();
    s.save_portal(&store::Portal { chat_id: "other".into(), room_id: "!b:x".into(), name: None }).await.unwrap();
    assert_eq!(s.portal("chat").await.unwrap().unwrap().name.as_deref(), Some("New"));
    let all: Vec<_> = s.portals().await.unwrap().into_iter().map(|p| (p.chat_id, p.room_id, p.name)).collect();
    assert_eq!(all, vec![("chat".into(), "!a:x".into(), Some("New".into())), ("other".into(), "!b:x".into(), None)]);

    // System and service records are never queued; order is (ts, guid).
    let queued = |v: Vec<MessageRecord>| v.into_iter().map(|m| m.guid).collect::<Vec<_>>();
    assert_eq!(queued(s.undelivered("chat").await.unwrap()), vec!["g1", "g2"]);

    s.begin_delivery("g1", "chat", "imb-g1").await.unwrap();
    assert_eq!(queued(s.undelivered("chat").await.unwrap()), vec!["g2"], "an in-flight message is not queued twice");
    let inflight = s.in_flight("chat").await.unwrap();
    assert_eq!(inflight, vec![store::LedgerEntry { guid: "g1".into(), chat_id: "chat".into(), txn_id: "imb-g1".into(), event_id: None }]);
    assert_eq!(s.delivered_event("g1").await.unwrap(), None);
    assert_eq!(s.delivered_count().await.unwrap(), 0);

    s.finish_delivery("g1", "$e1").await.unwrap();
    assert!(s.in_flight("chat").await.unwrap().is_empty());
    assert_eq!(s.delivered_event("g1").await.unwrap().as_deref(), Some("$e1"));
    assert_eq!(s.delivered_count().await.unwrap(), 1);

    // An in-flight send that never reached the room is forgotten and queued again.
    s.begin_delivery("g2", "chat", "imb-g2").await.unwrap();
    s.forget_delivery("g2").await.unwrap();
    assert_eq!(queued(s.undelivered("chat").await.unwrap()), vec!["g2"]);
    assert_eq!(queued(s.undelivered("other").await.unwrap()), vec!["o1"]);
}

/// Delivery per chat for `status`: counts by message guid (part keys do not count), in-flight
/// rows apart, chats without a portal listed too, and the last error set and cleared.
pub(crate) async fn room_deliveries_count_by_message(db: TestDb) {
    let s = db.open().await;
    let mut system = msg("r3", "a", 150, "sys");
    system.flags = 1 << 14;
    let ms = [msg("r1", "a", 100, "a1"), msg("r2", "a", 200, "a2"), system, msg("r4", "a", 300, "a3"), msg("r5", "b", 50, "b1")];
    s.commit_page(&page(MESSAGE_ZONE, b"t", messages(&ms))).await.unwrap();
    let chats = vec![RecordChange::Chat(chat("c1", "a", 1, None, &[])), RecordChange::Chat(chat("c2", "b", 1, None, &[]))];
    s.commit_page(&page(CHAT_ZONE, b"t", chats)).await.unwrap();
    s.save_portal(&store::Portal { chat_id: "a".into(), room_id: "!a:x".into(), name: None }).await.unwrap();
    s.begin_delivery("a1/p0", "a", "imb-a1/p0").await.unwrap();
    s.finish_delivery("a1/p0", "$p").await.unwrap();
    s.begin_delivery("a1", "a", "imb-a1").await.unwrap();
    s.finish_delivery("a1", "$a1").await.unwrap();
    s.begin_delivery("a2", "a", "imb-a2").await.unwrap();

    let rooms = s.room_deliveries().await.unwrap();
    let row = |chat_id: &str, room: Option<&str>, stored, delivered, in_flight, pending| store::RoomDelivery {
        chat_id: chat_id.into(),
        room_id: room.map(str::to_string),
        stored,
        delivered,
        in_flight,
        pending,
        last_error: None,
        last_error_ms: None,
        owner_messages: 0,
        refused: 0,
        live_since_ms: None,
        oldest_pending_ms: None,
    };
    // a2 is in flight, so it is the oldest not delivered.
    let a = store::RoomDelivery { oldest_pending_ms: Some(200), ..row("a", Some("!a:x"), 3, 1, 1, 1) };
    assert_eq!(rooms, vec![a, store::RoomDelivery { oldest_pending_ms: Some(50), ..row("b", None, 1, 0, 0, 1) }]);

    // A room becomes live once; a second call keeps the first time.
    s.set_room_live("a").await.unwrap();
    let since = s.room_deliveries().await.unwrap()[0].live_since_ms.expect("live");
    s.set_room_live("a").await.unwrap();
    let rooms = s.room_deliveries().await.unwrap();
    assert_eq!((rooms[0].live_since_ms, rooms[1].live_since_ms), (Some(since), None));

    s.set_delivery_error("b", Some("homeserver answered 500")).await.unwrap();
    s.set_delivery_error("b", Some("homeserver answered 502")).await.unwrap();
    let b = s.room_deliveries().await.unwrap().pop().unwrap();
    assert_eq!(b.last_error.as_deref(), Some("homeserver answered 502"));
    assert!(b.last_error_ms.unwrap() > 1_600_000_000_000, "{b:?}");
    s.set_delivery_error("b", None).await.unwrap();
    assert_eq!(s.room_deliveries().await.unwrap().pop().unwrap().last_error, None);
}

/// `schema_state` reads the version without migrating: current after `open`, behind when a
/// migration row is missing, absent on an empty database.
pub(crate) async fn schema_state_reads_without_migrating(db: TestDb) {
    drop(db.open().await);
    let state = store::schema_state(&db.uri).await.unwrap();
    assert!(state.is_current(), "{state:?}");
    assert!(state.latest >= 8);
    db.exec(&format!("DELETE FROM schema_migrations WHERE version = {}", state.latest)).await;
    let behind = store::schema_state(&db.uri).await.unwrap();
    assert_eq!(behind.applied, Some(state.latest - 1));
    assert!(!behind.is_current());
    // Reading it did not apply the missing migration.
    assert_eq!(store::schema_state(&db.uri).await.unwrap(), behind);
    db.exec("DROP TABLE schema_migrations").await;
    assert_eq!(store::schema_state(&db.uri).await.unwrap().applied, None);
}

/// A delivered message whose record changes or is deleted later is noted as a revision (the
/// same record served again unchanged is not); undelivered ones are not noted. Its ledger keys
/// are found by prefix without catching a guid that merely starts the same.
pub(crate) async fn revisions_note_changed_and_deleted_delivered_messages(db: TestDb) {
    let s = db.open().await;
    let ms = [msg("r1", "a", 100, "a1"), msg("r2", "a", 200, "a2"), msg("r3", "a", 300, "a3"), msg("r4", "a", 400, "a4"), msg("r10", "a", 500, "a10")];
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&ms))).await.unwrap();
    assert_eq!(s.undelivered("a").await.unwrap().len(), 5);
    for (key, event) in [("a1/p0", "$p"), ("a1", "$a1"), ("a2", "$a2"), ("a3", "$a3"), ("a10", "$a10")] {
        s.begin_delivery(key, "a", &format!("imb-{key}")).await.unwrap();
        s.finish_delivery(key, event).await.unwrap();
    }
    let mut edited = ms[1].clone();
    edited.text = Some("edited".into());
    let mut undelivered_edit = ms[3].clone();
    undelivered_edit.text = Some("also edited".into());
    let changes = vec![
        RecordChange::Message(ms[0].clone()),
        RecordChange::Message(edited.clone()),
        RecordChange::Deleted { record_name: "r3".into() },
        RecordChange::Message(undelivered_edit),
    ];
    s.commit_page(&page(MESSAGE_ZONE, b"t2", changes)).await.unwrap();
    let revised = s.revised("a").await.unwrap();
    assert_eq!(revised, vec![("a2".to_string(), Some(edited)), ("a3".to_string(), None)]);
    assert!(s.revised("b").await.unwrap().is_empty());

    // a3's record is gone and a2's event stands: the newest delivered message left is a10's.
    assert_eq!(s.last_delivered_ts("a").await.unwrap(), Some(500));
    assert_eq!(s.last_delivered_ts("b").await.unwrap(), None);
    let keys = s.delivered_keys("a1").await.unwrap();
    assert_eq!(keys, vec![("a1".to_string(), "$a1".to_string()), ("a1/p0".to_string(), "$p".to_string())]);
    s.finish_revision("a2").await.unwrap();
    assert_eq!(s.revised("a").await.unwrap().into_iter().map(|(g, _)| g).collect::<Vec<_>>(), vec!["a3"]);
}

/// Owner messages are counted per chat (shown with its delivery) and the time of the room's last
/// notice about them is kept apart from the count.
pub(crate) async fn owner_messages_count_and_remember_the_notice(db: TestDb) {
    let s = db.open().await;
    let chats = vec![RecordChange::Chat(chat("c1", "a", 1, None, &[])), RecordChange::Chat(chat("c2", "b", 1, None, &[]))];
    s.commit_page(&page(CHAT_ZONE, b"t", chats)).await.unwrap();
    let first = s.count_owner_message("a").await.unwrap();
    assert_eq!(first, store::OwnerMessages { count: 1, last_notice_ms: None });
    s.set_owner_notice("a", 1_700_000_000_000).await.unwrap();
    assert_eq!(s.count_owner_message("a").await.unwrap(), store::OwnerMessages { count: 2, last_notice_ms: Some(1_700_000_000_000) });
    // A notice recorded before any count (or again) keeps the count.
    s.set_owner_notice("a", 1_700_000_000_001).await.unwrap();
    s.set_owner_notice("b", 5).await.unwrap();
    assert_eq!(s.count_owner_message("b").await.unwrap(), store::OwnerMessages { count: 1, last_notice_ms: Some(5) });
    let counts: Vec<(String, i64)> = s.room_deliveries().await.unwrap().into_iter().map(|r| (r.chat_id, r.owner_messages)).collect();
    assert_eq!(counts, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    drop(s);
    let s = db.open().await;
    assert_eq!(s.count_owner_message("a").await.unwrap(), store::OwnerMessages { count: 3, last_notice_ms: Some(1_700_000_000_001) });
}

/// Refused events are counted per chat in its delivery line, once per ledger key.
pub(crate) async fn refused_events_are_counted_once_per_key(db: TestDb) {
    let s = db.open().await;
    let chats = vec![RecordChange::Chat(chat("c1", "a", 1, None, &[])), RecordChange::Chat(chat("c2", "b", 1, None, &[]))];
    s.commit_page(&page(CHAT_ZONE, b"t", chats)).await.unwrap();
    s.record_refusal("m1/p0", "a", "a text of 70000 characters", "413 M_TOO_LARGE").await.unwrap();
    s.record_refusal("m1/p0", "a", "again", "413 M_TOO_LARGE").await.unwrap();
    s.record_refusal("m2", "a", "a reaction", "400 M_BAD_JSON").await.unwrap();
    let rooms = s.room_deliveries().await.unwrap();
    let refused: Vec<(&str, i64)> = rooms.iter().map(|r| (r.chat_id.as_str(), r.refused)).collect();
    assert_eq!(refused, vec![("a", 2), ("b", 0)]);
}

/// Ghost profiles: the last one applied per handle replaces the one before (a name change, an
/// avatar removed), and an avatar image's first upload is remembered by its SHA-256.
pub(crate) async fn ghost_profiles_and_avatar_uploads(db: TestDb) {
    let s = db.open().await;
    assert_eq!(s.ghost_profile("tel:+15551234567").await.unwrap(), None);
    assert!(s.ghost_profiles().await.unwrap().is_empty());
    let sam = store::GhostProfileRow {
        handle: "tel:+15551234567".into(),
        display_name: "Sam Rivera".into(),
        avatar_sha256: Some("ab".repeat(32)),
        avatar_mxc: Some("mxc://x/sam".into()),
        updated_ms: 10,
    };
    let ada =
        store::GhostProfileRow { handle: "mailto:ada@example.org".into(), display_name: "Ada".into(), avatar_sha256: None, avatar_mxc: None, updated_ms: 11 };
    s.save_ghost_profile(&sam).await.unwrap();
    s.save_ghost_profile(&ada).await.unwrap();
    assert_eq!(s.ghost_profile(&sam.handle).await.unwrap().as_ref(), Some(&sam));
    // Renamed and without a photo now: both replaced, nothing of the old row left.
    let renamed = store::GhostProfileRow { display_name: "Sam R.".into(), avatar_sha256: None, avatar_mxc: None, updated_ms: 20, ..sam.clone() };
    s.save_ghost_profile(&renamed).await.unwrap();
    assert_eq!(s.ghost_profiles().await.unwrap(), vec![ada, renamed], "ordered by handle");

    assert_eq!(s.avatar_upload(&"ab".repeat(32)).await.unwrap(), None);
    s.save_avatar_upload(&"ab".repeat(32), "mxc://x/first").await.unwrap();
    s.save_avatar_upload(&"ab".repeat(32), "mxc://x/second").await.unwrap();
    s.save_avatar_upload(&"cd".repeat(32), "mxc://x/other").await.unwrap();
    assert_eq!(s.avatar_upload(&"ab".repeat(32)).await.unwrap().as_deref(), Some("mxc://x/first"), "the first upload stays");
    assert_eq!(s.avatar_upload(&"cd".repeat(32)).await.unwrap().as_deref(), Some("mxc://x/other"));
    // Kept across a reopen.
    drop(s);
    let s = db.open().await;
    assert_eq!(s.ghost_profile("tel:+15551234567").await.unwrap().map(|p| p.display_name).as_deref(), Some("Sam R."));
}
