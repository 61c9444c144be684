//! Writes a [`Layout`] as `chat.db` and its `Attachments/` folder.
//!
//! Bulk load, then Messages' shape: tables first, the rows in large transactions with no
//! journal (a failed run leaves a database to throw away, never a half-valid one passed off as
//! whole: the caller gets the error), then Apple's indexes and triggers, and last the switch to
//! WAL, the journal mode Messages keeps its database in. The triggers only fill caches
//! (`cache_roomnames`, `cache_has_attachments`); the rows carry those values already, as
//! Messages' triggers would have set them.

use std::collections::HashMap;
use std::path::Path;

use cloudkit::records::{FLAG_SERVICE, FLAG_SYSTEM};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::ddl::{Ddl, Schema};
use super::rows::{Layout, MessageRow, ACCOUNT_IMESSAGE, ACCOUNT_SMS, OWN_NUMBER};
use super::FolderError;
use crate::account::Kind;

/// Rows per transaction.
const BATCH: u64 = 50_000;
/// `message.account_guid` / `chat.account_id` of the owner's iMessage and SMS accounts.
const ACCOUNT_GUID_IMESSAGE: &str = "6A9F1C2E-3B4D-4E5F-8A7B-1C2D3E4F5A6B";
const ACCOUNT_GUID_SMS: &str = "B1C2D3E4-F5A6-4B7C-9D8E-0F1A2B3C4D5E";

/// What [`write_folder`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderSummary {
    pub handles: u64,
    pub chats: u64,
    pub messages: u64,
    pub attachments: u64,
    /// Attachment files written (all but the missing one; none when files are not written).
    pub files: u64,
    /// The attachment whose file was left out, by transfer GUID.
    pub missing_file: Option<String>,
}

/// One column value.
enum Val {
    I(i64),
    T(Option<String>),
    B(Option<Vec<u8>>),
}

fn text(s: impl Into<String>) -> Val {
    Val::T(Some(s.into()))
}

/// Inserts into the tables of one generation, dropping the columns it lacks. Rows are buffered
/// per table and go in as multi-row `INSERT`s (one prepared statement per table and batch
/// size): a statement per row would spend most of the time in the driver, not in SQLite.
struct Inserter<'d> {
    ddl: &'d Ddl,
    buffers: HashMap<&'static str, Buffer>,
}

#[derive(Default)]
struct Buffer {
    columns: Vec<&'static str>,
    values: Vec<Val>,
    rows: usize,
}

/// Bound values per statement (SQLite allows 32766).
const MAX_VALUES: usize = 8000;

impl Inserter<'_> {
    async fn insert(&mut self, conn: &mut SqliteConnection, table: &'static str, row: Vec<(&'static str, Val)>) -> Result<(), FolderError> {
        let ddl = self.ddl;
        let buffer = self.buffers.entry(table).or_default();
        let (columns, values): (Vec<_>, Vec<_>) = row.into_iter().filter(|(c, _)| ddl.has(table, c)).unzip();
        if buffer.rows == 0 {
            buffer.columns = columns;
        }
        buffer.values.extend(values);
        buffer.rows += 1;
        if buffer.values.len() + buffer.columns.len() > MAX_VALUES {
            self.flush(conn, table).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut SqliteConnection, table: &'static str) -> Result<(), FolderError> {
        let Some(buffer) = self.buffers.get_mut(table).filter(|b| b.rows > 0) else { return Ok(()) };
        let one = format!("({})", vec!["?"; buffer.columns.len()].join(", "));
        let sql = format!("INSERT INTO {table} ({}) VALUES {}", buffer.columns.join(", "), vec![one; buffer.rows].join(", "));
        let mut q = sqlx::query(&sql);
        for v in buffer.values.drain(..) {
            q = match v {
                Val::I(i) => q.bind(i),
                Val::T(s) => q.bind(s),
                Val::B(b) => q.bind(b),
            };
        }
        buffer.rows = 0;
        q.execute(conn).await?;
        Ok(())
    }

    async fn flush_all(&mut self, conn: &mut SqliteConnection) -> Result<(), FolderError> {
        let tables: Vec<&'static str> = self.buffers.keys().copied().collect();
        for table in tables {
            self.flush(conn, table).await?;
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io { path: path.to_path_buf(), source }
}

/// Writes `DIR/chat.db` and `DIR/Attachments/…` for `layout`. Refuses a folder that already
/// holds a `chat.db` (it might be someone's real one).
pub async fn write_folder(layout: &Layout<'_>, dir: &Path) -> Result<FolderSummary, FolderError> {
    write_folder_with(layout, dir, true).await
}

/// [`write_folder`], with `files: false` writing only `chat.db`: every attachment row is there
/// (sizes, paths) but no file is, as in a folder whose attachments were all offloaded. For
/// benchmarks of the reader, where a million messages would otherwise mean 3 GB of files.
pub async fn write_folder_with(layout: &Layout<'_>, dir: &Path, files: bool) -> Result<FolderSummary, FolderError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let db = dir.join("chat.db");
    if db.exists() {
        return Err(FolderError::Exists(db));
    }
    let ddl = layout.schema.ddl();
    let mut conn = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Off)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(false)
        .connect()
        .await?;
    for stmt in &ddl.tables {
        sqlx::query(stmt).execute(&mut conn).await?;
    }
    let mut ins = Inserter { ddl: &ddl, buffers: HashMap::new() };
    let mut summary = FolderSummary::default();
    sqlx::query("BEGIN").execute(&mut conn).await?;
    write_chats(layout, &mut ins, &mut conn, &mut summary).await?;
    let mut attachment_rowid = 0;
    for g in 0..layout.account.history {
        let Some(row) = layout.message(g) else { continue };
        summary.messages += 1;
        let message_rowid = summary.messages as i64;
        let has_attachment = matches!(row.kind, Kind::Attachment | Kind::Sticker);
        let date = layout.apple_time(row.record.ts_ms);
        let chat_rowid = row.chat_rowid;
        ins.insert(&mut conn, "message", message_values(layout, message_rowid, row, has_attachment)).await?;
        let join = vec![("chat_id", Val::I(chat_rowid)), ("message_id", Val::I(message_rowid)), ("message_date", Val::I(date))];
        ins.insert(&mut conn, "chat_message_join", join).await?;
        if has_attachment {
            attachment_rowid += 1;
            write_attachment(layout, files.then_some(dir), g, attachment_rowid, &mut ins, &mut conn, &mut summary).await?;
            let join = vec![("message_id", Val::I(message_rowid)), ("attachment_id", Val::I(attachment_rowid))];
            ins.insert(&mut conn, "message_attachment_join", join).await?;
        }
        if summary.messages % BATCH == 0 {
            ins.flush_all(&mut conn).await?;
            sqlx::query("COMMIT").execute(&mut conn).await?;
            tracing::info!(messages = summary.messages, "written");
            sqlx::query("BEGIN").execute(&mut conn).await?;
        }
    }
    ins.flush_all(&mut conn).await?;
    sqlx::query("COMMIT").execute(&mut conn).await?;
    for stmt in &ddl.indexes_and_triggers {
        sqlx::query(stmt).execute(&mut conn).await?;
    }
    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut conn).await?;
    conn.close().await?;
    Ok(summary)
}

async fn write_chats(layout: &Layout<'_>, ins: &mut Inserter<'_>, conn: &mut SqliteConnection, summary: &mut FolderSummary) -> Result<(), FolderError> {
    for (i, h) in layout.handles.iter().enumerate() {
        let row = vec![
            ("ROWID", Val::I(i as i64 + 1)),
            ("id", text(&h.id)),
            ("country", text("us")),
            ("service", text(h.service)),
            ("uncanonicalized_id", Val::T(h.uncanonicalized_id.clone())),
        ];
        ins.insert(conn, "handle", row).await?;
        summary.handles += 1;
    }
    for c in &layout.chats {
        let sms = c.service == "SMS";
        let row = vec![
            ("ROWID", Val::I(c.rowid)),
            ("guid", text(&c.guid)),
            ("style", Val::I(c.style)),
            ("state", Val::I(3)),
            ("account_id", text(if sms { ACCOUNT_GUID_SMS } else { ACCOUNT_GUID_IMESSAGE })),
            ("chat_identifier", text(&c.chat_identifier)),
            ("service_name", text(c.service)),
            ("room_name", Val::T(c.room_name.clone())),
            ("account_login", text(c.account_login)),
            ("last_addressed_handle", text(OWN_NUMBER)),
            ("display_name", text(&c.display_name)),
            ("group_id", text(&c.group_id)),
            ("successful_query", Val::I(1)),
            ("ck_sync_state", Val::I(i64::from(c.cloudkit_record_id.is_some()))),
            ("cloudkit_record_id", Val::T(c.cloudkit_record_id.clone())),
        ];
        ins.insert(conn, "chat", row).await?;
        for &h in &c.members {
            ins.insert(conn, "chat_handle_join", vec![("chat_id", Val::I(c.rowid)), ("handle_id", Val::I(h))]).await?;
        }
        summary.chats += 1;
    }
    Ok(())
}

/// The `message` columns of `row` (every generation's; the inserter drops what one lacks).
fn message_values(layout: &Layout<'_>, rowid: i64, row: MessageRow, has_attachment: bool) -> Vec<(&'static str, Val)> {
    let MessageRow { record: m, blobs, .. } = row;
    let (from_me, system) = (m.from_me(), m.is_system());
    let time = |ms: Option<i64>| ms.map_or(0, |ms| layout.apple_time(ms));
    // Since macOS 13 Messages keeps the text only in attributedBody.
    let body_text = if layout.schema == Schema::Macos && blobs.attributed_body.is_some() { None } else { m.text };
    let parts = m.content.parts.len() as i64;
    vec![
        ("ROWID", Val::I(rowid)),
        ("guid", Val::T(Some(m.guid))),
        ("text", Val::T(body_text)),
        ("handle_id", Val::I(row.handle_id)),
        ("subject", Val::T(m.subject)),
        ("attributedBody", Val::B(blobs.attributed_body)),
        ("version", Val::I(10)),
        ("service", Val::T(m.service.clone())),
        ("account", text(if row.sms { ACCOUNT_SMS } else { ACCOUNT_IMESSAGE })),
        ("account_guid", text(if row.sms { ACCOUNT_GUID_SMS } else { ACCOUNT_GUID_IMESSAGE })),
        ("date", Val::I(layout.apple_time(m.ts_ms))),
        ("date_read", Val::I(time(m.content.read_ms))),
        ("date_delivered", Val::I(time(m.content.delivered_ms))),
        ("is_delivered", Val::I(i64::from(!system))),
        ("is_finished", Val::I(1)),
        ("is_from_me", Val::I(i64::from(from_me))),
        ("is_read", Val::I(i64::from(m.content.read_ms.is_some()))),
        ("is_system_message", Val::I(i64::from(m.flags & FLAG_SYSTEM != 0))),
        ("is_sent", Val::I(i64::from(from_me))),
        ("is_service_message", Val::I(i64::from(m.flags & FLAG_SERVICE != 0))),
        ("cache_has_attachments", Val::I(i64::from(has_attachment))),
        ("cache_roomnames", Val::T(row.room_name)),
        ("item_type", Val::I(row.item_type)),
        ("other_handle", Val::I(row.other_handle)),
        ("group_title", Val::T(row.group_title)),
        ("group_action_type", Val::I(row.group_action_type)),
        ("associated_message_guid", Val::T(m.associated_guid)),
        ("associated_message_type", Val::I(m.associated_type.map_or(0, i64::from))),
        ("balloon_bundle_id", Val::T(blobs.balloon_bundle_id)),
        ("payload_data", Val::B(blobs.payload_data)),
        ("expressive_send_style_id", Val::T(blobs.effect)),
        ("message_summary_info", Val::B(blobs.message_summary_info)),
        ("ck_sync_state", Val::I(1)),
        ("ck_record_id", Val::T(Some(m.record_name))),
        ("destination_caller_id", text(OWN_NUMBER)),
        ("thread_originator_guid", Val::T(m.content.reply_to)),
        ("thread_originator_part", Val::T(row.thread_originator_part)),
        ("date_retracted", Val::I(time(row.date_retracted_ms))),
        ("date_edited", Val::I(time(row.date_edited_ms))),
        ("part_count", if parts > 0 { Val::I(parts) } else { Val::T(None) }),
        ("associated_message_emoji", Val::T(m.content.associated_emoji)),
    ]
}

async fn write_attachment(
    layout: &Layout<'_>,
    // None: the row only, no file.
    dir: Option<&Path>,
    g: u64,
    rowid: i64,
    ins: &mut Inserter<'_>,
    conn: &mut SqliteConnection,
    summary: &mut FolderSummary,
) -> Result<(), FolderError> {
    let (a, bytes) = layout.attachment(g);
    let d = &a.details;
    let row = vec![
        ("ROWID", Val::I(rowid)),
        ("guid", text(&a.guid)),
        ("created_date", Val::I(d.created_date)),
        ("start_date", Val::I(d.start_date)),
        ("filename", Val::T(a.filename.clone())),
        ("uti", Val::T(d.uti.clone())),
        ("mime_type", Val::T(a.mime_type.clone())),
        ("transfer_state", Val::I(d.transfer_state)),
        ("is_outgoing", Val::I(i64::from(d.is_outgoing))),
        ("transfer_name", Val::T(d.transfer_name.clone())),
        ("total_bytes", Val::I(a.total_bytes)),
        ("is_sticker", Val::I(i64::from(d.is_sticker))),
        ("hide_attachment", Val::I(i64::from(d.hide_attachment))),
        ("ck_sync_state", Val::I(1)),
        ("ck_record_id", text(&a.record_name)),
        ("original_guid", text(&a.guid)),
    ];
    ins.insert(conn, "attachment", row).await?;
    summary.attachments += 1;
    if layout.missing == Some(g) {
        summary.missing_file = Some(a.guid);
        return Ok(());
    }
    let Some(dir) = dir else { return Ok(()) };
    let relative = a.filename.as_deref().and_then(Layout::relative_path).ok_or_else(|| FolderError::Path(a.guid.clone()))?;
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, bytes).map_err(io(&path))?;
    summary.files += 1;
    Ok(())
}
