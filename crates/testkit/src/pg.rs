//! A throwaway PostgreSQL server shared by a test binary, and a fresh database in it per test.
//!
//! The server itself is the store's conformance suite's (`crates/store/tests/support`), included
//! here so the bridge's end-to-end tests and the store's tests start PostgreSQL the same way.
//! (When the store's tests can depend on this crate, the file moves here.)

#[path = "../../store/tests/support/mod.rs"]
#[allow(dead_code)]
mod server;

pub use server::{fresh_database, server, PgServer, TlsFiles};
