//! A small homeserver client for the appservice: every request carries the `as_token`, and
//! `user_id=` selects which namespaced user (bot, ghost, or double-puppeted owner) acts.
//! Identifiers and event contents are ruma types; bodies the bridge only passes through stay JSON.

use std::time::Duration;

use reqwest::Method;
use ruma::{OwnedEventId, OwnedRoomId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{MatrixError, Result};

#[derive(Clone)]
pub struct HomeserverClient {
    http: reqwest::Client,
    base: String,
    as_token: String,
    max_body: usize,
    /// Bytes uploaded to the media repository by this client and its clones (for metrics).
    uploaded: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The largest API response body read (a `/messages` page or an initial `/sync` of many rooms
/// is a few megabytes); media downloads have a cap of their own per call.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Reads a response body of at most `cap` bytes; a stated `Content-Length` over it is refused
/// before reading.
async fn read_body(mut resp: reqwest::Response, cap: usize, url: &str, what: &str) -> Result<Vec<u8>> {
    let too_large = || MatrixError::TooLarge { what: what.to_string(), cap };
    if resp.content_length().is_some_and(|stated| stated > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| MatrixError::Transport { url: url.to_string(), source: e })? {
        if chunk.len() > cap - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One `/messages` page.
#[derive(Debug, Deserialize)]
pub struct MessagesPage {
    #[serde(default)]
    pub chunk: Vec<Value>,
    pub end: Option<String>,
}

#[derive(Deserialize)]
struct EventIdResponse {
    event_id: OwnedEventId,
}

#[derive(Deserialize)]
struct RoomIdResponse {
    room_id: OwnedRoomId,
}

#[derive(Deserialize)]
struct JoinedMembersResponse {
    joined: std::collections::HashMap<String, Value>,
}

pub(crate) fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// Tries of one upload within a delivery: few, because a file goes whole each time, and a
/// delivery that fails for now is retried by its room's backoff anyway.
const UPLOAD_ATTEMPTS: u32 = 3;
/// The time limit of one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The time limit of opening a connection to the homeserver.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before retrying a request the homeserver rate-limited (429).
const RATE_LIMITED_WAIT: Duration = Duration::from_millis(500);
/// The wait before the first retry of a failed request; it doubles with each attempt (to 64×).
const RETRY_BASE: Duration = Duration::from_millis(100);
/// How often [`HomeserverClient::wait_ready`] asks.
const READY_POLL: Duration = Duration::from_millis(100);
/// The slowest upload rate an upload's time limit allows for (bytes per second).
const UPLOAD_MIN_RATE: u64 = 1_000_000;

/// The time limit of an upload of `len` bytes: an API request's, plus the time the bytes take at
/// [`UPLOAD_MIN_RATE`] (a 2 GB video gets 35 minutes, not two).
pub(crate) fn upload_timeout(len: u64) -> Duration {
    REQUEST_TIMEOUT.saturating_add(Duration::from_secs(len.div_ceil(UPLOAD_MIN_RATE)))
}

impl HomeserverClient {
    pub fn new(base: &str, as_token: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| MatrixError::Transport { url: base.to_string(), source: e })?;
        Ok(HomeserverClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            as_token: as_token.to_string(),
            max_body: MAX_RESPONSE_BYTES,
            uploaded: Default::default(),
        })
    }

    /// The same client reading API response bodies of at most `cap` bytes
    /// (default [`MAX_RESPONSE_BYTES`]).
    pub fn with_body_cap(mut self, cap: usize) -> Self {
        self.max_body = cap;
        self
    }

    /// Sends a request up to `attempts` times, retrying transient failures (transport, 5xx, 429).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        attempts: u32,
        method: Method,
        path: &str,
        user: Option<&str>,
        query: &[(&str, String)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<T> {
        let url = format!("{}{}", self.base, path);
        let mut builder = self.http.request(method, &url).bearer_auth(&self.as_token);
        if let Some(user) = user {
            builder = builder.query(&[("user_id", user)]);
        }
        if !query.is_empty() {
            builder = builder.query(query);
        }
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            // JSON bodies are in memory, so the builder can always be cloned.
            let Some(this_try) = builder.try_clone() else { return self.execute(builder, &url, what).await };
            match self.execute(this_try, &url, what).await {
                Err(e) if e.is_transient() && attempt < attempts => {
                    let wait = match &e {
                        MatrixError::Api { status: 429, .. } => RATE_LIMITED_WAIT,
                        _ => RETRY_BASE * (1 << attempt.min(6)),
                    };
                    tracing::debug!(what, attempt, ?wait, "retrying: {e}");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn execute<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder, url: &str, what: &str) -> Result<T> {
        let transport = |e| MatrixError::Transport { url: url.to_string(), source: e };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = read_body(resp, self.max_body, url, what).await?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(MatrixError::Api {
                what: what.to_string(),
                status: status.as_u16(),
                errcode: v["errcode"].as_str().unwrap_or("").to_string(),
                error: v["error"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| MatrixError::BadResponse { what: what.to_string(), detail: e.to_string() })
    }

    /// Waits (bounded) until the homeserver answers `/versions`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.request::<Value>(1, Method::GET, "/_matrix/client/versions", None, &[], None, "versions").await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        }
    }

    /// `POST /_matrix/client/v1/appservice/{id}/ping`: the homeserver calls our `/ping` back.
    pub async fn ping(&self, appservice_id: &str, transaction_id: &str) -> Result<u64> {
        let v: Value = self
            .request(
                MAX_ATTEMPTS,
                Method::POST,
                &format!("/_matrix/client/v1/appservice/{}/ping", enc(appservice_id)),
                None,
                &[],
                Some(&json!({ "transaction_id": transaction_id })),
                "appservice ping",
            )
            .await?;
        Ok(v["duration_ms"].as_u64().unwrap_or(0))
    }

    /// Registers a namespaced user; an existing one is fine.
    pub async fn register(&self, localpart: &str) -> Result<()> {
        let body = json!({ "type": "m.login.application_service", "username": localpart, "inhibit_login": true });
        match self.request::<Value>(MAX_ATTEMPTS, Method::POST, "/_matrix/client/v3/register", None, &[], Some(&body), "register").await {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn create_room(&self, as_user: &str, body: &Value) -> Result<OwnedRoomId> {
        // One attempt: a retry after a lost answer would make a second room (see delivery).
        let r: RoomIdResponse = self.request(1, Method::POST, "/_matrix/client/v3/createRoom", Some(as_user), &[], Some(body), "createRoom").await?;
        Ok(r.room_id)
    }

    pub async fn invite(&self, room: &str, as_user: &str, target: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room));
        match self.request::<Value>(MAX_ATTEMPTS, Method::POST, &path, Some(as_user), &[], Some(&json!({ "user_id": target })), "invite").await {
            Ok(_) => Ok(()),
            // Already joined or invited.
            Err(MatrixError::Api { status: 403, ref error, .. }) if error.contains("already") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rooms `as_user` is joined to.
    pub async fn joined_rooms(&self, as_user: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct JoinedRooms {
            joined_rooms: Vec<String>,
        }
        let r: JoinedRooms = self.request(MAX_ATTEMPTS, Method::GET, "/_matrix/client/v3/joined_rooms", Some(as_user), &[], None, "joined rooms").await?;
        Ok(r.joined_rooms)
    }

    /// Every current state event of the room, as `as_user` sees it.
    pub async fn room_state(&self, room: &str, as_user: &str) -> Result<Vec<Value>> {
        let path = format!("/_matrix/client/v3/rooms/{}/state", enc(room));
        self.request(MAX_ATTEMPTS, Method::GET, &path, Some(as_user), &[], None, "room state").await
    }

    /// User ids of the room's joined members, as seen by `as_user` (who must be in the room).
    pub async fn joined_members(&self, room: &str, as_user: &str) -> Result<std::collections::HashSet<String>> {
        let path = format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room));
        let r: JoinedMembersResponse = self.request(MAX_ATTEMPTS, Method::GET, &path, Some(as_user), &[], None, "joined members").await?;
        Ok(r.joined.into_keys().collect())
    }

    pub async fn join(&self, room: &str, user: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/join", enc(room));
        self.request::<Value>(MAX_ATTEMPTS, Method::POST, &path, Some(user), &[], Some(&json!({})), "join").await?;
        Ok(())
    }

    pub async fn leave(&self, room: &str, user: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/leave", enc(room));
        self.request::<Value>(MAX_ATTEMPTS, Method::POST, &path, Some(user), &[], Some(&json!({})), "leave").await?;
        Ok(())
    }

    /// `PUT /rooms/{room}/send/{type}/{txn}` as `user`, with `ts` as the event's timestamp.
    pub async fn send(&self, room: &str, user: &str, event_type: &str, txn: &str, ts: Option<i64>, content: &Value) -> Result<OwnedEventId> {
        let path = format!("/_matrix/client/v3/rooms/{}/send/{}/{}", enc(room), enc(event_type), enc(txn));
        let query: Vec<(&str, String)> = ts.map(|t| ("ts", t.to_string())).into_iter().collect();
        let r: EventIdResponse = self.request(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &query, Some(content), "send").await?;
        Ok(r.event_id)
    }

    pub async fn put_state(&self, room: &str, user: &str, event_type: &str, state_key: &str, content: &Value) -> Result<OwnedEventId> {
        let path = format!("/_matrix/client/v3/rooms/{}/state/{}/{}", enc(room), enc(event_type), enc(state_key));
        let r: EventIdResponse = self.request(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &[], Some(content), "put state").await?;
        Ok(r.event_id)
    }

    /// A state event's content, None if the room has no such state.
    pub async fn state(&self, room: &str, user: &str, event_type: &str, state_key: &str) -> Result<Option<Value>> {
        let path = format!("/_matrix/client/v3/rooms/{}/state/{}/{}", enc(room), enc(event_type), enc(state_key));
        found(self.request::<Value>(MAX_ATTEMPTS, Method::GET, &path, Some(user), &[], None, "get state").await)
    }

    /// One page of `GET /rooms/{room}/messages` as `user`.
    pub async fn messages(&self, room: &str, user: &str, from: Option<&str>, dir: &str, limit: u32) -> Result<MessagesPage> {
        let path = format!("/_matrix/client/v3/rooms/{}/messages", enc(room));
        let mut query = vec![("dir", dir.to_string()), ("limit", limit.to_string())];
        if let Some(from) = from {
            query.push(("from", from.to_string()));
        }
        self.request(MAX_ATTEMPTS, Method::GET, &path, Some(user), &query, None, "messages").await
    }

    /// `PUT /rooms/{room}/redact/{event}/{txn}` as `user`.
    pub async fn redact(&self, room: &str, user: &str, event_id: &str, txn: &str, reason: Option<&str>) -> Result<OwnedEventId> {
        let path = format!("/_matrix/client/v3/rooms/{}/redact/{}/{}", enc(room), enc(event_id), enc(txn));
        let body = reason.map_or_else(|| json!({}), |r| json!({ "reason": r }));
        let r: EventIdResponse = self.request(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &[], Some(&body), "redact").await?;
        Ok(r.event_id)
    }

    /// One event of `room` as `user` sees it (`GET /rooms/{room}/event/{id}`).
    pub async fn event(&self, room: &str, user: &str, event_id: &str) -> Result<Value> {
        let path = format!("/_matrix/client/v3/rooms/{}/event/{}", enc(room), enc(event_id));
        self.request::<Value>(MAX_ATTEMPTS, Method::GET, &path, Some(user), &[], None, "get event").await
    }

    /// Sets `user`'s read receipt and fully-read marker in `room` to `event_id`.
    pub async fn set_read_markers(&self, room: &str, user: &str, event_id: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/read_markers", enc(room));
        let body = json!({ "m.fully_read": event_id, "m.read": event_id });
        self.request::<Value>(MAX_ATTEMPTS, Method::POST, &path, Some(user), &[], Some(&body), "read markers").await?;
        Ok(())
    }

    /// Whether `user` has the override push rule `rule_id`.
    pub async fn has_override_rule(&self, user: &str, rule_id: &str) -> Result<bool> {
        let path = format!("/_matrix/client/v3/pushrules/global/override/{}", enc(rule_id));
        match self.request::<Value>(MAX_ATTEMPTS, Method::GET, &path, Some(user), &[], None, "get push rule").await {
            Ok(_) => Ok(true),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives `user` the override push rule `rule_id`: nothing in `room` notifies. A user's own
    /// override rules come before the server's (all but `.m.rule.master`), so this silences
    /// mentions and invites too, which a `room` rule would not.
    pub async fn mute_room_override(&self, user: &str, rule_id: &str, room: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/pushrules/global/override/{}", enc(rule_id));
        let rule = json!({ "actions": [], "conditions": [{ "kind": "event_match", "key": "room_id", "pattern": room }] });
        self.request::<Value>(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &[], Some(&rule), "set push rule").await?;
        Ok(())
    }

    /// Removes `user`'s override push rule `rule_id` (none is fine).
    pub async fn delete_override_rule(&self, user: &str, rule_id: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/pushrules/global/override/{}", enc(rule_id));
        match self.request::<Value>(MAX_ATTEMPTS, Method::DELETE, &path, Some(user), &[], None, "delete push rule").await {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `user`'s global account data of `kind`, None if unset.
    pub async fn account_data(&self, user: &str, kind: &str) -> Result<Option<Value>> {
        let path = format!("/_matrix/client/v3/user/{}/account_data/{}", enc(user), enc(kind));
        match self.request::<Value>(MAX_ATTEMPTS, Method::GET, &path, Some(user), &[], None, "get account data").await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn set_account_data(&self, user: &str, kind: &str, content: &Value) -> Result<()> {
        let path = format!("/_matrix/client/v3/user/{}/account_data/{}", enc(user), enc(kind));
        self.request::<Value>(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &[], Some(content), "set account data").await?;
        Ok(())
    }

    /// Bytes this client (and its clones) uploaded to the media repository so far.
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Uploads `bytes` to the media repository as `user`; returns the `mxc://` URI.
    pub async fn upload(&self, user: &str, bytes: bytes::Bytes, content_type: &str, filename: &str) -> Result<String> {
        self.upload_body(user, UploadBody::Memory(bytes), content_type, filename).await
    }

    /// Uploads the file at `path` as it is, streamed from disk (a video of several gigabytes
    /// never sits in memory); returns the `mxc://` URI.
    pub async fn upload_file(&self, user: &str, path: &std::path::Path, content_type: &str, filename: &str) -> Result<String> {
        self.upload_body(user, UploadBody::File(path), content_type, filename).await
    }

    async fn upload_body(&self, user: &str, body: UploadBody<'_>, content_type: &str, filename: &str) -> Result<String> {
        let url = format!("{}/_matrix/media/v3/upload", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (body_of_request, len) = body.open().await?;
            let req = self.upload_request(&url, user, content_type, filename, len).body(body_of_request);
            match self.execute::<Value>(req, &url, "upload").await {
                Ok(v) => {
                    self.uploaded.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                    return v["content_uri"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| MatrixError::BadResponse { what: "upload".into(), detail: format!("no content_uri in {v}") });
                }
                Err(e) if e.is_transient() && attempt < UPLOAD_ATTEMPTS => tokio::time::sleep(RETRY_BASE * (1 << attempt.min(6))).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// An upload's request without its body; its time limit grows with its size.
    pub(crate) fn upload_request(&self, url: &str, user: &str, content_type: &str, filename: &str, len: u64) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .timeout(upload_timeout(len))
            .bearer_auth(&self.as_token)
            .query(&[("user_id", user), ("filename", filename)])
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, len)
    }

    /// The media repository's largest upload (`m.upload.size`), None when it names none.
    pub async fn upload_limit(&self, user: &str) -> Result<Option<u64>> {
        let v = self.request::<Value>(MAX_ATTEMPTS, Method::GET, "/_matrix/client/v1/media/config", Some(user), &[], None, "media config").await?;
        Ok(v["m.upload.size"].as_u64())
    }

    /// Downloads `mxc` (authenticated media) as `user`, at most `cap` bytes.
    pub async fn download(&self, user: &str, mxc: &str, cap: usize) -> Result<Vec<u8>> {
        let rest = mxc.strip_prefix("mxc://").ok_or_else(|| MatrixError::BadResponse { what: "download".into(), detail: format!("not an mxc URI: {mxc}") })?;
        let url = format!("{}/_matrix/client/v1/media/download/{rest}", self.base);
        let transport = |e| MatrixError::Transport { url: url.clone(), source: e };
        let resp = self.http.get(&url).bearer_auth(&self.as_token).query(&[("user_id", user)]).send().await.map_err(transport)?;
        if !resp.status().is_success() {
            return Err(MatrixError::Api { what: "download".into(), status: resp.status().as_u16(), errcode: String::new(), error: mxc.to_string() });
        }
        read_body(resp, cap, &url, &format!("download of {mxc}")).await
    }

    /// The room version the homeserver creates rooms with (`/capabilities`' default).
    pub async fn default_room_version(&self, as_user: &str) -> Result<Option<String>> {
        let v: Value = self.request(MAX_ATTEMPTS, Method::GET, "/_matrix/client/v3/capabilities", Some(as_user), &[], None, "capabilities").await?;
        Ok(v["capabilities"]["m.room_versions"]["default"].as_str().map(str::to_string))
    }

    /// `user`'s unread notification counts per joined room, from one `/sync` without timeline.
    pub async fn unread_notifications(&self, user: &str) -> Result<std::collections::HashMap<String, u64>> {
        let filter = json!({ "room": { "timeline": { "limit": 0 }, "state": { "lazy_load_members": true } }, "presence": { "types": [] } }).to_string();
        let query = [("timeout", "0".to_string()), ("filter", filter)];
        let v: Value = self.request(MAX_ATTEMPTS, Method::GET, "/_matrix/client/v3/sync", Some(user), &query, None, "sync").await?;
        Ok(v["rooms"]["join"]
            .as_object()
            .map(|rooms| rooms.iter().map(|(id, r)| (id.clone(), r["unread_notifications"]["notification_count"].as_u64().unwrap_or(0))).collect())
            .unwrap_or_default())
    }
}

/// What an upload sends: bytes in memory, or a file read in pieces as the request goes out
/// (opened again for each attempt).
enum UploadBody<'a> {
    Memory(bytes::Bytes),
    File(&'a std::path::Path),
}

/// Pieces a streamed upload reads the file in.
const UPLOAD_PIECE: usize = 256 << 10;

impl UploadBody<'_> {
    async fn open(&self) -> Result<(reqwest::Body, u64)> {
        match self {
            UploadBody::Memory(bytes) => Ok((reqwest::Body::from(bytes.clone()), bytes.len() as u64)),
            UploadBody::File(path) => {
                let fail = |e: std::io::Error| MatrixError::Media { file: path.display().to_string(), detail: format!("cannot read it for upload: {e}") };
                let file = tokio::fs::File::open(path).await.map_err(fail)?;
                let len = file.metadata().await.map_err(fail)?.len();
                // Exactly `len` bytes: a file that grows meanwhile does not overrun Content-Length.
                let pieces = futures_util::stream::unfold(tokio::io::AsyncReadExt::take(file, len), |mut file| async move {
                    let mut piece = vec![0u8; UPLOAD_PIECE];
                    match tokio::io::AsyncReadExt::read(&mut file, &mut piece).await {
                        Ok(0) => None,
                        Ok(n) => {
                            piece.truncate(n);
                            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(piece)), file))
                        }
                        Err(e) => Some((Err(e), file)),
                    }
                });
                Ok((reqwest::Body::wrap_stream(pieces), len))
            }
        }
    }
}

/// An answer, None when the homeserver says there is nothing (`M_NOT_FOUND`).
pub(crate) fn found<T>(answer: Result<T>) -> Result<Option<T>> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A media repository on 127.0.0.1 that answers each upload with the SHA-256 and length of
    /// the body it received.
    async fn media_repository() -> String {
        use sha2::Digest;
        let app = axum::Router::new()
            .route(
                "/_matrix/media/v3/upload",
                axum::routing::post(|body: bytes::Bytes| async move {
                    let sha: String = sha2::Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
                    axum::Json(json!({ "content_uri": format!("mxc://test/{sha}-{}", body.len()) }))
                }),
            )
            .layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_file_upload_streams_the_whole_file_in_pieces() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.mov");
        // Not a multiple of the piece size, so the last piece is short.
        let bytes: Vec<u8> = (0..(3 * UPLOAD_PIECE + 12_345)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let hs = HomeserverClient::new(&media_repository().await, "token").unwrap();
        let mxc = hs.upload_file("@u:test", &path, "video/quicktime", "big.mov").await.unwrap();
        let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(mxc, format!("mxc://test/{sha}-{}", bytes.len()));
        let missing = hs.upload_file("@u:test", &dir.path().join("gone"), "video/quicktime", "gone.mov").await;
        assert!(matches!(missing, Err(MatrixError::Media { .. })), "{missing:?}");
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every request with `body` (sized, or chunked without a length).
    async fn serve(body: Vec<u8>, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n".to_vec();
                    if chunked {
                        out.extend_from_slice(format!("transfer-encoding: chunked\r\n\r\n{:x}\r\n", body.len()).as_bytes());
                        out.extend_from_slice(&body);
                        out.extend_from_slice(b"\r\n0\r\n\r\n");
                    } else {
                        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                        out.extend_from_slice(&body);
                    }
                    let _ = socket.write_all(&out).await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn a_response_exactly_at_the_cap_is_read_one_byte_over_is_too_large() {
        let json = br#"{"joined_rooms":["!a:x"]}"#;
        let mut body = json.to_vec();
        body.resize(4000, b' '); // JSON may end in whitespace
        for chunked in [false, true] {
            let url = serve(body.clone(), chunked).await;
            let at = HomeserverClient::new(&url, "t").unwrap().with_body_cap(body.len());
            assert_eq!(at.joined_rooms("@bot:x").await.unwrap(), vec!["!a:x".to_string()]);
            let under = HomeserverClient::new(&url, "t").unwrap().with_body_cap(body.len() - 1);
            match under.joined_rooms("@bot:x").await {
                Err(MatrixError::TooLarge { what, cap }) => assert_eq!((what.as_str(), cap), ("joined rooms", body.len() - 1)),
                other => panic!("chunked={chunked}: {other:?}"),
            }
            // Media downloads are capped per call, the same way.
            let hs = HomeserverClient::new(&url, "t").unwrap();
            assert_eq!(hs.download("@u:x", "mxc://x/m", body.len()).await.unwrap().len(), body.len());
            assert!(matches!(hs.download("@u:x", "mxc://x/m", body.len() - 1).await, Err(MatrixError::TooLarge { .. })));
        }
    }
}
