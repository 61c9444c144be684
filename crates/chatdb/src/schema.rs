//! What the database at hand has: its tables and their columns, read when it is opened.
//!
//! Apple has added columns to `message`, `chat` and `attachment` with almost every macOS and iOS
//! release (`thread_originator_guid` with iOS 14, `date_edited`/`date_retracted` and
//! `message_summary_info` with iOS 16, `associated_message_emoji` with iOS 18, …) and never
//! removed the ones the bridge reads. So instead of a table of versions, the reader asks the file
//! (`sqlite_master`, `PRAGMA table_info`) and builds every query from the columns that exist: a
//! column a generation lacks reads as NULL. That covers macOS 10.13 to 26 and iOS 11 to 26
//! `sms.db` alike, and a future release that adds columns changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Row, SqlitePool};

use crate::{ChatDbError, Result};

/// The tables without which there is no history to read, with the columns each must have.
const REQUIRED: [(&str, &[&str]); 5] = [
    ("message", &["guid", "date"]),
    ("chat", &["guid", "chat_identifier"]),
    ("handle", &["id"]),
    ("chat_message_join", &["chat_id", "message_id"]),
    ("chat_handle_join", &["chat_id", "handle_id"]),
];

/// Tables read when present (attachments are missing from some stripped copies).
const OPTIONAL_TABLES: [&str; 2] = ["attachment", "message_attachment_join"];

/// The tables and columns of one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    tables: BTreeMap<String, BTreeSet<String>>,
}

impl Schema {
    /// Reads the tables the reader uses and their columns.
    pub(crate) async fn probe(pool: &SqlitePool) -> Result<Schema> {
        let names: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(pool)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        let mut tables = BTreeMap::new();
        for (table, _) in REQUIRED {
            if names.iter().any(|n| n == table) {
                tables.insert(table.to_string(), columns(pool, table).await?);
            }
        }
        for table in OPTIONAL_TABLES {
            if names.iter().any(|n| n == table) {
                tables.insert(table.to_string(), columns(pool, table).await?);
            }
        }
        let schema = Schema { tables };
        schema.check()?;
        Ok(schema)
    }

    /// Builds a schema from table → columns (tests).
    pub fn from_tables<'a>(tables: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Schema {
        Schema { tables: tables.into_iter().map(|(t, cols)| (t.to_string(), cols.iter().map(|c| c.to_string()).collect())).collect() }
    }

    fn check(&self) -> Result<()> {
        for (table, cols) in REQUIRED {
            let Some(have) = self.tables.get(table) else {
                return Err(ChatDbError::NotMessages(format!("it has no `{table}` table")));
            };
            if let Some(missing) = cols.iter().find(|c| !have.contains(**c)) {
                return Err(ChatDbError::NotMessages(format!("its `{table}` table has no `{missing}` column")));
            }
        }
        Ok(())
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    pub fn has(&self, table: &str, column: &str) -> bool {
        self.tables.get(table).is_some_and(|c| c.contains(column))
    }

    /// `alias.column AS column` when the column exists, else `NULL AS column`.
    pub(crate) fn select(&self, table: &str, alias: &str, column: &str) -> String {
        if self.has(table, column) {
            format!("{alias}.{column} AS {column}")
        } else {
            format!("NULL AS {column}")
        }
    }

    /// The number of columns of `message` (91 on macOS 15, 68 on iOS 13): the generation at a glance.
    pub fn message_columns(&self) -> usize {
        self.tables.get("message").map_or(0, BTreeSet::len)
    }

    /// A one-line description for `doctor`: what this database can express.
    pub fn describe(&self) -> String {
        let mut has = Vec::new();
        for (column, what) in [
            ("attributedBody", "rich bodies"),
            ("thread_originator_guid", "replies"),
            ("message_summary_info", "edits and unsends"),
            ("associated_message_emoji", "emoji tapbacks"),
        ] {
            if self.has("message", column) {
                has.push(what);
            }
        }
        format!("{} message columns ({})", self.message_columns(), if has.is_empty() { "plain text only".to_string() } else { has.join(", ") })
    }
}

async fn columns(pool: &SqlitePool, table: &str) -> Result<BTreeSet<String>> {
    // Table names come from the fixed lists above, never from the file.
    let rows = sqlx::query(&format!("PRAGMA table_info({table})")).fetch_all(pool).await?;
    Ok(rows.iter().filter_map(|r| r.try_get::<String, _>("name").ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_column_reads_as_null() {
        let s = Schema::from_tables([("message", &["guid", "date"][..])]);
        assert_eq!(s.select("message", "m", "guid"), "m.guid AS guid");
        assert_eq!(s.select("message", "m", "date_edited"), "NULL AS date_edited");
        assert_eq!(s.select("attachment", "a", "guid"), "NULL AS guid");
    }

    #[test]
    fn required_tables_are_checked() {
        let s = Schema::from_tables([("message", &["guid", "date"][..])]);
        assert!(matches!(s.check(), Err(ChatDbError::NotMessages(m)) if m.contains("`chat`")));
    }
}
