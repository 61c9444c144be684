//! The crate's one error type. A wrong password is a single variant, found when the backup is
//! opened; a damaged or missing file is its own variant so that a caller can count it and go on
//! with the next file.

use std::path::PathBuf;

/// Everything that can go wrong while reading an iPhone backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file of the backup folder (or the key cache, or a destination) could not be read or
    /// written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The folder lacks `Manifest.plist` or `Manifest.db`, or they are not what a backup holds.
    #[error("{} is not an iPhone backup: {reason}", path.display())]
    NotABackup { path: PathBuf, reason: String },
    /// A property list of the backup folder is malformed or lacks a required field.
    #[error("{}: {reason}", path.display())]
    Plist { path: PathBuf, reason: String },
    /// The backup is encrypted and neither a password nor a matching key cache was given.
    #[error("the backup is encrypted: a backup password is needed")]
    PasswordRequired,
    /// The password does not unwrap the keybag's class keys.
    #[error("wrong backup password: the keybag's class keys do not unwrap with it")]
    WrongPassword,
    /// The password file is readable by other users (it must be 0600).
    #[error("{}: a backup password file must be readable by its owner only (chmod 600), it has mode {mode:o}", path.display())]
    InsecurePasswordFile { path: PathBuf, mode: u32 },
    /// `BackupKeyBag` or `ManifestKey` in `Manifest.plist` is malformed.
    #[error("malformed keybag: {0}")]
    Keybag(String),
    /// `Manifest.db` cannot be decrypted, opened or queried, or one of its rows is malformed.
    #[error("Manifest.db: {0}")]
    Manifest(String),
    /// A file listed in `Manifest.db` has no blob in the backup folder.
    #[error("{domain} {relative_path}: missing from the backup folder (expected {file_id})")]
    FileMissing { domain: String, relative_path: String, file_id: String },
    /// A file's blob is damaged: wrong length, bad padding, or its key does not unwrap.
    #[error("{domain} {relative_path} ({file_id}): damaged: {reason}")]
    FileDamaged { domain: String, relative_path: String, file_id: String, reason: String },
}

impl BackupError {
    /// Whether this error concerns one file only (missing or damaged): the caller counts it and
    /// goes on with the other files.
    pub fn is_per_file(&self) -> bool {
        matches!(self, BackupError::FileMissing { .. } | BackupError::FileDamaged { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BackupError::Io { path: path.into(), source }
    }

    pub(crate) fn manifest(e: impl std::fmt::Display) -> Self {
        BackupError::Manifest(e.to_string())
    }
}
