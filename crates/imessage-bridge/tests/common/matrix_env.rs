//! A bridge delivering into a real Synapse, and the checks a person would make: each room
//! paginated backwards like a client and compared with the simulator's ground truth (never
//! with the store). Shared by the delivery tests.

use std::collections::BTreeMap;

use cloudkit_sim::TruthLine;
use matrix::ghost::{bot_user_id, ghost_user_id};
use matrix::HomeserverClient;

use super::synapse::{free_port, Synapse};
use super::*;

pub const DOMAIN: &str = "localhost";
pub const OWNER: &str = "@owner:localhost";

pub struct Env {
    pub sim: SimHandle,
    pub bridge: BridgeDir,
    pub synapse: Synapse,
    pub listen_port: u16,
}

impl Env {
    pub async fn start(sim: SimHandle) -> Env {
        Env::start_with_database(sim, "sqlite:bridge.db").await
    }

    /// A bridge on `database` (`sqlite:…` relative to its folder, or `postgres://…`).
    pub async fn start_with_database(sim: SimHandle, database: &str) -> Env {
        let session = "session.json".to_string();
        let url = sim.url.clone();
        Env::start_with(sim, database, &["--cloudkit", &url, "--session", &session]).await
    }

    /// A bridge whose history comes from a local source (`--source chat-db --source-path …`
    /// and the like); `sim` is what the source was written from, for its truth.
    pub async fn start_local(sim: SimHandle, source: &[&str]) -> Env {
        Env::start_with(sim, "sqlite:bridge.db", source).await
    }

    /// `init` with the source flags `source` (a relative `session` is in the bridge's folder).
    async fn start_with(sim: SimHandle, database: &str, source: &[&str]) -> Env {
        let mut bridge = BridgeDir::new(&sim);
        if database.starts_with("postgres") {
            bridge.db_uri = database.to_string();
        }
        let session = bridge.dir.path().join("session.json");
        let source: Vec<&str> = source.iter().map(|a| if *a == "session.json" { session.to_str().unwrap() } else { a }).collect();
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
            "--database",
            database,
            "--out",
            bridge.dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{listen_port}"),
            "--force",
        ]
        .into_iter()
        .chain(source)
        .collect::<Vec<_>>())
        .await;
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        // Fast retries for tests.
        let mut config = std::fs::read_to_string(&bridge.config).unwrap();
        config = config.replace("backoff_ms: 100", "backoff_ms: 1");
        std::fs::write(&bridge.config, config).unwrap();
        let synapse = Synapse::start(bridge.dir.path(), hs_port, DOMAIN, &bridge.dir.path().join("registration.yaml")).await;
        Env { sim, bridge, synapse, listen_port }
    }

    pub fn hs(&self) -> HomeserverClient {
        HomeserverClient::new(&self.synapse.url, &self.as_token()).unwrap()
    }

    /// A token of the registration the bridge's `init` wrote.
    pub fn registration_token(&self, which: &str) -> String {
        let reg: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(self.bridge.dir.path().join("registration.yaml")).unwrap()).unwrap();
        reg[which].as_str().unwrap().to_string()
    }

    pub fn as_token(&self) -> String {
        self.registration_token("as_token")
    }

    pub fn hs_token(&self) -> String {
        self.registration_token("hs_token")
    }

    pub async fn verify_json(&self) -> serde_json::Value {
        let out = self.bridge.run(&["verify", "--json"]).await;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify --json is not JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.success(), v["ok"] == true, "exit code must follow ok");
        v
    }

    /// `run --once` (sync + deliver), then `verify`, which must be ok. Returns verify's JSON.
    pub async fn run_once_and_verify(&self) -> serde_json::Value {
        let out = self.bridge.run(&["run", "--once"]).await;
        assert!(out.status.success(), "run --once failed: {}", String::from_utf8_lossy(&out.stderr));
        let v = self.verify_json().await;
        assert_eq!(v["ok"], true, "verify: {v}");
        v
    }

    /// Compares every room, paginated backwards as the owner, with the simulator's truth.
    pub async fn assert_rooms_match_truth(&self) {
        self.assert_rooms_match(sim_truth(&self.sim.sim)).await
    }

    /// Compares every room, paginated backwards as the owner, with the truth `lines`.
    pub async fn assert_rooms_match(&self, lines: Vec<TruthLine>) {
        let (truth_chats, mut expected) = truth_rooms_of(lines);
        let store = self.bridge.store().await;
        let hs = self.hs();
        let bot = bot_user_id(DOMAIN);
        for (chat, name) in &truth_chats {
            let portal = store.portal(chat).await.unwrap().unwrap_or_else(|| panic!("no portal for {chat}"));
            let (events, reached_start) = matrix::verify::paginate(&hs, &portal.room_id, OWNER).await.unwrap();
            assert!(reached_start, "{chat}: pagination must reach the room's creation");
            // Every event that carries a message guid, in timeline order: the message's parts
            // and its reaction; edits and redactions carry none.
            let mut seen: BTreeMap<String, (String, i64, usize)> = BTreeMap::new();
            let mut last_ts = i64::MIN;
            for e in &events {
                let Some(g) = e.guid.clone() else { continue };
                // A message delivered late (after newer ones) says so and shows its time.
                let late = e.raw["content"][matrix::send::LATE_KEY].as_i64();
                match late {
                    Some(original) => assert_eq!(original, e.ts, "{chat}: a late message keeps its time"),
                    None => {
                        assert!(e.ts >= last_ts, "{chat}: events out of order at {g}");
                        last_ts = e.ts;
                    }
                }
                seen.entry(g).or_insert((e.sender.clone(), e.ts, 0)).2 += 1;
            }
            let want = expected.remove(chat).unwrap_or_default();
            assert_eq!(seen.len(), want.len(), "{chat}: messages shown");
            for (g, w) in &want {
                assert_eq!(seen.get(g), Some(w), "{chat}: message {g} (sender, time, events)");
            }
            let bot_events = events.iter().filter(|e| e.sender == bot && !e.is_state).count();
            assert_eq!(bot_events, 0, "{chat}: bridge bot posted into the timeline");
            let room_name = hs.state(&portal.room_id, OWNER, "m.room.name", "").await.unwrap().and_then(|c| c["name"].as_str().map(str::to_string));
            assert_eq!(&room_name, name, "{chat}: room name");
        }
        assert!(expected.is_empty(), "truth has messages in chats without portals");
    }
}

/// What each room must show according to the simulator's truth, worked out here from the truth
/// alone: per chat, every message shown (by guid: its sender, time and how many events carry
/// it — one per part, attachments included) and every tapback whose reaction still stands
/// (removals and replacements redact; a tapback on something not shown has nothing to react to;
/// unsent messages are not shown).
pub fn truth_rooms(sim: &cloudkit_sim::Sim) -> (BTreeMap<String, Option<String>>, BTreeMap<String, BTreeMap<String, (String, i64, usize)>>) {
    truth_rooms_of(sim_truth(sim))
}

/// Every line of the simulator's truth.
pub fn sim_truth(sim: &cloudkit_sim::Sim) -> Vec<TruthLine> {
    let mut lines = Vec::new();
    sim.truth(|line| lines.push(line));
    lines
}

/// As [`truth_rooms`], from truth lines (a Messages folder's truth, say).
pub fn truth_rooms_of(all: Vec<TruthLine>) -> (BTreeMap<String, Option<String>>, BTreeMap<String, BTreeMap<String, (String, i64, usize)>>) {
    use imessage::records::ContentPart;
    let mut chats = BTreeMap::new();
    let mut lines = Vec::new();
    for line in all {
        match line {
            TruthLine::Chat { chat, name, .. } => {
                chats.insert(chat, name);
            }
            TruthLine::Message { system: false, .. } => lines.push(line),
            _ => {}
        }
    }
    let mut rooms: BTreeMap<String, BTreeMap<String, (String, i64, usize)>> = BTreeMap::new();
    let mut shown = std::collections::HashSet::new();
    // (chat, sender, target, part) → (kind, tapback guid, its entry)
    let mut standing: BTreeMap<(String, String, String, String), (u32, String, (String, i64, usize))> = BTreeMap::new();
    for line in lines {
        let TruthLine::Message { chat, guid, sender, from_me, ts_ms, associated_type, associated_guid, content, text, .. } = line else { continue };
        let user = if from_me { OWNER.to_string() } else { ghost_user_id(&sender, DOMAIN) };
        if let (Some(kind), Some(target)) = (associated_type, associated_guid.as_deref()) {
            let (part, target) = target.strip_prefix("p:").and_then(|t| t.split_once('/')).unwrap_or(("0", target));
            let slot = (chat.clone(), sender.clone(), target.to_string(), part.to_string());
            if kind >= 3000 {
                if standing.get(&slot).is_some_and(|(k, _, _)| *k == kind - 1000) {
                    standing.remove(&slot);
                }
            } else if shown.contains(target) {
                standing.insert(slot, (kind, guid, (user, ts_ms, 1)));
            }
            continue;
        }
        if content.unsent {
            continue;
        }
        let mut parts: Vec<i64> = Vec::new();
        for p in &content.parts {
            let n = match p {
                ContentPart::Text { part, .. } | ContentPart::Attachment { part, .. } => part.unwrap_or(0),
            };
            let attachment = matches!(p, ContentPart::Attachment { .. });
            if !content.unsent_parts.contains(&n) && (attachment || parts.last() != Some(&n)) {
                parts.push(n);
            }
        }
        let events = if content.parts.is_empty() { usize::from(text.as_deref().is_some_and(|t| !t.is_empty() && t != "\u{FFFC}")) } else { parts.len() };
        if events > 0 {
            shown.insert(guid.clone());
            rooms.entry(chat).or_default().insert(guid, (user, ts_ms, events));
        }
    }
    for ((chat, ..), (_, guid, entry)) in standing {
        rooms.entry(chat).or_default().insert(guid, entry);
    }
    (chats, rooms)
}
