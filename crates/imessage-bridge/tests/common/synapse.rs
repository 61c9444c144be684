//! A real Synapse for tests, started the same way as the demo (`scripts/start-synapse.sh`): on a
//! free loopback port, with the bridge's registration, waited for by polling `/versions`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

pub struct Synapse {
    pub url: String,
    pub port: u16,
    child: tokio::process::Child,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

impl Synapse {
    /// Starts Synapse on `port` with `registration` in `dir` and waits until it answers (bounded).
    pub async fn start(dir: &Path, port: u16, server_name: &str, registration: &Path) -> Synapse {
        let log = std::fs::File::create(dir.join("synapse.log")).unwrap();
        let child = tokio::process::Command::new(repo_root().join("scripts/start-synapse.sh"))
            .arg(dir.join("synapse"))
            .arg(port.to_string())
            .arg(server_name)
            .arg(registration)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("scripts/start-synapse.sh must be runnable");
        let mut synapse = Synapse { url: format!("http://127.0.0.1:{port}"), port, child };
        let http = reqwest::Client::new();
        // Synapse's first start creates its database: allow up to three minutes.
        for _ in 0..1800 {
            if let Ok(Some(status)) = synapse.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("synapse.log")).unwrap_or_default();
                panic!("synapse exited with {status} before it was ready:\n{}", &log[log.len().saturating_sub(4000)..]);
            }
            if let Ok(r) = http.get(format!("{}/_matrix/client/versions", synapse.url)).send().await {
                if r.status().is_success() {
                    return synapse;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("synapse did not become ready on port {port}");
    }
}
