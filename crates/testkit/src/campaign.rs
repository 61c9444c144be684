//! One seed of the crash campaign: a simulated account with faults and later messages, a real
//! Synapse, and the bridge's `run --once` SIGKILLed again and again at moments drawn from a
//! seeded RNG, spread over the phases of its work, restarted each time; then every room
//! compared with the truth by client back-pagination ([`crate::rooms`]).
//!
//! Why it is shaped like this: a kill is only informative if it lands somewhere different each
//! time — mid-page, between downloads, between a send and its ledger row, mid-upload — so each
//! life has a target phase, read off the bridge's own log as it goes, and a random delay into it.
//! The bridge runs with `--log-format json` and the phase is read from the progress markers in
//! its events (`fields.progress`: [`matrix::progress`]), never from the wording of a message, so
//! rewording a log line cannot silently stop the kills from being aimed. The later messages
//! are released halfway, so the second half kills a bridge that syncs and delivers at the live
//! edge too. `bench`'s `crash-campaign` runs many seeds; the test suite's small version
//! (`tests/crash.rs`) and the PostgreSQL end-to-end test run one, so all count the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudkit_sim::{AccountSpec, Faults, Sim};
use matrix::progress::{ATTACHMENT_PREPARED, FILES_DONE, SYNC_FINISHED};
use matrix::HomeserverClient;

use crate::rooms::{self, RoomCheck, Totals};
use crate::synapse::free_port;
use crate::{Context, Error, Result, DOMAIN, OWNER};

/// Where the bridge is when it is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Paging CloudKit's zones and committing pages (before [`SYNC_FINISHED`]).
    Sync,
    /// Downloading attachment files (after [`SYNC_FINISHED`], before [`FILES_DONE`]).
    Download,
    /// Delivering into Matrix (sends, ledger rows, portals).
    Delivery,
    /// Within [`UPLOAD_WINDOW`] of [`ATTACHMENT_PREPARED`]: the file is being uploaded as Matrix
    /// media, or its event sent.
    Upload,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Sync => "sync",
            Phase::Download => "download",
            Phase::Delivery => "delivery",
            Phase::Upload => "upload",
        }
    }
}

/// One seed's run.
pub struct Plan {
    pub account: AccountSpec,
    pub faults: Faults,
    pub kills: usize,
    /// The `imessage-bridge` binary.
    pub bridge_bin: PathBuf,
    /// The repository (for `scripts/start-synapse.sh`).
    pub repo_root: PathBuf,
    /// The store: None for SQLite beside the config, else a URI (`postgres://…`).
    pub database: Option<String>,
    /// No new life is started after this.
    pub deadline: Instant,
    /// Progress lines on stderr.
    pub verbose: bool,
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub kills: BTreeMap<Phase, usize>,
    /// Lives that ended on their own before their kill.
    pub finished_lives: usize,
    pub checks: Vec<RoomCheck>,
    pub totals: Totals,
    pub secs: f64,
    /// The deadline cut the kills short.
    pub cut_short: bool,
}

impl Report {
    pub fn killed(&self) -> usize {
        self.kills.values().sum()
    }
}

/// A small seeded generator (splitmix64): the kill moments of a seed are the same every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6b69_6c6c_6d65_0001)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The target phase of each kill, in two halves (the later messages are released between them).
/// Each half has a sync kill (the history's pages, then the later messages' pages) and one of
/// download, resp. delivery and upload; the rest are drawn: about 30% sync, 15% download, 15%
/// upload, the rest delivery. Within a half in pipeline order, so each phase still has work
/// when its kills come.
pub fn kill_plan(rng: &mut Rng, kills: usize) -> Vec<Phase> {
    let mut plan = Vec::with_capacity(kills);
    let fixed = [vec![Phase::Sync, Phase::Download], vec![Phase::Sync, Phase::Delivery, Phase::Upload]];
    for (half, fixed) in [kills / 2, kills - kills / 2].into_iter().zip(fixed) {
        let mut this: Vec<Phase> = fixed.into_iter().take(half).collect();
        while this.len() < half {
            this.push(match rng.below(100) {
                0..=29 => Phase::Sync,
                30..=44 => Phase::Download,
                45..=59 => Phase::Upload,
                _ => Phase::Delivery,
            });
        }
        this.sort();
        plan.extend(this);
    }
    plan
}

/// How long after [`ATTACHMENT_PREPARED`] the bridge counts as uploading.
const UPLOAD_WINDOW: Duration = Duration::from_millis(40);

/// The progress marker ([`matrix::progress`]) of one line of the bridge's `--log-format json`
/// log: `fields.progress` of the event (tracing-subscriber's JSON formatter nests an event's
/// fields under `fields`). None for an event without one, and for a line that is not a JSON
/// object at all (a panic message, say), which is not an error: it just marks nothing.
pub fn progress_marker(line: &str) -> Option<String> {
    progress_event(line).map(|(marker, _)| marker)
}

/// As [`progress_marker`], with the whole event (`timestamp`, and under `fields` the marker's
/// figures, an `addr`, …).
pub fn progress_event(line: &str) -> Option<(String, serde_json::Value)> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let marker = event.get("fields")?.get(matrix::progress::FIELD)?.as_str()?.to_owned();
    Some((marker, event))
}

/// The fields of the first event with progress marker `marker` in a `--log-format json` log
/// (complete lines only), None while there is none.
pub fn find_progress(log: &str, marker: &str) -> Option<serde_json::Value> {
    let complete = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    complete.lines().filter_map(progress_event).find(|(m, _)| m == marker).map(|(_, mut event)| event["fields"].take())
}

/// The bridge's log, read as it grows: which phase the bridge is in.
struct LogWatch {
    path: PathBuf,
    read: usize,
    phase: Phase,
    /// When the current phase began (the process's start for `Sync`).
    since: Instant,
    /// How long each phase this life went through all of lasted.
    lasted: BTreeMap<Phase, Duration>,
    /// When the last [`ATTACHMENT_PREPARED`] was seen.
    prepared: Option<Instant>,
}

impl LogWatch {
    fn new(path: PathBuf) -> LogWatch {
        LogWatch { path, read: 0, phase: Phase::Sync, since: Instant::now(), lasted: BTreeMap::new(), prepared: None }
    }

    /// Reads the lines written since the last poll: the phase now.
    fn poll(&mut self) -> Phase {
        let text = std::fs::read(&self.path).unwrap_or_default();
        let now = Instant::now();
        // Whole lines only: the last one may still be being written.
        let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if end > self.read {
            for line in String::from_utf8_lossy(&text[self.read..end]).lines() {
                self.line(line, now);
            }
            self.read = end;
        }
        self.phase_at(now)
    }

    /// One whole log line, read at `now`.
    fn line(&mut self, line: &str, now: Instant) {
        let Some(marker) = progress_marker(line) else { return };
        let next = match (self.phase, marker.as_str()) {
            (_, ATTACHMENT_PREPARED) => {
                self.prepared = Some(now);
                self.phase
            }
            // (Warnings during sync — a zone giving up, a count unavailable — do not end it: the
            // other zones go on, and `sync_finished` still comes.)
            (Phase::Sync, SYNC_FINISHED) => Phase::Download,
            // A local source copies its files before its sync ends: straight on to delivery.
            (Phase::Sync | Phase::Download, FILES_DONE) => Phase::Delivery,
            (p, _) => p,
        };
        if next != self.phase {
            self.lasted.insert(self.phase, now.saturating_duration_since(self.since));
            (self.phase, self.since) = (next, now);
        }
    }

    /// The phase at `now`: delivery counts as upload for [`UPLOAD_WINDOW`] after a file was
    /// prepared.
    fn phase_at(&self, now: Instant) -> Phase {
        match (self.phase, self.prepared) {
            (Phase::Delivery, Some(t)) if now.saturating_duration_since(t) < UPLOAD_WINDOW => Phase::Upload,
            (p, _) => p,
        }
    }
}

/// Milliseconds into its phase a kill aimed at `phase` waits, at most: up to how long the phase
/// lasted the last time a life went through all of it (sync and download get short once the
/// history is in), never more than [`max_delay_ms`].
fn delay_cap_ms(phase: Phase, lasted: &BTreeMap<Phase, Duration>) -> u64 {
    let cap = max_delay_ms(phase);
    lasted.get(&phase).map_or(cap, |d| (d.as_millis() as u64 * 9 / 10).clamp(1, cap))
}

fn max_delay_ms(phase: Phase) -> u64 {
    match phase {
        Phase::Sync => 400,
        Phase::Download => 150,
        Phase::Upload => 30,
        Phase::Delivery => 4000,
    }
}

struct Killed(tokio::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

pub async fn run_seed(plan: &Plan) -> Result<Report> {
    let started = Instant::now();
    let seed = plan.account.seed;
    let say = |msg: String| {
        if plan.verbose {
            eprintln!("[seed {seed} {:>6.1}s] {msg}", started.elapsed().as_secs_f64());
        }
    };
    let sim = Arc::new(Sim::new(plan.account.clone(), plan.faults.clone()));
    let (addr, sim_task) = cloudkit_sim::spawn(sim.clone(), std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await.context("serving the simulator")?;
    let _sim_task = AbortOnDrop(sim_task);
    let sim_url = format!("http://{addr}");
    let dir = tempfile::Builder::new().prefix("crash-campaign-").tempdir().context("a temporary directory")?;
    let d = dir.path();
    sim.session_at(&sim_url).save(&d.join("session.json")).context("writing the session")?;

    let (hs_port, as_port) = (free_port(), free_port());
    let hs_url = format!("http://127.0.0.1:{hs_port}");
    let database = plan.database.clone().unwrap_or_else(|| "sqlite:bridge.db".into());
    let bridge = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&plan.bridge_bin);
        cmd.arg("-c").arg(d.join("config.yaml")).args(args).env("RUST_BACKTRACE", "0").kill_on_drop(true);
        cmd
    };
    let session = d.join("session.json");
    let out = bridge(&["init", "--homeserver", &hs_url, "--domain", DOMAIN, "--owner", OWNER, "--cloudkit", &sim_url, "--database", &database, "--force"])
        .arg("--session")
        .arg(&session)
        .arg("--out")
        .arg(d)
        .args(["--listen", &format!("127.0.0.1:{as_port}")])
        .output()
        .await
        .context("running init")?;
    if !out.status.success() {
        return Err(Error::Failed(format!("init failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let config_path = d.join("config.yaml");
    let mut config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&config_path).context("reading the config")?).context("the config")?;
    *crate::bridge::yaml_slot(&mut config, &["sync", "backoff_ms"]) = 5.into();
    std::fs::write(&config_path, serde_norway::to_string(&config).context("the config")?).context("writing the config")?;
    let _synapse = Killed(
        tokio::process::Command::new(plan.repo_root.join("scripts/start-synapse.sh"))
            .arg(d.join("synapse"))
            .arg(hs_port.to_string())
            .arg(DOMAIN)
            .arg(d.join("registration.yaml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("synapse.log")).context("creating synapse.log")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting scripts/start-synapse.sh")?,
    );
    let reg: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(d.join("registration.yaml")).context("reading the registration")?).context("the registration")?;
    let hs = HomeserverClient::new(&hs_url, reg["as_token"].as_str().context("registration has no as_token")?).context("a homeserver client")?;
    hs.wait_ready(Duration::from_secs(180)).await.with_context(|| format!("Synapse did not start (see {})", d.join("synapse.log").display()))?;
    say(format!("simulator {sim_url}, Synapse {hs_url}, {} messages, {} later", sim.account.total, plan.account.later));

    let mut rng = Rng::new(seed);
    let mut targets = kill_plan(&mut rng, plan.kills);
    let mut kills: BTreeMap<Phase, usize> = BTreeMap::new();
    let mut lasted: BTreeMap<Phase, Duration> = BTreeMap::new();
    let (mut finished_lives, mut released, mut life) = (0, false, 0);
    let mut cut_short = false;
    let mut k = 0;
    while k < targets.len() {
        if Instant::now() >= plan.deadline {
            cut_short = true;
            break;
        }
        if !released && k >= targets.len() / 2 {
            sim.release_later();
            released = true;
            say("later messages released".into());
        }
        life += 1;
        let log = d.join(format!("life-{life}.log"));
        let child = bridge(&["--log-format", "json", "run", "--once"])
            .env("RUST_LOG", "info,matrix::media=debug")
            .stderr(std::fs::File::create(&log).context("creating a life's log")?)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the bridge")?;
        let mut child = Killed(child);
        let mut watch = LogWatch::new(log);
        let target = targets[k];
        let mut kill_at: Option<Instant> = None;
        let killed_in = loop {
            if let Some(status) = child.0.try_wait().context("waiting for the bridge")? {
                say(format!("life {life} ended on its own ({status}) before its {} kill", target.name()));
                finished_lives += 1;
                break None;
            }
            let phase = watch.poll();
            let now = Instant::now();
            match kill_at {
                Some(t) if now >= t => {
                    child.0.start_kill().context("killing the bridge")?;
                    child.0.wait().await.context("waiting for the killed bridge")?;
                    break Some(phase);
                }
                // In the target phase (or past it: then at once, wherever it is now).
                None if phase >= target => {
                    let delay = if phase == target { rng.below(delay_cap_ms(target, &lasted) + 1) } else { rng.below(20) };
                    kill_at = Some(now + Duration::from_millis(delay));
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        lasted.extend(watch.lasted);
        if let Some(phase) = killed_in {
            *kills.entry(phase).or_default() += 1;
            say(format!("kill {} (aimed at {}) landed in {}", k + 1, target.name(), phase.name()));
            k += 1;
        } else if !released {
            // Nothing left before the release: the later messages are the next work.
            sim.release_later();
            released = true;
            say("later messages released early: the history was done".into());
        } else if target > Phase::Download {
            // Every message is delivered: no kill can land in delivery any more.
            cut_short = true;
            break;
        } else {
            // No files (or no pages) left for this one: aim it at delivery instead.
            targets[k] = Phase::Delivery;
        }
    }
    // The last lives, unkilled, until everything is synced and delivered: with the history
    // alone first if the kills never got to the release (then the later messages go in at the
    // live edge of rooms that already hold the history).
    if !released {
        run_until_done(&bridge).await.context("delivering the history")?;
        sim.release_later();
    }
    run_until_done(&bridge).await.context("delivering everything")?;

    let store = store::open(&match &plan.database {
        Some(uri) => uri.clone(),
        None => format!("sqlite:{}", d.join("bridge.db").display()),
    })
    .await
    .context("opening the store")?;
    let portals = rooms::portals(store.as_ref()).await?;
    let expected = rooms::expected(crate::sim::truth_lines(&sim), OWNER, DOMAIN);
    let checks = rooms::check_rooms(&hs, &expected, &portals, OWNER, DOMAIN).await?;
    let totals = rooms::totals(&checks);
    say(format!("compared: {totals:?}"));
    Ok(Report { seed, kills, finished_lives, checks, totals, secs: started.elapsed().as_secs_f64(), cut_short })
}

/// `run --once` until every zone's pass finished and no room has messages waiting (bounded).
async fn run_until_done(bridge: &impl Fn(&[&str]) -> tokio::process::Command) -> Result<()> {
    let mut last = String::new();
    for _ in 0..8 {
        let out = bridge(&["run", "--once"]).env("RUST_LOG", "warn").output().await.context("running the bridge")?;
        let status = bridge(&["status", "--json"]).output().await.context("running status")?;
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).context("status --json is not JSON")?;
        if out.status.success() && all_done(&status) {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    Err(Error::Failed(format!("the bridge did not finish syncing and delivering in 8 runs; the last said: {last}")))
}

/// Every zone's pass finished and no room has messages waiting.
fn all_done(status: &serde_json::Value) -> bool {
    let zones_done = status["zones"].as_array().is_some_and(|z| z.iter().all(|z| z["stop_reason"] == "api_done"));
    let rooms_done = status["rooms"].as_array().is_some_and(|r| r.iter().all(|r| r["pending"].as_i64() == Some(0) && r["in_flight"].as_i64() == Some(0)));
    zones_done && rooms_done
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The repository root, from a crate directory inside it (`bench`, `crates/x`).
pub fn repo_root_from(manifest_dir: &Path) -> PathBuf {
    manifest_dir.ancestors().find(|p| p.join("scripts/start-synapse.sh").is_file()).map(Path::to_path_buf).unwrap_or_else(|| manifest_dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// The log written by tracing-subscriber's JSON formatter (what `--log-format json` uses)
    /// into a file, and a [`LogWatch`] on that file.
    struct JsonLog {
        file: tempfile::NamedTempFile,
        dispatch: tracing::Dispatch,
        watch: LogWatch,
    }

    impl JsonLog {
        fn new() -> JsonLog {
            let file = tempfile::NamedTempFile::new().unwrap();
            let writer = std::sync::Mutex::new(append(&file));
            let subscriber = tracing_subscriber::fmt().json().with_max_level(tracing::Level::DEBUG).with_writer(writer).finish();
            let watch = LogWatch::new(file.path().to_owned());
            JsonLog { file, dispatch: tracing::Dispatch::new(subscriber), watch }
        }

        /// Emits the events of `events`, then polls the watch.
        fn then(&mut self, events: impl FnOnce()) -> Phase {
            tracing::dispatcher::with_default(&self.dispatch, events);
            self.watch.poll()
        }

        /// Appends raw text (not from the formatter), then polls the watch.
        fn raw(&mut self, text: &str) -> Phase {
            append(&self.file).write_all(text.as_bytes()).unwrap();
            self.watch.poll()
        }
    }

    /// The file opened to append (the formatter and raw writes share the end of the file).
    fn append(file: &tempfile::NamedTempFile) -> std::fs::File {
        std::fs::OpenOptions::new().append(true).open(file.path()).unwrap()
    }

    #[test]
    fn the_formatter_nests_the_marker_under_fields() {
        let mut log = JsonLog::new();
        log.then(|| tracing::info!(progress = SYNC_FINISHED, changes = 12u64, "sync finished"));
        let text = std::fs::read_to_string(log.file.path()).unwrap();
        let event: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(event["fields"]["progress"], "sync_finished", "{event}");
        assert_eq!(event["level"], "INFO", "{event}");
        assert_eq!(progress_marker(text.trim_end()).as_deref(), Some(SYNC_FINISHED));
        assert_eq!(progress_marker("thread 'main' panicked at src/run.rs:1:1"), None);
        assert_eq!(progress_marker(r#"{"fields":{"message":"sync finished"}}"#), None);
        assert_eq!(progress_marker("[1, 2]"), None);
    }

    #[test]
    fn phases_follow_the_markers_not_the_wording() {
        let mut log = JsonLog::new();
        // The wording alone, a warning and a line that is not JSON change nothing.
        assert_eq!(log.then(|| tracing::info!(zone = "messageManateeZone", "zone finished")), Phase::Sync);
        assert_eq!(log.then(|| tracing::info!("sync finished; attachment files fetched; attachment prepared")), Phase::Sync);
        assert_eq!(log.then(|| tracing::warn!("server count unavailable")), Phase::Sync);
        assert_eq!(log.raw("thread 'tokio-runtime-worker' panicked at somewhere\n"), Phase::Sync);
        // A marker on a line still being written is not read until the line is whole.
        let line = r#"{"level":"INFO","fields":{"message":"records in","progress":"sync_finished"},"target":"imessage_bridge::run"}"#;
        let (head, tail) = line.split_at(40);
        assert_eq!(log.raw(head), Phase::Sync);
        assert_eq!(log.raw(&format!("{tail}\n")), Phase::Download);
        // A second `sync_finished` does not move it on; the files' pass ending on an error does.
        assert_eq!(log.then(|| tracing::info!(progress = SYNC_FINISHED, "again")), Phase::Download);
        assert_eq!(log.then(|| tracing::warn!(progress = FILES_DONE, "attachment files not fetched this time: boom")), Phase::Delivery);
        assert_eq!(
            log.then(|| tracing::debug!(target: "matrix::media", progress = ATTACHMENT_PREPARED, file = "a.heic", "ready")),
            Phase::Upload,
            "within the upload window of a prepared file"
        );
        let now = Instant::now();
        assert_eq!(log.watch.phase_at(now), Phase::Upload);
        assert_eq!(log.watch.phase_at(now + UPLOAD_WINDOW), Phase::Delivery, "after the window");
        assert_eq!(log.watch.lasted.keys().copied().collect::<Vec<_>>(), vec![Phase::Sync, Phase::Download]);
    }

    #[test]
    fn a_local_source_goes_from_sync_to_delivery() {
        // chat.db and backups copy their files before the sync ends.
        let mut log = JsonLog::new();
        assert_eq!(log.then(|| tracing::info!(progress = FILES_DONE, stored = 3u64, "attachment files copied")), Phase::Delivery);
        assert_eq!(log.then(|| tracing::info!(progress = SYNC_FINISHED, "sync finished")), Phase::Delivery);
        assert_eq!(log.watch.lasted.keys().copied().collect::<Vec<_>>(), vec![Phase::Sync]);
    }
}
