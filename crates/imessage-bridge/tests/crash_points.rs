//! The bridge dies exactly where a crash hurts most — between two writes that belong together —
//! and a restart loses nothing and sends nothing twice. Each crash point of
//! `store::crash_point` is reached once (`IMESSAGE_BRIDGE_CRASH_AT=point:n`), the process
//! aborts there, and the next run resumes; at the end every room is compared with the
//! simulator's truth by back-pagination, as a client would see it.

mod common;

use std::os::unix::process::ExitStatusExt;

use cloudkit_sim::Faults;
use common::matrix_env::*;
use common::*;

/// Runs `run --once` with the crash point set; it must die there.
async fn crash_at(env: &Env, point: &str) {
    let out = env.bridge.command(&["run", "--once"]).env(store::CRASH_AT_ENV, point).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = point.split(':').next().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "run must die at {point}: {}\n{stderr}", out.status);
    assert!(stderr.contains(&format!("crash point {name} reached")), "{stderr}");
}

/// The `recovered_in_flight` figure of a run's "delivery finished" log line.
fn recovered_in_flight(stderr: &str) -> u64 {
    let at = stderr.find("recovered_in_flight=").unwrap_or_else(|| panic!("no delivery report in: {stderr}"));
    let digits: String = stderr[at + "recovered_in_flight=".len()..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// Runs `run --once` to the end; returns its stderr.
async fn resume(env: &Env) -> String {
    // The delivery report is an info line of the binary's own.
    let out = env.bridge.command(&["run", "--once"]).env("RUST_LOG", "warn,imessage_bridge=info").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run after a crash failed: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_point_loses_and_duplicates_nothing() {
    let mut account = spec(41, 5, 600, 0);
    account.later = 60;
    let sim = start_sim(account, Faults { page_size: 50, ..Faults::default() }).await;
    let env = Env::start(sim).await;

    // Sync dies inside its third page commit: the page's rows are written, not committed.
    crash_at(&env, "mid-page-commit:3").await;
    // Delivery dies after creating the second room, before its portal row: adopted next time.
    crash_at(&env, "after-create-room:2").await;
    // Dies with a ledger row and nothing sent; after an attachment's upload, before its event;
    // then with an event sent and its ledger row unfinished.
    crash_at(&env, "before-send:30").await;
    crash_at(&env, "mid-upload:2").await;
    crash_at(&env, "after-send:40").await;
    let stderr = resume(&env).await;
    // Other rooms may have had a send in flight too (four rooms are delivered at once).
    assert!(recovered_in_flight(&stderr) >= 1, "the send cut off after it reached the homeserver must be found in the room, not sent again");
    env.verify_json().await;
    env.assert_rooms_match_truth().await;

    // The live edge: later messages, and a crash after a send among them.
    env.sim.sim.release_later();
    crash_at(&env, "after-send:5").await;
    let stderr = resume(&env).await;
    assert!(recovered_in_flight(&stderr) >= 1, "{stderr}");
    let v = env.verify_json().await;
    assert_eq!(v["ok"], true, "{v}");
    for c in v["chats"].as_array().unwrap() {
        assert_eq!((c["missing"].as_u64(), c["duplicates"].as_u64(), c["out_of_order"].as_u64()), (Some(0), Some(0), Some(0)), "{c}");
    }
    env.assert_rooms_match_truth().await;
    let rooms = env.hs().joined_rooms(&matrix::ghost::bot_user_id(DOMAIN)).await.unwrap();
    let portals: Vec<String> = env.bridge.store().await.portals().await.unwrap().into_iter().map(|p| p.room_id).collect();
    let chats = env.bridge.store().await.chats().await.unwrap().len();
    assert_eq!((rooms.len(), portals.len()), (chats, chats), "one room per chat: the bot is in {rooms:?}, the portals are {portals:?}");
}
