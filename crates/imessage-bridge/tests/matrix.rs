//! Delivery into a real Synapse, checked the way a person would check it: by paginating each room
//! backwards like a client and comparing with the simulator's ground truth (not with the store).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloudkit_sim::{Faults, TruthLine};
use common::synapse::{free_port, Synapse};
use common::*;
use matrix::ghost::{bot_user_id, ghost_user_id};
use matrix::HomeserverClient;

const DOMAIN: &str = "localhost";
const OWNER: &str = "@owner:localhost";

struct Env {
    sim: SimHandle,
    bridge: BridgeDir,
    synapse: Synapse,
    listen_port: u16,
}

impl Env {
    async fn start(sim: SimHandle) -> Env {
        let bridge = BridgeDir::new(&sim);
        let hs_port = free_port();
        let listen_port = free_port();
        let out = bridge.run(&[
            "init",
            "--homeserver",
            &format!("http://127.0.0.1:{hs_port}"),
            "--domain",
            DOMAIN,
            "--owner",
            OWNER,
            "--cloudkit",
            &sim.url,
            "--session",
            bridge.dir.path().join("session.json").to_str().unwrap(),
            "--database",
            "sqlite:bridge.db",
            "--out",
            bridge.dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{listen_port}"),
            "--force",
        ])
        .await;
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        // Fast retries for tests.
        let mut config = std::fs::read_to_string(&bridge.config).unwrap();
        config = config.replace("backoff_ms: 100", "backoff_ms: 1");
        std::fs::write(&bridge.config, config).unwrap();
        let synapse = Synapse::start(bridge.dir.path(), hs_port, DOMAIN, &bridge.dir.path().join("registration.yaml")).await;
        Env { sim, bridge, synapse, listen_port }
    }

    fn hs(&self) -> HomeserverClient {
        let reg: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(self.bridge.dir.path().join("registration.yaml")).unwrap()).unwrap();
        HomeserverClient::new(&self.synapse.url, reg["as_token"].as_str().unwrap()).unwrap()
    }

    fn hs_token(&self) -> String {
        let reg: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(self.bridge.dir.path().join("registration.yaml")).unwrap()).unwrap();
        reg["hs_token"].as_str().unwrap().to_string()
    }

    async fn verify_json(&self) -> serde_json::Value {
        let out = self.bridge.run(&["verify", "--json"]).await;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify --json is not JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.success(), v["ok"] == true, "exit code must follow ok");
        v
    }

    /// `run --once` (sync + deliver), then `verify`, which must be ok. Returns verify's JSON.
    async fn run_once_and_verify(&self) -> serde_json::Value {
        let out = self.bridge.run(&["run", "--once"]).await;
        assert!(out.status.success(), "run --once failed: {}", String::from_utf8_lossy(&out.stderr));
        let v = self.verify_json().await;
        assert_eq!(v["ok"], true, "verify: {v}");
        v
    }

    /// Compares every room, paginated backwards as the owner, with the simulator's truth.
    async fn assert_rooms_match_truth(&self) {
        let mut truth_chats = BTreeMap::new();
        let mut truth_msgs: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
        self.sim.sim.truth(|line| match line {
            TruthLine::Chat { chat, name, .. } => {
                truth_chats.insert(chat, name);
            }
            TruthLine::Message { chat, guid, sender, from_me, system: false, ts_ms, .. } => {
                let user = if from_me { OWNER.to_string() } else { ghost_user_id(&sender, DOMAIN) };
                truth_msgs.entry(chat).or_default().push((guid, user, ts_ms));
            }
            _ => {}
        });
        let store = self.bridge.store().await;
        let hs = self.hs();
        let bot = bot_user_id(DOMAIN);
        for (chat, name) in &truth_chats {
            let portal = store.portal(chat).await.unwrap().unwrap_or_else(|| panic!("no portal for {chat}"));
            let (events, reached_start) = matrix::verify::paginate(&hs, &portal.room_id, OWNER).await.unwrap();
            assert!(reached_start, "{chat}: pagination must reach the room's creation");
            let seen: Vec<(String, String, i64)> =
                events.iter().filter_map(|e| e.guid.clone().map(|g| (g, e.sender.clone(), e.ts))).collect();
            let mut expected = truth_msgs.remove(chat).unwrap_or_default();
            expected.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
            assert_eq!(seen.len(), expected.len(), "{chat}: reachable message count");
            assert!(seen == expected, "{chat}: messages, senders or order differ from truth");
            let bot_events = events.iter().filter(|e| e.sender == bot && !e.is_state).count();
            assert_eq!(bot_events, 0, "{chat}: bridge bot posted into the timeline");
            let room_name = hs.state(&portal.room_id, OWNER, "m.room.name", "").await.unwrap().and_then(|c| c["name"].as_str().map(str::to_string));
            assert_eq!(&room_name, name, "{chat}: room name");
        }
        assert!(truth_msgs.is_empty(), "truth has messages in chats without portals");
    }
}

/// History first, then the live edge: messages that arrive after the history was delivered (and
/// a group rename among them) are appended after it — pagination still yields every room in
/// timestamp order, ending at the newest message, with the new room name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_edge_reachable_by_back_pagination() {
    let mut account = spec(11, 8, 600, 2500);
    account.later = 250;
    let sim = start_sim(account, Faults::default()).await;
    let env = Env::start(sim).await;
    let history = env.run_once_and_verify().await;
    env.assert_rooms_match_truth().await;

    env.sim.sim.release_later();
    let live = env.run_once_and_verify().await;
    let total = |v: &serde_json::Value| v["chats"].as_array().unwrap().iter().map(|c| c["reachable"].as_u64().unwrap()).sum::<u64>();
    assert!(total(&live) > total(&history), "later messages must be delivered: {} then {}", total(&history), total(&live));
    env.assert_rooms_match_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_twice_then_resume() {
    let sim = start_sim(spec(12, 6, 900, 1200), Faults::default()).await;
    let env = Env::start(sim).await;
    env.bridge.sync_ok().await;
    let total = env.bridge.store().await.message_guids().await.unwrap().len();
    // A crash between `createRoom` and saving the portal leaves a room only the homeserver
    // knows: the restarted bridge must adopt it, not create a second room for the chat.
    let chats = env.bridge.store().await.chats().await.unwrap();
    let orphan_chat = chats.last().unwrap().chat_id.clone();
    let hs = env.hs();
    let bot = bot_user_id(DOMAIN);
    hs.register(matrix::ghost::BOT_LOCALPART).await.unwrap();
    let orphan_room = hs
        .create_room(
            &bot,
            &serde_json::json!({
                "preset": "private_chat",
                "initial_state": [{
                    "type": "m.bridge",
                    "state_key": format!("fi.imessage_bridge://imessage/{orphan_chat}"),
                    "content": { "bridgebot": bot, "channel": { "id": orphan_chat } },
                }],
            }),
        )
        .await
        .unwrap();
    for kill_at in [150usize, 700] {
        let mut child = env.bridge.command(&["deliver"]).spawn().unwrap();
        let mut killed = false;
        for _ in 0..20_000 {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            let delivered = env.bridge.store().await.delivered_count().await.unwrap() as usize;
            if delivered >= kill_at {
                child.start_kill().unwrap();
                killed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.wait().await.unwrap();
        assert!(killed, "delivery finished before the kill at {kill_at} (of {total})");
    }
    let out = env.bridge.run(&["deliver"]).await;
    assert!(out.status.success(), "deliver after kills failed: {}", String::from_utf8_lossy(&out.stderr));
    let v = env.verify_json().await;
    assert_eq!(v["ok"], true, "verify: {v}");
    for c in v["chats"].as_array().unwrap() {
        assert_eq!(c["missing"], 0, "{c}");
        assert_eq!(c["duplicates"], 0, "{c}");
    }
    env.assert_rooms_match_truth().await;
    let portal = env.bridge.store().await.portal(&orphan_chat).await.unwrap().unwrap();
    assert_eq!(portal.room_id, orphan_room.as_str(), "the room created before the crash must be adopted");
    assert_eq!(hs.joined_rooms(&bot).await.unwrap().len(), chats.len(), "one room per chat, no duplicates");

    // The bridge's portals and ledger are lost while the homeserver keeps its rooms: every room
    // is adopted again and what it holds is recorded, so nothing is sent twice.
    let delivered = env.bridge.store().await.delivered_count().await.unwrap();
    {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&env.bridge.db_uri).await.unwrap();
        sqlx::query("DELETE FROM deliveries").execute(&mut db).await.unwrap();
        sqlx::query("DELETE FROM portals").execute(&mut db).await.unwrap();
        db.close().await.unwrap();
    }
    let out = env.bridge.run(&["deliver"]).await;
    assert!(out.status.success(), "deliver after losing the ledger failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.bridge.store().await.delivered_count().await.unwrap(), delivered);
    assert_eq!(hs.joined_rooms(&bot).await.unwrap().len(), chats.len(), "rooms must be adopted, not created again");
    let v = env.verify_json().await;
    assert_eq!(v["ok"], true, "verify after losing the ledger: {v}");
    env.assert_rooms_match_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appservice_api_checks_tokens_and_bodies() {
    let sim = start_sim(spec(13, 2, 20, 0), Faults::default()).await;
    let env = Env::start(sim).await;
    let mut child = env.bridge.command(&["run"]).spawn().unwrap();
    let base = format!("http://127.0.0.1:{}", env.listen_port);
    let http = reqwest::Client::new();
    // Wait (bounded) for the listener.
    let mut up = false;
    for _ in 0..600 {
        if http.post(format!("{base}/_matrix/app/v1/ping")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "appservice listener did not come up");
    let txn = |id: &str| format!("{base}/_matrix/app/v1/transactions/{id}");
    let body = serde_json::json!({ "events": [] });
    let r = http.put(txn("1")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.put(txn("1")).bearer_auth("wrong").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.put(txn("1")).bearer_auth(env.hs_token()).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http.put(txn("1")).bearer_auth(env.hs_token()).json(&serde_json::json!({ "events": "nope" })).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http.put(txn("1")).bearer_auth(env.hs_token()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.put(format!("{}?access_token={}", txn("2"), env.hs_token())).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "legacy access_token query parameter");
    let r = http.post(format!("{base}/_matrix/app/v1/ping")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// The size that broke the old bridge: a 25,072-message group chat must be reachable end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_chat_of_25072_messages_is_fully_reachable() {
    let sim = start_sim(spec(1, 4, 300, 25_072), Faults::default()).await;
    let env = Env::start(sim).await;
    let v = env.run_once_and_verify().await;
    let big = &env.sim.sim.account.chats[0].chat_id;
    let chat = v["chats"].as_array().unwrap().iter().find(|c| &c["chat_id"] == big).unwrap();
    assert!(chat["reachable"].as_u64().unwrap() > 24_000, "{chat}");
    env.assert_rooms_match_truth().await;
}
