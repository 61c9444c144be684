//! A loopback HTTP proxy in front of the simulator that damages some CloudKit replies, for the
//! faults the simulator itself does not make: a reply cut off half-way, a 200 whose body is an
//! HTML error page or random bytes, and HTTP 429 with a `Retry-After` whose wait the proxy
//! measures (until the bridge asks for the same zone again: zones are synced side by side), so a
//! test can hold the bridge to the header.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What to do to the `n`th (from 1) `record/sync` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Forward it and return the first half of the reply's body.
    Truncate,
    /// Answer 200 with an HTML page (a middlebox's error page).
    Html,
    /// Answer 200 with bytes that are not CloudKit's framing.
    Garbage,
    /// Answer 429 with `Retry-After: secs`.
    Throttle { secs: u64 },
}

#[derive(Default)]
struct Log {
    syncs: u64,
    damaged: Vec<Damage>,
    /// For each 429: its zone, when it was sent and the header's wait; then when the next
    /// request for that zone came.
    throttled: Vec<(Option<&'static str>, Instant, Duration, Option<Instant>)>,
}

pub struct Proxy {
    pub url: String,
    log: Arc<Mutex<Log>>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    plan: Arc<dyn Fn(u64) -> Option<Damage> + Send + Sync>,
    log: Arc<Mutex<Log>>,
    http: reqwest::Client,
}

impl Proxy {
    /// Proxies to `upstream`; `plan(n)` decides the damage to the nth `record/sync` request.
    pub async fn start(upstream: &str, plan: impl Fn(u64) -> Option<Damage> + Send + Sync + 'static) -> Proxy {
        let log: Arc<Mutex<Log>> = Arc::default();
        let ctx = Ctx { upstream: upstream.to_string(), plan: Arc::new(plan), log: log.clone(), http: reqwest::Client::new() };
        let app = axum::Router::new().fallback(forward).with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { url, log, _server: server }
    }

    /// The damage done, in order.
    pub fn damaged(&self) -> Vec<Damage> {
        self.log.lock().unwrap().damaged.clone()
    }

    /// `record/sync` requests seen.
    pub fn syncs(&self) -> u64 {
        self.log.lock().unwrap().syncs
    }

    /// For each 429 sent: the wait its header asked for and how long the bridge actually waited
    /// before its next request for the same zone (None: it never asked again), and the zone.
    pub fn throttle_waits(&self) -> Vec<(Option<&'static str>, Duration, Option<Duration>)> {
        self.log.lock().unwrap().throttled.iter().map(|(zone, at, asked, next)| (*zone, *asked, next.map(|n| n - *at))).collect()
    }
}

/// The zone a `record/sync` request body (gzip of the framed operations) names.
fn zone_of(body: &[u8]) -> Option<&'static str> {
    let plain = cloudkit::framing::gunzip(body).ok()?;
    ["messageManateeZone", "chatManateeZone", "attachmentManateeZone"].into_iter().find(|z| plain.windows(z.len()).any(|w| w == z.as_bytes()))
}

async fn forward(State(ctx): State<Ctx>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_string();
    let is_sync = path.contains("record/sync");
    let zone = if is_sync { zone_of(&body) } else { None };
    let damage = {
        let mut log = ctx.log.lock().unwrap();
        if is_sync {
            let now = Instant::now();
            for t in log.throttled.iter_mut().filter(|t| t.0 == zone && t.3.is_none()) {
                t.3 = Some(now);
            }
            log.syncs += 1;
            let d = (ctx.plan)(log.syncs);
            if let Some(d) = d {
                log.damaged.push(d);
                if let Damage::Throttle { secs } = d {
                    log.throttled.push((zone, Instant::now(), Duration::from_secs(secs), None));
                }
            }
            d
        } else {
            None
        }
    };
    match damage {
        Some(Damage::Throttle { secs }) => return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", secs.to_string())], "slow down").into_response(),
        Some(Damage::Html) => return (StatusCode::OK, [("content-type", "text/html")], "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response(),
        Some(Damage::Garbage) => {
            let junk: Vec<u8> = (0u32..4096).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            return (StatusCode::OK, [("content-type", "application/x-protobuf")], junk).into_response();
        }
        _ => {}
    }
    let Some((status, out, mut bytes)) = pass_on(&ctx.http, &ctx.upstream, method, &path, &headers, body).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if damage == Some(Damage::Truncate) {
        bytes.truncate(bytes.len() / 2);
    }
    (status, out, bytes).into_response()
}

/// Sends a request on to `upstream` (`path` with its query) as it came, and returns the answer
/// as it came; None when the upstream cannot be reached or its body read.
pub async fn pass_on(
    http: &reqwest::Client,
    upstream: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<(StatusCode, HeaderMap, Bytes)> {
    let mut req = http.request(method, format!("{upstream}{path}")).body(body);
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let upstream = req.send().await.ok()?;
    let status = upstream.status();
    let mut out = HeaderMap::new();
    for (k, v) in upstream.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out.insert(k, v.clone());
        }
    }
    Some((status, out, upstream.bytes().await.ok()?))
}
