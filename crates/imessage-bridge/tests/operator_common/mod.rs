//! What the tests of a running bridge share (`operator.rs`, `daemon.rs`): a bridge directory set
//! up for a real Synapse, `run` in the background with its log in a file, a clean stop by
//! SIGTERM, and bounded waits.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use crate::common::synapse::{free_port, Synapse};
use crate::common::*;

pub const DOMAIN: &str = "localhost";
pub const OWNER: &str = "@owner:localhost";

pub fn yaml(path: &std::path::Path) -> serde_norway::Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A bridge directory with config and registration for a real Synapse (started), the owner
/// registered, and the store created.
pub struct Setup {
    pub sim: SimHandle,
    pub bridge: BridgeDir,
    pub synapse: Synapse,
    pub listen_port: u16,
}

impl Setup {
    pub async fn start(sim: SimHandle) -> Setup {
        let bridge = BridgeDir::new(&sim);
        let (hs_port, listen_port) = (free_port(), free_port());
        bridge.init_matrix(&sim, DOMAIN, OWNER, hs_port, listen_port).await;
        let synapse = Synapse::start(bridge.dir.path(), hs_port, DOMAIN, &bridge.dir.path().join("registration.yaml")).await;
        let setup = Setup { sim, bridge, synapse, listen_port };
        matrix::HomeserverClient::new(&setup.synapse.url, &setup.reg("as_token")).unwrap().register("owner").await.unwrap();
        setup
    }

    pub fn reg(&self, key: &str) -> String {
        yaml(&self.bridge.dir.path().join("registration.yaml"))[key].as_str().unwrap().to_string()
    }

    /// Runs `doctor`: (exit ok, stdout).
    pub async fn doctor(&self) -> (bool, String) {
        let out = self.bridge.run(&["doctor"]).await;
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    }
}

/// Kills Synapse and waits (bounded) until its port no longer answers.
pub async fn stop_synapse(synapse: Synapse) {
    let url = format!("{}/_matrix/client/versions", synapse.url);
    drop(synapse);
    let _ = wait_for("synapse to stop", 30, Duration::from_millis(50), || reqwest::get(&url), |r| r.is_err()).await;
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
    let log = bridge.dir.path().join(name);
    let child = bridge.command(&["run"]).env("RUST_LOG", "info").stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
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

