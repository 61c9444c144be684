//! `Manifest.db` as iOS writes it: the `Files` table (Apple's columns and indexes) whose `file`
//! column is an NSKeyedArchiver archive of an `MBFile`, and an empty `Properties` table.

use std::io;
use std::path::Path;

use plist::{Dictionary, Uid, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

/// `Files.flags`.
pub(crate) const FLAG_FILE: i64 = 1;
pub(crate) const FLAG_FOLDER: i64 = 2;

/// One row of `Files`.
pub(crate) struct Row {
    pub file_id: String,
    pub domain: String,
    pub relative_path: String,
    pub flags: i64,
    pub size: u64,
    pub protection_class: u32,
    /// `EncryptionKey` (class prefix + wrapped key), for a file of an encrypted backup.
    pub encryption_key: Option<Vec<u8>>,
    /// Seconds since 1970 (Birth, LastModified, LastStatusChange).
    pub time: i64,
    pub inode: u64,
}

fn class_object(name: &str, supers: &[&str]) -> Value {
    let mut d = Dictionary::new();
    d.insert("$classname".into(), Value::String(name.into()));
    let chain = std::iter::once(name).chain(supers.iter().copied()).map(|c| Value::String(c.into())).collect();
    d.insert("$classes".into(), Value::Array(chain));
    Value::Dictionary(d)
}

/// The row's `file` column: a binary NSKeyedArchiver archive of an `MBFile`.
pub(crate) fn mbfile_archive(row: &Row) -> Vec<u8> {
    let uid = |i: usize| Value::Uid(Uid::new(i as u64));
    let mut objects = vec![Value::String("$null".into()), Value::Boolean(false), Value::String(row.relative_path.clone())];
    let mut root = Dictionary::new();
    root.insert("RelativePath".into(), uid(2));
    let mode = if row.flags == FLAG_FOLDER { 0o40755 } else { 0o100644 };
    for (k, v) in
        [("Birth", row.time), ("LastModified", row.time), ("LastStatusChange", row.time), ("GroupID", 501), ("UserID", 501), ("Mode", mode), ("Flags", 0)]
    {
        root.insert(k.into(), Value::Integer(v.into()));
    }
    root.insert("InodeNumber".into(), Value::Integer(row.inode.into()));
    root.insert("Size".into(), Value::Integer(row.size.into()));
    root.insert("ProtectionClass".into(), Value::Integer(u64::from(row.protection_class).into()));
    if let Some(key) = &row.encryption_key {
        let mut data = Dictionary::new();
        data.insert("NS.data".into(), Value::Data(key.clone()));
        data.insert("$class".into(), uid(objects.len() + 1));
        root.insert("EncryptionKey".into(), uid(objects.len()));
        objects.push(Value::Dictionary(data));
        objects.push(class_object("NSMutableData", &["NSData", "NSObject"]));
    }
    root.insert("$class".into(), uid(objects.len()));
    objects.push(class_object("MBFile", &["NSObject"]));
    objects[1] = Value::Dictionary(root);

    let mut top = Dictionary::new();
    top.insert("root".into(), uid(1));
    let mut archive = Dictionary::new();
    archive.insert("$version".into(), Value::Integer(100000.into()));
    archive.insert("$archiver".into(), Value::String("NSKeyedArchiver".into()));
    archive.insert("$top".into(), Value::Dictionary(top));
    archive.insert("$objects".into(), Value::Array(objects));
    let mut out = Vec::new();
    // Writing a plist into a Vec does not fail.
    if let Err(e) = Value::Dictionary(archive).to_writer_binary(&mut out) {
        unreachable!("binary plist into memory: {e}");
    }
    out
}

/// Writes a new `Manifest.db` (rollback journal, so it is one file) at `path`.
pub(crate) async fn write_db(path: &Path, rows: &[Row]) -> io::Result<()> {
    let err = |e: sqlx::Error| io::Error::other(format!("{}: {e}", path.display()));
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true).journal_mode(SqliteJournalMode::Delete);
    let mut db = options.connect().await.map_err(err)?;
    for ddl in [
        "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)",
        "CREATE INDEX FilesDomainIdx ON Files(domain)",
        "CREATE INDEX FilesRelativePathIdx ON Files(relativePath)",
        "CREATE INDEX FilesFlagsIdx ON Files(flags)",
        "CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)",
    ] {
        sqlx::query(ddl).execute(&mut db).await.map_err(err)?;
    }
    let mut tx = db.begin().await.map_err(err)?;
    for row in rows {
        sqlx::query("INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(&row.file_id)
            .bind(&row.domain)
            .bind(&row.relative_path)
            .bind(row.flags)
            .bind(mbfile_archive(row))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    db.close().await.map_err(err)
}
