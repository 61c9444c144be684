//! A CardDAV client (RFC 6352) for the contacts of a person's account (iCloud Contacts with an
//! app-specific password, Nextcloud, Fastmail, Radicale): it finds the address books
//! ([`CardDav::connect`], RFC 6764 discovery) and brings their cards up to date incrementally
//! ([`CardDav::sync`]: RFC 6578 `sync-collection`, falling back to comparing ETags), keeping what
//! it knows in a [`SyncState`] the bridge stores as JSON between runs.
//!
//! It only fetches vCards; parsing them and matching handles is the `contacts` crate's job, so
//! this crate stays a transport. Everything the server sends is untrusted: bodies are capped
//! (64 MiB for a multistatus, 10 MiB for a card), redirects stay on the first host, and a card
//! that cannot be read is reported with its href in [`Delta::unreadable`], never dropped silently.
//! The password goes only into the Authorization header: it is in no error, log line or `Debug`
//! output.

mod cards;
mod discover;
mod error;
mod fetch;
mod http;
mod sync;
mod xml;

pub use cards::{AddressBook, RemoteCard, Unreadable};
pub use error::{Error, Result};
pub use sync::{BookState, Delta, SyncMode, SyncState};

use reqwest::Url;

/// Where and as whom to log in. `url` is the server (`https://contacts.icloud.com`), a principal,
/// a home set or an address book.
#[derive(Clone)]
pub struct Credentials {
    pub url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("url", &self.url).field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// A logged-in account with its address books.
#[derive(Debug)]
pub struct CardDav {
    http: http::Http,
    books: Vec<AddressBook>,
}

impl CardDav {
    /// Checks the URL (https, or http on this machine only), logs in and discovers the address
    /// books. A wrong password is [`Error::Unauthorized`]; an account without an address book
    /// is [`Error::NoAddressBook`].
    pub async fn connect(credentials: Credentials) -> Result<Self> {
        let Credentials { url, username, password } = credentials;
        let base = Url::parse(&url).map_err(|e| Error::RefusedUrl { url: url.clone(), why: format!("not a URL ({e})") })?;
        let http = http::Http::new(&base, username, password)?;
        let books = discover::address_books(&http, &base).await?;
        tracing::info!(books = books.len(), "CardDAV address books found");
        Ok(CardDav { http, books })
    }

    /// The address books discovery found.
    pub fn address_books(&self) -> &[AddressBook] {
        &self.books
    }

    /// What changed in every address book since `state`, which is brought up to date: with
    /// `sync-collection` where the server has it, else by ETags. On an error `state` keeps what
    /// the books synced before the error had brought in, so the next call repeats only the rest.
    pub async fn sync(&self, state: &mut SyncState) -> Result<Delta> {
        self.sync_with(state, SyncMode::Auto).await
    }

    /// [`CardDav::sync`] with the way of listing changes chosen by the caller.
    pub async fn sync_with(&self, state: &mut SyncState, mode: SyncMode) -> Result<Delta> {
        sync::sync_books(&self.http, &self.books, state, mode).await
    }
}
