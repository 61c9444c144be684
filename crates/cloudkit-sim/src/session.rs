//! The session the simulator's account accepts, written as `session.json` for the bridge.
//!
//! The file is the seam between a session's producer and the bridge, so the simulator writes it
//! from its own description of the format (README, "The session file") rather than through the
//! client's type: a field the two sides disagree on fails `Session::load` in the tests.

use std::path::Path;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::Serialize;

use crate::pcs::SimEcKey;

pub const CONTAINER: &str = "com.apple.messages.cloud";
pub const BUNDLE: &str = "com.apple.imagent";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SimTokens {
    pub cloudkit: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SimAnisette {
    pub url: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SimSession {
    pub dsid: String,
    pub cloudkit_user_id: String,
    pub tokens: SimTokens,
    /// Base64 of the service identity's keychain DER (its public part signed by the MasterKey).
    pub service_identity: String,
    pub handles: Vec<String>,
    pub device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anisette: Option<SimAnisette>,
    pub container: String,
    pub bundle_id: String,
}

impl SimSession {
    /// `master` signs the service identity, as the account's MasterKey does; it is not written.
    pub fn new(dsid: String, cloudkit_user_id: String, token: String, service: &SimEcKey, master: &SimEcKey, handles: Vec<String>, device_id: String) -> Self {
        SimSession {
            dsid,
            cloudkit_user_id,
            tokens: SimTokens { cloudkit: token },
            service_identity: B64.encode(service.keychain_der(master)),
            handles,
            device_id,
            anisette: None,
            container: CONTAINER.into(),
            bundle_id: BUNDLE.into(),
        }
    }

    /// Writes the session file, readable by its owner only (it holds the token and the key).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n";
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(text.as_bytes())
    }
}
