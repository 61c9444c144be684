//! End-to-end attachment files against the simulator: every attachment's file is fetched through
//! MMCS, decrypted, and kept under its SHA-256, and the bytes equal the simulator's truth — under
//! record and download faults, after a SIGKILL in the middle of the downloads, and with a size cap.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cloudkit_sim::{Faults, TruthLine};
use common::*;
use sha2::{Digest, Sha256};
use store::FileState;

/// What truth says of each attachment, by transfer GUID.
struct TruthFile {
    mime_type: Option<String>,
    filename: Option<String>,
    total_bytes: i64,
    details: imessage::records::AttachmentDetails,
    sha256: String,
}

fn truth_files(sim: &cloudkit_sim::Sim) -> HashMap<String, TruthFile> {
    let mut files = HashMap::new();
    sim.truth(|l| {
        if let TruthLine::Attachment { guid, mime_type, filename, total_bytes, details, sha256 } = l {
            files.insert(guid, TruthFile { mime_type, filename, total_bytes, details, sha256 });
        }
    });
    files
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Syncs until a run succeeds with no file left to fetch (faults may stop a run early or fail a
/// download in every try of a pass; each run resumes the last), bounded. Returns the runs.
async fn sync_until_done(bridge: &BridgeDir) -> usize {
    for run in 1..=6 {
        if bridge.run(&["sync"]).await.status.success() {
            let files = &bridge.status_json().await["files"];
            if files["failed"] == 0 && files["stored"] == files["with_asset"] {
                return run;
            }
        }
    }
    panic!("files still missing after 6 syncs: {}", bridge.status_json().await["files"]);
}

/// Every truth attachment is stored with its metadata, and its file with truth's hash.
async fn assert_files_equal_truth(bridge: &BridgeDir, truth: &HashMap<String, TruthFile>, cap: Option<i64>) {
    let store = bridge.store().await;
    let records = store.attachments().await.unwrap();
    assert_eq!(records.len(), truth.len(), "attachment records");
    let files: HashMap<String, store::AttachmentFile> = store.attachment_files().await.unwrap().into_iter().map(|f| (f.record_name.clone(), f)).collect();
    let dir = bridge.dir.path().join("attachments");
    for a in &records {
        let t = &truth[&a.guid];
        assert_eq!((&a.mime_type, &a.filename, a.total_bytes), (&t.mime_type, &t.filename, t.total_bytes), "{}", a.guid);
        let mut details = a.details.clone();
        assert!(details.asset_signature.take().is_some_and(|s| s.len() == 42), "the asset's MMCS signature is kept: {a:?}");
        assert_eq!(details, t.details, "cm of {}", a.guid);
        let f = files.get(&a.record_name).unwrap_or_else(|| panic!("no file row for {}", a.record_name));
        if cap.is_some_and(|cap| t.total_bytes > cap) {
            assert_eq!((f.state, f.bytes), (FileState::TooLarge, Some(t.total_bytes)), "{f:?}");
            continue;
        }
        assert_eq!((f.state, f.sha256.as_deref(), f.bytes), (FileState::Stored, Some(t.sha256.as_str()), Some(t.total_bytes)), "{f:?}");
        let path = dir.join(&t.sha256[..2]).join(&t.sha256);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(sha256_hex(&bytes), t.sha256, "bytes on disk of {}", a.guid);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the attachment folder is the bridge user's alone");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("tmp")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "partial downloads left behind: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_files_equal_truth_under_record_and_download_faults() {
    let faults = Faults { page_size: 100, page_errors: 0.05, pcs_late: 0.02, asset_errors: 0.15, ..Faults::default() };
    let sim = start_sim(spec(7, 12, 4000, 0), faults).await;
    let truth = truth_files(&sim.sim);
    // The seed has every kind of file, and files of several MMCS chunks.
    let mimes: std::collections::BTreeSet<_> = truth.values().filter_map(|t| t.mime_type.clone()).collect();
    assert_eq!(mimes.len(), 6, "{mimes:?}");
    assert!(truth.values().any(|t| t.total_bytes > cloudkit_sim::assets::CHUNK_SIZE as i64));
    let bridge = BridgeDir::new(&sim);
    let runs = sync_until_done(&bridge).await;
    let status = bridge.status_json().await;
    let files = &status["files"];
    assert_eq!(files["with_asset"], truth.len(), "{files}");
    assert_eq!(files["stored"], truth.len(), "{files}");
    assert_eq!(files["failed"], 0, "{files}");
    assert_files_equal_truth(&bridge, &truth, None).await;
    // Downloads did fail and were retried (the faults are not a no-op).
    assert!(sim.sim.assets.injected() > 0, "runs: {runs}");
    // Nothing is fetched twice once stored.
    let before = sim.sim.assets.served();
    bridge.sync_ok().await;
    assert_eq!(sim.sim.assets.served(), before, "a second sync downloads nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_downloads_then_resume_stores_every_file() {
    let sim = start_sim(spec(8, 8, 3000, 0), Faults::default()).await;
    let truth = truth_files(&sim.sim);
    let bridge = BridgeDir::new(&sim);
    let mut child = bridge.command(&["sync"]).spawn().unwrap();
    let mut killed = false;
    for _ in 0..20_000 {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        let stored = match store::open(&bridge.db_uri).await {
            Ok(s) => s.file_summary().await.map(|f| f.stored).unwrap_or(0),
            Err(_) => 0,
        };
        if stored >= 20 {
            child.start_kill().unwrap();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let exit = child.wait().await.unwrap();
    assert!(killed, "sync finished before it could be killed ({exit})");
    let partial = bridge.store().await.file_summary().await.unwrap();
    assert!(partial.stored < truth.len() as i64, "killed mid-downloads: {partial:?}");
    bridge.sync_ok().await;
    assert_files_equal_truth(&bridge, &truth, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_size_cap_are_counted_and_not_fetched() {
    let sim = start_sim(spec(9, 6, 800, 0), Faults::default()).await;
    let truth = truth_files(&sim.sim);
    let cap = 50_000i64;
    let over = truth.values().filter(|t| t.total_bytes > cap).count();
    assert!(over > 0 && over < truth.len());
    let bridge = BridgeDir::new(&sim);
    bridge.set(&["attachments", "max_bytes"], cap);
    bridge.sync_ok().await;
    let status = bridge.status_json().await;
    assert_eq!(status["files"]["too_large"], over, "{}", status["files"]);
    assert_eq!(status["files"]["stored"], truth.len() - over, "{}", status["files"]);
    assert_files_equal_truth(&bridge, &truth, Some(cap)).await;
    let text = bridge.run(&["status"]).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("{over} over the size cap")), "{text}");
}

/// The log lines of `sync` on stderr, as JSON objects; panics on a line that is not one.
fn json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v.is_object() && v["fields"].is_object() && v["level"].is_string() && v["target"].is_string() => v,
            _ => panic!("a stderr line is not a JSON log event: {l:?}\n{text}"),
        })
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_is_one_object_per_line_with_the_progress_markers_in_order() {
    let sim = start_sim(spec(10, 3, 300, 0), Faults::default()).await;
    let truth = truth_files(&sim.sim);
    assert!(!truth.is_empty());
    let bridge = BridgeDir::new(&sim);
    // By the environment (as a service would set it), then by the flag.
    for how in ["env", "flag"] {
        let mut cmd = bridge.command(if how == "flag" { &["--log-format", "json", "sync"] } else { &["sync"] });
        if how == "env" {
            cmd.env("IMESSAGE_BRIDGE_LOG_FORMAT", "json");
        }
        let out = cmd.env("RUST_LOG", "info").output().await.unwrap();
        assert!(out.status.success(), "sync ({how}) failed: {}", String::from_utf8_lossy(&out.stderr));
        let lines = json_lines(&out.stderr);
        // Read exactly as the crash campaign reads them.
        let markers: Vec<String> = lines.iter().filter_map(|l| campaign::progress_marker(&l.to_string())).collect();
        assert_eq!(markers, [matrix::progress::SYNC_FINISHED, matrix::progress::FILES_DONE], "({how})");
        let files_done = lines.iter().find(|l| l["fields"]["progress"] == matrix::progress::FILES_DONE).unwrap();
        let stored = if how == "env" { truth.len() } else { 0 };
        assert_eq!(files_done["fields"]["stored"], stored, "({how}) {files_done}");
        assert_eq!(files_done["level"], "INFO");
    }
    // The default stays text: no line of it is JSON.
    let out = bridge.command(&["sync"]).env("RUST_LOG", "info").output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.is_empty(), "{text}");
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()), "{text}");
}
