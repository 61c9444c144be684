//! CloudKit client for Apple's Messages in iCloud: wire types ([`proto`]), body framing
//! ([`framing`]), caps on what is read and inflated ([`limits`]), PCS field encryption
//! ([`pcs`]), record decoding into typed iMessage records
//! ([`codec`], [`records`]), the session file ([`session`]) and the HTTP client ([`client`]).
//!
//! No database and no Matrix here: this crate turns bytes from CloudKit into typed records and
//! nothing else, so the simulator, the sync engine and the tests can all share one
//! implementation of the protocol.

mod anisette;
mod body;
pub mod client;
pub mod codec;
pub mod content;
pub mod error;
pub mod framing;
pub mod limits;
pub mod mmcs;
pub mod pcs;
pub mod proto;
/// The domain records this source produces (they live in the `imessage` domain crate).
pub use imessage::records;
pub mod session;
pub mod urls;

pub use client::{ChangesPage, Client, RawChangesPage};
pub use error::{Error, Result};
pub use limits::Limits;
pub use pcs::{KeyRing, PcsKey};
pub use session::{session_source, Session, SessionFile, SessionSource};
