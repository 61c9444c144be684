//! Contacts end to end through the binary and a real Synapse: the simulator writes its account's
//! people as contact files (`cloudkit_sim::contacts`, its own writer: numbers in human forms, a
//! shared number, an owner card, photos) with their truth (the name and photo each handle must
//! show, worked out from the plan, never read back); the bridge is set up by `init` with a
//! contact source, `run --once` delivers, and what a client sees is read back: each DM's name as
//! Element computes it from the owner's `/sync` (Synapse's `m.heroes`), and each ghost's photo
//! downloaded. `verify` must count no wrong name and no room named by an alias. Then the
//! contacts change (one renamed, one removed) and the next run must show that. The sources: a
//! vCard file, a Mac's address book beside `chat.db` (`auto`), and a real CardDAV server
//! (Radicale, filled over HTTP by the test). And once through a real client library instead of
//! our reading of `/sync`: matrix-js-sdk (Element Web's engine, `testkit::js_client`) must name
//! every DM after its contact (or its number), show the contact's photo, keep named groups' names
//! and name unnamed groups from their members.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use cloudkit_sim::contacts::{self, TruthEntry};
use cloudkit_sim::Faults;
use serde_json::Value;
use sha2::Digest;
use testkit::names::{dm_name, owner_sync};
use testkit::{spec, start_sim, Env, DOMAIN};

/// What each handle must show: the contact's name, else the handle as the bridge formats it.
fn expected(truth: &[TruthEntry]) -> HashMap<String, (String, Option<String>)> {
    truth
        .iter()
        .map(|t| {
            let name = t.expected_display_name.clone().unwrap_or_else(|| matrix::ghost::display_name(&t.handle));
            (t.handle.clone(), (name, t.photo_sha256.clone()))
        })
        .collect()
}

/// The DMs' (handle, room) pairs, from the bridge's database (which room is whose; what the room
/// shows is read from Synapse).
async fn dms(env: &Env) -> Vec<(String, String)> {
    let store = env.bridge.store().await;
    let mut out = Vec::new();
    for chat in store.chats().await.expect("chats") {
        if chat.style == imessage::records::STYLE_GROUP || chat.participants.len() != 1 {
            continue;
        }
        if let Some(portal) = store.portal(&chat.chat_id).await.expect("portal") {
            out.push((chat.participants[0].clone(), portal.room_id));
        }
    }
    out
}

/// Every DM shows what `want` says (polling: Synapse rewrites member events in the background).
/// Returns how many DMs carry a contact's name.
async fn assert_dms_named(env: &Env, want: &HashMap<String, (String, Option<String>)>, round: u32) -> usize {
    let dms = dms(env).await;
    assert!(dms.len() >= 3, "the account has DMs: {dms:?}");
    let mut wrong = Vec::new();
    for attempt in 0..300u32 {
        let synced = owner_sync(env, round * 1000 + attempt).await;
        wrong.clear();
        for (handle, room) in &dms {
            let (state, heroes) = synced.get(room).unwrap_or_else(|| panic!("the owner is not in {room}"));
            let want_name = want.get(handle).map_or_else(|| matrix::ghost::display_name(handle), |w| w.0.clone());
            let shown = dm_name(state, heroes);
            if shown.as_deref() != Some(want_name.as_str()) {
                wrong.push((handle.clone(), shown, want_name));
            }
        }
        if wrong.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(wrong.is_empty(), "DMs not named after their contacts (handle, shown, expected): {wrong:?}");
    dms.iter().filter(|(h, _)| want.get(h).is_some_and(|w| w.0 != matrix::ghost::display_name(h))).count()
}

/// The SHA-256 (hex) of the image at `mxc`, downloaded from Synapse.
async fn avatar_sha256(env: &Env, mxc: &str) -> String {
    let bytes = env.hs().download(&matrix::ghost::bot_user_id(DOMAIN), mxc, 16 << 20).await.expect("the avatar downloads");
    sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Each ghost with a contact photo shows exactly that photo; the others have no avatar.
async fn assert_photos(env: &Env, want: &HashMap<String, (String, Option<String>)>) -> usize {
    let hs = env.hs();
    let bot = matrix::ghost::bot_user_id(DOMAIN);
    let mut with_photo = 0;
    for (handle, _) in dms(env).await {
        let profile = hs.profile(&bot, &matrix::ghost::ghost_user_id(&handle, DOMAIN)).await.expect("profile").expect("the ghost exists");
        let want_photo = want.get(&handle).and_then(|w| w.1.clone());
        match (profile["avatar_url"].as_str(), want_photo) {
            (Some(mxc), Some(sha)) => {
                assert_eq!(avatar_sha256(env, mxc).await, sha, "{handle}: the avatar is the contact's photo");
                with_photo += 1;
            }
            (None, None) => {}
            (got, want) => panic!("{handle}: avatar {got:?}, contact photo {want:?}"),
        }
    }
    with_photo
}

/// `verify --json`: no wrong ghost name, no room named by an alias.
fn assert_verify_names(v: &Value) {
    let chats = v["chats"].as_array().expect("verify lists chats");
    let sum = |key: &str| chats.iter().map(|c| c[key].as_u64().unwrap_or(0)).sum::<u64>();
    assert_eq!((sum("names_wrong"), sum("alias_named")), (0, 0), "verify: {v}");
}

/// `run --once`, then what a client sees checked against `book`'s truth: verify's name counts,
/// each DM's name, each ghost's photo. Returns (DMs named from a contact, ghosts with a photo).
async fn run_and_check(env: &Env, book: &contacts::Book, round: u32) -> (usize, usize) {
    let v = env.run_once_and_verify().await;
    assert_verify_names(&v);
    let want = expected(&contacts::truth(book));
    (assert_dms_named(env, &want, round).await, assert_photos(env, &want).await)
}

/// A bridge on the simulator's account `spec` whose contacts are the simulator's plan for it,
/// written as one vCard file (`contacts.vcf`) and named in the config. Returns the plan.
async fn start_with_vcard(spec: cloudkit_sim::AccountSpec) -> (Env, contacts::Book) {
    let sim = start_sim(spec, Faults::default()).await;
    let base = contacts::plan(&sim.sim.account);
    let env = Env::start(sim).await;
    let vcf = env.bridge.path().join("contacts.vcf");
    std::fs::write(&vcf, contacts::vcf::file(&base.cards)).expect("write contacts.vcf");
    env.bridge.set(&["contacts", "vcf"], serde_norway::Value::from(vec![vcf.to_str().expect("UTF-8 path")]));
    (env, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcard_file_names_the_dms_and_a_changed_file_renames_them() {
    let (env, base) = start_with_vcard(spec(23, 10, 300, 0)).await;
    let renamed = contacts::renamed(&base);
    let vcf_renamed = env.bridge.path().join("contacts-renamed.vcf");
    std::fs::write(&vcf_renamed, contacts::vcf::file(&renamed.cards)).expect("write contacts-renamed.vcf");

    let (named, photos) = run_and_check(&env, &base, 0).await;
    assert!(named >= 2 && photos >= 1, "most DMs have a contact ({named}), and a photo reaches its ghost ({photos})");
    let (ok, doctor) = env.doctor().await;
    assert!(ok && doctor.contains("contacts") && doctor.contains("card(s)"), "doctor shows the contact source:\n{doctor}");
    let status = env.bridge.status_json().await;
    assert!(status["contacts"]["matched"].as_u64().unwrap_or(0) >= named as u64, "status counts the named people: {}", status["contacts"]);

    // One contact renamed, one removed: the next run follows.
    env.bridge.set(&["contacts", "vcf"], serde_norway::Value::from(vec![vcf_renamed.to_str().expect("UTF-8 path")]));
    assert_ne!(contacts::truth(&base), contacts::truth(&renamed), "the renamed set differs");
    run_and_check(&env, &renamed, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_book_beside_a_macs_chat_db_names_the_dms() {
    let sim = start_sim(spec(24, 8, 300, 0), Faults::default()).await;
    let source = tempfile::tempdir().expect("tempdir");
    let messages = source.path().join("Messages");
    let layout = cloudkit_sim::chatdb::Layout::new(&sim.sim.account, cloudkit_sim::chatdb::Schema::Macos);
    cloudkit_sim::chatdb::write_folder(&layout, &messages).await.expect("the Messages folder is written");
    let base = contacts::plan(&sim.sim.account);
    // A Mac's address book copied beside `chat.db` (`auto` finds it there).
    contacts::sqlite::write_mac(&messages, &base.cards).await.expect("the Mac address book is written");
    assert!(Path::new(&messages.join("AddressBook")).is_dir(), "the writer makes an AddressBook folder");
    let db = messages.join("chat.db");
    let env = Env::start_local(sim, &["--source", "chat-db", "--source-path", db.to_str().expect("UTF-8 path")]).await;

    let (named, photos) = run_and_check(&env, &base, 0).await;
    assert!(named >= 2 && photos >= 1, "most DMs have a contact ({named}), and a photo reaches its ghost ({photos})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carddav_server_names_the_dms_and_its_changes_follow() {
    use testkit::radicale::{Radicale, PASSWORD, USER};
    let sim = start_sim(spec(25, 8, 300, 0), Faults::default()).await;
    let base = contacts::plan(&sim.sim.account);
    let renamed = contacts::renamed(&base);
    let env = Env::start(sim).await;

    // A real Radicale, filled over HTTP with the simulator's cards as vCard 3.0, as iCloud serves
    // them: Radicale stores cards through vobject, which cuts a 4.0 `data:` URI photo at its
    // comma, so a 4.0 card's photo would not survive the server.
    let v3 = |card: &contacts::Card| contacts::vcf::card(&contacts::Card { v4: false, ..card.clone() });
    let dav = Radicale::start();
    let (status, _) = dav.call("PROPFIND", &format!("/{USER}/"), "application/xml", String::new()).await;
    assert_eq!(status, 207, "Radicale makes the principal on the first request");
    let book = format!("/{USER}/contacts/");
    let mkcol = r#"<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>Contacts</D:displayname></D:prop></D:set></D:mkcol>"#;
    assert_eq!(dav.call("MKCOL", &book, "application/xml", mkcol.to_string()).await.0, 201);
    for card in &base.cards {
        let (status, _) = dav.call("PUT", &format!("{book}{}.vcf", card.uid), "text/vcard", v3(card)).await;
        assert!(status == 201 || status == 204, "PUT {}: {status}", card.uid);
    }
    let password_file = env.bridge.path().join("carddav.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write the password file");
    #[cfg(unix)]
    std::fs::set_permissions(&password_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod 600");
    env.bridge.edit_config(|config| {
        config["contacts"] =
            serde_norway::from_str(&format!("carddav:\n  url: {}/\n  username: {USER}\n  password_file: {}\n", dav.base, password_file.display()))
                .expect("YAML");
    });

    let (named, photos) = run_and_check(&env, &base, 0).await;
    assert!(named >= 2 && photos >= 1, "most DMs have a contact ({named}), and a photo reaches its ghost ({photos})");
    let (ok, doctor) = env.doctor().await;
    assert!(ok && doctor.contains("carddav"), "doctor checks the CardDAV login:\n{doctor}");
    assert!(!doctor.contains(PASSWORD), "the password is in no output");

    // The server's cards change (one renamed, one removed): the next run follows.
    let renamed_uids: std::collections::BTreeSet<&str> = renamed.cards.iter().map(|c| c.uid.as_str()).collect();
    for card in base.cards.iter().filter(|c| !renamed_uids.contains(c.uid.as_str())) {
        let (status, _) = dav.call("DELETE", &format!("{book}{}.vcf", card.uid), "text/vcard", String::new()).await;
        assert!(status == 200 || status == 204, "DELETE {}: {status}", card.uid);
    }
    for card in renamed.cards.iter().filter(|c| !base.cards.contains(c)) {
        let (status, _) = dav.call("PUT", &format!("{book}{}.vcf", card.uid), "text/vcard", v3(card)).await;
        assert!(status == 201 || status == 204, "PUT {}: {status}", card.uid);
    }
    run_and_check(&env, &renamed, 1).await;
}

/// What js-sdk must call an unnamed group of `names` (every other person's expected name; the
/// bridge bot is a functional member and not counted): the one name, "A and B", or the first
/// hero's name and how many others — Element's generated name. Which person comes first is
/// Synapse's choice of heroes, so any of them may.
fn group_name_fits(shown: &str, names: &[String]) -> bool {
    match names {
        [one] => shown == one,
        [a, b] => shown == format!("{a} and {b}") || shown == format!("{b} and {a}"),
        _ => names.iter().any(|first| shown == format!("{first} and {} others", names.len() - 1)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_js_sdk_names_every_dm_after_its_contact() {
    testkit::js_client::assert_installed();
    let (env, book) = start_with_vcard(spec(75, 16, 300, 0)).await;
    // Readiness: the raw `/sync` shows every DM's contact name (Synapse rewrites the members'
    // events in the background), and verify is clean.
    run_and_check(&env, &book, 0).await;
    let want = expected(&contacts::truth(&book));
    let shown_as = |handle: &str| want.get(handle).map_or_else(|| matrix::ghost::display_name(handle), |w| w.0.clone());

    let js = testkit::js_client::owner_rooms(&env).await;
    let by_room: HashMap<&str, &testkit::js_client::JsRoom> = js.iter().map(|r| (r.room_id.as_str(), r)).collect();
    let store = env.bridge.store().await;
    let (mut table, mut wrong) = (Vec::new(), Vec::new());
    let (mut dms, mut named_groups, mut unnamed_groups, mut strangers, mut photos) = (0, 0, 0, 0, 0);
    for line in testkit::truth_lines(&env.sim.sim) {
        let cloudkit_sim::TruthLine::Chat { chat, name, participants, group } = line else { continue };
        // Which room is the chat's is the bridge's to say; what it shows is js-sdk's.
        let portal = store.portal(&chat).await.expect("portal").unwrap_or_else(|| panic!("{chat} has no room"));
        let room = by_room.get(portal.room_id.as_str()).unwrap_or_else(|| panic!("js-sdk does not show {chat}'s room {}", portal.room_id));
        table.push(format!("{:<8} {:<40} {:?} avatar {:?}", if group { "group" } else { "dm" }, chat, room.name, room.avatar));
        let names: Vec<String> = participants.iter().map(|h| shown_as(h)).collect();
        let fits = match (&name, group, participants.as_slice()) {
            (Some(n), true, _) if !n.is_empty() => {
                named_groups += 1;
                room.name == *n
            }
            (_, true, _) => {
                unnamed_groups += 1;
                group_name_fits(&room.name, &names)
            }
            (_, false, [handle]) => {
                dms += 1;
                strangers += usize::from(want.get(handle).is_none_or(|w| w.0 == matrix::ghost::display_name(handle)));
                // The member list agrees, and the avatar is the contact's photo (or none).
                let ghost = matrix::ghost::ghost_user_id(handle, DOMAIN);
                let member = room.members.iter().find(|m| m.user_id == ghost).map(|m| (&m.name, &m.avatar_url));
                let photo = want.get(handle).and_then(|w| w.1.as_deref());
                photos += usize::from(photo.is_some());
                let avatar_ok = match (room.avatar.as_deref(), photo) {
                    (Some(mxc), Some(sha)) => mxc.starts_with("mxc://") && avatar_sha256(&env, mxc).await == sha,
                    (got, want) => got.is_none() && want.is_none(),
                };
                room.name == names[0] && member == Some((&names[0], &room.avatar)) && avatar_ok
            }
            _ => panic!("a DM of {} people in the truth: {chat}", participants.len()),
        };
        // No user ID, no alias, no js-sdk placeholder.
        let raw = room.name.starts_with(['@', '#']) || room.name.contains(&format!(":{DOMAIN}")) || room.name.starts_with("Empty room");
        if !fits || raw {
            wrong.push((chat, room.name.clone(), room.avatar.clone(), name, names));
        }
    }
    eprintln!("js-sdk's room names:\n{}", table.join("\n"));
    assert!(wrong.is_empty(), "rooms js-sdk shows wrongly (chat, name, avatar, iMessage name, members' expected names): {wrong:?}");
    assert!(
        dms >= 3 && named_groups >= 1 && unnamed_groups >= 1 && photos >= 1 && strangers >= 1 && dms > strangers,
        "the account has DMs with and without a contact ({dms}, {strangers} without), a contact photo ({photos}), named ({named_groups}) and unnamed ({unnamed_groups}) groups"
    );
}
