//! The seam between the store's jobs and its two backends: a [`Db`] runs one statement with its
//! parameters on the backend's read or write side and hands back rows that [`RowExt`] reads.
//!
//! Why a seam instead of a macro: every read and most writes have the same SQL on SQLite and
//! PostgreSQL (`$N` placeholders work in both). Each job module (`zones`, `records`, `files`,
//! `rooms`, `ledger`, `revisions`, `profiles`) writes its methods once, as plain code over any
//! `Db`, and both backends get them through a blanket impl; a backend only says how to run a
//! statement. What differs — a page's batch writes, SQLite's ingest log — stays in `sqlite.rs`
//! and `postgres.rs`. Parameters are a small closed set of types so the same call binds the same
//! SQL types on both.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::{Result, StoreError};

/// A value bound to a `$N` placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
}

/// Runs statements on one backend. Reads go to the read side (several connections), writes to
/// the write side (SQLite's single writer).
#[async_trait]
pub(crate) trait Db: Send + Sync {
    type Row: RowExt + Send + Sync;
    /// The dialect's SQL for the current time, for `updated_at` columns.
    const NOW: &'static str;
    async fn read_rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Self::Row>>;
    async fn read_row(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Self::Row>>;
    async fn write(&self, sql: &str, params: &[Param<'_>]) -> Result<()>;
    /// A write whose statement returns one row (`… RETURNING`).
    async fn write_returning(&self, sql: &str, params: &[Param<'_>]) -> Result<Self::Row>;
    /// Makes every committed message visible in `messages`; runs before each read of that table.
    async fn settle_messages(&self) -> Result<()>;
}

/// Binds `params` in order to a query of either backend.
pub(crate) fn bind<'q, DB>(mut query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>, params: &[Param<'q>]) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for param in params {
        query = match *param {
            Param::Text(v) => query.bind(v),
            Param::OptText(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::OptInt(v) => query.bind(v),
        };
    }
    query
}

/// NULL-safe typed column access: a NULL in a non-optional column, or a value of the wrong type,
/// is reported as [`StoreError::Corrupt`] naming the column instead of panicking.
pub(crate) trait RowExt {
    fn text(&self, col: &'static str) -> Result<String>;
    fn opt_text(&self, col: &'static str) -> Result<Option<String>>;
    fn int(&self, col: &'static str) -> Result<i64>;
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>>;
    fn boolean(&self, col: &'static str) -> Result<bool>;
    fn opt_bool(&self, col: &'static str) -> Result<Option<bool>>;
    fn opt_bytes(&self, col: &'static str) -> Result<Option<Vec<u8>>>;
}

fn column_error(col: &'static str, e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt { what: col, detail: source.to_string() },
        other => StoreError::Database(other),
    }
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, col: &'static str) -> Result<String> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn int(&self, col: &'static str) -> Result<i64> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_int(&self, col: &'static str) -> Result<Option<i64>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn boolean(&self, col: &'static str) -> Result<bool> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_bool(&self, col: &'static str) -> Result<Option<bool>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
            fn opt_bytes(&self, col: &'static str) -> Result<Option<Vec<u8>>> {
                self.try_get(col).map_err(|e| column_error(col, e))
            }
        }
    };
}
impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// Milliseconds since the Unix epoch, for the `*_ms` columns the store stamps itself.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
