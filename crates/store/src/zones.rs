//! Sync state: per-zone tokens and counters (the `zones` table), records that failed to decrypt
//! or parse, and the version of the last full pass — the [`SyncStore`] job, for both backends.
//!
//! Why one module: every statement that writes a zone row differs between the dialects only in
//! the SQL for "now", so each is built here from that one fragment, and the row → [`ZoneState`]
//! rules (which NULLs are allowed, what a bad stop reason or summary list is) exist once. The one
//! write that differs, a page's records, is each backend's [`PageWriter`].
//!
//! Counters: `pages`, the `last_page_*` stats and `skipped_records` describe the current pass and
//! are reset by `clear_tokens`; `server_count` / `server_summary` describe the server and stay.

use std::collections::HashMap;

use async_trait::async_trait;
use imessage::records::{RecordChange, ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE};
use serde::{Deserialize, Serialize};

use crate::db::{Db, Param, RowExt};
use crate::error::{Result, StoreError};

/// Why a zone's sync loop stopped. Persisted as its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The server said there are no more pages (`status == 3`).
    ApiDone,
    /// The server returned the same continuation token without reporting completion.
    TokenUnchanged,
    /// Too many consecutive failures; the token is kept so the next run resumes.
    ErrorBudget,
    /// The server asked for a full reset (token expired); tokens were cleared.
    ResetNeeded,
    /// The zone does not exist on the server.
    ZoneNotFound,
    /// The page limit safety bound was reached.
    PageLimit,
    /// The run was cancelled (Ctrl-C).
    Interrupted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::ApiDone => "api_done",
            StopReason::TokenUnchanged => "token_unchanged",
            StopReason::ErrorBudget => "error_budget",
            StopReason::ResetNeeded => "reset_needed",
            StopReason::ZoneNotFound => "zone_not_found",
            StopReason::PageLimit => "page_limit",
            StopReason::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "api_done" => StopReason::ApiDone,
            "token_unchanged" => StopReason::TokenUnchanged,
            "error_budget" => StopReason::ErrorBudget,
            "reset_needed" => StopReason::ResetNeeded,
            "zone_not_found" => StopReason::ZoneNotFound,
            "page_limit" => StopReason::PageLimit,
            "interrupted" => StopReason::Interrupted,
            _ => return None,
        })
    }
}

/// Statistics of one fetched page, kept for the last page of each zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PageStats {
    /// Changes on the page (records and deletions).
    pub records: i64,
    /// Records of the page of a record type the bridge does not read: neither stored nor failed.
    #[serde(default)]
    pub skipped: i64,
    /// The `status` field of the response.
    pub status: i64,
    /// `status == 3`.
    pub done: bool,
    /// The response carried a continuation token.
    pub has_token: bool,
}

/// A record that could not be decrypted or parsed. `pending` ones are retried (re-fetched after a
/// key refresh); the rest are final and reported as undecryptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRecord {
    pub zone: String,
    pub record_name: String,
    /// Human-readable cause, e.g. `pcs key 1a2b3c4d missing`.
    pub reason: String,
    pub pending: bool,
}

/// Everything one fetched page changes, written in one transaction by [`Store::commit_page`].
#[derive(Debug, Clone, Default)]
pub struct PageCommit {
    pub zone: String,
    /// The continuation token returned with this page (the one to send next).
    pub token: Option<Vec<u8>>,
    pub stats: PageStats,
    /// Changes in server order. Upserts replace an existing row with the same `record_name`;
    /// deletions remove the record (and any failed-record entry for it).
    pub changes: Vec<RecordChange>,
    /// Records of this page that failed to decrypt/parse. Upserted by (zone, record_name).
    pub failed: Vec<FailedRecord>,
}

/// Per-zone sync state as shown by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ZoneState {
    pub zone: String,
    pub token: Option<Vec<u8>>,
    /// Pages committed since the token was last cleared.
    pub pages: i64,
    pub last_page: Option<PageStats>,
    pub stop_reason: Option<StopReason>,
    pub last_error: Option<String>,
    /// Records skipped (of a type the bridge does not read) since the token was last cleared:
    /// the sum of [`PageStats::skipped`] over those pages.
    #[serde(default)]
    pub skipped: i64,
    /// Count reported by the server at the start of the last sync: the first element of
    /// [`server_summary`](Self::server_summary), None if that list was empty or never fetched.
    pub server_count: Option<i64>,
    /// The server's whole `MessagesSummary` answer, a list of integers of which only the first
    /// (the count) is understood. None if it was never stored (databases written before schema
    /// version 5 may have a `server_count` without it).
    #[serde(default)]
    pub server_summary: Option<Vec<i64>>,
}

/// The sync engine's job: pages in, with their tokens, in one transaction each; zone state out.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Writes a page: its changes, its failed records, the zone's new token, `pages += 1`, the
    /// page stats, `skipped += stats.skipped`, and clears `stop_reason`/`last_error` — all in one
    /// transaction.
    async fn commit_page(&self, page: &PageCommit) -> Result<()>;

    /// Stores records recovered by a re-fetch (upsert) and removes their failed-record entries;
    /// updates the remaining `failed` entries (e.g. marks them final). One transaction.
    async fn resolve_failed(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()>;

    /// Failed records of a zone (pending and final).
    async fn failed_records(&self, zone: &str) -> Result<Vec<FailedRecord>>;

    /// State of one zone, None if it was never synced.
    async fn zone_state(&self, zone: &str) -> Result<Option<ZoneState>>;
    /// State of every zone ever synced, ordered by zone name.
    async fn zone_states(&self) -> Result<Vec<ZoneState>>;
    /// Records why the zone's loop stopped, and the last error if any (creates the zone row).
    async fn set_stop(&self, zone: &str, reason: StopReason, last_error: Option<&str>) -> Result<()>;
    /// Records the server's `MessagesSummary` answer for the zone (creates the zone row):
    /// `server_count` becomes its first element (None if it is empty), `server_summary` all of it.
    async fn set_server_summary(&self, zone: &str, summary: &[i64]) -> Result<()>;
    /// Clears every zone's token, page counter, last page, skipped total and stop reason (full
    /// re-sync). Records, failed records and the server summary stay.
    async fn clear_tokens(&self) -> Result<()>;

    /// Number of stored records of the zone's record type
    /// (chat records, messages, or attachments — by zone name).
    async fn stored_count(&self, zone: &str) -> Result<i64>;

    /// The sync version of the last completed full pass, None if never completed.
    async fn sync_version(&self) -> Result<Option<i64>>;
    async fn set_sync_version(&self, version: i64) -> Result<()>;
}

/// A backend's own way of writing a page's records: batch statements differ between the
/// dialects, and SQLite appends messages to its ingest log. Each method is one transaction.
#[async_trait]
pub(crate) trait PageWriter: Send + Sync {
    async fn write_page(&self, page: &PageCommit) -> Result<()>;
    async fn write_recovered(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()>;
}

#[async_trait]
impl<D: Db + PageWriter> SyncStore for D {
    async fn commit_page(&self, page: &PageCommit) -> Result<()> {
        self.write_page(page).await
    }

    async fn resolve_failed(&self, zone: &str, recovered: &[RecordChange], still_failed: &[FailedRecord]) -> Result<()> {
        self.write_recovered(zone, recovered, still_failed).await
    }

    async fn failed_records(&self, zone: &str) -> Result<Vec<FailedRecord>> {
        self.read_rows(FAILED, &[Param::Text(zone)]).await?.iter().map(failed_record).collect()
    }

    async fn zone_state(&self, zone: &str) -> Result<Option<ZoneState>> {
        self.read_row(&select_one(), &[Param::Text(zone)]).await?.as_ref().map(zone_state).transpose()
    }

    async fn zone_states(&self) -> Result<Vec<ZoneState>> {
        self.read_rows(&select_all(), &[]).await?.iter().map(zone_state).collect()
    }

    async fn set_stop(&self, zone: &str, reason: StopReason, last_error: Option<&str>) -> Result<()> {
        self.write(&set_stop(D::NOW), &[Param::Text(zone), Param::Text(reason.as_str()), Param::OptText(last_error)]).await
    }

    async fn set_server_summary(&self, zone: &str, summary: &[i64]) -> Result<()> {
        let text = summary_to_db(summary);
        self.write(&set_server_summary(D::NOW), &[Param::Text(zone), Param::OptInt(summary.first().copied()), Param::Text(&text)]).await
    }

    async fn clear_tokens(&self) -> Result<()> {
        self.write(&clear_tokens(D::NOW), &[]).await
    }

    async fn stored_count(&self, zone: &str) -> Result<i64> {
        let Some(table) = table_for_zone(zone) else { return Ok(0) };
        if table == "messages" {
            self.settle_messages().await?;
        }
        match self.read_row(&format!("SELECT COUNT(*) AS n FROM {table}"), &[]).await? {
            Some(row) => row.int("n"),
            None => Ok(0),
        }
    }

    async fn sync_version(&self) -> Result<Option<i64>> {
        let row = self.read_row(SYNC_VERSION, &[]).await?;
        sync_version(row.map(|r| r.text("value")).transpose()?)
    }

    async fn set_sync_version(&self, version: i64) -> Result<()> {
        self.write(SET_SYNC_VERSION, &[Param::Text(&version.to_string())]).await
    }
}

const FAILED: &str = "SELECT zone, record_name, reason, pending FROM failed_records WHERE zone = $1 ORDER BY record_name";
const SYNC_VERSION: &str = "SELECT value FROM meta WHERE key = 'sync_version'";
const SET_SYNC_VERSION: &str = "INSERT INTO meta (key, value) VALUES ('sync_version', $1) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The table holding a zone's records, None for a zone the store does not keep records of.
fn table_for_zone(zone: &str) -> Option<&'static str> {
    match zone {
        CHAT_ZONE => Some("chat_records"),
        MESSAGE_ZONE => Some("messages"),
        ATTACHMENT_ZONE => Some("attachments"),
        _ => None,
    }
}

/// Failed records deduplicated by (zone, record_name), last one wins, in first-seen order.
pub(crate) fn dedup_failed(failed: &[FailedRecord]) -> Vec<&FailedRecord> {
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(failed.len());
    let mut out: Vec<&FailedRecord> = Vec::with_capacity(failed.len());
    for f in failed {
        match index.get(&(f.zone.as_str(), f.record_name.as_str())) {
            Some(&i) => out[i] = f,
            None => {
                index.insert((&f.zone, &f.record_name), out.len());
                out.push(f);
            }
        }
    }
    out
}

fn failed_record(row: &impl RowExt) -> Result<FailedRecord> {
    Ok(FailedRecord { zone: row.text("zone")?, record_name: row.text("record_name")?, reason: row.text("reason")?, pending: row.boolean("pending")? })
}

fn sync_version(value: Option<String>) -> Result<Option<i64>> {
    value.map(|v| v.parse::<i64>().map_err(|e| StoreError::Corrupt { what: "meta.sync_version", detail: format!("{v:?}: {e}") })).transpose()
}

const ZONE_COLS: &str = "zone, token, pages, last_page_records, last_page_status, last_page_done, \
     last_page_has_token, last_page_skipped, stop_reason, last_error, skipped_records, server_count, server_summary";

fn select_one() -> String {
    format!("SELECT {ZONE_COLS} FROM zones WHERE zone = $1")
}

fn select_all() -> String {
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
fn set_server_summary(now: &str) -> String {
    format!(
        "INSERT INTO zones (zone, server_count, server_summary) VALUES ($1, $2, $3) \
         ON CONFLICT (zone) DO UPDATE SET server_count = excluded.server_count, \
           server_summary = excluded.server_summary, updated_at = {now}"
    )
}

/// Binds: `$1` zone, `$2` stop_reason, `$3` last_error.
fn set_stop(now: &str) -> String {
    format!(
        "INSERT INTO zones (zone, stop_reason, last_error) VALUES ($1, $2, $3) \
         ON CONFLICT (zone) DO UPDATE SET stop_reason = excluded.stop_reason, \
           last_error = excluded.last_error, updated_at = {now}"
    )
}

/// Resets every zone's per-pass state; the server's count and summary stay.
fn clear_tokens(now: &str) -> String {
    format!(
        "UPDATE zones SET token = NULL, pages = 0, last_page_records = NULL, last_page_status = NULL, \
           last_page_done = NULL, last_page_has_token = NULL, last_page_skipped = 0, skipped_records = 0, \
           stop_reason = NULL, updated_at = {now}"
    )
}

/// The stored form of a summary list: a JSON array of integers (`[]` for an empty list).
fn summary_to_db(summary: &[i64]) -> String {
    // Written by hand: integers joined by commas are valid JSON, and there is no error case.
    let items: Vec<String> = summary.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

fn summary_from_db(raw: Option<String>) -> Result<Option<Vec<i64>>> {
    raw.map(|raw| serde_json::from_str::<Vec<i64>>(&raw).map_err(|e| StoreError::Corrupt { what: "zones.server_summary", detail: format!("{e}: {raw:.80}") }))
        .transpose()
}

fn zone_state(row: &impl RowExt) -> Result<ZoneState> {
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

    #[test]
    fn failed_dedup_keeps_last() {
        let f = |name: &str, pending| FailedRecord { zone: "z".into(), record_name: name.into(), reason: String::new(), pending };
        let list = vec![f("a", true), f("b", true), f("a", false)];
        let got: Vec<_> = dedup_failed(&list).into_iter().map(|f| (f.record_name.as_str(), f.pending)).collect();
        assert_eq!(got, vec![("a", false), ("b", true)]);
    }
}
