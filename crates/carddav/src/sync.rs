//! Bringing an address book up to date. The listing of what changed comes from a
//! `sync-collection` report (RFC 6578) with the stored token; a server that rejects the token
//! (403/409 `DAV:valid-sync-token`) gets a full listing from an empty token, and one without the
//! report (or when [`SyncMode::Etags`] asks) a PROPFIND Depth 1 of `getetag`, compared with the
//! stored ETags. Changed cards are then fetched (`fetch.rs`).
//!
//! A listed card whose ETag equals the stored one is not fetched again, so a report repeated
//! from an older token costs nothing. While any card of a book is unreadable the book's token is
//! not advanced: the next sync lists those cards again and retries them.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::cards::{href_key, AddressBook, RemoteCard, Unreadable};
use crate::error::{Error, Result};
use crate::http::{excerpt, multistatus, redacted, Http, MAX_MULTISTATUS};
use crate::xml::{self, Multistatus, DAV};

/// What the bridge stores between syncs, per address book URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncState {
    pub books: BTreeMap<String, BookState>,
}

/// One address book's sync token and the ETag of every card held, by href (the URL path).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BookState {
    pub sync_token: Option<String>,
    pub etags: BTreeMap<String, String>,
}

/// The changes of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub upserted: Vec<RemoteCard>,
    /// Hrefs of cards removed since the last sync (only cards the state held).
    pub removed: Vec<String>,
    pub unreadable: Vec<Unreadable>,
}

/// How changes are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `sync-collection` where the server has it, else ETags.
    Auto,
    /// Always PROPFIND `getetag` and compare (what a server without RFC 6578 gets).
    Etags,
}

/// What a server listed: cards present with their ETags, cards gone, and whether the listing is
/// complete (then every held card not listed is gone too).
struct Listing {
    present: Vec<(String, Option<String>)>,
    /// Members whose href points off the book's server: reported, never fetched.
    unusable: Vec<Unreadable>,
    gone: Vec<String>,
    complete: bool,
    token: Option<String>,
}

/// Why a `sync-collection` report gave no listing.
enum ReportFailure {
    InvalidToken,
    Unsupported(String),
    Fatal(Error),
}

/// Reports of a truncated (507) listing followed at the most.
const MAX_REPORT_ROUNDS: usize = 1000;

pub(crate) async fn sync_books(http: &Http, books: &[AddressBook], state: &mut SyncState, mode: SyncMode) -> Result<Delta> {
    let mut delta = Delta::default();
    for book in books {
        let url = Url::parse(&book.url).map_err(|e| Error::RefusedUrl { url: book.url.clone(), why: e.to_string() })?;
        let held = state.books.get(&book.url).cloned().unwrap_or_default();
        let (book_delta, new_state) = sync_book(http, &url, &held, mode).await?;
        state.books.insert(book.url.clone(), new_state);
        delta.upserted.extend(book_delta.upserted);
        delta.removed.extend(book_delta.removed);
        delta.unreadable.extend(book_delta.unreadable);
    }
    // A book that is gone from the account takes its cards with it.
    let current: BTreeSet<&str> = books.iter().map(|b| b.url.as_str()).collect();
    let vanished: Vec<String> = state.books.keys().filter(|k| !current.contains(k.as_str())).cloned().collect();
    for url in vanished {
        if let Some(old) = state.books.remove(&url) {
            tracing::info!(book = %url, cards = old.etags.len(), "CardDAV address book is gone");
            delta.removed.extend(old.etags.into_keys());
        }
    }
    Ok(delta)
}

async fn sync_book(http: &Http, book: &Url, held: &BookState, mode: SyncMode) -> Result<(Delta, BookState)> {
    let listing = match mode {
        SyncMode::Etags => etag_listing(http, book).await?,
        SyncMode::Auto => match report_listing(http, book, held.sync_token.as_deref()).await {
            Ok(listing) => listing,
            Err(ReportFailure::InvalidToken) => {
                tracing::info!(book = %book, "CardDAV sync token no longer valid: full listing");
                match report_listing(http, book, None).await {
                    Ok(listing) => listing,
                    Err(ReportFailure::Fatal(e)) => return Err(e),
                    Err(ReportFailure::InvalidToken | ReportFailure::Unsupported(_)) => etag_listing(http, book).await?,
                }
            }
            Err(ReportFailure::Unsupported(why)) => {
                tracing::debug!(book = %book, why, "CardDAV server without sync-collection: comparing ETags");
                etag_listing(http, book).await?
            }
            Err(ReportFailure::Fatal(e)) => return Err(e),
        },
    };
    let mut etags = held.etags.clone();
    let mut delta = Delta::default();
    let mut removed = BTreeSet::new();
    if listing.complete {
        let listed: BTreeSet<&str> = listing.present.iter().map(|(h, _)| h.as_str()).collect();
        removed.extend(etags.keys().filter(|h| !listed.contains(h.as_str())).cloned());
    }
    removed.extend(listing.gone.into_iter().filter(|h| etags.contains_key(h)));
    let wanted: Vec<String> =
        listing.present.into_iter().filter(|(href, etag)| etag.is_none() || etags.get(href) != etag.as_ref()).map(|(href, _)| href).collect();
    let mut fetched = crate::fetch::cards(http, book, &wanted).await?;
    fetched.unreadable.extend(listing.unusable);
    removed.extend(fetched.gone.into_iter().filter(|h| etags.contains_key(h)));
    for href in &removed {
        etags.remove(href);
    }
    for card in &fetched.cards {
        etags.insert(card.href.clone(), card.etag.clone());
    }
    let token = if fetched.unreadable.is_empty() {
        listing.token
    } else if listing.complete {
        None
    } else {
        held.sync_token.clone()
    };
    delta.upserted = fetched.cards;
    delta.removed = removed.into_iter().collect();
    delta.unreadable = fetched.unreadable;
    if !delta.unreadable.is_empty() {
        tracing::warn!(book = %book, unreadable = delta.unreadable.len(), "CardDAV cards could not be read; retried on the next sync");
    }
    Ok((delta, BookState { sync_token: token, etags }))
}

/// The URL path of an href relative to `base`: the key cards are held by.
fn off_server(href: &str) -> Unreadable {
    Unreadable { href: href.to_owned(), reason: "the href is not a path on the address book's server".into() }
}

/// Whether an href names the collection itself (listings include it).
fn is_collection(book: &Url, key: &str) -> bool {
    key.trim_end_matches('/') == book.path().trim_end_matches('/')
}

fn report_body(token: Option<&str>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><sync-collection xmlns="DAV:"><sync-token>{}</sync-token><sync-level>1</sync-level><prop><getetag/></prop></sync-collection>"#,
        xml::escape(token.unwrap_or(""))
    )
}

async fn report_listing(http: &Http, book: &Url, token: Option<&str>) -> std::result::Result<Listing, ReportFailure> {
    let mut listing = Listing { present: Vec::new(), unusable: Vec::new(), gone: Vec::new(), complete: token.is_none(), token: None };
    let mut token = token.map(str::to_owned);
    for _ in 0..MAX_REPORT_ROUNDS {
        let reply = http.send("REPORT", book, Some("1"), Some(&report_body(token.as_deref())), MAX_MULTISTATUS).await.map_err(ReportFailure::Fatal)?;
        if reply.status != StatusCode::MULTI_STATUS {
            let invalid = matches!(reply.status, StatusCode::FORBIDDEN | StatusCode::CONFLICT) && xml::error_names(&reply.body, DAV, "valid-sync-token");
            if invalid && token.is_some() {
                return Err(ReportFailure::InvalidToken);
            }
            return Err(ReportFailure::Unsupported(format!("HTTP {}: {}", reply.status.as_u16(), excerpt(&reply.body))));
        }
        let parsed = Multistatus::parse(&reply.body).map_err(|detail| ReportFailure::Fatal(Error::Xml { url: redacted(&reply.url), detail }))?;
        let mut truncated = false;
        for response in parsed.responses() {
            let Some(key) = href_key(&reply.url, response.href) else {
                listing.unusable.push(off_server(response.href));
                continue;
            };
            if is_collection(book, &key) {
                truncated |= response.status == Some(507);
                continue;
            }
            if response.status == Some(404) {
                listing.gone.push(key);
            } else {
                let etag = response.prop(DAV, "getetag").map(|e| e.text.trim().to_owned()).filter(|e| !e.is_empty());
                listing.present.push((key, etag));
            }
        }
        let Some(next) = parsed.sync_token() else {
            return Err(ReportFailure::Unsupported("a sync-collection reply without a sync-token".into()));
        };
        listing.token = Some(next.to_owned());
        if !truncated {
            return Ok(listing);
        }
        token = listing.token.clone();
    }
    Err(ReportFailure::Fatal(Error::Xml { url: redacted(book), detail: format!("sync-collection still truncated after {MAX_REPORT_ROUNDS} reports") }))
}

const ETAGS: &str = r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><resourcetype/><getetag/></prop></propfind>"#;

async fn etag_listing(http: &Http, book: &Url) -> Result<Listing> {
    let (answered, reply) = multistatus(http, "PROPFIND", book, "1", ETAGS).await?;
    let mut present = Vec::new();
    let mut unusable = Vec::new();
    for response in reply.responses() {
        let Some(key) = href_key(&answered, response.href) else {
            unusable.push(off_server(response.href));
            continue;
        };
        let is_dir = response.prop(DAV, "resourcetype").is_some_and(|t| t.child(DAV, "collection").is_some());
        if is_collection(book, &key) || is_dir {
            continue;
        }
        let etag = response.prop(DAV, "getetag").map(|e| e.text.trim().to_owned()).filter(|e| !e.is_empty());
        present.push((key, etag));
    }
    Ok(Listing { present, unusable, gone: Vec::new(), complete: true, token: None })
}
