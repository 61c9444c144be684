//! Per-zone sync state (the `zones` table), shared by both backends: its SQL, and what a stored
//! row means.
//!
//! Why one module: every statement that writes a zone row differs between the dialects only in
//! the SQL for "now", so each is built here from that one fragment, and the row → [`ZoneState`]
//! rules (which NULLs are allowed, what a bad stop reason or summary list is) exist once.
//!
//! Counters: `pages`, the `last_page_*` stats and `skipped_records` describe the current pass and
//! are reset by `clear_tokens`; `server_count` / `server_summary` describe the server and stay.

use crate::common::RowExt;
use crate::{PageStats, Result, StopReason, StoreError, ZoneState};

const ZONE_COLS: &str = "zone, token, pages, last_page_records, last_page_status, last_page_done, \
     last_page_has_token, last_page_skipped, stop_reason, last_error, skipped_records, server_count, server_summary";

pub(crate) fn select_one() -> String {
    format!("SELECT {ZONE_COLS} FROM zones WHERE zone = $1")
}

pub(crate) fn select_all() -> String {
    format!("SELECT {ZONE_COLS} FROM zones ORDER BY zone")
}

/// The zone row update of `commit_page`. Binds: `$1` zone, `$2` token, `$3` records, `$4` status,
/// `$5` done, `$6` has_token, `$7` skipped.
pub(crate) fn commit_page(now: &str) -> String {
    format!(
        "INSERT INTO zones (zone, token, pages, last_page_records, last_page_status, last_page_done, \
           last_page_has_token, last_page_skipped, skipped_records, stop_reason, last_error, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $7, NULL, NULL, {now}) \
         ON CONFLICT (zone) DO UPDATE SET token = excluded.token, pages = zones.pages + 1, \
           last_page_records = excluded.last_page_records, last_page_status = excluded.last_page_status, \
           last_page_done = excluded.last_page_done, last_page_has_token = excluded.last_page_has_token, \
           last_page_skipped = excluded.last_page_skipped, \
           skipped_records = zones.skipped_records + excluded.last_page_skipped, \
           stop_reason = NULL, last_error = NULL, updated_at = excluded.updated_at"
    )
}

/// Binds: `$1` zone, `$2` server_count, `$3` server_summary (see [`summary_to_db`]).
pub(crate) fn set_server_summary(now: &str) -> String {
    format!(
        "INSERT INTO zones (zone, server_count, server_summary) VALUES ($1, $2, $3) \
         ON CONFLICT (zone) DO UPDATE SET server_count = excluded.server_count, \
           server_summary = excluded.server_summary, updated_at = {now}"
    )
}

/// Binds: `$1` zone, `$2` stop_reason, `$3` last_error.
pub(crate) fn set_stop(now: &str) -> String {
    format!(
        "INSERT INTO zones (zone, stop_reason, last_error) VALUES ($1, $2, $3) \
         ON CONFLICT (zone) DO UPDATE SET stop_reason = excluded.stop_reason, \
           last_error = excluded.last_error, updated_at = {now}"
    )
}

/// Resets every zone's per-pass state; the server's count and summary stay.
pub(crate) fn clear_tokens(now: &str) -> String {
    format!(
        "UPDATE zones SET token = NULL, pages = 0, last_page_records = NULL, last_page_status = NULL, \
           last_page_done = NULL, last_page_has_token = NULL, last_page_skipped = 0, skipped_records = 0, \
           stop_reason = NULL, updated_at = {now}"
    )
}

/// The stored form of a summary list: a JSON array of integers (`[]` for an empty list).
pub(crate) fn summary_to_db(summary: &[i64]) -> String {
    // Written by hand: integers joined by commas are valid JSON, and there is no error case.
    let items: Vec<String> = summary.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

fn summary_from_db(raw: Option<String>) -> Result<Option<Vec<i64>>> {
    raw.map(|raw| serde_json::from_str::<Vec<i64>>(&raw).map_err(|e| StoreError::Corrupt { what: "zones.server_summary", detail: format!("{e}: {raw:.80}") }))
        .transpose()
}

pub(crate) fn zone_state(row: &impl RowExt) -> Result<ZoneState> {
    // last_page_records is the marker: NULL means no page was committed since the last clear;
    // otherwise the other stats must be present too (last_page_skipped is NOT NULL, default 0).
    let last_page = match row.opt_int("last_page_records")? {
        None => None,
        Some(records) => {
            let missing = |col: &'static str| StoreError::Corrupt { what: col, detail: "NULL while last_page_records is set".into() };
            Some(PageStats {
                records,
                skipped: row.int("last_page_skipped")?,
                status: row.opt_int("last_page_status")?.ok_or_else(|| missing("zones.last_page_status"))?,
                done: row.opt_bool("last_page_done")?.ok_or_else(|| missing("zones.last_page_done"))?,
                has_token: row.opt_bool("last_page_has_token")?.ok_or_else(|| missing("zones.last_page_has_token"))?,
            })
        }
    };
    let stop_reason = row
        .opt_text("stop_reason")?
        .map(|s| StopReason::parse(&s).ok_or(StoreError::Corrupt { what: "zones.stop_reason", detail: format!("unknown stop reason {s:?}") }))
        .transpose()?;
    Ok(ZoneState {
        zone: row.text("zone")?,
        token: row.opt_bytes("token")?,
        pages: row.int("pages")?,
        last_page,
        stop_reason,
        last_error: row.opt_text("last_error")?,
        skipped: row.int("skipped_records")?,
        server_count: row.opt_int("server_count")?,
        server_summary: summary_from_db(row.opt_text("server_summary")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_text_round_trips() {
        for list in [vec![], vec![5], vec![5, 2, -1, i64::MIN, i64::MAX]] {
            let text = summary_to_db(&list);
            assert_eq!(summary_from_db(Some(text)).unwrap(), Some(list));
        }
        assert_eq!(summary_to_db(&[5, 2]), "[5,2]");
        assert_eq!(summary_from_db(None).unwrap(), None);
        for bad in ["", "5", "[1.5]", "[\"5\"]", "{}", "[1,]"] {
            let err = summary_from_db(Some(bad.into())).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { what: "zones.server_summary", .. }), "{bad}: {err:?}");
        }
    }
}
