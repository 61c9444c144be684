//! Faults of CloudKit and of the homeserver that the other suites do not make, each with its
//! outcome asserted against the simulator's truth (never the bridge's own store):
//! - CloudKit: 10% of requests failing, plus replies cut off half-way and 200s whose bodies are
//!   an HTML error page or random bytes (a proxy in front of the simulator): the zone may stop on
//!   its error budget, the next run resumes, and the stored set is exactly the truth;
//! - 429 with `Retry-After`: the bridge's next request comes no sooner than the header says
//!   (measured by the proxy between its 429 and the next request, not by a sleep in the test);
//! - Synapse stopped in the middle of the history and started again: `run` backs off, resumes,
//!   and every room shows each message exactly once, in order.
//!
//! Covered elsewhere: error bursts longer than the budget (`sync.rs`,
//! `error_budget_stops_with_resumable_token`), records that fail to parse (`sync.rs`,
//! `unparsable_changes_are_counted_and_the_rest_of_their_pages_stored`).

mod common;
mod operator_common;

use std::time::Duration;

use cloudkit_sim::Faults;
use common::proxy::{Damage, Proxy};
use common::synapse::Synapse;
use common::*;
use operator_common::{delivery_totals, spawn_run, terminate, wait_for, Env, DOMAIN, OWNER};

const MESSAGE_ZONE: &str = "messageManateeZone";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_failed_truncated_and_garbled_replies_still_give_the_exact_set() {
    let sim = start_sim(spec(51, 10, 3000, 1000), Faults { page_errors: 0.10, page_size: 50, ..Faults::default() }).await;
    let proxy = Proxy::start(&sim.url, |n| match n % 10 {
        3 => Some(Damage::Truncate),
        6 => Some(Damage::Html),
        8 => Some(Damage::Garbage),
        _ => None,
    })
    .await;
    let bridge = BridgeDir::new(&sim);
    bridge.point_at_url(&sim, &proxy.url);
    // Each damaged reply is a failure; three in a row spend a zone's budget, and the next run
    // resumes from its token.
    let mut runs = 0;
    let mut budget_stops = 0;
    loop {
        runs += 1;
        let out = bridge.run(&["sync", "--records-only"]).await;
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error_budget"), "a failed sync names its stop: {stderr}");
        budget_stops += 1;
        assert!(runs < 25, "no complete sync in {runs} runs");
    }
    let status = bridge.status_json().await;
    assert_eq!(zone(&status, MESSAGE_ZONE)["stop_reason"], "api_done", "{status}");
    assert_eq!(bridge.stored_guids().await, truth_guids(&sim.sim), "exactly the truth, after {runs} runs ({budget_stops} budget stops)");
    for z in status["zones"].as_array().unwrap() {
        assert_eq!(z["undecryptable"], 0, "a damaged reply must not be taken for damaged records: {z}");
    }
    let damaged = proxy.damaged();
    for kind in [Damage::Truncate, Damage::Html, Damage::Garbage] {
        assert!(damaged.iter().filter(|d| **d == kind).count() >= 3, "{kind:?} served too rarely: {damaged:?}");
    }
    assert!(sim.sim.stats().injected_errors >= 5, "the simulator must fail requests too: {:?}", sim.sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_for_as_long_as_its_retry_after_says() {
    let sim = start_sim(spec(52, 3, 300, 0), Faults { page_size: 50, ..Faults::default() }).await;
    let proxy = Proxy::start(&sim.url, |n| match n {
        2 => Some(Damage::Throttle { secs: 2 }),
        5 => Some(Damage::Throttle { secs: 1 }),
        _ => None,
    })
    .await;
    let bridge = BridgeDir::new(&sim);
    bridge.point_at_url(&sim, &proxy.url);
    // Backoff is capped well above the headers' waits (the tests' default cap is 20 ms).
    bridge.change(&["sync", "backoff_max_ms"], 20, 10_000);
    bridge.sync_ok().await;
    assert_eq!(bridge.stored_guids().await, truth_guids(&sim.sim));
    let waits = proxy.throttle_waits();
    assert_eq!(waits.len(), 2, "{waits:?} after {} sync requests", proxy.syncs());
    for (zone, asked, waited) in waits {
        assert!(zone.is_some(), "the throttled request names its zone");
        let waited = waited.unwrap_or_else(|| panic!("no request after a 429 asking {asked:?}"));
        assert!(waited >= asked, "Retry-After {asked:?} but the next request came after {waited:?}");
        assert!(waited < asked + Duration::from_secs(2), "Retry-After {asked:?} but the bridge waited {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_stopped_and_started_mid_history_backs_off_resumes_and_duplicates_nothing() {
    let Env { sim, bridge, synapse, .. } = Env::start(start_sim(spec(53, 4, 900, 0), Faults::default()).await).await;
    let registration = bridge.dir.path().join("registration.yaml");
    let hs_port = synapse.port;
    const DELIVERED: &str = "SELECT COUNT(*) FROM deliveries WHERE event_id IS NOT NULL";
    let fast = Duration::from_millis(5);

    let mut run = spawn_run(&bridge, "run.log");
    wait_for("the history to be under way", 300, fast, || bridge.sqlite_int(DELIVERED), |n| n.unwrap_or(0) >= 100).await;
    synapse.stop().await;
    let at_stop = bridge.sqlite_int(DELIVERED).await.unwrap();
    // The round fails and `run` backs off (it says so) instead of ending or spinning.
    let log = || async { std::fs::read_to_string(&run.1).unwrap_or_default() };
    wait_for("a failed delivery round", 180, Duration::from_millis(200), log, |l| l.contains("delivery round failed, next round in")).await;
    assert!(run.0.try_wait().unwrap().is_none(), "run keeps going without its homeserver");
    let (delivered, stored, _) = delivery_totals(&bridge.status_json().await);
    assert!(delivered < stored, "the outage came before the end of the history: {delivered} of {stored}");

    let synapse = Synapse::start(bridge.dir.path(), hs_port, DOMAIN, &registration).await;
    let done = wait_for("the rest of the history", 400, Duration::from_secs(1), || bridge.status_json(), |s| delivery_totals(s).2 == 0).await;
    assert!(delivery_totals(&done).0 > at_stop);
    let stderr = terminate(&mut run, "after the outage").await;
    assert!(stderr.contains("delivery round failed, next round in"), "{stderr}");

    let reg: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(&registration).unwrap()).unwrap();
    let hs = matrix::HomeserverClient::new(&synapse.url, reg["as_token"].as_str().unwrap()).unwrap();
    let expected = rooms::expected(truth_lines(&sim.sim), OWNER, DOMAIN);
    let portals = rooms::portals(bridge.store().await.as_ref()).await.unwrap();
    let checks = rooms::check_rooms(&hs, &expected, &portals, OWNER, DOMAIN).await.unwrap();
    let t = rooms::totals(&checks);
    assert!(t.messages > 800, "{t:?}");
    assert_eq!((t.missing, t.duplicated, t.out_of_order, t.wrong_sender), (0, 0, 0, 0), "{t:?}\n{checks:#?}");
    assert_eq!((t.unexpected, t.bot_events, t.bad_rooms), (0, 0, 0), "{t:?}");
}
