//! Apple's address book databases, read-only: a Mac's `AddressBook-v22.abcddb` (Core Data,
//! `ZABCD…` tables; [`read_mac`]) and an iPhone's `AddressBook.sqlitedb` with
//! `AddressBookImages.sqlitedb` (`ABPerson`, `ABMultiValue`; [`read_ios`]).
//!
//! Like the `chatdb` crate (and with its [`chatdb::read_only_options`]), the files are opened `SQLITE_OPEN_READONLY` with no pragma that
//! writes (Contacts may be running beside us), and every query is built from the columns
//! `PRAGMA table_info` says exist, because the layouts drift between OS versions. A row that
//! cannot be used is a [`Problem`](crate::Problem), not an error; an error is a file that is not
//! an address book at all.

mod ios;
mod mac;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Row, SqlitePool};

use crate::{CardSet, Error, Result};

pub use ios::read_ios;
pub use mac::{mac_files, read_mac};

/// The name of a Mac's address book database file.
pub const MAC_FILE: &str = "AddressBook-v22.abcddb";
/// The name of an iPhone's address book database file.
pub const IOS_FILE: &str = "AddressBook.sqlitedb";
/// The name of an iPhone's address book images database, beside [`IOS_FILE`].
pub const IOS_IMAGES_FILE: &str = "AddressBookImages.sqlitedb";

/// Reads the address book at `path`, whatever kind it is (the config's
/// `contacts.address_book: PATH`): an `.abcddb` file, an `.sqlitedb` file (its
/// `AddressBookImages.sqlitedb` beside it is read too), or a folder holding either, such as a
/// Mac's copied `~/Library/Application Support/AddressBook` folder. A file with another name is
/// recognised by its tables.
pub async fn open(path: &Path) -> Result<CardSet> {
    if path.is_dir() {
        if path.join(MAC_FILE).is_file() || path.join("Sources").is_dir() {
            return read_mac(path).await;
        }
        if path.join(IOS_FILE).is_file() {
            return read_ios(&path.join(IOS_FILE), Some(&path.join(IOS_IMAGES_FILE))).await;
        }
        return Err(not_address_book(path, format!("the folder holds neither {MAC_FILE} nor {IOS_FILE}")));
    }
    if !path.is_file() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let is_mac = match ext.as_str() {
        "abcddb" => true,
        "sqlitedb" => false,
        _ => {
            let db = Db::open(path).await?;
            let mac = db.has_table("ZABCDRECORD");
            db.close().await;
            mac
        }
    };
    if is_mac {
        read_mac(path).await
    } else {
        let images = path.parent().map(|d| d.join(IOS_IMAGES_FILE));
        read_ios(path, images.as_deref()).await
    }
}

pub(crate) fn not_address_book(path: &Path, reason: impl Into<String>) -> Error {
    Error::NotAddressBook { path: path.display().to_string(), reason: reason.into() }
}

/// A read-only SQLite file and its tables' columns.
pub(crate) struct Db {
    pub pool: SqlitePool,
    pub path: PathBuf,
    tables: BTreeSet<String>,
}

impl Db {
    pub async fn open(path: &Path) -> Result<Db> {
        let db_error = |source| Error::Database { path: path.display().to_string(), source };
        if !path.is_file() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(chatdb::read_only_options(path)).await.map_err(db_error)?;
        let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.map_err(db_error)?;
        let tables = rows.iter().filter_map(|r| r.try_get::<String, _>(0).ok()).collect();
        Ok(Db { pool, path: path.to_path_buf(), tables })
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    /// The columns of `table` (empty if there is no such table).
    pub async fn columns(&self, table: &str) -> Result<BTreeSet<String>> {
        if !self.has_table(table) {
            return Ok(BTreeSet::new());
        }
        // Table names come from this crate's constants, never from the file.
        let rows = sqlx::query(&format!("PRAGMA table_info({table})")).fetch_all(&self.pool).await.map_err(|e| self.error(e))?;
        Ok(rows.iter().filter_map(|r| r.try_get::<String, _>("name").ok()).collect())
    }

    pub fn error(&self, source: sqlx::Error) -> Error {
        Error::Database { path: self.path.display().to_string(), source }
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// `column AS alias` if the table has it, else `NULL AS alias`.
pub(crate) fn select(columns: &BTreeSet<String>, column: &str, alias: &str) -> String {
    if columns.contains(column) {
        format!("{column} AS {alias}")
    } else {
        format!("NULL AS {alias}")
    }
}

/// A text column, trimmed, None when NULL, empty or not text.
pub(crate) fn text(row: &sqlx::sqlite::SqliteRow, column: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(column).ok().flatten().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A blob column, None when NULL or not a blob.
pub(crate) fn blob(row: &sqlx::sqlite::SqliteRow, column: &str) -> Option<Vec<u8>> {
    row.try_get::<Option<Vec<u8>>, _>(column).ok().flatten().filter(|b| !b.is_empty())
}

/// Appends `value` to `list` unless it is already there.
pub(crate) fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}
