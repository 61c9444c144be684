//! An iPhone backup as a history source: the backup is opened (decrypted, for an encrypted one,
//! into a private temporary folder that is removed afterwards), its `sms.db` is read like a
//! Mac's `chat.db`, and attachment files are taken out of the backup one by one as the file
//! pass asks for them.
//!
//! The password comes from `source.backup_password_file` (a 0600 file) or the environment
//! variable [`PASSWORD_ENV`], never from a command line or a log line. Deriving the key from it
//! takes iOS's 10,000,000 + 10,000 rounds (seconds); the derived key is kept in a 0600 cache
//! file beside the config (`backup-key.cache`), so a restart does not pay that again.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use imessage::records::AttachmentRecord;
use ios_backup::{Backup, Password};

use crate::config::Config;

/// The environment variable that may hold the backup password.
pub const PASSWORD_ENV: &str = "IMESSAGE_BRIDGE_BACKUP_PASSWORD";

/// An opened backup: its `sms.db`, its attachment files, and what `doctor` says of it.
pub struct OpenedBackup {
    pub db: chatdb::ChatDb,
    pub files: Box<dyn sync::LocalFiles>,
    pub about: String,
}

/// Opens the backup at `dir` and the `sms.db` inside it.
pub async fn open(dir: &Path, region: Option<&str>, config: &Config) -> anyhow::Result<OpenedBackup> {
    let (backup, about) = open_backup(dir, config).await?;
    let sms = backup.sms_db().await.with_context(|| format!("taking Messages' database out of {}", dir.display()))?;
    let db = chatdb::ChatDb::open(&sms, region).await.with_context(|| format!("reading the sms.db of {}", dir.display()))?;
    Ok(OpenedBackup { db, files: Box::new(BackupFiles { backup: Arc::new(backup) }), about })
}

/// Opens the backup at `dir` with the config's password and key cache; the second value says
/// what it is (device, iOS, how the key was had) for `doctor`.
pub async fn open_backup(dir: &Path, config: &Config) -> anyhow::Result<(Backup, String)> {
    let password = match &config.source.backup_password_file {
        Some(file) => Some(Password::from_file(file).with_context(|| format!("reading the backup password from {}", file.display()))?),
        None => Password::from_env(PASSWORD_ENV),
    };
    let cache = config.source.key_cache();
    let backup = Backup::open(dir, password.as_ref(), cache.as_deref()).await.with_context(|| format!("opening the iPhone backup {}", dir.display()))?;
    if let ios_backup::KeySource::Derived { seconds } = backup.key_source() {
        tracing::info!(seconds = format!("{seconds:.1}"), "backup key derived from the password (kept in the key cache for next time)");
    }
    let info = backup.info();
    tracing::info!(device = ?info.device_name, ios = ?info.product_version, encrypted = info.encrypted, "iPhone backup opened");
    let keys = match backup.key_source() {
        ios_backup::KeySource::Derived { seconds } => format!("encrypted, password right (key derived in {seconds:.1}s)"),
        ios_backup::KeySource::Cache => "encrypted, key from the key cache".to_string(),
        _ => "not encrypted".to_string(),
    };
    let about = format!("backup of {} (iOS {}), {keys}", info.device_name.as_deref().unwrap_or("an iPhone"), info.product_version.as_deref().unwrap_or("?"));
    Ok((backup, about))
}

/// Attachment files inside a backup (MediaDomain `Library/SMS/Attachments/…`).
struct BackupFiles {
    backup: Arc<Backup>,
}

#[async_trait::async_trait]
impl sync::LocalFiles for BackupFiles {
    async fn copy_into(&self, attachment: &AttachmentRecord, part: &Path) -> Result<Option<u64>, String> {
        let Some(path) = attachment.details.source_path.as_deref() else { return Ok(None) };
        // A Mac's chat.db restored onto a phone names `~/Library/Messages/…`: the phone keeps
        // those files under `Library/SMS/` too.
        let mut found = self.backup.attachment(path).await.map_err(|e| e.to_string())?;
        if found.is_none() && path.contains("Library/Messages/") {
            found = self.backup.attachment(&path.replacen("Library/Messages/", "Library/SMS/", 1)).await.map_err(|e| e.to_string())?;
        }
        let Some(file) = found else { return Ok(None) };
        match self.backup.extract(&file, part).await {
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(format!("{path} in the backup: {e}")),
        }
    }

    fn describe(&self, attachment: &AttachmentRecord) -> String {
        attachment.details.source_path.clone().unwrap_or_else(|| attachment.guid.clone())
    }
}
