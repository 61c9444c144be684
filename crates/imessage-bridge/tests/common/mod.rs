//! Shared test harness: the test kit (`crates/testkit`: the simulator, the bridge folder,
//! Synapse, PostgreSQL, the crash campaign and the one room checker), plus what only these tests
//! use (a faulty proxy, a push gateway).

#![allow(dead_code, unused_imports)]

pub mod proxy;
pub mod pusher;

pub use testkit::bridge::{read_yaml, zone, BridgeDir};
pub use testkit::{campaign, pg, rooms, serve_sim, spec, start_sim, truth_guids, truth_lines, SimHandle};

/// The bridge and a real Synapse (the paths the delivery tests import).
pub mod matrix_env {
    pub use testkit::{Env, DOMAIN, OWNER};
}

pub mod synapse {
    pub use testkit::synapse::{free_port, Synapse};
}
