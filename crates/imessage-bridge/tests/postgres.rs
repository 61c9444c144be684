//! The end-to-end delivery test on PostgreSQL (`tests/crash.rs` runs it on SQLite, with kills):
//! a throwaway PostgreSQL server, the bridge initialised with its `postgres://` URI, `run --once`
//! into a real Synapse (the history; then the later messages released and a second `run --once`
//! for the live edge), and every room paginated like a client and compared with the simulator's
//! truth.

mod common;

use std::time::{Duration, Instant};

use cloudkit_sim::Faults;
use common::campaign;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_on_postgres_delivers_rooms_that_match_truth() {
    let uri = common::pg::fresh_database().await;
    assert!(uri.starts_with("postgres://"), "{uri}");
    let mut account = common::spec(42, 6, 500, 600);
    account.later = 50;
    let plan = campaign::Plan {
        account,
        faults: Faults { asset_errors: 0.05, ..Faults::default() },
        kills: 0,
        bridge_bin: env!("CARGO_BIN_EXE_imessage-bridge").into(),
        repo_root: campaign::repo_root_from(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
        database: Some(uri.clone()),
        deadline: Instant::now() + Duration::from_secs(150),
        verbose: true,
    };
    let report = campaign::run_seed(&plan).await.unwrap();
    let t = &report.totals;
    assert!(t.rooms >= 6 && t.messages > 1000, "the rooms must hold the account: {t:?}");
    assert_eq!((t.missing, t.duplicated, t.out_of_order, t.wrong_sender), (0, 0, 0, 0), "{t:?}");
    assert_eq!((t.unexpected, t.bot_events, t.bad_rooms), (0, 0, 0), "{t:?}");
    // The bridge really used PostgreSQL: its ledger is there.
    let store = store::open(&uri).await.unwrap();
    assert!(store.delivered_count().await.unwrap() as usize >= t.messages, "the ledger is in PostgreSQL");
}
