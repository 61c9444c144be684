//! Matrix side of the bridge: the appservice registration and HTTP API, a small homeserver
//! client, portal rooms, history delivery with a persisted ledger, and `verify`, which pages
//! rooms exactly like a Matrix client to prove history is reachable.
//!
//! The central rule (ARCHITECTURE.md, "Design notes"): a room's whole history goes in as ONE chronological forward
//! sequence, right after the room is created and before anything live. Standard homeservers have
//! no batch send, and `?ts=` only sets the timestamp — it does not move an event in the DAG — so
//! the order of sends is the order clients see.

pub mod appservice;
pub mod client;
mod client_profile;
pub mod delivery;
mod fit;
pub mod ghost;
pub mod inbound;
mod keys;
mod late;
pub mod listener;
pub mod live;
pub mod media;
pub mod metrics;
mod part;
mod portal;
mod profile_source;
pub mod profiles;
pub mod progress;
mod refusal;
pub mod registration;
pub mod render;
mod revise;
mod seen;
pub mod send;
mod sniff;
pub mod thumbnail;
mod tools;
mod turn;
pub mod verify;
pub mod verify_names;
mod visible;

pub use client::HomeserverClient;
pub use keys::GUID_KEY;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatrixError {
    #[error("cannot reach the homeserver at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("homeserver answered {status} {errcode} for {what}: {error}")]
    Api { what: String, status: u16, errcode: String, error: String },
    #[error("homeserver sent an unexpected body for {what}: {detail}")]
    BadResponse { what: String, detail: String },
    /// A response body (or its stated length) is over the client's cap; nothing past the cap
    /// was read, so a broken homeserver cannot take all memory.
    #[error("homeserver's answer to {what} is larger than {cap} bytes")]
    TooLarge { what: String, cap: usize },
    #[error("invalid Matrix identifier {0:?}: {1}")]
    BadId(String, String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
    /// An attachment's file could not be read or converted for Matrix (the message goes in
    /// with a notice in the file's place).
    #[error("attachment {file}: {detail}")]
    Media { file: String, detail: String },
}

impl MatrixError {
    /// The Matrix error code, if the homeserver sent one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            MatrixError::Api { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// Worth retrying: transport errors, 5xx and rate limiting.
    pub fn is_transient(&self) -> bool {
        match self {
            MatrixError::Transport { .. } => true,
            MatrixError::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

pub type Result<T, E = MatrixError> = std::result::Result<T, E>;
