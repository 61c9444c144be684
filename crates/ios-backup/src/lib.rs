//! Reads an iPhone backup folder, plain or encrypted, as Finder, iTunes, Apple Devices or
//! `idevicebackup2` write it: the bridge's source of `sms.db` and its attachments for people
//! who have a backup but no CloudKit session.
//!
//! The folder holds `Manifest.plist` (encryption, keybag), `Info.plist` and `Status.plist` (the
//! phone, the backup's state), `Manifest.db` (one row per file: `fileID`, `domain`,
//! `relativePath`, `flags`, and an archived `MBFile`), and each file at `fileID[..2]/fileID`.
//!
//! Encrypted backups ([`keybag`]): the password opens the keybag's class keys, the `ManifestKey`
//! opens `Manifest.db`, and each file's own key (wrapped with its class key, in its `MBFile`)
//! opens the file, AES-256-CBC with a zero IV ([`stream`]). A wrong password is found by
//! [`Backup::open`], before anything is written. Decrypted files go to a private 0700 temporary
//! folder that is removed when the [`Backup`] is dropped, or to a destination the caller names.
//! Deriving the password key takes seconds (10,000,000 PBKDF2-SHA256 rounds), so an optional key
//! cache ([`key_cache`]) spares it on restarts.
//!
//! `Manifest.db` is only ever opened read-only (sqlx), and the backup folder is never written.

mod error;
mod files;
mod key_cache;
mod keybag;
mod manifest;
mod password;
mod plists;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

pub use error::BackupError;
pub use files::{attachment_location, AddressBookFiles, BackupFile, FileReader};
pub use password::Password;
pub use plists::BackupInfo;

use keybag::{ClassKeys, Keybag};
use plists::ManifestPlist;

/// How the keys of an encrypted backup were obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum KeySource {
    /// The backup is not encrypted.
    NotEncrypted,
    /// Derived from the password, taking this many seconds.
    Derived { seconds: f64 },
    /// Read from the key cache.
    Cache,
}

/// An opened backup. Dropping it removes its temporary folder (and the decrypted `Manifest.db`
/// and `sms.db` in it).
pub struct Backup {
    dir: PathBuf,
    info: BackupInfo,
    keys: Option<Arc<ClassKeys>>,
    key_source: KeySource,
    db: SqlitePool,
    // Declared last: dropped after the pool.
    temp: tempfile::TempDir,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup").field("dir", &self.dir).field("info", &self.info).field("key_source", &self.key_source).finish_non_exhaustive()
    }
}

impl Backup {
    /// Opens the backup in `dir`. An encrypted backup needs `password` or a `key_cache` that a
    /// previous open with the password wrote (0600; it is a secret: see the module
    /// [`key_cache`]). A wrong password is [`BackupError::WrongPassword`].
    pub async fn open(dir: &Path, password: Option<&Password>, key_cache: Option<&Path>) -> Result<Backup, BackupError> {
        let manifest_plist = dir.join("Manifest.plist");
        let manifest_db = dir.join("Manifest.db");
        for needed in [&manifest_plist, &manifest_db] {
            if !needed.is_file() {
                let reason = format!("no {}", needed.file_name().and_then(|n| n.to_str()).unwrap_or_default());
                return Err(BackupError::NotABackup { path: dir.into(), reason });
            }
        }
        let manifest = ManifestPlist::read(&manifest_plist)?;
        let info = BackupInfo::read(dir, &manifest)?;
        let (keys, key_source) = if manifest.encrypted {
            let keybag = manifest.keybag.as_deref().ok_or_else(|| BackupError::Keybag("IsEncrypted but no BackupKeyBag".into()))?;
            let (keys, source) = unlock(keybag, password, key_cache).await?;
            (Some(Arc::new(keys)), source)
        } else {
            (None, KeySource::NotEncrypted)
        };
        // Nothing is written before this point: a wrong password leaves no trace.
        let temp = private_temp_dir()?;
        let db_path = match &keys {
            None => manifest_db,
            Some(keys) => {
                let out = temp.path().join("Manifest.db");
                let wrapped = manifest.manifest_key.as_deref().ok_or_else(|| BackupError::Keybag("no ManifestKey".into()))?;
                manifest::decrypt_manifest(keys.clone(), wrapped, manifest_db, out.clone()).await?;
                out
            }
        };
        let options = SqliteConnectOptions::new().filename(&db_path).read_only(true).immutable(true);
        let db = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.map_err(BackupError::manifest)?;
        let files: i64 = sqlx::query_scalar("SELECT count(*) FROM Files").fetch_one(&db).await.map_err(BackupError::manifest)?;
        tracing::debug!(dir = %dir.display(), files, encrypted = manifest.encrypted, "backup opened");
        Ok(Backup { dir: dir.into(), info, keys, key_source, db, temp })
    }

    /// The phone and the backup.
    pub fn info(&self) -> &BackupInfo {
        &self.info
    }

    /// How the keys were obtained (for `doctor`/`status`: a derivation's duration).
    pub fn key_source(&self) -> KeySource {
        self.key_source
    }

    /// The private (0700) temporary folder, removed on drop.
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// Closes `Manifest.db` and removes the temporary folder.
    pub async fn close(self) {
        self.db.close().await;
    }
}

/// Opens the keybag with the cached key or the password.
async fn unlock(keybag: &[u8], password: Option<&Password>, key_cache: Option<&Path>) -> Result<(ClassKeys, KeySource), BackupError> {
    let keybag = Keybag::parse(keybag)?;
    if let Some(cache) = key_cache {
        if let Some(key) = key_cache::load(cache, &keybag.digest) {
            match keybag.unlock(&key) {
                Ok(keys) => return Ok((keys, KeySource::Cache)),
                Err(_) => tracing::warn!(cache = %cache.display(), "the key cache does not open this backup; deriving the key again"),
            }
        }
    }
    let password = password.ok_or(BackupError::PasswordRequired)?.clone();
    let started = Instant::now();
    let derive_from = keybag.clone();
    let key = tokio::task::spawn_blocking(move || derive_from.derive(password.as_bytes()))
        .await
        .map_err(|e| BackupError::Keybag(format!("key derivation did not finish: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    let keys = keybag.unlock(&key)?;
    tracing::info!(seconds, "backup password key derived");
    if let Some(cache) = key_cache {
        // The backup still opens without the cache; the next start pays the derivation again.
        if let Err(e) = key_cache::store(cache, &keybag.digest, &key) {
            tracing::warn!(error = %e, "could not write the key cache");
        }
    }
    Ok((keys, KeySource::Derived { seconds }))
}

/// A new 0700 temporary folder.
fn private_temp_dir() -> Result<tempfile::TempDir, BackupError> {
    let temp = tempfile::Builder::new().prefix("ios-backup-").tempdir().map_err(|e| BackupError::io(std::env::temp_dir(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).map_err(|e| BackupError::io(temp.path(), e))?;
    }
    Ok(temp)
}
