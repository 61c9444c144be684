//! The test kit: everything the bridge's end-to-end tests (`crates/imessage-bridge/tests`) and
//! the benchmarks (`bench/`) share, compiled once instead of once per test binary.
//!
//! Why one crate: the tests and the crash campaign must count missing, duplicated and
//! out-of-order messages the same way, so there is exactly one room checker ([`rooms`]); and
//! every test needs the same pieces — the simulator served in-process ([`sim`]), a bridge folder
//! with its typed config ([`bridge`]), a real Synapse ([`synapse`]), the bridge and Synapse wired
//! together ([`env`]), a throwaway PostgreSQL ([`pg`]), the crash campaign's seeds
//! ([`campaign`]), and what a client shows: room names read from `/sync` ([`names`]) and by
//! matrix-js-sdk ([`js_client`]). Test-only code may panic on a broken fixture (that is a failed
//! test); the campaign, which `bench` runs too, returns [`Error`] instead.

pub mod bridge;
pub mod campaign;
pub mod env;
pub mod js_client;
pub mod names;
pub mod pg;
pub mod radicale;
pub mod rooms;
pub mod sim;
pub mod synapse;

pub use bridge::BridgeDir;
pub use env::Env;
pub use sim::{serve_sim, spec, start_sim, truth_guids, truth_lines, SimHandle};
pub use synapse::Synapse;

/// The homeserver's server name in every test.
pub const DOMAIN: &str = "localhost";
/// The bridge's owner in every test.
pub const OWNER: &str = "@owner:localhost";

/// What went wrong in a step of the campaign or a room check (one error type for the crate).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step failed, with the step's description and its cause.
    #[error("{what}: {source}")]
    Step { what: String, source: Box<dyn std::error::Error + Send + Sync> },
    /// A check or a process gave an unexpected result.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the step an error came from (like `anyhow::Context`, for this crate's one error type).
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Step { what: what.into(), source: Box::new(e) })
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Step { what: what(), source: Box::new(e) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| Error::Failed(what.into()))
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| Error::Failed(what()))
    }
}

/// The repository's root (for `scripts/`), found from this crate's folder.
pub fn repo_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().find(|p| p.join("scripts/start-synapse.sh").is_file()).unwrap_or(here).to_path_buf()
}
