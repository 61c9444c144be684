//! No secret reaches the logs: the real binary runs with `-vv` (everything at trace level, the
//! HTTP libraries included) through a full sync against the simulator and a sync + delivery
//! into a real Synapse, and its stdout and stderr are searched for every secret the run held —
//! the session's CloudKit and mme tokens, the anisette one-time password, the appservice
//! `as_token` and `hs_token`, the service identity (hex and base64, whole and any 16-byte run
//! of it) and the record keys of the zones (hex and base64).

mod common;

use base64::Engine as _;
use cloudkit_sim::Faults;
use common::matrix_env::Env;
use common::*;

/// Forms a secret may be printed in: as it is, hex (both cases), base64 (standard and URL-safe).
fn forms(secret: &[u8]) -> Vec<String> {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let mut out = vec![hex.to_uppercase(), hex, b64.trim_end_matches('=').to_string(), url];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_string());
    }
    out
}

/// Every secret of the run, by name, in every form worth looking for.
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, name: &str, secret: &[u8]) {
        assert!(secret.len() >= 8, "{name} is too short to search for");
        for form in forms(secret) {
            self.0.push((name.to_string(), form));
        }
    }

    /// Each secret found in `log`, by name.
    fn found_in(&self, log: &str) -> Vec<String> {
        self.0.iter().filter(|(_, form)| log.contains(form.as_str())).map(|(name, form)| format!("{name} ({form})")).collect()
    }
}

/// The session's tokens and key material, the anisette password and the zones' record keys.
async fn cloudkit_secrets(bridge: &BridgeDir, sim: &SimHandle) -> Secrets {
    let mut s = Secrets(Vec::new());
    let session = cloudkit::Session::load(&bridge.dir.path().join("session.json")).unwrap();
    s.add("cloudkit token", session.tokens.cloudkit.as_bytes());
    if let Some(mme) = &session.tokens.mme_auth {
        s.add("mme token", mme.as_bytes());
    }
    s.0.push(("service identity (base64)".into(), session.service_identity.clone()));
    let der = base64::engine::general_purpose::STANDARD.decode(&session.service_identity).unwrap();
    for window in der.windows(16) {
        let hex: String = window.iter().map(|b| format!("{b:02x}")).collect();
        s.0.push(("service identity (a 16-byte run, hex)".into(), hex));
    }
    let anisette: serde_json::Value = reqwest::get(format!("{}/_sim/anisette", sim.url)).await.unwrap().json().await.unwrap();
    s.add("anisette X-Apple-I-MD", anisette["X-Apple-I-MD"].as_str().unwrap().as_bytes());
    // The record keys, found as the bridge finds them: the zone's keys, named by its records.
    let client = cloudkit::Client::new(&sim.url, session).unwrap();
    let mut keys = 0;
    for zone in cloudkit::records::ZONES {
        let ring = client.zone_keys(zone).await.unwrap();
        let page = client.retrieve_changes(zone, None).await.unwrap();
        for change in &page.changes {
            if let Some(key) = change.record.as_ref().and_then(|r| r.pcs_key.as_deref()).and_then(|id| ring.get(id)) {
                s.add(&format!("a record key of {zone}"), key.raw());
                keys += 1;
            }
        }
    }
    assert!(keys > 0, "the search must include record keys");
    s
}

fn output(out: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `imessage-bridge -vv ARGS` with no RUST_LOG to override the verbosity.
async fn run_vv(bridge: &BridgeDir, args: &[&str]) -> std::process::Output {
    let out = bridge.command(&[&["-vv"], args].concat()).env_remove("RUST_LOG").output().await.unwrap();
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_trace_level_sync_logs_no_token_and_no_key() {
    let sim = start_sim(spec(31, 4, 80, 0), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    let secrets = cloudkit_secrets(&bridge, &sim).await;
    let out = run_vv(&bridge, &["sync"]).await;
    let log = output(&out);
    // The run did log at trace level, requests and records included: the search means something.
    assert!(log.contains("TRACE") && log.lines().count() > 100, "expected a trace-level log, got {} lines", log.lines().count());
    assert!(bridge.stored_guids().await.len() > 50, "the sync must have run");
    let leaked = secrets.found_in(&log);
    assert!(leaked.is_empty(), "secrets in the -vv log: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_trace_level_run_into_synapse_logs_no_token_and_no_key() {
    let env = Env::start(start_sim(spec(32, 3, 40, 0), Faults::default()).await).await;
    let bridge = &env.bridge;
    let mut secrets = cloudkit_secrets(bridge, &env.sim).await;
    for token in ["as_token", "hs_token"] {
        secrets.add(token, env.reg(token).as_bytes());
    }
    let out = run_vv(bridge, &["run", "--once"]).await;
    let log = output(&out);
    assert!(log.contains("TRACE"), "expected a trace-level log");
    let rooms = bridge.store().await.portals().await.unwrap().len();
    assert!(rooms > 0, "delivery must have created rooms");
    let leaked = secrets.found_in(&log);
    assert!(leaked.is_empty(), "secrets in the -vv log: {leaked:?}");
}

/// An anisette server on 127.0.0.1:0 that hands out the simulator's anisette headers and records
/// everything it receives (request line, headers, body).
async fn recording_anisette(sim: &SimHandle) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::{body::Bytes, http::HeaderMap, http::Uri};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (record, sim) = (seen.clone(), sim.sim.clone());
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (record, sim) = (record.clone(), sim.clone());
        async move {
            let headers: String = headers.iter().map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes()))).collect();
            record.lock().unwrap().push(format!("{uri}\n{headers}\n{}", String::from_utf8_lossy(&body)));
            axum::Json(sim.anisette_headers())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/anisette", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_hands_the_anisette_server_no_secret_of_the_session() {
    let sim = start_sim(spec(33, 3, 60, 0), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    let mut secrets = cloudkit_secrets(&bridge, &sim).await;
    let session_path = bridge.dir.path().join("session.json");
    let mut session = cloudkit::Session::load(&session_path).unwrap();
    secrets.add("cloudkit user id", session.cloudkit_user_id.as_bytes());
    secrets.add("device id", session.device_id.as_bytes());
    // The anisette server's own answer is not the account's secret: it is what it hands out.
    secrets.0.retain(|(name, _)| !name.starts_with("anisette"));
    let (url, received) = recording_anisette(&sim).await;
    session.anisette = Some(cloudkit::session::AnisetteSource { url });
    session.save(&session_path).unwrap();
    bridge.sync_ok().await;
    assert!(bridge.stored_guids().await.len() > 20, "the sync must have run");
    let received = received.lock().unwrap().join("\n----\n");
    assert!(!received.is_empty(), "the sync asked the anisette server nothing");
    let leaked = secrets.found_in(&received);
    assert!(leaked.is_empty(), "secrets sent to the anisette server: {leaked:?}\n{received}");
}
