//! Progress on stderr, driven by the sync engine's and the deliverer's callbacks: on a terminal,
//! bars (one per zone while syncing, one per room while delivering); off a terminal — under
//! systemd, in a container, piped to a file — a log line per zone or room at a steady interval
//! ([`LogProgress`]), since a twenty-minute delivery that prints nothing looks hung.
//!
//! On a terminal the log goes through the bars ([`BarsWriter`]): each line is written while the
//! bars are cleared and then redrawn below it, so bars and log lines never garble each other.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The one set of bars of the process, shared by every bar and the log writer.
fn multi() -> MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new).clone()
}

/// A log writer for a terminal: writes each line with the bars suspended.
pub struct BarsWriter;

impl std::io::Write for BarsWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        multi().suspend(|| std::io::Write::write_all(&mut std::io::stderr(), buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

/// Bars keyed by zone or chat id, drawn together.
struct KeyedBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for KeyedBars {
    fn default() -> Self {
        KeyedBars { multi: multi(), bars: Mutex::default() }
    }
}

impl KeyedBars {
    fn add(&self, key: &str, bar: ProgressBar, template: &str, prefix: String) {
        bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar.set_prefix(prefix);
        let bar = self.multi.add(bar);
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(key.to_string(), bar);
        }
    }

    fn get(&self, key: &str) -> Option<ProgressBar> {
        self.bars.lock().ok().and_then(|b| b.get(key).cloned())
    }

    fn remove(&self, key: &str) -> Option<ProgressBar> {
        self.bars.lock().ok().and_then(|mut b| b.remove(key))
    }
}

/// One bar per zone during `sync`.
#[derive(Default)]
pub struct Bars(KeyedBars);

impl Bars {
    pub fn new() -> Self {
        Self::default()
    }
}

impl sync::Progress for Bars {
    fn zone_started(&self, zone: &str, server_count: Option<i64>) {
        let bar = match server_count {
            Some(n) => ProgressBar::new(n.max(0) as u64),
            None => ProgressBar::new_spinner(),
        };
        self.0.add(zone, bar, "{prefix:>22} {bar:30} {pos:>8}/{len:<8} {per_sec:>10} {msg}", zone.to_string());
    }

    fn page(&self, zone: &str, changes: usize) {
        if let Some(bar) = self.0.get(zone) {
            bar.inc(changes as u64);
        }
    }

    fn zone_finished(&self, zone: &str, reason: store::StopReason) {
        if let Some(bar) = self.0.get(zone) {
            bar.finish_with_message(reason.as_str());
        }
    }
}

/// One bar per room being delivered.
#[derive(Default)]
pub struct RoomBars(KeyedBars);

impl RoomBars {
    pub fn new() -> Self {
        Self::default()
    }
}

impl matrix::delivery::DeliveryProgress for RoomBars {
    fn room_started(&self, chat_id: &str, name: &str, pending: usize) {
        let prefix = name.chars().take(30).collect();
        self.0.add(chat_id, ProgressBar::new(pending as u64), "{prefix:>30} {bar:30} {pos:>7}/{len:<7} {per_sec:>9}", prefix);
    }

    fn sent(&self, chat_id: &str) {
        if let Some(bar) = self.0.get(chat_id) {
            bar.inc(1);
        }
    }

    fn room_finished(&self, chat_id: &str) {
        if let Some(bar) = self.0.remove(chat_id) {
            bar.finish_and_clear();
        }
    }
}

/// Passes delivery progress on, notifies `sent` after each event (see `run`'s clean stop) and
/// counts the events and the time each took for the metrics.
pub struct Notifying<'a> {
    inner: &'a dyn matrix::delivery::DeliveryProgress,
    sent: Option<&'a tokio::sync::Notify>,
    metrics: Option<&'a matrix::metrics::Metrics>,
    /// When each room's previous event (or the room's start) was.
    last: Mutex<HashMap<String, Instant>>,
}

impl<'a> Notifying<'a> {
    pub fn new(
        inner: &'a dyn matrix::delivery::DeliveryProgress,
        sent: Option<&'a tokio::sync::Notify>,
        metrics: Option<&'a matrix::metrics::Metrics>,
    ) -> Self {
        Notifying { inner, sent, metrics, last: Mutex::default() }
    }
}

impl matrix::delivery::DeliveryProgress for Notifying<'_> {
    fn room_started(&self, chat_id: &str, name: &str, pending: usize) {
        self.inner.room_started(chat_id, name, pending);
        if let Ok(mut last) = self.last.lock() {
            last.insert(chat_id.to_string(), Instant::now());
        }
    }

    fn sent(&self, chat_id: &str) {
        self.inner.sent(chat_id);
        if let Some(n) = self.sent {
            n.notify_waiters();
        }
        if let Some(m) = self.metrics {
            m.events_delivered.inc();
            let now = Instant::now();
            if let Some(before) = self.last.lock().ok().and_then(|mut last| last.insert(chat_id.to_string(), now)) {
                m.delivery_latency.observe(now.duration_since(before).as_secs_f64());
            }
        }
    }

    fn room_finished(&self, chat_id: &str) {
        self.inner.room_finished(chat_id);
    }
}

/// Sync progress passed on, with pages and records counted for the metrics.
pub struct CountingSync {
    pub inner: Arc<dyn sync::Progress>,
    pub metrics: Arc<matrix::metrics::Metrics>,
}

impl sync::Progress for CountingSync {
    fn zone_started(&self, zone: &str, server_count: Option<i64>) {
        self.inner.zone_started(zone, server_count);
    }

    fn page(&self, zone: &str, changes: usize) {
        self.inner.page(zone, changes);
        self.metrics.pages.inc();
        self.metrics.records_synced.inc_by(changes as u64);
    }

    fn zone_finished(&self, zone: &str, reason: store::StopReason) {
        self.inner.zone_finished(zone, reason);
    }
}

/// How often [`LogProgress`] logs unless `IMESSAGE_BRIDGE_PROGRESS_SECS` says otherwise.
const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How often [`LogProgress`] logs: `IMESSAGE_BRIDGE_PROGRESS_SECS` (seconds, fractions allowed),
/// default [`DEFAULT_LOG_INTERVAL`].
pub fn log_interval() -> Duration {
    std::env::var("IMESSAGE_BRIDGE_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_LOG_INTERVAL, Duration::from_secs_f64)
}

/// One zone's or room's counts, for [`LogProgress`].
struct Tally {
    name: String,
    done: u64,
    total: Option<u64>,
    /// `done` at the previous log line.
    logged: u64,
}

/// Progress off a terminal: every `every`, one log line per zone or room under way with its
/// count, its total and its rate since the line before. Stops logging when dropped.
pub struct LogProgress {
    tallies: Arc<Mutex<BTreeMap<String, Tally>>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl LogProgress {
    /// `what` names the work in the log lines (`sync`, `delivery`).
    pub fn start(what: &'static str, every: Duration) -> Self {
        let tallies: Arc<Mutex<BTreeMap<String, Tally>>> = Arc::default();
        let shared = tallies.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut before = Instant::now();
            loop {
                tick.tick().await;
                let secs = before.elapsed().as_secs_f64().max(1e-9);
                before = Instant::now();
                let Ok(mut tallies) = shared.lock() else { return };
                for t in tallies.values_mut() {
                    let rate = (t.done - t.logged) as f64 / secs;
                    let total = t.total.map_or("?".to_string(), |n| n.to_string());
                    tracing::info!(what, name = %t.name, done = t.done, total = %total, rate = format!("{rate:.1}/s"), "progress");
                    t.logged = t.done;
                }
            }
        });
        LogProgress { tallies, ticker }
    }

    fn begin(&self, key: &str, name: &str, total: Option<u64>) {
        if let Ok(mut t) = self.tallies.lock() {
            t.insert(key.to_string(), Tally { name: name.to_string(), done: 0, total, logged: 0 });
        }
    }

    fn add(&self, key: &str, n: u64) {
        if let Some(t) = self.tallies.lock().ok().as_mut().and_then(|t| t.get_mut(key)) {
            t.done += n;
        }
    }

    fn end(&self, key: &str) {
        if let Ok(mut t) = self.tallies.lock() {
            t.remove(key);
        }
    }
}

impl Drop for LogProgress {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl sync::Progress for LogProgress {
    fn zone_started(&self, zone: &str, server_count: Option<i64>) {
        self.begin(zone, zone, server_count.map(|n| n.max(0) as u64));
    }

    fn page(&self, zone: &str, changes: usize) {
        self.add(zone, changes as u64);
    }

    fn zone_finished(&self, zone: &str, _reason: store::StopReason) {
        self.end(zone);
    }
}

impl matrix::delivery::DeliveryProgress for LogProgress {
    fn room_started(&self, chat_id: &str, name: &str, pending: usize) {
        self.begin(chat_id, name, Some(pending as u64));
    }

    fn sent(&self, chat_id: &str) {
        self.add(chat_id, 1);
    }

    fn room_finished(&self, chat_id: &str) {
        self.end(chat_id);
    }
}
