//! Fuzz target for the appservice's inbound side: transaction bodies as a homeserver (or
//! anything that learnt the `hs_token`) might send them, mutated from real-shaped transactions.
//! The router runs in-process (`tower::ServiceExt::oneshot`), so thousands of requests a second
//! go through the very handler the bridge serves.
//!
//! Properties: with the right token every transaction is answered 200 — a body that does not
//! parse is counted in `bad_transactions`, and one that is not even a JSON object with an
//! `events` array is always counted — and without it 401/403 and nothing counted. Plus the edge
//! of the body cap: exactly `MAX_TRANSACTION_BYTES` is read and parsed, one byte more is
//! answered 200 and counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fuzzkit::{mutated, Input};
use matrix::appservice::{router, AppserviceState, MAX_TRANSACTION_BYTES};
use proptest::prelude::*;
use tower::ServiceExt;

const HS_TOKEN: &str = "hs-token-for-the-fuzz-target";

fn seeds() -> Vec<Vec<u8>> {
    let message = serde_json::json!({
        "events": [{
            "type": "m.room.message", "room_id": "!room:localhost", "sender": "@owner:localhost",
            "event_id": "$ev1", "origin_server_ts": 1_700_000_000_000u64,
            "content": { "msgtype": "m.text", "body": "hello ✓", "m.relates_to": { "m.in_reply_to": { "event_id": "$ev0" } } },
            "unsigned": { "age": 12 }
        }, {
            "type": "m.room.member", "room_id": "!room:localhost", "sender": "@imessage_a:localhost", "state_key": "@imessage_a:localhost",
            "event_id": "$ev2", "origin_server_ts": 1_700_000_000_001u64, "content": { "membership": "join", "displayname": "A" }
        }]
    });
    let ephemeral = serde_json::json!({
        "events": [],
        "de.sorunome.msc2409.ephemeral": [{ "type": "m.typing", "room_id": "!room:localhost", "content": { "user_ids": ["@owner:localhost"] } }],
        "org.matrix.msc3202.device_lists": { "changed": ["@owner:localhost"] }
    });
    vec![message.to_string().into_bytes(), ephemeral.to_string().into_bytes(), br#"{"events":[]}"#.to_vec()]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn put(state: &Arc<AppserviceState>, txn: &str, token: Option<&str>, body: Vec<u8>) -> StatusCode {
    let mut request = Request::put(format!("/_matrix/app/v1/transactions/{txn}")).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    router(state.clone()).oneshot(request.body(Body::from(body)).unwrap()).await.unwrap().status()
}

/// A transaction as the spec shapes it: UTF-8 JSON (RFC 8259), an object with an `events`
/// array, no key twice.
fn is_transaction(body: &[u8]) -> bool {
    if std::str::from_utf8(body).is_err() {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Strict {
        #[allow(dead_code)]
        events: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Strict>(body).is_ok()
}

#[test]
fn fuzz_transaction_bodies() {
    let rt = runtime();
    let state = AppserviceState::new(HS_TOKEN, "localhost");
    let txn = std::sync::atomic::AtomicU64::new(0);
    fuzzkit::run("matrix/appservice-transactions", mutated(seeds()), |input: Input| {
        rt.block_on(async {
            let id = format!("t{}", txn.fetch_add(1, Ordering::Relaxed));
            let bad = state.bad_transactions.load(Ordering::Relaxed);
            prop_assert_eq!(put(&state, &id, Some(HS_TOKEN), input.0.clone()).await, StatusCode::OK);
            let counted = state.bad_transactions.load(Ordering::Relaxed) - bad;
            // Counted exactly when it is no transaction: the events themselves may be anything
            // (each is decoded on its own, and an undecodable one is only logged).
            prop_assert_eq!(counted, u64::from(!is_transaction(&input)), "counted {} for a body that is a transaction: {}", counted, is_transaction(&input));
            // Without the token nothing is read or counted.
            let before = state.bad_transactions.load(Ordering::Relaxed);
            prop_assert_eq!(put(&state, &format!("{id}-x"), None, input.0.clone()).await, StatusCode::UNAUTHORIZED);
            prop_assert_eq!(put(&state, &format!("{id}-y"), Some("wrong"), input.0.clone()).await, StatusCode::FORBIDDEN);
            prop_assert_eq!(state.bad_transactions.load(Ordering::Relaxed), before);
            Ok(())
        })
    });
}

/// Found by the target: invalid UTF-8 in a string of a field the handler ignores (here inside
/// the MSC2409 ephemeral list) slipped through, because serde_json skips ignored strings
/// unchecked; bodies are now checked to be UTF-8 first, so such a body is counted as bad.
#[test]
fn invalid_utf8_in_an_ignored_field_is_counted() {
    let rt = runtime();
    let state = AppserviceState::new(HS_TOKEN, "localhost");
    let body = fuzzkit::unhex("7b2264652e736f72756e6f6d652e6d7363323430392e657068656d6572616c223a5b7b22ffffff7f656e74223a7b7d7d5d2c226576656e7473223a5b5d7d");
    assert!(std::str::from_utf8(&body).is_err());
    rt.block_on(async {
        assert_eq!(put(&state, "utf8", Some(HS_TOKEN), body).await, StatusCode::OK);
    });
    assert_eq!(state.bad_transactions.load(Ordering::Relaxed), 1);
}

#[test]
fn a_body_exactly_at_the_cap_is_read_one_byte_over_is_answered_and_counted() {
    let rt = runtime();
    let state = AppserviceState::new(HS_TOKEN, "localhost");
    let mut body = seeds().remove(0);
    body.resize(MAX_TRANSACTION_BYTES, b' ');
    rt.block_on(async {
        assert_eq!(put(&state, "at-cap", Some(HS_TOKEN), body.clone()).await, StatusCode::OK);
        assert_eq!(state.received_events.load(Ordering::Relaxed), 2, "the transaction at the cap is parsed");
        assert_eq!(state.bad_transactions.load(Ordering::Relaxed), 0);
        body.push(b' ');
        assert_eq!(put(&state, "over-cap", Some(HS_TOKEN), body).await, StatusCode::OK, "never 413: the homeserver would retry it for ever");
        assert_eq!(state.bad_transactions.load(Ordering::Relaxed), 1);
        assert_eq!(state.received_events.load(Ordering::Relaxed), 2);
    });
}
