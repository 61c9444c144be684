//! Shared test harness: an in-process simulator on 127.0.0.1:0, a temporary bridge directory
//! with config and session, and helpers to run the real `imessage-bridge` binary against them.

#![allow(dead_code)]

pub mod matrix_env;
pub mod proxy;
pub mod pusher;
pub mod synapse;
/// Rooms compared with truth by back-pagination, shared with `bench`'s crash campaign.
#[path = "../../../../bench/src/rooms.rs"]
pub mod rooms;
/// One seed of the crash campaign (kills, restarts, then the rooms compared with truth).
#[path = "../../../../bench/src/campaign.rs"]
pub mod campaign;
/// A throwaway PostgreSQL server (the store's conformance tests' own).
#[path = "../../../store/tests/support/mod.rs"]
pub mod pg;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use cloudkit_sim::{AccountSpec, Faults, Sim, TruthLine};

pub struct SimHandle {
    pub sim: Arc<Sim>,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_sim(spec: AccountSpec, faults: Faults) -> SimHandle {
    serve_sim(Sim::new(spec, faults)).await
}

/// Serves a simulator built by the caller (e.g. with `--apple-blobs` fixtures).
pub async fn serve_sim(sim: Sim) -> SimHandle {
    let sim = Arc::new(sim);
    let (addr, task) = cloudkit_sim::spawn(sim.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    SimHandle { sim, url: format!("http://{addr}"), task }
}

pub fn spec(seed: u64, chats: u32, messages: u64, big_chat: u64) -> AccountSpec {
    AccountSpec { seed, chats, messages, big_chat, later: 0 }
}

pub struct BridgeDir {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db_uri: String,
}

impl BridgeDir {
    /// A bridge directory whose config points at `sim` (session written from the simulator).
    pub fn new(sim: &SimHandle) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        let this = BridgeDir { db_uri: format!("sqlite:{}", dir.path().join("bridge.db").display()), dir, config };
        this.point_at(sim);
        this
    }

    /// Writes the session and the config for `sim` (another simulator of the same seed has the
    /// same account and tokens; the session's anisette URL follows the simulator).
    pub fn point_at(&self, sim: &SimHandle) {
        self.point_at_url(sim, &sim.url);
    }

    /// As [`point_at`](Self::point_at), with CloudKit (and anisette) reached at `url`, e.g. a
    /// proxy in front of the simulator.
    pub fn point_at_url(&self, sim: &SimHandle, url: &str) {
        sim.sim.session_at(url).save(&self.dir.path().join("session.json")).unwrap();
        std::fs::write(
            &self.config,
            format!(
                "cloudkit:\n  url: {}\n  session: session.json\ndatabase:\n  uri: sqlite:bridge.db\n\
                 sync:\n  backoff_ms: 1\n  backoff_max_ms: 20\n",
                url
            ),
        )
        .unwrap();
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_imessage-bridge"));
        cmd.arg("-c").arg(&self.config).args(args).env("RUST_LOG", "warn").env("RUST_BACKTRACE", "0").kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    pub async fn sync_ok(&self) {
        let out = self.run(&["sync"]).await;
        assert!(out.status.success(), "sync failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub async fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]).await;
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// `init` with flags (as scripts call it) for a homeserver on `hs_port` and the appservice
    /// on `listen_port`, then fast sync retries for tests.
    pub async fn init_matrix(&self, sim: &SimHandle, domain: &str, owner: &str, hs_port: u16, listen_port: u16) {
        let (hs, listen, session) =
            (format!("http://127.0.0.1:{hs_port}"), format!("127.0.0.1:{listen_port}"), self.dir.path().join("session.json"));
        let out = self
            .run(&[
                "init", "--homeserver", &hs, "--domain", domain, "--owner", owner, "--cloudkit", &sim.url, "--session",
                session.to_str().unwrap(), "--database", "sqlite:bridge.db", "--listen", &listen, "--force",
            ])
            .await;
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        let config = std::fs::read_to_string(&self.config).unwrap().replace("backoff_ms: 100", "backoff_ms: 1");
        std::fs::write(&self.config, config).unwrap();
    }

    /// One integer from the bridge's SQLite file, read on a read-only connection of its own
    /// (never migrating or folding, so it can watch a running bridge). None if the query fails
    /// (e.g. the file or table is not there yet).
    pub async fn sqlite_int(&self, sql: &str) -> Option<i64> {
        use sqlx::{ConnectOptions, Connection};
        let path = self.dir.path().join("bridge.db");
        if !path.exists() {
            return None;
        }
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).read_only(true).connect().await.ok()?;
        let v = sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut conn).await.ok();
        let _ = conn.close().await;
        v
    }

    pub async fn store(&self) -> Box<dyn store::Store> {
        store::open(&self.db_uri).await.unwrap()
    }

    pub async fn stored_guids(&self) -> BTreeSet<String> {
        self.store().await.message_guids().await.unwrap().into_iter().collect()
    }
}

/// Guids of every message in the simulator's ground truth.
pub fn truth_guids(sim: &Sim) -> BTreeSet<String> {
    let mut guids = BTreeSet::new();
    sim.truth(|line| {
        if let TruthLine::Message { guid, .. } = line {
            guids.insert(guid);
        }
    });
    guids
}

pub fn zone<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["zones"].as_array().unwrap().iter().find(|z| z["zone"] == name).unwrap_or_else(|| panic!("zone {name} missing in {status}"))
}
