//! Matching: every card's numbers and addresses as canonical handles, one card per handle.
//!
//! Handles are made with [`imessage::handle::canonical_handle`], the function every message
//! source uses, so "(555) 123-4567" on a card and `tel:+15551234567` from CloudKit are one key.
//! Numbers written without a country code are read in [`MatchOptions::default_region`].
//!
//! **The rule when two cards claim one handle** (a shared family landline, a duplicate card):
//! the card whose [`Card::display_name`] sorts first by Unicode code points wins; equal names go
//! to the smaller `uid` (also by code points). It depends only on the cards, not on the order
//! sources were read in, so every rebuild picks the same card. It is logged once per handle per
//! build, at info, with a short hash of the handle instead of the number.
//!
//! The owner's own card (one that carries any of [`MatchOptions::own_handles`]) is left out
//! entirely: it would otherwise name the owner's own ghost after themselves, and its numbers are
//! not other people's. A card without a name is not used (counted).
//!
//! A refresh (a card renamed, removed, added) is a rebuild: the book holds no state besides the
//! cards it was built from.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use imessage::handle::canonical_handle;

use crate::{Card, CardSet, Photo};

/// How handles are read.
#[derive(Debug, Clone, Default)]
pub struct MatchOptions {
    /// ISO 3166 region for numbers without a country code (None: [`imessage::handle::DEFAULT_REGION`]).
    pub default_region: Option<String>,
    /// The owner's own handles, in any form: a card carrying one of them is not used.
    pub own_handles: Vec<String>,
}

/// What a handle resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactMatch<'a> {
    pub display_name: &'a str,
    pub photo: Option<&'a Photo>,
    pub card_uid: &'a str,
}

/// Counts of a build, for `status` and `doctor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Cards in use (named, not the owner's).
    pub cards: usize,
    /// Distinct handles that resolve to a card.
    pub handles: usize,
    /// Handles claimed by more than one card (decided by the rule in the module doc).
    pub conflicts: usize,
    /// Cards left out because they carry one of the owner's handles.
    pub own_cards_skipped: usize,
    /// Cards left out because they have no name, nickname or organisation.
    pub nameless_cards: usize,
    /// Phone numbers on cards that are not numbers of any region (the card is still used for
    /// its other handles).
    pub unparsed_numbers: usize,
    /// Problems the sources reported (given to [`ContactBook::build_from`]).
    pub problems: usize,
}

/// How many of a set of handles have a contact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchStats {
    pub matched: usize,
    pub unmatched: usize,
}

struct Entry {
    card: Card,
    name: String,
}

/// The map from canonical handle to the card that names it.
pub struct ContactBook {
    entries: Vec<Entry>,
    by_handle: HashMap<String, usize>,
    region: Option<String>,
    stats: BookStats,
}

impl std::fmt::Debug for ContactBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactBook").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl ContactBook {
    /// Builds the book from the card sets of any number of sources.
    pub fn build(sets: Vec<Vec<Card>>, opts: MatchOptions) -> ContactBook {
        Self::build_counting(sets, 0, opts)
    }

    /// [`ContactBook::build`] from what readers returned, their problems counted in
    /// [`BookStats::problems`].
    pub fn build_from(sets: Vec<CardSet>, opts: MatchOptions) -> ContactBook {
        let problems = sets.iter().map(|s| s.problems.len()).sum();
        Self::build_counting(sets.into_iter().map(|s| s.cards).collect(), problems, opts)
    }

    fn build_counting(sets: Vec<Vec<Card>>, problems: usize, opts: MatchOptions) -> ContactBook {
        let region = opts.default_region.filter(|r| !r.trim().is_empty());
        let own: BTreeSet<String> = opts.own_handles.iter().map(|h| canonical_handle(h, region.as_deref())).filter(|h| !h.is_empty()).collect();
        let mut stats = BookStats { problems, ..BookStats::default() };
        let mut entries = Vec::new();
        let mut by_handle: HashMap<String, usize> = HashMap::new();
        let mut conflicted: BTreeSet<String> = BTreeSet::new();
        for card in sets.into_iter().flatten() {
            let Some(name) = card.display_name() else {
                stats.nameless_cards += 1;
                continue;
            };
            let (handles, unparsed) = card_handles(&card, region.as_deref());
            if handles.iter().any(|h| own.contains(h)) {
                stats.own_cards_skipped += 1;
                continue;
            }
            stats.unparsed_numbers += unparsed;
            let index = entries.len();
            for handle in handles {
                match by_handle.get(&handle).copied() {
                    None => {
                        by_handle.insert(handle, index);
                    }
                    Some(other) => {
                        let Some(held) = entries.get(other) else { continue };
                        let held: &Entry = held;
                        if held.card.uid == card.uid && held.name == name {
                            continue; // the same card from two sources
                        }
                        if wins((&name, &card.uid), (&held.name, &held.card.uid)) {
                            by_handle.insert(handle.clone(), index);
                        }
                        conflicted.insert(handle);
                    }
                }
            }
            entries.push(Entry { card, name });
        }
        for handle in &conflicted {
            let chosen = by_handle.get(handle).and_then(|&i| entries.get(i)).map(|e| e.card.uid.as_str()).unwrap_or_default();
            tracing::info!(handle = %short_hash(handle), "two or more contacts have this handle; the one whose name sorts first is used");
            tracing::debug!(handle, chosen, "contact conflict");
        }
        stats.cards = entries.len();
        stats.handles = by_handle.len();
        stats.conflicts = conflicted.len();
        ContactBook { entries, by_handle, region, stats }
    }

    /// The contact of a handle given in any form (`tel:+1…`, `(555) 123-4567`, `Sam@Example.com`),
    /// read with the book's default region.
    pub fn lookup(&self, handle: &str) -> Option<ContactMatch<'_>> {
        let key = canonical_handle(handle, self.region.as_deref());
        let entry = self.by_handle.get(&key).and_then(|&i| self.entries.get(i))?;
        Some(ContactMatch { display_name: &entry.name, photo: entry.card.photo.as_ref(), card_uid: &entry.card.uid })
    }

    pub fn stats(&self) -> BookStats {
        self.stats
    }

    /// How many of `handles` have a contact.
    pub fn match_handles<'h>(&self, handles: impl IntoIterator<Item = &'h str>) -> MatchStats {
        let mut stats = MatchStats::default();
        for handle in handles {
            if self.lookup(handle).is_some() {
                stats.matched += 1;
            } else {
                stats.unmatched += 1;
            }
        }
        stats
    }

    /// Every canonical handle with a contact, in no particular order.
    pub fn handles(&self) -> impl Iterator<Item = &str> {
        self.by_handle.keys().map(String::as_str)
    }
}

/// True if `a` (name, uid) wins over `b` by the rule in the module doc.
fn wins(a: (&str, &str), b: (&str, &str)) -> bool {
    a < b
}

/// A card's handles, deduplicated, and how many of its numbers did not parse.
fn card_handles(card: &Card, region: Option<&str>) -> (BTreeSet<String>, usize) {
    let mut handles = BTreeSet::new();
    let mut unparsed = 0;
    for phone in &card.phones {
        let handle = canonical_handle(phone, region);
        if handle.starts_with("tel:") {
            handles.insert(handle);
        } else {
            unparsed += 1;
            tracing::debug!(card = %card.uid, "a number on a contact card is not a phone number");
        }
    }
    for email in &card.emails {
        let handle = canonical_handle(email, region);
        if handle.starts_with("mailto:") {
            handles.insert(handle);
        }
    }
    (handles, unparsed)
}

/// A short stable label for a handle in logs (no phone numbers or addresses above debug).
fn short_hash(handle: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    handle.hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_is_code_point_order_then_uid() {
        assert!(wins(("Alex", "z"), ("Sam", "a")));
        assert!(wins(("Sam", "a"), ("Sam", "b")));
        assert!(!wins(("sam", "a"), ("Sam", "b")), "lowercase sorts after uppercase by code point");
        assert!(wins(("Zoë", "a"), ("Zoé", "a")) == ("Zoë" < "Zoé"));
    }

    #[test]
    fn short_hash_hides_the_number() {
        let h = short_hash("tel:+15551234567");
        assert_eq!(h.len(), 8);
        assert_ne!(h, "tel:+15551234567");
        assert_eq!(h, short_hash("tel:+15551234567"));
    }
}
