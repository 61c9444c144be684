//! Progress bars per zone on a terminal (stderr), driven by the sync engine's callbacks.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) }
    }
}

impl sync::Progress for Bars {
    fn zone_started(&self, zone: &str, server_count: Option<i64>) {
        let bar = match server_count {
            Some(n) => ProgressBar::new(n.max(0) as u64),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template("{prefix:>22} {bar:30} {pos:>8}/{len:<8} {per_sec:>10} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(zone.to_string());
        let bar = self.multi.add(bar);
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(zone.to_string(), bar);
        }
    }

    fn page(&self, zone: &str, changes: usize) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(zone).cloned()) {
            bar.inc(changes as u64);
        }
    }

    fn zone_finished(&self, zone: &str, reason: store::StopReason) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(zone).cloned()) {
            bar.finish_with_message(reason.as_str());
        }
    }
}

/// One bar per room being delivered.
pub struct RoomBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl RoomBars {
    pub fn new() -> Self {
        RoomBars { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) }
    }
}

impl matrix::delivery::DeliveryProgress for RoomBars {
    fn room_started(&self, chat_id: &str, name: &str, pending: usize) {
        let bar = self.multi.add(ProgressBar::new(pending as u64));
        let style = ProgressStyle::with_template("{prefix:>30} {bar:30} {pos:>7}/{len:<7} {per_sec:>9}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(name.chars().take(30).collect::<String>());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(chat_id.to_string(), bar);
        }
    }

    fn sent(&self, chat_id: &str) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(chat_id).cloned()) {
            bar.inc(1);
        }
    }

    fn room_finished(&self, chat_id: &str) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(chat_id)) {
            bar.finish_and_clear();
        }
    }
}
