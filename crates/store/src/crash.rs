//! Crash points: places where a test can make the bridge die on purpose, exactly there.
//!
//! Why: a SIGKILL at a random moment rarely lands between the two writes that matter (a send
//! and its ledger row, `createRoom` and the portal row, the middle of a page commit), so the
//! code paths that recover from those gaps would go untested. `IMESSAGE_BRIDGE_CRASH_AT=point`
//! (or `point:n` for the n-th time it is reached) aborts the process there, as abruptly as a
//! kill: no destructor, no flush, no transaction commit. The points: `mid-page-commit` (sync: a
//! page's rows written, its transaction not committed), `after-create-room` (the room exists,
//! its portal row does not), `before-send` (a ledger row without an event id, nothing sent),
//! `after-send` (sent, the ledger row still without its event id), `mid-upload` (an
//! attachment's media uploaded, its event not sent). Unset, a point costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const CRASH_AT_ENV: &str = "IMESSAGE_BRIDGE_CRASH_AT";

fn plan() -> &'static Option<(String, u64)> {
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let value = std::env::var(CRASH_AT_ENV).ok()?;
        let (point, n) = match value.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().ok()?),
            None => (value, 1),
        };
        Some((point, n))
    })
}

/// Aborts the process if this is the crash point the environment names, reached its n-th time.
pub fn crash_point(point: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((wanted, n)) = plan() else { return };
    if wanted == point && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        eprintln!("crash point {point} reached (time {n}): aborting");
        std::process::abort();
    }
}
