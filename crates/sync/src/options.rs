//! How hard a CloudKit sync tries: error and throttle budgets, backoff, page bounds, and the
//! stop signal it obeys.
//!
//! Why a leaf module: the sync loop (the crate root) and its retry policy (`retry`) both read
//! these; apart, the retry policy does not import the loop.

use std::time::Duration;

use crate::stop::StopSignal;

/// How a sync pass retries and when it stops (see the fields).
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Consecutive failures of one request before the zone stops with `error_budget`.
    pub error_budget: u32,
    /// Consecutive 429/throttle answers tolerated before stopping (they are waited out).
    pub throttle_budget: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Retries of the key warm-up after the first attempt.
    pub key_retries: u32,
    /// Safety bound on pages per zone and run.
    pub page_limit: u64,
    /// Records per `record/retrieve` request when re-fetching failed records.
    pub refetch_batch: usize,
    /// A stop asked for from outside (SIGINT/SIGTERM): each zone finishes the page it is
    /// committing and stops with `interrupted`, its token at that page.
    pub stop: StopSignal,
    /// Counts every failed CloudKit request, retried or not (the bridge's metrics read it).
    pub failed_requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            error_budget: 3,
            throttle_budget: 20,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            key_retries: 6,
            page_limit: 1_000_000,
            refetch_batch: 100,
            stop: StopSignal::default(),
            failed_requests: Default::default(),
        }
    }
}
