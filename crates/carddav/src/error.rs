//! The one error type of the `carddav` crate. A variant names the URL and, where it matters, the
//! user, never the password: errors end up in logs, `doctor` output and bug reports.

/// Why a CardDAV request or the whole connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is neither https nor on this machine, carries a password of its own, or a
    /// redirect or an href points where the credentials must not go: nothing is sent there.
    #[error("refusing {url}: {why}")]
    RefusedUrl { url: String, why: String },
    /// The HTTP client could not be built (TLS roots, …).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The server could not be reached or the connection broke (the reqwest error's text; the
    /// credentials travel in a header, never in the URL, so it cannot hold them).
    #[error("cannot reach the CardDAV server at {url}: {detail}")]
    Transport { url: String, detail: String },
    /// HTTP 401: the user name or the (app-specific) password is wrong.
    #[error("the CardDAV server at {url} refused the login of user {username:?} (HTTP 401): check the user name and the password file")]
    Unauthorized { url: String, username: String },
    /// Any other status the request cannot go on with.
    #[error("{method} {url} answered HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status { method: String, url: String, status: u16, detail: String },
    /// More than the allowed number of redirects, or one without a usable `Location`.
    #[error("redirects from {url}: {detail}")]
    Redirect { url: String, detail: String },
    /// A body larger than the cap for its kind: it was not read past the cap.
    #[error("the answer from {url} is larger than {cap} bytes")]
    TooLarge { url: String, cap: usize },
    /// A body that is not the XML the request asks for.
    #[error("the answer from {url} is not a usable WebDAV reply: {detail}")]
    Xml { url: String, detail: String },
    /// Discovery found no address book collection.
    #[error("no address book found for user {username:?} at {url} (looked at .well-known/carddav, the current user principal and its addressbook-home-set)")]
    NoAddressBook { url: String, username: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
