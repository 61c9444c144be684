//! What a client shows as a room's name, read the way Element reads it: the owner's `/sync` with
//! lazy-loaded members (Synapse then sends its own `m.heroes`), and the spec's order (name, then
//! canonical alias, then the heroes less the service members, each by its display name). Shared
//! by the tests of ghost profiles and of contacts; independent of the bridge's `verify`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::env::Env;
use crate::OWNER;

/// Per joined room of the owner: its state (the state block then the timeline's state events,
/// later ones winning) and Synapse's `m.heroes`. Synapse caches an initial sync's answer for a
/// while per request: `fresh` gives each call a filter of its own.
pub async fn owner_sync(env: &Env, fresh: u32) -> BTreeMap<String, (Vec<Value>, Vec<String>)> {
    let filter = json!({ "room": { "timeline": { "limit": 50 + fresh }, "state": { "lazy_load_members": true } } }).to_string();
    let url = format!("{}/_matrix/client/v3/sync", env.synapse.url);
    let resp =
        reqwest::Client::new().get(&url).bearer_auth(env.as_token()).query(&[("user_id", OWNER), ("filter", filter.as_str())]).send().await.expect("sync");
    assert!(resp.status().is_success(), "sync: {}", resp.status());
    let body: Value = serde_json::from_slice(&resp.bytes().await.expect("sync body")).expect("sync JSON");
    let mut rooms = BTreeMap::new();
    for (room, r) in body["rooms"]["join"].as_object().expect("joined rooms") {
        let mut state: BTreeMap<(String, String), Value> = BTreeMap::new();
        let timeline = r["timeline"]["events"].as_array().cloned().unwrap_or_default();
        let events = r["state"]["events"].as_array().cloned().unwrap_or_default().into_iter().chain(timeline);
        for e in events.filter(|e| e["state_key"].is_string()) {
            state.insert((e["type"].as_str().unwrap_or_default().into(), e["state_key"].as_str().unwrap_or_default().into()), e);
        }
        let heroes = r["summary"]["m.heroes"].as_array().map(|h| h.iter().filter_map(|u| u.as_str().map(str::to_string)).collect()).unwrap_or_default();
        rooms.insert(room.clone(), (state.into_values().collect(), heroes));
    }
    rooms
}

/// A DM's name as Element computes it from the sync: no name, no canonical alias, Synapse's
/// heroes less the service members, the one left by its display name. None when the room has a
/// name or an alias that would be shown instead, or not exactly one person.
pub fn dm_name(state: &[Value], heroes: &[String]) -> Option<String> {
    let get = |kind: &str, key: &str| state.iter().find(|e| e["type"] == kind && e["state_key"] == key).map(|e| e["content"].clone());
    if get("m.room.name", "").and_then(|c| c["name"].as_str().map(str::to_string)).is_some_and(|n| !n.is_empty()) {
        return None;
    }
    if get("m.room.canonical_alias", "").is_some_and(|c| c["alias"].is_string()) {
        return None;
    }
    let service = get("io.element.functional_members", "").map(|c| c["service_members"].clone()).unwrap_or(json!([]));
    let service: Vec<&str> = service.as_array().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let people: Vec<&String> = heroes.iter().filter(|h| !service.contains(&h.as_str())).collect();
    let [one] = people.as_slice() else { return None };
    get("m.room.member", one).and_then(|c| c["displayname"].as_str().map(str::to_string))
}
