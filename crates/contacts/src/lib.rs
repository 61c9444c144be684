//! People's names and photos instead of phone numbers.
//!
//! Every bridged person is named by a handle (`tel:+15555925055`) unless the bridge knows who it
//! is. This crate reads the places where people keep that knowledge and turns them into one map
//! from a canonical iMessage handle to the name and photo to show:
//!
//! - [`vcard`]: `.vcf` files (vCard 2.1, 3.0 and 4.0), what every phone, Google Contacts and
//!   Outlook export, and what a CardDAV server hands out;
//! - [`address_book`]: a Mac's `AddressBook-v22.abcddb` files (with their images) and an iPhone's
//!   `AddressBook.sqlitedb` + `AddressBookImages.sqlitedb`, read-only;
//! - [`book`]: the matching. Every number and address of every card becomes a handle in the form
//!   [`imessage::handle::canonical_handle`] gives every source, so a card written
//!   "(555) 123-4567" finds the person CloudKit calls `tel:+15551234567`.
//!
//! Why it is shaped like this:
//! - **Sources produce [`Card`]s, nothing else.** A card is what any source can say about a
//!   person; the merger of sources and the choice between two cards that claim one number live
//!   in one place ([`book::ContactBook`]), with one documented rule, so that every source is
//!   matched the same way and a refresh is simply a rebuild.
//! - **Nothing from a file is trusted**: every read is capped ([`MAX_VCF_BYTES`],
//!   [`MAX_PHOTO_BYTES`]), and what cannot be used (a card that does not parse, an image that is
//!   not one, a photo on a web server that is not fetched) is returned as a [`Problem`] with its
//!   reason, never dropped silently and never a panic.
//! - **Contact data stays here.** The crate reads files only; it never fetches a photo URL.

pub mod address_book;
pub mod book;
pub mod photo;
pub mod vcard;

pub use book::{BookStats, ContactBook, ContactMatch, MatchOptions, MatchStats};
pub use photo::Photo;

/// A `.vcf` file larger than this is refused (an address book export of a few thousand people
/// with photos is tens of MiB).
pub const MAX_VCF_BYTES: u64 = 256 * 1024 * 1024;

/// A contact photo larger than this is not used (a problem, not a crash); phones store a few
/// hundred KiB.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;

/// Errors of the contact readers. A bad card, row or image is not an error but a [`Problem`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: larger than {cap} bytes")]
    TooLarge { path: String, cap: u64 },
    #[error("{path}: {source}")]
    Database { path: String, source: sqlx::Error },
    #[error("{path}: not an address book: {reason}")]
    NotAddressBook { path: String, reason: String },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one source says about one person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    /// The source's id of the card (vCard `UID`, the Mac's `ZUNIQUEID`, the iPhone's `guid` or
    /// `ROWID`); one id across a Mac's account files is one card. Ties between two cards that
    /// claim one handle are broken by it.
    pub uid: String,
    /// The formatted name (vCard `FN`).
    pub full_name: Option<String>,
    pub given: Option<String>,
    pub family: Option<String>,
    pub nickname: Option<String>,
    pub organization: Option<String>,
    /// Phone numbers as written on the card ("(555) 123-4567").
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub photo: Option<Photo>,
    /// Where the card came from, e.g. `vcf:/path/contacts.vcf` or `abcddb:/path/AddressBook-v22.abcddb`.
    pub source: String,
}

impl Card {
    /// The name a person sees: the full name (`FN`, else given and family name joined by a
    /// space), else the nickname, else the organisation; None for a card without any (such a
    /// card is not used).
    pub fn display_name(&self) -> Option<String> {
        fn clean(s: &Option<String>) -> Option<&str> {
            s.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        if let Some(full) = clean(&self.full_name) {
            return Some(full.to_string());
        }
        let composed: Vec<&str> = [clean(&self.given), clean(&self.family)].into_iter().flatten().collect();
        if !composed.is_empty() {
            return Some(composed.join(" "));
        }
        clean(&self.nickname).or_else(|| clean(&self.organization)).map(str::to_string)
    }
}

/// Something a source could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The source (as in [`Card::source`]).
    pub source: String,
    /// Which card, row or line (`line 12`, `card 3`, `ZABCDRECORD 7`, a card's uid).
    pub item: String,
    pub reason: String,
}

/// The cards a source gave and the problems it met.
#[derive(Debug, Clone, Default)]
pub struct CardSet {
    pub cards: Vec<Card>,
    pub problems: Vec<Problem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_order() {
        let mut c = Card { organization: Some("Acme".into()), ..Card::default() };
        assert_eq!(c.display_name().as_deref(), Some("Acme"));
        c.nickname = Some(" Sammy ".into());
        assert_eq!(c.display_name().as_deref(), Some("Sammy"));
        c.family = Some("Rivera".into());
        assert_eq!(c.display_name().as_deref(), Some("Rivera"));
        c.given = Some("Sam".into());
        assert_eq!(c.display_name().as_deref(), Some("Sam Rivera"));
        c.full_name = Some("Dr. Sam Rivera".into());
        assert_eq!(c.display_name().as_deref(), Some("Dr. Sam Rivera"));
        c.full_name = Some("  ".into());
        assert_eq!(c.display_name().as_deref(), Some("Sam Rivera"));
        assert_eq!(Card::default().display_name(), None);
    }
}
