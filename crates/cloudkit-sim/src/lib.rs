//! `cloudkit-sim`: a local server that speaks CloudKit's wire protocol for a deterministic,
//! generated iMessage account, with fault injection and a ground-truth export.
//!
//! It exists because Apple cannot be reached from tests: the bridge's sync is exercised end to
//! end against CloudKit's framing, operations, PCS key chain and record layouts, and tests compare
//! what the bridge stored with [`Account::truth`] — never with the bridge's own view.
//!
//! It is a second implementation of the format, not the client's code run backwards: its
//! encoder ([`encode`]), framing ([`wire`]), cipher and key chain ([`pcs`], [`keys`]), gateway
//! checks ([`gateway`]) and session file ([`session`]) are its own, written from the format
//! description, and both it and the client are checked against known-answer vectors made by a
//! third implementation (`shared/fixtures/`). It shares only the prost schema
//! (`cloudkit::proto`) and the typed records it generates (`cloudkit::records`).

pub mod account;
pub mod assets;
pub mod attachments;
pub mod backup;
pub mod chatdb;
pub mod contacts;
pub mod content;
pub mod dress;
pub mod encode;
pub mod fixtures;
pub mod gateway;
pub mod http;
pub mod keys;
pub mod media;
pub mod mmcs;
mod order;
pub mod pcs;
pub mod reactions;
pub mod revisions;
pub mod server;
pub mod session;
pub mod truth;
pub mod wire;

pub use account::{Account, AccountSpec};
pub use http::{router, spawn};
pub use server::{Faults, Sim, Stats};
pub use session::SimSession;
pub use truth::TruthLine;
