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
