//! Live from a Mac: `run` is up on a Messages folder while a second connection writes to
//! `chat.db` the way Messages does (WAL mode, its own transactions): a new message, a tapback,
//! an edit and an unsend. Each must reach the room by itself — the poll interval is set to an
//! hour, so only the watch on the database's folder can wake the bridge — and the room is then
//! read as a client reads it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cloudkit_sim::chatdb::{self, Layout, Schema};
use cloudkit_sim::{Faults, TruthLine};
use common::matrix_env::{Env, OWNER};
use common::{spec, start_sim};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

/// How long a change may take to show before the test gives up (the goal is seconds).
const PATIENCE: Duration = Duration::from_secs(90);

async fn writer(db: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(db).busy_timeout(Duration::from_secs(10))).await.unwrap()
}

/// Polls `check` (bounded by [`PATIENCE`]) until it holds; returns how long that took.
async fn until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not seen within {}s", PATIENCE.as_secs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_written_on_a_mac_reach_their_room_by_themselves() {
    let sim = start_sim(spec(23, 3, 80, 0), Faults::default()).await;
    let source = tempfile::tempdir().unwrap();
    let folder = source.path().join("Messages");
    let layout = Layout::new(&sim.sim.account, Schema::Macos);
    chatdb::write_folder(&layout, &folder).await.unwrap();
    let mut truth = Vec::new();
    chatdb::truth(&layout, |t| truth.push(t));
    let db = folder.join("chat.db");
    let env = Env::start_local(sim, &["--source", "chat-db", "--source-path", db.to_str().unwrap()]).await;
    // Only the watch may wake the bridge.
    env.bridge.change(&["matrix", "sync_interval_secs"], 60, 3600);

    let mut run = env.bridge.command(&["run"]).spawn().unwrap();
    let store = env.bridge.store().await;
    let history: usize = truth.iter().filter(|t| matches!(t, cloudkit_sim::chatdb::FolderTruth::Line(TruthLine::Message { system: false, .. }))).count();
    until("the history delivered", || async {
        let rooms = store.room_deliveries().await.unwrap_or_default();
        !rooms.is_empty() && rooms.iter().all(|r| r.pending + r.in_flight == 0) && rooms.iter().map(|r| r.delivered).sum::<i64>() > 0
    })
    .await;
    assert!(history > 0);

    // A DM of the folder and two plain texts of it, read with SQL.
    let mut w = writer(&db).await;
    let dm = sqlx::query("SELECT c.ROWID AS chat, h.ROWID AS handle, c.chat_identifier AS id FROM chat c JOIN chat_handle_join j ON j.chat_id = c.ROWID JOIN handle h ON h.ROWID = j.handle_id WHERE c.style = 45 AND c.service_name = 'iMessage' ORDER BY c.ROWID LIMIT 1")
        .fetch_one(&mut w)
        .await
        .unwrap();
    let (chat, handle, chat_identifier): (i64, i64, String) = (dm.get("chat"), dm.get("handle"), dm.get("id"));
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT m.guid FROM message m JOIN chat_message_join j ON j.message_id = m.ROWID WHERE j.chat_id = ? AND m.item_type = 0 \
         AND m.associated_message_type = 0 AND m.cache_has_attachments = 0 AND m.is_from_me = 1 AND m.message_summary_info IS NULL ORDER BY m.ROWID DESC LIMIT 2",
    )
    .bind(chat)
    .fetch_all(&mut w)
    .await
    .unwrap();
    assert_eq!(texts.len(), 2, "the DM has two plain texts of the owner to edit and unsend");
    let (to_edit, to_unsend) = (texts[0].clone(), texts[1].clone());
    let now_ns = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 978_307_200_000) * 1_000_000;

    // 1. A new message from the other person, as Messages inserts it.
    sqlx::query("INSERT INTO message (guid, text, handle_id, service, date, is_from_me, account) VALUES ('LIVE-NEW-1', 'written just now', ?, 'iMessage', ?, 0, 'E:me@icloud.example')")
        .bind(handle)
        .bind(now_ns)
        .execute(&mut w)
        .await
        .unwrap();
    join_last_message(&mut w, chat, now_ns).await;
    let written = Instant::now();
    let portal = store.portal(&format!("tel:{chat_identifier}")).await.unwrap().or(store.portal(&chat_identifier).await.unwrap()).expect("the DM's portal");
    let hs = env.hs();
    let events = || async { matrix::verify::paginate(&hs, &portal.room_id, OWNER).await.map(|(e, _)| e).unwrap_or_default() };
    until("the new message", || async { events().await.iter().any(|e| e.guid.as_deref() == Some("LIVE-NEW-1")) }).await;
    let latency = written.elapsed();

    // 2. A tapback on it.
    sqlx::query(
        "INSERT INTO message (guid, text, handle_id, service, date, is_from_me, associated_message_guid, associated_message_type) \
         VALUES ('LIVE-TAPBACK-1', 'Loved “written just now”', 0, 'iMessage', ?, 1, 'p:0/LIVE-NEW-1', 2000)",
    )
    .bind(now_ns + 1_000_000_000)
    .execute(&mut w)
    .await
    .unwrap();
    join_last_message(&mut w, chat, now_ns).await;
    until("the tapback", || async {
        events().await.iter().any(|e| e.guid.as_deref() == Some("LIVE-TAPBACK-1") && e.rel_type.as_deref() == Some("m.annotation"))
    })
    .await;

    // 3. An edit and 4. an unsend of earlier messages, as Messages updates rows in place.
    use cloudkit_sim::content::{encode_summary_info, PartHistory, PartSpan, SummaryInfoSpec, VersionSpec};
    let version = |text: &str, date: i64| VersionSpec { date, text: text.into(), guid: None };
    let edited = encode_summary_info(&SummaryInfoSpec {
        parts: vec![PartSpan { part: 0, offset: 0, length: "after the edit".encode_utf16().count() as i64 }],
        edits: vec![PartHistory { part: 0, versions: vec![version("before", now_ns - 1_000_000_000), version("after the edit", now_ns)] }],
        unsent_parts: Vec::new(),
    })
    .expect("an edit history encodes");
    sqlx::query("UPDATE message SET text = 'after the edit', attributedBody = NULL, message_summary_info = ?, date_edited = ? WHERE guid = ?")
        .bind(&edited)
        .bind(now_ns + 2_000_000_000)
        .bind(&to_edit)
        .execute(&mut w)
        .await
        .unwrap();
    sqlx::query("UPDATE message SET date_retracted = ?, text = NULL, attributedBody = NULL WHERE guid = ?")
        .bind(now_ns + 3_000_000_000)
        .bind(&to_unsend)
        .execute(&mut w)
        .await
        .unwrap();
    until("the edit", || async {
        events()
            .await
            .iter()
            .any(|e| e.rel_type.as_deref() == Some("m.replace") && e.raw["content"]["m.new_content"]["body"].as_str() == Some("after the edit"))
    })
    .await;
    // A redaction strips the event's content (its guid with it): it is found by its event id.
    let unsent_event = store.delivered_event(&to_unsend).await.unwrap().expect("the message to unsend was delivered");
    until("the unsend", || async {
        events().await.iter().any(|e| e.event_id.as_deref() == Some(unsent_event.as_str()) && e.raw["unsigned"]["redacted_because"].is_object())
    })
    .await;
    w.close().await.unwrap();
    eprintln!("a message written to chat.db was in its room {:.1}s later", latency.as_secs_f64());

    let _ = run.start_kill();
    let _ = run.wait().await;
    // The room stays what a client expects: verify is ok.
    let v = env.verify_json().await;
    assert_eq!(v["ok"], true, "verify: {v}");
}

/// Puts the message just inserted into chat `chat`, as Messages does with each new row.
async fn join_last_message(w: &mut sqlx::SqliteConnection, chat: i64, date_ns: i64) {
    sqlx::query("INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (?, last_insert_rowid(), ?)")
        .bind(chat)
        .bind(date_ns)
        .execute(&mut *w)
        .await
        .unwrap();
}
