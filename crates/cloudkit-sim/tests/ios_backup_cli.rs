//! `cloudkit-sim ios-backup`: a Messages folder (with the iPhone address book `cloudkit-sim
//! contacts` writes, when there) becomes a backup folder with the layout iOS uses. (That the bytes decrypt is checked by `iphone_backup_decrypt` in
//! crates/ios-backup/tests/oracle.rs.)

use std::process::Command;

use sha1::{Digest, Sha1};

fn blob_path(out: &std::path::Path, domain: &str, rel: &str) -> std::path::PathBuf {
    let id: String = Sha1::digest(format!("{domain}-{rel}")).iter().map(|b| format!("{b:02x}")).collect();
    out.join(&id[..2]).join(id)
}

#[test]
fn a_messages_folder_becomes_a_plain_or_encrypted_backup() {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("Messages");
    std::fs::create_dir_all(messages.join("Attachments/ab/12/GUID-1")).unwrap();
    std::fs::write(messages.join("chat.db"), b"SQLite format 3\0 not really").unwrap();
    std::fs::write(messages.join("Attachments/ab/12/GUID-1/IMG_0001.jpeg"), vec![7u8; 1000]).unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "secret\n").unwrap();

    let run = |out: &std::path::Path, encrypted: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudkit-sim"));
        cmd.args(["ios-backup", "--from-dir"]).arg(&messages).arg("--out").arg(out);
        if encrypted {
            cmd.arg("--password-file").arg(&password);
        }
        let output = cmd.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(line["files"], 2);
        assert_eq!(line["encrypted"], encrypted);
        let manifest = plist::Value::from_file(out.join("Manifest.plist")).unwrap().into_dictionary().unwrap();
        assert_eq!(manifest.get("IsEncrypted").and_then(|v| v.as_boolean()), Some(encrypted));
        assert_eq!(manifest.contains_key("ManifestKey"), encrypted);
        assert!(out.join("Info.plist").is_file() && out.join("Status.plist").is_file() && out.join("Manifest.db").is_file());
        let manifest_db = std::fs::read(out.join("Manifest.db")).unwrap();
        assert_eq!(manifest_db.starts_with(b"SQLite format 3\0"), !encrypted);
        (
            std::fs::read(blob_path(out, "HomeDomain", "Library/SMS/sms.db")).unwrap(),
            std::fs::read(blob_path(out, "MediaDomain", "Library/SMS/Attachments/ab/12/GUID-1/IMG_0001.jpeg")).unwrap(),
        )
    };
    let (db, img) = run(&dir.path().join("plain"), false);
    assert_eq!(db, b"SQLite format 3\0 not really");
    assert_eq!(img, vec![7u8; 1000]);
    let (db, img) = run(&dir.path().join("encrypted"), true);
    assert_eq!(db.len(), 32, "27 bytes padded to two blocks");
    assert_eq!(img.len(), 1008);
    assert_ne!(&img[..16], &[7u8; 16]);
}

#[test]
fn an_iphone_address_book_in_the_folder_is_packed_into_home_domain() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("phone");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("sms.db"), b"SQLite format 3\0 not really").unwrap();
    let contacts = Command::new(env!("CARGO_BIN_EXE_cloudkit-sim"))
        .args(["contacts", "--layout", "ios", "--chats", "6", "--messages", "50", "--big-chat", "0", "--out"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(contacts.status.success(), "{}", String::from_utf8_lossy(&contacts.stderr));
    assert!(!folder.join("contacts.vcf").exists() && !folder.join("AddressBook").exists(), "--layout ios writes the iPhone files only");
    let backup = dir.path().join("backup");
    let output = Command::new(env!("CARGO_BIN_EXE_cloudkit-sim")).args(["ios-backup", "--from-dir"]).arg(&folder).arg("--out").arg(&backup).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["files"], 3);
    for name in ["AddressBook.sqlitedb", "AddressBookImages.sqlitedb"] {
        let packed = std::fs::read(blob_path(&backup, "HomeDomain", &format!("Library/AddressBook/{name}"))).unwrap();
        assert_eq!(packed, std::fs::read(folder.join(name)).unwrap(), "{name}");
    }
}
