//! No message vanishes and none wedges its chat, through the whole pipeline into a real Synapse:
//! - an `attributedBody` whose string claims more bytes than it has (Apple's own `ExtraData`),
//!   and one with no readable string at all, both show (the text, or a notice saying why);
//! - a 70,000-character message goes in as marked pieces that join to its text;
//! - an event the homeserver refuses for good (a proxy answers 413 to one transaction) becomes a
//!   notice naming what was refused, counted in `status`, and the chat's later messages go in.
//!
//! The expected texts come from the blobs' makers (imessage-exporter's tests for `ExtraData`)
//! and from the texts this test writes, never from the bridge's store.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloudkit_sim::{Faults, TruthLine};
use common::matrix_env::{Env, OWNER};
use common::*;

/// The real "Noter test" body with its text replaced by `text` (ASCII), lengths fixed up: the
/// string's (`+` then 0x82 and a u32) and the one attribute run's (`iI`, the same).
fn body_with_text(text: &str) -> Vec<u8> {
    let real =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../imessage/tests/data/apple/attributed-body/AttributedBodyTextOnly")).unwrap();
    let len = (text.len() as u32).to_le_bytes();
    let replace = |bytes: &[u8], from: &[u8], to: &[u8]| -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern in blob");
        [&bytes[..at], to, &bytes[at + from.len()..]].concat()
    };
    let with_text = replace(&real, b"+\x0aNoter test", &[b"+\x82".as_slice(), &len, text.as_bytes()].concat());
    replace(&with_text, b"iI\x01\x0a", &[b"iI\x01\x82".as_slice(), &len].concat())
}

/// 70,000 characters in paragraphs of sentences.
fn long_text() -> String {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 70_000 {
        n += 1;
        text.push_str(&format!("Paragraph {n}. All work and no play makes Jack a dull boy. He wrote it again and again.\n\n"));
    }
    text.truncate(70_000);
    text
}

fn file_of(sim: &cloudkit_sim::Sim) -> std::collections::HashMap<String, String> {
    let mut files = std::collections::HashMap::new();
    sim.truth(|l| {
        if let TruthLine::Message { guid, file: Some(file), .. } = l {
            files.insert(file, guid);
        }
    });
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_unreadable_bodies_are_all_shown() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = dir.path().join("attributed-body");
    std::fs::create_dir_all(&bodies).unwrap();
    let exporter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../imessage/tests/data/exporter-streamtyped/ExtraData");
    std::fs::copy(exporter, bodies.join("ExtraData")).unwrap();
    std::fs::write(bodies.join("Garbage"), b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttr").unwrap();
    let long = long_text();
    std::fs::write(bodies.join("Long"), body_with_text(&long)).unwrap();
    let fixtures = cloudkit_sim::fixtures::AppleFixtures::load(dir.path(), "tel:+15557654321").unwrap();
    let sim = serve_sim(cloudkit_sim::Sim::new(spec(61, 2, 20, 0), Faults::default()).with_apple_fixtures(fixtures)).await;
    let env = Env::start(sim).await;
    let verify = env.run_once_and_verify().await;
    let total = |field: &str| verify["chats"].as_array().unwrap().iter().map(|c| c[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("invisible"), total("chunks_missing")), (0, 0), "{verify}");

    let guid_of = file_of(&env.sim.sim);
    let portal = env.bridge.store().await.portal("chat-apple-fixtures").await.unwrap().expect("the fixtures' room");
    let (events, _) = matrix::verify::paginate(&env.hs(), &portal.room_id, OWNER).await.unwrap();
    let of = |file: &str| -> Vec<&serde_json::Value> {
        let guid = &guid_of[file];
        events.iter().filter(|e| e.guid.as_ref() == Some(guid)).map(|e| &e.raw["content"]).collect()
    };
    let extra = of("attributed-body/ExtraData");
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert!(extra[0]["body"].as_str().unwrap().starts_with("This is parsing"), "{extra:?}");
    let garbage = of("attributed-body/Garbage");
    assert_eq!(garbage.len(), 1);
    assert_eq!(garbage[0]["msgtype"], "m.notice");
    assert!(garbage[0]["body"].as_str().unwrap().contains("attributedBody"), "{garbage:?}");

    let pieces = of("attributed-body/Long");
    assert!(pieces.len() >= 3, "{} pieces", pieces.len());
    let n = pieces.len();
    let mut joined = String::new();
    for (i, c) in pieces.iter().enumerate() {
        assert_eq!(c[matrix::send::CHUNK_KEY], serde_json::json!([i + 1, n]));
        joined.push_str(c["body"].as_str().unwrap().strip_prefix(&format!("({}/{n}) ", i + 1)).expect("marked"));
    }
    assert_eq!(joined, long, "the pieces join to the 70,000 characters");

    let status = env.bridge.status_json().await;
    let listed: Vec<&serde_json::Value> =
        status["undecodable_blobs"].as_array().unwrap().iter().filter(|b| b["guid"] == guid_of["attributed-body/ExtraData"].as_str()).collect();
    assert!(listed.len() == 1 && listed[0]["reason"].as_str().unwrap().contains("fallback"), "counted as read by fallback: {status}");
}

/// A proxy in front of Synapse that answers 413 `M_TOO_LARGE` to the send of one transaction id
/// (every time it is asked) and forwards everything else.
struct Refuser {
    url: String,
    refused: Arc<Mutex<u64>>,
}

#[derive(Clone)]
struct RefuserCtx {
    upstream: String,
    txn: String,
    refused: Arc<Mutex<u64>>,
    http: reqwest::Client,
}

impl Refuser {
    async fn start(upstream: &str, txn: &str) -> Refuser {
        let refused = Arc::new(Mutex::new(0));
        let ctx = RefuserCtx { upstream: upstream.into(), txn: txn.into(), refused: refused.clone(), http: reqwest::Client::new() };
        let app = axum::Router::new().fallback(refuse_or_forward).with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Refuser { url, refused }
    }
}

async fn refuse_or_forward(State(ctx): State<RefuserCtx>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let segments: Vec<&str> = uri.path().split('/').collect();
    if method == Method::PUT && segments.iter().rev().nth(2) == Some(&"send") && segments.last() == Some(&ctx.txn.as_str()) {
        *ctx.refused.lock().unwrap() += 1;
        let error = serde_json::json!({ "errcode": "M_TOO_LARGE", "error": "event too large" });
        return (StatusCode::PAYLOAD_TOO_LARGE, [("content-type", "application/json")], error.to_string()).into_response();
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let Some((status, out, bytes)) = common::proxy::pass_on(&ctx.http, &ctx.upstream, method, path, &headers, body).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    (status, out, bytes).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_for_good_becomes_a_notice_and_the_chat_goes_on() {
    let sim = start_sim(spec(62, 2, 40, 0), Faults::default()).await;
    // The first plain one-part text of a chat that has messages after it: its one event is
    // keyed by its GUID.
    let mut plain: Vec<(String, i64, String)> = Vec::new();
    let mut chat_size = std::collections::HashMap::<String, usize>::new();
    sim.sim.truth(|l| {
        if let TruthLine::Message { chat, guid, system: false, text: Some(_), ts_ms, associated_type: None, content, revised: None, .. } = l {
            *chat_size.entry(chat.clone()).or_default() += 1;
            let one_text = matches!(content.parts.as_slice(), [] | [imessage::records::ContentPart::Text { .. }]);
            if one_text
                && content.edits.is_empty()
                && !content.unsent
                && content.link_preview.is_none()
                && content.reply_to.is_none()
                && content.effect.is_none()
            {
                plain.push((chat, ts_ms, guid));
            }
        }
    });
    plain.sort_by_key(|(_, ts, _)| *ts);
    let (chat, _, guid) = plain.into_iter().find(|(c, _, _)| chat_size[c] > 5).expect("a plain text in a chat with more after it");

    let env = Env::start(sim).await;
    let refuser = Refuser::start(&env.synapse.url, &format!("imb-{guid}")).await;
    env.bridge.change(&["matrix", "homeserver"], env.synapse.url.as_str(), refuser.url.as_str());

    let verify = env.run_once_and_verify().await;
    assert!(*refuser.refused.lock().unwrap() >= 1, "the proxy refused the message's event");
    let room = verify["chats"].as_array().unwrap().iter().find(|c| c["chat_id"] == chat.as_str()).unwrap();
    assert_eq!((room["missing"].as_u64(), room["invisible"].as_u64()), (Some(0), Some(0)), "the chat went on: {room}");

    let portal = env.bridge.store().await.portal(&chat).await.unwrap().unwrap();
    let (events, _) = matrix::verify::paginate(&env.hs(), &portal.room_id, OWNER).await.unwrap();
    let shown: Vec<&serde_json::Value> = events.iter().filter(|e| e.guid.as_deref() == Some(guid.as_str())).map(|e| &e.raw["content"]).collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["msgtype"], "m.notice");
    let body = shown[0]["body"].as_str().unwrap();
    assert!(body.contains("refused") && body.contains("413 M_TOO_LARGE") && body.contains("a text of"), "{body}");

    let status = env.bridge.status_json().await;
    let refused: i64 = status["rooms"].as_array().unwrap().iter().map(|r| r["refused"].as_i64().unwrap()).sum();
    assert_eq!(refused, 1, "{status}");
}
