//! Retrying CloudKit requests: budgets for errors and for throttling, the server's Retry-After,
//! and every wait cut short by a stop.
//!
//! Why the cap and the stop: a Retry-After is the server's wish, not a contract. An hour-long one
//! (or a broken header) times the throttle budget would wedge a zone for most of a day, and a
//! SIGTERM during such a wait would go unanswered until systemd's kill. So the wait is capped at
//! [`MAX_RETRY_AFTER`], and a stop ends any wait at once with `interrupted` (the zone's token stays
//! at its last committed page, so nothing is lost).

use std::time::Duration;

use store::StopReason;

use crate::options::SyncOptions;

/// The longest Retry-After the sync waits for; a longer one waits this long and asks again.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Why fetching stopped before a page arrived.
pub(crate) struct Stop {
    pub(crate) reason: StopReason,
    pub(crate) error: cloudkit::Error,
}

fn backoff(opts: &SyncOptions, attempt: u32) -> Duration {
    opts.backoff_base.saturating_mul(1u32 << attempt.min(16)).min(opts.backoff_max)
}

/// How long to wait after the `throttles`-th throttled reply: the server's Retry-After (capped),
/// or our own backoff when it named none.
fn throttle_wait(opts: &SyncOptions, asked: Option<Duration>, throttles: u32) -> Duration {
    match asked {
        Some(asked) => asked.min(MAX_RETRY_AFTER),
        None => backoff(opts, throttles),
    }
}

/// Calls `op` until it succeeds, the error is not retryable, a budget is spent, or a stop is
/// asked for during a wait (then the reason is `interrupted`).
pub(crate) async fn with_retries<T, F, Fut>(opts: &SyncOptions, what: &str, mut op: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = cloudkit::Result<T>>,
{
    let (mut failures, mut throttles) = (0u32, 0u32);
    loop {
        let error = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        opts.failed_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wait = match &error {
            cloudkit::Error::ZoneNotFound { .. } => Err(StopReason::ZoneNotFound),
            cloudkit::Error::FullResetNeeded => Err(StopReason::ResetNeeded),
            cloudkit::Error::Throttled { .. } if throttles < opts.throttle_budget => {
                throttles += 1;
                let wait = throttle_wait(opts, error.retry_after(), throttles);
                if wait > opts.backoff_max {
                    tracing::info!(what, secs = wait.as_secs(), "CloudKit asked to wait before the next request");
                }
                tracing::debug!(what, ?wait, "throttled");
                Ok(wait)
            }
            e if e.is_retryable() && failures + 1 < opts.error_budget => {
                failures += 1;
                tracing::debug!(what, failures, "retrying after error: {e}");
                Ok(backoff(opts, failures))
            }
            _ => Err(StopReason::ErrorBudget),
        };
        let reason = match wait {
            Ok(wait) if opts.stop.sleep(wait).await => continue,
            Ok(_) => {
                tracing::info!(what, "stopped while waiting to retry");
                return Err(Stop { reason: StopReason::Interrupted, error });
            }
            Err(reason) => reason,
        };
        tracing::warn!(what, reason = reason.as_str(), "giving up: {error}");
        return Err(Stop { reason, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StopSignal;

    #[test]
    fn retry_after_is_capped_at_15_minutes() {
        let opts = SyncOptions::default();
        assert_eq!(throttle_wait(&opts, Some(Duration::from_secs(3600)), 1), Duration::from_secs(900));
        assert_eq!(throttle_wait(&opts, Some(Duration::from_secs(u64::MAX)), 1), Duration::from_secs(900));
        assert_eq!(throttle_wait(&opts, Some(Duration::from_secs(7)), 1), Duration::from_secs(7));
        assert!(throttle_wait(&opts, None, 30) <= opts.backoff_max);
    }

    /// A stop during an hour's Retry-After (or an hour's backoff) ends the wait at once.
    #[tokio::test]
    async fn a_stop_ends_a_long_wait_at_once() {
        type Case = (&'static str, fn() -> cloudkit::Error);
        let cases: [Case; 2] = [
            ("an hour's Retry-After", || cloudkit::Error::Throttled { retry_after: Some(Duration::from_secs(3600)) }),
            ("an hour's backoff", || cloudkit::Error::Frame("flaky".into())),
        ];
        for (what, error) in cases {
            let (tx, stop) = StopSignal::new();
            let opts = SyncOptions { stop, backoff_base: Duration::from_secs(3600), backoff_max: Duration::from_secs(3600), ..SyncOptions::default() };
            let calls = std::sync::atomic::AtomicU32::new(0);
            let op = || {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The stop is asked for before the wait begins; a watch keeps it for the wait.
                let _ = tx.send(true);
                async move { Err::<(), _>(error()) }
            };
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(60), with_retries(&opts, "test", op)).await;
            let stop = match result {
                Ok(Err(stop)) => stop,
                Ok(Ok(())) => panic!("cannot succeed"),
                Err(_) => panic!("{what}: the wait ignored the stop"),
            };
            assert_eq!(stop.reason, StopReason::Interrupted, "{what}");
            assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1, "{what}: no second request after the stop");
            assert!(started.elapsed() < Duration::from_secs(60));
        }
    }
}
