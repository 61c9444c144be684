//! `sync-bench`: how fast does `imessage-bridge sync` pull an account into SQLite, compared with a
//! client that does nothing but fetch pages, and how does its memory grow with the account?
//!
//! Why this shape: the bridge's throughput alone says little on a shared 2-core machine, because
//! the simulator generating and encrypting records competes for the same CPU. So every size runs
//! two clients against *one* simulator process in the same run:
//!
//! - a **bare client** (in this process) that pages every zone with
//!   [`cloudkit::Client::retrieve_changes`] until `done()` and throws each page away — the
//!   ceiling set by the server, HTTP and protobuf framing;
//! - the real **bridge** (`imessage-bridge sync`, release build, child process) with a fresh
//!   SQLite database, timed from spawn to exit, its peak RSS taken from `wait4`'s `ru_maxrss`.
//!
//! The ratio bridge/bare is what the bridge's own work (PCS decryption, record decoding, SQLite
//! commits) costs. Records are the changes the server served (counted by the bare client; the
//! bridge's `sync finished changes=` log line must report the same number, or the run fails).
//!
//! Everything stays on 127.0.0.1. The binaries are taken from the directory of this executable
//! (`target/release/`, see `bench/run.sh`) unless `--bin-dir` says otherwise.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use cloudkit::records::ZONES;

mod files;
mod rusage;
use rusage::wait_rusage;
use serde_json::json;

#[derive(Parser)]
#[command(name = "sync-bench", about = "Sync throughput (records/s into SQLite) and peak RSS of imessage-bridge against cloudkit-sim")]
struct Args {
    /// Account sizes in messages (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<u64>,
    /// Chats the messages are spread over.
    #[arg(long, default_value_t = 200)]
    chats: u32,
    /// Messages of the simulator's big group chat (0: none).
    #[arg(long, default_value_t = 0)]
    big_chat: u64,
    /// Changes per page served by the simulator.
    #[arg(long, default_value_t = 200)]
    page_size: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs per size (bare client then bridge each time); rates are the median, RSS the maximum.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Directory holding `cloudkit-sim` and `imessage-bridge` (default: this executable's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where temporary databases go (default: the system temp dir). Use a real disk, not tmpfs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Skip the attachment-file phase (run at the smallest size).
    #[arg(long)]
    no_files: bool,
}

const TARGET_RATIO: f64 = 0.8;
const TARGET_RATE: f64 = 20_000.0;
const TARGET_RSS_GROWTH: f64 = 1.2;

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / if hz > 0 { hz as f64 } else { 100.0 })
}

/// CPU seconds the whole machine has spent in user and system time of any process, plus time
/// stolen by the hypervisor (`/proc/stat`, all cores). Minus the benchmark's own processes this
/// tells how much CPU a phase lost to everything else: other sessions' builds and tests, and
/// kernel threads (ext4 writeback of the bridge's database counts here). Interrupt time, mostly
/// loopback networking of the benchmark itself, is left out.
fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …; guest time is already in user.
    let busy: f64 = [0, 1, 2, 7].iter().filter_map(|&i| v.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    busy / if hz > 0 { hz as f64 } else { 100.0 }
}

fn self_cpu_secs() -> f64 {
    cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// A running `cloudkit-sim serve`.
struct SimProcess {
    child: Option<Child>,
    url: String,
    session: PathBuf,
    log: PathBuf,
}

impl SimProcess {
    fn start(bin: &Path, args: &Args, messages: u64, dir: &Path) -> Result<Self> {
        let session = dir.join("session.json");
        let log = dir.join("sim.log");
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--seed", &args.seed.to_string()])
            .args(["--messages", &messages.to_string(), "--chats", &args.chats.to_string()])
            .args(["--big-chat", &args.big_chat.to_string(), "--page-size", &args.page_size.to_string()])
            .arg("--write-session")
            .arg(&session)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("simulator stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut sim = SimProcess { child: Some(child), url: String::new(), session, log };
        // Generating a 1M-message account's index takes a few seconds before the line appears.
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(url) => sim.url = url,
            Err(_) => bail!("cloudkit-sim did not print its address (log: {})", sim.log.display()),
        }
        ensure!(sim.url.starts_with("http://127.0.0.1:"), "cloudkit-sim is not listening on loopback: {}", sim.url);
        Ok(sim)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the simulator (SIGINT, its clean shutdown) and returns its peak RSS in KiB.
    fn stop(mut self) -> Result<u64> {
        let Some(child) = self.child.take() else { return Ok(0) };
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let (_, rss, _) = wait_rusage(&child)?;
        Ok(rss)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Pages every zone until the server says done, discarding the pages. Zones run concurrently,
/// as in the bridge. Returns (changes, pages).
async fn bare_sync(url: &str, session_path: &Path) -> Result<(u64, u64)> {
    let session = cloudkit::Session::load(session_path)?;
    let client = cloudkit::Client::new(url, session)?;
    let mut tasks = Vec::new();
    for zone in ZONES {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut changes, mut pages) = (0u64, 0u64);
            let mut token: Option<Vec<u8>> = None;
            loop {
                let page = client.retrieve_changes(zone, token.as_deref()).await.with_context(|| format!("record/sync {zone}"))?;
                changes += page.changes.len() as u64;
                pages += 1;
                if page.done() {
                    return Ok::<_, anyhow::Error>((changes, pages));
                }
                ensure!(page.token.is_some() && page.token != token, "{zone}: the server repeated its token without finishing");
                token = page.token;
            }
        }));
    }
    let (mut changes, mut pages) = (0, 0);
    for t in tasks {
        let (c, p) = t.await.context("bare client task")??;
        changes += c;
        pages += p;
    }
    Ok((changes, pages))
}

struct Bare {
    records: u64,
    secs: f64,
    self_cpu: f64,
    sim_cpu: f64,
    /// CPU seconds other processes used meanwhile.
    foreign_cpu: f64,
}

fn run_bare(rt: &tokio::runtime::Runtime, sim: &SimProcess) -> Result<Bare> {
    let (cpu0, sim0, busy0) = (self_cpu_secs(), cpu_secs(sim.pid()).unwrap_or(0.0), machine_busy_secs());
    let start = Instant::now();
    let (records, _pages) = rt.block_on(bare_sync(&sim.url, &sim.session))?;
    let secs = start.elapsed().as_secs_f64();
    let (self_cpu, sim_cpu) = (self_cpu_secs() - cpu0, cpu_secs(sim.pid()).unwrap_or(0.0) - sim0);
    let foreign_cpu = (machine_busy_secs() - busy0 - self_cpu - sim_cpu).max(0.0);
    Ok(Bare { records, secs, self_cpu, sim_cpu, foreign_cpu })
}

struct Bridge {
    records: u64,
    secs: f64,
    peak_rss_kib: u64,
    cpu: f64,
    sim_cpu: f64,
    foreign_cpu: f64,
}

/// The `changes` of the bridge's `sync_finished` progress marker (its JSON log).
fn logged_changes(log: &str) -> Option<u64> {
    testkit::campaign::find_progress(log, matrix::progress::SYNC_FINISHED)?.get("changes")?.as_u64()
}

fn run_bridge(bin: &Path, sim: &SimProcess, work: &Path) -> Result<Bridge> {
    let dir = tempfile::Builder::new().prefix("bridge-").tempdir_in(work)?;
    std::fs::copy(&sim.session, dir.path().join("session.json"))?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("cloudkit:\n  url: {}\n  session: session.json\ndatabase:\n  uri: sqlite:bridge.db\n", sim.url))?;
    let log_path = dir.path().join("bridge.log");
    let (sim0, self0, busy0) = (cpu_secs(sim.pid()).unwrap_or(0.0), self_cpu_secs(), machine_busy_secs());
    let start = Instant::now();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .args(["--log-format", "json", "sync", "--records-only"])
        .env("RUST_LOG", "info,sqlx=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let (code, peak_rss_kib, cpu) = wait_rusage(&child)?;
    let secs = start.elapsed().as_secs_f64();
    let sim_cpu = cpu_secs(sim.pid()).unwrap_or(0.0) - sim0;
    let foreign_cpu = (machine_busy_secs() - busy0 - cpu - sim_cpu - (self_cpu_secs() - self0)).max(0.0);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if code != 0 {
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        bail!("imessage-bridge sync exited with {code}:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let records = logged_changes(&log).context("bridge log has no sync_finished marker with its changes")?;
    Ok(Bridge { records, secs, peak_rss_kib, cpu, sim_cpu, foreign_cpu })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

struct SizeResult {
    messages: u64,
    records: u64,
    bare_rate: f64,
    bridge_rate: f64,
    bare_secs: f64,
    bridge_secs: f64,
    bridge_rss_kib: u64,
    bridge_cpu: f64,
    bare_client_cpu: f64,
    sim_cpu_bare: f64,
    sim_cpu_bridge: f64,
    sim_rss_kib: u64,
    /// CPU seconds of other processes during the bare and the bridge phase (noise indicator).
    foreign_cpu_bare: f64,
    foreign_cpu_bridge: f64,
    /// The attachment phase (smallest size only).
    files: Option<files::Files>,
}

impl SizeResult {
    fn ratio(&self) -> f64 {
        self.bridge_rate / self.bare_rate.max(1e-9)
    }
}

fn run_size(args: &Args, bins: &(PathBuf, PathBuf), rt: &tokio::runtime::Runtime, messages: u64, work: &Path, with_files: bool) -> Result<SizeResult> {
    let dir = tempfile::Builder::new().prefix("sync-bench-").tempdir_in(work)?;
    eprintln!("[{messages}] starting cloudkit-sim …");
    let sim = SimProcess::start(&bins.0, args, messages, dir.path())?;
    let mut bare_runs = Vec::new();
    let mut bridge_runs = Vec::new();
    for run in 1..=args.repeat.max(1) {
        let bare = run_bare(rt, &sim)?;
        eprintln!(
            "[{messages}] run {run}: bare client {} records in {:.1}s = {:.0}/s (simulator CPU {:.1}s, client CPU {:.1}s, other processes and kernel threads {:.1}s)",
            bare.records,
            bare.secs,
            bare.records as f64 / bare.secs,
            bare.sim_cpu,
            bare.self_cpu,
            bare.foreign_cpu
        );
        let bridge = run_bridge(&bins.1, &sim, work)?;
        eprintln!(
            "[{messages}] run {run}: bridge {} records in {:.1}s = {:.0}/s, peak RSS {:.1} MiB (simulator CPU {:.1}s, bridge CPU {:.1}s, other processes and kernel threads {:.1}s)",
            bridge.records,
            bridge.secs,
            bridge.records as f64 / bridge.secs,
            bridge.peak_rss_kib as f64 / 1024.0,
            bridge.sim_cpu,
            bridge.cpu,
            bridge.foreign_cpu
        );
        ensure!(bridge.records == bare.records, "the bridge synced {} changes but the server served {} to the bare client", bridge.records, bare.records);
        bare_runs.push(bare);
        bridge_runs.push(bridge);
    }
    let files = if with_files {
        let f = files::run_files(&bins.1, &sim.url, &sim.session, work)?;
        eprintln!("[{messages}] attachment files: {} files, {:.1} MB in {:.1}s = {:.1} MB/s", f.stored, f.bytes as f64 / 1e6, f.secs, f.mb_per_sec());
        Some(f)
    } else {
        None
    };
    let sim_rss_kib = sim.stop()?;
    let records = bare_runs[0].records;
    let med = |f: &dyn Fn(usize) -> f64| median((0..bare_runs.len()).map(f).collect());
    Ok(SizeResult {
        messages,
        records,
        bare_rate: med(&|i| bare_runs[i].records as f64 / bare_runs[i].secs),
        bridge_rate: med(&|i| bridge_runs[i].records as f64 / bridge_runs[i].secs),
        bare_secs: med(&|i| bare_runs[i].secs),
        bridge_secs: med(&|i| bridge_runs[i].secs),
        bridge_rss_kib: bridge_runs.iter().map(|b| b.peak_rss_kib).max().unwrap_or(0),
        bridge_cpu: med(&|i| bridge_runs[i].cpu),
        bare_client_cpu: med(&|i| bare_runs[i].self_cpu),
        sim_cpu_bare: med(&|i| bare_runs[i].sim_cpu),
        sim_cpu_bridge: med(&|i| bridge_runs[i].sim_cpu),
        sim_rss_kib,
        foreign_cpu_bare: med(&|i| bare_runs[i].foreign_cpu),
        foreign_cpu_bridge: med(&|i| bridge_runs[i].foreign_cpu),
        files,
    })
}

fn locate(args: &Args) -> Result<(PathBuf, PathBuf)> {
    let dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("executable has no directory")?.to_path_buf(),
    };
    let find = |name: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        ensure!(
            path.is_file(),
            "{} not found; build it with `cargo build --release -p cloudkit-sim -p imessage-bridge -p bench` \
             (or run bench/run.sh), or pass --bin-dir",
            path.display()
        );
        Ok(path)
    };
    Ok((find("cloudkit-sim")?, find("imessage-bridge")?))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(!args.sizes.is_empty(), "--sizes needs at least one size");
    ensure!(args.chats > 0, "--chats must be at least 1");
    let bins = locate(&args)?;
    let work = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = Vec::new();
    let smallest_size = args.sizes.iter().copied().min().unwrap_or(0);
    for &n in &args.sizes {
        results.push(run_size(&args, &bins, &rt, n, &work, n == smallest_size && !args.no_files)?);
    }
    let smallest = results.iter().min_by_key(|r| r.messages);
    let largest = results.iter().max_by_key(|r| r.messages);
    let rss_growth = match (smallest, largest) {
        (Some(s), Some(l)) if l.messages > s.messages => Some(l.bridge_rss_kib as f64 / s.bridge_rss_kib.max(1) as f64),
        _ => None,
    };
    let ratio_ok = results.iter().all(|r| r.ratio() >= TARGET_RATIO);
    let rate_ok = results.iter().all(|r| r.bridge_rate >= TARGET_RATE);
    let rss_ok = rss_growth.map(|g| g <= TARGET_RSS_GROWTH);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    let mut out = std::io::stdout().lock();
    if args.json {
        let sizes: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "messages": r.messages,
                    "records": r.records,
                    "bare_records_per_sec": r.bare_rate.round(),
                    "bridge_records_per_sec": r.bridge_rate.round(),
                    "ratio": r.ratio(),
                    "bare_secs": r.bare_secs,
                    "bridge_secs": r.bridge_secs,
                    "bridge_peak_rss_kib": r.bridge_rss_kib,
                    "bridge_cpu_secs": r.bridge_cpu,
                    "bare_client_cpu_secs": r.bare_client_cpu,
                    "sim_cpu_secs_during_bare": r.sim_cpu_bare,
                    "sim_cpu_secs_during_bridge": r.sim_cpu_bridge,
                    "sim_peak_rss_kib": r.sim_rss_kib,
                    "other_processes_cpu_secs_during_bare": r.foreign_cpu_bare,
                    "other_processes_cpu_secs_during_bridge": r.foreign_cpu_bridge,
                    "attachment_files": r.files.as_ref().map(|f| json!({
                        "files": f.stored, "bytes": f.bytes, "secs": f.secs, "mb_per_sec": f.mb_per_sec(),
                    })),
                })
            })
            .collect();
        let doc = json!({
            "cores": cores,
            "chats": args.chats,
            "page_size": args.page_size,
            "repeat": args.repeat,
            "sizes": sizes,
            "rss_growth": rss_growth,
            "targets": {
                "ratio_at_least_0_8": ratio_ok,
                "bridge_at_least_20k_per_sec": rate_ok,
                "rss_growth_at_most_1_2": rss_ok,
            },
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "| messages | records | bare client rec/s | bridge rec/s | bridge/bare | bridge time | bridge peak RSS | bridge CPU | simulator CPU (bare / bridge) | other CPU (bare / bridge) |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &results {
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.1} s | {:.1} MiB | {:.1} s | {:.1} s / {:.1} s | {:.1} s / {:.1} s |",
            r.messages,
            r.records,
            r.bare_rate,
            r.bridge_rate,
            r.ratio(),
            r.bridge_secs,
            mib(r.bridge_rss_kib),
            r.bridge_cpu,
            r.sim_cpu_bare,
            r.sim_cpu_bridge,
            r.foreign_cpu_bare,
            r.foreign_cpu_bridge
        )?;
    }
    writeln!(out)?;
    for r in &results {
        if let Some(f) = &r.files {
            writeln!(
                out,
                "- attachment files at {} messages: {} files, {:.1} MB in {:.1} s = {:.1} MB/s",
                r.messages,
                f.stored,
                f.bytes as f64 / 1e6,
                f.secs,
                f.mb_per_sec()
            )?;
        }
    }
    writeln!(out, "- cores: {cores}; chats: {}; page size: {}; runs per size: {}", args.chats, args.page_size, args.repeat)?;
    writeln!(out, "- other CPU: user+system time of other processes and kernel threads (including writeback of the database) during each phase")?;
    writeln!(out, "- bridge/bare >= {TARGET_RATIO}: {}", verdict(ratio_ok))?;
    writeln!(out, "- bridge >= {TARGET_RATE:.0} records/s: {}", verdict(rate_ok))?;
    match (rss_growth, smallest, largest) {
        (Some(g), Some(s), Some(l)) => {
            writeln!(out, "- peak RSS {} / {} messages = {g:.2} (<= {TARGET_RSS_GROWTH}): {}", l.messages, s.messages, verdict(g <= TARGET_RSS_GROWTH))?
        }
        _ => writeln!(out, "- peak RSS growth: needs two sizes")?,
    }
    Ok(())
}
