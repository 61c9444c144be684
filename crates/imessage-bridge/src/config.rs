//! The bridge's YAML configuration. Paths inside it are relative to the config file's folder, so
//! a config directory can be moved as a whole.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub cloudkit: CloudKitConfig,
    pub database: DatabaseConfig,
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
        if let Some(file) = config.database.uri.strip_prefix("sqlite:") {
            let file = Path::new(file);
            if file.is_relative() {
                config.database.uri = format!("sqlite:{}", base.join(file).display());
            }
        }
        Ok(config)
    }
}
