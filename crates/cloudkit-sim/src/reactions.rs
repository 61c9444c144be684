//! What the simulated account's messages react to: tapbacks (classic, emoji, their removals),
//! stickers placed on a message, and replies.
//!
//! The rules are iMessage's: a reaction or a reply targets a message someone sent (a text or an
//! attachment), never another tapback, a notice or a deleted message; a tapback on a message of
//! several parts names the part (`p:N/GUID`), so captioned attachments (attachment part 0, text
//! part 1) get tapbacks on either part. Each decision comes from its own stream of `(seed, g)`, so
//! the server and `truth` agree without sharing state.

use rand::Rng;

use crate::account::{rng, Account, Kind, NO_PREV};

/// The tapbacks' stream.
pub(crate) const STREAM_TAPBACK: u64 = 5;
const STREAM_CAPTION: u64 = 14;
const STREAM_REPLY: u64 = 15;
/// How far back in a chat a reaction looks for a message.
const REACH: usize = 16;
const EMOJI: [&str; 5] = ["😂", "🔥", "🥳", "👀", "🫶"];

/// A generated tapback.
pub(crate) struct Tapback {
    /// `associatedMessageType`.
    pub kind: u32,
    /// The message it reacts to, and the part.
    pub target: u64,
    pub part: i64,
    pub emoji: Option<&'static str>,
    /// For a removal: the sender of the tapback it removes (the same person removes it).
    pub sender_of_removed: Option<String>,
}

impl Account {
    /// The nearest earlier message of `g`'s chat a reaction can target (a text or an
    /// attachment), within [`REACH`].
    fn reactable(&self, g: u64) -> Option<u64> {
        let mut c = self.prev_in_chat.get(g as usize).copied()?;
        for _ in 0..REACH {
            if c == NO_PREV {
                return None;
            }
            let chat = self.chat_of(u64::from(c));
            let prev = self.prev_in_chat.get(c as usize).copied().unwrap_or(NO_PREV);
            if matches!(self.kind_of(u64::from(c), chat, prev).0, Kind::Text | Kind::Attachment) {
                return Some(u64::from(c));
            }
            c = prev;
        }
        None
    }

    /// Whether attachment message `g` has a caption (its text is part 1).
    pub(crate) fn captioned(&self, g: u64) -> bool {
        rng(self.spec.seed, STREAM_CAPTION, g).gen_bool(0.3)
    }

    /// The target of a reaction of message `g` and the part it names: a captioned attachment's
    /// either part, part 0 otherwise (drawn from `stream`).
    pub(crate) fn reaction_target(&self, g: u64, stream: u64) -> Option<(u64, i64)> {
        let target = self.reactable(g)?;
        let chat = self.chat_of(target);
        let prev = self.prev_in_chat.get(target as usize).copied().unwrap_or(NO_PREV);
        let parts = if self.kind_of(target, chat, prev).0 == Kind::Attachment && self.captioned(target) { 2 } else { 1 };
        let mut r = rng(self.spec.seed, stream, g);
        r.set_word_pos((u128::from(g) << 10) + 512);
        Some((target, r.gen_range(0..parts)))
    }

    /// The message text message `g` replies to, for 5% of them.
    pub(crate) fn reply_target(&self, g: u64) -> Option<u64> {
        rng(self.spec.seed, STREAM_REPLY, g).gen_bool(0.05).then(|| self.reactable(g)).flatten()
    }

    /// What tapback message `g` is: 70% a classic one (2000–2005), 15% an emoji (2006, the emoji
    /// in msgProto4), 15% the removal (3000–3006) of the tapback just before it in the chat when
    /// that one is an added tapback (by the same sender, on the same message and part), else
    /// classic.
    pub(crate) fn tapback(&self, g: u64) -> Option<Tapback> {
        let (target, part) = self.reaction_target(g, STREAM_TAPBACK)?;
        let mut r = rng(self.spec.seed, STREAM_TAPBACK, g);
        let roll = r.gen_range(0..100);
        let classic = 2000 + r.gen_range(0..6u32);
        let emoji = EMOJI[r.gen_range(0..EMOJI.len())];
        if roll < 70 {
            return Some(Tapback { kind: classic, target, part, emoji: None, sender_of_removed: None });
        }
        if roll < 85 {
            return Some(Tapback { kind: 2006, target, part, emoji: Some(emoji), sender_of_removed: None });
        }
        let prev = self.prev_in_chat.get(g as usize).copied().filter(|&p| p != NO_PREV).map(u64::from);
        let added = prev.filter(|&p| {
            let chat = self.chat_of(p);
            let pp = self.prev_in_chat.get(p as usize).copied().unwrap_or(NO_PREV);
            self.kind_of(p, chat, pp).0 == Kind::Tapback && rng(self.spec.seed, STREAM_TAPBACK, p).gen_range(0..100) < 85 && self.reactable(p).is_some()
        });
        match added.and_then(|p| Some((p, self.tapback(p)?))) {
            Some((p, added)) => Some(Tapback {
                kind: added.kind + 1000,
                target: added.target,
                part: added.part,
                emoji: added.emoji,
                sender_of_removed: Some(self.message(p).record.sender),
            }),
            None => Some(Tapback { kind: classic, target, part, emoji: None, sender_of_removed: None }),
        }
    }
}
