//! What the tests pack: an `sms.db`, its WAL, and attachments whose sizes sit on and around
//! the block and chunk boundaries of both implementations.

#![allow(dead_code)]

use cloudkit_sim::backup::{self, BackupEntry, Content, Encryption, Iterations, PackOptions};
use sha2::{Digest, Sha256};

pub const PASSWORD: &[u8] = b"correct horse battery staple";

/// Incompressible bytes (a SHA-256 chain), different per `seed`.
pub fn bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

pub fn entries() -> Vec<BackupEntry> {
    let mut e = vec![
        BackupEntry { domain: "HomeDomain".into(), relative_path: "Library/SMS/sms.db".into(), content: Content::Bytes(bytes("sms", 100_003)) },
        BackupEntry { domain: "HomeDomain".into(), relative_path: "Library/SMS/sms.db-wal".into(), content: Content::Bytes(bytes("wal", 4128)) },
        BackupEntry {
            domain: "HomeDomain".into(),
            relative_path: "Library/AddressBook/AddressBook.sqlitedb".into(),
            content: Content::Bytes(bytes("ab", 8192)),
        },
        BackupEntry {
            domain: "HomeDomain".into(),
            relative_path: "Library/AddressBook/AddressBookImages.sqlitedb".into(),
            content: Content::Bytes(bytes("abi", 20_000)),
        },
    ];
    for (i, len) in [0usize, 1, 15, 16, 17, 65_536, 262_144, 262_145, 1_000_000].into_iter().enumerate() {
        let rel = format!("Library/SMS/Attachments/{:02x}/{:02}/GUID-{i}/IMG_{i:04}.jpeg", i * 17 % 256, i);
        e.push(BackupEntry { domain: "MediaDomain".into(), relative_path: rel, content: Content::Bytes(bytes(&format!("att{i}"), len)) });
    }
    e
}

pub fn content(entry: &BackupEntry) -> &[u8] {
    match &entry.content {
        Content::Bytes(b) => b,
        Content::File(_) => unreachable!("the tests pack bytes"),
    }
}

pub async fn pack(dir: &std::path::Path, encrypted: bool, seed: u64) -> Vec<BackupEntry> {
    let entries = entries();
    let encryption = encrypted.then(|| Encryption { password: PASSWORD.to_vec(), iterations: Iterations::TEST });
    let options = PackOptions { encryption, seed, ..PackOptions::default() };
    backup::pack(dir, &entries, &options).await.expect("packing the test backup");
    entries
}
