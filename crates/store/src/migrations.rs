//! Applying the schema's migrations (`schema.rs`): one loop for both backends.
//!
//! Why hand-rolled instead of `sqlx::migrate!`: that macro needs sqlx's `migrate`/`macros`
//! features and a migrations directory per backend; a const list is enough for a handful of
//! tables and keeps the two dialects side by side, where a reviewer can see they match.
//!
//! Each migration runs in its own transaction together with its `schema_migrations` row, so a
//! crash leaves the schema at a version boundary, and reopening applies only what is missing.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, PgPool, Pool, SqlitePool, Type};

use crate::error::{Result, StoreError};
use crate::schema::{Migration, POSTGRES, SQLITE};

/// Serializes concurrent openers of one PostgreSQL database (`pg_advisory_xact_lock` key).
const PG_MIGRATION_LOCK: i64 = 0x6d73_6762_7269_6467; // "msgbridg"

/// What differs between the backends when migrating: how a migration's transaction takes the
/// database for itself, and the bookkeeping table's DDL. The loop itself is [`apply`], once.
struct Dialect {
    name: &'static str,
    /// Starts a migration's transaction.
    begin: &'static str,
    /// Run first in each transaction, to wait for other openers (None when `begin` does it).
    lock: Option<String>,
    create_table: &'static str,
}

/// SQLite: `BEGIN IMMEDIATE` takes the write lock up front, so two processes opening the same
/// file apply each migration exactly once.
fn sqlite_dialect() -> Dialect {
    Dialect {
        name: "sqlite",
        begin: "BEGIN IMMEDIATE",
        lock: None,
        create_table: "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY NOT NULL,
            name       TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ) STRICT",
    }
}

/// PostgreSQL: each transaction takes a transaction-scoped advisory lock, so concurrent openers
/// wait for each other instead of racing on `CREATE TABLE`.
fn postgres_dialect() -> Dialect {
    Dialect {
        name: "postgres",
        begin: "BEGIN",
        lock: Some(format!("SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")),
        create_table: "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    }
}

fn failed(version: i64) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Migration { version, source }
}

fn warn_if_newer(applied_max: Option<i64>, known: &[Migration]) {
    let known_max = latest(known);
    if let Some(max) = applied_max.filter(|&v| v > known_max) {
        tracing::warn!(db_version = max, known_version = known_max, "database schema is newer than this build");
    }
}

/// Applies the missing SQLite migrations.
pub(crate) async fn run_sqlite(pool: &SqlitePool) -> Result<()> {
    apply(pool, &sqlite_dialect(), SQLITE).await
}

/// Applies the missing PostgreSQL migrations.
pub(crate) async fn run_postgres(pool: &PgPool) -> Result<()> {
    apply(pool, &postgres_dialect(), POSTGRES).await
}

/// Starts a migration transaction of `dialect` (taking its lock).
async fn begin<DB>(pool: &Pool<DB>, dialect: &Dialect, version: i64) -> Result<sqlx::Transaction<'static, DB>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut tx = pool.begin_with(dialect.begin).await.map_err(failed(version))?;
    if let Some(lock) = &dialect.lock {
        sqlx::raw_sql(lock).execute(&mut *tx).await.map_err(failed(version))?;
    }
    Ok(tx)
}

/// Applies the migrations of `list` that are missing, each in its own transaction together with
/// its `schema_migrations` row — the one loop both backends run.
async fn apply<DB>(pool: &Pool<DB>, dialect: &Dialect, list: &[Migration]) -> Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut tx = begin(pool, dialect, 0).await?;
    sqlx::raw_sql(dialect.create_table).execute(&mut *tx).await.map_err(failed(0))?;
    tx.commit().await.map_err(failed(0))?;
    for m in list {
        let mut tx = begin(pool, dialect, m.version).await?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        if done.is_some() {
            continue; // dropping `tx` rolls the empty transaction back
        }
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(failed(m.version))?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(failed(m.version))?;
        tx.commit().await.map_err(failed(m.version))?;
        tracing::info!(version = m.version, name = m.name, backend = dialect.name, "applied migration");
    }
    let mut conn = pool.acquire().await.map_err(failed(0))?;
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(&mut *conn).await.map_err(failed(0))?;
    warn_if_newer(max, list);
    Ok(())
}

/// The highest applied migration of a SQLite file, read without creating, migrating or writing
/// anything (`doctor` runs beside a running bridge). None: the file has no migration table.
pub(crate) async fn applied_sqlite(uri: &str) -> Result<Option<i64>> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let options = <SqliteConnectOptions as std::str::FromStr>::from_str(uri)?;
    if !options.get_filename().exists() {
        return Err(StoreError::NotFound(options.get_filename().display().to_string()));
    }
    let mut conn = options.read_only(true).create_if_missing(false).connect().await?;
    let table: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetch_one(&mut conn).await?;
    let applied = if table == 0 { None } else { sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(&mut conn).await? };
    conn.close().await?;
    Ok(applied)
}

/// As [`applied_sqlite`], for PostgreSQL (a plain connection that only reads).
pub(crate) async fn applied_postgres(uri: &str) -> Result<Option<i64>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(uri).await?;
    let table: bool = sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL").fetch_one(&mut conn).await?;
    let applied = if table { sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations").fetch_one(&mut conn).await? } else { None };
    conn.close().await?;
    Ok(applied)
}

/// The highest migration version of a backend's list.
pub(crate) fn latest(list: &[Migration]) -> i64 {
    list.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
#[path = "migrations_tests.rs"]
pub(crate) mod tests;

/// The conformance suite's throwaway PostgreSQL server, for the migration tests above.
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod pg_support;
