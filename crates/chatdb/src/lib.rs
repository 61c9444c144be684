//! A Mac's Messages database (`~/Library/Messages/chat.db`) or an iPhone's `sms.db`, read as the
//! domain's records: the second source of history beside CloudKit, and the one anybody with a
//! Mac or an iPhone backup can reach without an Apple login.
//!
//! Why it is shaped like this:
//! - **Read-only, always.** The file is opened `SQLITE_OPEN_READONLY` with no pragma that writes
//!   (no journal mode change), so the bridge can run beside Messages on a Mac without ever
//!   writing to, checkpointing or locking its database. Queries are short (a page of rows by
//!   `ROWID`), so no read snapshot is held for long; rows committed to the WAL but not yet
//!   checkpointed are seen like any other.
//! - **Probed, not versioned** ([`schema`]): every query is built from the columns the file has.
//! - **The same records as CloudKit** ([`imessage::records`]): the same blobs decoded by the same
//!   code ([`imessage::decode_message_content`]), handles in CloudKit's form
//!   ([`imessage::handle`]), the CloudKit record name where the Mac keeps it (`ck_record_id`), so
//!   a message is one message whichever source brought it, and store, delivery and `verify` need
//!   not know where it came from.
//! - **One conversation, one chat.** Messages keeps a person's iMessage, SMS and RCS threads as
//!   separate `chat` rows and shows them as one conversation; they all map to one `chat_id`
//!   (the person's canonical handle), so they become one room.
//! - **Nothing is dropped silently**: a row that cannot be read is counted in [`Skipped`] with
//!   its reason.

mod attachments;
mod decode;
mod messages;
mod rows;
pub mod schema;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imessage::handle::canonical_handle;
use imessage::records::{apple_date_to_unix_ms, ChatRecord, STYLE_DIRECT, STYLE_GROUP};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

pub use attachments::{resolve_attachment_path, AttachmentRow};
pub use decode::MessageDecoder;
pub use rows::{MessagePage, MessageRows};
pub use schema::Schema;

/// Errors of the chat.db reader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatDbError {
    #[error("{path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("not a Messages database: {0}")]
    NotMessages(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = ChatDbError> = std::result::Result<T, E>;

/// A row that was not turned into a record, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub table: &'static str,
    pub rowid: i64,
    pub reason: String,
}

/// How far a reader has read: the next pass reads newer rows and rows changed since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The highest `message.ROWID` read.
    pub message_rowid: i64,
    /// The newest edit or unsend (`date_edited`, `date_retracted`, ns since 2001) seen.
    pub changed_ns: i64,
    /// The highest `attachment.ROWID` read.
    pub attachment_rowid: i64,
}

impl Watermark {
    /// As kept in the store (a zone's token).
    pub fn to_token(self) -> Vec<u8> {
        serde_json::to_vec(&self).unwrap_or_default()
    }
    /// None for a token that is not one of ours (a CloudKit token: read from the start).
    pub fn from_token(token: &[u8]) -> Option<Watermark> {
        serde_json::from_slice(token).ok()
    }
}

/// The chat rows of a database as chat records, and which record each `chat.ROWID` is.
#[derive(Debug, Clone, Default)]
pub struct Conversations {
    pub records: Vec<ChatRecord>,
    pub skipped: Vec<Skipped>,
    by_rowid: std::collections::BTreeMap<i64, usize>,
}

impl Conversations {
    /// The chat record of a `chat.ROWID`.
    pub fn of_rowid(&self, rowid: i64) -> Option<&ChatRecord> {
        self.by_rowid.get(&rowid).and_then(|&i| self.records.get(i))
    }
}

/// Row counts of the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub chats: i64,
    pub handles: i64,
    pub messages: i64,
    pub attachments: i64,
}

/// How long a read waits for the lock of the program that owns the database (Messages, Contacts).
pub const OWNER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How a database that another program owns (Messages, Contacts) is opened: read-only, no pragma
/// that writes, waiting for the owner's lock (up to [`OWNER_LOCK_WAIT`]) rather than failing. Shared with the `contacts`
/// crate's address book readers.
pub fn read_only_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        // The owner writes while we read: wait for its lock rather than fail.
        .busy_timeout(OWNER_LOCK_WAIT)
        .foreign_keys(false)
}

/// A handle in canonical form: read in its own `country` when the row has one, else in `region`.
pub(crate) fn canonical_in(raw: &str, country: Option<&str>, region: Option<&str>) -> String {
    canonical_handle(raw, country.filter(|c| !c.is_empty()).or(region))
}

/// An open Messages database.
pub struct ChatDb {
    pool: SqlitePool,
    schema: Schema,
    /// The folder that holds the database: `~/Library/Messages/…` attachment paths resolve here.
    folder: PathBuf,
    /// The region numbers without a country code are read in.
    region: Option<String>,
}

impl ChatDb {
    /// Opens `path` read-only and probes its schema. `region` is the default region for phone
    /// numbers written without a country code (None: [`imessage::handle::DEFAULT_REGION`]).
    pub async fn open(path: &Path, region: Option<&str>) -> Result<ChatDb> {
        let open_error = |source| ChatDbError::Open { path: path.display().to_string(), source };
        if !path.is_file() {
            return Err(open_error(sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))));
        }
        let options = read_only_options(path);
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.map_err(open_error)?;
        let schema = Schema::probe(&pool).await.map_err(|e| match e {
            ChatDbError::Database(source) => open_error(source),
            other => other,
        })?;
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(ChatDb { pool, schema, folder, region: region.map(str::to_string) })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The folder holding the database (attachment paths resolve against it).
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub(crate) fn canonical(&self, raw: &str, country: Option<&str>) -> String {
        canonical_in(raw, country, self.region.as_deref())
    }

    pub async fn counts(&self) -> Result<Counts> {
        let count = |table: &'static str| async move {
            if !self.schema.has_table(table) {
                return Ok::<i64, ChatDbError>(0);
            }
            Ok(sqlx::query(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await?.try_get::<i64, _>(0)?)
        };
        Ok(Counts { chats: count("chat").await?, handles: count("handle").await?, messages: count("message").await?, attachments: count("attachment").await? })
    }

    /// The account's own handles, from the database's account fields (`destination_caller_id`,
    /// `account` of sent messages, `account_login` of chats), most used first.
    pub async fn own_handles(&self) -> Result<Vec<String>> {
        let mut sources = Vec::new();
        for column in ["destination_caller_id", "account"] {
            if self.schema.has("message", column) {
                sources.push(format!(
                    "SELECT {column} AS h, COUNT(*) AS n FROM message WHERE is_from_me = 1 AND {column} IS NOT NULL AND {column} != '' GROUP BY {column}"
                ));
            }
        }
        if self.schema.has("chat", "account_login") {
            sources.push(
                "SELECT account_login AS h, COUNT(*) AS n FROM chat WHERE account_login IS NOT NULL AND account_login != '' GROUP BY account_login".into(),
            );
        }
        if sources.is_empty() || !self.schema.has("message", "is_from_me") {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&sources.join(" UNION ALL ")).fetch_all(&self.pool).await?;
        let mut counted: std::collections::BTreeMap<String, i64> = Default::default();
        for r in &rows {
            let (Ok(Some(h)), Ok(n)) = (r.try_get::<Option<String>, _>("h"), r.try_get::<i64, _>("n")) else { continue };
            let handle = self.canonical(&h, None);
            // `account` may be an account GUID rather than an address.
            if handle.starts_with("tel:") || handle.starts_with("mailto:") {
                *counted.entry(handle).or_default() += n;
            }
        }
        let mut handles: Vec<(String, i64)> = counted.into_iter().collect();
        handles.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(handles.into_iter().map(|(h, _)| h).collect())
    }

    /// Every chat row as a chat record, keyed by its conversation (see [`ChatDb::conversation_id`]).
    pub async fn chats(&self) -> Result<Conversations> {
        let s = &self.schema;
        let sql = format!(
            "SELECT c.ROWID AS rowid, c.guid AS guid, c.chat_identifier AS chat_identifier, {}, {}, {}, {}, {}, \
             (SELECT MAX(m.date) FROM chat_message_join j JOIN message m ON m.ROWID = j.message_id WHERE j.chat_id = c.ROWID) AS last_date \
             FROM chat c ORDER BY c.ROWID",
            s.select("chat", "c", "style"),
            s.select("chat", "c", "display_name"),
            s.select("chat", "c", "group_id"),
            s.select("chat", "c", "service_name"),
            s.select("chat", "c", "cloudkit_record_id"),
        );
        let members = self.members().await?;
        let mut out = Conversations::default();
        for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
            let rowid: i64 = row.try_get("rowid")?;
            let (Ok(guid), Ok(Some(identifier))) = (row.try_get::<String, _>("guid"), row.try_get::<Option<String>, _>("chat_identifier")) else {
                out.skipped.push(Skipped { table: "chat", rowid, reason: "no guid or chat_identifier".into() });
                continue;
            };
            let style = self.style(row.try_get::<Option<i64>, _>("style").ok().flatten(), &identifier);
            let participants: Vec<String> = members.iter().filter(|(c, _)| *c == rowid).map(|(_, h)| h.clone()).collect();
            let record_name = row.try_get::<Option<String>, _>("cloudkit_record_id").ok().flatten().filter(|r| !r.is_empty()).unwrap_or_else(|| guid.clone());
            let record = ChatRecord {
                record_name,
                chat_id: self.conversation_id(&identifier, style, participants.first().map(String::as_str)),
                group_id: row.try_get::<Option<String>, _>("group_id").ok().flatten().filter(|g| !g.is_empty()),
                style,
                display_name: row.try_get::<Option<String>, _>("display_name").ok().flatten().filter(|n| !n.is_empty()),
                participants,
                service: row.try_get::<Option<String>, _>("service_name").ok().flatten(),
                modified_ms: row.try_get::<Option<i64>, _>("last_date").ok().flatten().map_or(0, apple_date_to_unix_ms),
            };
            out.by_rowid.insert(rowid, out.records.len());
            out.records.push(record);
        }
        Ok(out)
    }

    /// `chat.style` when the row has one, else guessed from the identifier (`chat…` is a group).
    fn style(&self, style: Option<i64>, identifier: &str) -> i64 {
        match style {
            Some(s @ (STYLE_GROUP | STYLE_DIRECT)) => s,
            _ if identifier.starts_with("chat") => STYLE_GROUP,
            _ => STYLE_DIRECT,
        }
    }

    /// The conversation a chat row belongs to: a group's `chat_identifier` (`chat…`, the same id
    /// CloudKit keeps as `cid`), a DM's canonical handle (its member's, else its identifier's),
    /// so that a person's iMessage, SMS and RCS threads are one conversation.
    pub fn conversation_id(&self, identifier: &str, style: i64, member: Option<&str>) -> String {
        if style == STYLE_GROUP {
            return identifier.to_string();
        }
        // The member's handle was read with its own country (`handle.country`), which the
        // identifier lacks: it names the person best.
        match member {
            Some(m) if m.starts_with("tel:") || m.starts_with("mailto:") => m.to_string(),
            _ => self.canonical(identifier, None),
        }
    }

    /// (chat ROWID, canonical handle) of every chat member.
    async fn members(&self) -> Result<Vec<(i64, String)>> {
        let sql = format!(
            "SELECT j.chat_id AS chat, h.id AS id, {} FROM chat_handle_join j JOIN handle h ON h.ROWID = j.handle_id ORDER BY j.chat_id, h.ROWID",
            self.schema.select("handle", "h", "country")
        );
        let mut out = Vec::new();
        for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
            let (Ok(chat), Ok(id)) = (row.try_get::<i64, _>("chat"), row.try_get::<String, _>("id")) else { continue };
            let country: Option<String> = row.try_get("country").ok().flatten();
            let handle = self.canonical(&id, country.as_deref());
            if !out.iter().any(|(c, h)| *c == chat && *h == handle) {
                out.push((chat, handle));
            }
        }
        Ok(out)
    }

    /// The newest edit or unsend in the database (ns since 2001), for the next watermark.
    pub async fn newest_change_ns(&self) -> Result<i64> {
        let cols: Vec<&str> = ["date_edited", "date_retracted"].into_iter().filter(|c| self.schema.has("message", c)).collect();
        if cols.is_empty() {
            return Ok(0);
        }
        let sql = format!("SELECT {} FROM message", cols.iter().map(|c| format!("COALESCE(MAX({c}), 0)")).collect::<Vec<_>>().join(", "));
        let row = sqlx::query(&sql).fetch_one(&self.pool).await?;
        let mut newest = 0i64;
        for i in 0..cols.len() {
            newest = newest.max(imessage::records::apple_date_to_ns(row.try_get::<i64, _>(i).unwrap_or(0)));
        }
        Ok(newest)
    }

    /// Distinct handles that appear anywhere (members and senders), canonical.
    pub async fn handles(&self) -> Result<BTreeSet<String>> {
        let sql = format!("SELECT id, {} FROM handle h", self.schema.select("handle", "h", "country"));
        let mut out = BTreeSet::new();
        for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
            if let Ok(id) = row.try_get::<String, _>("id") {
                let country: Option<String> = row.try_get("country").ok().flatten();
                out.insert(self.canonical(&id, country.as_deref()));
            }
        }
        Ok(out)
    }

    /// The read-only connections to the database (a benchmark runs the reader's SQL on them bare).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool (the file is released at once).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
