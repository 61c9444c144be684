//! Delivery into a real Synapse, checked the way a person would check it: by paginating each room
//! backwards like a client and comparing with the simulator's ground truth (not with the store).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloudkit_sim::{Faults, TruthLine};
use common::matrix_env::*;
use common::*;
use matrix::ghost::{bot_user_id, ghost_user_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_twice_then_resume() {
    let sim = start_sim(spec(12, 6, 900, 1200), Faults::default()).await;
    let env = Env::start(sim).await;
    env.bridge.sync_ok().await;
    let total = env.bridge.store().await.message_guids().await.unwrap().len();
    // A crash between `createRoom` and saving the portal leaves a room only the homeserver
    // knows: the restarted bridge must adopt it, not create a second room for the chat.
    let chats = env.bridge.store().await.chats().await.unwrap();
    let orphan_chat = chats.last().unwrap().chat_id.clone();
    let hs = env.hs();
    let bot = bot_user_id(DOMAIN);
    hs.register(matrix::ghost::BOT_LOCALPART).await.unwrap();
    let orphan_room = hs
        .create_room(
            &bot,
            &serde_json::json!({
                "preset": "private_chat",
                "initial_state": [{
                    "type": "m.bridge",
                    "state_key": format!("fi.imessage_bridge://imessage/{orphan_chat}"),
                    "content": { "bridgebot": bot, "channel": { "id": orphan_chat } },
                }],
            }),
        )
        .await
        .unwrap();
    for kill_at in [150usize, 700] {
        let mut child = env.bridge.command(&["deliver"]).spawn().unwrap();
        let mut killed = false;
        for _ in 0..20_000 {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            let delivered = env.bridge.store().await.delivered_count().await.unwrap() as usize;
            if delivered >= kill_at {
                child.start_kill().unwrap();
                killed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.wait().await.unwrap();
        assert!(killed, "delivery finished before the kill at {kill_at} (of {total})");
    }
    let out = env.bridge.run(&["deliver"]).await;
    assert!(out.status.success(), "deliver after kills failed: {}", String::from_utf8_lossy(&out.stderr));
    let v = env.verify_json().await;
    assert_eq!(v["ok"], true, "verify: {v}");
    for c in v["chats"].as_array().unwrap() {
        assert_eq!(c["missing"], 0, "{c}");
        assert_eq!(c["duplicates"], 0, "{c}");
    }
    env.assert_rooms_match_truth().await;
    let portal = env.bridge.store().await.portal(&orphan_chat).await.unwrap().unwrap();
    assert_eq!(portal.room_id, orphan_room.as_str(), "the room created before the crash must be adopted");
    assert_eq!(hs.joined_rooms(&bot).await.unwrap().len(), chats.len(), "one room per chat, no duplicates");

    // The bridge's portals and ledger are lost while the homeserver keeps its rooms: every room
    // is adopted again and what it holds is recorded, so nothing is sent twice.
    let delivered = env.bridge.store().await.delivered_count().await.unwrap();
    {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&env.bridge.db_uri).await.unwrap();
        sqlx::query("DELETE FROM deliveries").execute(&mut db).await.unwrap();
        sqlx::query("DELETE FROM portals").execute(&mut db).await.unwrap();
        db.close().await.unwrap();
    }
    let out = env.bridge.run(&["deliver"]).await;
    assert!(out.status.success(), "deliver after losing the ledger failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.bridge.store().await.delivered_count().await.unwrap(), delivered);
    assert_eq!(hs.joined_rooms(&bot).await.unwrap().len(), chats.len(), "rooms must be adopted, not created again");
    let v = env.verify_json().await;
    assert_eq!(v["ok"], true, "verify after losing the ledger: {v}");
    env.assert_rooms_match_truth().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appservice_api_checks_tokens_and_bodies() {
    let sim = start_sim(spec(13, 2, 20, 0), Faults::default()).await;
    let env = Env::start(sim).await;
    let mut child = env.bridge.command(&["run"]).spawn().unwrap();
    let base = format!("http://127.0.0.1:{}", env.listen_port);
    let http = reqwest::Client::new();
    // Wait (bounded) for the listener.
    let mut up = false;
    for _ in 0..600 {
        if http.post(format!("{base}/_matrix/app/v1/ping")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "appservice listener did not come up");
    let txn = |id: &str| format!("{base}/_matrix/app/v1/transactions/{id}");
    let body = serde_json::json!({ "events": [] });
    let r = http.put(txn("1")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.put(txn("1")).bearer_auth("wrong").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A body that does not parse is answered 200 (and logged) so the homeserver moves on
    // instead of retrying it and holding back every later transaction; bodies well above
    // axum's 2 MB default are read.
    let r = http.put(txn("b1")).bearer_auth(env.hs_token()).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.put(txn("b2")).bearer_auth(env.hs_token()).json(&serde_json::json!({ "events": "nope" })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let big = serde_json::json!({ "events": [], "padding": "x".repeat(5 << 20) });
    let r = http.put(txn("b3")).bearer_auth(env.hs_token()).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 200, "a 5 MB transaction is read");
    let r = http.put(txn("b4")).bearer_auth("wrong-but-same-length-as-nothing").body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 403, "the token is checked before the body");
    let r = http.put(txn("1")).bearer_auth(env.hs_token()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.put(format!("{}?access_token={}", txn("2"), env.hs_token())).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "legacy access_token query parameter");
    let r = http.post(format!("{base}/_matrix/app/v1/ping")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// The size that broke the old bridge: a 25,072-message group chat must be reachable end to end.
/// Then the live edge on top of that history: messages that arrive after it was delivered (a
/// rename of the big group among them) are appended after it — pagination still yields every
/// room in timestamp order, ending at the newest message, with the new room name.
///
/// (One test, because delivering the big chat into Synapse is the suite's longest step: the
/// live edge is checked on it instead of on a second history of its own; see TESTING.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_chat_of_25072_messages_then_the_live_edge_is_fully_reachable() {
    let mut account = spec(1, 4, 300, 25_072);
    account.later = 250;
    let sim = start_sim(account, Faults::default()).await;
    let env = Env::start(sim).await;
    // Each full back-pagination of the big room costs Synapse minutes (about 8 ms of its CPU per
    // event served by /messages), so the history is checked once, by the room checker, and
    // `verify` runs once, at the end, over the history and the live edge together.
    env.run_once().await;
    let before = env.assert_rooms_match_truth().await;
    // 25,072 records in the big chat, of which the truth's visible messages are ~24,700 (the
    // rest are tapbacks and other records that are not messages of their own).
    assert!(before.messages > 24_000, "{before:?}");

    env.sim.sim.release_later();
    let live = env.run_once_and_verify().await;
    let big = env.sim.sim.account.chats[0].chat_id.clone();
    let reachable =
        |v: &serde_json::Value| v["chats"].as_array().unwrap().iter().find(|c| c["chat_id"] == big.as_str()).unwrap()["reachable"].as_u64().unwrap();
    assert!(reachable(&live) > 24_000, "verify reaches the big room's first message past its whole history: {live}");
    let after = env.assert_rooms_match_truth().await;
    assert!(after.messages > before.messages, "later messages must be delivered: {before:?} then {after:?}");
}

/// A person opening the rooms in Element: photos, voice messages, files, stickers, reactions,
/// edits and replies look as on the iPhone, DMs are DMs, and history leaves nothing unread.
/// Everything is checked against the simulator's truth and the media repository's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_show_media_reactions_edits_replies_and_nothing_unread() {
    use imessage::records::ContentPart;
    use sha2::{Digest, Sha256};
    let mut account = spec(21, 10, 3000, 0);
    account.later = 40;
    // After the release, besides the later messages: two delivered messages deleted, two
    // unsent, two edited again, and a group that loses one participant and gains another.
    let sim = start_sim(account, Faults { revise: 2, ..Faults::default() }).await;
    let env = Env::start(sim).await;
    // The owner's phone: a push gateway on loopback, registered before anything is delivered.
    let phone = common::pusher::PushGateway::start().await;
    env.hs().register("owner").await.unwrap();
    phone.register(&env.synapse.url, &env.as_token(), OWNER).await;
    let v = env.run_once_and_verify().await;
    env.assert_rooms_match_truth().await;
    for c in v["chats"].as_array().unwrap() {
        assert_eq!(c["unread_notifications"], 0, "verify reports the owner's unread count: {c}");
        assert_eq!(c["media_bad"], 0, "{c}");
    }

    let mut files = std::collections::HashMap::new();
    let mut messages = std::collections::HashMap::new();
    let mut dms = Vec::new();
    env.sim.sim.truth(|line| match line {
        TruthLine::Attachment { guid, mime_type, sha256, details, .. } => {
            files.insert(guid, (mime_type.unwrap_or_default(), sha256, details.is_sticker));
        }
        TruthLine::Message { ref guid, .. } => {
            messages.insert(guid.clone(), line);
        }
        TruthLine::Chat { chat, group: false, participants, .. } => dms.push((chat, participants)),
        TruthLine::Chat { .. } => {}
    });
    let hs = env.hs();
    let store = env.bridge.store().await;
    let mut seen_kinds = std::collections::BTreeSet::new();
    for portal in store.portals().await.unwrap() {
        let (events, _) = matrix::verify::paginate(&hs, &portal.room_id, OWNER).await.unwrap();
        let by_id: std::collections::HashMap<&str, &matrix::verify::SeenEvent> =
            events.iter().filter_map(|e| e.event_id.as_deref().map(|id| (id, e))).collect();
        for e in &events {
            let c = &e.raw["content"];
            let truth = e.guid.as_ref().and_then(|g| messages.get(g));
            if let Some(TruthLine::Message { content, associated_type, associated_guid, .. }) = truth {
                match (c["msgtype"].as_str(), e.event_type.as_str()) {
                    (Some(t @ ("m.image" | "m.video" | "m.audio" | "m.file")), _) => {
                        let part = e.part.unwrap_or(0);
                        let transfer = content
                            .parts
                            .iter()
                            .find_map(|p| match p {
                                ContentPart::Attachment { part: Some(n), guid: Some(g) } if *n == part => Some(g.clone()),
                                _ => None,
                            })
                            .unwrap_or_else(|| panic!("{t} event for a part that is no attachment: {c}"));
                        let (mime, sha, _) = &files[&transfer];
                        let bytes = hs.download(OWNER, c["url"].as_str().unwrap(), 64 << 20).await.unwrap();
                        assert_eq!(c["info"]["size"].as_u64(), Some(bytes.len() as u64), "{c}");
                        match mime.as_str() {
                            "image/heic" => {
                                assert_eq!((t, c["info"]["mimetype"].as_str()), ("m.image", Some("image/jpeg")), "{c}");
                                assert_eq!(&bytes[..3], &[0xff, 0xd8, 0xff], "a HEIC goes in as a JPEG");
                                assert!(c["info"]["w"].as_u64().unwrap_or(0) > 0, "{c}");
                                seen_kinds.insert("heic as jpeg");
                            }
                            "audio/x-caf" => {
                                assert_eq!((t, c["info"]["mimetype"].as_str()), ("m.audio", Some("audio/ogg")), "{c}");
                                assert_eq!(&bytes[..4], b"OggS");
                                assert!(c.get("org.matrix.msc3245.voice").is_some(), "a voice message: {c}");
                                assert!(c["org.matrix.msc1767.audio"]["duration"].as_u64().unwrap_or(0) > 500, "{c}");
                                seen_kinds.insert("voice message");
                            }
                            _ => {
                                let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                                assert_eq!(&hex, sha, "media of {transfer} is byte-identical to the source");
                                // A file that is no picture, sound or film goes up as bytes, not as its MIME type.
                                let uploaded = if t == "m.file" { "application/octet-stream" } else { mime.as_str() };
                                assert_eq!(c["info"]["mimetype"].as_str(), Some(uploaded), "{c}");
                                if t == "m.video" {
                                    // Shown as its thumbnail until played: a JPEG in the media repository.
                                    let thumb =
                                        hs.download(OWNER, c["info"]["thumbnail_url"].as_str().expect("a video has a thumbnail"), 1 << 20).await.unwrap();
                                    assert_eq!(&thumb[..3], &[0xff, 0xd8, 0xff], "{c}");
                                    assert_eq!(c["info"]["thumbnail_info"]["size"].as_u64(), Some(thumb.len() as u64), "{c}");
                                }
                                seen_kinds.insert(match t {
                                    "m.image" => "m.image",
                                    "m.video" => "m.video",
                                    "m.audio" => "m.audio",
                                    _ => "m.file",
                                });
                            }
                        }
                    }
                    (_, "m.reaction") => {
                        let (kind, target) = (associated_type.unwrap(), associated_guid.as_deref().unwrap());
                        let (part, target) = target.strip_prefix("p:").and_then(|t| t.split_once('/')).unwrap();
                        let rel = &c["m.relates_to"];
                        let on = by_id[rel["event_id"].as_str().unwrap()];
                        assert_eq!(on.guid.as_deref(), Some(target), "reaction on the right message");
                        if let Some(on_part) = on.part {
                            assert_eq!(on_part.to_string(), part, "reaction on the right part");
                        }
                        let key = rel["key"].as_str().unwrap();
                        match kind {
                            2000 => assert_eq!(key, "❤️"),
                            2006 => assert_eq!(Some(key), content.associated_emoji.as_deref()),
                            2007 => {
                                assert!(key.starts_with("mxc://"), "a sticker reaction is its image: {key}");
                                seen_kinds.insert("sticker reaction");
                            }
                            _ => {}
                        }
                        if part != "0" {
                            seen_kinds.insert("reaction on a later part");
                        }
                        seen_kinds.insert("reaction");
                    }
                    _ => {}
                }
                let original_shown = |g: &str| matches!(messages.get(g), Some(TruthLine::Message { content, .. }) if !content.unsent);
                if let Some(original) = content.reply_to.as_ref().filter(|g| original_shown(g)) {
                    if e.part.unwrap_or(0)
                        == content
                            .parts
                            .iter()
                            .find_map(|p| match p {
                                ContentPart::Text { part, .. } | ContentPart::Attachment { part, .. } => *part,
                            })
                            .unwrap_or(0)
                    {
                        let target = c["m.relates_to"]["m.in_reply_to"]["event_id"].as_str().unwrap_or_else(|| panic!("reply without in_reply_to: {c}"));
                        assert_eq!(by_id[target].guid.as_deref(), Some(original.as_str()), "reply to the right message");
                        seen_kinds.insert("reply");
                    }
                }
            }
        }
        // Edits: the last m.replace of each edited part carries its final text.
        for e in events.iter().filter(|e| e.rel_type.as_deref() == Some("m.replace")) {
            let c = &e.raw["content"];
            let original = by_id[c["m.relates_to"]["event_id"].as_str().unwrap()];
            let Some(TruthLine::Message { content, .. }) = original.guid.as_ref().and_then(|g| messages.get(g)) else { panic!("edit of an unknown message") };
            let part = original.part.unwrap_or(0);
            let history = content.edits.iter().find(|h| h.part == part).expect("an edit of an edited part");
            let texts: Vec<&str> = history.versions[1..].iter().map(|v| v.text.as_str()).collect();
            assert!(texts.contains(&c["m.new_content"]["body"].as_str().unwrap()), "{c}");
            seen_kinds.insert("edit");
        }
        // Removed tapbacks and unsent messages are not shown (their guids carry no event).
        for e in &events {
            if let Some(TruthLine::Message { content, associated_type, .. }) = e.guid.as_ref().and_then(|g| messages.get(g)) {
                assert!(!content.unsent, "an unsent message is shown: {:?}", e.guid);
                assert!(associated_type.is_none_or(|k| k < 3000), "a tapback removal is shown as an event: {:?}", e.guid);
            }
        }
    }
    for kind in ["m.image", "m.video", "m.file", "heic as jpeg", "voice message", "reaction", "sticker reaction", "reaction on a later part", "edit", "reply"] {
        assert!(seen_kinds.contains(kind), "no {kind} in the rooms: {seen_kinds:?}");
    }

    // DMs are the owner's DMs with the contact.
    let direct = hs.account_data(OWNER, "m.direct").await.unwrap().expect("m.direct is set");
    for (chat, participants) in &dms {
        let room = store.portal(chat).await.unwrap().unwrap().room_id;
        let contact = ghost_user_id(&participants[0], DOMAIN);
        assert!(direct[&contact].as_array().is_some_and(|r| r.iter().any(|x| x == &room)), "{chat}: {direct}");
    }
    assert!(!dms.is_empty());

    // History leaves nothing unread and notified nothing.
    let sync: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/_matrix/client/v3/sync", env.synapse.url))
        .bearer_auth(env.as_token())
        .query(&[("user_id", OWNER), ("timeout", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let joined = sync["rooms"]["join"].as_object().expect("the owner is in the rooms");
    assert_eq!(joined.len(), store.portals().await.unwrap().len());
    for (room, r) in joined {
        assert_eq!(r["unread_notifications"]["notification_count"], 0, "{room}: {}", r["unread_notifications"]);
        assert_eq!(r["unread_notifications"]["highlight_count"], 0, "{room}");
    }

    // The live edge notifies as usual, and the phone never heard of the history: once pushes for
    // the later messages arrive (the pusher works through events in stream order), none of the
    // pushed events is a history event.
    let mut history_events = std::collections::HashSet::new();
    for portal in store.portals().await.unwrap() {
        let (events, _) = matrix::verify::paginate(&hs, &portal.room_id, OWNER).await.unwrap();
        history_events.extend(events.into_iter().filter_map(|e| e.event_id));
    }
    env.sim.sim.release_later();
    env.run_once_and_verify().await;
    env.assert_rooms_match_truth().await;
    let pushed = phone.wait_for_events(1, Duration::from_secs(60)).await;
    assert!(!pushed.is_empty(), "live messages from others must reach the owner's pusher");
    let history_pushed: Vec<&String> = pushed.iter().filter(|id| history_events.contains(*id)).collect();
    assert!(history_pushed.is_empty(), "{} of {} pushes were history events", history_pushed.len(), pushed.len());

    // Changes after delivery, as on the iPhone: deleted and unsent messages are gone from the
    // room (their events redacted), a message edited again shows its new text, and a group's
    // members follow its participants.
    use cloudkit_sim::revisions::RevisionKind;
    let revisions = env.sim.sim.revisions();
    let mut kinds = std::collections::BTreeSet::new();
    for r in &revisions.messages {
        let room = store.portal(&r.chat_id).await.unwrap().unwrap().room_id;
        let (events, _) = matrix::verify::paginate(&hs, &room, OWNER).await.unwrap();
        let carrying: Vec<&matrix::verify::SeenEvent> = events.iter().filter(|e| e.guid.as_deref() == Some(r.guid.as_str())).collect();
        match r.kind {
            RevisionKind::Deleted | RevisionKind::Unsent => assert!(carrying.is_empty(), "{:?} {} is still shown", r.kind, r.guid),
            RevisionKind::Edited => {
                assert_eq!(carrying.len(), 1, "{}", r.guid);
                let original = carrying[0].event_id.as_deref();
                let last_edit = events
                    .iter()
                    .rfind(|e| e.rel_type.as_deref() == Some("m.replace") && e.raw["content"]["m.relates_to"]["event_id"].as_str() == original)
                    .unwrap_or_else(|| panic!("no edit of {}", r.guid));
                let final_text = &r.record.content.edits.last().unwrap().versions.last().unwrap().text;
                assert_eq!(last_edit.raw["content"]["m.new_content"]["body"].as_str(), Some(final_text.as_str()), "{}", r.guid);
            }
        }
        kinds.insert(format!("{:?}", r.kind));
    }
    assert_eq!(kinds.len(), 3, "every kind of revision was served: {kinds:?}");
    let change = revisions.participants.as_ref().expect("a participant change was served");
    let mut participants = BTreeMap::new();
    env.sim.sim.truth(|line| {
        if let TruthLine::Chat { chat, participants: p, .. } = line {
            participants.insert(chat, p);
        }
    });
    assert!(participants[&change.chat_id].contains(&change.added) && !participants[&change.chat_id].contains(&change.removed));
    for (chat, p) in &participants {
        let room = store.portal(chat).await.unwrap().unwrap().room_id;
        let mut want: std::collections::BTreeSet<String> = p.iter().map(|h| ghost_user_id(h, DOMAIN)).collect();
        want.extend([OWNER.to_string(), bot_user_id(DOMAIN)]);
        let joined: std::collections::BTreeSet<String> = hs.joined_members(&room, OWNER).await.unwrap().into_iter().collect();
        assert_eq!(joined, want, "{chat}: the room's members are the chat's participants");
    }
}

/// Portals work on room versions 10, 11 and 12: created with the version pinned in the config,
/// with power levels the homeserver accepts, the bot able to rename them, and history reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_work_on_room_versions_10_11_and_12() {
    let sim = start_sim(spec(31, 3, 60, 0), Faults::default()).await;
    let env = Env::start(sim).await;
    env.bridge.sync_ok().await;
    let hs = env.hs();
    let bot = bot_user_id(DOMAIN);
    for version in ["10", "11", "12"] {
        env.bridge.edit_config(|c| {
            assert!(c["matrix"].is_mapping(), "the config has a matrix section to pin the version in");
            c["matrix"]["room_version"] = version.into();
        });
        let out = env.bridge.run(&["deliver"]).await;
        assert!(out.status.success(), "deliver on room version {version}: {}", String::from_utf8_lossy(&out.stderr));
        let v = env.verify_json().await;
        assert_eq!(v["ok"], true, "verify on room version {version}: {v}");
        let store = env.bridge.store().await;
        for portal in store.portals().await.unwrap() {
            let create = hs.state(&portal.room_id, &bot, "m.room.create", "").await.unwrap().unwrap();
            assert_eq!(create["room_version"], version, "{}", portal.room_id);
            hs.put_state(&portal.room_id, &bot, "m.room.topic", "", &serde_json::json!({ "topic": version })).await.unwrap();
            // Next version: new rooms, so the bot leaves these and the bridge forgets them.
            hs.leave(&portal.room_id, &bot).await.unwrap();
        }
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&env.bridge.db_uri).await.unwrap();
        sqlx::query("DELETE FROM deliveries").execute(&mut db).await.unwrap();
        sqlx::query("DELETE FROM portals").execute(&mut db).await.unwrap();
        db.close().await.unwrap();
    }
}

/// Real Apple blobs end to end: the bodies, the edit history and the link preview a Matrix
/// client gets equal the values `shared/fixtures/README.md` gives for those files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apple_blobs_reach_matrix_as_their_readme_says() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../imessage/tests/data/apple");
    let fixtures = cloudkit_sim::fixtures::AppleFixtures::load(&dir, "tel:+15557654321").unwrap();
    let sim = serve_sim(cloudkit_sim::Sim::new(spec(32, 2, 20, 0), Faults::default()).with_apple_fixtures(fixtures)).await;
    let env = Env::start(sim).await;
    env.run_once_and_verify().await;
    let mut file_of = std::collections::HashMap::new();
    env.sim.sim.truth(|l| {
        if let TruthLine::Message { guid, file: Some(file), .. } = l {
            file_of.insert(guid, file);
        }
    });
    let portal = env.bridge.store().await.portal("chat-apple-fixtures").await.unwrap().expect("the fixtures' room");
    let (events, _) = matrix::verify::paginate(&env.hs(), &portal.room_id, OWNER).await.unwrap();
    let of = |file: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e.guid.as_ref().and_then(|g| file_of.get(g)).is_some_and(|f| f == file)).map(|e| &e.raw["content"]).collect()
    };
    let bodies =
        |file: &str| -> Vec<String> { of(file).iter().filter(|c| c["msgtype"] == "m.text").map(|c| c["body"].as_str().unwrap().to_string()).collect() };
    assert_eq!(bodies("attributed-body/AttributedBodyTextOnly"), ["Noter test"]);
    let url = of("attributed-body/URL");
    assert_eq!(url[0]["body"], "https://github.com/ReagentX/Logria");
    // MultiPart: three attachments (their files are not in this account: notices in their
    // places) between the text parts, in the body's order.
    let multi = of("attributed-body/MultiPart");
    assert_eq!(multi.iter().filter(|c| c["msgtype"] == "m.notice").count(), 3, "{multi:?}");
    assert_eq!(multi[0]["msgtype"], "m.notice", "the body starts with an attachment");
    assert_eq!(bodies("attributed-body/MultiPart").concat(), "test 1test 2 test 3");
    // Edited: the first version, then each edit as an m.replace of it, in order.
    let edited = of("summary-info/Edited.plist");
    assert_eq!(edited.len(), 1, "{edited:?}");
    assert_eq!(edited[0]["body"], "First message  ");
    let original = events.iter().find(|e| e.raw["content"] == *edited[0]).and_then(|e| e.event_id.clone()).unwrap();
    let edits: Vec<&str> = events
        .iter()
        .filter(|e| e.rel_type.as_deref() == Some("m.replace") && e.raw["content"]["m.relates_to"]["event_id"] == original.as_str())
        .map(|e| e.raw["content"]["m.new_content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(edits, ["Edit 1", "Edit 2", "Edited message"]);
    // Deleted: unsent, so nothing in the room.
    assert!(of("summary-info/Deleted.plist").is_empty());
    let preview = &of("payload/URL.plist")[0]["com.beeper.linkpreviews"][0];
    assert_eq!(preview["og:title"], "Christopher Sardegna");
    assert_eq!(preview["og:url"], "https://chrissardegna.com/");
    assert_eq!(preview["matched_url"], "https://chrissardegna.com");
}
