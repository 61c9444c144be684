//! `run` as a daemon is left alone with: the owner typing in a portal (one notice, every message
//! counted), Prometheus `/metrics` agreeing with what was synced and delivered, progress in the
//! log at a steady interval off a terminal, and a homeserver that is not up yet when `run`
//! starts.

mod common;
mod operator_common;

use std::time::Duration;

use cloudkit_sim::Faults;
use common::*;
use operator_common::*;
use testkit::campaign::find_progress;

/// One value of the text exposition (`name` with its suffix, no labels), None if absent.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

async fn scrape(port: u16) -> String {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert!(r.status().is_success(), "GET /metrics: {}", r.status());
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_messages_get_one_notice_and_metrics_match_what_was_synced_and_delivered() {
    // Small pages with failures among them, so pages and page errors both count.
    let faults = Faults { page_size: 20, page_errors: 0.2, ..Faults::default() };
    let s = Env::start(start_sim(spec(25, 3, 120, 0), faults).await).await;
    let b = &s.bridge;
    // init writes the key (off), so an operator sees it.
    // Port 0: the bridge takes a free port and names it in its log (no port picked in advance
    // that something else could take first).
    b.change(&["matrix", "metrics_listen"], serde_norway::Value::Null, "127.0.0.1:0");
    b.change(&["sync", "error_budget"], 3, 12);

    let mut run = spawn_run_logging(b, "run.log", "json");
    let every = Duration::from_millis(500);
    let log = || async { std::fs::read_to_string(&run.1).unwrap() };
    let listening = wait_for("the metrics listener", 60, every, log, |l| find_progress(l, matrix::progress::METRICS_LISTENING).is_some()).await;
    let addr = find_progress(&listening, matrix::progress::METRICS_LISTENING).unwrap()["addr"].as_str().unwrap().to_string();
    let metrics_port = addr.parse::<std::net::SocketAddr>().unwrap_or_else(|e| panic!("metrics addr {addr:?}: {e}")).port();
    assert_ne!(metrics_port, 0);
    let done = |st: &serde_json::Value| matches!(delivery_totals(st), (_, stored, 0) if stored > 0);
    let status = wait_for("the history to be delivered", 300, every, || b.status_json(), done).await;
    // Metrics are updated after the round; the round is over once its log line is there.
    wait_for("the delivery round to end", 60, every, log, |l| find_progress(l, matrix::progress::DELIVERY_FINISHED).is_some()).await;
    let text = scrape(metrics_port).await;
    // Not on the appservice port, which answers the homeserver only.
    let elsewhere = reqwest::get(format!("http://127.0.0.1:{}/metrics", s.listen_port)).await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    let zones = status["zones"].as_array().unwrap();
    let pages: i64 = zones.iter().map(|z| z["pages"].as_i64().unwrap()).sum();
    let stored: i64 = zones.iter().map(|z| z["stored"].as_i64().unwrap() + z["skipped"].as_i64().unwrap()).sum();
    let (delivered, _, _) = delivery_totals(&status);
    assert_eq!(metric(&text, "imessage_bridge_pages_total"), Some(pages as f64), "{text}");
    assert_eq!(metric(&text, "imessage_bridge_records_synced_total"), Some(stored as f64), "{text}");
    assert_eq!(metric(&text, "imessage_bridge_events_delivered_total"), Some(delivered as f64), "{text}");
    assert_eq!(metric(&text, "imessage_bridge_pending_messages"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "imessage_bridge_undecryptable_records"), Some(0.0), "{text}");
    assert!(metric(&text, "imessage_bridge_page_errors_total").unwrap_or(0.0) >= 1.0, "20% of requests fail:\n{text}");
    assert_eq!(metric(&text, "imessage_bridge_delivery_latency_seconds_count"), Some(delivered as f64), "{text}");
    if status["files"]["stored"].as_i64().unwrap() > 0 {
        assert!(metric(&text, "imessage_bridge_media_uploaded_bytes_total").unwrap_or(0.0) > 0.0, "{text}");
    }
    assert_eq!(metric(&text, "imessage_bridge_owner_messages_refused_total"), Some(0.0), "{text}");

    // The owner types twice in one portal (through the appservice token as the owner, which
    // Synapse then pushes to the bridge in a transaction).
    let room = status["rooms"].as_array().unwrap().iter().find_map(|r| r["room_id"].as_str()).unwrap().to_string();
    let owner = matrix::HomeserverClient::new(&s.synapse.url, &s.reg("as_token")).unwrap();
    for (n, body) in ["are you there?", "hello?"].iter().enumerate() {
        let content = serde_json::json!({ "msgtype": "m.text", "body": body });
        owner.send(&room, OWNER, "m.room.message", &format!("owner-typed-{n}"), None, &content).await.unwrap();
    }
    let typed = |st: &serde_json::Value| {
        st["rooms"].as_array().unwrap().iter().find(|r| r["room_id"].as_str() == Some(room.as_str())).and_then(|r| r["owner_messages"].as_i64())
    };
    let status = wait_for("both owner messages to be counted", 60, every, || b.status_json(), |st| typed(st) == Some(2)).await;
    let others: i64 = status["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["room_id"].as_str() != Some(room.as_str()))
        .map(|r| r["owner_messages"].as_i64().unwrap())
        .sum();
    assert_eq!(others, 0, "{status}");
    let bot = format!("@imessagebot:{DOMAIN}");
    let notices = || async {
        let page = owner.messages(&room, OWNER, None, "b", 50).await.unwrap();
        page.chunk
            .iter()
            .filter(|e| e["sender"] == bot.as_str() && e["content"]["msgtype"] == "m.notice" && e["content"][matrix::inbound::NOTICE_KEY].is_string())
            .count()
    };
    assert_eq!(wait_for("the notice", 30, every, notices, |n| *n >= 1).await, 1);
    let text = scrape(metrics_port).await;
    assert_eq!(metric(&text, "imessage_bridge_owner_messages_refused_total"), Some(2.0), "{text}");
    let table = String::from_utf8(b.run(&["status"]).await.stdout).unwrap();
    assert!(table.contains("typed: 2 message(s) you wrote in portals"), "{table}");
    assert_eq!(notices().await, 1, "one notice for two messages");
    let log = terminate(&mut run, "after the owner messages").await;
    assert_eq!(log.matches("owner message cannot reach iMessage").count(), 2, "{log}");
    // What the owner typed and the bot's one answer are not the bridge's history: verify stays ok.
    let out = b.run(&["verify", "--json"]).await;
    assert!(out.status.success(), "verify after the owner typed:\n{}", String::from_utf8_lossy(&out.stdout));
}

/// Off a terminal (the test captures stderr), `sync` logs a progress line per zone at the
/// interval, with counts that grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_off_a_terminal_logs_progress_at_a_steady_interval() {
    let sim = start_sim(spec(26, 6, 2500, 0), Faults { page_size: 5, ..Faults::default() }).await;
    let bridge = BridgeDir::new(&sim);
    let out = bridge.command(&["sync", "--records-only"]).env("RUST_LOG", "info").env("IMESSAGE_BRIDGE_PROGRESS_SECS", "0.1").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let counts: Vec<u64> = stderr
        .lines()
        .filter(|l| l.contains("progress") && l.contains("what=\"sync\"") && l.contains("name=messageManateeZone"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("done=")).and_then(|n| n.parse().ok()))
        .collect();
    assert!(counts.len() >= 3, "progress lines at 0.1 s during a sync of 500 pages:\n{stderr}");
    assert!(counts.windows(2).all(|w| w[0] <= w[1]) && counts.first() < counts.last(), "counts grow: {counts:?}");
    assert!(stderr.lines().any(|l| l.contains("progress") && l.contains("total=") && l.contains("rate=")), "{stderr}");
}

/// `run` started before the homeserver keeps trying it (logged, with a pause) and syncs in the
/// meantime; once the homeserver is up it delivers, and `verify` is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_started_before_the_homeserver_syncs_then_delivers() {
    // The owner is registered on a first start of Synapse, which is then stopped.
    let s = Env::start(start_sim(spec(27, 3, 80, 0), Faults::default()).await).await;
    let (port, dir) = (s.synapse.port, s.bridge.dir.path().to_path_buf());
    s.synapse.stop().await;
    let b = &s.bridge;
    let mut run = spawn_run(b, "run.log");
    let every = Duration::from_millis(500);
    let log = || async { std::fs::read_to_string(&run.1).unwrap() };
    wait_for("a retry of the homeserver", 60, every, log, |l| l.contains("trying the homeserver again in")).await;
    let synced = |st: &serde_json::Value| st["zones"].as_array().unwrap().iter().all(|z| z["stop_reason"] == "api_done");
    let status = wait_for("the sync without a homeserver", 120, every, || b.status_json(), synced).await;
    assert_eq!(delivery_totals(&status).0, 0, "nothing delivered without a homeserver");
    assert!(run.0.try_wait().unwrap().is_none(), "run waits for the homeserver:\n{}", log().await);

    let _synapse = common::synapse::Synapse::start(&dir, port, DOMAIN, &dir.join("registration.yaml")).await;
    let done = |st: &serde_json::Value| matches!(delivery_totals(st), (_, stored, 0) if stored > 0);
    wait_for("delivery once the homeserver is up", 300, every, || b.status_json(), done).await;
    let stderr = terminate(&mut run, "after the late homeserver").await;
    assert!(stderr.contains("appservice link ok"), "{stderr}");
    let out = b.run(&["verify"]).await;
    assert!(out.status.success(), "verify:\n{}", String::from_utf8_lossy(&out.stdout));
}
