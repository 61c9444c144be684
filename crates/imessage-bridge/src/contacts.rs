//! The operator's contacts, as ghost names and photos.
//!
//! The config names the sources (`contacts:`): the address book that comes with a local source
//! (`auto`: a Mac's `~/Library/Application Support/AddressBook` beside `~/Library/Messages`, or
//! the one inside an iPhone backup), an address book file or folder, vCard files, a CardDAV
//! server. They are read into one [`contacts::ContactBook`], and delivery asks it, through
//! [`matrix::profiles::ProfileSource`], for the name and photo of each person who appears in a
//! chat. Nothing else of the contact data is used or sent anywhere.
//!
//! A source that cannot be read is reported (doctor, the log) and the others are still used, so
//! a CardDAV server that is down does not turn every name back into a number: its last cards are
//! kept until it answers again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use contacts::{CardSet, ContactBook, MatchOptions};
use matrix::profiles::{AvatarImage, GhostProfile, ProfileSource};
use tokio::sync::Mutex;

use crate::config::{AddressBookSetting, CardDavConfig, Config, SourceKind};

/// What one source gave on its last read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceReport {
    /// `address book PATH`, `vcf PATH`, `carddav URL`.
    pub source: String,
    pub cards: usize,
    pub problems: usize,
    /// Why the source could not be read (its cards from an earlier read, if any, are kept).
    pub error: Option<String>,
}

/// The contact sources of a config, read again on each [`Contacts::load`].
pub struct Contacts {
    config: Config,
    own_handles: Vec<String>,
    carddav: Mutex<CardDavCache>,
}

/// The cards of a CardDAV server between syncs: each sync brings only what changed.
#[derive(Default)]
struct CardDavCache {
    state: carddav::SyncState,
    cards: BTreeMap<String, String>,
}

/// A read of every source: the book, and what each source gave.
pub struct Loaded {
    pub book: Arc<ContactBook>,
    pub reports: Vec<SourceReport>,
}

impl Contacts {
    /// The sources `config` names; `own_handles` are the owner's (their card is not used).
    pub fn new(config: &Config, own_handles: Vec<String>) -> Self {
        Contacts { config: config.clone(), own_handles, carddav: Mutex::new(CardDavCache::default()) }
    }

    /// Whether the config names any contact source at all (`auto` with a CloudKit source names
    /// none).
    pub fn configured(&self) -> bool {
        let c = &self.config.contacts;
        let book = match &c.address_book {
            AddressBookSetting::Off => false,
            AddressBookSetting::Path(_) => true,
            AddressBookSetting::Auto => self.config.source.kind != SourceKind::Cloudkit,
        };
        book || !c.vcf.is_empty() || c.carddav.is_some()
    }

    /// Reads every source and builds the book.
    pub async fn load(&self) -> Loaded {
        let mut sets = Vec::new();
        let mut reports = Vec::new();
        let mut add = |source: String, read: anyhow::Result<CardSet>| {
            let report = match read {
                Ok(set) => {
                    let report = SourceReport { source, cards: set.cards.len(), problems: set.problems.len(), error: None };
                    for p in set.problems.iter().take(20) {
                        tracing::warn!(source = %p.source, item = %p.item, "contact not used: {}", p.reason);
                    }
                    sets.push(set);
                    report
                }
                Err(e) => {
                    tracing::warn!(%source, "contacts not read: {e:#}");
                    SourceReport { source, cards: 0, problems: 0, error: Some(format!("{e:#}")) }
                }
            };
            reports.push(report);
        };
        match self.address_book().await {
            Ok(Some((label, path, _keep))) => add(label, contacts::address_book::open(&path).await.map_err(anyhow::Error::from)),
            Ok(None) => {}
            Err(e) => add("address book".into(), Err(e)),
        }
        for file in &self.config.contacts.vcf {
            let read = contacts::vcard::read_file(file).map(|p| CardSet { cards: p.cards, problems: p.problems });
            add(format!("vcf {}", file.display()), read.map_err(anyhow::Error::from));
        }
        if let Some(dav) = &self.config.contacts.carddav {
            let read = self.read_carddav(dav).await;
            add(format!("carddav {}", dav.url), read);
        }
        let region = self.config.source.default_region.clone();
        let book = ContactBook::build_from(sets, MatchOptions { default_region: region, own_handles: self.own_handles.clone() });
        tracing::info!(stats = ?book.stats(), "contacts read");
        Loaded { book: Arc::new(book), reports }
    }

    /// The address book file or folder to read: the configured path, or (auto) the one that
    /// comes with the source. The third value keeps a backup's temporary folder alive.
    async fn address_book(&self) -> anyhow::Result<Option<(String, PathBuf, Option<ios_backup::Backup>)>> {
        match &self.config.contacts.address_book {
            AddressBookSetting::Off => Ok(None),
            AddressBookSetting::Path(path) => Ok(Some((format!("address book {}", path.display()), path.clone(), None))),
            AddressBookSetting::Auto => match self.config.source.kind {
                SourceKind::Cloudkit => Ok(None),
                SourceKind::ChatDb => {
                    let chat_db = self.config.source.path()?;
                    Ok(mac_address_book_beside(chat_db).map(|p| (format!("address book {}", p.display()), p, None)))
                }
                SourceKind::IosBackup => {
                    let dir = self.config.source.path()?;
                    let (backup, _) = crate::backup::open_backup(dir, &self.config).await?;
                    let files = backup.address_book().await.with_context(|| format!("taking the address book out of {}", dir.display()))?;
                    let Some(book) = files.address_book else { return Ok(None) };
                    Ok(Some((format!("address book in the backup {}", dir.display()), book, Some(backup))))
                }
            },
        }
    }

    /// Syncs the CardDAV server into the cache and parses its cards; on an error the cache is
    /// untouched and the error returned.
    async fn read_carddav(&self, dav: &CardDavConfig) -> anyhow::Result<CardSet> {
        let password = read_secret(&dav.password_file)?;
        let client = carddav::CardDav::connect(carddav::Credentials { url: dav.url.clone(), username: dav.username.clone(), password })
            .await
            .with_context(|| format!("CardDAV {}", dav.url))?;
        let mut cache = self.carddav.lock().await;
        let mut state = cache.state.clone();
        let delta = client.sync(&mut state).await.with_context(|| format!("CardDAV sync of {}", dav.url))?;
        for href in &delta.removed {
            cache.cards.remove(href);
        }
        for card in delta.upserted {
            cache.cards.insert(card.href, card.vcard);
        }
        cache.state = state;
        let mut set = CardSet::default();
        for unreadable in &delta.unreadable {
            set.problems.push(contacts::Problem { source: format!("carddav:{}", dav.url), item: unreadable.href.clone(), reason: unreadable.reason.clone() });
        }
        for (href, text) in &cache.cards {
            let parsed = contacts::vcard::parse(text, &format!("carddav:{href}"));
            set.cards.extend(parsed.cards);
            set.problems.extend(parsed.problems);
        }
        Ok(set)
    }
}

/// A Mac's address book for a `chat.db`: `~/Library/Application Support/AddressBook` when the
/// database is `~/Library/Messages/chat.db`, or an `AddressBook` folder copied beside it.
pub fn mac_address_book_beside(chat_db: &Path) -> Option<PathBuf> {
    let messages = chat_db.parent()?;
    let candidates =
        [messages.join("AddressBook"), messages.parent().map(|library| library.join("Application Support").join("AddressBook")).unwrap_or_default()];
    candidates.into_iter().find(|c| !c.as_os_str().is_empty() && c.is_dir())
}

/// A password file: its first line; refused when others can read it.
fn read_secret(path: &Path) -> anyhow::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        anyhow::ensure!(mode & 0o077 == 0, "{} is readable by others (mode {:o}): chmod 600 it", path.display(), mode & 0o777);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let password = text.lines().next().unwrap_or_default().to_string();
    anyhow::ensure!(!password.is_empty(), "{} is empty", path.display());
    Ok(password)
}

/// The book as ghost profiles.
pub struct BookProfiles(pub Arc<ContactBook>);

impl ProfileSource for BookProfiles {
    fn profile(&self, canonical_handle: &str) -> Option<GhostProfile> {
        let found = self.0.lookup(canonical_handle)?;
        let avatar = found.photo.map(|p| AvatarImage { bytes: bytes::Bytes::copy_from_slice(&p.bytes), mime: p.mime.clone() });
        Some(GhostProfile { display_name: found.display_name.to_string(), avatar })
    }
}
