//! The appservice HTTP API the homeserver calls: transactions (pushed events), ping, and the
//! user/room existence queries. Requests must carry the `hs_token` (Bearer header, or the legacy
//! `access_token` query parameter): none gives 401, a wrong one 403. Transactions are
//! deduplicated by id, since the homeserver retries a transaction until it gets a 200.
//!
//! A transaction the bridge cannot parse is still answered 200 (and logged and counted): the
//! homeserver retries a failed transaction and holds back every later one, so refusing one bad
//! body would wedge the inbound path for good. Bodies up to [`MAX_TRANSACTION_BYTES`] are read;
//! a longer one is not read past the cap and counts as a transaction that does not parse (200
//! all the same: a 413 would be retried for ever).
//!
//! Nothing is read before the token is checked (a body from someone without it is never
//! read), a ping body is capped at [`MAX_PING_BYTES`], and a body that does not arrive within the
//! listener's body timeout is answered 408 (the homeserver retries). The listener itself
//! (`listener.rs`) times out slow headers and caps connections.
//!
//! What the events mean is not decided here: each event of a new transaction is handed to the
//! [`Inbox`](crate::inbound::Inbox) given to [`AppserviceState::with_inbox`] (`inbound.rs`).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::{
    body::Body,
    extract::{Extension, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use ruma::events::AnyTimelineEvent;
use ruma::serde::Raw;
use serde::Deserialize;
use serde_json::json;

use crate::ghost::GHOST_PREFIX;
use crate::listener::ListenLimits;

const REMEMBERED_TXNS: usize = 10_000;
/// The largest transaction body read. A homeserver sends at most 50 PDUs and 100 EDUs of at most
/// 64 KiB each per transaction; this leaves room above that.
pub const MAX_TRANSACTION_BYTES: usize = 32 << 20;
/// The largest ping body read (the homeserver sends `{"transaction_id": …}`).
pub const MAX_PING_BYTES: usize = 64 << 10;

pub struct AppserviceState {
    hs_token: String,
    domain: String,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
    /// Events received (for logs and tests).
    pub received_events: std::sync::atomic::AtomicU64,
    pub pings: std::sync::atomic::AtomicU64,
    /// Transactions whose body did not parse (answered 200 all the same).
    pub bad_transactions: std::sync::atomic::AtomicU64,
    /// Where the events of each new transaction go (None: only counted and logged).
    inbox: Option<crate::inbound::Inbox>,
}

impl AppserviceState {
    pub fn new(hs_token: &str, domain: &str) -> Arc<Self> {
        Self::with_inbox(hs_token, domain, None)
    }

    /// As [`new`](Self::new), handing every event of each new transaction to `inbox`.
    pub fn with_inbox(hs_token: &str, domain: &str, inbox: Option<crate::inbound::Inbox>) -> Arc<Self> {
        Arc::new(AppserviceState {
            hs_token: hs_token.to_string(),
            domain: domain.to_string(),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            received_events: Default::default(),
            pings: Default::default(),
            bad_transactions: Default::default(),
            inbox,
        })
    }

    /// Remembers a transaction id; false if it was seen before.
    fn first_time(&self, txn: &str) -> bool {
        let Ok(mut guard) = self.seen.lock() else { return true };
        let (set, order) = &mut *guard;
        if !set.insert(txn.to_string()) {
            return false;
        }
        order.push_back(txn.to_string());
        if order.len() > REMEMBERED_TXNS {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

fn error(status: StatusCode, errcode: &str, msg: &str) -> Response {
    (status, Json(json!({ "errcode": errcode, "error": msg }))).into_response()
}

// The Err is the HTTP answer itself, returned at once to the homeserver.
#[allow(clippy::result_large_err)]
fn check_auth(state: &AppserviceState, headers: &HeaderMap, query: &TokenQuery) -> Result<(), Response> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ").map(str::trim).map(str::to_string));
    match bearer.or_else(|| query.access_token.clone()) {
        None => Err(error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", "missing hs_token")),
        Some(t) if bool::from(subtle::ConstantTimeEq::ct_eq(t.as_bytes(), state.hs_token.as_bytes())) => Ok(()),
        Some(_) => Err(error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "wrong hs_token")),
    }
}

#[derive(Deserialize)]
struct Transaction {
    events: Vec<Raw<AnyTimelineEvent>>,
}

/// How reading a body within the limits ended, when it did not give the body.
enum Unread {
    /// Over the cap (by its `Content-Length` or by what came), or broken off.
    Refused(String),
    /// Not all there within the body timeout.
    Slow,
}

/// Reads a body of at most `cap` bytes within the listener's body timeout.
async fn read_body(body: Body, cap: usize, limits: &ListenLimits) -> Result<axum::body::Bytes, Unread> {
    // A stated length over the cap is refused before a byte of the body is waited for.
    let stated = axum::body::HttpBody::size_hint(&body).lower();
    if stated > cap as u64 {
        return Err(Unread::Refused(format!("{stated} bytes stated, over {cap}")));
    }
    match tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, cap)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(Unread::Refused(format!("over {cap} bytes, or broken off: {e}"))),
        Err(_) => Err(Unread::Slow),
    }
}

fn too_slow(limits: &ListenLimits) -> Response {
    let msg = format!("the body did not arrive within {} s", limits.body_timeout.as_secs_f32());
    error(StatusCode::REQUEST_TIMEOUT, "M_UNKNOWN", &msg)
}

async fn transaction(
    State(state): State<Arc<AppserviceState>>,
    limits: Option<Extension<ListenLimits>>,
    Path(txn_id): Path<String>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limits = limits.map(|l| l.0).unwrap_or_default();
    if let Err(r) = check_auth(&state, &headers, &q) {
        return r;
    }
    let ignored = |why: String| {
        state.bad_transactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(txn = %txn_id, "ignoring a transaction that does not parse: {why}");
        (StatusCode::OK, Json(json!({}))).into_response()
    };
    // Read here rather than by an extractor, whose limit would answer 413.
    let body = match read_body(body, MAX_TRANSACTION_BYTES, &limits).await {
        Ok(body) => body,
        Err(Unread::Refused(why)) => return ignored(format!("body not read ({why})")),
        Err(Unread::Slow) => return too_slow(&limits),
    };
    // JSON is UTF-8 (RFC 8259); serde_json would skip unchecked bytes in the fields it ignores.
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(e) => return ignored(format!("{} bytes, not UTF-8: {e}", body.len())),
    };
    let txn: Transaction = match serde_json::from_str(text) {
        Ok(t) => t,
        Err(e) => return ignored(format!("{} bytes: {e}", body.len())),
    };
    if state.first_time(&txn_id) {
        state.received_events.fetch_add(txn.events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for ev in &txn.events {
            match ev.deserialize() {
                Ok(ev) => tracing::debug!(room = %ev.room_id(), sender = %ev.sender(), kind = %ev.event_type(), "event from homeserver"),
                Err(e) => tracing::debug!("undecodable event in transaction {txn_id}: {e}"),
            }
            if let Some(inbox) = &state.inbox {
                if inbox.send(ev.json().to_owned()).is_err() {
                    tracing::warn!(txn = %txn_id, "inbound event not handled: the inbound task has stopped");
                }
            }
        }
    }
    (StatusCode::OK, Json(json!({}))).into_response()
}

async fn ping(
    State(state): State<Arc<AppserviceState>>,
    limits: Option<Extension<ListenLimits>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = check_auth(&state, &headers, &q) {
        return r;
    }
    let limits = limits.map(|l| l.0).unwrap_or_default();
    let body = match read_body(body, MAX_PING_BYTES, &limits).await {
        Ok(body) => body,
        Err(Unread::Refused(why)) => return error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", &format!("ping body not read: {why}")),
        Err(Unread::Slow) => return too_slow(&limits),
    };
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).map(|v| v.is_object()).ok() != Some(true) {
        return error(StatusCode::BAD_REQUEST, "M_BAD_JSON", "ping body must be a JSON object");
    }
    state.pings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (StatusCode::OK, Json(json!({}))).into_response()
}

async fn user_query(State(state): State<Arc<AppserviceState>>, Path(user_id): Path<String>, Query(q): Query<TokenQuery>, headers: HeaderMap) -> Response {
    if let Err(r) = check_auth(&state, &headers, &q) {
        return r;
    }
    // Ghosts are created on demand by the bridge itself; the homeserver never needs to ask.
    let ours = user_id.starts_with(&format!("@{GHOST_PREFIX}")) && user_id.ends_with(&format!(":{}", state.domain));
    if ours {
        (StatusCode::OK, Json(json!({}))).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such user")
    }
}

async fn room_query(State(state): State<Arc<AppserviceState>>, Query(q): Query<TokenQuery>, headers: HeaderMap) -> Response {
    if let Err(r) = check_auth(&state, &headers, &q) {
        return r;
    }
    error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "the bridge has no room aliases")
}

pub fn router(state: Arc<AppserviceState>) -> Router {
    Router::new()
        .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
        .route("/_matrix/app/v1/ping", post(ping))
        .route("/_matrix/app/v1/users/{user_id}", get(user_query))
        .route("/_matrix/app/v1/rooms/{alias}", get(room_query))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_TRANSACTION_BYTES))
        .with_state(state)
}

/// Binds and serves the appservice API in the background under the default
/// [`ListenLimits`]. Returns the bound address.
pub async fn serve(state: Arc<AppserviceState>, addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_limited(state, addr, ListenLimits::default()).await
}

/// As [`serve`], under `limits`.
pub async fn serve_limited(state: Arc<AppserviceState>, addr: SocketAddr, limits: ListenLimits) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    crate::listener::serve(router(state), addr, limits).await
}
