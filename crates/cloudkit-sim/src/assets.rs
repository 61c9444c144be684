//! The simulator's asset side: each attachment's file sealed as MMCS stores it, the download
//! authorization a record fetch with assets bundles, and the content host that serves the
//! containers.
//!
//! Why it is shaped like this: on Apple's side a Messages client fetches `attachment` records
//! with `assetsToDownload`, the CloudKit server answers with the record and, bundled, an MMCS
//! `authorizeGet` answer naming containers on content hosts; the client then GETs those
//! containers and opens them chunk by chunk. The simulator plays both servers. Sealing is
//! deterministic per attachment (its own key stream), so the record the change feed serves, the
//! one a retrieve serves and the container a download fetches always agree, across restarts.
//!
//! Faults (`asset_errors`): a container GET fails with HTTP 503 or breaks off half-way through
//! the body, so the bridge's retries and resumption are exercised.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cloudkit::proto::{self, mmcs::HttpHeader, mmcs::HttpRequest};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::account::Account;
use crate::mmcs::{self, SealedFile};

/// The simulator's MMCS chunk size. The uploader picks it (rustpush uses 5 MiB); a smaller one
/// makes multi-chunk files common enough in tests.
pub const CHUNK_SIZE: usize = 1 << 20;
/// How many sealed files are kept: the feed, a retrieve and a download of one attachment come
/// close together.
const CACHE: usize = 32;
/// The header a container GET must carry (the authorization hands it out).
pub const AUTH_HEADER: &str = "x-apple-mmcs-auth";
const STREAM_SEAL: u64 = 11;

/// Sealed files, their cache, and the secrets the content host checks.
pub struct Assets {
    seed: u64,
    boundary_key: [u8; 32],
    cache: Mutex<VecDeque<(u64, Arc<SealedFile>)>>,
    faults: Mutex<ChaCha8Rng>,
    /// Probability that a container GET fails.
    pub error_rate: f64,
    served: AtomicU64,
    injected: AtomicU64,
}

impl Assets {
    pub fn new(seed: u64, error_rate: f64) -> Self {
        let boundary_key = Sha256::new().chain_update(seed.to_be_bytes()).chain_update(b"messages boundary key").finalize().into();
        Assets {
            seed,
            boundary_key,
            cache: Mutex::new(VecDeque::new()),
            faults: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xa55e7)),
            error_rate,
            served: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// Container GETs answered (faults included).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Container GETs that were made to fail.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Attachment message `g`'s file, sealed.
    pub fn sealed(&self, account: &Account, g: u64) -> Arc<SealedFile> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((_, s)) = cache.iter().find(|(k, _)| *k == g) {
                return s.clone();
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(STREAM_SEAL);
        rng.set_word_pos(u128::from(g) << 12);
        let sealed = Arc::new(mmcs::seal(&account.attachment_bytes(g), CHUNK_SIZE, &self.boundary_key, &mut rng));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE {
                cache.pop_front();
            }
            cache.push_back((g, sealed.clone()));
        }
        sealed
    }

    /// The token a container GET for `record_name` must carry.
    fn auth_token(&self, record_name: &str) -> String {
        let d = Sha256::new().chain_update(self.boundary_key).chain_update(record_name.as_bytes()).finalize();
        d[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bundled download authorization of one attachment's asset, whose container is served
    /// at `host` (the `Host` the client reached the simulator at).
    pub fn authorization(&self, sealed: &SealedFile, record_name: &str, host: &str, asset_id: &str) -> proto::AssetGetResponse {
        let (domain, port) = match host.rsplit_once(':') {
            Some((d, p)) => (d.to_string(), p.parse().unwrap_or(80)),
            None => (host.to_string(), 80),
        };
        let token = self.auth_token(record_name);
        let request = HttpRequest {
            domain,
            port,
            method: "GET".into(),
            path: format!("/_mmcs/{record_name}"),
            protocol: "http".into(),
            protocol_ver: "1.1".into(),
            scheme: "http".into(),
            headers: vec![HttpHeader { name: AUTH_HEADER.into(), value: token.clone() }],
            datacenter: "sim".into(),
        };
        let mut body = mmcs::authorize_get(&[(sealed, request)]);
        if let Some(files) = body.f1.as_mut() {
            for c in &mut files.containers {
                c.cl_auth_p1 = hex(&sealed.signature);
                c.cl_auth_p2 = token.clone();
            }
        }
        proto::AssetGetResponse { asset_id: Some(asset_id.into()), body: Some(body.encode_to_vec()), headers: Vec::new() }
    }

    /// Answers a container GET: checks the token, honours `Range: bytes=N-`, and injects faults.
    pub fn serve(&self, account: &Account, record_name: &str, headers: &HeaderMap) -> Response {
        let Some(g) = account.attachment_index(record_name) else {
            return (StatusCode::NOT_FOUND, "no such container").into_response();
        };
        if headers.get(AUTH_HEADER).and_then(|v| v.to_str().ok()) != Some(self.auth_token(record_name).as_str()) {
            return (StatusCode::FORBIDDEN, "container token missing or wrong").into_response();
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        let body = self.sealed(account, g).body.clone();
        let (start, end) = match headers.get("range").and_then(|v| v.to_str().ok()) {
            None => (0, body.len()),
            Some(r) => match byte_range(r, body.len()) {
                Some(range) => range,
                None => return (StatusCode::RANGE_NOT_SATISFIABLE, "only one range bytes=A-[B] within the body").into_response(),
            },
        };
        let fault = self.error_rate > 0.0 && self.faults.lock().map(|mut r| r.gen_bool(self.error_rate.min(1.0))).unwrap_or(false);
        let ranged = headers.contains_key("range");
        let status = if ranged { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        let len = body.len();
        let tail = Bytes::from(body).slice(start..end);
        if fault {
            self.injected.fetch_add(1, Ordering::Relaxed);
            if tail.len() < 2 || self.faults.lock().map(|mut r| r.gen_bool(0.5)).unwrap_or(true) {
                return (StatusCode::SERVICE_UNAVAILABLE, "injected content host failure").into_response();
            }
            // Half the body, then the connection breaks.
            let half = tail.slice(..tail.len() / 2);
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected break"))];
            let mut resp = Response::new(Body::from_stream(futures_stream(parts)));
            *resp.status_mut() = status;
            return resp;
        }
        let mut resp = (status, tail).into_response();
        if ranged {
            if let Ok(v) = format!("bytes {start}-{}/{len}", end.saturating_sub(1)).parse() {
                resp.headers_mut().insert("content-range", v);
            }
        }
        resp
    }
}

/// The byte range `[start, end)` of one `bytes=A-` or `bytes=A-B` range over `len` bytes.
fn byte_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let (a, b) = header.strip_prefix("bytes=")?.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len,
        b => b.parse::<usize>().ok()?.checked_add(1)?.min(len),
    };
    (start <= end && start <= len).then_some((start, end))
}

/// A stream of the given items (axum's `Body::from_stream` wants a `Stream`).
fn futures_stream(items: Vec<Result<Bytes, std::io::Error>>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::iter(items)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
