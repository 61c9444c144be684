//! Wakes `run` when a Messages database on disk changes, so a message written on a Mac reaches
//! its room within seconds instead of at the next poll.
//!
//! Messages writes `chat.db` in WAL mode: a new message lands in `chat.db-wal` long before a
//! checkpoint touches `chat.db`. So the folder is watched (not the file), and any change to a
//! file whose name starts with the database's counts. Changes come in bursts (a message is a
//! few writes to the WAL and its index), so a change is followed by a short quiet period
//! before it is reported, and changes during the pass it triggers wake the next pass (one
//! stored permit). The periodic poll stays as the fallback: a watch that cannot be set up (a
//! network file system, a platform without notifications) is logged and `run` polls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

/// How long the folder must be quiet after a change before the change is reported.
const SETTLE: Duration = Duration::from_millis(300);

/// A watch on the folder of a database.
pub struct DatabaseWatch {
    _watcher: notify::RecommendedWatcher,
    changed: Arc<Notify>,
}

impl DatabaseWatch {
    /// Watches the folder holding `database` for changes to it (and its `-wal`, `-shm`).
    pub fn start(database: &Path) -> anyhow::Result<DatabaseWatch> {
        let folder = database.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let name = database.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let changed = Arc::new(Notify::new());
        let notify = changed.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            if event.paths.iter().any(|p: &PathBuf| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&name))) {
                notify.notify_one();
            }
        })?;
        watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        Ok(DatabaseWatch { _watcher: watcher, changed })
    }

    /// Returns once the database changed and then stayed quiet for a moment.
    pub async fn changed(&self) {
        self.changed.notified().await;
        loop {
            tokio::select! {
                _ = self.changed.notified() => continue,
                _ = tokio::time::sleep(SETTLE) => return,
            }
        }
    }
}

/// Waits for `watch` when there is one, forever otherwise (a `select!` branch that never fires).
pub async fn changed(watch: Option<&DatabaseWatch>) {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}
