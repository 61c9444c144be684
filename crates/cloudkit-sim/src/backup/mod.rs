//! Writes an iPhone backup folder, plain or encrypted, from a list of files: the simulator's
//! stand-in for a phone, so that the bridge's backup reader can be tested end to end.
//!
//! It is an implementation of its own, written from the format description (DESIGN.md, "Local
//! sources facts"), and shares no code with the `ios-backup` reader: the two meet only in the
//! folder, and an outside implementation (Python's `iphone_backup_decrypt`) checks what this one
//! writes. The folder has what Finder writes: `Manifest.plist` (`IsEncrypted`, `BackupKeyBag`,
//! `ManifestKey`, `Version`, `Lockdown`, …), `Info.plist`, `Status.plist`, `Manifest.db` (with a
//! row for every folder above each file, as iOS lists them) and each file at
//! `xx/<sha1("domain-relativePath")>`. Encrypted: random class keys wrapped under the password key
//! ([`crypt`]), a random key per file wrapped under its class key, and AES-256-CBC (zero IV,
//! PKCS7) for `Manifest.db` and every file.
//!
//! The randomness comes from a seed: the same seed and files give the same backup.

mod crypt;
mod manifest;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use plist::{Dictionary, Value};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha1::{Digest, Sha1};

pub use crypt::Iterations;
use crypt::Keybag;
use manifest::{Row, FLAG_FILE, FLAG_FOLDER};

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// One file of the backup.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    pub domain: String,
    pub relative_path: String,
    pub content: Content,
}

/// Encryption of the backup.
#[derive(Clone)]
pub struct Encryption {
    pub password: Vec<u8>,
    pub iterations: Iterations,
}

/// How to pack.
#[derive(Clone)]
pub struct PackOptions {
    /// `None`: a plain backup.
    pub encryption: Option<Encryption>,
    pub seed: u64,
    pub device_name: String,
    pub phone_number: String,
    pub product_version: String,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            encryption: None,
            seed: 1,
            device_name: "Simulated iPhone".into(),
            phone_number: "+1 (555) 010-0000".into(),
            product_version: "17.5.1".into(),
        }
    }
}

/// The file ID of `domain` / `relative_path`: hex SHA-1 of `domain-relativePath`.
pub fn file_id(domain: &str, relative_path: &str) -> String {
    let digest = Sha1::digest(format!("{domain}-{relative_path}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The protection class a file gets: `sms.db` and the other HomeDomain files C (3), media D (4).
fn protection_class(domain: &str) -> u32 {
    if domain == "MediaDomain" {
        4
    } else {
        3
    }
}

/// The class of the `ManifestKey` (Finder uses D).
const MANIFEST_CLASS: u32 = 4;
/// Backup time: a fixed instant, so a seed gives the same folder.
const BACKUP_TIME: u64 = 1_717_243_200; // 2024-06-01 12:00 UTC

/// What was packed.
#[derive(Debug, Default)]
pub struct Packed {
    pub files: usize,
    /// Each file's AES key by file ID (encrypted backups): the simulator's truth, for tests and
    /// benchmarks that decrypt a blob with another tool.
    pub file_keys: BTreeMap<String, [u8; 32]>,
}

/// Writes the backup into `out`, which must not exist or be empty.
pub async fn pack(out: &Path, entries: &[BackupEntry], options: &PackOptions) -> io::Result<Packed> {
    std::fs::create_dir_all(out)?;
    if std::fs::read_dir(out)?.next().is_some() {
        return Err(io::Error::other(format!("{} is not empty", out.display())));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(options.seed);
    let keybag = options.encryption.as_ref().map(|e| Keybag::generate(&mut rng, &e.password, e.iterations));
    let mut rows = Vec::new();
    let mut folders = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut file_keys = BTreeMap::new();
    for (n, entry) in entries.iter().enumerate() {
        let id = file_id(&entry.domain, &entry.relative_path);
        if !seen.insert(id.clone()) {
            return Err(io::Error::other(format!("{} {} is listed twice", entry.domain, entry.relative_path)));
        }
        let class = protection_class(&entry.domain);
        let dir = out.join(&id[..2]);
        std::fs::create_dir_all(&dir)?;
        let mut input: Box<dyn Read> = match &entry.content {
            Content::Bytes(b) => Box::new(b.as_slice()),
            Content::File(p) => Box::new(BufReader::new(File::open(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?)),
        };
        let mut output = BufWriter::new(File::create(dir.join(&id))?);
        let (size, encryption_key) = match &keybag {
            Some(kb) => {
                let (key, wrapped) = kb.file_key(&mut rng, class);
                file_keys.insert(id.clone(), key);
                (crypt::encrypt_stream(&key, &mut input, &mut output)?, Some(wrapped))
            }
            None => (io::copy(&mut input, &mut output)?, None),
        };
        output.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let mut parent = entry.relative_path.as_str();
        while let Some(i) = parent.rfind('/') {
            parent = &parent[..i];
            folders.insert((entry.domain.clone(), parent.to_owned()));
        }
        folders.insert((entry.domain.clone(), String::new()));
        let (domain, relative_path) = (entry.domain.clone(), entry.relative_path.clone());
        rows.push(Row {
            file_id: id,
            domain,
            relative_path,
            flags: FLAG_FILE,
            size,
            protection_class: class,
            encryption_key,
            time: BACKUP_TIME as i64,
            inode: 1000 + n as u64,
        });
    }
    for (n, (domain, path)) in folders.into_iter().enumerate() {
        let file_id = file_id(&domain, &path);
        rows.push(Row {
            file_id,
            domain,
            relative_path: path,
            flags: FLAG_FOLDER,
            size: 0,
            protection_class: 0,
            encryption_key: None,
            time: BACKUP_TIME as i64,
            inode: 500 + n as u64,
        });
    }
    let db = out.join("Manifest.db");
    let manifest_key = match &keybag {
        None => {
            manifest::write_db(&db, &rows).await?;
            None
        }
        Some(kb) => {
            let plain = out.join(".Manifest.db.plain");
            manifest::write_db(&plain, &rows).await?;
            let (key, wrapped) = kb.file_key(&mut rng, MANIFEST_CLASS);
            let mut output = BufWriter::new(File::create(&db)?);
            crypt::encrypt_stream(&key, &mut BufReader::new(File::open(&plain)?), &mut output)?;
            output.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::remove_file(&plain)?;
            Some(wrapped)
        }
    };
    write_plists(out, options, keybag.as_ref().map(|k| k.bytes.as_slice()), manifest_key)?;
    Ok(Packed { files: entries.len(), file_keys })
}

fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Dictionary {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn write_plists(out: &Path, o: &PackOptions, keybag: Option<&[u8]>, manifest_key: Option<Vec<u8>>) -> io::Result<()> {
    let date = Value::Date((SystemTime::UNIX_EPOCH + Duration::from_secs(BACKUP_TIME)).into());
    let udid = "00008110-001A2B3C4D5E801E";
    let s = |v: &str| Value::String(v.to_owned());
    let lockdown = dict([
        ("DeviceName", s(&o.device_name)),
        ("ProductVersion", s(&o.product_version)),
        ("ProductType", s("iPhone14,5")),
        ("BuildVersion", s("21F90")),
        ("UniqueDeviceID", s(udid)),
        ("SerialNumber", s("F2LSIMULATED")),
    ]);
    let mut manifest = dict([
        ("Version", s("10.0")),
        ("SystemDomainsVersion", s("24.0")),
        ("Date", date.clone()),
        ("IsEncrypted", Value::Boolean(keybag.is_some())),
        ("WasPasscodeSet", Value::Boolean(true)),
        ("Lockdown", Value::Dictionary(lockdown)),
        ("Applications", Value::Dictionary(Dictionary::new())),
    ]);
    if let Some(kb) = keybag {
        manifest.insert("BackupKeyBag".into(), Value::Data(kb.to_vec()));
    }
    if let Some(mk) = manifest_key {
        manifest.insert("ManifestKey".into(), Value::Data(mk));
    }
    let info = dict([
        ("Device Name", s(&o.device_name)),
        ("Display Name", s(&o.device_name)),
        ("Phone Number", s(&o.phone_number)),
        ("Product Version", s(&o.product_version)),
        ("Product Type", s("iPhone14,5")),
        ("Build Version", s("21F90")),
        ("Last Backup Date", date.clone()),
        ("Unique Identifier", s(udid)),
        ("Target Identifier", s(udid)),
        ("Target Type", s("Device")),
        ("GUID", s("5B1F2C3D4E5F60718293A4B5C6D7E8F9")),
    ]);
    let status = dict([
        ("BackupState", s("new")),
        ("Date", date),
        ("IsFullBackup", Value::Boolean(false)),
        ("SnapshotState", s("finished")),
        ("UUID", s("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")),
        ("Version", s("3.3")),
    ]);
    let err = |e: plist::Error| io::Error::other(e.to_string());
    Value::Dictionary(manifest).to_file_binary(out.join("Manifest.plist")).map_err(err)?;
    Value::Dictionary(info).to_file_xml(out.join("Info.plist")).map_err(err)?;
    Value::Dictionary(status).to_file_binary(out.join("Status.plist")).map_err(err)
}

/// The files of a folder laid out like an iPhone's `Library/SMS` (or a Mac's
/// `~/Library/Messages`): `sms.db` or `chat.db` (with its `-wal`/`-shm`) as HomeDomain
/// `Library/SMS/sms.db`, and every file under `Attachments/` as MediaDomain
/// `Library/SMS/Attachments/<same path>`.
pub fn entries_from_messages_dir(dir: &Path) -> io::Result<Vec<BackupEntry>> {
    let db = ["sms.db", "chat.db"]
        .into_iter()
        .find(|n| dir.join(n).is_file())
        .ok_or_else(|| io::Error::other(format!("{} has neither sms.db nor chat.db", dir.display())))?;
    let mut entries = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = dir.join(format!("{db}{suffix}"));
        if path.is_file() {
            entries.push(BackupEntry { domain: "HomeDomain".into(), relative_path: format!("Library/SMS/sms.db{suffix}"), content: Content::File(path) });
        }
    }
    // An iPhone's contacts, when the folder has them (`cloudkit-sim contacts --layout ios`).
    for name in ["AddressBook.sqlitedb", "AddressBookImages.sqlitedb"] {
        let path = dir.join(name);
        if path.is_file() {
            entries.push(BackupEntry { domain: "HomeDomain".into(), relative_path: format!("Library/AddressBook/{name}"), content: Content::File(path) });
        }
    }
    let attachments = dir.join("Attachments");
    if attachments.is_dir() {
        let mut files = Vec::new();
        walk(&attachments, "", &mut files)?;
        for (rel, path) in files {
            entries.push(BackupEntry { domain: "MediaDomain".into(), relative_path: format!("Library/SMS/Attachments/{rel}"), content: Content::File(path) });
        }
    }
    Ok(entries)
}

/// Every regular file under `dir`, as (`/`-separated path relative to the walk's root, path).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let name = child.file_name().into_string().map_err(|n| io::Error::other(format!("{}: not UTF-8: {n:?}", dir.display())))?;
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let kind = child.file_type()?;
        if kind.is_dir() {
            walk(&child.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push((rel, child.path()));
        }
    }
    Ok(())
}
