//! The HTTP side: one reqwest client per connection, the credentials sent as Basic auth only to
//! URLs this module allows, redirects followed by hand and every body read under a cap.
//!
//! Redirects are followed here rather than by reqwest because reqwest turns a redirected
//! PROPFIND or REPORT into a GET without its body (RFC 7231 lets clients do so on 301/302), and
//! `.well-known/carddav` answers PROPFIND with exactly such a redirect. A redirect may only stay
//! on the first URL's origin (scheme, host, port): an unauthenticated hop must not be able to send
//! the password elsewhere. http is allowed only to this machine (localhost, 127.0.0.0/8, ::1),
//! the same policy as the CloudKit client's.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

use crate::error::{Error, Result};
use crate::xml::Multistatus;

/// The cap on a multistatus body (a full listing or a multiget batch of cards with photos).
pub(crate) const MAX_MULTISTATUS: usize = 64 << 20;
/// The cap on one card (GET) and on the address data of one card in a multiget.
pub(crate) const MAX_CARD: usize = 10 << 20;
/// Redirects followed for one request at the most.
const MAX_REDIRECTS: usize = 5;
/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all: a whole address book's multiget included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Refuses a URL the credentials must not go to: neither https nor http on this machine, or one
/// that carries a user or password of its own (it would be logged with the URL).
pub(crate) fn check_url(url: &Url) -> Result<()> {
    let refuse = |why: &str| Err(Error::RefusedUrl { url: redacted(url), why: why.to_string() });
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("credentials in the URL; give the user name and the password file separately");
    }
    let on_this_machine = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return refuse("no host"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if on_this_machine => Ok(()),
        "http" => refuse("plain http is only for this machine (localhost, 127.0.0.1, ::1); use https"),
        other => refuse(&format!("the scheme {other:?} is not https")),
    }
}

/// A URL as it may appear in an error: without any user info.
pub(crate) fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

/// A reply whose status the caller judges.
pub(crate) struct Reply {
    /// The URL that answered (after redirects).
    pub url: Url,
    pub status: StatusCode,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

/// The client of one CardDAV account.
pub(crate) struct Http {
    client: reqwest::Client,
    origin: url::Origin,
    pub(crate) username: String,
    password: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("origin", &self.origin).field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

impl Http {
    pub(crate) fn new(base: &Url, username: String, password: String) -> Result<Self> {
        check_url(base)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("imessage-bridge-carddav/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Http { client, origin: base.origin(), username, password })
    }

    /// Sends `method` to `url` (with `Depth` and an XML body when given), following redirects on
    /// the same origin, and reads the body up to `cap`. HTTP 401 is [`Error::Unauthorized`];
    /// every other status is the caller's to judge.
    pub(crate) async fn send(&self, method: &str, url: &Url, depth: Option<&str>, body: Option<&str>, cap: usize) -> Result<Reply> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| Error::Client(e.to_string()))?;
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            check_url(&url)?;
            let mut request = self.client.request(method.clone(), url.clone()).basic_auth(&self.username, Some(&self.password));
            if let Some(depth) = depth {
                request = request.header("Depth", depth);
            }
            if let Some(body) = body {
                request = request.header("Content-Type", "application/xml; charset=utf-8").body(body.to_owned());
            }
            let response = request.send().await.map_err(|e| Error::Transport { url: redacted(&url), detail: e.without_url().to_string() })?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                url = self.redirect_target(&url, response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()))?;
                tracing::debug!(to = %url, "CardDAV redirect");
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(Error::Unauthorized { url: redacted(&url), username: self.username.clone() });
            }
            let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = read_capped(response, cap, &url).await?;
            return Ok(Reply { url, status, etag, body });
        }
        Err(Error::Redirect { url: redacted(&url), detail: format!("more than {MAX_REDIRECTS} redirects") })
    }

    /// Where a redirect from `from` to `location` (its `Location` header, if text) goes; only
    /// the first URL's origin is allowed.
    fn redirect_target(&self, from: &Url, location: Option<&str>) -> Result<Url> {
        let bad = |detail: String| Error::Redirect { url: redacted(from), detail };
        let location = location.ok_or_else(|| bad("a redirect without a usable Location".into()))?;
        let target = from.join(location).map_err(|e| bad(format!("Location {location:?}: {e}")))?;
        if target.origin() != self.origin {
            return Err(Error::RefusedUrl {
                url: redacted(&target),
                why: format!("a redirect from {} to another host; the password is only sent to {}", redacted(from), self.origin.ascii_serialization()),
            });
        }
        Ok(target)
    }
}

/// A WebDAV request whose answer must be a 207 multistatus: any other status is
/// [`Error::Status`] and an unreadable body [`Error::Xml`]. Returns the answering URL (hrefs are
/// relative to it) with the parsed reply.
pub(crate) async fn multistatus(http: &Http, method: &str, url: &Url, depth: &str, body: &str) -> Result<(Url, Multistatus)> {
    let reply = http.send(method, url, Some(depth), Some(body), MAX_MULTISTATUS).await?;
    if reply.status != StatusCode::MULTI_STATUS {
        return Err(Error::Status { method: method.into(), url: redacted(&reply.url), status: reply.status.as_u16(), detail: excerpt(&reply.body) });
    }
    let parsed = Multistatus::parse(&reply.body).map_err(|detail| Error::Xml { url: redacted(&reply.url), detail })?;
    Ok((reply.url, parsed))
}

/// Reads a body, refusing one larger than `cap` before reading past it.
async fn read_capped(mut response: reqwest::Response, cap: usize, url: &Url) -> Result<Vec<u8>> {
    let too_large = || Error::TooLarge { url: redacted(url), cap };
    let stated = response.content_length().unwrap_or(0);
    if stated > cap as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(stated as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| Error::Transport { url: redacted(url), detail: e.without_url().to_string() })? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short, printable excerpt of an error body for an error message.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_here_and_no_credentials_in_urls() {
        for ok in ["https://contacts.icloud.com", "https://dav.example:8443/x/", "http://127.0.0.1:5232/", "http://localhost/", "http://[::1]:9/"] {
            assert!(check_url(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in ["http://contacts.icloud.com", "http://10.0.0.1/", "http://localhost.evil.example/", "ftp://127.0.0.1/", "https://me:hunter2@dav.example/"] {
            let err = check_url(&Url::parse(bad).unwrap()).expect_err(bad).to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn redirects_stay_on_the_first_origin() {
        let base = Url::parse("https://dav.example/").unwrap();
        let http = Http::new(&base, "u".into(), "pw-never-shown".into()).unwrap();
        let from = Url::parse("https://dav.example/.well-known/carddav").unwrap();
        assert_eq!(http.redirect_target(&from, Some("/dav/")).unwrap().as_str(), "https://dav.example/dav/");
        assert_eq!(http.redirect_target(&from, Some("https://dav.example:443/p/")).unwrap().as_str(), "https://dav.example/p/");
        for away in ["https://evil.example/", "http://dav.example/", "https://dav.example:8443/", "//other.example/x"] {
            let err = http.redirect_target(&from, Some(away)).expect_err(away);
            assert!(matches!(err, Error::RefusedUrl { .. }), "{away}: {err:?}");
            assert!(!format!("{err} {err:?} {http:?}").contains("pw-never-shown"));
        }
        assert!(matches!(http.redirect_target(&from, None), Err(Error::Redirect { .. })));
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt(b"  short \n"), "short");
        assert_eq!(excerpt("é".repeat(500).as_bytes()).chars().count(), 201);
    }
}
