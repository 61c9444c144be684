//! Files of the backup: looking them up in `Manifest.db`, and reading or extracting their bytes
//! (copied from a plain backup, decrypted from an encrypted one).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::keybag::{split_class_prefixed, ClassKeys};
use crate::plists::MbFile;
use crate::stream::{damage_of, Decryptor};
use crate::{Backup, BackupError};

/// `Files.flags` of a regular file (2 is a folder, 4 a symbolic link).
const FLAG_FILE: i64 = 1;

/// The iPhone's contacts databases as extracted by [`Backup::address_book`] (for the
/// `contacts` crate's `address_book::read_ios`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressBookFiles {
    /// `AddressBook.sqlitedb`.
    pub address_book: Option<PathBuf>,
    /// `AddressBookImages.sqlitedb`.
    pub images: Option<PathBuf>,
}

/// One regular file of the backup, as `Manifest.db` lists it.
#[derive(Clone)]
#[non_exhaustive]
pub struct BackupFile {
    /// SHA-1 of `domain-relativePath`: the blob is at `fileID[..2]/fileID`.
    pub file_id: String,
    pub domain: String,
    pub relative_path: String,
    /// The size the `MBFile` records, when it does.
    pub size: Option<u64>,
    pub protection_class: Option<u32>,
    /// `EncryptionKey`: 4-byte class, then the key wrapped with the class key.
    encryption_key: Option<Vec<u8>>,
    /// Why the row's `MBFile` could not be read: the file is then damaged.
    meta_error: Option<String>,
}

impl std::fmt::Debug for BackupFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupFile")
            .field("file_id", &self.file_id)
            .field("domain", &self.domain)
            .field("relative_path", &self.relative_path)
            .field("size", &self.size)
            .field("protection_class", &self.protection_class)
            .field("encrypted", &self.encryption_key.is_some())
            .finish()
    }
}

type Row = (String, String, String, Option<Vec<u8>>);
const COLUMNS: &str = "SELECT fileID, domain, relativePath, file FROM Files";

impl BackupFile {
    fn from_row((file_id, domain, relative_path, blob): Row) -> Self {
        let meta = blob.ok_or_else(|| "no file column".to_string()).and_then(|b| MbFile::parse(&b));
        let (meta, meta_error) = match meta {
            Ok(m) => (m, None),
            Err(e) => (MbFile::default(), Some(e)),
        };
        BackupFile { file_id, domain, relative_path, size: meta.size, protection_class: meta.protection_class, encryption_key: meta.encryption_key, meta_error }
    }

    fn damaged(&self, reason: impl Into<String>) -> BackupError {
        BackupError::FileDamaged {
            domain: self.domain.clone(),
            relative_path: self.relative_path.clone(),
            file_id: self.file_id.clone(),
            reason: reason.into(),
        }
    }

    /// Where the blob lives, if `file_id` is a well-formed SHA-1 (never a path of its own).
    fn blob_path(&self, dir: &Path) -> Result<PathBuf, BackupError> {
        let id = &self.file_id;
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.damaged("fileID is not 40 hex digits"));
        }
        Ok(dir.join(&id[..2]).join(id))
    }
}

/// The domain and relative path of an attachment named as `sms.db`'s `attachment.filename`
/// does (`~/Library/SMS/Attachments/ab/12/GUID/IMG_0001.jpeg`, or under `/var/mobile/`).
pub fn attachment_location(path: &str) -> Option<(&'static str, String)> {
    let rel = ["~/", "/var/mobile/", "/private/var/mobile/"].iter().find_map(|p| path.strip_prefix(p))?;
    let under_sms = ["Library/SMS/Attachments/", "Library/SMS/StickerCache/"].iter().any(|p| rel.starts_with(p));
    if !under_sms || rel.split('/').any(|c| c == ".." || c == ".") {
        return None;
    }
    Some(("MediaDomain", rel.to_owned()))
}

/// The bytes of one file: as stored (plain backup) or decrypted.
pub struct FileReader(Reader);

enum Reader {
    Plain(File),
    Encrypted(Box<Decryptor<File>>),
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Reader::Plain(f) => f.read(buf),
            Reader::Encrypted(d) => d.read(buf),
        }
    }
}

/// What extraction needs, owned so that it can run on a blocking thread.
struct Source {
    dir: PathBuf,
    keys: Option<Arc<ClassKeys>>,
}

impl Source {
    fn open(&self, file: &BackupFile) -> Result<FileReader, BackupError> {
        if let Some(e) = &file.meta_error {
            return Err(file.damaged(e.clone()));
        }
        let path = file.blob_path(&self.dir)?;
        let blob = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                BackupError::FileMissing { domain: file.domain.clone(), relative_path: file.relative_path.clone(), file_id: file.file_id.clone() }
            }
            _ => BackupError::io(&path, e),
        })?;
        let Some(keys) = &self.keys else { return Ok(FileReader(Reader::Plain(blob))) };
        let wrapped = file.encryption_key.as_deref().ok_or_else(|| file.damaged("no EncryptionKey in an encrypted backup"))?;
        let (prefix_class, wrapped) = split_class_prefixed(wrapped).ok_or_else(|| file.damaged("EncryptionKey shorter than 4 bytes"))?;
        let class = file.protection_class.unwrap_or(prefix_class);
        let key = keys.unwrap(class, wrapped).map_err(|e| file.damaged(format!("file key: {e}")))?;
        Ok(FileReader(Reader::Encrypted(Box::new(Decryptor::new(blob, &key, file.size)))))
    }

    /// Writes the file to `dest` (through a temporary file beside it, renamed when complete).
    fn extract(&self, file: &BackupFile, dest: &Path) -> Result<u64, BackupError> {
        let mut reader = self.open(file)?;
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dest_err = |e| BackupError::io(dest, e);
        let mut out = tempfile::Builder::new().prefix(".extract-").tempfile_in(parent).map_err(dest_err)?;
        let read_err = |e: io::Error| match damage_of(&e) {
            Some(d) => file.damaged(d.to_string()),
            None => BackupError::io(file.blob_path(&self.dir).unwrap_or_default(), e),
        };
        let written = match &mut reader.0 {
            Reader::Plain(f) => io::copy(f, &mut out).map_err(read_err)?,
            Reader::Encrypted(d) => {
                while let Some(chunk) = d.next_chunk().map_err(read_err)? {
                    out.write_all(chunk).map_err(dest_err)?;
                }
                d.released()
            }
        };
        out.persist(dest).map_err(|e| dest_err(e.error))?;
        if file.size.is_some_and(|s| s != written) {
            // iOS records a size taken at a different moment than the copy for live databases;
            // the bytes (whose padding checked out) are what the file is.
            tracing::warn!(domain = %file.domain, path = %file.relative_path, recorded = file.size, written, "extracted size differs from the size Manifest.db records");
        }
        Ok(written)
    }
}

impl Backup {
    fn source(&self) -> Source {
        Source { dir: self.dir.clone(), keys: self.keys.clone() }
    }

    /// The regular file at `domain` / `relative_path`, if the backup has it.
    pub async fn find(&self, domain: &str, relative_path: &str) -> Result<Option<BackupFile>, BackupError> {
        let sql = format!("{COLUMNS} WHERE domain = ?1 AND relativePath = ?2 AND flags = {FLAG_FILE} LIMIT 1");
        let row: Option<Row> = sqlx::query_as(&sql).bind(domain).bind(relative_path).fetch_optional(&self.db).await.map_err(BackupError::manifest)?;
        Ok(row.map(BackupFile::from_row))
    }

    /// Every regular file of `domain` at or under the folder `prefix` (no trailing slash
    /// needed), in path order.
    pub async fn files_under(&self, domain: &str, prefix: &str) -> Result<Vec<BackupFile>, BackupError> {
        let prefix = prefix.trim_end_matches('/');
        let sql = format!(
            "{COLUMNS} WHERE domain = ?1 AND flags = {FLAG_FILE} AND (?2 = '' OR relativePath = ?2 OR substr(relativePath, 1, length(?2) + 1) = ?2 || '/') ORDER BY relativePath"
        );
        let rows: Vec<Row> = sqlx::query_as(&sql).bind(domain).bind(prefix).fetch_all(&self.db).await.map_err(BackupError::manifest)?;
        Ok(rows.into_iter().map(BackupFile::from_row).collect())
    }

    /// A reader of the file's bytes (decrypting as it reads). Reading blocks: call it from a
    /// blocking thread in async code. Damage shows as an `io::Error` of kind `InvalidData`.
    pub fn open_reader(&self, file: &BackupFile) -> Result<FileReader, BackupError> {
        self.source().open(file)
    }

    /// Writes the file's bytes to `dest` (0600, complete or not at all) and returns their
    /// length. A missing or damaged file is [`BackupError::FileMissing`] or
    /// [`BackupError::FileDamaged`] ([`BackupError::is_per_file`]).
    pub async fn extract(&self, file: &BackupFile, dest: &Path) -> Result<u64, BackupError> {
        let (source, file, dest) = (self.source(), file.clone(), dest.to_owned());
        tokio::task::spawn_blocking(move || source.extract(&file, &dest)).await.map_err(|e| BackupError::io(std::env::temp_dir(), io::Error::other(e)))?
    }

    /// Extracts HomeDomain `Library/SMS/sms.db` (with its `-wal` and `-shm` when the backup has
    /// them) into the temporary folder and returns the path of `sms.db` there.
    pub async fn sms_db(&self) -> Result<PathBuf, BackupError> {
        self.home_db("SMS", "sms.db")
            .await?
            .ok_or_else(|| BackupError::NotABackup { path: self.dir.clone(), reason: "no HomeDomain Library/SMS/sms.db in Manifest.db".into() })
    }

    /// Extracts the iPhone's contacts, HomeDomain `Library/AddressBook/AddressBook.sqlitedb` and
    /// `AddressBookImages.sqlitedb` (each with its `-wal` and `-shm`), into the temporary folder.
    /// A backup without them (contacts kept only in iCloud) gives None for each.
    pub async fn address_book(&self) -> Result<AddressBookFiles, BackupError> {
        Ok(AddressBookFiles {
            address_book: self.home_db("AddressBook", "AddressBook.sqlitedb").await?,
            images: self.home_db("AddressBook", "AddressBookImages.sqlitedb").await?,
        })
    }

    /// Extracts HomeDomain `Library/<folder>/<name>` with its `-wal` and `-shm` into
    /// `<temp>/<folder>/`; None if the backup lacks it.
    async fn home_db(&self, folder: &str, name: &str) -> Result<Option<PathBuf>, BackupError> {
        let Some(db) = self.find("HomeDomain", &format!("Library/{folder}/{name}")).await? else {
            return Ok(None);
        };
        let dir = self.temp_dir().join(folder);
        std::fs::create_dir_all(&dir).map_err(|e| BackupError::io(&dir, e))?;
        let dest = dir.join(name);
        self.extract(&db, &dest).await?;
        for suffix in ["-wal", "-shm"] {
            if let Some(f) = self.find("HomeDomain", &format!("Library/{folder}/{name}{suffix}")).await? {
                self.extract(&f, &dir.join(format!("{name}{suffix}"))).await?;
            }
        }
        Ok(Some(dest))
    }

    /// The backup's file for an attachment path as `sms.db` names it (see
    /// [`attachment_location`]); `None` if the path is not one or the backup lacks the file.
    pub async fn attachment(&self, sms_db_path: &str) -> Result<Option<BackupFile>, BackupError> {
        match attachment_location(sms_db_path) {
            Some((domain, rel)) => self.find(domain, &rel).await,
            None => Ok(None),
        }
    }
}
