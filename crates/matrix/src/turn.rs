//! A room's turn at delivery: how long it may last and how it ended.
//!
//! Why a leaf module: the scheduler (`live`) starts turns and delivery (`delivery`) ends them;
//! with the turn apart, delivery does not import the scheduler that drives it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long a room's turn may go on while another room of its class waits for a slot.
pub const TURN: Duration = Duration::from_secs(5);

/// How a room's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnEnd {
    /// Nothing of the room was left to send.
    Done,
    /// The turn (or a stop) ended it with messages left.
    More,
    /// The stored history is not complete (a sync pass is under way): nothing was sent; the
    /// wake after the pass brings the room back.
    Waiting,
}

/// A running turn: over once it has lasted [`TURN`] while a room of its class waits.
pub(crate) struct Turn<'a> {
    started: Instant,
    waiting: Option<&'a AtomicUsize>,
}

impl<'a> Turn<'a> {
    /// A turn starting now; `waiting` counts the rooms of its class waiting for a slot (None: it
    /// is never over).
    pub(crate) fn new(waiting: Option<&'a AtomicUsize>) -> Self {
        Turn { started: Instant::now(), waiting }
    }

    pub(crate) fn over(&self) -> bool {
        self.waiting.is_some_and(|w| w.load(Ordering::Relaxed) > 0) && self.started.elapsed() >= TURN
    }
}
