//! The backup password as a type that never shows itself: its `Debug` is redacted and its bytes
//! are wiped when dropped. It is read from a 0600 file or an environment variable, never from a
//! command-line argument (which every user of the machine can read in `/proc`).

use std::path::Path;

use zeroize::Zeroizing;

use crate::BackupError;

/// A backup password (the one chosen in Finder or iTunes when encryption was turned on).
#[derive(Clone)]
pub struct Password(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// The password's bytes as given (UTF-8 for a password typed on a Mac or PC).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Password(Zeroizing::new(bytes.into()))
    }

    /// Reads the password from a file that only its owner can read. One trailing line break
    /// (`\n` or `\r\n`) is not part of the password.
    pub fn from_file(path: &Path) -> Result<Self, BackupError> {
        let meta = std::fs::metadata(path).map_err(|e| BackupError::io(path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(BackupError::InsecurePasswordFile { path: path.into(), mode });
            }
        }
        // A password file is a line, not a document: refuse to read a large file into memory.
        if meta.len() > 64 * 1024 {
            return Err(BackupError::io(path, std::io::Error::other("a password file is at most 64 KiB")));
        }
        let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| BackupError::io(path, e))?);
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Ok(Password(Zeroizing::new(bytes.to_vec())))
    }

    /// Reads the password from an environment variable; `None` when it is not set.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var_os(var).map(|v| Password::new(v.into_encoded_bytes()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}
