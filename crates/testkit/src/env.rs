//! A bridge delivering into a real Synapse: the simulator (or a local source written from it),
//! the bridge folder set up by the bridge's own `init` (as an operator would), Synapse started
//! with the registration `init` wrote, and the owner registered. Every delivery test starts here.

use cloudkit_sim::TruthLine;
use matrix::HomeserverClient;
use serde_norway::Value;

use crate::bridge::{read_yaml, BridgeDir};
use crate::rooms;
use crate::sim::{truth_lines, SimHandle};
use crate::synapse::{free_port, Synapse};
use crate::{DOMAIN, OWNER};

pub struct Env {
    pub sim: SimHandle,
    pub bridge: BridgeDir,
    pub synapse: Synapse,
    /// The bridge's appservice port (Synapse pushes transactions to it).
    pub listen_port: u16,
}

impl Env {
    /// A bridge on SQLite syncing from the simulator.
    pub async fn start(sim: SimHandle) -> Env {
        Env::start_with_database(sim, "sqlite:bridge.db").await
    }

    /// A bridge on `database` (`sqlite:…` relative to its folder, or `postgres://…`).
    pub async fn start_with_database(sim: SimHandle, database: &str) -> Env {
        let url = sim.url.clone();
        Env::start_with(sim, database, &["--cloudkit", &url, "--session", "session.json"]).await
    }

    /// A bridge whose history comes from a local source (`--source chat-db --source-path …`
    /// and the like); `sim` is what the source was written from, for its truth.
    pub async fn start_local(sim: SimHandle, source: &[&str]) -> Env {
        Env::start_with(sim, "sqlite:bridge.db", source).await
    }

    /// `init` with the source flags `source` (a relative `session.json` is the one in the
    /// bridge's folder), fast sync retries, Synapse, and the owner registered.
    async fn start_with(sim: SimHandle, database: &str, source: &[&str]) -> Env {
        let mut bridge = BridgeDir::new(&sim);
        if database.starts_with("postgres") {
            bridge.db_uri = database.to_string();
        }
        let session = bridge.path().join("session.json");
        let session = session.to_str().expect("a UTF-8 temporary path");
        let source = source.iter().map(|a| if *a == "session.json" { session } else { a });
        let (hs_port, listen_port) = (free_port(), free_port());
        let (hs, listen) = (format!("http://127.0.0.1:{hs_port}"), format!("127.0.0.1:{listen_port}"));
        let out_dir = bridge.path().to_str().expect("a UTF-8 temporary path").to_string();
        let args =
            ["init", "--homeserver", &hs, "--domain", DOMAIN, "--owner", OWNER, "--database", database, "--out", &out_dir, "--listen", &listen, "--force"];
        let args: Vec<&str> = args.into_iter().chain(source).collect();
        let out = bridge.run(&args).await;
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        // Fast retries for tests (the rest as `init` wrote it).
        bridge.set(&["sync", "backoff_ms"], 1);
        let registration = bridge.path().join("registration.yaml");
        let synapse = Synapse::start(bridge.path(), hs_port, DOMAIN, &registration).await;
        let env = Env { sim, bridge, synapse, listen_port };
        env.hs().register("owner").await.expect("register the owner");
        env
    }

    /// The registration `init` wrote.
    pub fn registration(&self) -> Value {
        read_yaml(&self.bridge.path().join("registration.yaml"))
    }

    /// A token (or other string) of the registration.
    pub fn reg(&self, key: &str) -> String {
        let reg = self.registration();
        reg[key].as_str().unwrap_or_else(|| panic!("registration has no {key}: {reg:?}")).to_string()
    }

    pub fn as_token(&self) -> String {
        self.reg("as_token")
    }

    pub fn hs_token(&self) -> String {
        self.reg("hs_token")
    }

    /// The homeserver as the appservice.
    pub fn hs(&self) -> HomeserverClient {
        HomeserverClient::new(&self.synapse.url, &self.as_token()).expect("a homeserver client")
    }

    /// Runs `doctor`: (exit ok, stdout).
    pub async fn doctor(&self) -> (bool, String) {
        let out = self.bridge.run(&["doctor"]).await;
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn verify_json(&self) -> serde_json::Value {
        // verify pages every room back to its start: with statistics (see Synapse::analyze).
        self.synapse.analyze().await;
        let out = self.bridge.run(&["verify", "--json"]).await;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("verify --json is not JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.success(), v["ok"] == true, "exit code must follow ok");
        v
    }

    /// `run --once` (sync + deliver), then `verify`, which must be ok. Returns verify's JSON.
    pub async fn run_once_and_verify(&self) -> serde_json::Value {
        self.run_once().await;
        let v = self.verify_json().await;
        assert_eq!(v["ok"], true, "verify: {v}");
        v
    }

    /// `run --once`, which must succeed: one sync and one delivery round.
    pub async fn run_once(&self) {
        let out = self.bridge.run(&["run", "--once"]).await;
        assert!(out.status.success(), "run --once failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Compares every room, paginated backwards as the owner, with the simulator's truth.
    pub async fn assert_rooms_match_truth(&self) -> rooms::Totals {
        self.assert_rooms_match(truth_lines(&self.sim.sim)).await
    }

    /// Compares every room, paginated backwards as the owner, with the truth `lines` (a
    /// Messages folder's truth, say): every room must be right. Returns the totals.
    pub async fn assert_rooms_match(&self, lines: Vec<TruthLine>) -> rooms::Totals {
        self.synapse.analyze().await;
        let expected = rooms::expected(lines, OWNER, DOMAIN);
        let portals = rooms::portals(self.bridge.store().await.as_ref()).await.expect("the store's portals");
        let checks = rooms::check_rooms(&self.hs(), &expected, &portals, OWNER, DOMAIN).await.expect("paginating the rooms");
        rooms::assert_all_ok(&checks);
        rooms::totals(&checks)
    }
}
