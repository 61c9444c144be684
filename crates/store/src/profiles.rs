//! Ghost profiles: the name and avatar last given to each handle's Matrix ghost, and every avatar
//! image uploaded, by SHA-256 (migration 13) — the [`ProfileStore`] job, for both backends (same
//! SQL in both dialects).
//!
//! Why stored: a profile change (a contact renamed, a photo changed or removed) must reach the
//! ghost once, and only then — Synapse rewrites the ghost's membership in every room it is in
//! for each change — so delivery compares what a contact says now with what was applied. And one
//! photo shared by several handles (a contact with two numbers), or set again after a restart,
//! is uploaded once: `avatar_uploads` maps the image's SHA-256 to its `mxc://` URI.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db, Param, RowExt};
use crate::error::Result;

/// What was last applied to a handle's ghost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GhostProfileRow {
    /// The canonical handle (`tel:+15551234567`, `mailto:a@b.example`).
    pub handle: String,
    pub display_name: String,
    /// SHA-256 (hex) of the avatar image, None when the ghost has no avatar.
    pub avatar_sha256: Option<String>,
    /// The avatar's `mxc://` URI, None when the ghost has no avatar.
    pub avatar_mxc: Option<String>,
    /// When it was applied (ms since the Unix epoch).
    pub updated_ms: i64,
}

/// The profiles given to ghosts, and the avatar images uploaded.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The profile last applied to `handle`'s ghost.
    async fn ghost_profile(&self, handle: &str) -> Result<Option<GhostProfileRow>>;
    /// Every ghost profile applied, ordered by handle.
    async fn ghost_profiles(&self) -> Result<Vec<GhostProfileRow>>;
    /// Records the profile applied to a ghost (replacing the one before).
    async fn save_ghost_profile(&self, profile: &GhostProfileRow) -> Result<()>;
    /// The `mxc://` URI of the avatar image with this SHA-256 (hex), if it was uploaded.
    async fn avatar_upload(&self, sha256: &str) -> Result<Option<String>>;
    /// Records an avatar upload; the first one recorded for an image stays.
    async fn save_avatar_upload(&self, sha256: &str, mxc: &str) -> Result<()>;
}

#[async_trait]
impl<D: Db> ProfileStore for D {
    async fn ghost_profile(&self, handle: &str) -> Result<Option<GhostProfileRow>> {
        self.read_row(&format!("{COLUMNS} WHERE handle = $1"), &[Param::Text(handle)]).await?.as_ref().map(ghost_profile).transpose()
    }

    async fn ghost_profiles(&self) -> Result<Vec<GhostProfileRow>> {
        self.read_rows(&format!("{COLUMNS} ORDER BY handle"), &[]).await?.iter().map(ghost_profile).collect()
    }

    async fn save_ghost_profile(&self, p: &GhostProfileRow) -> Result<()> {
        let params = [
            Param::Text(&p.handle),
            Param::Text(&p.display_name),
            Param::OptText(p.avatar_sha256.as_deref()),
            Param::OptText(p.avatar_mxc.as_deref()),
            Param::Int(p.updated_ms),
        ];
        self.write(SAVE_GHOST_PROFILE, &params).await
    }

    async fn avatar_upload(&self, sha256: &str) -> Result<Option<String>> {
        self.read_row(AVATAR_UPLOAD, &[Param::Text(sha256)]).await?.map(|row| row.text("mxc")).transpose()
    }

    async fn save_avatar_upload(&self, sha256: &str, mxc: &str) -> Result<()> {
        self.write(SAVE_AVATAR_UPLOAD, &[Param::Text(sha256), Param::Text(mxc), Param::Int(now_ms())]).await
    }
}

pub(crate) const SQLITE_MIGRATION: &str = "CREATE TABLE ghost_profiles (handle TEXT PRIMARY KEY NOT NULL, display_name TEXT NOT NULL, \
     avatar_sha256 TEXT, avatar_mxc TEXT, updated_ms INTEGER NOT NULL) STRICT;\n\
     CREATE TABLE avatar_uploads (sha256 TEXT PRIMARY KEY NOT NULL, mxc TEXT NOT NULL, uploaded_ms INTEGER NOT NULL) STRICT;";
pub(crate) const POSTGRES_MIGRATION: &str = r#"CREATE TABLE ghost_profiles (handle TEXT COLLATE "C" PRIMARY KEY, display_name TEXT NOT NULL,
     avatar_sha256 TEXT, avatar_mxc TEXT, updated_ms BIGINT NOT NULL);
CREATE TABLE avatar_uploads (sha256 TEXT COLLATE "C" PRIMARY KEY, mxc TEXT NOT NULL, uploaded_ms BIGINT NOT NULL);"#;

const COLUMNS: &str = "SELECT handle, display_name, avatar_sha256, avatar_mxc, updated_ms FROM ghost_profiles";
const SAVE_GHOST_PROFILE: &str = "INSERT INTO ghost_profiles (handle, display_name, avatar_sha256, avatar_mxc, updated_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (handle) DO UPDATE SET display_name = excluded.display_name, \
     avatar_sha256 = excluded.avatar_sha256, avatar_mxc = excluded.avatar_mxc, updated_ms = excluded.updated_ms";
const AVATAR_UPLOAD: &str = "SELECT mxc FROM avatar_uploads WHERE sha256 = $1";
/// The first upload of an image stays (a second one, from a race, is as good and not recorded).
const SAVE_AVATAR_UPLOAD: &str = "INSERT INTO avatar_uploads (sha256, mxc, uploaded_ms) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING";

fn ghost_profile(row: &impl RowExt) -> Result<GhostProfileRow> {
    Ok(GhostProfileRow {
        handle: row.text("handle")?,
        display_name: row.text("display_name")?,
        avatar_sha256: row.opt_text("avatar_sha256")?,
        avatar_mxc: row.opt_text("avatar_mxc")?,
        updated_ms: row.int("updated_ms")?,
    })
}
