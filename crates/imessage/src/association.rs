//! What a message's association says: which tapback (or its removal) it is, and which part of
//! which message it is on.
//!
//! Why one module: Apple writes these as bare numbers (`associatedMessageType`, msgProto field 15
//! in CloudKit, `associated_message_type` in `chat.db`) and prefixed strings
//! (`associatedMessageGuid`, field 16: `p:N/GUID`, `bp:GUID`, or a bare GUID). Every reader
//! (the Matrix plan, late delivery, the check that nothing vanished, the decoders, the `chat.db`
//! reader) needs the same meaning, so the numbers and prefixes are read here, once, into enums,
//! and nowhere else. Parsing is total: any number and any string give a value (an unknown number
//! is [`AssociationKind::Unknown`], an unprefixed or malformed target a bare GUID), never a panic.
//!
//! The numbers: 2000–2005 the classic tapbacks (love, like, dislike, laugh, emphasize,
//! question), 2006 an emoji tapback (the emoji in msgProto4 / `associated_message_emoji`), 2007 a
//! sticker placed on a message; the removal of kind K is K + 1000 (3000–3007); 1000 a placed
//! sticker as databases older than iOS 14 write it; 4000 polls (not read yet). Small numbers
//! (2, 3) are updates of an app's balloon, whose target is `bp:GUID`.

use std::fmt;

/// `associated_message_type` of a sticker placed on a message in databases older than iOS 14
/// (`chat.db`/`sms.db`); newer ones, and CloudKit, write [`STICKER_TAPBACK`].
pub const LEGACY_STICKER_TAPBACK: u32 = 1000;
/// `associated_message_type` of a sticker placed on a message.
pub const STICKER_TAPBACK: u32 = 2007;

/// The first tapback number (love); the kinds follow in [`TapbackKind::ALL`] order.
const TAPBACK_BASE: u32 = 2000;
/// A removal's number is its tapback's plus this.
const REMOVAL_OFFSET: u32 = 1000;
/// Removals are numbered from here up to (not including) [`POLL`].
const REMOVAL_BASE: u32 = TAPBACK_BASE + REMOVAL_OFFSET;
/// Polls.
const POLL: u32 = 4000;

/// Target prefix of one part of a message: `p:N/GUID`.
const PART_PREFIX: &str = "p:";
/// Target prefix of an app's balloon message: `bp:GUID`.
const BALLOON_PREFIX: &str = "bp:";

/// The kinds of tapback (reactions) iMessage has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapbackKind {
    /// ❤️ (2000)
    Love = 0,
    /// 👍 (2001)
    Like = 1,
    /// 👎 (2002)
    Dislike = 2,
    /// 😂 (2003)
    Laugh = 3,
    /// ‼️ (2004)
    Emphasize = 4,
    /// ❓ (2005)
    Question = 5,
    /// Any emoji (2006); the emoji itself is in the message's `associated_emoji`.
    Emoji = 6,
    /// A sticker placed on a message (2007); the sticker is the message's attachment.
    Sticker = 7,
}

impl TapbackKind {
    /// Every kind, in the order of their numbers.
    pub const ALL: [TapbackKind; 8] = [
        TapbackKind::Love,
        TapbackKind::Like,
        TapbackKind::Dislike,
        TapbackKind::Laugh,
        TapbackKind::Emphasize,
        TapbackKind::Question,
        TapbackKind::Emoji,
        TapbackKind::Sticker,
    ];

    /// Apple's number for adding this tapback.
    pub fn code(self) -> u32 {
        TAPBACK_BASE + self as u32
    }

    /// One of the six classic tapbacks (2000–2005), which carry no emoji or sticker of their own.
    pub fn is_classic(self) -> bool {
        !matches!(self, TapbackKind::Emoji | TapbackKind::Sticker)
    }

    fn from_code(code: u32) -> Option<TapbackKind> {
        let index = code.checked_sub(TAPBACK_BASE)?;
        TapbackKind::ALL.get(usize::try_from(index).ok()?).copied()
    }
}

/// What an `associatedMessageType` number names (apart from being a removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssociationKind {
    /// A tapback (2000–2007; 3000–3007 for its removal).
    Tapback(TapbackKind),
    /// A sticker placed on a message, as databases older than iOS 14 number it (1000).
    LegacySticker,
    /// A poll (4000); not read yet.
    Poll,
    /// Any other number, as written (for a removal: the number it removes).
    Unknown(u32),
}

impl AssociationKind {
    fn from_added(code: u32) -> AssociationKind {
        match code {
            LEGACY_STICKER_TAPBACK => AssociationKind::LegacySticker,
            POLL => AssociationKind::Poll,
            _ => TapbackKind::from_code(code).map_or(AssociationKind::Unknown(code), AssociationKind::Tapback),
        }
    }

    fn added_code(self) -> u32 {
        match self {
            AssociationKind::Tapback(k) => k.code(),
            AssociationKind::LegacySticker => LEGACY_STICKER_TAPBACK,
            AssociationKind::Poll => POLL,
            AssociationKind::Unknown(code) => code,
        }
    }
}

/// An `associatedMessageType`: what it names and whether it takes that back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssociatedType {
    /// The tapback (or other association) named; for a removal, the one removed.
    pub kind: AssociationKind,
    /// The removal of `kind` (3000–3999) rather than its addition.
    pub removal: bool,
}

impl AssociatedType {
    /// Reads Apple's number (total: any number is a value).
    pub fn parse(code: u32) -> AssociatedType {
        if (REMOVAL_BASE..POLL).contains(&code) {
            AssociatedType { kind: AssociationKind::from_added(code - REMOVAL_OFFSET), removal: true }
        } else {
            AssociatedType { kind: AssociationKind::from_added(code), removal: false }
        }
    }

    /// Apple's number back (`parse(n).code() == n` for every `n`).
    pub fn code(self) -> u32 {
        let added = self.kind.added_code();
        if self.removal {
            added.saturating_add(REMOVAL_OFFSET)
        } else {
            added
        }
    }

    /// The tapback named (added or removed), if it is one of the kinds iMessage has.
    pub fn tapback(self) -> Option<TapbackKind> {
        match self.kind {
            AssociationKind::Tapback(k) => Some(k),
            _ => None,
        }
    }

    /// Whether it adds something to its target: a tapback, a sticker, an app's balloon update
    /// (every number below the removals'); not a removal, a poll or a later number.
    pub fn adds(self) -> bool {
        !self.removal && self.code() < REMOVAL_BASE
    }

    /// Whether it is a tapback or a tapback's removal, kinds Apple may add later in those
    /// ranges included (2000–3999).
    pub fn in_tapback_range(self) -> bool {
        (TAPBACK_BASE..POLL).contains(&self.code())
    }

    /// Whether `self` takes back `added`: the removal of the same kind.
    pub fn removes(self, added: AssociatedType) -> bool {
        self.removal && !added.removal && self.kind == added.kind
    }

    /// A legacy sticker number as current databases and CloudKit write it; anything else as is.
    pub fn normalized(self) -> AssociatedType {
        match self.kind {
            AssociationKind::LegacySticker => AssociatedType { kind: AssociationKind::Tapback(TapbackKind::Sticker), removal: self.removal },
            _ => self,
        }
    }
}

/// How an association's target was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `p:N/GUID`: part N of a message.
    Part,
    /// `bp:GUID`: an app's balloon message (part 0).
    Balloon,
    /// A bare GUID (part 0), or anything that is not one of the prefixed forms.
    Message,
}

/// The message (and part) an association or a reply points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssociationTarget<'a> {
    /// The GUID of the message.
    pub guid: &'a str,
    /// The part of the message (0 when the target names none, or names one that is not a
    /// number).
    pub part: i64,
    /// How it was written.
    pub form: TargetForm,
}

impl<'a> AssociationTarget<'a> {
    /// Reads `p:N/GUID`, `bp:GUID` or a bare GUID (total: a malformed `p:` target without its
    /// `/` is a bare GUID, as written; a part that is not a number is part 0).
    pub fn parse(target: &'a str) -> AssociationTarget<'a> {
        if let Some((n, guid)) = target.strip_prefix(PART_PREFIX).and_then(|rest| rest.split_once('/')) {
            return AssociationTarget { guid, part: n.parse().unwrap_or(0), form: TargetForm::Part };
        }
        match target.strip_prefix(BALLOON_PREFIX) {
            Some(guid) => AssociationTarget { guid, part: 0, form: TargetForm::Balloon },
            None => AssociationTarget { guid: target, part: 0, form: TargetForm::Message },
        }
    }

    /// Part `part` of message `guid`, written `p:N/GUID`.
    pub fn part_of(guid: &'a str, part: i64) -> AssociationTarget<'a> {
        AssociationTarget { guid, part, form: TargetForm::Part }
    }
}

impl fmt::Display for AssociationTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.form {
            TargetForm::Part => write!(f, "{PART_PREFIX}{}/{}", self.part, self.guid),
            TargetForm::Balloon => write!(f, "{BALLOON_PREFIX}{}", self.guid),
            TargetForm::Message => f.write_str(self.guid),
        }
    }
}

/// A message's association: what it is and what it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Association<'a> {
    /// `associatedMessageType`, read.
    pub kind: AssociatedType,
    /// `associatedMessageGuid`, read.
    pub target: AssociationTarget<'a>,
}

impl<'a> Association<'a> {
    /// Reads both fields.
    pub fn parse(code: u32, target: &'a str) -> Association<'a> {
        Association { kind: AssociatedType::parse(code), target: AssociationTarget::parse(target) }
    }
}

#[cfg(test)]
#[path = "association_tests.rs"]
mod tests;
