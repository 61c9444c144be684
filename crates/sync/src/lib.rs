//! The sync engine: pulls every record of the Messages zones out of CloudKit into the store.
//!
//! Per zone the loop is: warm up the zone's record keys, then fetch `record/sync` pages from the
//! stored continuation token until the server reports `status == 3`. Each page is decoded and
//! committed with its token in one transaction, so a process killed at any moment resumes from
//! the last committed page and re-applies nothing twice. A failed page is retried with the same
//! token (never skipped); after [`SyncOptions::error_budget`] consecutive failures the zone stops
//! with `error_budget`, its token intact. Records whose PCS key is missing trigger a key refresh;
//! those still undecryptable are kept as *failed records*, re-fetched after the zone finishes, and
//! reported — never dropped silently.
//!
//! A zone runs as a three-stage pipeline joined by small bounded channels: a fetcher that asks
//! for the next page as soon as the previous one arrived (the token is all it needs), a decoder
//! (PCS + record parsing, owning the key ring), and the committer. While page N is committed,
//! N+1 is decoded and N+2 is on its way, so the server, the CPU-bound decoding and the store's
//! writes overlap instead of taking turns. Decoding (on the blocking pool) and the store's
//! worker threads run at a lower CPU priority: when cores are short, the request for the next
//! page — the critical path — goes first.

use std::sync::Arc;

pub mod files;
pub mod local;
mod memory;
mod options;
mod priority;
mod retry;
mod status;
mod stop;
pub use files::{fetch_files, FileOptions, FilesReport};
pub use local::{copy_local_files, sync_chat_db, FolderFiles, LocalFiles, LOCAL_PAGE_ROWS};
pub use options::SyncOptions;
use priority::{background_priority, background_priority_for_store_threads};
use retry::{with_retries, Stop};
pub use status::{status, FailedRecordInfo, Status, UndecodableBlob, ZoneStatus};
pub use stop::StopSignal;

use cloudkit::records::{RecordChange, ATTACHMENT_RECORD_TYPE, CHAT_RECORD_TYPE, MESSAGE_RECORD_TYPE, ZONES};
use cloudkit::{Client, KeyRing, RawChangesPage};
use serde::Serialize;
use store::{FailedRecord, PageCommit, PageStats, StopReason, Store};

/// Bump to force a full re-sync of every zone (e.g. after a decoder fix that changes stored data).
pub const SYNC_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    CloudKit(#[from] cloudkit::Error),
    /// The attachment folder cannot be written.
    #[error("attachment folder: {0}")]
    Files(String),
    /// A Messages database on disk could not be read.
    #[error(transparent)]
    ChatDb(#[from] chatdb::ChatDbError),
    /// A decoding thread failed (a bug: decoding itself turns bad rows into skipped ones).
    #[error("decoding a page failed: {0}")]
    Decode(String),
}

/// Progress callbacks (the CLI draws bars with them; tests and quiet runs ignore them).
pub trait Progress: Send + Sync {
    fn zone_started(&self, _zone: &str, _server_count: Option<i64>) {}
    fn page(&self, _zone: &str, _changes: usize) {}
    fn zone_finished(&self, _zone: &str, _reason: StopReason) {}
}

/// Progress that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Outcome of one zone in one run.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneReport {
    pub zone: String,
    pub pages: u64,
    pub changes: u64,
    pub stop_reason: StopReason,
    pub error: Option<String>,
    pub recovered: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub zones: Vec<ZoneReport>,
    /// The run started from scratch because the stored sync version was older.
    pub full_resync: bool,
    /// The sync version was saved at the end of this run.
    pub version_saved: bool,
}

impl SyncReport {
    pub fn all_done(&self) -> bool {
        self.zones.iter().all(|z| z.stop_reason == StopReason::ApiDone)
    }
}

fn record_type(zone: &str) -> &'static str {
    match zone {
        cloudkit::records::CHAT_ZONE => CHAT_RECORD_TYPE,
        cloudkit::records::MESSAGE_ZONE => MESSAGE_RECORD_TYPE,
        _ => ATTACHMENT_RECORD_TYPE,
    }
}

/// Syncs every Messages zone (concurrently) and records server counts.
pub async fn sync_all(client: &Client, store: Arc<dyn Store>, opts: &SyncOptions, progress: Arc<dyn Progress>) -> Result<SyncReport, SyncError> {
    let stored_version = store.sync_version().await?;
    background_priority_for_store_threads();
    let full_resync = matches!(stored_version, Some(v) if v < SYNC_VERSION);
    if full_resync {
        tracing::info!(from = ?stored_version, to = SYNC_VERSION, "sync version changed: full re-sync");
        store.clear_tokens().await?;
    }
    let mut tasks = Vec::new();
    for zone in ZONES {
        let (client, store, opts, progress) = (client.clone(), store.clone(), opts.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let summary = match client.server_summary(zone, record_type(zone)).await {
                Ok(summary) => summary,
                Err(e) => {
                    tracing::warn!(zone, "server count unavailable: {e}");
                    None
                }
            };
            if let Some(summary) = &summary {
                store.set_server_summary(zone, summary).await?;
            }
            progress.zone_started(zone, summary.as_ref().and_then(|s| s.first().copied()));
            let report = ZoneSync { client: &client, store: store.as_ref(), opts: &opts, progress: progress.as_ref(), zone }.run().await?;
            progress.zone_finished(zone, report.stop_reason);
            Ok::<_, SyncError>(report)
        }));
    }
    let mut zones = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => zones.push(r?),
            Err(e) => return Err(SyncError::CloudKit(cloudkit::Error::Frame(format!("zone task failed: {e}")))),
        }
    }
    let stored_any = {
        let mut n = 0;
        for z in ZONES {
            n += store.stored_count(z).await?;
        }
        n > 0
    };
    let version_saved = zones.iter().all(|z| z.stop_reason == StopReason::ApiDone) && stored_any && stored_version != Some(SYNC_VERSION);
    if version_saved {
        store.set_sync_version(SYNC_VERSION).await?;
    }
    Ok(SyncReport { zones, full_resync, version_saved })
}

struct ZoneSync<'a> {
    client: &'a Client,
    store: &'a dyn Store,
    opts: &'a SyncOptions,
    progress: &'a dyn Progress,
    zone: &'static str,
}

/// Pages a zone's pipeline holds between stages (fetched but not decoded, decoded but not
/// committed).
const PIPELINE_DEPTH: usize = 2;

/// What the committer does after committing a page, decided by the fetcher from the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPage {
    Continue,
    /// `status == 3`: the zone is complete.
    Done,
    /// The server returned the token it was given without saying it is done.
    TokenUnchanged,
    /// [`SyncOptions::page_limit`] pages fetched.
    PageLimit,
}

struct AbortOnDrop<const N: usize>([tokio::task::AbortHandle; N]);

impl<const N: usize> Drop for AbortOnDrop<N> {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

/// Pipeline stage 1: requests pages from `token` on, each as soon as the previous one arrived,
/// until the zone is done, the token stops moving, the page limit, or a stop (sent on). A token
/// the server rejects is dropped once and the zone started over.
async fn fetch_pages(
    client: Client,
    opts: SyncOptions,
    zone: &'static str,
    mut token: Option<Vec<u8>>,
    pages: tokio::sync::mpsc::Sender<Result<(RawChangesPage, AfterPage), Stop>>,
) {
    let (mut fetched, mut resets) = (0u64, 0u32);
    loop {
        let page = match with_retries(&opts, "record/sync", || client.retrieve_changes_raw(zone, token.as_deref())).await {
            Ok(page) => page,
            Err(stop) if stop.reason == StopReason::ResetNeeded && resets == 0 => {
                tracing::warn!(zone, "sync token rejected by the server: starting the zone over");
                resets += 1;
                token = None;
                continue;
            }
            Err(stop) => {
                let _ = pages.send(Err(stop)).await;
                return;
            }
        };
        fetched += 1;
        let after = if page.done() {
            AfterPage::Done
        } else if page.token.is_some() && page.token == token {
            AfterPage::TokenUnchanged
        } else if fetched >= opts.page_limit {
            AfterPage::PageLimit
        } else {
            AfterPage::Continue
        };
        token = page.token.clone();
        if pages.send(Ok((page, after))).await.is_err() || after != AfterPage::Continue {
            return;
        }
    }
}

/// Pipeline stage 2: decodes pages into commits (the CPU part on a low-priority blocking
/// thread), refreshing the zone keys when a page has records under a key the ring lacks.
/// Returns the ring, for the failed-record re-fetch (None if a decoding thread failed).
async fn decode_pages(
    client: Client,
    zone: &'static str,
    mut ring: KeyRing,
    mut pages: tokio::sync::mpsc::Receiver<Result<(RawChangesPage, AfterPage), Stop>>,
    commits: tokio::sync::mpsc::Sender<Result<(PageCommit, AfterPage), Stop>>,
) -> Option<KeyRing> {
    while let Some(next) = pages.recv().await {
        let decoded = match next {
            Ok((page, after)) => {
                // The CPU-heavy pass runs on a blocking thread that yields to the fetch path.
                let limits = *client.limits();
                let (back, first) = match tokio::task::spawn_blocking(move || {
                    background_priority();
                    let first = first_pass(zone, &ring, &page, &limits);
                    (ring, (page, first))
                })
                .await
                {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(zone, "decoder thread failed: {e}");
                        return None;
                    }
                };
                ring = back;
                let (page, first) = first;
                Ok((decode_page(&client, zone, &mut ring, &page, first).await, after))
            }
            Err(stop) => Err(stop),
        };
        if commits.send(decoded).await.is_err() {
            break;
        }
    }
    Some(ring)
}

/// What decoding a page with the keys at hand gave.
#[derive(Default)]
struct FirstPass {
    /// Decoded changes with their page positions.
    changes: Vec<(usize, RecordChange)>,
    /// Final failures.
    failed: Vec<FailedRecord>,
    /// Changes (with positions) whose record key the ring lacks.
    missing_key: Vec<(usize, cloudkit::proto::RecordChange)>,
    /// Records of a type the bridge does not read (skipped and counted, as Apple's clients do).
    skipped: i64,
}

/// Parses and decodes every change of a page with the keys at hand (pure CPU work). A change that
/// does not parse is a final failure of its own; the rest of the page is unaffected.
fn first_pass(zone: &'static str, ring: &KeyRing, page: &RawChangesPage, limits: &cloudkit::Limits) -> FirstPass {
    let mut pass = FirstPass { changes: Vec::with_capacity(page.changes.len()), ..FirstPass::default() };
    for i in 0..page.changes.len() {
        let change = match page.change(i) {
            Ok(change) => change,
            Err(e) => {
                pass.failed.push(unparsable_record(zone, page, i, &e));
                continue;
            }
        };
        match cloudkit::codec::decode_change_with(zone, &change, ring, limits) {
            Ok(c) => pass.changes.push((i, c)),
            Err(cloudkit::Error::PcsKeyMissing(_)) => pass.missing_key.push((i, change)),
            Err(e @ cloudkit::Error::UnknownRecordType { .. }) => {
                tracing::debug!(zone, "skipped: {e}");
                pass.skipped += 1;
            }
            Err(e) => pass.failed.push(failed_record(zone, &change, &e, false)),
        }
    }
    pass
}

/// Names of failed-record entries for changes that are not valid protobuf start with this (no
/// CloudKit record name does): their real name is unknown, so the server cannot be asked again.
const UNPARSABLE_PREFIX: &str = "<unparsable change ";

/// The failed-record entry of a change that is not valid protobuf. Its name is unknown, so the
/// entry is named after its place: a digest of the token that ends its page, and its position.
/// The same damaged page gives the same names on every run, so each change is counted once
/// (two damaged changes with the same bytes are still two entries).
fn unparsable_record(zone: &str, page: &RawChangesPage, i: usize, e: &cloudkit::Error) -> FailedRecord {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(page.token.as_deref().unwrap_or_default());
    let record_name = format!("{UNPARSABLE_PREFIX}{i} of page {}>", cloudkit::pcs::hex(&digest[..8]));
    tracing::warn!(zone, record = %record_name, "change not parsable: {e}");
    FailedRecord { zone: zone.to_string(), record_name, reason: e.to_string(), pending: false }
}

/// Finishes decoding a page after [`first_pass`]: records whose key was missing get one key
/// refresh; what still fails is returned as failed records (pending when a key was missing,
/// final for malformed records).
async fn decode_page(client: &Client, zone: &'static str, ring: &mut KeyRing, page: &RawChangesPage, first: FirstPass) -> PageCommit {
    let FirstPass { mut changes, mut failed, missing_key, skipped } = first;
    if !missing_key.is_empty() {
        match client.zone_keys(zone).await {
            Ok(keys) => ring.extend_from(&keys),
            Err(e) => tracing::warn!(zone, "key refresh failed: {e}"),
        }
        for (i, change) in missing_key {
            match cloudkit::codec::decode_change_with(zone, &change, ring, client.limits()) {
                Ok(c) => changes.push((i, c)),
                Err(e) => failed.push(failed_record(zone, &change, &e, matches!(e, cloudkit::Error::PcsKeyMissing(_)))),
            }
        }
        changes.sort_by_key(|(i, _)| *i);
    }
    PageCommit {
        zone: zone.to_string(),
        token: page.token.clone(),
        stats: PageStats { records: page.changes.len() as i64, status: page.status as i64, done: page.done(), has_token: page.token.is_some(), skipped },
        changes: changes.into_iter().map(|(_, c)| c).collect(),
        failed,
    }
}

fn failed_record(zone: &str, change: &cloudkit::proto::RecordChange, e: &cloudkit::Error, pending: bool) -> FailedRecord {
    let record_name = change
        .identifier
        .as_ref()
        .and_then(|i| i.record_name())
        .or_else(|| change.record.as_ref().and_then(|r| r.record_name()))
        .unwrap_or("<unnamed>")
        .to_string();
    tracing::debug!(zone, record = %record_name, "record not decodable: {e}");
    FailedRecord { zone: zone.to_string(), record_name, reason: e.to_string(), pending }
}

impl ZoneSync<'_> {
    async fn fetch_keys(&self) -> Result<KeyRing, Stop> {
        let opts = SyncOptions { error_budget: self.opts.key_retries + 1, ..self.opts.clone() };
        with_retries(&opts, "zone keys", || self.client.zone_keys(self.zone)).await
    }

    async fn stop(&self, mut report: ZoneReport, stop: Stop) -> Result<ZoneReport, SyncError> {
        if stop.reason == StopReason::Interrupted {
            return self.interrupted(report).await;
        }
        self.store.set_stop(self.zone, stop.reason, Some(&stop.error.to_string())).await?;
        report.stop_reason = stop.reason;
        report.error = Some(stop.error.to_string());
        Ok(report)
    }

    async fn run(&self) -> Result<ZoneReport, SyncError> {
        let zone = self.zone;
        let mut report = ZoneReport { zone: zone.into(), pages: 0, changes: 0, stop_reason: StopReason::ApiDone, error: None, recovered: 0 };
        let ring = match self.fetch_keys().await {
            Ok(r) => r,
            Err(stop) => return self.stop(report, stop).await,
        };
        let token = self.store.zone_state(zone).await?.and_then(|s| s.token);
        let (page_tx, page_rx) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
        let (commit_tx, mut commit_rx) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
        let fetcher = tokio::spawn(fetch_pages(self.client.clone(), self.opts.clone(), zone, token, page_tx));
        let decoder = tokio::spawn(decode_pages(self.client.clone(), zone, ring, page_rx, commit_tx));
        let _abort = AbortOnDrop([fetcher.abort_handle(), decoder.abort_handle()]);
        let mut reached_done = false;
        loop {
            // A stop is looked at between commits only: the page being committed lands whole.
            let next = tokio::select! {
                biased;
                _ = self.opts.stop.stopped() => return self.interrupted(report).await,
                next = commit_rx.recv() => next,
            };
            let Some(next) = next else { break };
            let (commit, after) = match next {
                Ok(decoded) => decoded,
                Err(stop) => return self.stop(report, stop).await,
            };
            self.store.commit_page(&commit).await?;
            report.pages += 1;
            report.changes += commit.stats.records as u64;
            self.progress.page(zone, commit.stats.records as usize);
            let reason = match after {
                AfterPage::Continue => continue,
                AfterPage::Done => {
                    reached_done = true;
                    break;
                }
                AfterPage::TokenUnchanged => StopReason::TokenUnchanged,
                AfterPage::PageLimit => StopReason::PageLimit,
            };
            report.stop_reason = reason;
            self.store.set_stop(zone, reason, None).await?;
            return Ok(report);
        }
        let pipeline_failed = |what: String| Err(SyncError::CloudKit(cloudkit::Error::Frame(what)));
        let mut ring = match decoder.await {
            Ok(Some(ring)) => ring,
            Ok(None) => return pipeline_failed("decoder thread failed".into()),
            Err(e) => return pipeline_failed(format!("decoder task failed: {e}")),
        };
        if !matches!(fetcher.await, Ok(())) {
            return pipeline_failed("fetcher task failed".into());
        }
        if !reached_done {
            // The pipeline closed without the last page: never report such a zone as complete.
            return pipeline_failed("page pipeline ended before the zone's last page".into());
        }
        report.recovered = self.refetch_failed(&mut ring).await?;
        if self.opts.stop.is_stopped() {
            return self.interrupted(report).await;
        }
        self.store.set_stop(zone, StopReason::ApiDone, None).await?;
        Ok(report)
    }

    /// Stops the zone with `interrupted`: its token stays at the last committed page.
    async fn interrupted(&self, mut report: ZoneReport) -> Result<ZoneReport, SyncError> {
        tracing::info!(zone = self.zone, pages = report.pages, "sync interrupted; the next run resumes from the last committed page");
        let why = "stopped by a signal before the zone's last page";
        self.store.set_stop(self.zone, StopReason::Interrupted, Some(why)).await?;
        report.stop_reason = StopReason::Interrupted;
        report.error = Some(why.to_string());
        Ok(report)
    }

    /// Re-fetches every failed record of the zone after a key refresh, in up to
    /// `1 + key_retries` rounds while records are still waiting for a key. Returns how many were
    /// recovered; the rest are marked final (undecryptable) with their latest reason. Changes that
    /// did not parse are left out: their name is not one the server knows, and its "not found"
    /// would read as a deletion.
    async fn refetch_failed(&self, ring: &mut KeyRing) -> Result<u64, SyncError> {
        let failed = self.store.failed_records(self.zone).await?;
        let mut remaining: Vec<FailedRecord> = failed.into_iter().filter(|f| !f.record_name.starts_with(UNPARSABLE_PREFIX)).collect();
        let mut recovered_total = 0;
        for round in 0..=self.opts.key_retries {
            if remaining.is_empty() {
                break;
            }
            if round > 0 && !self.opts.stop.sleep(self.opts.backoff_base).await {
                return Ok(recovered_total);
            }
            match self.fetch_keys().await {
                Ok(fresh) => ring.extend_from(&fresh),
                Err(stop) => tracing::warn!(zone = self.zone, "key refresh before re-fetch failed: {}", stop.error),
            }
            let mut retry = Vec::new();
            for batch in remaining.chunks(self.opts.refetch_batch.max(1)) {
                if self.opts.stop.is_stopped() {
                    return Ok(recovered_total);
                }
                let (recovered, still) = self.refetch_batch(batch, ring).await;
                recovered_total += recovered.len() as u64;
                self.store.resolve_failed(self.zone, &recovered, &still).await?;
                retry.extend(still.into_iter().filter(|f| f.pending));
            }
            remaining = retry;
        }
        // Still without a key after every round: final for this pass (undecryptable, listed in
        // `status`; not waited for by delivery). The next pass re-fetches them all again.
        if !remaining.is_empty() {
            let given_up: Vec<FailedRecord> = remaining.into_iter().map(|f| FailedRecord { pending: false, ..f }).collect();
            self.store.resolve_failed(self.zone, &[], &given_up).await?;
        }
        if recovered_total > 0 {
            tracing::info!(zone = self.zone, recovered = recovered_total, "recovered records after key refresh");
        }
        Ok(recovered_total)
    }

    /// Re-fetches and decodes one batch. Still-failing records come back `pending` when another
    /// round may help (key still missing, or the request failed) and final otherwise.
    async fn refetch_batch(&self, batch: &[FailedRecord], ring: &KeyRing) -> (Vec<RecordChange>, Vec<FailedRecord>) {
        let names: Vec<String> = batch.iter().map(|f| f.record_name.clone()).collect();
        let fetched = with_retries(self.opts, "record/retrieve", || async {
            let results = self.client.retrieve_records(self.zone, &names).await?;
            // An operation-level transient failure fails the batch, so it is retried as a whole.
            match results.iter().find_map(|r| r.as_ref().err().filter(|e| e.is_retryable())) {
                Some(e) => Err(cloudkit::Error::Frame(format!("record/retrieve operation failed: {e}"))),
                None => Ok(results),
            }
        })
        .await;
        let results = match fetched {
            Ok(r) => r,
            Err(stop) => {
                let still = batch.iter().map(|f| FailedRecord { reason: stop.error.to_string(), pending: true, ..f.clone() }).collect();
                return (Vec::new(), still);
            }
        };
        let mut recovered = Vec::new();
        let mut still = Vec::new();
        for (f, result) in batch.iter().zip(results) {
            let outcome = result.and_then(|record| match record {
                None => Ok(RecordChange::Deleted { record_name: f.record_name.clone() }),
                Some(r) => cloudkit::codec::decode_record_with(self.zone, &r, ring, self.client.limits()),
            });
            match outcome {
                Ok(c) => recovered.push(c),
                Err(e) => {
                    let pending = matches!(e, cloudkit::Error::PcsKeyMissing(_));
                    still.push(FailedRecord { reason: e.to_string(), pending, ..f.clone() })
                }
            }
        }
        (recovered, still)
    }
}
