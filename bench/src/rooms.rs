//! Rooms compared with the simulator's ground truth, the way a person would check them: each
//! portal paginated backwards as the owner, like a client, and every message of the truth looked
//! for in it — never the bridge's own store or ledger (the store only says which room is a chat's
//! portal).
//!
//! Why it lives here: `crash-campaign` and the test suite (`crates/imessage-bridge/tests`, which
//! includes this file as `common::rooms`) must count missing, duplicated and out-of-order
//! messages the same way, so the campaign's figures and the tests' assertions mean the same.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result};
use cloudkit_sim::TruthLine;
use imessage::records::ContentPart;
use matrix::ghost::{bot_user_id, ghost_user_id};
use matrix::HomeserverClient;

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
type Slot = (String, String, String, String);

/// The truth worked out into rooms: every message shown (unsent messages are not; a message whose
/// parts are all unsent shows nothing), every tapback whose reaction still stands (removals and
/// replacements redact; a tapback on something not shown has nothing to react to). `owner` sends
/// the from-me messages, everybody else is their ghost on `domain`.
pub fn expected(truth: impl IntoIterator<Item = TruthLine>, owner: &str, domain: &str) -> Expected {
    let mut out = Expected::default();
    let mut shown = HashSet::new();
    // slot → (kind, tapback guid, what it shows)
    let mut standing: BTreeMap<Slot, (u32, String, Shown)> = BTreeMap::new();
    for line in truth {
        let TruthLine::Message { chat, guid, sender, from_me, system: false, ts_ms, associated_type, associated_guid, content, text, .. } = line else {
            if let TruthLine::Chat { chat, name, .. } = line {
                out.chats.insert(chat, name);
            }
            continue;
        };
        let user = if from_me { owner.to_string() } else { ghost_user_id(&sender, domain) };
        if let (Some(kind), Some(target)) = (associated_type, associated_guid.as_deref()) {
            let (part, target) = target.strip_prefix("p:").and_then(|t| t.split_once('/')).unwrap_or(("0", target));
            let slot = (chat, sender, target.to_string(), part.to_string());
            if kind >= 3000 {
                if standing.get(&slot).is_some_and(|(k, _, _)| *k == kind - 1000) {
                    standing.remove(&slot);
                }
            } else if shown.contains(target) {
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
/// than the event before them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages the truth says the rooms show.
    pub messages: usize,
    /// Messages with fewer events than they must have (none at all, or parts missing).
    pub missing: usize,
    /// Messages with more events than they must have.
    pub duplicated: usize,
    pub out_of_order: usize,
    /// Messages shown by someone other than their sender, or at another time.
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
}

impl RoomCheck {
    pub fn ok(&self) -> bool {
        self.counts.wrong() == 0 && self.reached_start && self.name_ok
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

/// Pages every chat's portal (`portals`: chat → room; a chat without one has all missing) backwards as
/// `owner` and compares it with `expected`.
pub async fn check_rooms(
    hs: &HomeserverClient,
    expected: &Expected,
    portals: &BTreeMap<String, String>,
    owner: &str,
    domain: &str,
) -> Result<Vec<RoomCheck>> {
    let bot = bot_user_id(domain);
    let none = BTreeMap::new();
    let mut checks = Vec::new();
    for (chat, name) in &expected.chats {
        let want = expected.rooms.get(chat).unwrap_or(&none);
        let mut check = RoomCheck { chat: chat.clone(), ..RoomCheck::default() };
        let c = &mut check.counts;
        c.messages = want.len();
        let Some(room) = portals.get(chat) else {
            c.missing = want.len();
            checks.push(check);
            continue;
        };
        let (events, reached_start) = matrix::verify::paginate(hs, room, owner).await.with_context(|| format!("paginating {room} ({chat})"))?;
        check.reached_start = reached_start;
        let mut seen: BTreeMap<&str, Shown> = BTreeMap::new();
        let mut last_ts = i64::MIN;
        for e in &events {
            if e.sender == bot && !e.is_state {
                c.bot_events += 1;
            }
            let Some(g) = e.guid.as_deref() else { continue };
            if e.ts < last_ts {
                c.out_of_order += 1;
            }
            last_ts = e.ts;
            seen.entry(g).or_insert(Shown { sender: e.sender.clone(), ts_ms: e.ts, events: 0 }).events += 1;
        }
        for (g, w) in want {
            match seen.get(g.as_str()) {
                None => c.missing += 1,
                Some(s) => {
                    c.missing += usize::from(s.events < w.events);
                    c.duplicated += usize::from(s.events > w.events);
                    c.wrong_sender += usize::from(s.sender != w.sender || s.ts_ms != w.ts_ms);
                }
            }
        }
        c.unexpected = seen.keys().filter(|g| !want.contains_key(**g)).count();
        let shown_name = hs.state(room, owner, "m.room.name", "").await.with_context(|| format!("name of {room}"))?.and_then(|c| c["name"].as_str().map(str::to_string));
        check.name_ok = &shown_name == name;
        checks.push(check);
    }
    Ok(checks)
}

/// Every chat's portal room as the store names it.
pub async fn portals(store: &dyn store::Store) -> Result<BTreeMap<String, String>> {
    Ok(store.portals().await?.into_iter().map(|p| (p.chat_id, p.room_id)).collect())
}

/// The simulator's truth as it is now (after a release, with the later messages).
pub fn truth_lines(sim: &cloudkit_sim::Sim) -> Vec<TruthLine> {
    let mut lines = Vec::new();
    sim.truth(|l| lines.push(l));
    lines
}
