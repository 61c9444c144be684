//! Ghost profiles: the name and avatar last given to each handle's Matrix ghost, and every avatar
//! image uploaded, by SHA-256 (migration 13). Shared by both backends (same SQL in both dialects).
//!
//! Why stored: a profile change (a contact renamed, a photo changed or removed) must reach the
//! ghost once, and only then — Synapse rewrites the ghost's membership in every room it is in
//! for each change — so delivery compares what a contact says now with what was applied. And one
//! photo shared by several handles (a contact with two numbers), or set again after a restart,
//! is uploaded once: `avatar_uploads` maps the image's SHA-256 to its `mxc://` URI.

use serde::{Deserialize, Serialize};

use crate::common::RowExt;
use crate::Result;

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

pub(crate) const SQLITE_MIGRATION: &str = "CREATE TABLE ghost_profiles (handle TEXT PRIMARY KEY NOT NULL, display_name TEXT NOT NULL, \
     avatar_sha256 TEXT, avatar_mxc TEXT, updated_ms INTEGER NOT NULL) STRICT;\n\
     CREATE TABLE avatar_uploads (sha256 TEXT PRIMARY KEY NOT NULL, mxc TEXT NOT NULL, uploaded_ms INTEGER NOT NULL) STRICT;";
pub(crate) const POSTGRES_MIGRATION: &str = r#"CREATE TABLE ghost_profiles (handle TEXT COLLATE "C" PRIMARY KEY, display_name TEXT NOT NULL,
     avatar_sha256 TEXT, avatar_mxc TEXT, updated_ms BIGINT NOT NULL);
CREATE TABLE avatar_uploads (sha256 TEXT COLLATE "C" PRIMARY KEY, mxc TEXT NOT NULL, uploaded_ms BIGINT NOT NULL);"#;

const COLUMNS: &str = "SELECT handle, display_name, avatar_sha256, avatar_mxc, updated_ms FROM ghost_profiles";
pub(crate) fn ghost_profile_sql() -> String {
    format!("{COLUMNS} WHERE handle = $1")
}
pub(crate) fn ghost_profiles_sql() -> String {
    format!("{COLUMNS} ORDER BY handle")
}
pub(crate) const SAVE_GHOST_PROFILE: &str = "INSERT INTO ghost_profiles (handle, display_name, avatar_sha256, avatar_mxc, updated_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (handle) DO UPDATE SET display_name = excluded.display_name, \
     avatar_sha256 = excluded.avatar_sha256, avatar_mxc = excluded.avatar_mxc, updated_ms = excluded.updated_ms";
pub(crate) const AVATAR_UPLOAD: &str = "SELECT mxc FROM avatar_uploads WHERE sha256 = $1";
/// The first upload of an image stays (a second one, from a race, is as good and not recorded).
pub(crate) const SAVE_AVATAR_UPLOAD: &str = "INSERT INTO avatar_uploads (sha256, mxc, uploaded_ms) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING";

pub(crate) fn ghost_profile(row: &impl RowExt) -> Result<GhostProfileRow> {
    Ok(GhostProfileRow {
        handle: row.text("handle")?,
        display_name: row.text("display_name")?,
        avatar_sha256: row.opt_text("avatar_sha256")?,
        avatar_mxc: row.opt_text("avatar_mxc")?,
        updated_ms: row.int("updated_ms")?,
    })
}
