//! Progress bars on a terminal (stderr): one per zone while syncing, one per room while
//! delivering, driven by the sync engine's and the deliverer's callbacks.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Bars keyed by zone or chat id, drawn together.
#[derive(Default)]
struct KeyedBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
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

/// Passes delivery progress on and notifies `sent` after each event (see `run`'s clean stop).
pub struct Notifying<'a> {
    pub inner: &'a dyn matrix::delivery::DeliveryProgress,
    pub sent: Option<&'a tokio::sync::Notify>,
}

impl matrix::delivery::DeliveryProgress for Notifying<'_> {
    fn room_started(&self, chat_id: &str, name: &str, pending: usize) {
        self.inner.room_started(chat_id, name, pending);
    }

    fn sent(&self, chat_id: &str) {
        self.inner.sent(chat_id);
        if let Some(n) = self.sent {
            n.notify_waiters();
        }
    }

    fn room_finished(&self, chat_id: &str) {
        self.inner.room_finished(chat_id);
    }
}
