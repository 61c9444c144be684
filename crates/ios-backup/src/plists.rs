//! `Manifest.plist`, `Info.plist` and `Status.plist`: whether the backup is encrypted, its
//! keybag and manifest key, and what the phone was.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use plist::{Dictionary, Value};

use crate::BackupError;

/// `Manifest.plist` of a real phone carries app icons and can reach a few MiB; refuse more.
const MAX_PLIST: u64 = 64 * 1024 * 1024;

/// Reads a property list (XML or binary) whose top level is a dictionary.
pub(crate) fn read_dict(path: &Path) -> Result<Dictionary, BackupError> {
    let file = std::fs::File::open(path).map_err(|e| BackupError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_PLIST + 1).read_to_end(&mut bytes).map_err(|e| BackupError::io(path, e))?;
    if bytes.len() as u64 > MAX_PLIST {
        return Err(BackupError::Plist { path: path.into(), reason: format!("larger than {MAX_PLIST} bytes") });
    }
    let value = Value::from_reader(std::io::Cursor::new(bytes)).map_err(|e| BackupError::Plist { path: path.into(), reason: e.to_string() })?;
    value.into_dictionary().ok_or_else(|| BackupError::Plist { path: path.into(), reason: "the top level is not a dictionary".into() })
}

fn string(d: &Dictionary, key: &str) -> Option<String> {
    d.get(key).and_then(Value::as_string).map(str::to_owned)
}

fn date(d: &Dictionary, key: &str) -> Option<SystemTime> {
    d.get(key).and_then(Value::as_date).map(SystemTime::from)
}

/// What `Manifest.plist` says about encryption.
pub(crate) struct ManifestPlist {
    pub encrypted: bool,
    pub keybag: Option<Vec<u8>>,
    pub manifest_key: Option<Vec<u8>>,
    pub lockdown_version: Option<String>,
    pub lockdown_name: Option<String>,
}

impl ManifestPlist {
    pub fn read(path: &Path) -> Result<Self, BackupError> {
        let d = read_dict(path)?;
        let data = |key: &str| d.get(key).and_then(Value::as_data).map(<[u8]>::to_vec);
        let lockdown = d.get("Lockdown").and_then(Value::as_dictionary);
        Ok(ManifestPlist {
            encrypted: d.get("IsEncrypted").and_then(Value::as_boolean).unwrap_or(false),
            keybag: data("BackupKeyBag"),
            manifest_key: data("ManifestKey"),
            lockdown_version: lockdown.and_then(|l| string(l, "ProductVersion")),
            lockdown_name: lockdown.and_then(|l| string(l, "DeviceName")),
        })
    }
}

/// The phone and the backup, as `Info.plist` and `Status.plist` describe them. Every field is
/// optional: tools other than Finder and iTunes write fewer of them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupInfo {
    pub encrypted: bool,
    pub device_name: Option<String>,
    pub phone_number: Option<String>,
    pub product_version: Option<String>,
    pub product_type: Option<String>,
    pub last_backup: Option<SystemTime>,
    /// `Status.plist` `SnapshotState`: `finished` for a complete backup.
    pub snapshot_state: Option<String>,
    pub full_backup: Option<bool>,
}

impl BackupInfo {
    pub(crate) fn read(dir: &Path, manifest: &ManifestPlist) -> Result<Self, BackupError> {
        let mut info = BackupInfo { encrypted: manifest.encrypted, ..Default::default() };
        let info_path = dir.join("Info.plist");
        if info_path.exists() {
            let d = read_dict(&info_path)?;
            info.device_name = string(&d, "Device Name");
            info.phone_number = string(&d, "Phone Number");
            info.product_version = string(&d, "Product Version");
            info.product_type = string(&d, "Product Type");
            info.last_backup = date(&d, "Last Backup Date");
        }
        info.device_name = info.device_name.or_else(|| manifest.lockdown_name.clone());
        info.product_version = info.product_version.or_else(|| manifest.lockdown_version.clone());
        let status_path = dir.join("Status.plist");
        if status_path.exists() {
            let d = read_dict(&status_path)?;
            info.snapshot_state = string(&d, "SnapshotState");
            info.full_backup = d.get("IsFullBackup").and_then(Value::as_boolean);
            info.last_backup = info.last_backup.or_else(|| date(&d, "Date"));
        }
        Ok(info)
    }
}

/// One row's `file` column: an NSKeyedArchiver archive of an `MBFile`.
#[derive(Debug, Clone, Default)]
pub(crate) struct MbFile {
    pub size: Option<u64>,
    pub protection_class: Option<u32>,
    /// The `EncryptionKey` NSData: 4-byte little-endian class, 40-byte wrapped key.
    pub encryption_key: Option<Vec<u8>>,
}

/// `file` blobs are 1–3 KiB; anything this big is not one.
const MAX_MBFILE: usize = 1024 * 1024;

impl MbFile {
    pub fn parse(blob: &[u8]) -> Result<MbFile, String> {
        if blob.len() > MAX_MBFILE {
            return Err(format!("file blob of {} bytes", blob.len()));
        }
        let archive = Value::from_reader(std::io::Cursor::new(blob)).map_err(|e| format!("file blob: {e}"))?;
        let archive = archive.as_dictionary().ok_or("file blob is not a dictionary")?;
        let objects = archive.get("$objects").and_then(Value::as_array).ok_or("file blob has no $objects")?;
        let deref = |v: &Value| -> Option<&Value> {
            match v {
                Value::Uid(uid) => objects.get(usize::try_from(uid.get()).ok()?),
                _ => None,
            }
        };
        let root = archive
            .get("$top")
            .and_then(Value::as_dictionary)
            .and_then(|top| top.get("root"))
            .and_then(deref)
            .and_then(Value::as_dictionary)
            .ok_or("file blob has no root MBFile")?;
        let int = |key: &str| root.get(key).and_then(Value::as_unsigned_integer);
        let encryption_key = match root.get("EncryptionKey") {
            None => None,
            Some(v) => {
                let obj = deref(v).ok_or("EncryptionKey is not a reference")?;
                let data = match obj {
                    Value::Data(d) => d,
                    Value::Dictionary(d) => d.get("NS.data").and_then(Value::as_data).ok_or("EncryptionKey has no NS.data")?,
                    _ => return Err("EncryptionKey is neither data nor NSData".into()),
                };
                Some(data.to_vec())
            }
        };
        Ok(MbFile { size: int("Size"), protection_class: int("ProtectionClass").and_then(|c| u32::try_from(c).ok()), encryption_key })
    }
}
