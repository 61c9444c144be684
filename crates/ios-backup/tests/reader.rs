//! The reader against backups packed by cloudkit-sim: plain backups, the key cache, damaged
//! files, the temporary folder, and the paths `sms.db` uses for attachments.

mod common;

use ios_backup::{attachment_location, Backup, BackupError, KeySource, Password};

#[tokio::test]
async fn a_plain_backup_reads_back_and_lists_files_not_folders() {
    let dir = tempfile::tempdir().unwrap();
    let entries = common::pack(dir.path(), false, 1).await;
    let backup = Backup::open(dir.path(), None, None).await.unwrap();
    assert!(!backup.info().encrypted);
    assert_eq!(backup.key_source(), KeySource::NotEncrypted);
    assert_eq!(backup.info().device_name.as_deref(), Some("Simulated iPhone"));
    assert_eq!(backup.info().snapshot_state.as_deref(), Some("finished"));
    assert!(backup.info().last_backup.is_some());
    // sms.db's file ID is the well-known SHA-1 of "HomeDomain-Library/SMS/sms.db".
    let sms = backup.find("HomeDomain", "Library/SMS/sms.db").await.unwrap().unwrap();
    assert_eq!(sms.file_id, "3d0d7e5fb2ce288813306e4d4636395e047a3d28");
    for entry in &entries {
        let file = backup.find(&entry.domain, &entry.relative_path).await.unwrap().unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut backup.open_reader(&file).unwrap(), &mut bytes).unwrap();
        assert!(bytes == common::content(entry), "{}", entry.relative_path);
    }
    // Folders (flags 2) are in Manifest.db but are not files.
    assert!(backup.find("MediaDomain", "Library/SMS/Attachments").await.unwrap().is_none());
    let attachments = backup.files_under("MediaDomain", "Library/SMS/Attachments/").await.unwrap();
    assert_eq!(attachments.len(), entries.iter().filter(|e| e.domain == "MediaDomain").count());
    assert_eq!(backup.files_under("HomeDomain", "Library/SMS").await.unwrap().len(), 2);
    assert_eq!(backup.files_under("HomeDomain", "Library/SM").await.unwrap().len(), 0, "a prefix is a folder, not a string prefix");
}

#[tokio::test]
async fn sms_db_with_its_wal_and_attachments_by_their_sms_db_paths() {
    let dir = tempfile::tempdir().unwrap();
    let entries = common::pack(dir.path(), true, 2).await;
    let backup = Backup::open(dir.path(), Some(&Password::new(common::PASSWORD)), None).await.unwrap();
    let sms = backup.sms_db().await.unwrap();
    assert!(sms.starts_with(backup.temp_dir()));
    assert!(std::fs::read(&sms).unwrap() == common::content(&entries[0]));
    assert!(std::fs::read(sms.with_file_name("sms.db-wal")).unwrap() == common::content(&entries[1]));
    assert!(!sms.with_file_name("sms.db-shm").exists());
    let contacts = backup.address_book().await.unwrap();
    for (path, entry) in [(&contacts.address_book, &entries[2]), (&contacts.images, &entries[3])] {
        let path = path.as_ref().unwrap_or_else(|| panic!("{} extracted", entry.relative_path));
        assert!(path.starts_with(backup.temp_dir()) && path.ends_with(&entry.relative_path["Library/".len()..]), "{}", path.display());
        assert!(std::fs::read(path).unwrap() == common::content(entry), "{}", entry.relative_path);
    }

    let att = entries.iter().find(|e| e.relative_path.ends_with("IMG_0004.jpeg")).unwrap();
    for prefix in ["~/", "/var/mobile/", "/private/var/mobile/"] {
        let path = format!("{prefix}{}", att.relative_path);
        let file = backup.attachment(&path).await.unwrap().unwrap_or_else(|| panic!("{path}"));
        assert_eq!(file.relative_path, att.relative_path);
        assert_eq!(file.domain, "MediaDomain");
    }
    assert!(backup.attachment("~/Library/SMS/Attachments/00/00/NOPE/x.jpeg").await.unwrap().is_none());
    assert_eq!(attachment_location("~/Library/SMS/sms.db"), None);
    assert_eq!(attachment_location("~/Library/SMS/Attachments/../sms.db"), None);
    assert_eq!(attachment_location("/Users/x/Library/Messages/Attachments/a/b.jpeg"), None);

    // The temporary folder is private and goes away with the backup.
    let temp = backup.temp_dir().to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&temp).unwrap().permissions().mode() & 0o777, 0o700);
    backup.close().await;
    assert!(!temp.exists());
}

#[tokio::test]
async fn the_key_cache_spares_the_derivation_and_is_bound_to_its_keybag() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let entries = common::pack(&a, true, 3).await;
    common::pack(&b, true, 4).await;
    let cache = dir.path().join("key-cache");
    let password = Password::new(common::PASSWORD);

    let first = Backup::open(&a, Some(&password), Some(&cache)).await.unwrap();
    assert!(matches!(first.key_source(), KeySource::Derived { .. }));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);
    drop(first);

    // No password needed with the cache; the files still decrypt.
    let again = Backup::open(&a, None, Some(&cache)).await.unwrap();
    assert_eq!(again.key_source(), KeySource::Cache);
    let sms = again.find("HomeDomain", "Library/SMS/sms.db").await.unwrap().unwrap();
    let dest = dir.path().join("sms.db");
    again.extract(&sms, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == common::content(&entries[0]));

    // Another backup (another keybag) does not take this cache.
    let err = Backup::open(&b, None, Some(&cache)).await.unwrap_err();
    assert!(matches!(err, BackupError::PasswordRequired), "{err:?}");
    // A damaged cache costs a derivation, not a failure.
    let mut bytes = std::fs::read(&cache).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cache, &bytes).unwrap();
    let rederived = Backup::open(&a, Some(&password), Some(&cache)).await.unwrap();
    assert!(matches!(rederived.key_source(), KeySource::Derived { .. }));
    assert_eq!(Backup::open(&a, None, Some(&cache)).await.unwrap().key_source(), KeySource::Cache);
}

#[tokio::test]
async fn damaged_and_missing_files_are_named_errors_and_the_rest_extracts() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    let entries = common::pack(&backup_dir, true, 5).await;
    let blob = |rel: &str| {
        let id = cloudkit_sim::backup::file_id("MediaDomain", rel);
        backup_dir.join(&id[..2]).join(id)
    };
    let cut = |path: std::path::PathBuf, by: u64| {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - by).unwrap();
    };
    let rel = |name: &str| entries.iter().find(|e| e.relative_path.ends_with(name)).unwrap().relative_path.clone();
    // Cut off mid-block, cut off a whole block (the padding is lost), deleted.
    let (mid, block, gone) = (rel("IMG_0006.jpeg"), rel("IMG_0007.jpeg"), rel("IMG_0002.jpeg"));
    // A file of whole blocks that lost only its padding block is still complete: Manifest.db's
    // size says where it ends (as for older iOS, which did not always pad).
    let aligned = rel("IMG_0008.jpeg");
    cut(blob(&aligned), 16);
    cut(blob(&mid), 5);
    cut(blob(&block), 16);
    std::fs::remove_file(blob(&gone)).unwrap();

    let backup = Backup::open(&backup_dir, Some(&Password::new(common::PASSWORD)), None).await.unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let (mut ok, mut failed) = (0, Vec::new());
    for (n, entry) in entries.iter().enumerate() {
        let file = backup.find(&entry.domain, &entry.relative_path).await.unwrap().unwrap();
        let dest = out.join(n.to_string());
        match backup.extract(&file, &dest).await {
            Ok(_) => {
                assert!(std::fs::read(&dest).unwrap() == common::content(entry));
                ok += 1;
            }
            Err(e) => {
                assert!(e.is_per_file(), "{e}");
                assert!(!dest.exists(), "a failed extraction leaves no partial file");
                failed.push((entry.relative_path.clone(), e));
            }
        }
    }
    assert_eq!(ok, entries.len() - 3);
    let reason = |r: &str| failed.iter().find(|(p, _)| p == r).map(|(_, e)| e.to_string()).unwrap_or_default();
    assert!(reason(&mid).contains("not a multiple of 16") && reason(&mid).contains(&mid), "{}", reason(&mid));
    assert!(reason(&block).contains("bad padding"), "{}", reason(&block));
    assert!(matches!(failed.iter().find(|(p, _)| *p == gone), Some((_, BackupError::FileMissing { .. }))));
}

#[tokio::test]
async fn not_a_backup_and_a_missing_password_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let err = Backup::open(dir.path(), None, None).await.unwrap_err();
    assert!(matches!(err, BackupError::NotABackup { .. }), "{err:?}");
    common::pack(dir.path(), true, 6).await;
    let err = Backup::open(dir.path(), None, None).await.unwrap_err();
    assert!(matches!(err, BackupError::PasswordRequired), "{err:?}");
}

#[test]
fn a_password_never_shows_and_its_file_must_be_private() {
    let password = Password::new(&b"hunter2"[..]);
    assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "hunter2\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(Password::from_file(&path), Err(BackupError::InsecurePasswordFile { mode: 0o644, .. })));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Password::from_file(&path).is_ok());
}

#[tokio::test]
async fn a_backup_without_contacts_has_no_address_book() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<_> = common::entries().into_iter().filter(|e| !e.relative_path.starts_with("Library/AddressBook/")).collect();
    cloudkit_sim::backup::pack(dir.path(), &entries, &cloudkit_sim::backup::PackOptions::default()).await.unwrap();
    let backup = Backup::open(dir.path(), None, None).await.unwrap();
    assert_eq!(backup.address_book().await.unwrap(), ios_backup::AddressBookFiles { address_book: None, images: None });
    assert!(backup.sms_db().await.is_ok());
}
