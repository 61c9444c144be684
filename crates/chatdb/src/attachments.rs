//! `attachment` rows as the domain's [`AttachmentRecord`]s, and where each one's file is.
//!
//! Messages names files by their path on the device that wrote the database
//! (`~/Library/Messages/Attachments/ab/11/GUID/IMG_0001.HEIC` on a Mac,
//! `/var/mobile/Library/SMS/Attachments/…` or `~/Library/SMS/…` on an iPhone). Those paths are
//! read relative to the folder that holds the database, so a `Messages` folder copied to a
//! server works where it lands. The path is kept in the record's details
//! ([`AttachmentDetails::source_path`]), so the file pass finds it without this crate.

use std::path::{Component, Path, PathBuf};

use imessage::records::{AttachmentDetails, AttachmentRecord};
use sqlx::Row;

use crate::{ChatDb, Result, Skipped};

/// One attachment row, read.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub rowid: i64,
    pub record: AttachmentRecord,
}

/// Where the path of a file in a Messages database points inside the folder holding the
/// database, None for a path that leaves it (`..`) or names no file.
pub fn resolve_attachment_path(folder: &Path, path: &str) -> Option<PathBuf> {
    // Everything after the last `Library/Messages/` or `Library/SMS/` is relative to the
    // database's folder; other paths are taken as relative to it already.
    let relative = ["Library/Messages/", "Library/SMS/"]
        .iter()
        .filter_map(|marker| path.rfind(marker).map(|i| &path[i + marker.len()..]))
        .next()
        .unwrap_or_else(|| path.trim_start_matches("~/").trim_start_matches('/'));
    let relative = Path::new(relative);
    if relative.as_os_str().is_empty() || relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(folder.join(relative))
}

impl ChatDb {
    /// The SQL of [`ChatDb::attachments_after`] (binds `after`, then `limit`); None when the
    /// database has no `attachment` table. Public so that a benchmark can run it bare.
    pub fn attachment_page_sql(&self) -> Option<String> {
        if !self.schema.has_table("attachment") {
            return None;
        }
        let s = &self.schema;
        let cols: Vec<String> = [
            "filename",
            "mime_type",
            "uti",
            "transfer_name",
            "total_bytes",
            "is_sticker",
            "hide_attachment",
            "is_outgoing",
            "transfer_state",
            "created_date",
            "start_date",
            "ck_record_id",
        ]
        .iter()
        .map(|c| s.select("attachment", "a", c))
        .collect();
        Some(format!("SELECT a.ROWID AS rowid, a.guid AS guid, {} FROM attachment a WHERE a.ROWID > ? ORDER BY a.ROWID LIMIT ?", cols.join(", ")))
    }

    /// Attachments with `ROWID > after`, in ROWID order, at most `limit`.
    pub async fn attachments_after(&self, after: i64, limit: i64) -> Result<(Vec<AttachmentRow>, Vec<Skipped>)> {
        let Some(sql) = self.attachment_page_sql() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        for row in sqlx::query(&sql).bind(after).bind(limit).fetch_all(self.pool()).await? {
            let rowid: i64 = row.try_get("rowid")?;
            let Ok(guid) = row.try_get::<String, _>("guid") else {
                skipped.push(Skipped { table: "attachment", rowid, reason: "no guid".into() });
                continue;
            };
            let text = |name: &str| row.try_get::<Option<String>, _>(name).ok().flatten().filter(|s| !s.is_empty());
            let int = |name: &str| row.try_get::<Option<i64>, _>(name).ok().flatten().unwrap_or(0);
            let path = text("filename");
            let transfer_name = text("transfer_name");
            let total_bytes = int("total_bytes");
            let filename = transfer_name.clone().or_else(|| path.as_deref().and_then(|p| p.rsplit('/').next()).map(str::to_string));
            rows.push(AttachmentRow {
                rowid,
                record: AttachmentRecord {
                    record_name: text("ck_record_id").unwrap_or_else(|| guid.clone()),
                    guid,
                    mime_type: text("mime_type"),
                    filename,
                    total_bytes,
                    // A file to fetch, wherever it is: the file pass finds it by its path.
                    asset_size: path.as_ref().map(|_| total_bytes.max(0) as u64),
                    details: AttachmentDetails {
                        uti: text("uti"),
                        transfer_name,
                        is_sticker: int("is_sticker") != 0,
                        hide_attachment: int("hide_attachment") != 0,
                        is_outgoing: int("is_outgoing") != 0,
                        transfer_state: int("transfer_state"),
                        created_date: int("created_date"),
                        start_date: int("start_date"),
                        source_path: path,
                        ..AttachmentDetails::default()
                    },
                },
            });
        }
        Ok((rows, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_folder() {
        let folder = Path::new("/srv/Messages");
        assert_eq!(resolve_attachment_path(folder, "~/Library/Messages/Attachments/ab/1/G/IMG.jpeg"), Some(folder.join("Attachments/ab/1/G/IMG.jpeg")));
        assert_eq!(resolve_attachment_path(folder, "/Users/sam/Library/Messages/Attachments/x.png"), Some(folder.join("Attachments/x.png")));
        assert_eq!(resolve_attachment_path(folder, "/var/mobile/Library/SMS/Attachments/x.png"), Some(folder.join("Attachments/x.png")));
        assert_eq!(resolve_attachment_path(folder, "~/Library/Messages/../../etc/passwd"), None);
        assert_eq!(resolve_attachment_path(folder, "~/Library/Messages/"), None);
    }
}
