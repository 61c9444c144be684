//! `messages-folder` checked with plain SQL against the generator's truth: the schema is Apple's
//! (as SQLite itself reads the DDL, not as the writer's own parser does), every chat holds the
//! messages truth gives it, dates have the generation's unit, and the attachment files are the
//! bytes truth hashes, but for the one left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use cloudkit_sim::account::{Account, AccountSpec};
use cloudkit_sim::chatdb::{self, FolderLine, FolderTruth, Layout, Schema};
use cloudkit_sim::TruthLine;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row, SqliteConnection};

const APPLE_EPOCH_MS: i64 = 978_307_200_000;

fn account() -> Account {
    Account::generate(AccountSpec { seed: 11, chats: 10, messages: 1500, big_chat: 200, later: 0 })
}

async fn open(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new().filename(path).read_only(true).connect().await.expect("open chat.db")
}

async fn build(account: &Account, schema: Schema) -> (tempfile::TempDir, Vec<FolderTruth>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = Layout::new(account, schema);
    chatdb::write_folder(&layout, dir.path()).await.expect("write folder");
    let mut truth = Vec::new();
    chatdb::truth(&layout, |l| truth.push(l));
    (dir, truth)
}

/// Table name → column names, as SQLite reports them.
async fn columns(conn: &mut SqliteConnection) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'").fetch_all(&mut *conn).await.expect("tables");
    let mut out = BTreeMap::new();
    for t in tables {
        let cols: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}')")).fetch_all(&mut *conn).await.expect("columns");
        out.insert(t, cols);
    }
    out
}

async fn names(conn: &mut SqliteConnection, kind: &str) -> BTreeSet<String> {
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = ? AND sql IS NOT NULL")
        .bind(kind)
        .fetch_all(conn)
        .await
        .expect("names")
        .into_iter()
        .collect()
}

/// Apple's DDL loaded by SQLite itself into a fresh database.
async fn reference_schema() -> SqliteConnection {
    let ddl = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/macos.sql")).expect("schema/macos.sql");
    let mut conn = SqliteConnectOptions::new().in_memory(true).connect().await.expect("memory db");
    for stmt in ddl.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("CREATE TABLE sqlite_sequence")) {
        sqlx::query(stmt).execute(&mut conn).await.expect(stmt);
    }
    conn
}

fn bare(address: &str) -> &str {
    address.strip_prefix("tel:").or_else(|| address.strip_prefix("mailto:")).unwrap_or(address)
}

struct Expect {
    /// chat_identifier → number of messages (SMS twin folded into its DM).
    per_chat: BTreeMap<String, usize>,
    /// guid → (sender, from_me, system, ts_ms)
    messages: HashMap<String, (String, bool, bool, i64)>,
    /// attachment guid → sha256
    sha: HashMap<String, String>,
    sms: Option<(String, Vec<String>)>,
    missing: Option<(String, String)>,
}

fn expect(truth: &[FolderTruth]) -> Expect {
    let mut e = Expect { per_chat: BTreeMap::new(), messages: HashMap::new(), sha: HashMap::new(), sms: None, missing: None };
    for line in truth {
        match line {
            FolderTruth::Line(TruthLine::Chat { chat, .. }) => {
                e.per_chat.entry(bare(chat).to_string()).or_default();
            }
            FolderTruth::Line(TruthLine::Message { chat, guid, sender, from_me, system, ts_ms, .. }) => {
                *e.per_chat.entry(bare(chat).to_string()).or_default() += 1;
                e.messages.insert(guid.clone(), (sender.clone(), *from_me, *system, *ts_ms));
            }
            FolderTruth::Line(TruthLine::Attachment { guid, sha256, .. }) => {
                e.sha.insert(guid.clone(), sha256.clone());
            }
            FolderTruth::Folder(FolderLine::SmsChat { guid, messages, .. }) => e.sms = Some((guid.clone(), messages.clone())),
            FolderTruth::Folder(FolderLine::MissingFile { guid, path }) => e.missing = Some((guid.clone(), path.clone())),
        }
    }
    e
}

/// Checks every generation shares: integrity and WAL, messages per chat, senders and dates,
/// the SMS twin, the attachment files.
async fn check_folder(dir: &Path, truth: &[FolderTruth], seconds: bool) {
    let e = expect(truth);
    let mut conn = open(&dir.join("chat.db")).await;
    let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.expect("integrity");
    assert_eq!(ok, "ok");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.expect("journal mode");
    assert_eq!(mode, "wal");

    let rows =
        sqlx::query("SELECT c.chat_identifier, c.guid, count(j.message_id) FROM chat c LEFT JOIN chat_message_join j ON j.chat_id = c.ROWID GROUP BY c.ROWID")
            .fetch_all(&mut conn)
            .await
            .expect("per chat");
    let mut per_chat: BTreeMap<String, usize> = BTreeMap::new();
    let mut sms_rows = 0;
    for r in &rows {
        let (id, guid, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        if guid.starts_with("SMS;") {
            sms_rows += 1;
            let (sms_guid, sms_messages) = e.sms.as_ref().expect("truth names the SMS chat");
            assert_eq!(&guid, sms_guid);
            assert_eq!(n as usize, sms_messages.len());
            assert!(n > 0, "the SMS chat holds messages");
        }
        *per_chat.entry(id).or_default() += n as usize;
    }
    assert_eq!(sms_rows, 1, "one SMS twin chat");
    assert_eq!(per_chat, e.per_chat, "messages per chat (SMS folded into its DM)");

    // Every row: its sender's handle, its time in the generation's unit.
    let rows = sqlx::query("SELECT m.guid, m.is_from_me, m.item_type, m.date, h.id, c.style FROM message m LEFT JOIN handle h ON h.ROWID = m.handle_id JOIN chat_message_join j ON j.message_id = m.ROWID JOIN chat c ON c.ROWID = j.chat_id")
        .fetch_all(&mut conn)
        .await
        .expect("messages");
    assert_eq!(rows.len(), e.messages.len());
    for r in rows {
        let guid: String = r.get(0);
        let (sender, from_me, system, ts_ms) = e.messages.get(&guid).unwrap_or_else(|| panic!("{guid} is not in truth"));
        assert_eq!(r.get::<i64, _>(1) == 1, *from_me, "{guid} is_from_me");
        assert_eq!(r.get::<i64, _>(2) != 0, *system, "{guid} item_type");
        let date: i64 = r.get(3);
        let want = if seconds { (ts_ms - APPLE_EPOCH_MS) / 1000 } else { (ts_ms - APPLE_EPOCH_MS) * 1_000_000 };
        assert_eq!(date, want, "{guid} date");
        let handle: Option<String> = r.get(4);
        if !system && !from_me {
            assert_eq!(handle.as_deref(), Some(bare(sender)), "{guid} sender");
        }
        if *from_me && r.get::<i64, _>(5) == 43 {
            assert_eq!(handle, None, "a sent group message has no handle");
        }
    }

    // Attachment files: the bytes truth hashes, at the row's path, but for the missing one.
    let (missing_guid, missing_path) = e.missing.as_ref().expect("truth names the missing file");
    assert!(!dir.join(missing_path).exists(), "{missing_path} must be missing");
    let rows = sqlx::query("SELECT guid, filename FROM attachment").fetch_all(&mut conn).await.expect("attachments");
    assert_eq!(rows.len(), e.sha.len());
    assert!(rows.len() > 3, "enough attachments to check");
    for r in rows {
        let (guid, filename): (String, String) = (r.get(0), r.get(1));
        let relative = filename.split_once("/Library/").and_then(|(_, rest)| rest.split_once('/')).map(|(_, p)| p).expect("library path");
        let path = dir.join(relative);
        if &guid == missing_guid {
            assert_eq!(relative, missing_path.as_str());
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&sha, &e.sha[&guid], "{guid}");
    }
}

#[tokio::test]
async fn macos_folder_has_apples_schema_and_the_accounts_truth() {
    let account = account();
    let (dir, truth) = build(&account, Schema::Macos).await;
    check_folder(dir.path(), &truth, false).await;

    let mut conn = open(&dir.path().join("chat.db")).await;
    let mut reference = reference_schema().await;
    assert_eq!(columns(&mut conn).await, columns(&mut reference).await, "tables and columns");
    for kind in ["index", "trigger"] {
        assert_eq!(names(&mut conn, kind).await, names(&mut reference, kind).await, "{kind}es");
    }

    // macOS 13+: text only in attributedBody.
    let both: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message WHERE attributedBody IS NOT NULL AND text IS NOT NULL").fetch_one(&mut conn).await.expect("count");
    let bodies: i64 = sqlx::query_scalar("SELECT count(*) FROM message WHERE attributedBody IS NOT NULL").fetch_one(&mut conn).await.expect("count");
    assert_eq!(both, 0);
    assert!(bodies > 1000, "{bodies}");
    // What only the newest generation holds is there.
    for (what, sql) in [
        ("replies", "SELECT count(*) FROM message WHERE thread_originator_guid IS NOT NULL"),
        ("edits", "SELECT count(*) FROM message WHERE date_edited != 0 AND message_summary_info IS NOT NULL"),
        ("unsends", "SELECT count(*) FROM message WHERE date_retracted != 0 AND text IS NULL AND attributedBody IS NULL"),
        ("emoji tapbacks", "SELECT count(*) FROM message WHERE associated_message_type = 2006 AND associated_message_emoji IS NOT NULL"),
        ("renames", "SELECT count(*) FROM message WHERE item_type = 2 AND group_title IS NOT NULL"),
        ("CloudKit ids", "SELECT count(*) FROM message WHERE ck_record_id LIKE 'M%'"),
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect(what);
        assert!(n > 0, "no {what}");
    }
    // A group's display_name is truth's name now, and its newest rename row says the same.
    let names: HashMap<String, Option<String>> = truth
        .iter()
        .filter_map(|l| match l {
            FolderTruth::Line(TruthLine::Chat { chat, name, group: true, .. }) => Some((chat.clone(), name.clone())),
            _ => None,
        })
        .collect();
    let rows = sqlx::query("SELECT chat_identifier, display_name, (SELECT m.group_title FROM message m JOIN chat_message_join j ON j.message_id = m.ROWID WHERE j.chat_id = c.ROWID AND m.item_type = 2 ORDER BY m.date DESC LIMIT 1) FROM chat c WHERE style = 43")
        .fetch_all(&mut conn)
        .await
        .expect("groups");
    assert_eq!(rows.len(), names.len());
    for r in rows {
        let (id, display, renamed): (String, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(Some(display.clone()).filter(|d| !d.is_empty()), names[&id], "{id}");
        if let Some(renamed) = renamed {
            assert_eq!(renamed, display, "{id}: newest rename");
        }
    }
}

#[tokio::test]
async fn older_generations_drop_what_they_could_not_hold() {
    let account = account();
    for (schema, message_columns, seconds) in [(Schema::Ios13, 68, false), (Schema::Legacy, 60, true)] {
        let (dir, truth) = build(&account, schema).await;
        check_folder(dir.path(), &truth, seconds).await;
        let mut conn = open(&dir.path().join("chat.db")).await;
        let cols = columns(&mut conn).await;
        assert_eq!(cols["message"].len(), message_columns, "{schema:?}");
        assert!(!cols["message"].iter().any(|c| c == "thread_originator_guid" || c == "date_edited"), "{schema:?}");
        assert_eq!(cols["chat_message_join"].iter().any(|c| c == "message_date"), !seconds, "{schema:?}");
        // Old generations keep the text beside the body; no emoji tapbacks; stickers as 1000.
        let text_missing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM message WHERE attributedBody IS NOT NULL AND text IS NULL").fetch_one(&mut conn).await.expect("count");
        assert_eq!(text_missing, 0, "{schema:?}");
        let kinds: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT associated_message_type FROM message").fetch_all(&mut conn).await.expect("kinds");
        assert!(!kinds.iter().any(|k| k % 1000 == 6 || *k == 2007), "{schema:?}: {kinds:?}");
        assert!(kinds.contains(&1000), "{schema:?}: placed stickers: {kinds:?}");
        let max_date: i64 = sqlx::query_scalar("SELECT max(date) FROM message").fetch_one(&mut conn).await.expect("date");
        assert_eq!(max_date < 10_000_000_000, seconds, "{schema:?}: {max_date}");
    }
}

#[tokio::test]
async fn cli_writes_the_same_account_as_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("Messages");
    let truth_file = dir.path().join("truth.jsonl");
    let bin = env!("CARGO_BIN_EXE_cloudkit-sim");
    let size = ["--seed", "3", "--chats", "6", "--messages", "300", "--big-chat", "50"];
    let status = std::process::Command::new(bin).args(["messages-folder", "--out"]).arg(&out).arg("--truth").arg(&truth_file).args(size).status().expect("run");
    assert!(status.success());
    // The same flags give `cloudkit-sim truth` the same messages.
    let sim = std::process::Command::new(bin).arg("truth").args(size).output().expect("run truth");
    assert!(sim.status.success());
    let guids = |text: &str| -> BTreeSet<String> {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
            .filter(|v| v["kind"] == "message")
            .map(|v| v["guid"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let folder = guids(&std::fs::read_to_string(&truth_file).expect("truth file"));
    assert!(folder.len() > 300);
    assert_eq!(folder, guids(&String::from_utf8_lossy(&sim.stdout)));
    let mut conn = open(&out.join("chat.db")).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM message").fetch_one(&mut conn).await.expect("count");
    assert_eq!(rows as usize, folder.len());
    // A second run refuses to overwrite the database.
    let again = std::process::Command::new(bin).args(["messages-folder", "--out"]).arg(&out).args(size).output().expect("run");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}
