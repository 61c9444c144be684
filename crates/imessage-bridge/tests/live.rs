//! The live edge never waits for another chat's history: while `run` delivers a big chat's
//! history, the small chats' rooms (their history in) get their new messages. Asserted on what
//! happened, not on how fast: the later messages of the small rooms are in Matrix while the big
//! room still has history pending.

mod common;
mod operator_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cloudkit_sim::{Faults, TruthLine};
use common::*;
use operator_common::*;

/// Non-system message guids of the simulator's truth now, per chat.
fn truth_messages(sim: &cloudkit_sim::Sim) -> BTreeMap<String, BTreeSet<String>> {
    let mut chats: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    sim.truth(|line| {
        if let TruthLine::Message { chat, guid, system: false, .. } = line {
            chats.entry(chat).or_default().insert(guid);
        }
    });
    chats
}

fn rooms(status: &serde_json::Value) -> &Vec<serde_json::Value> {
    status["rooms"].as_array().unwrap_or_else(|| panic!("status --json has no rooms: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_rooms_get_their_new_messages_while_a_big_history_goes_in() {
    // A 3,000-message group chat (Synapse takes minutes for it here) and four small chats.
    let mut account = spec(41, 5, 60, 3000);
    account.later = 40;
    let s = Env::start(start_sim(account, Faults::default()).await).await;
    let b = &s.bridge;
    b.change(&["matrix", "sync_interval_secs"], 60, 1);
    let history = truth_messages(&s.sim.sim);
    let big = history.iter().max_by_key(|(_, guids)| guids.len()).map(|(chat, _)| chat.clone()).unwrap();
    assert!(history[&big].len() >= 2500, "the big chat: {}", history[&big].len());

    let mut run = spawn_run(b, "run.log");
    let every = Duration::from_millis(250);
    let room_of = |st: &serde_json::Value, chat: &str| rooms(st).iter().find(|r| r["chat_id"] == chat).cloned();
    let small_live = |st: &serde_json::Value| {
        let small: Vec<_> = rooms(st).iter().filter(|r| r["chat_id"] != big.as_str()).collect();
        !small.is_empty() && small.iter().all(|r| r["state"] == "live" && r["pending"] == 0 && r["in_flight"] == 0)
    };
    let status = wait_for("the small rooms' history to be in", 600, every, || b.status_json(), small_live).await;
    let big_room = room_of(&status, &big).unwrap();
    assert_eq!(big_room["state"], "history", "{big_room}");
    assert!(big_room["pending"].as_i64().unwrap() > 0, "the big history is still going in: {big_room}");

    s.sim.sim.release_later();
    let now = truth_messages(&s.sim.sim);
    let is_new = |chat: &String, guid: &String| !history.get(chat).is_some_and(|h| h.contains(guid));
    let later: BTreeMap<&String, Vec<&String>> =
        now.iter().filter(|(chat, _)| **chat != big).map(|(chat, guids)| (chat, guids.iter().filter(|g| is_new(chat, g)).collect())).collect();
    let later_count: usize = later.values().map(Vec::len).sum();
    assert!(later_count >= 10, "later messages in the small chats: {later:?}");

    // Every later message of the small chats is delivered (the ledger has its event) ...
    let store = b.store().await;
    let delivered = || async {
        let mut events = BTreeMap::new();
        for guid in later.values().flatten() {
            if let Some(id) = store.delivered_event(guid).await.unwrap() {
                events.insert(guid.to_string(), id);
            }
        }
        events
    };
    let events = wait_for("the small rooms' later messages", 300, every, delivered, |e| e.len() == later_count).await;
    // ... while the big room still takes in its history.
    let status = b.status_json().await;
    let big_room = room_of(&status, &big).unwrap();
    assert_eq!(big_room["state"], "history", "{big_room}");
    assert!(big_room["pending"].as_i64().unwrap() > 0, "the big room's history is still pending: {big_room}");
    assert!(big_room["oldest_pending_age_s"].as_i64().unwrap() > 0, "{big_room}");

    // A client sees them: each small room's newest events hold the later messages' events.
    let hs = matrix::HomeserverClient::new(&s.synapse.url, &s.reg("as_token")).unwrap();
    let bot = format!("@imessagebot:{DOMAIN}");
    for (chat, guids) in &later {
        let room = room_of(&status, chat).unwrap();
        let room_id = room["room_id"].as_str().unwrap();
        assert_eq!(room["state"], "live", "{room}");
        let page = hs.messages(room_id, &bot, None, "b", 200).await.unwrap();
        let seen: BTreeSet<&str> = page.chunk.iter().filter_map(|e| e["event_id"].as_str()).collect();
        for guid in guids {
            let id = &events[guid.as_str()];
            assert!(id == matrix::send::NO_EVENT || seen.contains(id.as_str()), "{guid} ({id}) is not among the newest events of {chat}");
        }
    }

    // SIGTERM in the middle of the big history stops cleanly.
    let log = terminate(&mut run, "during the big history").await;
    assert!(log.contains("delivery finished"), "a pass of the small rooms was logged:\n{log}");
}
