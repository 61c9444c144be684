//! The generated account's people as contact files: the independent writer whose truth the
//! contact readers and the bridge's ghost names are checked against.
//!
//! [`plan`] turns the account's handles into cards the way people keep them: numbers written in
//! human forms ("(555) 123-4567", "+1 555 123 4567", "555.123.4567", "1-555-123-4567", national
//! forms), emails in mixed case, one card with only a nickname and one with only an
//! organisation, one number on two cards, small real photos (PNG and JPEG), an owner card with
//! the account's own handles, and a few handles on no card. [`renamed`] is the same book with
//! one contact renamed and one removed. The writers (`vcf`, `sqlite`) write one book in each
//! format; [`truth`] says, per handle, what a correct matcher must show, worked out from the plan
//! (which handle each written number came from), never by parsing what was written.
//!
//! The rule for a number on two cards (implemented independently by the contacts crate): the
//! card whose display name sorts first by Unicode code points wins, ties by the smaller uid.
//! Display name: "Given Family" (whichever is present), else the nickname, else the
//! organisation. The owner card is never used; the owner's handles are in the truth with null.

pub mod image;
pub use image::Photo;
pub mod sqlite;
pub mod vcf;

use serde::Serialize;

use crate::account::OWN_HANDLES;
use crate::Account;

/// A phone number or email as written on a card, with the account handle it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub label: &'static str,
    pub written: String,
    pub handle: String,
}

/// One card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub uid: String,
    pub given: Option<String>,
    pub family: Option<String>,
    pub nickname: Option<String>,
    pub organization: Option<String>,
    pub phones: Vec<Entry>,
    pub emails: Vec<Entry>,
    pub photo: Option<Photo>,
    /// Written as vCard 4.0 (else 3.0).
    pub v4: bool,
    pub owner: bool,
}

impl Card {
    /// The name a person sees: "Given Family", else the nickname, else the organisation.
    pub fn display_name(&self) -> Option<String> {
        let full = [self.given.as_deref(), self.family.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        if !full.is_empty() {
            return Some(full);
        }
        self.nickname.clone().or_else(|| self.organization.clone())
    }

    /// The vCard `FN`: the display name (vCard requires one).
    pub fn formatted_name(&self) -> String {
        self.display_name().unwrap_or_default()
    }
}

/// The cards of one address book, the owner's first.
#[derive(Debug, Clone)]
pub struct Book {
    pub cards: Vec<Card>,
    /// Every handle the truth covers, in the account's order.
    pub handles: Vec<String>,
}

const GIVEN: [&str; 12] = ["Sam", "Ana", "Wei", "Olu", "Zoë", "Mateo", "Priya", "Jonas", "Aiko", "Lena", "Omar", "Chloé"];
const FAMILY: [&str; 12] = ["Rivera", "Lima", "Chen", "Adeyemi", "Ångström", "García", "Nair", "Berg", "Sato", "Novak", "Haddad", "Dubois"];
const PHONE_LABELS: [&str; 3] = ["_$!<Mobile>!$_", "_$!<Home>!$_", "_$!<Work>!$_"];

/// A +1 number written as people write it; `form` picks the style.
pub fn human_number(e164: &str, form: usize) -> String {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    let national = digits.strip_prefix('1').filter(|n| n.len() == 10).unwrap_or(&digits);
    if national.len() != 10 {
        return e164.to_string();
    }
    let (a, b, c) = (&national[..3], &national[3..6], &national[6..]);
    match form % 6 {
        0 => format!("({a}) {b}-{c}"),
        1 => format!("+1 {a} {b} {c}"),
        2 => format!("{a}.{b}.{c}"),
        3 => format!("1-{a}-{b}-{c}"),
        4 => format!("{a}{b}{c}"),
        _ => format!("+1 ({a}) {b}-{c}"),
    }
}

/// An email with its case mixed the way address books keep them ("Friend3@Example.COM").
fn mixed_case(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let mut local_chars = local.chars();
    let local = local_chars.next().map(|c| c.to_uppercase().chain(local_chars).collect::<String>()).unwrap_or_default();
    let domain = match domain.rsplit_once('.') {
        Some((name, tld)) => {
            let mut name_chars = name.chars();
            let name = name_chars.next().map(|c| c.to_uppercase().chain(name_chars).collect::<String>()).unwrap_or_default();
            format!("{name}.{}", tld.to_uppercase())
        }
        None => domain.to_string(),
    };
    format!("{local}@{domain}")
}

/// The account's handles (every participant of every chat, first appearance first).
pub fn account_handles(account: &Account) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    account.chats.iter().flat_map(|c| c.participants.iter()).filter(|h| seen.insert(h.as_str().to_owned())).cloned().collect()
}

fn entry_for(handle: &str, j: usize) -> (Option<Entry>, Option<Entry>) {
    if let Some(number) = handle.strip_prefix("tel:") {
        (Some(Entry { label: PHONE_LABELS[j % 3], written: human_number(number, j), handle: handle.to_string() }), None)
    } else {
        let email = handle.strip_prefix("mailto:").unwrap_or(handle);
        (None, Some(Entry { label: if j.is_multiple_of(2) { "_$!<Home>!$_" } else { "_$!<Work>!$_" }, written: mixed_case(email), handle: handle.to_string() }))
    }
}

/// The base book of `account`.
pub fn plan(account: &Account) -> Book {
    let handles = account_handles(account);
    let mut cards = vec![Card {
        uid: "sim-contact-owner".into(),
        given: Some("Jordan".into()),
        family: Some("Owner".into()),
        nickname: None,
        organization: None,
        phones: vec![Entry { label: PHONE_LABELS[0], written: human_number(OWN_HANDLES[0].trim_start_matches("tel:"), 0), handle: OWN_HANDLES[0].into() }],
        emails: vec![Entry { label: "_$!<Home>!$_", written: mixed_case(OWN_HANDLES[1].trim_start_matches("mailto:")), handle: OWN_HANDLES[1].into() }],
        photo: None,
        v4: false,
        owner: true,
    }];
    let mut j = 0usize;
    for (i, handle) in handles.iter().enumerate() {
        // A suffixed DM id (`tel:+1…-7`) is no number anyone keeps; every eighth handle is
        // a person not in the address book.
        if handle.rsplit_once('-').is_some_and(|(_, s)| s.chars().all(|c| c.is_ascii_digit())) && handle.starts_with("tel:") || i % 8 == 7 {
            continue;
        }
        let (phone, email) = entry_for(handle, j);
        let (mut given, mut family, mut nickname, mut organization) =
            (Some(GIVEN[j % 12].to_string()), Some(FAMILY[(j * 5 + 3 + j / 12) % 12].to_string()), None, None);
        match j {
            1 => (given, family, nickname) = (None, None, Some("Bubbles".to_string())),
            2 => (given, family, organization) = (None, None, Some("Rivera Plumbing LLC".to_string())),
            5 => family = None,
            _ => {}
        }
        let v4 = j.is_multiple_of(2);
        let photo = j.is_multiple_of(3).then(|| image::photo(j as u32, v4));
        cards.push(Card {
            uid: format!("sim-contact-{j:03}"),
            given,
            family,
            nickname,
            organization,
            phones: phone.into_iter().collect(),
            emails: email.into_iter().collect(),
            photo,
            v4,
            owner: false,
        });
        j += 1;
    }
    // One number on two cards: a second card for the first card's phone number.
    if let Some(shared) = cards.iter().skip(1).find_map(|c| c.phones.first()).cloned() {
        let written = human_number(shared.handle.trim_start_matches("tel:"), 1);
        cards.push(Card {
            uid: "sim-contact-shared".into(),
            given: Some("Aaron".into()),
            family: Some("Shared".into()),
            nickname: None,
            organization: None,
            phones: vec![Entry { label: "_$!<Work>!$_", written, handle: shared.handle }],
            emails: Vec::new(),
            photo: None,
            v4: true,
            owner: false,
        });
    }
    let mut handles = handles;
    handles.extend(OWN_HANDLES.iter().map(|h| h.to_string()));
    Book { cards, handles }
}

/// `book` with one contact renamed (the second named card gets a new family name) and one
/// removed (the last plain card before the shared one).
pub fn renamed(book: &Book) -> Book {
    let mut cards = book.cards.clone();
    if let Some(card) = cards.iter_mut().filter(|c| !c.owner && c.given.is_some() && c.family.is_some()).nth(1) {
        card.family = Some("Okafor-Renamed".into());
    }
    let removable = cards.iter().rposition(|c| !c.owner && c.uid != "sim-contact-shared" && c.photo.is_none());
    if let Some(k) = removable {
        cards.remove(k);
    }
    Book { cards, handles: book.handles.clone() }
}

/// What a matcher must show for one handle.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TruthEntry {
    pub handle: String,
    pub expected_display_name: Option<String>,
    pub photo_sha256: Option<String>,
}

/// The truth of `book`, one entry per handle.
pub fn truth(book: &Book) -> Vec<TruthEntry> {
    book.handles
        .iter()
        .map(|handle| {
            let winner = book
                .cards
                .iter()
                .filter(|c| !c.owner && c.phones.iter().chain(&c.emails).any(|e| &e.handle == handle))
                .filter_map(|c| c.display_name().map(|n| (n, c)))
                .min_by(|(a, ca), (b, cb)| a.as_bytes().cmp(b.as_bytes()).then_with(|| ca.uid.cmp(&cb.uid)));
            TruthEntry {
                handle: handle.clone(),
                expected_display_name: winner.as_ref().map(|(n, _)| n.clone()),
                photo_sha256: winner.and_then(|(_, c)| c.photo.as_ref().map(Photo::sha256)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_human_forms() {
        let forms: Vec<String> = (0..6).map(|f| human_number("+15551234567", f)).collect();
        assert_eq!(forms, ["(555) 123-4567", "+1 555 123 4567", "555.123.4567", "1-555-123-4567", "5551234567", "+1 (555) 123-4567"]);
        assert_eq!(mixed_case("friend3@example.com"), "Friend3@Example.COM");
    }
}
