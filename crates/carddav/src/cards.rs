//! What the other modules share about cards and books: an address book found by discovery, a
//! card fetched or one that could not be, and the key an href is stored under. A leaf, so that
//! discovery, the sync and the fetch do not import each other for their types.

use reqwest::Url;

/// An address book collection found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBook {
    /// The collection's absolute URL; the key of its [`BookState`].
    pub url: String,
    pub display_name: Option<String>,
}

/// A card that is new or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCard {
    /// The card's URL path on the server; stable while the card exists.
    pub href: String,
    pub etag: String,
    /// The vCard text as the server sent it.
    pub vcard: String,
}

/// A card the server listed but that could not be fetched or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub href: String,
    pub reason: String,
}

/// The key of an href: its path on the book's server; None for a URL on another origin.
pub(crate) fn href_key(base: &Url, href: &str) -> Option<String> {
    base.join(href).ok().filter(|u| u.origin() == base.origin()).map(|u| u.path().to_owned())
}
