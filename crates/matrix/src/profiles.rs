//! Ghost profiles: the name and photo a person's ghost shows, from wherever the bridge learns
//! them (the binary's contacts, merged from address books, vCards and CardDAV).
//!
//! This crate only defines the seam, [`ProfileSource`], and applies what it says: no contact
//! format is known here, so the contact readers and this crate never depend on each other.
//! Without a source (or for a handle it does not know) a ghost is named by its formatted
//! handle, as before. What was applied is kept in the store (`store::GhostProfileRow`), so a
//! changed contact reaches Matrix once, a removed one falls back to the handle and loses its
//! avatar, and each distinct photo is uploaded once (by SHA-256).
//!
//! Synapse turns a global profile change into a new `m.room.member` event in every room the
//! ghost is joined to (a background task), which is how DMs — named by their member, with no
//! `m.room.name` — show the new name.

use sha2::Digest;
use store::GhostProfileRow;

pub use crate::profile_source::{AvatarImage, GhostProfile, NoProfiles, ProfileSource, StaticProfiles};

use crate::delivery::Deliverer;
use crate::ghost::{display_name, ghost_user_id};
use crate::Result;

/// The largest avatar uploaded, in bytes; a larger photo is left out (logged and counted).
pub const MAX_AVATAR_BYTES: usize = 8 * 1024 * 1024;
/// The longest display name set, in characters (Synapse refuses more than 256).
const MAX_NAME: usize = 200;

/// The display name a ghost should have: the source's (trimmed, cut to [`MAX_NAME`]), else the
/// formatted handle. `verify` checks rooms against this too.
pub fn expected_name(source: Option<&dyn ProfileSource>, handle: &str) -> String {
    let named = source.and_then(|s| s.profile(handle)).map(|p| p.display_name.trim().chars().take(MAX_NAME).collect::<String>());
    named.filter(|n| !n.is_empty()).unwrap_or_else(|| display_name(handle))
}

/// What a refresh of ghost profiles changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProfileReport {
    /// Ghosts looked at.
    pub ghosts: u64,
    /// Display names set because they changed.
    pub renamed: u64,
    /// Avatars set (a new or changed photo) and removed (the photo or the contact is gone).
    pub avatars_set: u64,
    pub avatars_removed: u64,
    /// Images uploaded (a photo already uploaded is not uploaded again).
    pub uploads: u64,
    /// Photos left out: larger than [`MAX_AVATAR_BYTES`], or not an image type.
    pub avatars_refused: u64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Deliverer {
    /// The profile source in use, if any.
    pub fn profiles(&self) -> Option<std::sync::Arc<dyn ProfileSource>> {
        self.profiles.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the profile source (the contacts were read again); [`Self::refresh_profiles`]
    /// then brings the ghosts up to date.
    pub fn set_profiles(&self, source: Option<std::sync::Arc<dyn ProfileSource>>) {
        *self.profiles.write().unwrap_or_else(|e| e.into_inner()) = source;
    }

    /// Applies the current profile source to every ghost the bridge has named so far: each
    /// changed name or photo is set once, a contact that is gone falls back to the handle and
    /// its avatar is removed.
    pub async fn refresh_profiles(&self) -> Result<ProfileReport> {
        let mut report = ProfileReport::default();
        for row in self.store.ghost_profiles().await? {
            report.ghosts += 1;
            let user = ghost_user_id(&row.handle, &self.config.domain);
            self.apply_profile(&row.handle, &user, false, &mut report).await?;
        }
        tracing::info!(?report, "ghost profiles refreshed");
        Ok(report)
    }

    /// Makes `user` (the ghost of `handle`) show what the profile source says. `force`: set the
    /// name (and photo) even if the store says they were applied (once per run, as the
    /// homeserver's copy is what counts); else only what changed is set.
    pub(crate) async fn apply_profile(&self, handle: &str, user: &str, force: bool, report: &mut ProfileReport) -> Result<()> {
        let source = self.profiles();
        let name = expected_name(source.as_deref(), handle);
        let photo = source.as_deref().and_then(|s| s.profile(handle)).and_then(|p| p.avatar).filter(|a| {
            let ok = a.bytes.len() <= MAX_AVATAR_BYTES && a.mime.starts_with("image/");
            if !ok {
                tracing::warn!(handle, bytes = a.bytes.len(), mime = %a.mime, "contact photo left out: not an image or over {MAX_AVATAR_BYTES} bytes");
                report.avatars_refused += 1;
            }
            ok
        });
        let had = self.store.ghost_profile(handle).await?;
        if force || had.as_ref().is_none_or(|h| h.display_name != name) {
            self.hs.set_displayname(user, &name).await?;
            report.renamed += u64::from(!force);
        }
        let had_sha = had.as_ref().and_then(|h| h.avatar_sha256.clone());
        let (sha, mxc) = match photo {
            Some(photo) => {
                let sha = sha256_hex(&photo.bytes);
                let mxc = match self.store.avatar_upload(&sha).await? {
                    Some(mxc) => mxc,
                    None => {
                        let mxc = self.hs.upload(&self.bot(), photo.bytes.clone(), &photo.mime, "avatar").await?;
                        self.store.save_avatar_upload(&sha, &mxc).await?;
                        report.uploads += 1;
                        mxc
                    }
                };
                if force || had_sha.as_deref() != Some(sha.as_str()) {
                    self.hs.set_avatar_url(user, &mxc).await?;
                    report.avatars_set += 1;
                }
                (Some(sha), Some(mxc))
            }
            None => {
                if had_sha.is_some() {
                    self.hs.set_avatar_url(user, "").await?;
                    report.avatars_removed += 1;
                }
                (None, None)
            }
        };
        let row = GhostProfileRow { handle: handle.to_string(), display_name: name, avatar_sha256: sha, avatar_mxc: mxc, updated_ms: now_ms() };
        if had.as_ref().is_none_or(|h| (&h.display_name, &h.avatar_sha256) != (&row.display_name, &row.avatar_sha256)) {
            self.store.save_ghost_profile(&row).await?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_come_from_the_source_else_the_handle() {
        let mut map = HashMap::new();
        map.insert("tel:+15551234567".to_string(), GhostProfile { display_name: "  Sam Rivera ".into(), avatar: None });
        map.insert("mailto:blank@example.org".to_string(), GhostProfile { display_name: "   ".into(), avatar: None });
        map.insert("mailto:long@example.org".to_string(), GhostProfile { display_name: "x".repeat(500), avatar: None });
        let s = StaticProfiles(map);
        assert_eq!(expected_name(Some(&s), "tel:+15551234567"), "Sam Rivera");
        assert_eq!(expected_name(Some(&s), "tel:+15557654321"), "+1 (555) 765-4321", "unknown: the handle");
        assert_eq!(expected_name(Some(&s), "mailto:blank@example.org"), "blank@example.org", "a blank name is no name");
        assert_eq!(expected_name(Some(&s), "mailto:long@example.org").chars().count(), MAX_NAME);
        assert_eq!(expected_name(None, "tel:+15551234567"), "+1 (555) 123-4567");
        assert_eq!(expected_name(Some(&NoProfiles), "tel:+15551234567"), "+1 (555) 123-4567");
    }

    #[test]
    fn sha256_is_hex_of_the_bytes() {
        // FIPS 180-2 test vector for "abc".
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
