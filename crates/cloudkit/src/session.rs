//! The session file (`session.json`): who the account is and the key material that opens its
//! zones. This is the seam where a real Apple account plugs in: anything that can produce these
//! fields (a login flow, a keychain export) can drive the bridge; the simulator writes one with
//! `--write-session`.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pcs::PcsKey;

pub const MESSAGES_CONTAINER: &str = "com.apple.messages.cloud";
pub const MESSAGES_BUNDLE: &str = "com.apple.imagent";

fn default_container() -> String {
    MESSAGES_CONTAINER.to_string()
}
fn default_bundle() -> String {
    MESSAGES_BUNDLE.to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Apple account id (dsid).
    pub account_id: String,
    /// CloudKit user record name; the owner of the private zones (`x-cloudkit-userid`).
    pub cloudkit_user_id: String,
    /// CloudKit auth token (`x-cloudkit-authtoken`).
    pub auth_token: String,
    /// The account's own handles (`tel:+1…`, `mailto:…`); messages from these are from me.
    pub handles: Vec<String>,
    /// Base64 of the 16-byte Messages service key that opens the zones' record keys.
    pub service_key: String,
    #[serde(default = "default_container")]
    pub container: String,
    #[serde(default = "default_bundle")]
    pub bundle_id: String,
}

impl Session {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let err = |detail: String| Error::Session { path: path.display().to_string(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let session: Session = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        session.service_key().map_err(|e| err(e.to_string()))?;
        Ok(session)
    }

    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let err = |detail: String| Error::Session { path: path.display().to_string(), detail };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| err(e.to_string()))
    }

    pub fn service_key(&self) -> Result<PcsKey> {
        let raw = B64
            .decode(self.service_key.trim())
            .map_err(|e| Error::Session { path: "service_key".into(), detail: format!("not base64: {e}") })?;
        PcsKey::from_slice(&raw)
    }

    pub fn encode_key(key: &PcsKey) -> String {
        B64.encode(key.raw())
    }
}
