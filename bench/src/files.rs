//! The attachment phase of the benchmark: how fast the bridge fetches attachment files from the
//! simulator's content host (MMCS V2: FORD, per-chunk AES-CTR and HMAC ids, SHA-256 naming).
//!
//! Why separate from the record figures: `sync` fetches files after the records, and the records
//! rate is the figure earlier rounds compare; so the records phase runs `sync --records-only`,
//! and this phase runs a full `sync` in a fresh directory and reads the time the files took from
//! the bridge's `attachment files fetched` log line.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// What the file pass did.
pub struct Files {
    pub stored: u64,
    pub bytes: u64,
    pub secs: f64,
}

impl Files {
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
}

/// The value of `key=` in a log line (numbers may be quoted).
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = line[at..].trim_start_matches('"');
    Some(rest.split(['"', ' ']).next()?.to_string())
}

pub fn run_files(bin: &Path, url: &str, session: &Path, work: &Path) -> Result<Files> {
    let dir = tempfile::Builder::new().prefix("bridge-files-").tempdir_in(work)?;
    std::fs::copy(session, dir.path().join("session.json"))?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("cloudkit:\n  url: {url}\n  session: session.json\ndatabase:\n  uri: sqlite:bridge.db\n"))?;
    let log_path = dir.path().join("bridge.log");
    let status = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .arg("sync")
        .env("RUST_LOG", "info,sqlx=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        bail!("imessage-bridge sync exited with {status}: see {}", log_path.display());
    }
    let line = log.lines().rev().find(|l| l.contains("attachment files fetched")).context("no `attachment files fetched` log line")?;
    let number = |key: &str| field(line, key).with_context(|| format!("no {key}= in {line}"));
    let failed: u64 = number("failed")?.parse()?;
    if failed > 0 {
        bail!("{failed} attachment files failed: {line}");
    }
    Ok(Files { stored: number("stored")?.parse()?, bytes: number("bytes")?.parse()?, secs: number("secs")?.parse()? })
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_fields_are_read_quoted_or_not() {
        let line = r#"2026-12-01T11:47:23Z  INFO imessage_bridge: attachment files fetched stored=11 bytes=912345 mb="0.9" failed=0 secs="0.05""#;
        assert_eq!(super::field(line, "stored").as_deref(), Some("11"));
        assert_eq!(super::field(line, "bytes").as_deref(), Some("912345"));
        assert_eq!(super::field(line, "secs").as_deref(), Some("0.05"));
        assert_eq!(super::field(line, "missing"), None);
    }
}
