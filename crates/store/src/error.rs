//! The store's one error type. A leaf: every other module of the crate returns it, and it imports
//! none of them.

/// Errors of the store crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("unsupported database URI {0:?}: use sqlite:PATH or postgres://USER@HOST/DB")]
    UnsupportedUri(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("stored value is invalid ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A database file that should exist does not (see [`schema_state`](crate::schema_state)).
    #[error("database file {0} does not exist")]
    NotFound(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
