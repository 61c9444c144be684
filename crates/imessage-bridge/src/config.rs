//! The bridge's YAML configuration. Paths inside it are relative to the config file's folder, so
//! a config directory can be moved as a whole.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub cloudkit: CloudKitConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub attachments: AttachmentsConfig,
    /// Matrix side; absent for a sync-only setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixConfig {
    /// Homeserver client-server API base URL.
    pub homeserver: String,
    /// The homeserver's server name (the part after `:` in user ids).
    pub domain: String,
    /// The Matrix user who owns the bridge.
    pub owner: String,
    /// Path of the appservice registration (tokens are read from it).
    pub registration: PathBuf,
    /// Address the appservice API listens on (the registration's `url` points here).
    pub listen: std::net::SocketAddr,
    /// Rooms delivered concurrently.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds between syncs in `run`.
    #[serde(default = "default_interval")]
    pub sync_interval_secs: u64,
    /// Room version for new portals (default: the homeserver's default). Portals work on 10,
    /// 11 and 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
}

fn default_concurrency() -> usize {
    4
}
fn default_interval() -> u64 {
    60
}

/// Sync tuning; every field has a default that suits Apple's servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncConfig {
    /// Consecutive failures of one request before a zone stops with `error_budget`.
    pub error_budget: u32,
    /// First retry delay; doubles per attempt up to `backoff_max_ms`.
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    /// Key refresh retries (warm-up and re-fetch rounds).
    pub key_retries: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let d = sync::SyncOptions::default();
        SyncConfig {
            error_budget: d.error_budget,
            backoff_ms: d.backoff_base.as_millis() as u64,
            backoff_max_ms: d.backoff_max.as_millis() as u64,
            key_retries: d.key_retries,
        }
    }
}

impl SyncConfig {
    pub fn options(&self) -> sync::SyncOptions {
        sync::SyncOptions {
            error_budget: self.error_budget.max(1),
            backoff_base: std::time::Duration::from_millis(self.backoff_ms),
            backoff_max: std::time::Duration::from_millis(self.backoff_max_ms.max(self.backoff_ms)),
            key_retries: self.key_retries,
            ..sync::SyncOptions::default()
        }
    }
}

/// Where attachment files are kept and how they are fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentsConfig {
    /// The content-addressed folder; default `attachments/` beside the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Files larger than this many bytes are not fetched (counted as `too_large`).
    pub max_bytes: u64,
    /// Downloads at once.
    pub concurrency: usize,
    /// Send HEIC/HEIF photos to Matrix as JPEG (most clients cannot show HEIC).
    pub convert_heif: bool,
    /// Send CAF voice messages to Matrix as Ogg/Opus voice messages.
    pub convert_voice: bool,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig { dir: None, max_bytes: 100 << 20, concurrency: 4, convert_heif: true, convert_voice: true }
    }
}

impl AttachmentsConfig {
    pub fn options(&self) -> sync::FileOptions {
        let mut o = sync::FileOptions::new(self.dir.clone().unwrap_or_else(|| PathBuf::from("attachments")));
        o.max_bytes = self.max_bytes;
        o.concurrency = self.concurrency.max(1);
        o
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloudKitConfig {
    /// CloudKit gateway base URL (the simulator's, or `https://gateway.icloud.com`).
    pub url: String,
    /// Path of the session file (`session.json`).
    pub session: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` or `postgres://…`.
    pub uri: String,
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {} (pass -c PATH)", path.display()))?;
        let mut config: Config =
            serde_yaml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.cloudkit.session.is_relative() {
            config.cloudkit.session = base.join(&config.cloudkit.session);
        }
        let dir = config.attachments.dir.take().unwrap_or_else(|| PathBuf::from("attachments"));
        config.attachments.dir = Some(if dir.is_relative() { base.join(dir) } else { dir });
        if let Some(m) = config.matrix.as_mut() {
            if m.registration.is_relative() {
                m.registration = base.join(&m.registration);
            }
        }
        if let Some(file) = config.database.uri.strip_prefix("sqlite:") {
            let file = Path::new(file);
            if file.is_relative() {
                config.database.uri = format!("sqlite:{}", base.join(file).display());
            }
        }
        Ok(config)
    }
}
