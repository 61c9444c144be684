//! What the delivery benchmarks stand on: a simulator, `imessage-bridge init` for it and a
//! Synapse with the registration, all on 127.0.0.1 in a temporary folder (Synapse from
//! `scripts/start-synapse.sh`, as in the tests and the demo). Processes are killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use matrix::HomeserverClient;

pub const OWNER: &str = "@owner:localhost";

pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs `cmd` to its end; its stdout, or its stderr as the error.
pub fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// The binaries (`cloudkit-sim`, `imessage-bridge`) in `bin_dir`, by default beside this one.
pub fn binaries(bin_dir: Option<&Path>, script: &str) -> Result<(PathBuf, PathBuf)> {
    let bin_dir = match bin_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()?.parent().context("executable has no directory")?.to_path_buf(),
    };
    let (sim, bridge) = (bin_dir.join("cloudkit-sim"), bin_dir.join("imessage-bridge"));
    for b in [&sim, &bridge] {
        if !b.exists() {
            bail!("{} is missing: run {script} (it builds the release binaries)", b.display());
        }
    }
    Ok((sim, bridge))
}

#[allow(dead_code)] // each benchmark uses part of it
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub sim_url: String,
    pub as_port: u16,
    pub registration: serde_norway::Value,
    pub hs: HomeserverClient,
    _sim: Killed,
    _synapse: Killed,
}

impl Stack {
    /// Starts `cloudkit-sim serve` with `sim_args`, runs `init` for it (SQLite store), lets
    /// `edit_config` change the config, and starts Synapse (waited for).
    pub async fn start(sim_bin: &Path, bridge_bin: &Path, sim_args: &[String], edit_config: impl FnOnce(String) -> String) -> Result<Stack> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let mut sim = Killed(
            Command::new(sim_bin)
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(sim_args)
                .arg("--write-session")
                .arg(d.join("session.json"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let mut line = String::new();
        BufReader::new(sim.0.stdout.take().context("no simulator stdout")?).read_line(&mut line)?;
        let sim_url = line.trim().strip_prefix("listening on ").context("simulator did not print its address")?.to_string();
        let (hs_port, as_port) = (free_port()?, free_port()?);
        let hs_url = format!("http://127.0.0.1:{hs_port}");
        run(
            Command::new(bridge_bin)
                .args(["init", "--homeserver", &hs_url, "--domain", "localhost", "--owner", OWNER])
                .args(["--cloudkit", &sim_url, "--database", "sqlite:bridge.db", "--force"])
                .arg("--session")
                .arg(d.join("session.json"))
                .arg("--out")
                .arg(d)
                .args(["--listen", &format!("127.0.0.1:{as_port}")]),
            "imessage-bridge init",
        )?;
        let config = d.join("config.yaml");
        std::fs::write(&config, edit_config(std::fs::read_to_string(&config)?))?;
        let synapse = Killed(
            Command::new(repo_root().join("scripts/start-synapse.sh"))
                .arg(d.join("synapse"))
                .arg(hs_port.to_string())
                .arg("localhost")
                .arg(d.join("registration.yaml"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("synapse.log"))?)
                .spawn()?,
        );
        let registration: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(d.join("registration.yaml"))?)?;
        let hs = HomeserverClient::new(&hs_url, registration["as_token"].as_str().context("no as_token")?)?;
        hs.wait_ready(Duration::from_secs(180)).await.context("Synapse did not start")?;
        Ok(Stack { dir, sim_url, as_port, registration, hs, _sim: sim, _synapse: synapse })
    }

    #[allow(dead_code)] // live-bench only
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }
}
