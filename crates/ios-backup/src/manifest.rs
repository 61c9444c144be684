//! Decrypting an encrypted backup's `Manifest.db` (the index of every file in the backup) with
//! its `ManifestKey`, before it is opened.
//!
//! Why a module: opening a backup (the crate root) needs this, and the file reader (`files`)
//! works on an opened [`crate::Backup`]; apart, neither imports the other.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::keybag::{split_class_prefixed, ClassKeys};
use crate::stream::{damage_of, Decryptor};
use crate::BackupError;

/// Decrypts the encrypted `Manifest.db` with the `ManifestKey` into `out`.
pub(crate) async fn decrypt_manifest(keys: Arc<ClassKeys>, manifest_key: &[u8], db: PathBuf, out: PathBuf) -> Result<(), BackupError> {
    let (class, wrapped) = split_class_prefixed(manifest_key).ok_or_else(|| BackupError::Keybag("ManifestKey shorter than 4 bytes".into()))?;
    let key = keys.unwrap(class, wrapped).map_err(|e| BackupError::Keybag(format!("ManifestKey: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let input = File::open(&db).map_err(|e| BackupError::io(&db, e))?;
        let mut plain = Decryptor::new(input, &key, None);
        let mut output = File::create(&out).map_err(|e| BackupError::io(&out, e))?;
        io::copy(&mut plain, &mut output).map_err(|e| match damage_of(&e) {
            Some(d) => BackupError::Manifest(format!("cannot be decrypted: {d}")),
            None => BackupError::io(&db, e),
        })?;
        Ok(())
    })
    .await
    .map_err(|e| BackupError::Manifest(format!("decryption did not finish: {e}")))?
}
