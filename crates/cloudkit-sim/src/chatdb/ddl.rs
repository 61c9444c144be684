//! Apple's DDL for `chat.db` / `sms.db`, in three generations.
//!
//! `schema/macos.sql` is the `.schema` of a real recent macOS chat.db (see `schema/README.md`
//! for its origin and licence). Older generations are derived from it rather than written by
//! hand: Apple only ever *appends* columns (`ALTER TABLE … ADD COLUMN`), so an older table is a
//! prefix of today's, and an older database lacks the tables added since.
//!
//! What the prefixes are based on:
//! - `legacy` (macOS before High Sierra, iOS 10; dates in seconds since 2001): the `sms.db`
//!   schema of iOS 10.2 as published by richinfante/iphonebackuptools (`schemas/messages/iOS10.2.sql`):
//!   `message` ends at `message_summary_info` (60 columns: no CloudKit columns), `chat` at
//!   `successful_query` (16), `attachment` at `hide_attachment` (16), `handle` has no
//!   `person_centric_id`, `chat_message_join` no `message_date`, and none of the `sync_deleted_*`,
//!   `kvtable`, `message_processing_task` tables.
//! - `ios13` (iOS 13 `sms.db`, macOS Catalina): iOS 11.2's schema (same source: CloudKit columns
//!   `ck_sync_state … destination_caller_id`, the `sync_deleted_*` tables, `message_date`) plus the
//!   four columns up to `is_spam`, i.e. the 68 `message` columns `shared/fixtures/README.md` names;
//!   no `thread_originator_guid`/`_part` (replies came with iOS 14, which is where
//!   imessage-exporter's `Message::get` splits its query), no `date_retracted`/`date_edited`
//!   (iOS 16), no `associated_message_emoji`; `chat` up to `last_addressed_sim_id` (23),
//!   `attachment` up to `original_guid` (20), and none of iOS 16's "Recently Deleted" tables.
//!   The `chat` and `attachment` cut-offs between iOS 11 and 14 are a best estimate.
//!
//! Indexes and triggers that name a column or table a generation lacks are left out of it.

use std::collections::{BTreeMap, BTreeSet};

/// `schema/macos.sql`: Apple's DDL, one statement per line.
pub const MACOS_DDL: &str = include_str!("../../schema/macos.sql");

/// Which generation of Messages' database to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// A recent macOS `chat.db` (Apple's DDL as it is).
    Macos,
    /// An iOS 13 `sms.db`: no replies, edits, unsends or emoji tapbacks.
    Ios13,
    /// Before High Sierra: as `Ios13` and no CloudKit columns; dates in seconds since 2001.
    Legacy,
}

/// The statements that make one generation's database.
#[derive(Debug, Clone)]
pub struct Ddl {
    /// `CREATE TABLE` statements, in Apple's order.
    pub tables: Vec<String>,
    /// `CREATE INDEX` and `CREATE TRIGGER` statements (run after the rows are in).
    pub indexes_and_triggers: Vec<String>,
    /// The columns of every table, in order.
    pub columns: BTreeMap<String, Vec<String>>,
}

impl Ddl {
    /// Whether `table` has `column` in this generation.
    pub fn has(&self, table: &str, column: &str) -> bool {
        self.columns.get(table).is_some_and(|c| c.iter().any(|c| c == column))
    }
}

/// How many leading columns of `table` a generation has (`None`: not the table at all).
fn kept_columns(schema: Schema, table: &str) -> Option<usize> {
    const RECENT_TABLES: [&str; 4] =
        ["chat_recoverable_message_join", "unsynced_removed_recoverable_messages", "recoverable_message_part", "scheduled_messages_pending_cloudkit_delete"];
    const CLOUDKIT_TABLES: [&str; 5] = ["sync_deleted_messages", "message_processing_task", "sync_deleted_chats", "sync_deleted_attachments", "kvtable"];
    match schema {
        Schema::Macos => Some(usize::MAX),
        _ if RECENT_TABLES.contains(&table) => None,
        Schema::Legacy if CLOUDKIT_TABLES.contains(&table) => None,
        Schema::Ios13 => Some(match table {
            "message" => 68,
            "chat" => 23,
            "attachment" => 20,
            "handle" => 5,
            _ => usize::MAX,
        }),
        Schema::Legacy => Some(match table {
            "message" => 60,
            "chat" => 16,
            "attachment" => 16,
            "handle" => 5,
            "chat_message_join" => 2,
            _ => usize::MAX,
        }),
    }
}

/// Splits `a, b (c, d), e` at the commas outside parentheses.
fn split_top_level(body: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, ch) in body.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(body[start..].trim());
    out
}

fn is_constraint(item: &str) -> bool {
    let upper = item.to_ascii_uppercase();
    ["UNIQUE", "PRIMARY KEY", "CHECK", "FOREIGN KEY", "CONSTRAINT"].iter().any(|k| upper.starts_with(k))
}

/// Whether `sql` names `word` as a whole identifier.
fn mentions(sql: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    sql.match_indices(word).any(|(i, _)| {
        let before = sql[..i].chars().next_back();
        let after = sql[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Schema::Macos => "macos",
            Schema::Ios13 => "ios13",
            Schema::Legacy => "legacy",
        }
    }

    pub fn parse(name: &str) -> Option<Schema> {
        [Schema::Macos, Schema::Ios13, Schema::Legacy].into_iter().find(|s| s.name() == name)
    }

    /// `message.date` and friends count seconds (not nanoseconds) since 2001-01-01.
    pub fn dates_in_seconds(self) -> bool {
        self == Schema::Legacy
    }

    /// This generation's DDL, derived from Apple's.
    pub fn ddl(self) -> Ddl {
        let mut ddl = Ddl { tables: Vec::new(), indexes_and_triggers: Vec::new(), columns: BTreeMap::new() };
        let mut dropped: BTreeSet<String> = BTreeSet::new();
        let mut later = Vec::new();
        for stmt in MACOS_DDL.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some(rest) = stmt.strip_prefix("CREATE TABLE ") else {
                later.push(stmt);
                continue;
            };
            let (Some(open), Some(close)) = (rest.find('('), rest.rfind(')')) else { continue };
            let name = rest[..open].trim().to_string();
            // SQLite makes `sqlite_sequence` itself for AUTOINCREMENT tables.
            if name == "sqlite_sequence" {
                continue;
            }
            let Some(keep) = kept_columns(self, &name) else {
                dropped.insert(name);
                continue;
            };
            let (mut items, mut columns) = (Vec::new(), Vec::new());
            for item in split_top_level(&rest[open + 1..close]) {
                if is_constraint(item) {
                    items.push(item.to_string());
                    continue;
                }
                let column = item.split_whitespace().next().unwrap_or_default().to_string();
                if columns.len() < keep {
                    columns.push(column);
                    items.push(item.to_string());
                } else {
                    dropped.insert(column);
                }
            }
            ddl.tables.push(format!("CREATE TABLE {name} ({})", items.join(", ")));
            ddl.columns.insert(name, columns);
        }
        ddl.indexes_and_triggers = later.into_iter().filter(|s| !dropped.iter().any(|d| mentions(s, d))).map(|s| s.trim_end_matches(';').to_string()).collect();
        ddl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_have_the_documented_columns() {
        let macos = Schema::Macos.ddl();
        assert_eq!(macos.columns["message"].len(), 91);
        assert_eq!(macos.columns.len(), 18, "19 tables less sqlite_sequence");
        let ios13 = Schema::Ios13.ddl();
        assert_eq!(ios13.columns["message"].len(), 68);
        assert_eq!(ios13.columns["message"].last().map(String::as_str), Some("is_spam"));
        assert!(!ios13.has("message", "thread_originator_guid") && ios13.has("message", "ck_record_id"));
        assert!(!ios13.indexes_and_triggers.iter().any(|s| s.contains("thread_originator_guid")));
        let legacy = Schema::Legacy.ddl();
        assert_eq!(legacy.columns["message"].last().map(String::as_str), Some("message_summary_info"));
        assert!(!legacy.has("chat_message_join", "message_date") && !legacy.has("attachment", "original_guid"));
        assert!(!legacy.columns.contains_key("kvtable"));
        // A constraint naming kept columns stays.
        assert!(legacy.tables.iter().any(|t| t.starts_with("CREATE TABLE chat_message_join") && t.contains("PRIMARY KEY")));
    }

    #[test]
    fn mentions_matches_whole_identifiers() {
        assert!(mentions("ON message(date)", "date"));
        assert!(!mentions("ON message(date_edited)", "date"));
        assert!(!mentions("message_date", "date"));
    }
}
