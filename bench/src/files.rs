//! The attachment phase of the benchmark: how fast the bridge fetches attachment files from the
//! simulator's content host (MMCS V2: FORD, per-chunk AES-CTR and HMAC ids, SHA-256 naming).
//!
//! Why separate from the record figures: `sync` fetches files after the records, and the records
//! rate is the figure earlier rounds compare; so the records phase runs `sync --records-only`,
//! and this phase runs a full `sync` in a fresh directory and reads the time the files took from
//! the bridge's JSON log: the fields of its `files_done` progress marker.

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

/// A figure among a log event's fields: a JSON number, or a number the bridge formatted as text
/// (`secs = "0.05"`).
pub fn figure(fields: &serde_json::Value, key: &str) -> Option<f64> {
    let value = fields.get(key)?;
    value.as_f64().or_else(|| value.as_str()?.parse().ok())
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
        .args(["--log-format", "json", "sync"])
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
    let fields = testkit::campaign::find_progress(&log, matrix::progress::FILES_DONE).context("no files_done marker in the bridge's log")?;
    let number = |key: &str| figure(&fields, key).with_context(|| format!("the files pass did not end well: no {key} in {fields}"));
    let failed = number("failed")?;
    if failed > 0.0 {
        bail!("{failed} attachment files failed: {fields}");
    }
    Ok(Files { stored: number("stored")? as u64, bytes: number("bytes")? as u64, secs: number("secs")? })
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_are_read_as_numbers_or_formatted_text() {
        let fields = serde_json::json!({ "progress": "files_done", "stored": 11, "bytes": 912345, "mb": "0.9", "secs": "0.05" });
        assert_eq!(super::figure(&fields, "stored"), Some(11.0));
        assert_eq!(super::figure(&fields, "bytes"), Some(912345.0));
        assert_eq!(super::figure(&fields, "secs"), Some(0.05));
        assert_eq!(super::figure(&fields, "missing"), None);
    }
}
