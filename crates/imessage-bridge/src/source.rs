//! The history source the config names, behind the few things the commands ask of any source:
//! the owner's handles, one sync pass into the store, and the attachment files.
//!
//! CloudKit syncs through `sync::sync_all` and `sync::fetch_files`; a Mac's `chat.db` (and the
//! `sms.db` of an iPhone backup) through `sync::sync_chat_db` and `sync::copy_local_files`. What
//! comes out is the same records in the same store, so delivery and `verify` never ask which.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, SourceKind};

/// An opened local source: the database and where its attachment files are.
pub struct LocalSource {
    pub db: chatdb::ChatDb,
    pub files: Box<dyn sync::LocalFiles>,
    /// What is described in logs and `doctor` (the file or folder).
    pub origin: String,
    /// What `doctor` says about the source besides its counts (a backup's phone, encryption).
    pub about: Option<String>,
}

/// Opens the local source of the config (a `chat.db`, or the `sms.db` of a backup).
pub async fn open_local(config: &Config) -> anyhow::Result<LocalSource> {
    let path = config.source.path()?;
    let region = config.source.default_region.as_deref();
    match config.source.kind {
        SourceKind::ChatDb => {
            let db = chatdb::ChatDb::open(path, region).await.with_context(|| format!("opening the Messages database {}", path.display()))?;
            let files = Box::new(sync::FolderFiles { folder: db.folder().to_path_buf() });
            Ok(LocalSource { db, files, origin: path.display().to_string(), about: None })
        }
        SourceKind::IosBackup => {
            let backup = crate::backup::open(path, region, config).await?;
            Ok(LocalSource { db: backup.db, files: backup.files, origin: path.display().to_string(), about: Some(backup.about) })
        }
        SourceKind::Cloudkit => anyhow::bail!("source.kind is cloudkit, not a local source"),
    }
}

/// The owner's handles as the source knows them, the configured preferred one first.
pub async fn own_handles(config: &Config) -> anyhow::Result<Vec<String>> {
    match config.source.kind {
        SourceKind::Cloudkit => {
            let session = cloudkit::session_source(&config.cloudkit()?.session).session().await?;
            config.own_handles(&session.handles)
        }
        _ => {
            let local = open_local(config).await?;
            let found = local.db.own_handles().await?;
            local.db.close().await;
            Ok(with_preferred(found, config.source.own_handle.as_deref()))
        }
    }
}

/// `found` with `preferred` first (added when the database does not show it: a Mac that never
/// sent from that address still is its owner's).
fn with_preferred(mut found: Vec<String>, preferred: Option<&str>) -> Vec<String> {
    if let Some(p) = preferred {
        let p = imessage::handle::canonical_handle(p, None);
        found.retain(|h| *h != p);
        found.insert(0, p);
    }
    found
}

/// The handles of a source named on the command line (`list-handles --source-path`), for a
/// config that does not exist yet.
pub async fn handles_of(kind: SourceKind, path: &Path, config: &Config) -> anyhow::Result<Vec<String>> {
    let mut config = config.clone();
    config.source.kind = kind;
    config.source.path = Some(path.to_path_buf());
    own_handles(&config).await
}

/// One sync pass of a local source into the store, then its files.
pub async fn sync_local(
    config: &Config,
    store: Arc<dyn store::Store>,
    files: bool,
    options: &sync::SyncOptions,
    progress: &dyn sync::Progress,
) -> anyhow::Result<sync::SyncReport> {
    // A backup does not change under the bridge: once a pass of this process read it whole,
    // later passes skip it (no decryption of sms.db every interval) until a newer one is there.
    let backup = (config.source.kind == SourceKind::IosBackup).then(|| backup_fingerprint(config.source.path.as_deref())).flatten();
    if backup.is_some() && *READ_BACKUP.lock().unwrap_or_else(|e| e.into_inner()) == backup {
        tracing::debug!("the backup has not changed since it was read");
        return Ok(sync::SyncReport { zones: Vec::new(), full_resync: false, version_saved: false });
    }
    let local = open_local(config).await?;
    let own = with_preferred(local.db.own_handles().await?, config.source.own_handle.as_deref());
    let own = own.first().cloned().unwrap_or_default();
    let started = std::time::Instant::now();
    let report = sync::sync_chat_db(&local.db, store.as_ref(), &own, options, progress).await;
    local.db.close().await;
    let report = report.with_context(|| format!("reading {}", local.origin))?;
    tracing::info!(source = %local.origin, secs = format!("{:.1}", started.elapsed().as_secs_f64()), "source read");
    if files && !options.stop.is_stopped() {
        let opts = sync::FileOptions { stop: options.stop.clone(), ..config.attachments.options() };
        match sync::copy_local_files(local.files.as_ref(), store.as_ref(), &opts).await {
            Ok(f) => tracing::info!(
                progress = matrix::progress::FILES_DONE,
                stored = f.stored,
                bytes = f.bytes,
                missing_or_failed = f.failed,
                too_large = f.too_large,
                "attachment files copied"
            ),
            Err(e) => tracing::warn!(progress = matrix::progress::FILES_DONE, "attachment files not copied this time: {e}"),
        }
    }
    if report.all_done() && !options.stop.is_stopped() {
        *READ_BACKUP.lock().unwrap_or_else(|e| e.into_inner()) = backup;
    }
    Ok(report)
}

/// The backup (its folder, and its `Manifest.db`'s size and time) that this process last read
/// whole.
static READ_BACKUP: std::sync::Mutex<Option<(std::path::PathBuf, u64, std::time::SystemTime)>> = std::sync::Mutex::new(None);

/// What tells one backup from a newer one in the same folder: `Manifest.db`'s size and time.
fn backup_fingerprint(dir: Option<&Path>) -> Option<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let dir = dir?;
    let meta = std::fs::metadata(dir.join("Manifest.db")).ok()?;
    Some((dir.to_path_buf(), meta.len(), meta.modified().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_handle_goes_first_in_canonical_form() {
        let found = vec!["mailto:me@icloud.example".to_string(), "tel:+15550000001".to_string()];
        assert_eq!(with_preferred(found.clone(), Some("+1 555 000 0001")), ["tel:+15550000001", "mailto:me@icloud.example"]);
        assert_eq!(with_preferred(found.clone(), None), found);
        assert_eq!(with_preferred(Vec::new(), Some("Me@Example.com")), ["mailto:me@example.com"]);
    }
}
