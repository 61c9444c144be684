//! `chatdb-bench`: how fast does the bridge import a Mac's `chat.db` into its store, compared
//! with a reader that runs the same SQL and does nothing with the rows, and how does its memory
//! grow with the database?
//!
//! Why this shape: on a shared 2-core machine a rate alone says little, so each database is read
//! in the same run by
//!
//! - a **bare reader** (`chatdb-bench bare`, child process): the reader's own SQL, taken from
//!   [`chatdb::ChatDb::message_page_sql`] and [`chatdb::ChatDb::attachment_page_sql`], paged by
//!   `ROWID` exactly as [`sync::sync_chat_db`] pages it ([`sync::LOCAL_PAGE_ROWS`] rows), on the
//!   reader's own connections ([`chatdb::ChatDb::pool`]), every column of every row read as its
//!   stored type (integer, text bytes, blob bytes) and thrown away: the ceiling set by SQLite
//!   and sqlx;
//! - the **bridge's import** (`chatdb-bench import`, child process): [`sync::sync_chat_db`] into
//!   a fresh SQLite store opened by [`store::open`], as `imessage-bridge run --once` does before
//!   it copies files (files are not copied: the benchmark's databases have none);
//! - optionally the **peer**, imessage-exporter, exporting the same file to text.
//!
//! Each child is timed from before it opens the database to its end; its peak RSS and CPU time
//! come from `wait4`. The file is read once beforehand so that every reader finds it in the page
//! cache. The import must store as many messages as the bare reader saw distinct rows, or the
//! run fails.

#[path = "rusage.rs"]
mod rusage;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use sqlx::{Decode, Row, Sqlite, TypeInfo, ValueRef};

use rusage::wait_rusage;

#[derive(Parser)]
#[command(name = "chatdb-bench", about = "chat.db import throughput (messages/s into SQLite) and peak RSS, against a bare reader of the same SQL")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the bare reader, the import and (with --peer) imessage-exporter on each database.
    Run {
        /// Messages databases (chat.db), smallest first: the peak RSS growth is last / first.
        #[arg(long = "db", required = true)]
        dbs: Vec<PathBuf>,
        /// imessage-exporter's binary: also time it exporting each database to text.
        #[arg(long)]
        peer: Option<PathBuf>,
        /// Runs per database (bare reader then import each time); times are the median, RSS the maximum.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Where the stores and the peer's export go (default: the system temp dir). Use a real disk.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Print JSON instead of the Markdown table.
        #[arg(long)]
        json: bool,
    },
    /// (child) The bare reader: prints {"rows", "distinct", "attachments", "bytes", "secs"}.
    Bare {
        #[arg(long)]
        db: PathBuf,
    },
    /// (child) The import into a fresh store: prints {"messages", "attachments", "chats", "secs"}.
    Import {
        #[arg(long)]
        db: PathBuf,
        /// The store's SQLite file (must not exist).
        #[arg(long)]
        store: PathBuf,
    },
}

const TARGET_RATIO: f64 = 0.8;
const TARGET_RSS_GROWTH: f64 = 1.2;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run { dbs, peer, repeat, work_dir, json } => run(&dbs, peer.as_deref(), repeat.max(1), work_dir, json),
        Cmd::Bare { db } => child(bare(db)),
        Cmd::Import { db, store } => child(import(db, store)),
    }
}

/// Runs a child's work on the runtime the bridge runs on (multi-threaded, a worker per core) and
/// prints its result as one JSON line.
fn child(work: impl std::future::Future<Output = Result<Value>>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let out = rt.block_on(work)?;
    println!("{out}");
    Ok(())
}

/// Reads one column as what it holds and returns a number derived from it, so that nothing is
/// optimised away: integers as themselves, text and blobs as their length.
fn touch(row: &sqlx::sqlite::SqliteRow, i: usize) -> u64 {
    let Ok(raw) = row.try_get_raw(i) else { return 0 };
    if raw.is_null() {
        return 0;
    }
    match raw.type_info().name() {
        "INTEGER" => <i64 as Decode<Sqlite>>::decode(raw).map_or(0, |v| v as u64),
        "REAL" => <f64 as Decode<Sqlite>>::decode(raw).map_or(0, |v| v as u64),
        "TEXT" => <&str as Decode<Sqlite>>::decode(raw).map_or(0, |s| s.len() as u64),
        _ => <&[u8] as Decode<Sqlite>>::decode(raw).map_or(0, |b| b.len() as u64),
    }
}

async fn bare(path: PathBuf) -> Result<Value> {
    let started = Instant::now();
    let db = chatdb::ChatDb::open(&path, None).await?;
    let (mut rows, mut distinct, mut attachments, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let sql = db.message_page_sql();
    let mut after = 0i64;
    loop {
        let page = sqlx::query(&sql).bind(after).bind(sync::LOCAL_PAGE_ROWS).fetch_all(db.pool()).await?;
        let Some(last) = page.last() else { break };
        let last: i64 = last.try_get(0)?;
        for row in &page {
            let rowid: i64 = row.try_get(0)?;
            // A message in two chats comes twice; the reader keeps it once.
            distinct += u64::from(rowid != after);
            after = rowid;
            rows += 1;
            for i in 0..row.len() {
                bytes = bytes.wrapping_add(touch(row, i));
            }
        }
        after = last;
    }
    if let Some(sql) = db.attachment_page_sql() {
        let mut after = 0i64;
        loop {
            let page = sqlx::query(&sql).bind(after).bind(sync::LOCAL_PAGE_ROWS).fetch_all(db.pool()).await?;
            let Some(last) = page.last() else { break };
            after = last.try_get(0)?;
            for row in &page {
                attachments += 1;
                for i in 0..row.len() {
                    bytes = bytes.wrapping_add(touch(row, i));
                }
            }
        }
    }
    db.close().await;
    Ok(json!({ "rows": rows, "distinct": distinct, "attachments": attachments, "bytes": bytes, "secs": started.elapsed().as_secs_f64() }))
}

async fn import(path: PathBuf, store_path: PathBuf) -> Result<Value> {
    ensure!(!store_path.exists(), "{} exists; the import wants a fresh store", store_path.display());
    let started = Instant::now();
    let db = chatdb::ChatDb::open(&path, None).await?;
    let store = store::open(&format!("sqlite:{}", store_path.display())).await?;
    let own = db.own_handles().await?.into_iter().next().unwrap_or_default();
    let report = sync::sync_chat_db(&db, store.as_ref(), &own, &sync::SyncOptions::default(), &sync::NoProgress).await?;
    db.close().await;
    let secs = started.elapsed().as_secs_f64();
    let changes = |zone: &str| report.zones.iter().find(|z| z.zone == zone).map_or(0, |z| z.changes);
    use imessage::records::{ATTACHMENT_ZONE, CHAT_ZONE, MESSAGE_ZONE};
    Ok(json!({ "messages": changes(MESSAGE_ZONE), "attachments": changes(ATTACHMENT_ZONE), "chats": changes(CHAT_ZONE), "secs": secs }))
}

/// One child run: its JSON line, peak RSS (KiB) and CPU seconds.
struct Measured {
    out: Value,
    rss_kib: u64,
    cpu: f64,
    wall: f64,
}

fn measure(cmd: &mut Command, what: &str) -> Result<Measured> {
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().with_context(|| format!("starting {what}"))?;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        out.read_to_string(&mut text).with_context(|| format!("reading {what}'s output"))?;
    }
    let (code, rss_kib, cpu) = wait_rusage(&child)?;
    let wall = started.elapsed().as_secs_f64();
    ensure!(code == 0, "{what} exited with {code}");
    let out = text.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()).unwrap_or(Value::Null);
    Ok(Measured { out, rss_kib, cpu, wall })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Reads the file once so that every reader after finds it in the page cache.
fn warm(path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(std::io::copy(&mut f, &mut std::io::sink())?)
}

fn run(dbs: &[PathBuf], peer: Option<&Path>, repeat: usize, work_dir: Option<PathBuf>, as_json: bool) -> Result<()> {
    let me = std::env::current_exe()?;
    let work = match work_dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let mut results = Vec::new();
    for db in dbs {
        let size = warm(db)?;
        for wal in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{wal}", db.display()));
            if p.exists() {
                warm(&p)?;
            }
        }
        let (mut bare_runs, mut import_runs, mut peer_runs) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..repeat {
            let b = measure(Command::new(&me).arg("bare").arg("--db").arg(db), "the bare reader")?;
            let store = work.path().join(format!("store-{r}.db"));
            let i = measure(Command::new(&me).arg("import").arg("--db").arg(db).arg("--store").arg(&store).env("RUST_LOG", "warn"), "the import")?;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
            }
            let (distinct, imported) = (b.out["distinct"].as_u64().unwrap_or(0), i.out["messages"].as_u64().unwrap_or(0));
            ensure!(distinct > 0 && distinct == imported, "{}: the bare reader saw {distinct} messages, the import stored {imported}", db.display());
            ensure!(
                b.out["attachments"] == i.out["attachments"],
                "{}: attachments differ: bare {} import {}",
                db.display(),
                b.out["attachments"],
                i.out["attachments"]
            );
            bare_runs.push(b);
            import_runs.push(i);
            if let Some(bin) = peer {
                let out = work.path().join("export");
                let _ = std::fs::remove_dir_all(&out);
                // Text export, attachments referenced where they are (not copied).
                let log = work.path().join("imessage-exporter.log");
                let stderr = std::fs::File::create(&log)?;
                let p = measure(Command::new(bin).args(["-f", "txt", "-c", "disabled", "-p"]).arg(db).arg("-o").arg(&out).stderr(stderr), "imessage-exporter");
                let p = match p {
                    Ok(p) => p,
                    Err(e) => bail!("{e:#}: {}", std::fs::read_to_string(&log).unwrap_or_default()),
                };
                let _ = std::fs::remove_dir_all(&out);
                peer_runs.push(p);
            }
        }
        let messages = bare_runs[0].out["distinct"].as_u64().unwrap_or(0) as f64;
        let secs = |runs: &[Measured]| median(runs.iter().map(|m| m.out["secs"].as_f64().unwrap_or(m.wall)).collect());
        let cpu = |runs: &[Measured]| median(runs.iter().map(|m| m.cpu).collect());
        let rss = |runs: &[Measured]| runs.iter().map(|m| m.rss_kib).max().unwrap_or(0);
        let (bs, is) = (secs(&bare_runs), secs(&import_runs));
        let peer = (!peer_runs.is_empty()).then(|| {
            let wall = median(peer_runs.iter().map(|m| m.wall).collect());
            json!({ "secs": wall, "msgs_per_s": messages / wall, "cpu_secs": cpu(&peer_runs), "peak_rss_mib": rss(&peer_runs) as f64 / 1024.0 })
        });
        results.push(json!({
            "db": db.display().to_string(),
            "db_mib": size as f64 / 1048576.0,
            "messages": messages,
            "attachments": bare_runs[0].out["attachments"],
            "bare": { "secs": bs, "msgs_per_s": messages / bs, "cpu_secs": cpu(&bare_runs), "peak_rss_mib": rss(&bare_runs) as f64 / 1024.0 },
            "import": { "secs": is, "msgs_per_s": messages / is, "cpu_secs": cpu(&import_runs), "peak_rss_mib": rss(&import_runs) as f64 / 1024.0 },
            "ratio": bs / is,
            "cpu_ratio": cpu(&bare_runs) / cpu(&import_runs),
            "peer": peer,
        }));
    }
    let first = results.first().and_then(|r| r["import"]["peak_rss_mib"].as_f64()).unwrap_or(0.0);
    let last = results.last().and_then(|r| r["import"]["peak_rss_mib"].as_f64()).unwrap_or(0.0);
    let growth = if first > 0.0 { last / first } else { 0.0 };
    let worst_ratio = results.iter().filter_map(|r| r["ratio"].as_f64()).fold(f64::INFINITY, f64::min);
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "runs": results, "rss_growth": growth, "targets": { "ratio": TARGET_RATIO, "rss_growth": TARGET_RSS_GROWTH } })
            )?
        );
    } else {
        print_table(&results);
        println!();
        println!("import/bare (wall): worst {worst_ratio:.2} (target ≥ {TARGET_RATIO}); import peak RSS growth {first:.0} → {last:.0} MiB = {growth:.2}× (target ≤ {TARGET_RSS_GROWTH}×)");
    }
    Ok(())
}

fn print_table(results: &[Value]) {
    println!("| messages | db MiB | bare msg/s | import msg/s | import/bare (wall) | import/bare (CPU) | bare RSS MiB | import RSS MiB | imessage-exporter s (msg/s, RSS MiB) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        let peer = match &r["peer"] {
            Value::Null => "–".to_string(),
            p => format!("{:.1} ({:.0}, {:.0})", f(&p["secs"]), f(&p["msgs_per_s"]), f(&p["peak_rss_mib"])),
        };
        println!(
            "| {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {} |",
            f(&r["messages"]),
            f(&r["db_mib"]),
            f(&r["bare"]["msgs_per_s"]),
            f(&r["import"]["msgs_per_s"]),
            f(&r["ratio"]),
            f(&r["cpu_ratio"]),
            f(&r["bare"]["peak_rss_mib"]),
            f(&r["import"]["peak_rss_mib"]),
            peer
        );
    }
}
