//! Finding the address books of an account (RFC 6764 §6, RFC 6352 §7): the context path from
//! `/.well-known/carddav` (or the URL the user gave), its `current-user-principal`, the
//! principal's `addressbook-home-set`, and the collections in the home set whose `resourcetype`
//! holds `CARDDAV:addressbook`. Each step falls back to the URL at hand when a server leaves the
//! property out, so a URL that already names a principal, a home set or an address book works too.

use reqwest::Url;

use crate::cards::AddressBook;
use crate::error::{Error, Result};
use crate::http::{check_url, multistatus, Http};
use crate::xml::{CARDDAV, DAV};

const PRINCIPAL: &str = r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>"#;
const HOME_SET: &str = r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><prop><C:addressbook-home-set/></prop></propfind>"#;
const COLLECTIONS: &str = r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><resourcetype/><displayname/></prop></propfind>"#;

/// Whether a failed discovery step may fall back to the next URL: the server answered, just not
/// with the property (404, 405, no multistatus). A login, transport or policy failure may not.
fn answered_without(e: &Error) -> bool {
    matches!(e, Error::Status { .. } | Error::Xml { .. })
}

/// The first href of property `ns`:`name` on `url` (PROPFIND Depth 0), resolved against the URL
/// that answered, or `None` when the server does not give it.
async fn href_property(http: &Http, url: &Url, body: &str, ns: &str, name: &str) -> Result<Option<Url>> {
    let (answered, reply) = match multistatus(http, "PROPFIND", url, "0", body).await {
        Ok(r) => r,
        Err(e) if answered_without(&e) => {
            tracing::debug!(%url, error = %e, property = name, "CardDAV discovery step without an answer");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(href) = reply.responses().find_map(|r| r.prop_href(ns, name).map(str::to_owned)) else { return Ok(None) };
    let target = answered.join(&href).map_err(|e| Error::Xml { url: answered.to_string(), detail: format!("{name} href {href:?}: {e}") })?;
    // A server may name a home set on another of its hosts (iCloud's pNN-contacts); it must
    // still be https.
    check_url(&target)?;
    Ok(Some(target))
}

/// The address books of the account at `base`.
pub(crate) async fn address_books(http: &Http, base: &Url) -> Result<Vec<AddressBook>> {
    let well_known = base.join("/.well-known/carddav").map_err(|e| Error::RefusedUrl { url: base.to_string(), why: e.to_string() })?;
    let mut principal = None;
    for context in [&well_known, base] {
        principal = href_property(http, context, PRINCIPAL, DAV, "current-user-principal").await?;
        if principal.is_some() {
            break;
        }
    }
    let principal = principal.unwrap_or_else(|| base.clone());
    let home = href_property(http, &principal, HOME_SET, CARDDAV, "addressbook-home-set").await?.unwrap_or(principal);
    tracing::debug!(%home, "CardDAV address book home set");
    let (answered, reply) = multistatus(http, "PROPFIND", &home, "1", COLLECTIONS).await?;
    let mut books = Vec::new();
    for response in reply.responses() {
        let is_book = response.prop(DAV, "resourcetype").is_some_and(|t| t.child(CARDDAV, "addressbook").is_some());
        if !is_book {
            continue;
        }
        let Ok(url) = answered.join(response.href) else {
            tracing::warn!(href = response.href, "CardDAV address book with an unusable href, skipped");
            continue;
        };
        check_url(&url)?;
        let display_name = response.prop(DAV, "displayname").map(|d| d.text.trim().to_owned()).filter(|d| !d.is_empty());
        books.push(AddressBook { url: url.to_string(), display_name });
    }
    if books.is_empty() {
        return Err(Error::NoAddressBook { url: home.to_string(), username: http.username.clone() });
    }
    Ok(books)
}
