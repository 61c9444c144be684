//! What the cap tests and the fuzz harness share: the PCS key-chain vectors of
//! `shared/fixtures/` (a real-shaped service identity, zones and records), records built from
//! plain fields, and a one-shot HTTP server on 127.0.0.1:0 that answers CloudKit requests with
//! whatever body a test hands it.

#![allow(dead_code)]

use base64::Engine as _;
use cloudkit::proto::{self, value_type, FieldValue, Record};
use cloudkit::Session;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/");

/// `pcs-keychain-vectors.json`.
pub fn keychain_vectors() -> Value {
    let path = format!("{FIXTURES}pcs-keychain-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

/// Hex of a JSON string.
pub fn hex_of(v: &Value) -> Vec<u8> {
    fuzzkit::unhex(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}")))
}

/// A session whose service identity is that of the vectors' first chain.
pub fn session() -> Session {
    let v = keychain_vectors();
    let der = hex_of(&v["chains"][0]["service"]["pcs_private_key_der"]);
    Session {
        dsid: "1".into(),
        cloudkit_user_id: "_owner".into(),
        tokens: cloudkit::session::Tokens { cloudkit: "TEST-CLOUDKIT-TOKEN".into(), mme_auth: Some("TEST-MME-TOKEN".into()) },
        service_identity: base64::engine::general_purpose::STANDARD.encode(der),
        handles: vec!["mailto:me@example.org".into()],
        device_id: "DEVICE".into(),
        anisette: None,
        container: cloudkit::session::MESSAGES_CONTAINER.into(),
        bundle_id: cloudkit::session::MESSAGES_BUNDLE.into(),
    }
}

pub fn string(s: &str) -> FieldValue {
    FieldValue { r#type: Some(value_type::STRING), string_value: Some(s.into()), ..Default::default() }
}

pub fn int(n: i64) -> FieldValue {
    FieldValue { r#type: Some(value_type::INT64), signed_value: Some(n), ..Default::default() }
}

pub fn bytes(b: Vec<u8>) -> FieldValue {
    FieldValue { r#type: Some(value_type::BYTES), bytes_value: Some(b), ..Default::default() }
}

/// A record with unencrypted fields (the codec reads those as they are).
pub fn record(zone: &str, record_type: &str, name: &str, fields: Vec<(&str, FieldValue)>) -> Record {
    Record {
        record_identifier: Some(proto::RecordIdentifier {
            value: Some(proto::Identifier { name: Some(name.into()), r#type: Some(proto::identifier_type::RECORD) }),
            zone_identifier: Some(proto::zone_id(zone, "_owner")),
        }),
        r#type: Some(proto::RecordType { name: Some(record_type.into()) }),
        record_field: fields
            .into_iter()
            .map(|(n, value)| proto::RecordField { identifier: Some(proto::FieldIdentifier { name: Some(n.into()) }), value: Some(value) })
            .collect(),
        ..Default::default()
    }
}

/// How the test server sends a body.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// With `Content-Length`.
    Sized,
    /// Chunked, no length up front.
    Chunked,
}

/// Serves every connection on 127.0.0.1:0 with `reply(request body)`, `gzip` saying whether to
/// mark the body `content-encoding: gzip`. Returns the base URL.
pub async fn serve(reply: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static, gzip: bool, send: Delivery) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = reply(&buf[head_end..head_end + length]);
                let encoding = if gzip { "content-encoding: gzip\r\n" } else { "" };
                let mut out = format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n{encoding}connection: close\r\n").into_bytes();
                match send {
                    Delivery::Sized => {
                        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                        out.extend_from_slice(&body);
                    }
                    Delivery::Chunked => {
                        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                        for piece in body.chunks(1000) {
                            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                            out.extend_from_slice(piece);
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                let _ = socket.write_all(&out).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}
