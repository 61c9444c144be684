//! What the tests of a running bridge share (`operator.rs`, `daemon.rs`, `live.rs`, `faults.rs`):
//! `run` in the background with its log in a file, a clean stop by SIGTERM, and bounded waits.
//! (The bridge with a real Synapse is the test kit's [`Env`].)

#![allow(dead_code, unused_imports)]

use std::time::{Duration, Instant};

pub use crate::common::matrix_env::{Env, DOMAIN, OWNER};
use crate::common::*;

pub fn yaml(path: &std::path::Path) -> serde_norway::Value {
    read_yaml(path)
}

/// The state of `run` as `status --json` shows it: (delivered, stored, pending + in flight).
pub fn delivery_totals(status: &serde_json::Value) -> (i64, i64, i64) {
    let rooms = status["rooms"].as_array().unwrap_or_else(|| panic!("status --json has no rooms: {status}"));
    let sum = |k: &str| rooms.iter().map(|r| r[k].as_i64().unwrap()).sum::<i64>();
    (sum("delivered"), sum("stored"), sum("pending") + sum("in_flight"))
}

/// `run` in the background, its log in `name` in the bridge directory (a file, not a pipe: a
/// pipe nobody reads would stop the bridge once full).
pub fn spawn_run(bridge: &BridgeDir, name: &str) -> (tokio::process::Child, std::path::PathBuf) {
    spawn_run_logging(bridge, name, "text")
}

/// As [`spawn_run`], with its log in `format` (`text` or `json`, `--log-format`).
pub fn spawn_run_logging(bridge: &BridgeDir, name: &str, format: &str) -> (tokio::process::Child, std::path::PathBuf) {
    let log = bridge.dir.path().join(name);
    let mut command = bridge.command(&["run"]);
    command.env("RUST_LOG", "info").env("IMESSAGE_BRIDGE_LOG_FORMAT", format);
    let child = command.stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    (child, log)
}

/// SIGTERM, then the exit (bounded): a clean stop exits 0.
pub async fn terminate((child, log): &mut (tokio::process::Child, std::path::PathBuf), what: &str) -> String {
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap_or_else(|_| panic!("{what}: run did not stop on SIGTERM")).unwrap();
    let stderr = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{what}: run exited with {status} on SIGTERM:\n{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{what}: {stderr}");
    stderr
}

/// Polls (bounded) until `ready` holds for the value `probe` gives, or panics with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, every: Duration, mut probe: F, ready: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = probe().await;
        if ready(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}
