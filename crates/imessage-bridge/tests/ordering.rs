//! Order is right the first time: a Matrix timeline is append-only, so history goes in only once
//! it is complete, and a message that arrives after newer ones are in the room (its key
//! appeared only later) goes in at the live edge marked with its original time — never out of
//! order unannounced. Checked against the simulator's truth on a real Synapse.

mod common;

use cloudkit_sim::Faults;
use common::matrix_env::*;
use common::*;

fn total(v: &serde_json::Value, field: &str) -> u64 {
    v["chats"].as_array().unwrap().iter().map(|c| c[field].as_u64().unwrap_or(0)).sum()
}

/// A sync that stopped early delivers nothing; the run that completes it delivers everything in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_history_is_not_delivered_until_its_sync_completes() {
    let sim = start_sim(spec(52, 4, 300, 0), Faults::default()).await;
    let env = Env::start(sim).await;
    env.bridge.sync_ok().await;
    // As a pass cut short by the error budget leaves it (the records it did store are real).
    env.bridge.store().await.set_stop(imessage::records::MESSAGE_ZONE, store::StopReason::ErrorBudget, Some("503 five times")).await.unwrap();
    let out = env.bridge.command(&["deliver"]).env("RUST_LOG", "warn").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not delivering yet") && stderr.contains("error_budget"), "{stderr}");
    assert!(env.bridge.store().await.portals().await.unwrap().is_empty(), "no room may get part of a history");

    let v = env.run_once_and_verify().await;
    assert_eq!(total(&v, "out_of_order"), 0, "{v}");
    env.assert_rooms_match_truth().await;
}

/// Records whose key the zone publishes only after more refreshes than one pass makes are
/// undecryptable in the first pass (its history is delivered without them) and recovered in the
/// next: they go in after newer messages, marked with their time, counted as late, not as
/// disorder; the rooms then hold every message of truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_whose_key_came_later_go_in_at_the_live_edge_marked_with_their_time() {
    // A pass makes at most 1 + key_retries + 1 key refreshes: with key_retries 0 and keys that
    // appear on the fourth refresh after their records were served, they appear in pass two.
    let sim = start_sim(spec(53, 4, 400, 0), Faults { pcs_late: 0.05, late_refreshes: 4, ..Faults::default() }).await;
    let env = Env::start(sim).await;
    env.bridge.change(&["sync", "key_retries"], 6, 0);

    let first = env.run_once_and_verify().await;
    let undecryptable = zone(&env.bridge.status_json().await, imessage::records::MESSAGE_ZONE)["undecryptable"].as_u64().unwrap();
    assert!(undecryptable > 0, "the first pass must leave records waiting for a later key");
    assert_eq!(total(&first, "late"), 0);

    let second = env.run_once_and_verify().await;
    assert_eq!(zone(&env.bridge.status_json().await, imessage::records::MESSAGE_ZONE)["undecryptable"], 0, "recovered in the second pass");
    assert!(total(&second, "late") > 0, "the recovered messages went in late: {second}");
    assert_eq!(total(&second, "out_of_order"), 0, "{second}");
    env.assert_rooms_match_truth().await;

    // What a reader sees: the late text says when it was sent.
    let hs = env.hs();
    let mut marked = 0;
    for portal in env.bridge.store().await.portals().await.unwrap() {
        let (events, _) = matrix::verify::paginate(&hs, &portal.room_id, OWNER).await.unwrap();
        for e in events.iter().filter(|e| !e.raw["content"][matrix::send::LATE_KEY].is_null()) {
            let c = &e.raw["content"];
            if c["msgtype"] == "m.text" {
                assert!(c["body"].as_str().unwrap().starts_with("⏱ "), "{c}");
                marked += 1;
            }
        }
    }
    assert!(marked > 0, "at least one late text message shows its time");
}

/// One room that cannot be delivered (its room is gone from the homeserver) holds back no other:
/// `deliver` delivers the rest, then fails naming that chat, whose error `status` shows; the
/// other rooms match truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_fails_holds_back_no_other() {
    let sim = start_sim(spec(54, 4, 200, 0), Faults::default()).await;
    let env = Env::start(sim).await;
    env.bridge.sync_ok().await;
    let store = env.bridge.store().await;
    let broken = store.chats().await.unwrap()[1].chat_id.clone();
    store.save_portal(&store::Portal { chat_id: broken.clone(), room_id: "!gone:localhost".into(), name: None }).await.unwrap();
    let out = env.bridge.run(&["deliver"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deliver must say a room failed");
    assert!(stderr.contains("1 room(s) not delivered") && stderr.contains(&broken), "{stderr}");

    let v = env.verify_json().await;
    for c in v["chats"].as_array().unwrap() {
        let ok = c["missing"] == 0 && c["duplicates"] == 0 && c["out_of_order"] == 0 && c["error"].is_null();
        assert_eq!(ok, c["chat_id"] != broken.as_str(), "only the broken room is short: {c}");
    }
    let status = env.bridge.status_json().await;
    let row = status["rooms"].as_array().unwrap().iter().find(|r| r["chat_id"] == broken.as_str()).cloned().unwrap();
    assert_eq!(row["pending"].as_i64().map(|p| p > 0), Some(true), "{row}");
}
