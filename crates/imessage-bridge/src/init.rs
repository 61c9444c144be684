//! `init`: writes `config.yaml` and `registration.yaml`.
//!
//! Why it asks: a person sets a bridge up from a shell, often over SSH, and should not need to
//! know eight flags first. On a terminal, unless every required flag (`--homeserver`,
//! `--domain`, `--owner`, `--cloudkit`, `--session`) is given, `init` asks for every value no flag gave, offers a
//! default for each (the existing config's value, else a sensible one), checks each answer
//! before going on (the homeserver answers `/versions`, the owner's server name is the
//! homeserver's), and picks the account's own handle from a numbered list. Every question has a
//! flag, and off a terminal (scripts, CI, the demo) nothing is asked: a value no flag gives is
//! taken from the existing config or is an error naming the flag.
//!
//! Running it again upgrades in place: tokens, secrets and every value the config has are kept,
//! keys this build added are filled with their defaults (no key is lowered: a value present is
//! never replaced by a default), and the files are written whole from the typed config, never
//! patched. `--force` starts over with new tokens. Both files are 0600 (the registration holds
//! the appservice tokens, the config names the session).
//!
//! Prompts are plain lines on stderr read from stdin, not a prompt library: they work the same
//! over SSH, in `script(1)` and on a test's pseudo-terminal, and need no raw terminal mode.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use matrix::registration;

use crate::bridge::{read_registration, APPSERVICE_ID};
use crate::config::{AddressBookSetting, CardDavConfig, CloudKitConfig, Config, ContactsConfig, MatrixConfig, SourceConfig, SourceKind};

const DEFAULT_LISTEN: &str = "127.0.0.1:29333";
const DEFAULT_DATABASE: &str = "sqlite:bridge.db";
const DEFAULT_CLOUDKIT: &str = "https://gateway.icloud.com";
const DEFAULT_SESSION: &str = "session.json";

/// The flags of `init`; each one answers one question.
#[derive(clap::Args)]
pub struct InitArgs {
    /// Homeserver client-server API URL, e.g. http://127.0.0.1:8008
    #[arg(long)]
    homeserver: Option<String>,
    /// The homeserver's server name (the part after `:` in user ids), e.g. example.org
    #[arg(long)]
    domain: Option<String>,
    /// Your Matrix user id; every portal invites it, from-me messages are sent as it.
    #[arg(long)]
    owner: Option<String>,
    /// Database URI: sqlite:PATH or postgres://… (default sqlite:bridge.db)
    #[arg(long)]
    database: Option<String>,
    /// Where the history comes from: cloudkit (default), chat-db (a Mac's Messages database) or
    /// ios-backup (an iPhone backup folder).
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// chat-db: the chat.db file; ios-backup: the backup folder (the one holding Manifest.db).
    #[arg(long)]
    source_path: Option<PathBuf>,
    /// ios-backup: a file (mode 0600) holding the backup password of an encrypted backup.
    #[arg(long)]
    backup_password_file: Option<PathBuf>,
    /// Region (ISO 3166 code, e.g. US, GB) of phone numbers written without a country code.
    #[arg(long)]
    default_region: Option<String>,
    /// Contacts: the address book to read names and photos from: auto (the one that comes with
    /// a local source), off, or an .abcddb/.sqlitedb file or a folder holding one.
    #[arg(long, value_name = "auto|off|PATH")]
    contacts_address_book: Option<String>,
    /// Contacts: a vCard file (.vcf) to read names and photos from; may be given more than once.
    #[arg(long, value_name = "PATH")]
    contacts_vcf: Vec<PathBuf>,
    /// Contacts: a CardDAV server (e.g. https://contacts.icloud.com with an app-specific password).
    #[arg(long, value_name = "URL")]
    contacts_carddav: Option<String>,
    /// Contacts: the CardDAV user name.
    #[arg(long, value_name = "NAME", requires = "contacts_carddav")]
    contacts_carddav_user: Option<String>,
    /// Contacts: a file (mode 0600) holding the CardDAV password.
    #[arg(long, value_name = "FILE", requires = "contacts_carddav")]
    contacts_carddav_password_file: Option<PathBuf>,
    /// CloudKit gateway URL (the simulator's for the demo; default https://gateway.icloud.com).
    #[arg(long)]
    cloudkit: Option<String>,
    /// Session file with the account's tokens and keys.
    #[arg(long)]
    session: Option<PathBuf>,
    /// Which of the session's handles is you (see `list-handles`).
    #[arg(long)]
    preferred_handle: Option<String>,
    /// Folder to write config.yaml and registration.yaml into (default: the folder of -c).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Address the appservice API listens on (default 127.0.0.1:29333).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Start over: new appservice tokens, nothing kept from an existing config.
    #[arg(long)]
    force: bool,
    /// Never ask, even on a terminal.
    #[arg(long)]
    no_prompt: bool,
}

/// Asks on stderr, reads answers from stdin; off a terminal it never asks.
struct Prompter {
    interactive: bool,
    input: std::io::StdinLock<'static>,
}

impl Prompter {
    /// One line of answer; an empty line takes `default`.
    fn line(&mut self, question: &str, default: Option<&str>) -> anyhow::Result<String> {
        loop {
            match default {
                Some(d) if !d.is_empty() => eprint!("{question} [{d}]: "),
                _ => eprint!("{question}: "),
            }
            std::io::stderr().flush()?;
            let mut answer = String::new();
            if self.input.read_line(&mut answer)? == 0 {
                bail!("no answer to {question:?} (input closed); pass its flag instead");
            }
            let answer = answer.trim();
            match (answer.is_empty(), default) {
                (false, _) => return Ok(answer.to_string()),
                (true, Some(d)) => return Ok(d.to_string()),
                (true, None) => eprintln!("  an answer is needed"),
            }
        }
    }

    fn yes(&mut self, question: &str) -> anyhow::Result<bool> {
        Ok(matches!(self.line(&format!("{question} [y/N]"), Some("n"))?.to_lowercase().as_str(), "y" | "yes"))
    }

    /// The value of one setting: its flag, else (on a terminal) the answer to `question` checked
    /// by `check` (asked again until it passes), else the existing or default value.
    async fn value<F, Fut>(&mut self, flag: Option<String>, name: &str, question: &str, default: Option<String>, check: F) -> anyhow::Result<String>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<String>>,
    {
        if let Some(v) = flag {
            return check(v).await.with_context(|| format!("--{name}"));
        }
        if !self.interactive {
            let v = default.with_context(|| format!("init needs --{name} (or run it on a terminal to be asked)"))?;
            return check(v).await.with_context(|| format!("--{name}"));
        }
        loop {
            let answer = self.line(question, default.as_deref())?;
            match check(answer).await {
                Ok(v) => return Ok(v),
                Err(e) => eprintln!("  ✗ {e:#}"),
            }
        }
    }
}

/// What an existing config.yaml and registration.yaml hold (kept by an upgrade).
struct Existing {
    config: Option<Config>,
    tokens: Option<(String, String)>,
}

fn read_existing(config_path: &Path, reg_path: &Path, force: bool) -> anyhow::Result<Existing> {
    if force || !config_path.exists() {
        return Ok(Existing { config: None, tokens: None });
    }
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let (config, unknown) = Config::parse(&text)
        .with_context(|| format!("{} is not a config this build can upgrade; fix it or pass --force to start over", config_path.display()))?;
    for key in unknown {
        eprintln!("note: {}: unknown key `{key}` is dropped", config_path.display());
    }
    let tokens = match reg_path.exists() {
        true => {
            let reg = read_registration(reg_path)?;
            Some((reg.as_token, reg.hs_token))
        }
        false => None,
    };
    Ok(Existing { config: Some(config), tokens })
}

pub async fn init(cli_config: &Path, args: InitArgs) -> anyhow::Result<()> {
    let config_path = args.out.as_ref().map_or_else(|| cli_config.to_path_buf(), |o| o.join("config.yaml"));
    let dir = config_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let reg_name = PathBuf::from("registration.yaml");
    let existing = read_existing(&config_path, &dir.join(&reg_name), args.force)?;
    let old = existing.config.as_ref();
    let old_m = old.and_then(|c| c.matrix.as_ref());
    // Asked only on a terminal, and only when a required value has no flag: a script that passes
    // them all (the demo) is never stopped by a question, even when run from a terminal.
    let source_flags = match args.source {
        Some(SourceKind::Cloudkit) | None => args.cloudkit.is_some() && args.session.is_some(),
        Some(_) => args.source_path.is_some(),
    };
    let all_flags = args.homeserver.is_some() && args.domain.is_some() && args.owner.is_some() && source_flags;
    let interactive = !args.no_prompt && !all_flags && std::io::stdin().is_terminal();
    let mut p = Prompter { interactive, input: std::io::stdin().lock() };
    if interactive {
        eprintln!("Setting up imessage-bridge in {} (press Enter to take the value in brackets).", dir.display());
    }

    let homeserver_default = old_m.map(|m| m.homeserver.clone()).or(interactive.then(|| "http://127.0.0.1:8008".into()));
    let homeserver = match (args.homeserver.clone(), interactive) {
        (None, true) => ask_homeserver(&mut p, homeserver_default).await?,
        (flag, _) => p.value(flag, "homeserver", "Homeserver URL", homeserver_default, |v| async { check_url(v) }).await?,
    };
    let domain_default = old_m.map(|m| m.domain.clone()).or_else(|| interactive.then(|| host_of(&homeserver)));
    let domain = p.value(args.domain.clone(), "domain", "Server name (the part after ':' in user ids)", domain_default, |v| async { check_domain(v) }).await?;
    let owner_default =
        old_m.map(|m| m.owner.clone()).or_else(|| interactive.then(|| format!("@{}:{domain}", std::env::var("USER").unwrap_or_else(|_| "you".into()))));
    let owner = p.value(args.owner.clone(), "owner", "Your Matrix user id", owner_default, |v| async { check_owner(v, &domain) }).await?;
    let database = p
        .value(
            args.database.clone(),
            "database",
            "Database (sqlite:PATH or postgres://…)",
            Some(old.map_or(DEFAULT_DATABASE.into(), |c| c.database.uri.clone())),
            |v| async { check_database(v) },
        )
        .await?;
    let source_default = old.map(|c| c.source.kind).or(interactive.then_some(SourceKind::Cloudkit)).map(|k| k.as_str().to_string());
    let kind = p
        .value(
            args.source.map(|k| k.as_str().to_string()),
            "source",
            "Source (cloudkit, chat-db or ios-backup)",
            source_default.or(Some("cloudkit".into())),
            |v| async move { <SourceKind as clap::ValueEnum>::from_str(&v, true).map(|k| k.as_str().to_string()).map_err(|e| anyhow::anyhow!(e)) },
        )
        .await?;
    let kind = <SourceKind as clap::ValueEnum>::from_str(&kind, true).map_err(|e| anyhow::anyhow!(e))?;
    let mut source = old.map(|c| c.source.clone()).unwrap_or_default();
    let cloudkit = match kind {
        SourceKind::Cloudkit => Some(ask_cloudkit(&mut p, &args, old, &dir, interactive).await?),
        _ => {
            ask_local(&mut p, &args, kind, &mut source, &dir, interactive).await?;
            old.and_then(|c| c.cloudkit.clone())
        }
    };
    source.kind = kind;
    let listen = match (args.listen, old_m) {
        (Some(l), _) => l,
        (None, Some(m)) => m.listen,
        (None, None) => DEFAULT_LISTEN.parse()?,
    };

    let mut config = existing.config.clone().unwrap_or_else(Config::placeholder);
    config.source = source;
    config.cloudkit = cloudkit;
    ask_contacts(&mut p, &args, &mut config.contacts)?;
    config.database.uri = database;
    let m = config.matrix.get_or_insert_with(|| MatrixConfig {
        homeserver: String::new(),
        domain: String::new(),
        owner: String::new(),
        registration: reg_name.clone(),
        listen,
        concurrency: crate::config::DEFAULT_DELIVERY_CONCURRENCY,
        sync_interval_secs: crate::config::DEFAULT_SYNC_INTERVAL_SECS,
        room_version: None,
        metrics_listen: None,
        metrics: None,
    });
    (m.homeserver, m.domain, m.owner, m.listen) = (homeserver, domain, owner, listen);
    let reg_path = if m.registration.is_relative() { dir.join(&m.registration) } else { m.registration.clone() };

    let kept_tokens = existing.tokens.is_some();
    let (as_token, hs_token) = existing.tokens.unwrap_or_else(|| (registration::random_token(), registration::random_token()));
    let reg = registration::build(APPSERVICE_ID, &format!("http://{}", m.listen), &m.domain, Some(&m.owner), as_token, hs_token);
    cloudkit::session::write_private(&reg_path, serde_norway::to_string(&reg)?.as_bytes()).with_context(|| format!("writing {}", reg_path.display()))?;
    cloudkit::session::write_private(&config_path, serde_norway::to_string(&config)?.as_bytes())
        .with_context(|| format!("writing {}", config_path.display()))?;
    let verb = if old.is_some() { "upgraded" } else { "wrote" };
    let tokens = if kept_tokens { " (appservice tokens kept)" } else { "" };
    eprintln!("{verb} {} and {}{tokens}", config_path.display(), reg_path.display());
    let absolute = std::path::absolute(&reg_path).unwrap_or(reg_path);
    eprintln!(
        "add {} to the homeserver's app_service_config_files and restart it; then `imessage-bridge -c {} doctor`",
        absolute.display(),
        config_path.display()
    );
    Ok(())
}

/// Asks for the homeserver until one answers `/versions`, or the person takes one that does not
/// (it may not be running yet).
async fn ask_homeserver(p: &mut Prompter, default: Option<String>) -> anyhow::Result<String> {
    loop {
        let url = match check_url(p.line("Homeserver URL", default.as_deref())?) {
            Ok(url) => url,
            Err(e) => {
                eprintln!("  ✗ {e}");
                continue;
            }
        };
        match crate::doctor::homeserver_versions(&url).await {
            Ok(v) => {
                eprintln!("  ✓ {url} answers ({})", v.describe());
                return Ok(url);
            }
            Err(e) => {
                eprintln!("  ✗ {e:#}");
                if p.yes("Use it anyway?")? {
                    return Ok(url);
                }
            }
        }
    }
}

fn check_url(v: String) -> anyhow::Result<String> {
    let v = v.trim().trim_end_matches('/').to_string();
    match v.strip_prefix("http://").or_else(|| v.strip_prefix("https://")) {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => Ok(v),
        _ => bail!("{v:?} is not an http:// or https:// URL"),
    }
}

/// The host of a URL, without a leading `matrix.` (a common homeserver host for `example.org`).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or(rest);
    host.strip_prefix("matrix.").unwrap_or(host).to_string()
}

fn check_domain(v: String) -> anyhow::Result<String> {
    let v = v.trim().to_string();
    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok {
        bail!("{v:?} is not a server name (like example.org or localhost:8448)");
    }
    Ok(v)
}

fn check_owner(v: String, domain: &str) -> anyhow::Result<String> {
    let v = v.trim().to_string();
    let id = ruma::UserId::parse(&v).with_context(|| format!("{v:?} is not a Matrix user id (@user:{domain})"))?;
    if id.server_name().as_str() != domain {
        bail!("{v} is on {}, not on this homeserver's server name {domain}", id.server_name());
    }
    Ok(v)
}

fn check_database(v: String) -> anyhow::Result<String> {
    let v = v.trim().to_string();
    let ok = v.strip_prefix("sqlite:").is_some_and(|p| !p.is_empty()) || v.starts_with("postgres://") || v.starts_with("postgresql://");
    if !ok {
        bail!("{v:?} is neither sqlite:PATH nor postgres://USER@HOST/DB");
    }
    Ok(v)
}

fn check_handle(h: String, handles: Option<&[String]>) -> anyhow::Result<String> {
    match handles {
        Some(hs) if !hs.contains(&h) => bail!("--preferred-handle {h:?} is not one of the session's handles ({})", hs.join(", ")),
        _ => Ok(h),
    }
}

/// The numbered handle picker (free text when there is no session to list them from). An
/// empty answer keeps the current choice, or takes the first handle.
fn pick_handle(p: &mut Prompter, handles: Option<&[String]>, current: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(handles) = handles.filter(|h| !h.is_empty()) else {
        let answer = p.line("Your own handle (tel:+… or mailto:…; empty for none)", Some(current.unwrap_or("")))?;
        return Ok(Some(answer).filter(|a| !a.is_empty()));
    };
    eprintln!("Which of the account's handles is you?");
    for (i, h) in handles.iter().enumerate() {
        let mark = if Some(h.as_str()) == current { "  (current)" } else { "" };
        eprintln!("  {}) {h}{mark}", i + 1);
    }
    let default = current.and_then(|c| handles.iter().position(|h| h == c)).unwrap_or(0) + 1;
    loop {
        let answer = p.line("Handle number", Some(&default.to_string()))?;
        match answer.parse::<usize>() {
            Ok(n) if (1..=handles.len()).contains(&n) => return Ok(Some(handles[n - 1].clone())),
            _ => eprintln!("  ✗ answer a number from 1 to {}", handles.len()),
        }
    }
}

/// The CloudKit questions: gateway URL, session file, which handle is you.
async fn ask_cloudkit(p: &mut Prompter, args: &InitArgs, old: Option<&Config>, dir: &Path, interactive: bool) -> anyhow::Result<CloudKitConfig> {
    let old_ck = old.and_then(|c| c.cloudkit.as_ref());
    let url = p
        .value(args.cloudkit.clone(), "cloudkit", "CloudKit URL", old_ck.map(|c| c.url.clone()).or(interactive.then(|| DEFAULT_CLOUDKIT.into())), |v| async {
            check_url(v)
        })
        .await?;
    // A session path as written stays as written (relative to the config); a new one is made
    // absolute from here, where the person typed it.
    let old_session = old_ck.map(|c| c.session.display().to_string());
    let session_arg = args.session.as_ref().map(|s| s.display().to_string());
    let session =
        p.value(session_arg, "session", "Session file", old_session.clone().or(interactive.then(|| DEFAULT_SESSION.into())), |v| async { Ok(v) }).await?;
    let session_path = if Some(&session) == old_session.as_ref() && Path::new(&session).is_relative() {
        dir.join(&session)
    } else {
        std::path::absolute(&session).unwrap_or_else(|_| PathBuf::from(&session))
    };
    let session_written = if Some(&session) == old_session.as_ref() { PathBuf::from(&session) } else { session_path.clone() };
    let handles = match cloudkit::session_source(&session_path).session().await {
        Ok(s) => Some(s.handles),
        Err(e) => {
            eprintln!("note: the session {} cannot be read yet ({e}); the handle can be picked by running init again", session_path.display());
            None
        }
    };
    let current_handle = args.preferred_handle.clone().or_else(|| old_ck.and_then(|c| c.preferred_handle.clone()));
    let preferred_handle = match (args.preferred_handle.clone(), interactive) {
        (Some(h), _) => Some(check_handle(h, handles.as_deref())?),
        (None, true) => pick_handle(p, handles.as_deref(), current_handle.as_deref())?,
        (None, false) => current_handle,
    };
    Ok(CloudKitConfig { url, session: session_written, preferred_handle, limits: old_ck.map(|c| c.limits).unwrap_or_default() })
}

/// The questions of a local source: where it is (checked by opening it), its password file
/// (for a backup), the default region, which handle is you.
/// The contact sources: flags win; on a terminal each is asked with the current value offered.
fn ask_contacts(p: &mut Prompter, args: &InitArgs, contacts: &mut ContactsConfig) -> anyhow::Result<()> {
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(book) = &args.contacts_address_book {
        contacts.address_book = match AddressBookSetting::from(book.clone()) {
            AddressBookSetting::Path(path) => AddressBookSetting::Path(absolute(&path)),
            other => other,
        };
    } else if p.interactive {
        let current = String::from(contacts.address_book.clone());
        contacts.address_book = AddressBookSetting::from(p.line("Contacts: address book (auto, off, or an .abcddb/.sqlitedb file or folder)", Some(&current))?);
    }
    if !args.contacts_vcf.is_empty() {
        contacts.vcf = args.contacts_vcf.iter().map(|f| absolute(f)).collect();
    } else if p.interactive {
        let current = contacts.vcf.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
        let answer = p.line("Contacts: vCard files, comma-separated (- for none)", Some(if current.is_empty() { "-" } else { &current }))?;
        contacts.vcf = answer.split(',').map(str::trim).filter(|f| !f.is_empty() && *f != "-").map(|f| absolute(Path::new(f))).collect();
    }
    let url = match (&args.contacts_carddav, p.interactive) {
        (Some(url), _) => Some(url.clone()),
        (None, true) => {
            let current = contacts.carddav.as_ref().map_or("-".to_string(), |c| c.url.clone());
            Some(p.line("Contacts: CardDAV server URL (- for none)", Some(&current))?).filter(|u| u != "-")
        }
        (None, false) => return Ok(()),
    };
    let Some(url) = url else {
        contacts.carddav = None;
        return Ok(());
    };
    let url = check_url(url).context("--contacts-carddav")?;
    let old = contacts.carddav.take();
    let username = match (&args.contacts_carddav_user, &old) {
        (Some(user), _) => user.clone(),
        (None, old) if p.interactive => p.line("CardDAV user name", old.as_ref().map(|c| c.username.as_str()))?,
        (None, Some(old)) => old.username.clone(),
        (None, None) => bail!("--contacts-carddav needs --contacts-carddav-user"),
    };
    let password_file = match (&args.contacts_carddav_password_file, &old) {
        (Some(file), _) => absolute(file),
        (None, old) if p.interactive => {
            let current = old.as_ref().map(|c| c.password_file.display().to_string());
            absolute(Path::new(&p.line("File holding the CardDAV password (mode 0600)", current.as_deref())?))
        }
        (None, Some(old)) => old.password_file.clone(),
        (None, None) => bail!("--contacts-carddav needs --contacts-carddav-password-file"),
    };
    contacts.carddav = Some(CardDavConfig { url, username, password_file });
    Ok(())
}

async fn ask_local(p: &mut Prompter, args: &InitArgs, kind: SourceKind, source: &mut SourceConfig, dir: &Path, interactive: bool) -> anyhow::Result<()> {
    let what = if kind == SourceKind::ChatDb { "Messages database (chat.db)" } else { "iPhone backup folder" };
    let old_path = source.path.as_ref().map(|p| p.display().to_string());
    let path = p.value(args.source_path.as_ref().map(|s| s.display().to_string()), "source-path", what, old_path, |v| async { Ok(v) }).await?;
    let path = if Path::new(&path).is_relative() && source.path.as_ref().map(|p| p.display().to_string()) != Some(path.clone()) {
        std::path::absolute(&path).unwrap_or_else(|_| PathBuf::from(&path))
    } else {
        PathBuf::from(&path)
    };
    source.path = Some(path);
    if kind == SourceKind::IosBackup {
        if let Some(f) = &args.backup_password_file {
            source.backup_password_file = Some(std::path::absolute(f).unwrap_or_else(|_| f.clone()));
        }
    }
    if let Some(r) = &args.default_region {
        source.default_region = Some(r.to_uppercase());
    }
    // Checked by opening it as `run` will (paths relative to the config's folder).
    let mut probe = Config { source: source.clone(), ..Config::placeholder() };
    probe.source.kind = kind;
    if let Some(p) = probe.source.path.as_mut().filter(|p| p.is_relative()) {
        *p = dir.join(&*p);
    }
    let handles = match crate::source::own_handles(&probe).await {
        Ok(h) => Some(h),
        Err(e) if interactive => {
            eprintln!("  ✗ {e:#}");
            None
        }
        Err(e) => return Err(e.context("--source-path")),
    };
    let current = args.preferred_handle.clone().or_else(|| source.own_handle.clone());
    source.own_handle = match (args.preferred_handle.clone(), interactive) {
        (Some(h), _) => Some(h),
        (None, true) => pick_handle(p, handles.as_deref(), current.as_deref())?,
        (None, false) => current,
    };
    Ok(())
}
