//! A bridge folder (config, session, SQLite store) in a temporary directory, and the real
//! `imessage-bridge` binary run in it.
//!
//! The config is read and written as YAML values ([`BridgeDir::edit_config`]), never by replacing
//! text, so a test that changes a setting fails loudly when the setting moves instead of silently
//! testing the default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_norway::Value;

use crate::sim::SimHandle;

pub struct BridgeDir {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db_uri: String,
    /// The `imessage-bridge` binary.
    pub bin: PathBuf,
}

/// The `imessage-bridge` binary the tests run: `$IMB_BRIDGE_BIN`, else the one cargo built
/// beside the running test (`target/<profile>/deps/<test>` → `target/<profile>/imessage-bridge`;
/// cargo builds a package's binaries before its integration tests).
pub fn bridge_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("IMB_BRIDGE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("imessage-bridge"));
    match bin {
        Some(bin) if bin.is_file() => bin,
        _ => panic!("no imessage-bridge binary beside {} (set IMB_BRIDGE_BIN)", exe.display()),
    }
}

/// The setting at `path` (`["sync", "backoff_ms"]`) in a YAML mapping, created (with the
/// mappings leading to it) if missing.
pub fn yaml_slot<'a>(root: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut at = root;
    for key in path {
        if !at.is_mapping() {
            *at = Value::Mapping(Default::default());
        }
        let Value::Mapping(map) = at else { unreachable!("made a mapping above") };
        at = map.entry(Value::from(*key)).or_insert(Value::Null);
    }
    at
}

/// A YAML file read as a value (panics on a broken fixture).
pub fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

impl BridgeDir {
    /// A bridge folder whose config points at `sim` (session written from the simulator), run
    /// with [`bridge_bin`].
    pub fn new(sim: &SimHandle) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("config.yaml");
        let db_uri = format!("sqlite:{}", dir.path().join("bridge.db").display());
        let this = BridgeDir { db_uri, dir, config, bin: bridge_bin() };
        this.point_at(sim);
        this
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the session and the config for `sim` (another simulator of the same seed has the
    /// same account and tokens; the session's anisette URL follows the simulator).
    pub fn point_at(&self, sim: &SimHandle) {
        self.point_at_url(sim, &sim.url);
    }

    /// As [`point_at`](Self::point_at), with CloudKit (and anisette) reached at `url`, e.g. a
    /// proxy in front of the simulator.
    pub fn point_at_url(&self, sim: &SimHandle, url: &str) {
        sim.sim.session_at(url).save(&self.path().join("session.json")).expect("write the session");
        let mut config = Value::Mapping(Default::default());
        *yaml_slot(&mut config, &["cloudkit", "url"]) = url.into();
        *yaml_slot(&mut config, &["cloudkit", "session"]) = "session.json".into();
        *yaml_slot(&mut config, &["database", "uri"]) = "sqlite:bridge.db".into();
        self.write_config(&config);
        self.fast_retries();
    }

    /// Reads the config, lets `edit` change it, writes it back.
    pub fn edit_config(&self, edit: impl FnOnce(&mut Value)) {
        let mut config = read_yaml(&self.config);
        edit(&mut config);
        self.write_config(&config);
    }

    /// Sets one setting (`["matrix", "sync_interval_secs"]`, 1).
    pub fn set(&self, path: &[&str], value: impl Into<Value>) {
        self.edit_config(|c| *yaml_slot(c, path) = value.into());
    }

    /// Changes one setting from the value `init` wrote (`from`, which it must have) to `to`.
    pub fn change(&self, path: &[&str], from: impl Into<Value>, to: impl Into<Value>) {
        let from = from.into();
        self.edit_config(|c| {
            let slot = yaml_slot(c, path);
            assert_eq!(*slot, from, "{} in the config", path.join("."));
            *slot = to.into();
        });
    }

    fn write_config(&self, config: &Value) {
        std::fs::write(&self.config, serde_norway::to_string(config).expect("YAML")).expect("write the config");
    }

    /// Retries after 1 ms (up to 20 ms) instead of the defaults, so faults cost tests no time.
    pub fn fast_retries(&self) {
        self.edit_config(|c| {
            *yaml_slot(c, &["sync", "backoff_ms"]) = 1.into();
            *yaml_slot(c, &["sync", "backoff_max_ms"]) = 20.into();
        });
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("-c").arg(&self.config).args(args).env("RUST_LOG", "warn").env("RUST_BACKTRACE", "0").kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()))
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

    /// One integer from the bridge's SQLite file, read on a read-only connection of its own
    /// (never migrating or folding, so it can watch a running bridge). None if the query fails
    /// (e.g. the file or table is not there yet).
    pub async fn sqlite_int(&self, sql: &str) -> Option<i64> {
        use sqlx::{ConnectOptions, Connection};
        let path = self.path().join("bridge.db");
        if !path.exists() {
            return None;
        }
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).read_only(true).connect().await.ok()?;
        let v = sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut conn).await.ok();
        let _ = conn.close().await;
        v
    }

    pub async fn store(&self) -> Box<dyn store::Store> {
        store::open(&self.db_uri).await.unwrap_or_else(|e| panic!("opening the store {}: {e}", self.db_uri))
    }

    pub async fn stored_guids(&self) -> BTreeSet<String> {
        self.store().await.message_guids().await.expect("message guids").into_iter().collect()
    }
}

/// One zone of `status --json`.
pub fn zone<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let zones = status["zones"].as_array().unwrap_or_else(|| panic!("status has no zones: {status}"));
    zones.iter().find(|z| z["zone"] == name).unwrap_or_else(|| panic!("zone {name} missing in {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_is_set_in_place_and_its_mappings_made() {
        let mut v: Value = serde_norway::from_str("sync:\n  backoff_ms: 100\n  error_budget: 3\n").unwrap();
        *yaml_slot(&mut v, &["sync", "backoff_ms"]) = 1.into();
        *yaml_slot(&mut v, &["matrix", "room_version"]) = "12".into();
        assert_eq!(v["sync"]["backoff_ms"], Value::from(1));
        assert_eq!(v["sync"]["error_budget"], Value::from(3));
        assert_eq!(v["matrix"]["room_version"], Value::from("12"));
    }
}
