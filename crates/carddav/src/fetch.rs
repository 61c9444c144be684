//! Fetching the cards a listing names: `addressbook-multiget` reports (RFC 6352 §8.7) in batches,
//! and a GET for each card a batch did not deliver (a server without the report, a batch over
//! the multistatus cap, an href the reply left out). Every href asked for ends up in exactly one
//! of [`Fetched`]'s lists.

use std::collections::BTreeSet;

use reqwest::{StatusCode, Url};

use crate::cards::{href_key, RemoteCard, Unreadable};
use crate::error::{Error, Result};
use crate::http::{excerpt, Http, MAX_CARD, MAX_MULTISTATUS};
use crate::xml::{self, Multistatus, CARDDAV, DAV};

/// Cards per multiget report.
const BATCH: usize = 100;

#[derive(Default)]
pub(crate) struct Fetched {
    pub cards: Vec<RemoteCard>,
    /// Cards removed between the listing and the fetch.
    pub gone: Vec<String>,
    pub unreadable: Vec<Unreadable>,
}

impl Fetched {
    fn take(&mut self, href: &str, etag: Option<String>, vcard: &str) {
        let unreadable = |reason: &str| Unreadable { href: href.to_owned(), reason: reason.to_owned() };
        if vcard.len() > MAX_CARD {
            self.unreadable.push(unreadable(&format!("the card is larger than {MAX_CARD} bytes")));
        } else if !vcard.trim_start().get(..11).is_some_and(|h| h.eq_ignore_ascii_case("BEGIN:VCARD")) {
            self.unreadable.push(unreadable(&format!("not a vCard: {}", excerpt(vcard.as_bytes()))));
        } else if let Some(etag) = etag {
            self.cards.push(RemoteCard { href: href.to_owned(), etag, vcard: vcard.to_owned() });
        } else {
            self.unreadable.push(unreadable("the server gave no ETag for the card"));
        }
    }
}

fn multiget_body(hrefs: &[String]) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/></D:prop>"#,
    );
    for href in hrefs {
        body.push_str("<D:href>");
        body.push_str(&xml::escape(href));
        body.push_str("</D:href>");
    }
    body.push_str("</C:addressbook-multiget>");
    body
}

/// Fetches the cards at `hrefs` (URL paths in `book`).
pub(crate) async fn cards(http: &Http, book: &Url, hrefs: &[String]) -> Result<Fetched> {
    let mut fetched = Fetched::default();
    for batch in hrefs.chunks(BATCH) {
        let mut missing: BTreeSet<&String> = batch.iter().collect();
        match multiget(http, book, batch, &mut fetched).await {
            Ok(answered) => missing.retain(|h| !answered.contains(h.as_str())),
            Err(e @ (Error::Unauthorized { .. } | Error::Transport { .. })) => return Err(e),
            Err(e) => tracing::debug!(book = %book, error = %e, "CardDAV multiget failed: fetching the batch card by card"),
        }
        for href in missing {
            get(http, book, href, &mut fetched).await?;
        }
    }
    Ok(fetched)
}

/// One multiget report; returns the hrefs it settled.
async fn multiget(http: &Http, book: &Url, batch: &[String], fetched: &mut Fetched) -> Result<BTreeSet<String>> {
    let reply = http.send("REPORT", book, Some("1"), Some(&multiget_body(batch)), MAX_MULTISTATUS).await?;
    if reply.status != StatusCode::MULTI_STATUS {
        return Err(Error::Status {
            method: "REPORT".into(),
            url: crate::http::redacted(&reply.url),
            status: reply.status.as_u16(),
            detail: excerpt(&reply.body),
        });
    }
    let parsed = Multistatus::parse(&reply.body).map_err(|detail| Error::Xml { url: crate::http::redacted(&reply.url), detail })?;
    let asked: BTreeSet<&str> = batch.iter().map(String::as_str).collect();
    let mut settled = BTreeSet::new();
    for response in parsed.responses() {
        let Some(key) = href_key(&reply.url, response.href).filter(|k| asked.contains(k.as_str())) else { continue };
        if settled.contains(&key) {
            continue;
        }
        if response.status == Some(404) {
            fetched.gone.push(key.clone());
        } else if let Some(data) = response.prop(CARDDAV, "address-data") {
            let etag = response.prop(DAV, "getetag").map(|e| e.text.trim().to_owned()).filter(|e| !e.is_empty());
            fetched.take(&key, etag, &data.text);
        } else {
            // No data and no 404: leave it to the GET, which says why.
            continue;
        }
        settled.insert(key);
    }
    Ok(settled)
}

/// One card by GET.
async fn get(http: &Http, book: &Url, href: &str, fetched: &mut Fetched) -> Result<()> {
    let unreadable = |reason: String| Unreadable { href: href.to_owned(), reason };
    let Ok(url) = book.join(href) else {
        fetched.unreadable.push(unreadable("an href that is not a URL path".into()));
        return Ok(());
    };
    let reply = match http.send("GET", &url, None, None, MAX_CARD).await {
        Ok(reply) => reply,
        Err(Error::TooLarge { cap, .. }) => {
            fetched.unreadable.push(unreadable(format!("the card is larger than {cap} bytes")));
            return Ok(());
        }
        Err(e @ (Error::RefusedUrl { .. } | Error::Redirect { .. })) => {
            fetched.unreadable.push(unreadable(e.to_string()));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match reply.status {
        StatusCode::OK => match String::from_utf8(reply.body) {
            Ok(text) => fetched.take(href, reply.etag, &text),
            Err(_) => fetched.unreadable.push(unreadable("the card is not UTF-8".into())),
        },
        StatusCode::NOT_FOUND | StatusCode::GONE => fetched.gone.push(href.to_owned()),
        status => fetched.unreadable.push(unreadable(format!("GET answered HTTP {}: {}", status.as_u16(), excerpt(&reply.body)))),
    }
    Ok(())
}
