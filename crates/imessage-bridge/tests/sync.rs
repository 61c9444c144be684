//! End-to-end sync against the simulator: the stored messages must be exactly the simulator's
//! ground truth, under faults, after a SIGKILL, and across a sync-version bump.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cloudkit::records::{ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE};
use cloudkit_sim::{Faults, TruthLine};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_account_matches_truth_with_server_counts() {
    let sim = start_sim(spec(1, 30, 3000, 25072), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    let stored = bridge.stored_guids().await;
    let truth = truth_guids(&sim.sim);
    assert_eq!(stored.len(), truth.len());
    assert!(stored == truth, "stored and truth differ");

    let status = bridge.status_json().await;
    assert_eq!(status["sync_version"], sync::SYNC_VERSION);
    for z in [CHAT_ZONE, MESSAGE_ZONE, ATTACHMENT_ZONE] {
        let z = zone(&status, z);
        assert_eq!(z["stop_reason"], "api_done", "{z}");
        assert_eq!(z["complete"], true, "{z}");
        assert_eq!(z["server_count"], z["stored"], "{z}");
        assert_eq!(z["undecryptable"], 0, "{z}");
        assert!(z["pages"].as_i64().unwrap() >= 1);
        assert_eq!(z["last_page"]["done"], true);
    }
    assert_eq!(zone(&status, MESSAGE_ZONE)["stored"].as_u64().unwrap() as usize, truth.len());
    // Records of a type the bridge does not read are skipped and counted, not failures; the
    // server's MessagesSummary list is kept as it came (its second element is not a count of
    // messages, so a client that summed it would not be complete).
    let messages = zone(&status, MESSAGE_ZONE);
    assert!(sim.sim.account.foreign > 0);
    assert_eq!(messages["skipped"], sim.sim.account.foreign, "{messages}");
    assert_eq!(zone(&status, CHAT_ZONE)["skipped"], 0);
    let summary: Vec<i64> = serde_json::from_value(messages["server_summary"].clone()).unwrap();
    assert_eq!(summary, vec![truth.len() as i64, sim.sim.account.deleted as i64]);

    // The big chat holds exactly --big-chat messages, and every chat's name is the current one.
    let store = bridge.store().await;
    let truth_names = truth_names(&sim.sim);
    let chats = store.chats().await.unwrap();
    assert_eq!(chats.len(), truth_names.len());
    for c in &chats {
        assert_eq!(Some(&c.display_name), truth_names.get(&c.chat_id), "name of {}", c.chat_id);
    }
    let big = &sim.sim.account.chats[0].chat_id;
    assert_eq!(store.messages_in_chat(big).await.unwrap().len(), 25072);

    // Field by field: every message's text and decoded content (parts, attachment GUIDs, edit
    // histories, unsends, link previews, effects) equal what the simulator generated.
    let mut expected = std::collections::HashMap::new();
    sim.sim.truth(|l| {
        if let TruthLine::Message { guid, text, content, associated_type, associated_guid, .. } = l {
            expected.insert(guid, (text, content, associated_type, associated_guid));
        }
    });
    let mut kinds = std::collections::BTreeSet::new();
    for c in &chats {
        for m in store.messages_in_chat(&c.chat_id).await.unwrap() {
            let (text, content, associated_type, associated_guid) = &expected[&m.guid];
            assert_eq!((&m.text, &m.content), (text, content), "message {}", m.guid);
            assert_eq!((&m.associated_type, &m.associated_guid), (associated_type, associated_guid), "tapback {}", m.guid);
            if let (Some(t), Some(target)) = (m.associated_type, &m.associated_guid) {
                let (part, target) = target.strip_prefix("p:").and_then(|t| t.split_once('/')).expect("a tapback names the part it reacts to");
                assert_eq!(expected[target].2, None, "tapback {} reacts to another tapback", m.guid);
                let target_parts = expected[target].1.parts.len().max(1);
                assert!(part.parse::<usize>().unwrap() < target_parts, "tapback {} names a part its target lacks", m.guid);
                kinds.insert(match t {
                    2000..=2005 => "classic tapback",
                    2006 => "emoji tapback",
                    2007 => "sticker",
                    3000.. => "removed tapback",
                    _ => "other tapback",
                });
                if part != "0" {
                    kinds.insert("tapback on a later part");
                }
                assert_eq!(m.content.associated_emoji.is_some(), t % 1000 == 6, "{m:?}");
            }
            if let Some(original) = &m.content.reply_to {
                assert_eq!(expected[original].2, None, "reply {} answers a tapback", m.guid);
                kinds.insert("reply");
            }
            kinds.extend(
                [
                    (!m.content.edits.is_empty()).then_some("edited"),
                    m.content.unsent.then_some("unsent"),
                    m.content.link_preview.as_ref().map(|_| "link"),
                    m.content.effect.as_ref().map(|_| "effect"),
                    m.content.parts.iter().any(|p| matches!(p, imessage::records::ContentPart::Attachment { .. })).then_some("attachment"),
                ]
                .into_iter()
                .flatten(),
            );
        }
    }
    assert_eq!(kinds.len(), 11, "every content kind occurs: {kinds:?}");
    // Stickers placed on messages carry a sticker attachment.
    let stickers = store.attachments().await.unwrap().into_iter().filter(|a| a.details.is_sticker).count();
    assert!(stickers > 0 && stickers < store.attachments().await.unwrap().len());
    assert!(!kinds.contains("other tapback"));

    // A second sync is incremental: nothing new, still exact.
    bridge.sync_ok().await;
    assert_eq!(bridge.stored_guids().await, truth);
}

/// Chat names from the simulator's truth as it stands now.
fn truth_names(sim: &cloudkit_sim::Sim) -> std::collections::BTreeMap<String, Option<String>> {
    let mut names = std::collections::BTreeMap::new();
    sim.truth(|l| {
        if let TruthLine::Chat { chat, name, .. } = l {
            names.insert(chat, name);
        }
    });
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_after_a_complete_sync_are_picked_up_from_the_token() {
    let mut account = spec(6, 12, 1500, 400);
    account.later = 300;
    let sim = start_sim(account, Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    let history = truth_guids(&sim.sim);
    assert_eq!(bridge.stored_guids().await, history);
    let pages_before = zone(&bridge.status_json().await, MESSAGE_ZONE)["pages"].as_i64().unwrap();

    sim.sim.release_later();
    let now = truth_guids(&sim.sim);
    assert!(now.len() >= history.len() + 300 && now.is_superset(&history), "the simulator must add messages");
    bridge.sync_ok().await;
    assert!(bridge.stored_guids().await == now, "stored and truth differ after the later messages");

    let status = bridge.status_json().await;
    let messages = zone(&status, MESSAGE_ZONE);
    assert_eq!(messages["server_count"], messages["stored"], "{messages}");
    // Incremental: the second pass resumed from the saved token (300 messages = 2 pages of 200).
    assert_eq!(messages["pages"].as_i64().unwrap(), pages_before + 2, "{messages}");

    // The first later message renamed a group: the store's name is the new one.
    let names = truth_names(&sim.sim);
    let renamed = &sim.sim.account.chats.iter().find(|c| c.group_id.is_some()).unwrap().chat_id;
    let store = bridge.store().await;
    let chats = store.chats().await.unwrap();
    let stored_name = &chats.iter().find(|c| &c.chat_id == renamed).unwrap().display_name;
    assert_eq!(Some(stored_name), names.get(renamed));
    assert!(stored_name.as_deref().is_some_and(|n| n.ends_with(&format!("({})", sim.sim.account.history))), "{stored_name:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_errors_throttling_and_late_keys_still_give_exact_set() {
    let faults = Faults { page_errors: 0.05, pcs_late: 0.02, throttle: 0.03, retry_after_secs: 0, ..Faults::default() };
    let sim = start_sim(spec(2, 20, 4000, 3000), faults).await;
    let bridge = BridgeDir::new(&sim);
    // With 5% failures a zone can exhaust its budget of 3; each rerun resumes from the token.
    for _ in 0..10 {
        if bridge.run(&["sync"]).await.status.success() {
            break;
        }
    }
    let status = bridge.status_json().await;
    assert_eq!(zone(&status, MESSAGE_ZONE)["stop_reason"], "api_done", "{status}");
    assert_eq!(bridge.stored_guids().await, truth_guids(&sim.sim));
    for z in status["zones"].as_array().unwrap() {
        assert_eq!(z["undecryptable"], 0, "late keys must all be recovered: {z}");
        assert_eq!(z["complete"], true, "{z}");
    }
    assert!(sim.sim.stats().injected_errors > 0, "the test must actually inject errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_keys_are_exactly_the_missing_records() {
    let faults = Faults { pcs_lost: 0.01, pcs_late: 0.01, ..Faults::default() };
    let sim = start_sim(spec(3, 20, 5000, 2000), faults).await;
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    let status = bridge.status_json().await;
    let msg = zone(&status, MESSAGE_ZONE);
    assert_eq!(msg["stop_reason"], "api_done");
    assert_eq!(msg["complete"], false, "lost records cannot be complete: {msg}");
    let undecryptable: BTreeSet<String> = msg["undecryptable_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["reason"].as_str().unwrap().contains("pcs key"), "{r}");
            let name = r["record_name"].as_str().unwrap();
            let g = sim.sim.account.message_index(name).unwrap_or_else(|| panic!("unknown record {name}"));
            sim.sim.account.message(g).record.guid
        })
        .collect();
    assert!(!undecryptable.is_empty());
    assert_eq!(msg["undecryptable"].as_u64().unwrap() as usize, undecryptable.len());
    let truth = truth_guids(&sim.sim);
    let stored = bridge.stored_guids().await;
    let missing: BTreeSet<String> = truth.difference(&stored).cloned().collect();
    assert_eq!(missing, undecryptable, "missing messages must be exactly the reported undecryptable ones");
    assert!(stored.is_subset(&truth));
    assert_eq!(msg["stored"].as_u64().unwrap() + msg["undecryptable"].as_u64().unwrap(), msg["server_count"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_changes_are_counted_and_the_rest_of_their_pages_stored() {
    let sim = start_sim(spec(6, 20, 4000, 0), Faults { bad_changes: 0.01, ..Faults::default() }).await;
    let (damaged, damaged_guids) = sim.sim.damaged_messages();
    assert!(damaged > 0 && !damaged_guids.is_empty(), "the test must actually damage records");
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    let status = bridge.status_json().await;
    let msg = zone(&status, MESSAGE_ZONE);
    assert_eq!(msg["stop_reason"], "api_done", "damaged records must not stop the zone: {msg}");
    assert_eq!(msg["complete"], false, "{msg}");
    assert_eq!(msg["undecryptable"].as_u64().unwrap(), damaged, "every damaged change is counted once: {msg}");
    for r in msg["undecryptable_records"].as_array().unwrap() {
        assert!(r["reason"].as_str().unwrap().contains("not a valid record change"), "{r}");
    }
    let truth = truth_guids(&sim.sim);
    let stored = bridge.stored_guids().await;
    let missing: BTreeSet<String> = truth.difference(&stored).cloned().collect();
    assert_eq!(missing, damaged_guids.into_iter().collect(), "exactly the damaged messages are missing");
    assert!(stored.is_subset(&truth));
    // A second run resumes from the token: nothing is counted twice.
    bridge.sync_ok().await;
    let again = bridge.status_json().await;
    assert_eq!(zone(&again, MESSAGE_ZONE)["undecryptable"].as_u64().unwrap(), damaged);
}

/// Messages a sync has committed: folded into `messages`, or still in the ingest log
/// (`message_log`, deletions excluded; a name logged twice counts twice, which only makes a kill
/// come a little earlier).
const COMMITTED_MESSAGES: &str = "SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM message_log WHERE deleted = 0)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_sync_then_resume_gives_exact_set() {
    let sim = start_sim(spec(4, 30, 3000, 25072), Faults { page_size: 100, ..Faults::default() }).await;
    let bridge = BridgeDir::new(&sim);
    let truth = truth_guids(&sim.sim);
    for kill_after in [3_000usize, 15_000] {
        let mut child = bridge.command(&["sync"]).spawn().unwrap();
        // Wait (bounded) until the sync has committed at least `kill_after` messages, then kill -9.
        let mut killed = false;
        for _ in 0..6000 {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            // Progress only (what decides when to kill): messages committed so far, read on a
            // read-only connection, so this poll neither writes nor folds the store's ingest log
            // while the sync writes. The assertions below read through the store.
            let committed = bridge.sqlite_int(COMMITTED_MESSAGES).await.unwrap_or(0);
            if committed >= kill_after as i64 {
                child.start_kill().unwrap();
                killed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = child.wait().await.unwrap();
        assert!(killed, "sync finished before it could be killed ({status})");
        let partial = bridge.stored_guids().await;
        assert!(partial.len() < truth.len() && partial.is_subset(&truth), "partial state must be a subset of truth");
    }
    bridge.sync_ok().await;
    assert_eq!(bridge.stored_guids().await, truth);
    let status = bridge.status_json().await;
    for z in status["zones"].as_array().unwrap() {
        assert_eq!(z["complete"], true, "{z}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_budget_stops_with_resumable_token() {
    let failing = start_sim(spec(5, 10, 2000, 1000), Faults { page_errors: 1.0, ..Faults::default() }).await;
    let bridge = BridgeDir::new(&failing);
    let out = bridge.run(&["sync"]).await;
    assert!(!out.status.success(), "a sync that cannot fetch must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error_budget"), "stderr must say why: {stderr}");
    let status = bridge.status_json().await;
    for z in status["zones"].as_array().unwrap() {
        assert_eq!(z["stop_reason"], "error_budget", "{z}");
        assert!(z["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{z}");
    }

    // Partway: a healthy sync of the same account, killed by a burst of errors mid-zone.
    let flaky = start_sim(spec(5, 10, 2000, 1000), Faults { page_errors: 0.2, error_burst: 3, page_size: 50, ..Faults::default() }).await;
    bridge.point_at(&flaky);
    let mut stopped_with_token = false;
    for _ in 0..30 {
        if bridge.run(&["sync"]).await.status.success() {
            break;
        }
        let status = bridge.status_json().await;
        let m = zone(&status, MESSAGE_ZONE);
        if m["stop_reason"] == "error_budget" && m["pages"].as_i64().unwrap() > 0 {
            stopped_with_token = true;
            break;
        }
    }
    let healthy = start_sim(spec(5, 10, 2000, 1000), Faults::default()).await;
    bridge.point_at(&healthy);
    bridge.sync_ok().await;
    assert_eq!(bridge.stored_guids().await, truth_guids(&healthy.sim));
    assert!(stopped_with_token, "an error burst should have stopped the message zone mid-way at least once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_bump_forces_full_resync_and_empty_pass_saves_no_version() {
    // An empty account: the pass stores nothing, so no version is saved.
    let empty = start_sim(spec(6, 0, 0, 0), Faults::default()).await;
    let bridge = BridgeDir::new(&empty);
    bridge.sync_ok().await;
    assert_eq!(bridge.status_json().await["sync_version"], serde_json::Value::Null);

    let sim = start_sim(spec(6, 5, 500, 100), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    let status = bridge.status_json().await;
    assert_eq!(status["sync_version"], sync::SYNC_VERSION);
    let pages_before = zone(&status, MESSAGE_ZONE)["pages"].as_i64().unwrap();

    // Pretend the data was written by an older version: the next sync starts every zone over.
    bridge.store().await.set_sync_version(sync::SYNC_VERSION - 1).await.unwrap();
    let sim_pages_before = sim.sim.stats().pages;
    bridge.sync_ok().await;
    let status = bridge.status_json().await;
    assert_eq!(status["sync_version"], sync::SYNC_VERSION);
    assert_eq!(zone(&status, MESSAGE_ZONE)["pages"].as_i64().unwrap(), pages_before, "re-sync pages from scratch");
    assert!(sim.sim.stats().pages - sim_pages_before >= pages_before as u64, "all pages were fetched again");
    assert_eq!(bridge.stored_guids().await, truth_guids(&sim.sim));
}

/// Real blobs written by Apple's Messages (`shared/fixtures/apple`, copied into the domain
/// crate's test data) go through CloudKit records, PCS, sync and the store, and come out as the
/// fixtures' README says they hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apple_blobs_are_stored_as_their_readme_says() {
    use imessage::records::{ContentPart, MessageRecord};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../imessage/tests/data/apple");
    let fixtures = cloudkit_sim::fixtures::AppleFixtures::load(&dir, "tel:+15557654321").unwrap();
    assert_eq!(fixtures.messages.len(), 7, "four attributed bodies, two summaries, one payload");
    let sim = serve_sim(cloudkit_sim::Sim::new(spec(8, 3, 60, 0), Faults::default()).with_apple_fixtures(fixtures)).await;
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    assert!(bridge.stored_guids().await == truth_guids(&sim.sim));

    // Which stored message carries which file: truth names it.
    let mut file_of = std::collections::HashMap::new();
    sim.sim.truth(|l| {
        if let TruthLine::Message { guid, file: Some(file), .. } = l {
            file_of.insert(guid, file);
        }
    });
    let store = bridge.store().await;
    let stored: std::collections::HashMap<String, MessageRecord> =
        store.messages_in_chat("chat-apple-fixtures").await.unwrap().into_iter().map(|m| (file_of[&m.guid].clone(), m)).collect();
    assert_eq!(stored.len(), 7);
    let text_of = |file: &str| -> String {
        stored[file].content.parts.iter().filter_map(|p| if let ContentPart::Text { text, .. } = p { Some(text.as_str()) } else { None }).collect()
    };
    assert_eq!(text_of("attributed-body/AttributedBodyTextOnly"), "Noter test");
    assert_eq!(text_of("attributed-body/URL"), "https://github.com/ReagentX/Logria");
    assert!(stored["attributed-body/Blank"].content.parts.iter().all(|p| matches!(p, ContentPart::Text { text, .. } if text.is_empty())));

    let multi = &stored["attributed-body/MultiPart"].content.parts;
    let guids: Vec<&str> = multi.iter().filter_map(|p| if let ContentPart::Attachment { guid, .. } = p { guid.as_deref() } else { None }).collect();
    let suffix = "F0668F79-20C2-49C9-A87F-1B007ABB0CED";
    assert_eq!(guids, [format!("at_0_{suffix}"), format!("at_2_{suffix}"), format!("at_4_{suffix}")]);
    assert_eq!(text_of("attributed-body/MultiPart"), "test 1test 2 test 3");
    assert!(multi.iter().all(|p| matches!(p, ContentPart::Text { part: Some(_), .. } | ContentPart::Attachment { part: Some(_), .. })), "{multi:?}");
    assert!(matches!(multi.first(), Some(ContentPart::Attachment { .. })), "the body starts with an attachment: {multi:?}");

    let edited = &stored["summary-info/Edited.plist"].content;
    assert_eq!(edited.edits.len(), 1, "{edited:?}");
    let versions: Vec<(i64, &str)> = edited.edits[0].versions.iter().map(|v| (v.apple_ns, v.text.as_str())).collect();
    assert_eq!(
        versions,
        [
            (690_513_474_000_000_000, "First message  "),
            (690_513_480_000_000_000, "Edit 1"),
            (690_513_485_000_000_000, "Edit 2"),
            (690_513_494_000_000_000, "Edited message"),
        ]
    );
    assert!(!edited.unsent);
    assert!(stored["summary-info/Deleted.plist"].content.unsent, "0 remaining parts: unsent");

    let preview = stored["payload/URL.plist"].content.link_preview.as_ref().expect("a link preview");
    assert_eq!(preview.title.as_deref(), Some("Christopher Sardegna"));
    assert_eq!(preview.url.as_deref(), Some("https://chrissardegna.com/"));
    assert_eq!(preview.original_url.as_deref(), Some("https://chrissardegna.com"));
    assert_eq!(preview.icon_url.as_deref(), Some("https://chrissardegna.com/favicon.ico"));
    assert_eq!(preview.summary, None);
    assert!(preview.image_urls.is_empty());
    assert!(stored.values().all(|m| m.content.undecodable.is_empty()), "every real blob decodes");
}

/// A blob that does not decode keeps its message, is counted and is listed in `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_blob_keeps_its_message_and_is_listed_in_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("attributed-body")).unwrap();
    std::fs::create_dir_all(dir.path().join("payload")).unwrap();
    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../imessage/tests/data/apple/attributed-body/AttributedBodyTextOnly");
    std::fs::copy(good, dir.path().join("attributed-body/Good")).unwrap();
    std::fs::write(dir.path().join("attributed-body/Damaged"), b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttr").unwrap();
    std::fs::write(dir.path().join("payload/NotAPlist.plist"), b"bplist00 but not really").unwrap();
    let fixtures = cloudkit_sim::fixtures::AppleFixtures::load(dir.path(), "tel:+15557654321").unwrap();
    let sim = serve_sim(cloudkit_sim::Sim::new(spec(9, 2, 30, 0), Faults::default()).with_apple_fixtures(fixtures)).await;
    let bridge = BridgeDir::new(&sim);
    bridge.sync_ok().await;
    assert!(bridge.stored_guids().await == truth_guids(&sim.sim), "every message is stored, the damaged ones too");

    let mut file_of = std::collections::HashMap::new();
    sim.sim.truth(|l| {
        if let TruthLine::Message { guid, file: Some(file), .. } = l {
            file_of.insert(guid, file);
        }
    });
    let status = bridge.status_json().await;
    let listed: BTreeSet<(String, String)> = status["undecodable_blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (file_of[b["guid"].as_str().unwrap()].clone(), b["field"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([
            ("attributed-body/Damaged".to_string(), "attributedBody".to_string()),
            ("payload/NotAPlist.plist".to_string(), "payloadData".to_string()),
        ])
    );
    for z in [CHAT_ZONE, MESSAGE_ZONE] {
        assert_eq!(zone(&status, z)["complete"], true, "a message with a bad blob is still stored: {}", zone(&status, z));
    }
    let text = bridge.run(&["status"]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("2 message(s) kept with their text"), "{}", String::from_utf8_lossy(&text.stdout));
}

/// Config, registration, session and database hold the account's secrets: 0600 (Unix).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sim = start_sim(spec(10, 2, 40, 0), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_imessage-bridge"))
        .args(["init", "--homeserver", "http://127.0.0.1:9", "--domain", "example.org", "--owner", "@me:example.org"])
        .args(["--cloudkit", &sim.url, "--session"])
        .arg(bridge.dir.path().join("session.json"))
        .arg("--out")
        .arg(bridge.dir.path().join("init"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    bridge.sync_ok().await;
    let mode = |name: &str| std::fs::metadata(bridge.dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    for file in ["init/config.yaml", "init/registration.yaml", "session.json", "bridge.db"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    if bridge.dir.path().join("bridge.db-wal").exists() {
        assert_eq!(mode("bridge.db-wal"), 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_handles_prints_only_handles_even_with_trace_logs() {
    let sim = start_sim(spec(3, 2, 10, 0), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    let out = bridge.command(&["-vv", "list-handles"]).env("RUST_LOG", "trace").output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, sim.sim.session.handles.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(lines.iter().all(|l| l.starts_with("tel:") || l.starts_with("mailto:")), "{stdout}");
    // The session named on the command line wins; a missing or corrupt one is a clear error.
    let missing = bridge.dir.path().join("nope.json");
    let out = bridge.command(&["list-handles", "--session", missing.to_str().unwrap()]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json"), "{}", String::from_utf8_lossy(&out.stderr));
    let corrupt = bridge.dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{ not a session").unwrap();
    let out = bridge.command(&["list-handles", "--session", corrupt.to_str().unwrap()]).output().await.unwrap();
    assert!(!out.status.success() && out.stdout.is_empty());
}
