//! A real Synapse for tests, started the same way as the demo (`scripts/start-synapse.sh`), with
//! the bridge's registration, waited for by polling `/versions`.
//!
//! Why [`free_port`] still exists: Synapse and the bridge's appservice listener are separate
//! processes that take their port from a config file written before they start (and Synapse's
//! registration must name the bridge's port), so neither can be handed a bound listener. Servers
//! of our own (the simulator, proxies, push gateways, the bridge's metrics listener) bind
//! `127.0.0.1:0` and read the port back (the bridge names its metrics port in its JSON log's
//! `metrics_listening` marker).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long a first start (which creates Synapse's database) may take on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const READY_POLL: Duration = Duration::from_millis(100);

pub struct Synapse {
    pub url: String,
    pub port: u16,
    /// Synapse's SQLite database (`DIR/synapse/homeserver.db`, as `start-synapse.sh` writes it).
    db: std::path::PathBuf,
    child: tokio::process::Child,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a
/// process that must be told its port in advance.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound listener's address").port()
}

impl Synapse {
    /// Starts Synapse on `port` with `registration`, its files in `dir/synapse` and its log in
    /// `dir/synapse.log`, and waits until it answers (bounded).
    pub async fn start(dir: &Path, port: u16, server_name: &str, registration: &Path) -> Synapse {
        let log = std::fs::File::create(dir.join("synapse.log")).expect("create synapse.log");
        let child = tokio::process::Command::new(crate::repo_root().join("scripts/start-synapse.sh"))
            .arg(dir.join("synapse"))
            .arg(port.to_string())
            .arg(server_name)
            .arg(registration)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("scripts/start-synapse.sh must be runnable");
        let mut synapse = Synapse { url: format!("http://127.0.0.1:{port}"), port, db: dir.join("synapse/homeserver.db"), child };
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = synapse.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("synapse.log")).unwrap_or_default();
                let mut from = log.len().saturating_sub(4000);
                while !log.is_char_boundary(from) {
                    from += 1;
                }
                panic!("synapse exited with {status} before it was ready:\n{}", &log[from..]);
            }
            if let Ok(r) = http.get(format!("{}/_matrix/client/versions", synapse.url)).send().await {
                if r.status().is_success() {
                    return synapse;
                }
            }
            tokio::time::sleep(READY_POLL).await;
        }
        panic!("synapse did not become ready on port {port} in {READY_TIMEOUT:?}");
    }

    /// Runs SQLite's `ANALYZE` on Synapse's database, from a connection of its own.
    ///
    /// Why: Synapse never does, and without statistics SQLite's planner runs the query behind
    /// every `/messages` page (`get_applicable_edits`, the edits bundled with each event) by
    /// walking the room's whole event index once per event asked about. In a room of 25,000
    /// events a page of 250 took 1.4 s in that query alone (2.2 s per request, 96% of Synapse's
    /// CPU while paginating); with statistics the same query takes 1 ms. A production Synapse on
    /// PostgreSQL gets its statistics from autovacuum. Creating `sqlite_stat1` changes the
    /// schema, so Synapse's connections pick the statistics up on their next statement.
    pub async fn analyze(&self) {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&self.db)
            .busy_timeout(Duration::from_secs(60))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("opening Synapse's database {}: {e}", self.db.display()));
        sqlx::raw_sql("ANALYZE").execute(&mut conn).await.unwrap_or_else(|e| panic!("ANALYZE on {}: {e}", self.db.display()));
        let _ = conn.close().await;
    }

    /// Kills Synapse and waits (bounded) until its port no longer answers.
    pub async fn stop(self) {
        let url = format!("{}/_matrix/client/versions", self.url);
        drop(self);
        for _ in 0..600 {
            if reqwest::get(&url).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("synapse still answers at {url} 30 s after it was killed");
    }
}
