//! The appservice listener under abuse: 200 connections that send half a request, or a ping
//! without the token announcing a 32 MiB body they never send, do not keep a real transaction
//! from being answered; the token-less ones are refused at once without their bodies being
//! waited for, the half-sent ones are closed after the header timeout, and a body that does not
//! come is answered 408 after the body timeout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use matrix::appservice::{serve_limited, AppserviceState};
use matrix::listener::ListenLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "hs-token-abuse-test";
/// How long a test waits for what must happen long before (a guard against hanging, not a pause).
const GUARD: Duration = Duration::from_secs(20);

/// Reads what the server sends until it closes the connection.
async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(GUARD, conn.read_to_end(&mut out)).await.expect("the server did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until the status line of a response has come.
async fn status_line(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(GUARD, conn.read(&mut buf)).await.expect("no answer").expect("read");
        assert!(n > 0, "closed without an answer: {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_abusive_connections_do_not_stop_a_real_transaction() {
    let limits = ListenLimits { header_timeout: Duration::from_secs(2), body_timeout: Duration::from_secs(2), max_connections: 256 };
    let state = AppserviceState::new(TOKEN, "localhost");
    let (addr, _task) = serve_limited(state.clone(), "127.0.0.1:0".parse().unwrap(), limits).await.unwrap();

    // 100 connections that send half a request line and headers, then nothing.
    let mut slow = Vec::new();
    for i in 0..100 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("PUT /_matrix/app/v1/transactions/slow{i} HTTP/1.1\r\nHost: a\r\n").as_bytes()).await.unwrap();
        slow.push(c);
    }
    // 100 pings without the token, announcing 32 MiB, sending one byte of it.
    let mut tokenless = Vec::new();
    for _ in 0..100 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let head = "POST /_matrix/app/v1/ping HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 33554432\r\n\r\n{";
        c.write_all(head.as_bytes()).await.unwrap();
        tokenless.push(c);
    }

    // A real transaction is answered while all 200 are open.
    let started = std::time::Instant::now();
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "events": [{
        "type": "m.room.message", "room_id": "!r:localhost", "sender": "@owner:localhost",
        "event_id": "$e1", "origin_server_ts": 1, "content": { "msgtype": "m.text", "body": "hi" }
    }] });
    let answer = client
        .put(format!("http://{addr}/_matrix/app/v1/transactions/real-1"))
        .bearer_auth(TOKEN)
        .json(&body)
        .timeout(GUARD)
        .send()
        .await
        .expect("the real transaction was not answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(state.received_events.load(Ordering::Relaxed), 1);
    assert!(started.elapsed() < limits.header_timeout, "answered only after {:?}", started.elapsed());

    // Every token-less ping was refused without its body being waited for.
    for c in &mut tokenless {
        let line = status_line(c).await;
        assert!(line.starts_with("HTTP/1.1 401"), "{line}");
    }
    assert_eq!(state.pings.load(Ordering::Relaxed), 0);
    // Every half-sent request is closed by the server after the header timeout, unanswered by a
    // handler (hyper may say 408 as it closes).
    for c in &mut slow {
        let said = read_to_close(c).await;
        assert!(said.is_empty() || said.starts_with("HTTP/1.1 408"), "{said}");
    }
    assert_eq!(state.received_events.load(Ordering::Relaxed), 1, "a half-sent transaction was handled");
}

#[tokio::test]
async fn pings_are_small_and_bodies_that_do_not_come_are_answered_408() {
    let limits = ListenLimits { header_timeout: Duration::from_secs(5), body_timeout: Duration::from_millis(500), max_connections: 16 };
    let state = AppserviceState::new(TOKEN, "localhost");
    let (addr, _task) = serve_limited(state.clone(), "127.0.0.1:0".parse().unwrap(), limits).await.unwrap();

    // With the token, a ping announcing 1 MiB is refused by its length, before any of it is read.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!("POST /_matrix/app/v1/ping HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1048576\r\n\r\n");
    c.write_all(head.as_bytes()).await.unwrap();
    let line = status_line(&mut c).await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");

    // With the token, a transaction whose body stops half-way is answered 408 (the homeserver
    // retries it), not taken as an empty or broken transaction.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!("PUT /_matrix/app/v1/transactions/t1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"events\":");
    c.write_all(head.as_bytes()).await.unwrap();
    let line = status_line(&mut c).await;
    assert!(line.starts_with("HTTP/1.1 408"), "{line}");
    assert_eq!(state.bad_transactions.load(Ordering::Relaxed), 0);

    // A small ping with the token is answered.
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/_matrix/app/v1/ping"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "transaction_id": "p1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(state.pings.load(Ordering::Relaxed), 1);
}
