//! Changes to records the server already served: what happens to a real account after a bridge
//! has delivered its history (`--revise N`, [`crate::Faults::revise`]).
//!
//! Why: a sender unsends a message or edits it again, a message is deleted, a group gains and
//! loses people — days after the bridge put the message into Matrix. CloudKit tells a client by
//! serving the record again (the same record name and guid, new content), or a change without a
//! record (a deletion tombstone), or a newer version of the chat record. The bridge must redact,
//! send the edit, move the membership; this module gives its tests those changes and the truth
//! they lead to.
//!
//! What is served, once the later messages are released and after them in each zone's feed:
//! - message zone: for `N` picks each, a tombstone (**deleted**: the message leaves truth), the
//!   record as Messages stores an unsent message (**unsent**: no text, no body, every part in
//!   `messageSummaryInfo`'s `rp`), and the record with one more version in `ec` (**edited**: the
//!   new text, timed after every later message). Picks are interleaved deleted, unsent, edited;
//! - chat zone: one group's new chat record version (a new record, as every version is in this
//!   simulator), timed after everything, with one participant removed and a new handle
//!   (`tel:+15550……`, a number no generated contact has) added. No notice message goes with it
//!   (a generated notice has no text to say so).
//!
//! The picks (seeded, deterministic): history messages that are ordinary one-part texts (no
//! tapback, reply, link, effect, or unsend; an earlier edit is fine: it gets one more version),
//! outside the big chat, served intact (not damaged by `bad_changes`, not under a lost key), and
//! that no message of the account (later ones included) reacts to, places a sticker on, or
//! replies to — so that no tapback or reply in truth points at a message that is gone or unsent.
//! They go round-robin over the chats that have candidates, in a seeded order, so `N` = 2 puts
//! six picks in six chats when there are six. With fewer candidates there are fewer picks. The
//! group is any group but the big chat and the first group (which the first later message
//! renames), so a rename and a participant change are never the same version; an account without
//! such a group has no participant change.
//!
//! Before the release nothing changes. After it, truth ([`crate::Sim::truth`]) shows the revised
//! records (their lines carry `revised`), leaves the deleted ones out, and gives the group its
//! new participants; tests learn the picks from [`crate::Sim::revisions`] (and `cloudkit-sim
//! truth --released` prints a `{"kind":"deleted","guid":…}` line per deleted message).

use std::collections::{BTreeMap, HashMap, HashSet};

use cloudkit::records::{ChatRecord, ContentPart, MessageRecord, TextVersion, STYLE_GROUP};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::account::{rng, Account, Generated, Kind};
use crate::content::ContentError;
use crate::encode::ContentBlobs;
use crate::truth::TruthLine;

/// The picks' stream.
const STREAM_REVISE: u64 = 16;

pub use crate::truth::RevisionKind;

/// One history message changed after the release.
#[derive(Debug, Clone)]
pub struct Revision {
    pub kind: RevisionKind,
    /// The message's index in the account.
    pub g: u64,
    pub guid: String,
    pub record_name: String,
    pub chat_id: String,
    /// The message as served after the release (and as truth has it, unless deleted); for a
    /// deletion, the message as it was.
    pub record: MessageRecord,
    blobs: ContentBlobs,
}

impl Revision {
    /// What the server serves for it: the re-served record, or (kind `Deleted`) a tombstone.
    pub(crate) fn served(&self) -> Generated {
        let kind = if self.kind == RevisionKind::Deleted { Kind::Deleted } else { Kind::Text };
        Generated { record: self.record.clone(), blobs: self.blobs.clone(), kind }
    }
}

/// One group's participant change.
#[derive(Debug, Clone)]
pub struct ParticipantChange {
    pub chat_id: String,
    pub removed: String,
    pub added: String,
    /// The chat record version served after the later versions.
    pub record: ChatRecord,
}

/// Every change the server serves after the release (none when `--revise 0`).
#[derive(Debug, Clone, Default)]
pub struct Revisions {
    /// In serving order.
    pub messages: Vec<Revision>,
    pub participants: Option<ParticipantChange>,
    by_guid: HashMap<String, usize>,
    by_index: HashMap<u64, usize>,
}

impl Revisions {
    /// Picks `n` messages of each kind and one group (none when `n` is 0). `servable` says
    /// whether the history message of an index reaches a client intact.
    pub fn pick(account: &Account, n: u64, servable: impl Fn(u64) -> bool) -> Revisions {
        if n == 0 || account.chats.is_empty() {
            return Revisions::default();
        }
        let mut r = rng(account.spec.seed, STREAM_REVISE, 0);
        let mut candidates = candidates(account, servable);
        let mut chats: Vec<usize> = candidates.keys().copied().collect();
        chats.shuffle(&mut r);
        let kinds = [RevisionKind::Deleted, RevisionKind::Unsent, RevisionKind::Edited];
        let mut picks = Vec::new();
        let mut next = 0;
        'picks: for i in 0..n.saturating_mul(3) {
            for _ in 0..chats.len() {
                let list = candidates.entry(chats[next % chats.len()]).or_default();
                next += 1;
                if !list.is_empty() {
                    let g = list.swap_remove(r.gen_range(0..list.len()));
                    picks.push((kinds[(i % 3) as usize], g));
                    continue 'picks;
                }
            }
            break;
        }
        let mut revisions = Revisions::default();
        for (slot, (kind, g)) in picks.iter().enumerate() {
            match revise(account, *kind, *g, slot as u64 + 1) {
                Ok(rev) => {
                    revisions.by_guid.insert(rev.guid.clone(), revisions.messages.len());
                    revisions.by_index.insert(rev.g, revisions.messages.len());
                    revisions.messages.push(rev);
                }
                Err(e) => tracing::warn!(g, "cannot encode the revision of message {g}: {e}"),
            }
        }
        revisions.participants = participant_change(account, picks.len() as u64 + 1);
        revisions
    }

    /// The guids of the messages revised as `kind`.
    pub fn guids(&self, kind: RevisionKind) -> impl Iterator<Item = &str> {
        self.messages.iter().filter(move |m| m.kind == kind).map(|m| m.guid.as_str())
    }

    /// The position among [`Revisions::messages`] of message `g`'s revision, if it has one.
    pub fn index_of(&self, g: u64) -> Option<usize> {
        self.by_index.get(&g).copied()
    }

    /// How many changes the message zone and the chat zone serve after the later ones.
    pub(crate) fn served(&self, released: bool) -> (u64, u64) {
        if released {
            (self.messages.len() as u64, u64::from(self.participants.is_some()))
        } else {
            (0, 0)
        }
    }

    /// How many live messages the deletions took away.
    pub(crate) fn deleted(&self, released: bool) -> u64 {
        if released {
            self.guids(RevisionKind::Deleted).count() as u64
        } else {
            0
        }
    }

    /// The chat record at position `p` of the chat zone's feed (after the account's versions,
    /// the participant change's).
    pub(crate) fn chat_record<'a>(&'a self, account: &'a Account, p: usize) -> Option<&'a ChatRecord> {
        let later = p.checked_sub(account.chat_records.len());
        match later {
            None => account.chat_records.get(p),
            Some(0) => self.participants.as_ref().map(|c| &c.record),
            Some(_) => None,
        }
    }

    /// A truth line as it is once released: a revised message's line, none for a deleted one,
    /// the group's new participants.
    pub(crate) fn truth_line(&self, line: TruthLine, released: bool) -> Option<TruthLine> {
        if !released {
            return Some(line);
        }
        match line {
            TruthLine::Message { ref guid, .. } => match self.by_guid.get(guid).and_then(|&i| self.messages.get(i)) {
                Some(rev) if rev.kind == RevisionKind::Deleted => None,
                Some(rev) => Some(crate::truth::message_line(rev.record.clone(), None, Some(rev.kind))),
                None => Some(line),
            },
            TruthLine::Chat { chat, name, participants, group } => {
                let participants = match &self.participants {
                    Some(change) if change.chat_id == chat => change.record.participants.clone(),
                    _ => participants,
                };
                Some(TruthLine::Chat { chat, name, participants, group })
            }
            other => Some(other),
        }
    }
}

/// Every pickable message by chat, in index order (see the module docs).
fn candidates(account: &Account, servable: impl Fn(u64) -> bool) -> BTreeMap<usize, Vec<u64>> {
    let big = account.spec.big_chat > 0;
    let mut targets = HashSet::new();
    let mut found: BTreeMap<usize, Vec<(u64, String)>> = BTreeMap::new();
    for g in 0..account.total {
        let chat = account.chat_of(g);
        if big && chat == 0 {
            continue;
        }
        let m = account.message(g);
        if let Some(target) = &m.record.associated_guid {
            // `p:N/GUID`, or a bare GUID.
            targets.insert(target.split_once('/').map_or(target.as_str(), |(_, guid)| guid).to_string());
        }
        if let Some(target) = &m.record.content.reply_to {
            targets.insert(target.clone());
        }
        if g < account.history && ordinary(&m) && servable(g) {
            found.entry(chat).or_default().push((g, m.record.guid));
        }
    }
    found
        .into_iter()
        .map(|(chat, list)| (chat, list.into_iter().filter(|(_, guid)| !targets.contains(guid)).map(|(g, _)| g).collect::<Vec<_>>()))
        .filter(|(_, list)| !list.is_empty())
        .collect()
}

/// A text of one part, not a tapback, reply, link, effect or unsend.
fn ordinary(m: &Generated) -> bool {
    let (r, c) = (&m.record, &m.record.content);
    m.kind == Kind::Text
        && !r.is_system()
        && r.text.is_some()
        && r.associated_type.is_none()
        && c.reply_to.is_none()
        && !c.unsent
        && c.unsent_parts.is_empty()
        && c.link_preview.is_none()
        && c.effect.is_none()
        && c.balloon_bundle_id.is_none()
        && c.undecodable.is_empty()
        && matches!(c.parts.as_slice(), [ContentPart::Text { part: Some(0), .. }])
}

/// Message `g` revised as `kind`; `slot` orders the revision's time after the later messages.
fn revise(account: &Account, kind: RevisionKind, g: u64, slot: u64) -> Result<Revision, ContentError> {
    let Generated { mut record, blobs, .. } = account.message(g);
    let (blobs, content) = match kind {
        RevisionKind::Deleted => (blobs, record.content.clone()),
        RevisionKind::Unsent => {
            let text = record.text.take().unwrap_or_default();
            crate::dress::unsent(&text)?
        }
        RevisionKind::Edited => {
            let now = record.text.clone().unwrap_or_default();
            let mut history = match record.content.edits.first() {
                Some(earlier) => earlier.versions.clone(),
                None => vec![TextVersion { apple_ns: crate::dress::apple_ns_whole_seconds(record.ts_ms), text: now.clone() }],
            };
            let text = format!("{now} (edited after the release)");
            let at = account.ts_of(account.total + slot);
            history.push(TextVersion { apple_ns: crate::dress::apple_ns_whole_seconds(at), text: text.clone() });
            record.text = Some(text);
            crate::dress::edited(history)?
        }
    };
    record.content = content;
    Ok(Revision { kind, g, guid: record.guid.clone(), record_name: record.record_name.clone(), chat_id: record.chat_id.clone(), record, blobs })
}

/// One group's new version, timed at `slot` after the later messages (see the module docs).
fn participant_change(account: &Account, slot: u64) -> Option<ParticipantChange> {
    let first_group = account.chats.iter().position(|c| c.style == STYLE_GROUP);
    let big = account.spec.big_chat > 0;
    let groups: Vec<usize> = (0..account.chats.len())
        .filter(|&i| account.chats[i].style == STYLE_GROUP && Some(i) != first_group && !(big && i == 0))
        .filter(|&i| account.chats[i].participants.len() >= 2)
        .collect();
    let mut r = rng(account.spec.seed, STREAM_REVISE, 1);
    let c = *groups.get(r.gen_range(0..groups.len().max(1)))?;
    let chat = &account.chats[c];
    let removed = chat.participants[r.gen_range(0..chat.participants.len())].clone();
    let known = |h: &str| account.chats.iter().any(|c| c.participants.iter().any(|p| p == h));
    // Generated contacts are `tel:+1555` and seven digits from 1000000, the owner's +15550000001.
    let added = (0..64).map(|_| format!("tel:+15550{:06}", r.gen_range(100_000..1_000_000))).find(|h| !known(h))?;
    let modified_ms = account.ts_of(account.total + slot);
    let mut record = account.chat_version(c, rng(account.spec.seed, STREAM_REVISE, 2), modified_ms, account.current_name(&chat.chat_id, true));
    record.participants = chat.participants.iter().filter(|p| **p != removed).cloned().chain([added.clone()]).collect();
    Some(ParticipantChange { chat_id: chat.chat_id.clone(), removed, added, record })
}
