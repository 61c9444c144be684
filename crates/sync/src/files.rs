//! Attachment files: after the records, every attachment's `lqa` asset is fetched, decrypted and
//! kept beside the database, named by its SHA-256.
//!
//! Why after the records and apart from them: the records are the history and must not wait for
//! gigabytes of photos; a file that fails to download must never hold back, or lose, its
//! message. So the record sync stores `attachment` records as they come, and this pass walks the
//! attachments whose file is still missing ([`Store::files_to_fetch`]), a batch at a time:
//! one `record/retrieve` with assets per batch (fresh download authorizations, which expire),
//! then the downloads, several at once. Each download streams into `tmp/{record}.part`; an
//! interrupted one resumes from the chunks already on disk (MMCS verifies each chunk, so a
//! prefix of whole chunks is trustworthy). A finished file is hashed, renamed to
//! `{sha[..2]}/{sha}` and only then recorded, so a kill at any point leaves either no row (the
//! download runs again) or a row whose file exists.
//!
//! Outcomes are counted, never fatal: over the size cap → `too_large`; the server refuses →
//! `refused`; anything else → `failed`, retried in this pass (resuming) and again in later ones
//! until [`FileOptions::max_attempts`].
//!
//! Part files hold decrypted attachments, so none is kept longer than it can help: a download
//! that ends for good (refused, too large, a failure not worth retrying) deletes its part, and
//! each pass starts by sweeping parts untouched for a day ([`STALE_PART`]), or every part when no
//! file is left to fetch (nothing would resume them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudkit::mmcs::{AssetKeys, DownloadLimits};
use cloudkit::proto::{self, mmcs::AuthorizeGetResponse};
use cloudkit::records::{AttachmentRecord, ATTACHMENT_ZONE};
use cloudkit::{Client, KeyRing};
use futures_util::{stream, StreamExt};
use prost::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};
use store::{FileOutcome, Store};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::SyncError;

/// How attachment files are fetched and kept.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// The content-addressed folder (`{sha[..2]}/{sha}`, partial downloads under `tmp/`).
    pub dir: PathBuf,
    /// Files larger than this are not fetched (`too_large`).
    pub max_bytes: u64,
    /// Downloads at once.
    pub concurrency: usize,
    /// Attachments per `record/retrieve`.
    pub batch: usize,
    /// Attempts over all passes before a file is left as `failed`.
    pub max_attempts: i64,
    /// Tries of one download within a pass (each resumes the last).
    pub tries: u32,
    pub backoff: Duration,
    /// A stop asked for from outside: the batch being downloaded finishes, no new one starts.
    pub stop: crate::StopSignal,
}

/// Files larger than this are not fetched, unless the config says otherwise (the bridge's
/// `attachments.max_bytes` default is this).
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Downloads at once, unless the config says otherwise (`attachments.concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The wait before the second try of a download within a pass.
const DOWNLOAD_BACKOFF: Duration = Duration::from_millis(200);

impl FileOptions {
    pub fn new(dir: PathBuf) -> Self {
        FileOptions {
            dir,
            max_bytes: DEFAULT_MAX_BYTES,
            concurrency: DEFAULT_CONCURRENCY,
            batch: 32,
            max_attempts: 5,
            tries: 4,
            backoff: DOWNLOAD_BACKOFF,
            stop: crate::StopSignal::default(),
        }
    }

    /// Where the file with this SHA-256 lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256.get(..2).unwrap_or("00")).join(sha256)
    }
}

/// A part file not written to for this long belongs to no running download.
pub const STALE_PART: Duration = Duration::from_secs(24 * 60 * 60);

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FilesReport {
    pub stored: u64,
    pub bytes: u64,
    pub failed: u64,
    pub too_large: u64,
    pub refused: u64,
}

/// Fetches every attachment file still missing. Errors only for the store or when the
/// attachment zone's keys cannot be had at all.
pub async fn fetch_files(client: &Client, store: &dyn Store, opts: &FileOptions) -> Result<FilesReport, SyncError> {
    let mut report = FilesReport::default();
    let first = store.files_to_fetch("", opts.max_attempts, 1).await?;
    sweep_parts(&opts.dir.join("tmp"), if first.is_empty() { Duration::ZERO } else { STALE_PART }).await;
    if first.is_empty() {
        return Ok(report);
    }
    prepare_dir(opts).await?;
    let ring = client.zone_keys(ATTACHMENT_ZONE).await?;
    let mut after = String::new();
    while !opts.stop.is_stopped() {
        let batch = store.files_to_fetch(&after, opts.max_attempts, opts.batch as i64).await?;
        let Some(last) = batch.last() else { break };
        after = last.record_name.clone();
        let (large, wanted): (Vec<_>, Vec<_>) = batch.into_iter().partition(|a| a.asset_size.unwrap_or(0) > opts.max_bytes);
        for a in large {
            record_outcome(store, &mut report, &a.record_name, FileOutcome::TooLarge { bytes: a.asset_size.unwrap_or(0) as i64 }).await?;
        }
        // One record/retrieve for the batch gives every file a fresh authorization; a retry
        // fetches its own again (authorizations expire).
        let names: Vec<String> = wanted.iter().map(|a| a.record_name.clone()).collect();
        let prefetched: Vec<Option<Fetched>> = match client.retrieve_with_assets(ATTACHMENT_ZONE, &names).await {
            Ok(replies) if replies.len() == names.len() => replies.into_iter().map(Some).collect(),
            Ok(_) => names.iter().map(|_| None).collect(),
            Err(e) => {
                tracing::debug!("batch authorization failed, fetching one by one: {e}");
                names.iter().map(|_| None).collect()
            }
        };
        let outcomes: Vec<(String, FileOutcome)> = stream::iter(wanted.into_iter().zip(prefetched))
            .map(|(a, first)| {
                let ring = &ring;
                async move {
                    let outcome = fetch_one(client, ring, opts, &a, first).await;
                    (a.record_name, outcome)
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        for (name, outcome) in outcomes {
            record_outcome(store, &mut report, &name, outcome).await?;
        }
    }
    Ok(report)
}

pub(crate) async fn record_outcome(store: &dyn Store, report: &mut FilesReport, name: &str, outcome: FileOutcome) -> Result<(), SyncError> {
    match &outcome {
        FileOutcome::Stored { bytes, .. } => {
            report.stored += 1;
            report.bytes += *bytes as u64;
        }
        FileOutcome::Failed { error } => {
            tracing::warn!(record = name, "attachment file not fetched: {error}");
            report.failed += 1;
        }
        FileOutcome::TooLarge { bytes } => {
            tracing::info!(record = name, bytes, "attachment file over the size cap, not fetched");
            report.too_large += 1;
        }
        FileOutcome::Refused { error } => {
            tracing::warn!(record = name, "attachment download refused: {error}");
            report.refused += 1;
        }
    }
    store.record_file(name, &outcome).await?;
    Ok(())
}

/// A record fetched with its assets' authorizations (None: the server has no such record).
type Fetched = cloudkit::Result<Option<cloudkit::client::RecordWithAssets>>;

/// One attachment: its authorization (`first`, from the batch's fetch, or its own), then
/// download tries, each resuming the last with a fresh authorization.
async fn fetch_one(client: &Client, ring: &KeyRing, opts: &FileOptions, a: &AttachmentRecord, mut first: Option<Fetched>) -> FileOutcome {
    let mut last = String::new();
    for attempt in 0..opts.tries.max(1) {
        if attempt > 0 && !opts.stop.sleep(opts.backoff.saturating_mul(1 << attempt.min(8))).await {
            break;
        }
        match try_fetch(client, ring, opts, a, first.take()).await {
            Ok(outcome) | Err(Attempt::Final(outcome)) => return ended(&part_path(opts, &a.record_name), outcome).await,
            Err(Attempt::Retry(e)) => last = e,
        }
    }
    // Worth another pass: the part stays for it to resume (or for the sweep).
    FileOutcome::Failed { error: last }
}

/// Where the download of `record_name` collects its bytes.
fn part_path(opts: &FileOptions, record_name: &str) -> PathBuf {
    opts.dir.join("tmp").join(format!("{}.part", sanitize(record_name)))
}

/// A download's final outcome: unless stored (its part was moved), its part is deleted, since
/// no later pass resumes it.
async fn ended(part: &Path, outcome: FileOutcome) -> FileOutcome {
    if !matches!(outcome, FileOutcome::Stored { .. }) {
        match tokio::fs::remove_file(part).await {
            Ok(()) => tracing::debug!(part = %part.display(), "removed the part file of a download that ended"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(part = %part.display(), "cannot remove a part file: {e}"),
        }
    }
    outcome
}

/// Removes `*.part` files in `tmp` last written more than `older_than` ago; how many. A missing
/// folder has none; a file that cannot be looked at or removed is logged and left.
pub(crate) async fn sweep_parts(tmp: &Path, older_than: Duration) -> usize {
    let mut entries = match tokio::fs::read_dir(tmp).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(dir = %tmp.display(), "cannot look for stale part files: {e}");
            return 0;
        }
    };
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "part") {
            continue;
        }
        let age = entry.metadata().await.and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default());
        match age {
            Ok(age) if age >= older_than => match tokio::fs::remove_file(&path).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(part = %path.display(), "cannot remove a stale part file: {e}"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(part = %path.display(), "cannot read a part file's age: {e}"),
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %tmp.display(), "removed part files of downloads that will not resume");
    }
    removed
}

enum Attempt {
    /// Worth another try (transport, a broken-off container).
    Retry(String),
    Final(FileOutcome),
}

async fn try_fetch(client: &Client, ring: &KeyRing, opts: &FileOptions, a: &AttachmentRecord, fetched: Option<Fetched>) -> Result<FileOutcome, Attempt> {
    let retry = |e: cloudkit::Error| {
        if e.is_retryable() || matches!(e, cloudkit::Error::Mmcs { step: "container", .. }) {
            Attempt::Retry(e.to_string())
        } else {
            Attempt::Final(FileOutcome::Failed { error: e.to_string() })
        }
    };
    let fetched = match fetched {
        Some(f) => Some(f),
        None => client.retrieve_with_assets(ATTACHMENT_ZONE, std::slice::from_ref(&a.record_name)).await.map_err(retry)?.into_iter().next(),
    };
    let (record, bundled) = match fetched {
        Some(Ok(Some(found))) => found,
        Some(Ok(None)) => return Ok(FileOutcome::Refused { error: "the attachment record no longer exists".into() }),
        Some(Err(e)) => return Err(retry(e)),
        None => return Err(Attempt::Retry("no reply for the record".into())),
    };
    let Some((asset, ford_key)) = cloudkit::codec::asset_keys(ATTACHMENT_ZONE, &record, "lqa", ring).map_err(retry)? else {
        return Ok(FileOutcome::Refused { error: "the record has no lqa asset".into() });
    };
    let authorization = authorization_for(&asset, &bundled).map_err(|e| Attempt::Final(FileOutcome::Refused { error: e }))?;
    let size = asset.size.unwrap_or(0);
    if size > opts.max_bytes {
        return Ok(FileOutcome::TooLarge { bytes: size as i64 });
    }
    let keys = AssetKeys {
        signature: asset.signature.clone().unwrap_or_default(),
        reference_signature: asset.reference_signature.clone().unwrap_or_default(),
        ford_key,
        size,
    };
    let limits = DownloadLimits { max_file_bytes: opts.max_bytes, max_ford_bytes: 1 << 20 };
    let part = part_path(opts, &a.record_name);
    let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    // Resume from the last whole chunk on disk: cut the partial file there, append the rest.
    let cut = chunk_boundary(&authorization, &keys.signature, have);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&part)
        .await
        .map_err(|e| Attempt::Retry(format!("cannot open {}: {e}", part.display())))?;
    file.set_len(cut).await.map_err(|e| Attempt::Retry(e.to_string()))?;
    file.seek(std::io::SeekFrom::Start(cut)).await.map_err(|e| Attempt::Retry(e.to_string()))?;
    if cut > 0 {
        tracing::debug!(record = %a.record_name, from = cut, "resuming a download");
    }
    match cloudkit::mmcs::download(client.content_http(), client.user_agent(), &authorization, &keys, &limits, cut, &mut file).await {
        Ok((restart_at, _)) if restart_at == cut => {}
        Ok((restart_at, _)) => {
            // The chunks' plaintext lengths differ from their stored lengths: start afresh.
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(Attempt::Retry(format!("resumed at {restart_at}, expected {cut}: downloading again from the start")));
        }
        Err(cloudkit::Error::Mmcs { step: "authorization", detail }) => return Ok(FileOutcome::Refused { error: detail }),
        Err(e) => return Err(retry(e)),
    }
    file.flush().await.map_err(|e| Attempt::Retry(e.to_string()))?;
    file.sync_all().await.map_err(|e| Attempt::Retry(e.to_string()))?;
    drop(file);
    store_file(opts, &part, size).await.map_err(Attempt::Retry)
}

/// Hashes a finished download (reading it back in pieces), checks its length and moves it to its
/// content address.
pub(crate) async fn store_file(opts: &FileOptions, part: &Path, size: u64) -> Result<FileOutcome, String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(part).await.map_err(|e| format!("cannot read back {}: {e}", part.display()))?;
    let (mut hasher, mut buf, mut len) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        let n = file.read(&mut buf).await.map_err(|e| format!("cannot read back {}: {e}", part.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    drop(file);
    if len != size {
        let _ = tokio::fs::remove_file(part).await;
        return Err(format!("downloaded {len} bytes, the asset has {size}"));
    }
    let sha: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let target = opts.path_of(&sha);
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    tokio::fs::rename(part, &target).await.map_err(|e| format!("cannot move to {}: {e}", target.display()))?;
    Ok(FileOutcome::Stored { sha256: sha, bytes: len as i64 })
}

/// The largest offset at or below `have` where one of the file's chunks starts, by the chunks'
/// stored lengths (equal to their plaintext lengths for MMCS V2, whose cipher does not pad).
fn chunk_boundary(authorization: &AuthorizeGetResponse, signature: &[u8], have: u64) -> u64 {
    let Some(files) = authorization.f1.as_ref() else { return 0 };
    let Some(reference) = files.references.iter().find(|r| r.file_checksum == signature) else { return 0 };
    let mut at = 0u64;
    for c in &reference.chunk_references {
        let size =
            files.containers.get(c.container_index as usize).and_then(|k| k.chunks.get(c.chunk_index as usize)).and_then(|w| w.meta.as_ref()).map(|m| m.size);
        match size {
            Some(size) if at + size <= have => at += size,
            _ => break,
        }
    }
    at
}

/// The bundled authorization an asset names, decoded.
fn authorization_for(asset: &proto::Asset, bundled: &[proto::AssetGetResponse]) -> Result<AuthorizeGetResponse, String> {
    let id = asset.bundled_request_id.as_deref().ok_or("the asset names no bundled download authorization")?;
    let response = bundled.iter().find(|b| b.asset_id.as_deref() == Some(id)).ok_or_else(|| format!("the reply bundles no authorization {id}"))?;
    let body = response.body.as_deref().ok_or_else(|| format!("authorization {id} has no body"))?;
    AuthorizeGetResponse::decode(body).map_err(|e| format!("authorization {id} does not decode: {e}"))
}

/// A record name as a file name (CloudKit names are ASCII; anything else becomes `_`).
pub(crate) fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Creates the attachment folder (and its `tmp/`), readable by the bridge's user alone.
pub(crate) async fn prepare_dir(opts: &FileOptions) -> Result<(), SyncError> {
    tokio::fs::create_dir_all(opts.dir.join("tmp")).await.map_err(|e| io_error(&opts.dir, e))?;
    // People's photos and voice messages: only the bridge's user may look into the folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&opts.dir, std::fs::Permissions::from_mode(0o700)).await.map_err(|e| io_error(&opts.dir, e))?;
    }
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> SyncError {
    SyncError::Files(format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
