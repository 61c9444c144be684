//! `cloudkit-sim`: a local server that speaks CloudKit's wire protocol for a deterministic,
//! generated iMessage account, with fault injection and a ground-truth export.
//!
//! It exists because Apple cannot be reached from tests: the bridge's sync is exercised end to
//! end against the same framing, operations, PCS encryption and record layouts, and tests compare
//! what the bridge stored with [`Account::truth`] — never with the bridge's own view.

pub mod account;
pub mod server;

pub use account::{Account, AccountSpec, TruthLine};
pub use server::{session_for, spawn, Faults, Sim, Stats};
