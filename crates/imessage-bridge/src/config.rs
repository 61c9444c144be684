//! The bridge's YAML configuration. Paths inside it are relative to the config file's folder, so
//! a config directory can be moved as a whole.
//!
//! Keys the bridge does not know are never silently ignored: a misspelt `sync_interval_sec`
//! would otherwise leave the default in force without a word. Loading names them (every command
//! warns; `doctor` fails on them).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Where the history comes from (default: CloudKit, with the `cloudkit:` section).
    #[serde(default, skip_serializing_if = "SourceConfig::is_cloudkit")]
    pub source: SourceConfig,
    /// The CloudKit account; required when `source.kind` is `cloudkit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudkit: Option<CloudKitConfig>,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub attachments: AttachmentsConfig,
    /// Matrix side; absent for a sync-only setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixConfig>,
    /// Where people's names and photos come from (default: the address book that comes with a
    /// local source).
    #[serde(default, skip_serializing_if = "ContactsConfig::is_default")]
    pub contacts: ContactsConfig,
}

/// Contact sources, any combination, merged. Contact data is used only for the names and photos
/// of the people who appear in chats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactsConfig {
    /// `auto` (the address book beside a Mac's `chat.db` or inside an iPhone backup), `off`, or
    /// the path of an `.abcddb` / `.sqlitedb` file or a folder holding one.
    #[serde(default)]
    pub address_book: AddressBookSetting,
    /// vCard files (`.vcf`, 3.0 or 4.0), as phones, Google Contacts and Outlook export them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcf: Vec<PathBuf>,
    /// A CardDAV address book server (iCloud with an app-specific password, Nextcloud, Fastmail…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carddav: Option<CardDavConfig>,
    /// Seconds between re-reads of the contact sources in `run`.
    #[serde(default = "default_contacts_refresh", skip_serializing_if = "is_default_contacts_refresh")]
    pub refresh_secs: u64,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        ContactsConfig { address_book: AddressBookSetting::Auto, vcf: Vec::new(), carddav: None, refresh_secs: default_contacts_refresh() }
    }
}

impl ContactsConfig {
    fn is_default(&self) -> bool {
        *self == ContactsConfig::default()
    }
}

fn default_contacts_refresh() -> u64 {
    3600
}
fn is_default_contacts_refresh(secs: &u64) -> bool {
    *secs == default_contacts_refresh()
}

/// `contacts.address_book`: `auto`, `off` or a path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AddressBookSetting {
    #[default]
    Auto,
    Off,
    Path(PathBuf),
}

impl From<String> for AddressBookSetting {
    fn from(value: String) -> Self {
        match value.as_str() {
            "auto" => AddressBookSetting::Auto,
            "off" => AddressBookSetting::Off,
            _ => AddressBookSetting::Path(PathBuf::from(value)),
        }
    }
}

impl From<AddressBookSetting> for String {
    fn from(value: AddressBookSetting) -> Self {
        match value {
            AddressBookSetting::Auto => "auto".into(),
            AddressBookSetting::Off => "off".into(),
            AddressBookSetting::Path(path) => path.display().to_string(),
        }
    }
}

/// A CardDAV account; the password is in a file of its own (0600), never in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardDavConfig {
    /// The server (`https://contacts.icloud.com`, or an address book's own URL).
    pub url: String,
    pub username: String,
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixConfig {
    /// Homeserver client-server API base URL.
    pub homeserver: String,
    /// The homeserver's server name (the part after `:` in user ids).
    pub domain: String,
    /// The Matrix user who owns the bridge.
    pub owner: String,
    /// Path of the appservice registration (tokens are read from it).
    pub registration: PathBuf,
    /// Address the appservice API listens on (the registration's `url` points here).
    pub listen: std::net::SocketAddr,
    /// Rooms delivered concurrently.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds between syncs in `run`.
    #[serde(default = "default_interval")]
    pub sync_interval_secs: u64,
    /// Room version for new portals (default: the homeserver's default). Portals work on 10,
    /// 11 and 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    /// Serve Prometheus metrics as `GET /metrics` on this address (`run` and `deliver`); none:
    /// no metrics. Never the appservice's `listen`.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The former switch (`true` served `/metrics` on `listen`), read only to say what replaces
    /// it: `true` without `metrics_listen` is an error naming the new key; `false` means off.
    #[serde(default, skip_serializing)]
    pub metrics: Option<bool>,
}

impl MatrixConfig {
    /// Checks what one key cannot: metrics on an address of their own.
    fn check(&self) -> anyhow::Result<()> {
        if self.metrics == Some(true) && self.metrics_listen.is_none() {
            anyhow::bail!(
                "matrix.metrics: true served /metrics on the appservice port, which now answers the homeserver only: \
                 replace it with `metrics_listen: 127.0.0.1:9464` (any free address; Prometheus scrapes http://ADDR/metrics)"
            );
        }
        if self.metrics_listen == Some(self.listen) {
            anyhow::bail!("matrix.metrics_listen is the appservice's `listen` address {}: give metrics another port", self.listen);
        }
        Ok(())
    }
}

/// Rooms delivered at once per class (`matrix.concurrency`), unless the config says otherwise.
pub const DEFAULT_DELIVERY_CONCURRENCY: usize = 4;
/// Seconds between two sync passes of `run` (`matrix.sync_interval_secs`), unless the config
/// says otherwise.
pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 60;

fn default_concurrency() -> usize {
    DEFAULT_DELIVERY_CONCURRENCY
}
fn default_interval() -> u64 {
    DEFAULT_SYNC_INTERVAL_SECS
}

/// Sync tuning; every field has a default that suits Apple's servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncConfig {
    /// Consecutive failures of one request before a zone stops with `error_budget`.
    pub error_budget: u32,
    /// First retry delay; doubles per attempt up to `backoff_max_ms`.
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    /// Key refresh retries (warm-up and re-fetch rounds).
    pub key_retries: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let d = sync::SyncOptions::default();
        SyncConfig {
            error_budget: d.error_budget,
            backoff_ms: d.backoff_base.as_millis() as u64,
            backoff_max_ms: d.backoff_max.as_millis() as u64,
            key_retries: d.key_retries,
        }
    }
}

impl SyncConfig {
    pub fn options(&self) -> sync::SyncOptions {
        sync::SyncOptions {
            error_budget: self.error_budget.max(1),
            backoff_base: std::time::Duration::from_millis(self.backoff_ms),
            backoff_max: std::time::Duration::from_millis(self.backoff_max_ms.max(self.backoff_ms)),
            key_retries: self.key_retries,
            ..sync::SyncOptions::default()
        }
    }
}

/// Where attachment files are kept and how they are fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentsConfig {
    /// The content-addressed folder; default `attachments/` beside the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Files larger than this many bytes are not fetched (counted as `too_large`).
    pub max_bytes: u64,
    /// Downloads at once.
    pub concurrency: usize,
    /// Send HEIC/HEIF photos to Matrix as JPEG (most clients cannot show HEIC).
    pub convert_heif: bool,
    /// Send CAF voice messages to Matrix as Ogg/Opus voice messages.
    pub convert_voice: bool,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            dir: None,
            max_bytes: sync::files::DEFAULT_MAX_BYTES,
            concurrency: sync::files::DEFAULT_CONCURRENCY,
            convert_heif: true,
            convert_voice: true,
        }
    }
}

impl AttachmentsConfig {
    pub fn options(&self) -> sync::FileOptions {
        let mut o = sync::FileOptions::new(self.dir.clone().unwrap_or_else(|| PathBuf::from("attachments")));
        o.max_bytes = self.max_bytes;
        o.concurrency = self.concurrency.max(1);
        o
    }
}

/// The kinds of history source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Messages in iCloud (the `cloudkit:` section).
    #[default]
    Cloudkit,
    /// A Mac's Messages database (`~/Library/Messages/chat.db`, or a copy of that folder).
    ChatDb,
    /// An iPhone backup folder (Finder, iTunes, Apple Devices or `idevicebackup2`), plain or
    /// encrypted.
    IosBackup,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Cloudkit => "cloudkit",
            SourceKind::ChatDb => "chat-db",
            SourceKind::IosBackup => "ios-backup",
        }
    }
}

/// Where the history comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceConfig {
    #[serde(default)]
    pub kind: SourceKind,
    /// `chat-db`: the `chat.db` file; `ios-backup`: the backup folder (the one holding
    /// `Manifest.db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `ios-backup`: a file (0600) holding the backup password of an encrypted backup. The
    /// environment variable `IMESSAGE_BRIDGE_BACKUP_PASSWORD` is used when this is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_password_file: Option<PathBuf>,
    /// `ios-backup`: where the key derived from the password is kept (0600, a secret), so a
    /// restart does not derive it again; default `backup-key.cache` beside the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_cache: Option<PathBuf>,
    /// The region (ISO 3166, e.g. `US`, `GB`) of phone numbers written without a country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
    /// Which handle is "me" (`tel:+…` or `mailto:…`) for a local source; None: the one the
    /// database's sent messages use most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_handle: Option<String>,
}

impl SourceConfig {
    fn is_cloudkit(&self) -> bool {
        self.kind == SourceKind::Cloudkit && self.path.is_none() && self.default_region.is_none() && self.own_handle.is_none()
    }

    /// The backup key cache (resolved against the config's folder when the config is loaded).
    pub fn key_cache(&self) -> Option<PathBuf> {
        (self.kind == SourceKind::IosBackup).then(|| self.key_cache.clone().unwrap_or_else(|| PathBuf::from("backup-key.cache")))
    }

    /// The source's path, required for a local source.
    pub fn path(&self) -> anyhow::Result<&Path> {
        self.path.as_deref().with_context(|| format!("source.kind is {} but source.path is not set", self.kind.as_str()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloudKitConfig {
    /// CloudKit gateway base URL (the simulator's, or `https://gateway.icloud.com`).
    pub url: String,
    /// Path of the session file (`session.json`).
    pub session: PathBuf,
    /// Which of the session's handles is "me" (`tel:+…` or `mailto:…`): from-me messages are
    /// sent by its ghost when the owner is not double-puppeted. None: the session's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_handle: Option<String>,
    /// Caps on reply bodies and decompressed record fields (`max_reply_bytes`,
    /// `max_inflated_reply_bytes`, `max_field_bytes`); optional, defaults in `cloudkit::Limits`.
    #[serde(default, skip_serializing_if = "is_default_limits")]
    pub limits: cloudkit::Limits,
}

fn is_default_limits(limits: &cloudkit::Limits) -> bool {
    *limits == cloudkit::Limits::default()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` or `postgres://…`.
    pub uri: String,
}

impl Config {
    /// Loads the config, warning on stderr about every key it does not know.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let (config, unknown) = Self::load_checked(path)?;
        for key in unknown {
            tracing::warn!("{}: unknown key `{key}` is ignored (misspelt? see the README's config)", path.display());
        }
        Ok(config)
    }

    /// Loads the config and names the keys it does not know (dotted paths, e.g. `matrix.foo`).
    pub fn load_checked(path: &Path) -> anyhow::Result<(Self, Vec<String>)> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {} (pass -c PATH)", path.display()))?;
        let (mut config, unknown) = Self::parse(&text).with_context(|| format!("config {} is not valid", path.display()))?;
        if let Some(m) = &config.matrix {
            m.check().with_context(|| format!("config {} is not valid", path.display()))?;
        }
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok((config, unknown))
    }

    /// Parses config text as written (paths not resolved), with the unknown keys.
    pub fn parse(text: &str) -> Result<(Self, Vec<String>), serde_norway::Error> {
        let mut unknown = Vec::new();
        // serde_ignored writes `?` for passing through an Option (`matrix.?.foo`): not a key.
        let name = |key: serde_ignored::Path| key.to_string().split('.').filter(|k| *k != "?").collect::<Vec<_>>().join(".");
        let config = serde_ignored::deserialize(serde_norway::Deserializer::from_str(text), |key| unknown.push(name(key)))?;
        Ok((config, unknown))
    }

    /// Makes the relative paths of the file (session, attachments, registration, SQLite file)
    /// relative to the config's folder `base`.
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(ck) = self.cloudkit.as_mut() {
            if ck.session.is_relative() {
                ck.session = base.join(&ck.session);
            }
        }
        if self.source.kind == SourceKind::IosBackup && self.source.key_cache.is_none() {
            self.source.key_cache = Some(PathBuf::from("backup-key.cache"));
        }
        for path in [self.source.path.as_mut(), self.source.backup_password_file.as_mut(), self.source.key_cache.as_mut()].into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        let contact_paths = self.contacts.vcf.iter_mut().chain(self.contacts.carddav.as_mut().map(|c| &mut c.password_file));
        let address_book = match &mut self.contacts.address_book {
            AddressBookSetting::Path(path) => Some(path),
            _ => None,
        };
        for path in contact_paths.chain(address_book) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        let dir = self.attachments.dir.take().unwrap_or_else(|| PathBuf::from("attachments"));
        self.attachments.dir = Some(if dir.is_relative() { base.join(dir) } else { dir });
        if let Some(m) = self.matrix.as_mut() {
            if m.registration.is_relative() {
                m.registration = base.join(&m.registration);
            }
        }
        if let Some(file) = self.database.uri.strip_prefix("sqlite:") {
            let file = Path::new(file);
            if file.is_relative() {
                self.database.uri = format!("sqlite:{}", base.join(file).display());
            }
        }
    }

    /// A config with nothing set (init fills it in).
    pub fn placeholder() -> Config {
        Config {
            source: SourceConfig::default(),
            cloudkit: None,
            database: DatabaseConfig { uri: String::new() },
            sync: Default::default(),
            attachments: Default::default(),
            matrix: None,
            contacts: ContactsConfig::default(),
        }
    }

    /// The `cloudkit:` section, which a CloudKit source needs.
    pub fn cloudkit(&self) -> anyhow::Result<&CloudKitConfig> {
        self.cloudkit.as_ref().context("the config has no `cloudkit:` section (source.kind is cloudkit); run `imessage-bridge init`")
    }

    /// The account's own handles with the preferred one first (delivery sends from-me
    /// messages as the first one's ghost). A preferred handle the session lacks is an error.
    pub fn own_handles(&self, session_handles: &[String]) -> anyhow::Result<Vec<String>> {
        let mut handles = session_handles.to_vec();
        if let Some(preferred) = self.cloudkit.as_ref().and_then(|c| c.preferred_handle.as_ref()) {
            let Some(i) = handles.iter().position(|h| h == preferred) else {
                anyhow::bail!(
                    "cloudkit.preferred_handle {preferred:?} is not one of the session's handles ({}); run `imessage-bridge list-handles`",
                    handles.join(", ")
                );
            };
            let h = handles.remove(i);
            handles.insert(0, h);
        }
        Ok(handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "cloudkit:\n  url: http://ck\n  session: s.json\ndatabase:\n  uri: sqlite:b.db\n";

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let text = format!(
            "{MINIMAL}sync:\n  backoff_ms: 5\n  bakoff_max: 9\ncolour: blue\nmatrix:\n  homeserver: h\n  domain: d\n  \
            owner: o\n  registration: r\n  listen: 127.0.0.1:1\n  sync_interval_sec: 5\n"
        );
        let (config, unknown) = Config::parse(&text).unwrap();
        assert_eq!(config.sync.backoff_ms, 5);
        assert_eq!(unknown, vec!["sync.bakoff_max".to_string(), "colour".to_string(), "matrix.sync_interval_sec".to_string()]);
        assert!(Config::parse(MINIMAL).unwrap().1.is_empty());
    }

    #[test]
    fn metrics_have_an_address_of_their_own_and_the_old_switch_names_it() {
        let matrix = |extra: &str| {
            let text = format!("{MINIMAL}matrix:\n  homeserver: h\n  domain: d\n  owner: o\n  registration: r\n  listen: 127.0.0.1:1\n{extra}");
            let (config, unknown) = Config::parse(&text).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
            config.matrix.unwrap()
        };
        let m = matrix("  metrics_listen: 127.0.0.1:9464\n");
        assert_eq!((m.check().is_ok(), m.metrics_listen), (true, Some("127.0.0.1:9464".parse().unwrap())));
        assert!(matrix("  metrics: false\n").check().is_ok() && matrix("").metrics_listen.is_none());
        let old = matrix("  metrics: true\n").check().unwrap_err().to_string();
        assert!(old.contains("metrics_listen:"), "{old}");
        assert!(matrix("  metrics_listen: 127.0.0.1:1\n").check().is_err(), "the appservice's own port");
        assert!(!serde_norway::to_string(&matrix("  metrics: false\n")).unwrap().contains("metrics:"), "the old key is not written back");
    }

    #[test]
    fn contacts_section_reads_every_source_and_resolves_its_paths() {
        let (config, unknown) = Config::parse(MINIMAL).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(config.contacts.address_book, AddressBookSetting::Auto);
        assert!(!serde_norway::to_string(&config).unwrap().contains("contacts"), "the default is not written out");
        let text = format!(
            "{MINIMAL}contacts:\n  address_book: ab/AddressBook\n  vcf: [people.vcf, /abs/more.vcf]\n  carddav:\n    url: https://dav.example\n    \
             username: me\n    password_file: dav.pw\n  refresh_secs: 60\n"
        );
        let (mut config, unknown) = Config::parse(&text).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        config.resolve_paths(Path::new("/etc/b"));
        assert_eq!(config.contacts.address_book, AddressBookSetting::Path("/etc/b/ab/AddressBook".into()));
        assert_eq!(config.contacts.vcf, vec![PathBuf::from("/etc/b/people.vcf"), PathBuf::from("/abs/more.vcf")]);
        assert_eq!(config.contacts.carddav.as_ref().unwrap().password_file, PathBuf::from("/etc/b/dav.pw"));
        assert_eq!(config.contacts.refresh_secs, 60);
        let (off, _) = Config::parse(&format!("{MINIMAL}contacts:\n  address_book: off\n")).unwrap();
        assert_eq!(off.contacts.address_book, AddressBookSetting::Off);
        assert!(serde_norway::to_string(&off).unwrap().contains("address_book: off"));
    }

    #[test]
    fn preferred_handle_goes_first_and_must_be_the_sessions() {
        let (mut config, _) = Config::parse(MINIMAL).unwrap();
        let session = vec!["tel:+1".to_string(), "mailto:a@b".to_string()];
        assert_eq!(config.own_handles(&session).unwrap(), session);
        config.cloudkit.as_mut().unwrap().preferred_handle = Some("mailto:a@b".into());
        assert_eq!(config.own_handles(&session).unwrap(), vec!["mailto:a@b".to_string(), "tel:+1".to_string()]);
        config.cloudkit.as_mut().unwrap().preferred_handle = Some("tel:+9".into());
        assert!(config.own_handles(&session).unwrap_err().to_string().contains("tel:+9"));
    }
}
