//! Ghost profiles and room names through a real Synapse, read back the way a client reads them:
//! the owner's `/sync` (Synapse's own `m.heroes`), profile lookups and media downloads. A DM
//! must be named after its contact (with the contact's photo on the ghost), never after an
//! alias; its first lines must show no raw bot id and one invite per person; a changed contact
//! must reach the rooms, a removed one fall back to its handle.
//!
//! Delivery runs in this process (the binary has no contact source yet) with a
//! `StaticProfiles`; the history comes from the binary's `sync` as everywhere else.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cloudkit_sim::Faults;
use common::matrix_env::*;
use common::*;
use matrix::delivery::{Deliverer, DeliveryConfig, NoDeliveryProgress};
use matrix::ghost::{bot_user_id, ghost_user_id};
use matrix::profiles::{AvatarImage, GhostProfile, StaticProfiles};
use serde_json::{json, Value};
use testkit::names::{dm_name, owner_sync};

const PHOTO: &[u8] = include_bytes!("../../cloudkit-sim/media/base.png");

fn profile(name: &str, photo: bool) -> GhostProfile {
    GhostProfile { display_name: name.into(), avatar: photo.then(|| AvatarImage { bytes: PHOTO.to_vec().into(), mime: "image/png".into() }) }
}

/// A deliverer configured as the binary configures it for this bridge folder.
async fn deliverer(env: &Env, profiles: StaticProfiles) -> Deliverer {
    let session = cloudkit::session_source(&env.bridge.dir.path().join("session.json")).session().await.unwrap();
    let store: Arc<dyn store::Store> = Arc::from(env.bridge.store().await);
    let config = DeliveryConfig {
        domain: DOMAIN.into(),
        owner: OWNER.into(),
        double_puppet: true,
        own_handles: session.handles.clone(),
        concurrency: 2,
        room_version: None,
        attachments_dir: env.bridge.dir.path().join("attachments"),
        media: matrix::media::MediaConfig { convert_heif: true, convert_voice: true, max_bytes: 100 << 20 },
    };
    Deliverer::new(env.hs(), store, config).with_profiles(Some(Arc::new(profiles)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_are_named_after_contacts_with_photos_and_follow_changes() {
    let env = Env::start(start_sim(spec(21, 10, 300, 0), Faults::default()).await).await;
    env.bridge.sync_ok().await;
    let chats = env.bridge.store().await.chats().await.unwrap();
    let dms: Vec<&store::Chat> = chats.iter().filter(|c| c.style != imessage::records::STYLE_GROUP && c.participants.len() == 1).collect();
    assert!(dms.len() >= 3, "the account needs three DMs: {chats:?}");
    let (sam, ada, plain) = (dms[0].participants[0].clone(), dms[1].participants[0].clone(), dms[2].participants[0].clone());
    let mut map = HashMap::from([(sam.clone(), profile("Sam Rivera", true)), (ada.clone(), profile("Ada Lovelace", false))]);
    let d = deliverer(&env, StaticProfiles(map.clone())).await;
    d.deliver_all(&NoDeliveryProgress).await.unwrap();
    let hs = env.hs();
    let bot = bot_user_id(DOMAIN);
    let store = env.bridge.store().await;
    let expect = |p: &StaticProfiles, h: &str| matrix::profiles::expected_name(Some(p), h);

    // Every DM is named after its contact (or the formatted handle), as the owner's sync shows.
    let synced = owner_sync(&env, 0).await;
    for dm in &dms {
        let room = store.portal(&dm.chat_id).await.unwrap().unwrap().room_id;
        let (state, heroes) = synced.get(&room).unwrap_or_else(|| panic!("owner not in {room}"));
        let handle = &dm.participants[0];
        assert_eq!(
            dm_name(state, heroes),
            Some(expect(&StaticProfiles(map.clone()), handle)),
            "{}: DM name; heroes {heroes:?}, state {}",
            dm.chat_id,
            Value::Array(state.iter().filter(|e| e["type"] != "m.room.power_levels").cloned().collect())
        );
        assert!(!state.iter().any(|e| e["type"] == "m.room.canonical_alias"), "{}: no canonical alias", dm.chat_id);
        // The alias still guards the chat against a second room.
        let alias = format!("#{}:{DOMAIN}", matrix::ghost::portal_alias_localpart(&dm.chat_id));
        assert_eq!(hs.resolve_alias(&bot, &alias).await.unwrap().as_deref(), Some(room.as_str()));
        // The first lines: every membership carries a display name, each person invited once.
        let (events, _) = matrix::verify::paginate(&hs, &room, OWNER).await.unwrap();
        let members: Vec<&matrix::verify::SeenEvent> = events.iter().filter(|e| e.event_type == "m.room.member").collect();
        // (Synapse names a new account by its localpart: that is the raw line to avoid.)
        for m in members.iter().filter(|m| m.raw["state_key"] != OWNER) {
            let name = m.raw["content"]["displayname"].as_str().unwrap_or("");
            let localpart = m.raw["state_key"].as_str().unwrap().trim_start_matches('@').split(':').next().unwrap();
            assert!(!name.is_empty() && name != localpart, "{}: a membership without its name: {}", dm.chat_id, m.raw);
        }
        let mut invites: BTreeMap<&str, usize> = BTreeMap::new();
        for m in members.iter().filter(|m| m.raw["content"]["membership"] == "invite") {
            *invites.entry(m.raw["state_key"].as_str().unwrap()).or_default() += 1;
        }
        let contact = ghost_user_id(handle, DOMAIN);
        assert_eq!(invites.get(contact.as_str()), Some(&1), "{}: the contact is invited once: {invites:?}", dm.chat_id);
        assert!(invites.values().all(|n| *n == 1), "{}: one invite per person: {invites:?}", dm.chat_id);
    }
    // Unnamed groups get no m.room.name (clients name them from their members); named ones theirs.
    for c in chats.iter().filter(|c| c.style == imessage::records::STYLE_GROUP) {
        let room = store.portal(&c.chat_id).await.unwrap().unwrap().room_id;
        let name = hs.state(&room, &bot, "m.room.name", "").await.unwrap().and_then(|n| n["name"].as_str().map(str::to_string));
        assert_eq!(name, c.display_name, "{}: group name", c.chat_id);
    }

    // Ghosts' global profiles: names, and Sam's photo downloads to the same bytes.
    let ghost_profile = |h: String| {
        let hs = hs.clone();
        let bot = bot.clone();
        async move { hs.profile(&bot, &ghost_user_id(&h, DOMAIN)).await.unwrap().unwrap() }
    };
    let p = ghost_profile(sam.clone()).await;
    assert_eq!(p["displayname"], "Sam Rivera");
    let mxc = p["avatar_url"].as_str().expect("Sam's ghost has an avatar").to_string();
    assert_eq!(hs.download(&bot, &mxc, 1 << 20).await.unwrap(), PHOTO, "the avatar is the contact's photo");
    assert_eq!(ghost_profile(ada.clone()).await["displayname"], "Ada Lovelace");
    assert!(ghost_profile(ada.clone()).await["avatar_url"].is_null());
    assert_eq!(ghost_profile(plain.clone()).await["displayname"].as_str(), Some(matrix::ghost::display_name(&plain).as_str()));

    // verify agrees, and can fail: with other expected names it counts them.
    let v = matrix::verify::verify_all(&d).await.unwrap();
    for c in &v.chats {
        assert_eq!((c.names_wrong, c.alias_named), (0, 0), "{}: {:?}", c.chat_id, c.shown_name);
    }
    assert!(v.ok, "{v:?}");
    d.set_profiles(Some(Arc::new(StaticProfiles(HashMap::from([(sam.clone(), profile("Someone Else", false))])))));
    let wrong = matrix::verify::verify_all(&d).await.unwrap();
    assert!(!wrong.ok && wrong.chats.iter().map(|c| c.names_wrong).sum::<u64>() >= 2, "wrong expectations must be counted");

    // Sam renamed, Ada removed from the contacts: one refresh, and the rooms follow.
    map.insert(sam.clone(), profile("Sam R.", true));
    map.remove(&ada);
    let now = StaticProfiles(map.clone());
    d.set_profiles(Some(Arc::new(now.clone())));
    let report = d.refresh_profiles().await.unwrap();
    assert_eq!((report.renamed, report.avatars_removed, report.uploads), (2, 0, 0), "{report:?}");
    assert_eq!(d.refresh_profiles().await.unwrap().renamed, 0, "a second refresh changes nothing");
    assert_eq!(ghost_profile(ada.clone()).await["displayname"].as_str(), Some(matrix::ghost::display_name(&ada).as_str()));
    // Synapse rewrites the members in the background: wait until each DM shows the new name.
    let mut synced = owner_sync(&env, 1).await;
    for attempt in 0.. {
        let mut wrong = Vec::new();
        for dm in &dms {
            let room = store.portal(&dm.chat_id).await.unwrap().unwrap().room_id;
            let (state, heroes) = &synced[&room];
            let (shown, want) = (dm_name(state, heroes), expect(&now, &dm.participants[0]));
            if shown.as_ref() != Some(&want) {
                wrong.push((shown, want));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(attempt < 300, "DM names did not follow the contacts: {wrong:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        synced = owner_sync(&env, 2 + attempt).await;
    }
    let v = matrix::verify::verify_all(&d).await.unwrap();
    assert_eq!(v.chats.iter().map(|c| (c.names_wrong, c.alias_named)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)), (0, 0));

    // A photo removed: the avatar goes.
    map.insert(sam.clone(), profile("Sam R.", false));
    d.set_profiles(Some(Arc::new(StaticProfiles(map.clone()))));
    assert_eq!(d.refresh_profiles().await.unwrap().avatars_removed, 1);
    assert!(ghost_profile(sam.clone()).await["avatar_url"].is_null());

    // A room of an older version carries its alias as canonical alias: the next start empties it.
    let room = store.portal(&dms[0].chat_id).await.unwrap().unwrap().room_id;
    let alias = format!("#{}:{DOMAIN}", matrix::ghost::portal_alias_localpart(&dms[0].chat_id));
    hs.put_state(&room, &bot, "m.room.canonical_alias", "", &json!({ "alias": alias })).await.unwrap();
    let restarted = deliverer(&env, StaticProfiles(map.clone())).await;
    restarted.deliver_all(&NoDeliveryProgress).await.unwrap();
    assert_eq!(hs.state(&room, &bot, "m.room.canonical_alias", "").await.unwrap(), Some(json!({})));
    let v = matrix::verify::verify_all(&restarted).await.unwrap();
    assert!(v.ok, "{v:?}");
}
