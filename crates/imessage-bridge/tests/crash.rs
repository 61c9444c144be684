//! The crash campaign's small version (`scripts/crash-campaign.sh` runs the big one): one seed,
//! five SIGKILLs of `run --once` at seeded random moments across sync, attachment download and
//! delivery, the later messages released halfway, then every room paginated like a client and
//! compared with the simulator's truth: nothing missing, duplicated, out of order or from the
//! wrong sender.

mod common;

use std::time::{Duration, Instant};

use cloudkit_sim::Faults;
use common::campaign::{self, Phase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sigkills_across_sync_and_delivery_lose_and_duplicate_nothing() {
    let mut account = common::spec(41, 5, 400, 400);
    account.later = 60;
    let plan = campaign::Plan {
        account,
        faults: Faults { page_size: 5, page_errors: 0.02, asset_errors: 0.05, ..Faults::default() },
        kills: 5,
        bridge_bin: env!("CARGO_BIN_EXE_imessage-bridge").into(),
        repo_root: campaign::repo_root_from(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
        database: None,
        deadline: Instant::now() + Duration::from_secs(150),
        verbose: true,
    };
    let report = campaign::run_seed(&plan).await.unwrap();
    assert!(!report.cut_short, "all kills must land: {report:?}");
    assert_eq!(report.killed(), 5, "{report:?}");
    assert!(report.kills.get(&Phase::Sync).copied().unwrap_or(0) >= 1, "a kill mid-sync: {:?}", report.kills);
    assert!(report.kills.range(Phase::Delivery..).map(|(_, n)| n).sum::<usize>() >= 1, "a kill mid-delivery: {:?}", report.kills);
    let t = &report.totals;
    assert!(t.messages > 700, "the rooms must hold the account: {t:?}");
    assert_eq!((t.missing, t.duplicated, t.out_of_order, t.wrong_sender), (0, 0, 0, 0), "{t:?}");
    assert_eq!((t.unexpected, t.bot_events, t.bad_rooms), (0, 0, 0), "{t:?}");
}
