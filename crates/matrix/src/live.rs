//! Which room is delivered when: per-room turns, so the live edge never waits for another
//! chat's history.
//!
//! Why: a chat's history can be tens of thousands of events, and a homeserver persists the
//! events of one room one at a time (Synapse: 20–40/s), so a big chat takes many minutes. Done
//! as one round over every room, that held back every new message of every other room until the
//! biggest history was in. Here each room is a queue entry of its own:
//!
//! - A **wake** (the first one at start; in `run`, one after each sync pass, which comes from the
//!   sync's own loop beside this) puts every chat in the queue once (renames, revisions and new
//!   members are looked at too); a chat whose turn is under way goes in again when it ends.
//! - Rooms come in two classes, each with `concurrency` slots of its own: **live** rooms (their
//!   history is in: `Store::set_room_live`) and rooms still taking in **history**. A live room
//!   therefore never waits for a history room's slot: its new messages go in as soon as a sync
//!   pass stored them. The homeserver's limit is per room, so two classes of slots cost it no
//!   more than twice the rooms at once, and live rooms send a few events each.
//! - Within a class, a room's **turn** ends after [`TURN`] when another room of its class waits
//!   for a slot; it goes to the back of the queue and resumes where it stopped (what is delivered
//!   is in the ledger). So a small chat is never queued behind a big chat's thousands, while an
//!   uncontended big chat keeps its slot (a turn re-reads the chat, which costs something).
//! - A room has at most one turn at a time and sends its messages in order, so a room still
//!   taking in its history keeps its order: what came later goes after it, as before.
//!
//! A room that fails waits for its own backoff (the others go on); a stop lets each running
//! turn finish the event in flight. Crash safety is the ledger's (`delivery.rs`), per event, and
//! does not depend on which room sends when.
//!
//! The turns run as futures of the scheduler's own task, so the scheduler awaits nothing itself:
//! the wake's reads and each turn's bookkeeping are futures polled beside the turns. (A turn
//! left unpolled in the middle of a query would keep the store's one SQLite writer connection,
//! and a scheduler waiting for that connection would wait forever.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::stream::{FuturesUnordered, StreamExt};
use store::{Chat, RoomDelivery};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::delivery::{Deliverer, DeliveryProgress, DeliveryReport, RoomFailure, ROOM_BACKOFF, ROOM_BACKOFF_MAX};
use crate::Result;

pub use crate::turn::TURN;
use crate::turn::{Turn, TurnEnd};

const LIVE: usize = 0;
const HISTORY: usize = 1;

/// The scheduler's own state (the running turns are apart: they borrow only `waiting`).
#[derive(Default)]
struct Rooms {
    chats: HashMap<String, Chat>,
    /// Per class, the rooms waiting for a slot, in order.
    queue: [VecDeque<String>; 2],
    queued: HashSet<String>,
    running: HashMap<String, usize>,
    /// Rooms woken while their turn was running: queued again when it ends.
    again: HashSet<String>,
    live: HashSet<String>,
    /// Rooms with messages waiting at the last wake (a failure is shown there) and with an error.
    waiting_messages: HashSet<String>,
    errored: HashSet<String>,
    /// Rooms backing off after a failure, until when (`run` only).
    sleeping: HashMap<String, Instant>,
    /// Per room tried this pass, whether its latest turn failed.
    failing: HashMap<String, bool>,
}

/// What a wake read (see [`Deliverer::woken`]).
struct Woken {
    chats: Vec<Chat>,
    waiting: Option<String>,
    adopted: u64,
    deliveries: Vec<RoomDelivery>,
}

/// What the scheduler knew of a room when its turn began.
#[derive(Clone, Copy)]
struct Known {
    live: bool,
    errored: bool,
    waiting_messages: bool,
}

impl Rooms {
    fn known(&self, chat_id: &str) -> Known {
        Known { live: self.live.contains(chat_id), errored: self.errored.contains(chat_id), waiting_messages: self.waiting_messages.contains(chat_id) }
    }

    fn enqueue(&mut self, chat_id: &str) {
        if self.running.contains_key(chat_id) {
            self.again.insert(chat_id.to_string());
        } else if !self.sleeping.contains_key(chat_id) && self.queued.insert(chat_id.to_string()) {
            let class = if self.live.contains(chat_id) { LIVE } else { HISTORY };
            self.queue[class].push_back(chat_id.to_string());
        }
    }
}

impl Deliverer {
    /// Delivers by room turns (see the module doc). `stored` None: every chat once, until
    /// nothing is pending (`deliver`, `run --once`); the report, or the first error when every
    /// room tried failed. `stored` Some: a wake at start and at each change of it, until a stop
    /// ([`Self::request_stop`]) or its sender is gone; `on_pass` gets the report each time the
    /// queue has run empty.
    pub async fn deliver_rooms(
        &self,
        progress: &dyn DeliveryProgress,
        mut stored: Option<watch::Receiver<u64>>,
        on_pass: &(dyn Fn(&DeliveryReport) + Sync),
    ) -> Result<DeliveryReport> {
        let once = stored.is_none();
        let concurrency = self.config.concurrency.max(1);
        let waiting = [AtomicUsize::new(0), AtomicUsize::new(0)];
        let report = Mutex::new(DeliveryReport::default());
        let mut rooms = Rooms::default();
        let mut running = FuturesUnordered::new();
        let mut stop = self.stop.subscribe();
        let mut wake_at = Some(Instant::now());
        let mut wake_backoff = ROOM_BACKOFF;
        let mut first_error = None;
        let mut waking: Option<std::pin::Pin<Box<dyn std::future::Future<Output = Result<Woken>> + Send + '_>>> = None;
        loop {
            if wake_at.is_some_and(|t| t <= Instant::now()) && waking.is_none() && !self.stopping() {
                wake_at = None;
                waking = Some(Box::pin(self.woken()));
            }
            if !self.stopping() {
                for class in [LIVE, HISTORY] {
                    while rooms.running.values().filter(|c| **c == class).count() < concurrency {
                        let Some(id) = rooms.queue[class].pop_front() else { break };
                        rooms.queued.remove(&id);
                        let Some(chat) = rooms.chats.get(&id).cloned() else { continue };
                        let known = rooms.known(&id);
                        rooms.running.insert(id, class);
                        let (report, waiting) = (&report, &waiting[class]);
                        running.push(async move {
                            let turn = Turn::new(Some(waiting));
                            let result = self.turn(&chat, known, progress, report, turn).await;
                            (chat.chat_id, result)
                        });
                    }
                }
            }
            for class in [LIVE, HISTORY] {
                waiting[class].store(rooms.queue[class].len(), Ordering::Relaxed);
            }
            // Stopping: the queue stays (the next run starts there); only running turns end.
            if rooms.running.is_empty() && waking.is_none() && (self.stopping() || rooms.queue.iter().all(VecDeque::is_empty)) {
                if !rooms.failing.is_empty() || once {
                    let pass = std::mem::take(&mut *report.lock().await);
                    // Every room's latest turn failed (the homeserver is down, say).
                    let all_failed = !rooms.failing.is_empty() && rooms.failing.values().all(|f| *f);
                    if all_failed && !once {
                        let next = rooms.sleeping.values().min().map_or(0, |t| t.saturating_duration_since(Instant::now()).as_secs());
                        tracing::warn!("delivery round failed, next round in {next}s: every room tried failed");
                    }
                    rooms.failing.clear();
                    if once {
                        return match first_error {
                            Some(e) if all_failed => Err(e),
                            _ => Ok(pass),
                        };
                    }
                    on_pass(&pass);
                }
                if self.stopping() {
                    return Ok(DeliveryReport::default());
                }
            }
            let next_timer = rooms.sleeping.values().copied().chain(wake_at).min();
            tokio::select! {
                Some((id, result)) = running.next(), if !running.is_empty() => {
                    let class = rooms.running.remove(&id).unwrap_or(HISTORY);
                    self.turn_ended(&mut rooms, &mut *report.lock().await, &id, class, result, once, &mut first_error);
                }
                woken = async { waking.as_mut()?.await.into() }, if waking.is_some() => {
                    waking = None;
                    match woken {
                        Some(Ok(woken)) => {
                            wake_backoff = ROOM_BACKOFF;
                            self.wake(&mut rooms, &mut *report.lock().await, woken);
                        }
                        Some(Err(e)) if once => return Err(e),
                        Some(Err(e)) => {
                            tracing::warn!("delivery round failed, next round in {}s: {e}", wake_backoff.as_secs());
                            wake_at = Some(Instant::now() + wake_backoff);
                            wake_backoff = (wake_backoff * 2).min(ROOM_BACKOFF_MAX);
                        }
                        None => {}
                    }
                }
                changed = async { stored.as_mut()?.changed().await.ok() }, if stored.is_some() => match changed {
                    Some(()) => wake_at = Some(Instant::now()),
                    // The sync loop is gone: no more wakes; the queue is worked off.
                    None => stored = None,
                },
                _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = rooms.sleeping.iter().filter(|(_, t)| **t <= now).map(|(id, _)| id.clone()).collect();
                    for id in due {
                        rooms.sleeping.remove(&id);
                        rooms.enqueue(&id);
                    }
                }
                _ = stop.wait_for(|s| *s), if !self.stopping() => {}
            }
        }
    }

    /// What a wake needs to know: every chat, why the history is not complete (then nothing
    /// more), rooms adopted, and each room's delivery.
    async fn woken(&self) -> Result<Woken> {
        let chats = self.store.chats().await?;
        if let Some(why) = self.history_incomplete().await? {
            return Ok(Woken { chats, waiting: Some(why), adopted: 0, deliveries: Vec::new() });
        }
        self.aliases_cleared.get_or_try_init(|| self.clear_canonical_aliases()).await?;
        let mut adopted = 0;
        if self.store.portals().await?.len() < chats.len() {
            self.ensure_bot().await?;
            adopted = self.adopt_unrecorded_rooms(&chats).await?;
        }
        let deliveries = self.store.room_deliveries().await?;
        Ok(Woken { chats, waiting: None, adopted, deliveries })
    }

    /// A wake: every chat goes into the queue (unless the history is incomplete), with what is
    /// known of it (live, messages waiting, an error shown).
    fn wake(&self, rooms: &mut Rooms, report: &mut DeliveryReport, woken: Woken) {
        report.rooms = woken.chats.len() as u64;
        if let Some(why) = woken.waiting {
            tracing::warn!("not delivering yet: {why}; the next complete sync delivers");
            report.waiting = Some(why);
            return;
        }
        report.adopted += woken.adopted;
        let d = &woken.deliveries;
        rooms.live = d.iter().filter(|d| d.live_since_ms.is_some()).map(|d| d.chat_id.clone()).collect();
        rooms.waiting_messages = d.iter().filter(|d| d.pending + d.in_flight > 0).map(|d| d.chat_id.clone()).collect();
        rooms.errored = d.iter().filter(|d| d.last_error.is_some()).map(|d| d.chat_id.clone()).collect();
        let now = Instant::now();
        let mut backing_off = 0;
        for chat in woken.chats {
            let id = chat.chat_id.clone();
            rooms.chats.insert(id.clone(), chat);
            let next = self.backoff.lock().unwrap_or_else(|e| e.into_inner()).get(&id).map(|(_, next)| *next);
            if next.is_some_and(|t| t > now) || rooms.sleeping.contains_key(&id) {
                backing_off += 1;
                continue;
            }
            rooms.enqueue(&id);
        }
        report.backing_off = backing_off;
    }

    /// A room's turn and then what the store keeps of it: done, the room is live and its error
    /// is cleared; failed, the error is shown where messages wait.
    async fn turn(&self, chat: &Chat, known: Known, progress: &dyn DeliveryProgress, report: &Mutex<DeliveryReport>, turn: Turn<'_>) -> Result<TurnEnd> {
        let result = self.deliver_chat(chat, progress, report, &turn).await;
        let id = chat.chat_id.as_str();
        match &result {
            Ok(TurnEnd::Done) => {
                if known.errored {
                    self.store.set_delivery_error(id, None).await?;
                }
                if !known.live {
                    self.store.set_room_live(id).await?;
                }
            }
            Err(e) if known.waiting_messages => self.store.set_delivery_error(id, Some(&e.to_string())).await?,
            _ => {}
        }
        result
    }

    /// Books the end of a room's turn: done (live from now on, its error cleared), more (back
    /// in the queue), or failed (its own backoff, its error shown where messages wait).
    #[allow(clippy::too_many_arguments)]
    fn turn_ended(
        &self,
        rooms: &mut Rooms,
        report: &mut DeliveryReport,
        id: &str,
        class: usize,
        result: Result<TurnEnd>,
        once: bool,
        first_error: &mut Option<crate::MatrixError>,
    ) {
        rooms.failing.insert(id.to_string(), result.is_err());
        let again = rooms.again.remove(id);
        match result {
            Ok(TurnEnd::Done) => {
                self.backoff.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
                rooms.errored.remove(id);
                rooms.live.insert(id.to_string());
                if again {
                    rooms.enqueue(id);
                }
            }
            Ok(TurnEnd::More) if !self.stopping() => {
                // To the back of its class's queue (a room that just became live stays history
                // until its history is all in).
                rooms.queued.insert(id.to_string());
                rooms.queue[class].push_back(id.to_string());
            }
            Ok(TurnEnd::More | TurnEnd::Waiting) => {}
            Err(e) => {
                let failures = {
                    let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                    let failures = backoff.get(id).map_or(0, |(n, _)| *n) + 1;
                    let wait = ROOM_BACKOFF.saturating_mul(1 << (failures - 1).min(16)).min(ROOM_BACKOFF_MAX);
                    backoff.insert(id.to_string(), (failures, Instant::now() + wait));
                    if !once {
                        rooms.sleeping.insert(id.to_string(), Instant::now() + wait);
                    }
                    failures
                };
                tracing::warn!(chat = %id, failures, "room delivery failed: {e}");
                if rooms.waiting_messages.contains(id) {
                    rooms.errored.insert(id.to_string());
                }
                report.failed_rooms.push(RoomFailure { chat_id: id.to_string(), error: e.to_string() });
                first_error.get_or_insert(e);
            }
        }
    }
}
