//! History from a Mac's Messages folder, end to end: the simulator writes its account as
//! `chat.db` (Apple's DDL) plus `Attachments/` (`cloudkit_sim::chatdb`, its own writer), the
//! bridge is set up with `init --source chat-db --source-path …`, `run --once` delivers into a
//! real Synapse, and every room, paginated backwards as a client does, is compared with the
//! folder's truth (worked out from the generator, never read back from the database or the
//! store). `verify` must be ok.

mod common;

use cloudkit_sim::chatdb::{self, FolderLine, FolderTruth, Layout, Schema};
use cloudkit_sim::{Faults, TruthLine};
use common::matrix_env::Env;
use common::{spec, start_sim};

/// Writes the simulator's account as a Messages folder in `dir` and returns its truth.
async fn messages_folder(sim: &cloudkit_sim::Sim, schema: Schema, dir: &std::path::Path) -> (Vec<TruthLine>, Vec<FolderLine>) {
    let layout = Layout::new(&sim.account, schema);
    chatdb::write_folder(&layout, dir).await.expect("the folder is written");
    let (mut lines, mut folder) = (Vec::new(), Vec::new());
    chatdb::truth(&layout, |t| match t {
        FolderTruth::Line(l) => lines.push(l),
        FolderTruth::Folder(f) => folder.push(f),
    });
    (lines, folder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mac_messages_folder_becomes_rooms_that_match_it() {
    let sim = start_sim(spec(21, 6, 400, 0), Faults::default()).await;
    let source = tempfile::tempdir().unwrap();
    let messages = source.path().join("Messages");
    let (truth, folder) = messages_folder(&sim.sim, Schema::Macos, &messages).await;
    let sms_chat = folder.iter().find_map(|f| match f {
        FolderLine::SmsChat { chat, messages, .. } => Some((chat.clone(), messages.clone())),
        _ => None,
    });
    let missing = folder.iter().find_map(|f| match f {
        FolderLine::MissingFile { guid, path } => Some((guid.clone(), path.clone())),
        _ => None,
    });
    let db = messages.join("chat.db");
    let env = Env::start_local(sim, &["--source", "chat-db", "--source-path", db.to_str().unwrap()]).await;

    // The owner's handles come from the database's account fields.
    let out = env.bridge.run(&["list-handles"]).await;
    assert!(out.status.success(), "list-handles: {}", String::from_utf8_lossy(&out.stderr));
    let handles = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(handles.lines().next(), Some(cloudkit_sim::account::OWN_HANDLES[0]), "{handles}");

    let doctor = env.bridge.run(&["doctor"]).await;
    let doctor_out = String::from_utf8_lossy(&doctor.stdout).to_string() + &String::from_utf8_lossy(&doctor.stderr);
    assert!(doctor_out.contains("✓ source"), "doctor checks the source: {doctor_out}");

    let verify = env.run_once_and_verify().await;
    env.assert_rooms_match(truth.clone()).await;

    // One person's iMessage and SMS threads are one room.
    let (sms_chat, sms_guids) = sms_chat.expect("the folder has an SMS twin chat");
    assert!(!sms_guids.is_empty());
    let chats: Vec<&str> = verify["chats"].as_array().unwrap().iter().filter_map(|c| c["chat_id"].as_str()).collect();
    assert_eq!(chats.iter().filter(|c| **c == sms_chat).count(), 1, "{chats:?}");

    // The offloaded file is a failed file naming its path, its message a notice.
    let (missing_guid, missing_path) = missing.expect("the folder leaves one file out");
    let status = env.bridge.status_json().await;
    let files = &status["files"];
    assert_eq!(files["failed"], 1, "status: {status}");
    let table = env.bridge.run(&["status"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header.get(1), Some(&"source"), "a local source's counts are the database's rows, not a server's:\n{table}");
    let store = env.bridge.store().await;
    let (_, file) = store.attachment_by_transfer_guid(&missing_guid).await.unwrap().expect("the attachment record is stored");
    let error = file.and_then(|f| f.last_error).unwrap_or_default();
    assert!(error.contains(&missing_path) || error.contains(missing_path.rsplit('/').next().unwrap()), "{error}");
    assert!(verify["chats"].as_array().unwrap().iter().map(|c| c["attachment_notices"].as_u64().unwrap_or(0)).sum::<u64>() >= 1);

    // Every stored file has the bytes of the folder's truth.
    let stored: std::collections::BTreeSet<String> = store.attachment_files().await.unwrap().into_iter().filter_map(|f| f.sha256).collect();
    for line in &truth {
        if let TruthLine::Attachment { guid, sha256, .. } = line {
            if *guid != missing_guid {
                assert!(stored.contains(sha256), "file of {guid} stored with its bytes");
            }
        }
    }

    // A second pass reads nothing new and sends nothing twice.
    let before = store.delivered_count().await.unwrap();
    let out = env.bridge.run(&["run", "--once"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(store.delivered_count().await.unwrap(), before);
    env.assert_rooms_match(truth).await;
}

/// Packs a Messages folder into an iPhone backup with the simulator's own packer.
async fn pack_backup(messages: &std::path::Path, out: &std::path::Path, password: Option<&str>) {
    use cloudkit_sim::backup::{self, Encryption, Iterations, PackOptions};
    let entries = backup::entries_from_messages_dir(messages).unwrap();
    let encryption = password.map(|p| Encryption { password: p.as_bytes().to_vec(), iterations: Iterations::TEST });
    backup::pack(out, &entries, &PackOptions { encryption, ..PackOptions::default() }).await.expect("the backup is packed");
}

fn secret_file(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_iphone_backup_becomes_rooms_that_match_it() {
    let sim = start_sim(spec(24, 5, 300, 0), Faults::default()).await;
    let source = tempfile::tempdir().unwrap();
    let messages = source.path().join("SMS");
    let (truth, _) = messages_folder(&sim.sim, Schema::Macos, &messages).await;
    // The phone's address book goes into the backup too (HomeDomain Library/AddressBook/).
    let people = cloudkit_sim::contacts::plan(&sim.sim.account);
    cloudkit_sim::contacts::sqlite::write_ios(&messages, &people.cards).await.expect("the iPhone address book is written");
    let backup = source.path().join("00008030-001A2B3C4D5E802E");
    pack_backup(&messages, &backup, Some("correct horse battery staple")).await;
    let password = source.path().join("backup-password");
    secret_file(&password, "correct horse battery staple\n");
    let wrong = source.path().join("wrong-password");
    secret_file(&wrong, "not the password\n");

    let env =
        Env::start_local(sim, &["--source", "ios-backup", "--source-path", backup.to_str().unwrap(), "--backup-password-file", password.to_str().unwrap()])
            .await;
    // A wrong password is one clear error, found before anything is read into the store.
    let mut config: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(&env.bridge.config).unwrap()).unwrap();
    config["source"]["backup_password_file"] = wrong.to_str().unwrap().into();
    config["source"]["key_cache"] = source.path().join("other-cache").to_str().unwrap().into();
    let wrong_config = env.bridge.dir.path().join("wrong.yaml");
    std::fs::write(&wrong_config, serde_norway::to_string(&config).unwrap()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_imessage-bridge")).arg("-c").arg(&wrong_config).arg("sync").output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("password"), "{err}");
    assert!(!err.contains("not the password"), "the password is never printed: {err}");
    assert_eq!(env.bridge.store().await.message_guids().await.unwrap().len(), 0, "nothing was read");

    let v = env.run_once_and_verify().await;
    env.assert_rooms_match(truth).await;
    // The address book inside the backup names the DMs (contacts.address_book: auto), as the
    // simulator's contact truth says.
    let names: Vec<(u64, u64)> =
        v["chats"].as_array().unwrap().iter().map(|c| (c["names_wrong"].as_u64().unwrap(), c["alias_named"].as_u64().unwrap())).collect();
    assert!(names.iter().all(|n| *n == (0, 0)), "verify: {v}");
    let want: std::collections::HashMap<String, String> = cloudkit_sim::contacts::truth(&people)
        .into_iter()
        .map(|t| (t.handle.clone(), t.expected_display_name.unwrap_or_else(|| matrix::ghost::display_name(&t.handle))))
        .collect();
    let synced = testkit::names::owner_sync(&env, 0).await;
    let store = env.bridge.store().await;
    let mut named = 0;
    for chat in store.chats().await.unwrap().iter().filter(|c| c.style != imessage::records::STYLE_GROUP && c.participants.len() == 1) {
        let room = store.portal(&chat.chat_id).await.unwrap().expect("a portal").room_id;
        let (state, heroes) = &synced[&room];
        let handle = &chat.participants[0];
        let expected = want.get(handle).cloned().unwrap_or_else(|| matrix::ghost::display_name(handle));
        assert_eq!(testkit::names::dm_name(state, heroes).as_deref(), Some(expected.as_str()), "{handle}");
        named += usize::from(expected != matrix::ghost::display_name(handle));
    }
    assert!(named >= 1, "DMs named from the backup's address book: {named}");
    // The key derived from the password is cached (0600) so a restart does not derive it again;
    // the temporary folder with the decrypted sms.db is gone.
    let cache = env.bridge.dir.path().join("backup-key.cache");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).expect("the key cache is written").permissions().mode() & 0o777, 0o600);
    let before = env.bridge.store().await.delivered_count().await.unwrap();
    let out = env.bridge.run(&["run", "--once"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.bridge.store().await.delivered_count().await.unwrap(), before, "a second pass sends nothing twice");
}
