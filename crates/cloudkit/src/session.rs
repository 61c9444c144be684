//! The session (`session.json`): what the bridge needs to act as one of the account's devices —
//! who the account is, the tokens CloudKit accepts, the Messages service identity that opens the
//! zones' keys, a stable device id, and where anisette headers come from.
//!
//! Producing a session is behind [`SessionSource`]. Today there is one implementation, a file
//! ([`SessionFile`]) that `cloudkit-sim serve --write-session` writes for its account. A real
//! account needs another source — see the README's "What a real account needs" — which performs
//! the GSA login (SRP, 2FA, anisette), trades the PET for `mmeAuthToken` and `cloudKitToken` at
//! the login delegate, and exports the Messages3 PCS identity from the iCloud Keychain after
//! joining the trust circle. Everything downstream only sees a [`Session`].

use std::path::{Path, PathBuf};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pcs::EcKey;

pub const MESSAGES_CONTAINER: &str = "com.apple.messages.cloud";
pub const MESSAGES_BUNDLE: &str = "com.apple.imagent";

fn default_container() -> String {
    MESSAGES_CONTAINER.to_string()
}
fn default_bundle() -> String {
    MESSAGES_BUNDLE.to_string()
}

/// The tokens of the account's iCloud login.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tokens {
    /// `cloudKitToken` from the login delegate `com.apple.mobileme`; sent as
    /// `x-cloudkit-authtoken`.
    pub cloudkit: String,
    /// `mmeAuthToken`, which obtains a new `cloudKitToken` when it expires. Not used by the
    /// simulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mme_auth: Option<String>,
}

/// Where anisette headers (`X-Apple-I-MD`, `X-Apple-I-MD-M`, …) come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnisetteSource {
    /// An anisette server answering `GET` with a JSON object of header names to values (the
    /// protocol of the public anisette servers; the simulator plays one at `/_sim/anisette`).
    pub url: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Apple account id (dsid).
    pub dsid: String,
    /// CloudKit user record name, owner of the private zones (`x-cloudkit-userid`).
    pub cloudkit_user_id: String,
    pub tokens: Tokens,
    /// Base64 of the Messages3 service identity as the iCloud Keychain stores it (`v_Data` of
    /// the `com.apple.ProtectedCloudStorage` item: a DER `PCSPrivateKey`).
    pub service_identity: String,
    /// The account's own handles (`tel:+1…`, `mailto:…`); messages from these are from me.
    pub handles: Vec<String>,
    /// This device's identifier, the same on every request and every run.
    pub device_id: String,
    /// Anisette headers for every request; None sends none (a server that needs them refuses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anisette: Option<AnisetteSource>,
    #[serde(default = "default_container")]
    pub container: String,
    #[serde(default = "default_bundle")]
    pub bundle_id: String,
}

/// No tokens or key material in logs.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("dsid", &self.dsid)
            .field("cloudkit_user_id", &self.cloudkit_user_id)
            .field("tokens", &"<redacted>")
            .field("service_identity", &"<redacted>")
            .field("handles", &self.handles)
            .field("device_id", &self.device_id)
            .field("anisette", &self.anisette)
            .finish()
    }
}

impl Session {
    /// Reads and checks a session file (the service identity must parse).
    pub fn load(path: &Path) -> Result<Self> {
        let err = |detail: String| Error::Session { path: path.display().to_string(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let session: Session = serde_json::from_str(&text).map_err(|e| {
            let hint = if text.contains("\"service_key\"") {
                " (a session file of the old format: write it again with `cloudkit-sim serve --write-session`)"
            } else {
                ""
            };
            err(format!("{e}{hint}"))
        })?;
        session.service_identity().map_err(|e| err(e.to_string()))?;
        Ok(session)
    }

    /// Writes the session readable by its owner only: it holds the account's tokens and keys.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |detail: String| Error::Session { path: path.display().to_string(), detail };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        write_private(path, (text + "\n").as_bytes()).map_err(|e| err(e.to_string()))
    }

    /// The Messages service identity that opens the zones' `protectionInfo`.
    pub fn service_identity(&self) -> Result<EcKey> {
        let der =
            B64.decode(self.service_identity.trim()).map_err(|e| Error::Session { path: "service_identity".into(), detail: format!("not base64: {e}") })?;
        EcKey::from_keychain_der(&der)
    }
}

/// Writes a file that only its owner can read (0600 on Unix; created so from the start, and an
/// existing file's mode is narrowed too).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
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
    file.write_all(data)?;
    file.sync_all()
}

/// Something that produces the session the bridge runs with: a file today; a real login or a
/// keychain export would be another implementation.
#[async_trait::async_trait]
pub trait SessionSource: Send + Sync {
    /// Where the session comes from, for messages ("session file /x/session.json").
    fn describe(&self) -> String;
    async fn session(&self) -> Result<Session>;
}

/// A session stored in a file.
#[derive(Debug, Clone)]
pub struct SessionFile(pub PathBuf);

#[async_trait::async_trait]
impl SessionSource for SessionFile {
    fn describe(&self) -> String {
        format!("session file {}", self.0.display())
    }
    async fn session(&self) -> Result<Session> {
        Session::load(&self.0)
    }
}

/// The session source a config's `cloudkit.session` names: today always a file.
pub fn session_source(path: &Path) -> Box<dyn SessionSource> {
    Box::new(SessionFile(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens_and_the_service_identity() {
        let session = Session {
            dsid: "1234".into(),
            cloudkit_user_id: "_owner".into(),
            tokens: Tokens { cloudkit: "CK-TOKEN-SECRET".into(), mme_auth: Some("MME-TOKEN-SECRET".into()) },
            service_identity: "U0VSVklDRS1LRVktU0VDUkVU".into(),
            handles: vec!["mailto:me@example.org".into()],
            device_id: "DEVICE-1".into(),
            anisette: None,
            container: default_container(),
            bundle_id: default_bundle(),
        };
        let shown = format!("{session:?} {session:#?}");
        for secret in ["CK-TOKEN-SECRET", "MME-TOKEN-SECRET", "U0VSVklDRS1LRVktU0VDUkVU"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<redacted>") && shown.contains("DEVICE-1") && shown.contains("_owner"), "{shown}");
        let key = crate::pcs::PcsKey::new([0xab; 16]);
        assert!(!format!("{key:?}").contains(&crate::pcs::hex(key.raw())), "a record key's Debug shows only its id");
    }
}
