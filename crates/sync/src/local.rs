//! History from a database on disk (a Mac's `chat.db`, an iPhone's `sms.db` out of a backup)
//! into the store, the way a CloudKit sync puts it there.
//!
//! The records go in through the same [`Store::commit_page`] as CloudKit's pages, under the same
//! zone names (chats, messages, attachments), so delivery, `status` and `verify` do not know
//! which source brought them. A zone's token is the reader's [`Watermark`] (the highest `ROWID`
//! read, the newest edit or unsend seen), committed with each page: a killed import resumes
//! after the last committed page, and a later pass (a newer backup of the same phone, or the
//! same `chat.db` while Messages runs) reads only the rows added since and the rows edited or
//! unsent since. A message stored again with a changed body is what `revised` picks up for a
//! room that already shows it.
//!
//! Each zone's "server count" is the number of rows the database holds, so `status` compares
//! what was read with what is there; rows the reader could not map are failed records with
//! their reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatdb::{ChatDb, Conversations, MessageDecoder, MessagePage, MessageRows, Skipped, Watermark};
use imessage::records::{AttachmentRecord, RecordChange, ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE};
use store::{FailedRecord, FileOutcome, PageCommit, PageStats, StopReason, Store};

use crate::files::{record_outcome, store_file, FileOptions, FilesReport};
use crate::memory;
use crate::{Progress, SyncError, SyncOptions, SyncReport, ZoneReport};

/// Messages read and committed at a time.
pub const LOCAL_PAGE_ROWS: i64 = 2000;
/// Pieces a page of rows is cut into to be decoded side by side (blocking threads).
const DECODE_PIECES: usize = 2;

/// Reads everything new in `db` into the store. `own` is the owner's handle for sent messages
/// whose row names none.
pub async fn sync_chat_db(db: &ChatDb, store: &dyn Store, own: &str, opts: &SyncOptions, progress: &dyn Progress) -> Result<SyncReport, SyncError> {
    // Each zone's token is the watermark as that zone last committed it.
    let mut mark = watermark(store, MESSAGE_ZONE).await?;
    mark.attachment_rowid = watermark(store, ATTACHMENT_ZONE).await?.attachment_rowid;
    // The newest change is taken before any message is read, so an edit made while we read is
    // read again next time. These three each scan the database once: side by side, on the
    // reader's two connections.
    let (counts, newest_change, chats) = tokio::join!(db.counts(), db.newest_change_ns(), db.chats());
    let (counts, newest_change, chats) = (counts?, newest_change?, Arc::new(chats?));
    let mut zones = Vec::new();

    // Chats: every row each time (a handful; names and members change in place).
    store.set_server_summary(CHAT_ZONE, &[counts.chats]).await?;
    progress.zone_started(CHAT_ZONE, Some(counts.chats));
    let changes: Vec<RecordChange> = chats.records.iter().cloned().map(RecordChange::Chat).collect();
    commit(store, CHAT_ZONE, mark, changes, &chats.skipped, true).await?;
    progress.page(CHAT_ZONE, chats.records.len());
    zones.push(finish(store, progress, CHAT_ZONE, 1, chats.records.len() as u64).await?);

    // Messages: those edited or unsent since the last pass, then every new row.
    store.set_server_summary(MESSAGE_ZONE, &[counts.messages]).await?;
    progress.zone_started(MESSAGE_ZONE, Some(counts.messages));
    let mut at = mark;
    let (mut pages, mut read) = (0u64, 0u64);
    if mark.message_rowid > 0 {
        let changed = db.changed_since(&chats, mark.changed_ns, mark.message_rowid, own).await?;
        at.changed_ns = newest_change;
        read += changed.records.len() as u64;
        let n = changed.records.len();
        commit(store, MESSAGE_ZONE, at, changed.records.into_iter().map(RecordChange::Message).collect(), &changed.skipped, false).await?;
        progress.page(MESSAGE_ZONE, n);
        pages += 1;
    }
    let (stop_reason, new_pages, new_read) = new_messages(db, store, &chats, &mut at, newest_change, own, opts, progress).await?;
    pages += new_pages;
    read += new_read;
    store.set_stop(MESSAGE_ZONE, stop_reason, None).await?;
    progress.zone_finished(MESSAGE_ZONE, stop_reason);
    zones.push(ZoneReport { zone: MESSAGE_ZONE.into(), pages, changes: read, stop_reason, error: None, recovered: 0 });

    // Attachments: every new row.
    store.set_server_summary(ATTACHMENT_ZONE, &[counts.attachments]).await?;
    progress.zone_started(ATTACHMENT_ZONE, Some(counts.attachments));
    let (mut pages, mut read) = (0u64, 0u64);
    loop {
        let (rows, skipped) = db.attachments_after(at.attachment_rowid, LOCAL_PAGE_ROWS).await?;
        let Some(last) = rows.last().map(|r| r.rowid).max(skipped.last().map(|s| s.rowid)) else {
            commit(store, ATTACHMENT_ZONE, at, Vec::new(), &[], true).await?;
            break;
        };
        at.attachment_rowid = last;
        read += rows.len() as u64;
        let n = rows.len();
        commit(store, ATTACHMENT_ZONE, at, rows.into_iter().map(|r| RecordChange::Attachment(r.record)).collect(), &skipped, false).await?;
        progress.page(ATTACHMENT_ZONE, n);
        pages += 1;
        if opts.stop.is_stopped() || pages > opts.page_limit {
            break;
        }
    }
    zones.push(finish(store, progress, ATTACHMENT_ZONE, pages, read).await?);
    Ok(SyncReport { zones, full_resync: false, version_saved: false })
}

/// Every message row after `at.message_rowid`, a page at a time, in three stages that overlap:
/// while page N is committed (with its watermark), page N+1 is decoded on blocking threads and
/// page N+2 read. The database's SQLite, the store's SQLite and the decoders each run on threads
/// of their own, so the import goes at the pace of its slowest stage rather than of their sum.
/// Pages still go in one by one, in order, each with its own watermark; a stop or the page limit
/// drops the pages read or decoded ahead (the next pass reads them again). Returns why it
/// stopped, pages committed and messages read.
#[allow(clippy::too_many_arguments)]
async fn new_messages(
    db: &ChatDb,
    store: &dyn Store,
    chats: &Arc<Conversations>,
    at: &mut Watermark,
    newest_change: i64,
    own: &str,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<(StopReason, u64, u64), SyncError> {
    let decoder = db.message_decoder(own);
    let (mut pages, mut read) = (0u64, 0u64);
    let mut rows = db.message_rows_after(at.message_rowid, LOCAL_PAGE_ROWS).await?;
    let mut decoded: Option<MessagePage> = None;
    loop {
        if opts.stop.is_stopped() {
            return Ok((StopReason::Interrupted, pages, read));
        }
        if rows.is_empty() && decoded.is_none() {
            // Nothing more: the watermark takes the newest change only now that all is read.
            at.changed_ns = newest_change.max(at.changed_ns);
            commit(store, MESSAGE_ZONE, *at, Vec::new(), &[], true).await?;
            return Ok((StopReason::ApiDone, pages, read));
        }
        let after = if rows.is_empty() { None } else { Some(rows.last_rowid()) };
        let fetch = async {
            match after {
                Some(after) => db.message_rows_after(after, LOCAL_PAGE_ROWS).await,
                None => Ok(MessageRows::default()),
            }
        };
        let decode = decode_page(&decoder, chats, std::mem::take(&mut rows));
        let committing = decoded.take().map(|page| {
            at.message_rowid = page.last_rowid;
            (*at, page)
        });
        let commit = async {
            let Some((mark, page)) = committing else { return Ok(None) };
            let n = page.records.len();
            commit(store, MESSAGE_ZONE, mark, page.records.into_iter().map(RecordChange::Message).collect(), &page.skipped, false).await.map(|()| Some(n))
        };
        let (fetched, page, committed) = tokio::join!(fetch, decode, commit);
        if let Some(n) = committed? {
            read += n as u64;
            progress.page(MESSAGE_ZONE, n);
            pages += 1;
            if pages % memory::TRIM_EVERY_PAGES == 0 {
                memory::return_freed_memory();
            }
            if pages > opts.page_limit {
                return Ok((StopReason::PageLimit, pages, read));
            }
        }
        rows = fetched?;
        decoded = page?;
    }
}

/// Decodes a page of rows, cut into [`DECODE_PIECES`] decoded side by side on blocking threads
/// (decoding is pure CPU work). None for no rows.
async fn decode_page(decoder: &MessageDecoder, chats: &Arc<Conversations>, rows: MessageRows) -> Result<Option<MessagePage>, SyncError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let tasks: Vec<_> = rows
        .split(DECODE_PIECES)
        .into_iter()
        .map(|piece| {
            let (decoder, chats) = (decoder.clone(), Arc::clone(chats));
            tokio::task::spawn_blocking(move || decoder.decode(&chats, piece))
        })
        .collect();
    let mut page = MessagePage::default();
    for task in tasks {
        page.append(task.await.map_err(|e| SyncError::Decode(e.to_string()))?);
    }
    Ok(Some(page))
}

async fn watermark(store: &dyn Store, zone: &str) -> Result<Watermark, SyncError> {
    Ok(store.zone_state(zone).await?.and_then(|z| z.token).as_deref().and_then(Watermark::from_token).unwrap_or_default())
}

/// One page into the store with its watermark (the same token on every zone: one reader, one
/// place it has reached).
async fn commit(store: &dyn Store, zone: &str, mark: Watermark, changes: Vec<RecordChange>, skipped: &[Skipped], done: bool) -> Result<(), SyncError> {
    let failed: Vec<FailedRecord> = skipped
        .iter()
        .map(|s| FailedRecord { zone: zone.to_string(), record_name: format!("{}:{}", s.table, s.rowid), reason: s.reason.clone(), pending: false })
        .collect();
    let stats = PageStats { records: (changes.len() + failed.len()) as i64, skipped: 0, status: if done { 3 } else { 0 }, done, has_token: true };
    store.commit_page(&PageCommit { zone: zone.to_string(), token: Some(mark.to_token()), stats, changes, failed }).await?;
    Ok(())
}

async fn finish(store: &dyn Store, progress: &dyn Progress, zone: &str, pages: u64, changes: u64) -> Result<ZoneReport, SyncError> {
    store.set_stop(zone, StopReason::ApiDone, None).await?;
    progress.zone_finished(zone, StopReason::ApiDone);
    Ok(ZoneReport { zone: zone.to_string(), pages, changes, stop_reason: StopReason::ApiDone, error: None, recovered: 0 })
}

/// Where a local source keeps attachment files.
#[async_trait::async_trait]
pub trait LocalFiles: Send + Sync {
    /// Writes the attachment's bytes to `part` and returns how many. `Ok(None)`: the source
    /// has no such file (offloaded to iCloud, not copied); `Err`: it could not be read.
    async fn copy_into(&self, attachment: &AttachmentRecord, part: &Path) -> Result<Option<u64>, String>;
    /// Where the file would be, for messages about it.
    fn describe(&self, attachment: &AttachmentRecord) -> String;
}

/// Files beside the database, as a Mac keeps them (`~/Library/Messages/Attachments/…` under the
/// folder that holds `chat.db`).
pub struct FolderFiles {
    pub folder: PathBuf,
}

#[async_trait::async_trait]
impl LocalFiles for FolderFiles {
    async fn copy_into(&self, attachment: &AttachmentRecord, part: &Path) -> Result<Option<u64>, String> {
        let Some(path) = attachment.details.source_path.as_deref().and_then(|p| chatdb::resolve_attachment_path(&self.folder, p)) else {
            return Err(format!("the path {:?} is not inside {}", attachment.details.source_path, self.folder.display()));
        };
        match tokio::fs::copy(&path, part).await {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot copy {}: {e}", path.display())),
        }
    }

    fn describe(&self, attachment: &AttachmentRecord) -> String {
        attachment.details.source_path.clone().unwrap_or_else(|| attachment.guid.clone())
    }
}

/// Copies every attachment file still missing from a local source into the content-addressed
/// folder. A file the source does not have becomes a `failed` row naming it (its message shows
/// a notice saying so), tried again on later passes in case it comes back.
pub async fn copy_local_files(files: &dyn LocalFiles, store: &dyn Store, opts: &FileOptions) -> Result<FilesReport, SyncError> {
    let mut report = FilesReport::default();
    crate::files::prepare_dir(opts).await?;
    let mut after = String::new();
    while !opts.stop.is_stopped() {
        let batch = store.files_to_fetch(&after, opts.max_attempts, opts.batch as i64).await?;
        let Some(last) = batch.last() else { break };
        after = last.record_name.clone();
        for a in batch {
            let outcome = copy_one(files, opts, &a).await;
            record_outcome(store, &mut report, &a.record_name, outcome).await?;
        }
    }
    Ok(report)
}

async fn copy_one(files: &dyn LocalFiles, opts: &FileOptions, a: &AttachmentRecord) -> FileOutcome {
    if a.asset_size.unwrap_or(0) > opts.max_bytes {
        return FileOutcome::TooLarge { bytes: a.asset_size.unwrap_or(0) as i64 };
    }
    let part = opts.dir.join("tmp").join(format!("{}.part", crate::files::sanitize(&a.record_name)));
    let outcome = match files.copy_into(a, &part).await {
        Ok(Some(n)) if n > opts.max_bytes => FileOutcome::TooLarge { bytes: n as i64 },
        Ok(Some(n)) => match store_file(opts, &part, n).await {
            Ok(stored) => stored,
            Err(e) => FileOutcome::Failed { error: e },
        },
        Ok(None) => {
            FileOutcome::Failed { error: format!("missing from the source: {} (not on that device; it may be offloaded to iCloud)", files.describe(a)) }
        }
        Err(e) => FileOutcome::Failed { error: e },
    };
    if !matches!(outcome, FileOutcome::Stored { .. }) {
        let _ = tokio::fs::remove_file(&part).await;
    }
    outcome
}
