//! The account's secrets go only to the gateway: the anisette server gets none of the session's
//! headers, a gateway redirect is not followed (it would carry the token elsewhere), and a
//! gateway or anisette URL off this machine must be https. (Here rather than in `cloudkit`'s
//! tests for the simulator's session, a real service identity.)

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on 127.0.0.1:0 that records the head of every request and answers each with
/// `answer` (a whole HTTP/1.1 response); returns its URL and what it received.
async fn recording(answer: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (record, answer) = (record.clone(), answer.clone());
            tokio::spawn(async move {
                let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                record.lock().unwrap().push(String::from_utf8_lossy(&buf).into_owned());
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// The session of a small simulated account (tokens, user and device id, service identity).
fn session() -> cloudkit::Session {
    let spec = cloudkit_sim::AccountSpec { seed: 5, chats: 1, messages: 4, big_chat: 0, later: 0 };
    let sim = cloudkit_sim::Sim::new(spec, cloudkit_sim::Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    sim.session_at("http://127.0.0.1:1").save(&path).unwrap();
    let mut session = cloudkit::Session::load(&path).unwrap();
    session.anisette = None;
    session
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

#[tokio::test]
async fn the_anisette_server_gets_none_of_the_sessions_headers() {
    let anisette = r#"{"X-Apple-I-MD":"md","X-Apple-I-MD-M":"mdm"}"#;
    let (anisette_url, asked) = recording(response("200 OK", "Content-Type: application/json\r\n", anisette)).await;
    let (gateway, _) = recording(response("503 Service Unavailable", "", "")).await;
    let mut session = session();
    session.anisette = Some(cloudkit::session::AnisetteSource { url: format!("{anisette_url}/anisette") });
    let client = cloudkit::Client::new(&gateway, session.clone()).unwrap();
    assert!(client.retrieve_changes("messageManateeZone", None).await.is_err());
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "one anisette request");
    let head = asked[0].to_ascii_lowercase();
    for secret in [&session.tokens.cloudkit, &session.cloudkit_user_id, &session.device_id] {
        assert!(!head.contains(&secret.to_ascii_lowercase()), "{secret:?} went to the anisette server:\n{head}");
    }
    for header in ["x-cloudkit", "x-mme", "x-apple"] {
        assert!(!head.contains(header), "a {header} header went to the anisette server:\n{head}");
    }
}

#[tokio::test]
async fn a_gateway_redirect_is_not_followed() {
    let (elsewhere, asked) = recording(response("200 OK", "", "")).await;
    let location = format!("Location: {elsewhere}/ckdatabase/api/client/record/sync\r\n");
    let (gateway, _) = recording(response("307 Temporary Redirect", &location, "")).await;
    let client = cloudkit::Client::new(&gateway, session()).unwrap();
    let err = client.retrieve_changes("messageManateeZone", None).await.expect_err("a redirect is no answer");
    assert!(err.to_string().contains("307"), "{err}");
    assert!(asked.lock().unwrap().is_empty(), "the redirect was followed: {:?}", asked.lock().unwrap());
}

#[test]
fn gateway_and_anisette_off_this_machine_must_be_https() {
    let session = session();
    let err = cloudkit::Client::new("http://gateway.icloud.com", session.clone()).err().expect("plain http gateway");
    assert!(err.to_string().contains("the CloudKit gateway"), "{err}");
    assert!(cloudkit::Client::new("https://gateway.icloud.com", session.clone()).is_ok());
    let mut with_anisette = session;
    with_anisette.anisette = Some(cloudkit::session::AnisetteSource { url: "http://ani.example.org/".into() });
    let err = cloudkit::Client::new("https://gateway.icloud.com", with_anisette).err().expect("plain http anisette");
    assert!(err.to_string().contains("the anisette server"), "{err}");
}
