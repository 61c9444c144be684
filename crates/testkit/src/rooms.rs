//! Rooms compared with the simulator's ground truth, the way a person would check them: each
//! portal paginated backwards as the owner, like a client, and every message of the truth looked
//! for in it — never the bridge's own store or ledger (the store only says which room is a chat's
//! portal).
//!
//! Why there is one: the end-to-end tests ([`crate::Env::assert_rooms_match_truth`]), the crash
//! campaign ([`crate::campaign`]) and the benchmarks must count missing, duplicated and
//! out-of-order messages the same way, so a campaign's figures and a test's assertion mean the
//! same. Apple's tapback numbers and targets are read through the domain crate's typed
//! association (`imessage::records::Association`), as everywhere outside the simulator's
//! generator.

use std::collections::{BTreeMap, HashSet};

use cloudkit_sim::TruthLine;
use imessage::records::{AssociatedType, Association, ContentPart};
use matrix::ghost::{bot_user_id, ghost_user_id};
use matrix::HomeserverClient;

use crate::{Context, Result};

/// One message a room must show: its Matrix sender, its time and how many events carry its
/// guid (one per part, attachments included; one for a tapback's reaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub sender: String,
    pub ts_ms: i64,
    pub events: usize,
}

/// What every room must show according to the truth alone.
#[derive(Debug, Default)]
pub struct Expected {
    /// Every chat and its name.
    pub chats: BTreeMap<String, Option<String>>,
    /// Per chat, by guid, every message shown.
    pub rooms: BTreeMap<String, BTreeMap<String, Shown>>,
}

/// A tapback's slot: (chat, sender, target guid, part). At most one reaction stands in each.
type Slot = (String, String, String, i64);

/// The truth worked out into rooms: every message shown (unsent messages are not; a message whose
/// parts are all unsent shows nothing), every tapback whose reaction still stands (removals and
/// replacements redact; a tapback on something not shown has nothing to react to). `owner` sends
/// the from-me messages, everybody else is their ghost on `domain`.
pub fn expected(truth: impl IntoIterator<Item = TruthLine>, owner: &str, domain: &str) -> Expected {
    let mut out = Expected::default();
    let mut shown = HashSet::new();
    // slot → (kind, tapback guid, what it shows)
    let mut standing: BTreeMap<Slot, (AssociatedType, String, Shown)> = BTreeMap::new();
    for line in truth {
        let TruthLine::Message { chat, guid, sender, from_me, system: false, ts_ms, associated_type, associated_guid, content, text, .. } = line else {
            if let TruthLine::Chat { chat, name, .. } = line {
                out.chats.insert(chat, name);
            }
            continue;
        };
        let user = if from_me { owner.to_string() } else { ghost_user_id(&sender, domain) };
        // Apple's numbers and target prefixes are read by `imessage::records`, the one place
        // that names them.
        if let (Some(code), Some(target)) = (associated_type, associated_guid.as_deref()) {
            let association = Association::parse(code, target);
            let (kind, target) = (association.kind.normalized(), association.target);
            let slot = (chat, sender, target.guid.to_string(), target.part);
            if kind.removal {
                if standing.get(&slot).is_some_and(|(added, _, _)| kind.removes(*added)) {
                    standing.remove(&slot);
                }
            } else if shown.contains(target.guid) {
                standing.insert(slot, (kind, guid, Shown { sender: user, ts_ms, events: 1 }));
            }
            continue;
        }
        if content.unsent {
            continue;
        }
        let mut parts: Vec<i64> = Vec::new();
        for p in &content.parts {
            let (n, attachment) = match p {
                ContentPart::Text { part, .. } => (part.unwrap_or(0), false),
                ContentPart::Attachment { part, .. } => (part.unwrap_or(0), true),
            };
            if !content.unsent_parts.contains(&n) && (attachment || parts.last() != Some(&n)) {
                parts.push(n);
            }
        }
        let events = if content.parts.is_empty() { usize::from(text.as_deref().is_some_and(|t| !t.is_empty() && t != "\u{FFFC}")) } else { parts.len() };
        if events > 0 {
            shown.insert(guid.clone());
            out.rooms.entry(chat).or_default().insert(guid, Shown { sender: user, ts_ms, events });
        }
    }
    for ((chat, ..), (_, guid, entry)) in standing {
        out.rooms.entry(chat).or_default().insert(guid, entry);
    }
    out
}

/// Counts of messages (guids) that are wrong, except `out_of_order`, which counts events older
/// than the event before them (a message delivered late, marked with its original time, is
/// exempt: it is meant to come after newer ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages the truth says the rooms show.
    pub messages: usize,
    /// Messages with fewer events than they must have (none at all, or parts missing).
    pub missing: usize,
    /// Messages with more events than they must have.
    pub duplicated: usize,
    pub out_of_order: usize,
    /// Messages shown by someone other than their sender, or at another time (a late message's
    /// mark included).
    pub wrong_sender: usize,
    /// Guids shown that the truth does not show there.
    pub unexpected: usize,
    /// Timeline (non-state) events of the bridge bot.
    pub bot_events: usize,
}

impl Counts {
    /// Everything wrong, summed (0: the rooms are right).
    pub fn wrong(&self) -> usize {
        self.missing + self.duplicated + self.out_of_order + self.wrong_sender + self.unexpected + self.bot_events
    }

    fn add(&mut self, o: &Counts) {
        for (a, b) in [
            (&mut self.messages, o.messages),
            (&mut self.missing, o.missing),
            (&mut self.duplicated, o.duplicated),
            (&mut self.out_of_order, o.out_of_order),
            (&mut self.wrong_sender, o.wrong_sender),
            (&mut self.unexpected, o.unexpected),
            (&mut self.bot_events, o.bot_events),
        ] {
            *a += b;
        }
    }
}

/// What one room shows compared with what it must show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomCheck {
    pub chat: String,
    pub counts: Counts,
    /// The chat has a portal whose pagination reached the room's creation.
    pub reached_start: bool,
    pub name_ok: bool,
    /// The first thing found wrong, in words (for a failing test's message).
    pub first_problem: Option<String>,
}

impl RoomCheck {
    pub fn ok(&self) -> bool {
        self.counts.wrong() == 0 && self.reached_start && self.name_ok
    }

    fn problem(&mut self, what: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what());
        }
    }
}

/// Sums of every room's check (the campaign's figures); reads as its [`Counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub rooms: usize,
    /// Rooms that are not there, not paginated to their start, or misnamed.
    pub bad_rooms: usize,
    pub counts: Counts,
}

impl std::ops::Deref for Totals {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

pub fn totals(checks: &[RoomCheck]) -> Totals {
    let mut t = Totals::default();
    for c in checks {
        t.rooms += 1;
        t.counts.add(&c.counts);
        t.bad_rooms += usize::from(!(c.reached_start && c.name_ok));
    }
    t
}

/// Panics with every room that is not right (a test's assertion on [`check_rooms`]' result).
pub fn assert_all_ok(checks: &[RoomCheck]) {
    let bad: Vec<&RoomCheck> = checks.iter().filter(|c| !c.ok()).collect();
    assert!(bad.is_empty(), "{} of {} rooms do not match the truth: {bad:#?}", bad.len(), checks.len());
}

/// Pages every chat's portal (`portals`: chat → room; a chat without one has all missing) backwards as
/// `owner` and compares it with `expected`. A chat the truth has messages in but no chat line
/// for is checked too (and cannot be right).
pub async fn check_rooms(hs: &HomeserverClient, expected: &Expected, portals: &BTreeMap<String, String>, owner: &str, domain: &str) -> Result<Vec<RoomCheck>> {
    let bot = bot_user_id(domain);
    let none = BTreeMap::new();
    let nameless = expected.rooms.keys().filter(|c| !expected.chats.contains_key(*c)).map(|c| (c, &None));
    let mut checks = Vec::new();
    for (chat, name) in expected.chats.iter().chain(nameless) {
        let want = expected.rooms.get(chat).unwrap_or(&none);
        let mut check = RoomCheck { chat: chat.clone(), ..RoomCheck::default() };
        check.counts.messages = want.len();
        if !expected.chats.contains_key(chat) {
            check.problem(|| "the truth has messages in a chat it does not list".into());
        }
        let Some(room) = portals.get(chat) else {
            check.counts.missing = want.len();
            check.problem(|| "no portal".into());
            checks.push(check);
            continue;
        };
        let (events, reached_start) = matrix::verify::paginate(hs, room, owner).await.with_context(|| format!("paginating {room} ({chat})"))?;
        check.reached_start = reached_start;
        if !reached_start {
            check.problem(|| "pagination did not reach the room's creation".into());
        }
        let mut seen: BTreeMap<&str, Shown> = BTreeMap::new();
        let mut last_ts = i64::MIN;
        for e in &events {
            if e.sender == bot && !e.is_state {
                check.counts.bot_events += 1;
                check.problem(|| format!("the bridge bot posted {}", e.raw));
            }
            let Some(g) = e.guid.as_deref() else { continue };
            // A message delivered late (after newer ones) says so and shows its own time.
            match e.raw["content"][matrix::send::LATE_KEY].as_i64() {
                Some(original) if original != e.ts => {
                    check.counts.wrong_sender += 1;
                    check.problem(|| format!("{g} is marked late at {original} but sent at {}", e.ts));
                }
                Some(_) => {}
                None => {
                    if e.ts < last_ts {
                        check.counts.out_of_order += 1;
                        check.problem(|| format!("{g} at {} comes after {last_ts}", e.ts));
                    }
                    last_ts = e.ts;
                }
            }
            seen.entry(g).or_insert(Shown { sender: e.sender.clone(), ts_ms: e.ts, events: 0 }).events += 1;
        }
        for (g, w) in want {
            let s = seen.get(g.as_str());
            let c = &mut check.counts;
            match s {
                None => c.missing += 1,
                Some(s) => {
                    c.missing += usize::from(s.events < w.events);
                    c.duplicated += usize::from(s.events > w.events);
                    c.wrong_sender += usize::from(s.sender != w.sender || s.ts_ms != w.ts_ms);
                }
            }
            if s != Some(w) {
                check.problem(|| format!("message {g}: shown {s:?}, must be {w:?}"));
            }
        }
        let unexpected: Vec<&&str> = seen.keys().filter(|g| !want.contains_key(**g)).collect();
        check.counts.unexpected = unexpected.len();
        if let Some(g) = unexpected.first() {
            check.problem(|| format!("{g} is shown but the truth does not show it here"));
        }
        let shown_name =
            hs.state(room, owner, "m.room.name", "").await.with_context(|| format!("name of {room}"))?.and_then(|c| c["name"].as_str().map(str::to_string));
        check.name_ok = &shown_name == name;
        if !check.name_ok {
            check.problem(|| format!("room name {shown_name:?}, must be {name:?}"));
        }
        checks.push(check);
    }
    Ok(checks)
}

/// Every chat's portal room as the store names it.
pub async fn portals(store: &dyn store::Store) -> Result<BTreeMap<String, String>> {
    Ok(store.portals().await.context("listing portals")?.into_iter().map(|p| (p.chat_id, p.room_id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_ok_only_when_nothing_is_counted_wrong() {
        let mut c = RoomCheck { reached_start: true, name_ok: true, ..RoomCheck::default() };
        assert!(c.ok());
        c.counts.unexpected = 1;
        assert!(!c.ok());
        let t = totals(&[c.clone(), RoomCheck { name_ok: false, ..c }]);
        assert_eq!((t.rooms, t.bad_rooms, t.unexpected, t.wrong()), (2, 1, 2, 2));
    }
}
