//! The derived password key, kept between runs so a restart does not pay 10,000,000 PBKDF2
//! rounds again.
//!
//! The cache file is a secret: it opens the backup exactly as the password does (but does not
//! reveal the password, which PBKDF2 still guards). It is written 0600, atomically (temporary
//! file, then rename), and holds `MAGIC ‖ SHA-256(keybag) ‖ key`. A cache whose keybag digest
//! differs (a new backup password, a different phone) is ignored and replaced; a cached key is
//! still checked by the class-key unwrap, so a stale or damaged cache costs one derivation, never
//! a wrong result.
//!
//! Note that a matching cache is used before the password: with a cache in place, a changed
//! password in the configuration is noticed only once the backup's keybag changes.

use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use crate::keybag::Key;
use crate::BackupError;

const MAGIC: &[u8; 8] = b"IMBKEY1\n";
const LEN: usize = 8 + 32 + 32;

/// The cached key for the keybag with this digest, if the cache holds one.
pub(crate) fn load(path: &Path, keybag_digest: &[u8; 32]) -> Option<Key> {
    let bytes = Zeroizing::new(std::fs::read(path).ok()?);
    if bytes.len() != LEN || &bytes[..8] != MAGIC || &bytes[8..40] != keybag_digest {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes[40..]);
    Some(key)
}

/// Writes the cache (0600, atomically).
pub(crate) fn store(path: &Path, keybag_digest: &[u8; 32], key: &[u8; 32]) -> Result<(), BackupError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let err = |e| BackupError::io(path, e);
    let mut tmp = tempfile::Builder::new().prefix(".key-cache-").tempfile_in(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(LEN));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(keybag_digest);
    bytes.extend_from_slice(key);
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
