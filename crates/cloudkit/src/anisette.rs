//! Anisette headers (`X-Apple-I-MD`, `X-Apple-I-MD-M`, …), which Apple's servers want from a
//! device, fetched from the session's anisette server.
//!
//! That server is usually a public third-party one. It is asked with an HTTP client of its own
//! ([`http_client`]) that carries no header of the account (no CloudKit token, user id or device
//! id) and no CloudKit header at all, so all it learns is that someone wants anisette data; its
//! answer's redirects are followed only to https or this machine.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use crate::body::{read_capped, BodyRead};
use crate::error::{Error, Result};
use crate::limits::{ANISETTE_TIMEOUT, CONNECT_TIMEOUT, MAX_SMALL_BODY};

/// How long anisette headers are reused (omnisette caches them for 60 s).
const ANISETTE_TTL: Duration = Duration::from_secs(60);

/// Anisette headers as they are added to a request.
type Headers = Vec<(HeaderName, HeaderValue)>;

/// The client anisette requests go out with: its own user agent and nothing else of the bridge.
pub(crate) fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("imessage-bridge/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 5 || crate::urls::check_url(attempt.url().as_str(), "").is_err() {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ANISETTE_TIMEOUT)
        .build()
}

/// Anisette headers from the session's anisette server, fetched when first needed and again
/// once they are older than [`ANISETTE_TTL`].
pub(crate) struct Anisette {
    url: Option<String>,
    cached: tokio::sync::Mutex<Option<(std::time::Instant, Headers)>>,
}

impl Anisette {
    pub(crate) fn new(url: Option<String>) -> Self {
        Anisette { url, cached: tokio::sync::Mutex::new(None) }
    }

    pub(crate) async fn headers(&self, http: &reqwest::Client) -> Result<Headers> {
        let Some(url) = &self.url else { return Ok(Vec::new()) };
        let mut cached = self.cached.lock().await;
        if let Some((at, headers)) = cached.as_ref() {
            if at.elapsed() < ANISETTE_TTL {
                return Ok(headers.clone());
            }
        }
        let err = |detail: String| Error::Anisette { url: url.clone(), detail };
        let response = http.get(url).send().await.map_err(|e| err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("HTTP {}", response.status())));
        }
        let body = read_capped(response, MAX_SMALL_BODY).await.map_err(|e| match e {
            BodyRead::Transport(e) => err(e.to_string()),
            BodyRead::TooLarge => err(format!("the answer is larger than {MAX_SMALL_BODY} bytes")),
        })?;
        let map: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| err(format!("not a JSON object of headers: {e}")))?;
        let mut headers = Vec::new();
        for (name, value) in map {
            // Anisette servers add bookkeeping keys ("result", …) that are not headers.
            let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), value.as_str()) else { continue };
            if !name.as_str().starts_with("x-") {
                continue;
            }
            let value = HeaderValue::from_str(value).map_err(|e| err(format!("header {name}: {e}")))?;
            headers.push((name, value));
        }
        if !headers.iter().any(|(n, _)| n == "x-apple-i-md") {
            return Err(err("the answer has no X-Apple-I-MD".into()));
        }
        *cached = Some((std::time::Instant::now(), headers.clone()));
        Ok(headers)
    }
}
