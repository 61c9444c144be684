//! Per-zone sync state: ordering, stop reasons, the skipped-record total, the server summary,
//! and what `clear_tokens` resets.

use super::*;

pub(crate) async fn zone_states_ordered_by_name(db: TestDb) {
    let s = db.open().await;
    assert!(s.zone_states().await.unwrap().is_empty());
    s.set_server_summary(MESSAGE_ZONE, &[42]).await.unwrap();
    s.commit_page(&page(ATTACHMENT_ZONE, b"a", vec![])).await.unwrap();
    s.set_stop(CHAT_ZONE, StopReason::ApiDone, None).await.unwrap();
    s.set_server_summary("Zeta", &[1]).await.unwrap();
    let states = s.zone_states().await.unwrap();
    let names: Vec<_> = states.iter().map(|z| z.zone.as_str()).collect();
    assert_eq!(names, vec!["Zeta", ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE], "byte order, uppercase first");
    let m = &states[3];
    assert_eq!((m.server_count, m.pages, m.last_page, m.token.clone()), (Some(42), 0, None, None));
    assert_eq!(s.zone_state("unknownZone").await.unwrap(), None);
    // Committing a page keeps the server count and summary.
    s.commit_page(&page(MESSAGE_ZONE, b"m", vec![])).await.unwrap();
    let m = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((m.server_count, m.server_summary), (Some(42), Some(vec![42])));
}

pub(crate) async fn stop_reason_round_trip(db: TestDb) {
    let s = db.open().await;
    let all = [
        StopReason::ApiDone,
        StopReason::TokenUnchanged,
        StopReason::ErrorBudget,
        StopReason::ResetNeeded,
        StopReason::ZoneNotFound,
        StopReason::PageLimit,
        StopReason::Interrupted,
    ];
    for reason in all {
        let error = (reason == StopReason::ErrorBudget).then_some("HTTP 503 five times");
        s.set_stop(MESSAGE_ZONE, reason, error).await.unwrap();
        let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
        assert_eq!((z.stop_reason, z.last_error.as_deref()), (Some(reason), error));
    }
    s.set_stop(MESSAGE_ZONE, StopReason::ErrorBudget, Some("boom")).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t", vec![])).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.stop_reason, z.last_error), (None, None), "a committed page clears the stop");
}

pub(crate) async fn clear_tokens_keeps_records(db: TestDb) {
    let s = db.open().await;
    s.commit_page(&page(MESSAGE_ZONE, b"t1", messages(&[msg("m1", "c", 1, "g1")]))).await.unwrap();
    s.commit_page(&page(MESSAGE_ZONE, b"t2", vec![])).await.unwrap();
    s.commit_page(&page(CHAT_ZONE, b"c1", vec![RecordChange::Chat(chat("r", "c", 1, None, &[]))])).await.unwrap();
    s.set_stop(MESSAGE_ZONE, StopReason::ResetNeeded, None).await.unwrap();
    s.set_server_summary(MESSAGE_ZONE, &[7, 3]).await.unwrap();
    s.clear_tokens().await.unwrap();
    for z in s.zone_states().await.unwrap() {
        assert_eq!((z.token, z.pages, z.last_page, z.stop_reason), (None, 0, None, None), "{}", z.zone);
    }
    let m = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((m.server_count, m.server_summary), (Some(7), Some(vec![7, 3])), "the server's numbers stay");
    assert_eq!(s.stored_count(MESSAGE_ZONE).await.unwrap(), 1);
    assert_eq!(s.stored_count(CHAT_ZONE).await.unwrap(), 1);
    s.commit_page(&page(MESSAGE_ZONE, b"t1", vec![])).await.unwrap();
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().pages, 1);
}

fn skipping(zone: &str, token: &[u8], records: i64, skipped: i64) -> PageCommit {
    PageCommit { stats: PageStats { records, skipped, ..stats(records) }, ..page(zone, token, vec![]) }
}

/// `skipped` is the sum over the pages since the last clear, per zone; the last page keeps its
/// own count; only page commits change it, it survives a reopen, and `clear_tokens` zeroes it.
pub(crate) async fn skipped_total_accumulates_and_resets(db: TestDb) {
    let s = db.open().await;
    s.set_stop(CHAT_ZONE, StopReason::ApiDone, None).await.unwrap();
    s.set_server_summary(ATTACHMENT_ZONE, &[3]).await.unwrap();
    for zone in [CHAT_ZONE, ATTACHMENT_ZONE] {
        assert_eq!(s.zone_state(zone).await.unwrap().unwrap().skipped, 0, "{zone}");
    }
    let skipped = |z: store::ZoneState| (z.skipped, z.last_page.map(|p| p.skipped));

    s.commit_page(&skipping(MESSAGE_ZONE, b"t1", 10, 2)).await.unwrap();
    assert_eq!(skipped(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap()), (2, Some(2)));
    s.commit_page(&skipping(MESSAGE_ZONE, b"t2", 10, 0)).await.unwrap();
    assert_eq!(skipped(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap()), (2, Some(0)));
    s.commit_page(&skipping(MESSAGE_ZONE, b"t3", 10, 5)).await.unwrap();
    s.commit_page(&skipping(ATTACHMENT_ZONE, b"a1", 4, 1)).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!(z.last_page, Some(PageStats { records: 10, skipped: 5, ..stats(10) }));
    assert_eq!(z.skipped, 7);
    assert_eq!(skipped(s.zone_state(ATTACHMENT_ZONE).await.unwrap().unwrap()), (1, Some(1)));

    // Other zone writes leave it alone.
    s.set_stop(MESSAGE_ZONE, StopReason::Interrupted, None).await.unwrap();
    s.set_server_summary(MESSAGE_ZONE, &[40]).await.unwrap();
    s.resolve_failed(MESSAGE_ZONE, &messages(&[msg("m1", "c", 1, "g1")]), &[]).await.unwrap();
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().skipped, 7);

    drop(s);
    let s = db.open().await;
    assert_eq!(skipped(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap()), (7, Some(5)));

    s.clear_tokens().await.unwrap();
    for z in s.zone_states().await.unwrap() {
        assert_eq!((z.skipped, z.last_page), (0, None), "{}", z.zone);
    }
    s.commit_page(&skipping(MESSAGE_ZONE, b"t1", 10, 3)).await.unwrap();
    assert_eq!(skipped(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap()), (3, Some(3)), "a new pass counts from 0");
}

async fn summary(s: &dyn Store) -> (Option<i64>, Option<Vec<i64>>) {
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    (z.server_count, z.server_summary)
}

/// The whole `MessagesSummary` list is kept, and `server_count` is its first element.
pub(crate) async fn server_summary_round_trip(db: TestDb) {
    let s = db.open().await;
    s.commit_page(&page(MESSAGE_ZONE, b"t1", vec![])).await.unwrap();
    let z = s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap();
    assert_eq!((z.server_count, z.server_summary), (None, None), "never set");

    s.set_server_summary(MESSAGE_ZONE, &[5, 2]).await.unwrap();
    assert_eq!(summary(&*s).await, (Some(5), Some(vec![5, 2])));
    s.set_server_summary(MESSAGE_ZONE, &[]).await.unwrap();
    assert_eq!(summary(&*s).await, (None, Some(vec![])), "an empty list clears the count");
    let extremes = vec![-1, i64::MAX, i64::MIN, 0];
    s.set_server_summary(MESSAGE_ZONE, &extremes).await.unwrap();
    assert_eq!(summary(&*s).await, (Some(-1), Some(extremes.clone())));

    // It creates the zone row, and survives page commits, clear_tokens and a reopen.
    s.set_server_summary(CHAT_ZONE, &[9]).await.unwrap();
    let c = s.zone_state(CHAT_ZONE).await.unwrap().unwrap();
    assert_eq!((c.server_count, c.server_summary, c.pages, c.token), (Some(9), Some(vec![9]), 0, None));
    s.commit_page(&page(MESSAGE_ZONE, b"t2", vec![])).await.unwrap();
    s.clear_tokens().await.unwrap();
    drop(s);
    let s = db.open().await;
    assert_eq!(summary(&*s).await, (Some(-1), Some(extremes)));
    assert_eq!(s.zone_state(CHAT_ZONE).await.unwrap().unwrap().server_summary, Some(vec![9]));
}

/// A stored summary that is not a JSON list of integers is reported, not guessed at or panicked
/// on; storing a new summary repairs the row.
pub(crate) async fn corrupt_server_summary_is_an_error(db: TestDb) {
    let s = db.open().await;
    s.set_server_summary(MESSAGE_ZONE, &[5, 2]).await.unwrap();
    for bad in ["not json", "[1, \"x\"]", "[1.5]", "{\"count\": 5}", "5", ""] {
        db.exec(&format!("UPDATE zones SET server_summary = '{bad}'")).await;
        let err = s.zone_state(MESSAGE_ZONE).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { what: "zones.server_summary", .. }), "{bad:?}: {err:?}");
        assert!(matches!(s.zone_states().await.unwrap_err(), StoreError::Corrupt { .. }), "{bad:?}");
    }
    s.set_server_summary(MESSAGE_ZONE, &[6]).await.unwrap();
    assert_eq!(s.zone_state(MESSAGE_ZONE).await.unwrap().unwrap().server_summary, Some(vec![6]));
}
