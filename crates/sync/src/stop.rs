//! A stop asked for from outside a running sync (SIGINT/SIGTERM in the bridge's `run`).
//!
//! Why a watch channel and not dropping the sync's future: the zones run as spawned tasks, and a
//! stop should land between page commits (each page and its token are one transaction), so each
//! zone looks at the signal where it is safe to stop and records `interrupted`.

/// A request to stop, shared by every zone of a sync (cloned from one [`StopSignal::new`]).
/// The default one never fires.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Option<tokio::sync::watch::Receiver<bool>>);

impl StopSignal {
    /// A signal and the sender that fires it (`send(true)`).
    pub fn new() -> (tokio::sync::watch::Sender<bool>, StopSignal) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, StopSignal(Some(rx)))
    }

    pub fn is_stopped(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once a stop is asked for; never if the sender is gone without asking.
    pub async fn stopped(&self) {
        if let Some(rx) = &self.0 {
            if rx.clone().wait_for(|stop| *stop).await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await
    }

    /// Waits `duration`, or less if a stop is asked for first (or was already): true if the
    /// whole wait passed, false if it was cut short. Every wait of a sync goes through here, so
    /// no retry or backoff outlasts a stop.
    pub async fn sleep(&self, duration: std::time::Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.stopped() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }
}
