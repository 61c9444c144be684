//! `doctor`: checks each piece of a setup in the order a person would fix them, one line each on
//! stdout (✓ or ✗, what was found, and for a ✗ what to do), and fails (exit 1) on any ✗.
//!
//! Why in this order: each piece needs the ones before it (the store and the session need a
//! config, CloudKit needs the session, the appservice ping needs the homeserver), so the first
//! ✗ is the one to fix first; a check whose prerequisite failed says so (`-`) instead of adding
//! a second, confusing ✗.
//!
//! Safe beside `run`: the store is only read (`store::schema_state`), never migrated. For the
//! ping the homeserver calls the registration's URL back; if that port is free `doctor` answers
//! on it for the moment of the ping, if it is taken (by `run`) the running bridge answers, and
//! the line says which.

use crate::terminal::terminal_safe;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::bridge::read_registration;
use crate::config::{Config, SourceKind};

const TIMEOUT: Duration = Duration::from_secs(10);

/// What a homeserver's `/versions` (and its `Server` header) say.
pub struct Versions {
    pub spec: Vec<String>,
    pub server: Option<String>,
}

impl Versions {
    pub fn describe(&self) -> String {
        let spec = match (self.spec.first(), self.spec.last()) {
            (Some(a), Some(b)) if a != b => format!("spec {a} to {b}"),
            (Some(a), _) => format!("spec {a}"),
            _ => "no spec versions listed".to_string(),
        };
        match &self.server {
            Some(s) => format!("{s}, {spec}"),
            None => spec,
        }
    }
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(TIMEOUT).connect_timeout(TIMEOUT).build()?)
}

/// `GET /_matrix/client/versions`: does a Matrix homeserver answer at `url`, and which?
pub async fn homeserver_versions(url: &str) -> anyhow::Result<Versions> {
    let endpoint = format!("{}/_matrix/client/versions", url.trim_end_matches('/'));
    let resp = http()?.get(&endpoint).send().await.map_err(|e| anyhow::anyhow!("{url} does not answer: {}", error_chain(&e)))?;
    let status = resp.status();
    let server = resp.headers().get(reqwest::header::SERVER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = resp.json().await.map_err(|e| anyhow::anyhow!("{endpoint} answered {status} but not JSON: {e}"))?;
    let Some(spec) = body["versions"].as_array() else {
        anyhow::bail!("{endpoint} answered {status} without a `versions` list: not a Matrix homeserver?");
    };
    Ok(Versions { spec: spec.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(), server })
}

/// reqwest's error with its causes (its Display alone says only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// The lines printed so far; `failed` once any is a ✗.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    // What a check found is shown escaped: it holds names, URLs and servers' error texts.
    fn ok(&mut self, check: &str, detail: impl std::fmt::Display) {
        println!("✓ {check:<12} {}", terminal_safe(&detail.to_string()));
    }
    fn fail(&mut self, check: &str, detail: impl std::fmt::Display, fix: impl std::fmt::Display) {
        self.failed = true;
        println!("✗ {check:<12} {} — fix: {}", terminal_safe(&detail.to_string()), terminal_safe(&fix.to_string()));
    }
    fn skip(&mut self, check: &str, why: &str) {
        println!("- {check:<12} not checked: {}", terminal_safe(why));
    }
}

/// Runs every check; true if none failed.
pub async fn doctor(config_path: &Path) -> bool {
    let mut r = Report::default();
    let config = match Config::load_checked(config_path) {
        Ok((config, unknown)) if unknown.is_empty() => {
            r.ok("config", format!("{} parses", config_path.display()));
            config
        }
        Ok((config, unknown)) => {
            let keys: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
            r.fail(
                "config",
                format!("{}: unknown key {}", config_path.display(), keys.join(", ")),
                "remove or correct it (the README's Config section lists every key)",
            );
            config
        }
        Err(e) => {
            r.fail("config", format!("{e:#}"), "run `imessage-bridge init` (it upgrades an existing config in place)");
            return false;
        }
    };
    check_store(&mut r, &config.database.uri).await;
    if config.source.kind == SourceKind::Cloudkit {
        let session = check_session(&mut r, &config).await;
        match &session {
            Some(s) => check_cloudkit(&mut r, &config, s.clone()).await,
            None => r.skip("cloudkit", "needs a readable session"),
        }
    } else {
        check_local_source(&mut r, &config).await;
    }
    check_contacts(&mut r, &config).await;
    let Some(m) = config.matrix.as_ref() else {
        r.fail("homeserver", "the config has no `matrix:` section", "run `imessage-bridge init`");
        return false;
    };
    let hs_up = match homeserver_versions(&m.homeserver).await {
        Ok(v) => {
            r.ok("homeserver", format!("{} answers: {}", m.homeserver, v.describe()));
            true
        }
        Err(e) => {
            r.fail("homeserver", format!("{e:#}"), "start the homeserver, or correct matrix.homeserver");
            false
        }
    };
    let reg = match read_registration(&m.registration) {
        Ok(reg) => reg,
        Err(e) => {
            r.fail("registration", format!("{e:#}"), "run `imessage-bridge init` to write it");
            r.skip("owner", "needs the registration's token");
            r.skip("appservice", "needs the registration");
            return false;
        }
    };
    let port_line = if !hs_up {
        r.skip("registration", "the homeserver does not answer");
        r.skip("owner", "the homeserver does not answer");
        Some(("skip", "the homeserver does not answer".to_string(), String::new()))
    } else {
        let ping = check_registration(&mut r, m, &reg).await;
        check_owner(&mut r, &m.homeserver, &reg.as_token, &m.owner).await;
        ping
    };
    match port_line {
        None => {}
        Some(("ok", detail, _)) => r.ok("appservice", detail),
        Some(("fail", detail, fix)) => r.fail("appservice", detail, fix),
        Some((_, why, _)) => r.skip("appservice", &why),
    }
    !r.failed
}

async fn check_store(r: &mut Report, real_uri: &str) {
    let uri = crate::terminal::redacted_uri(real_uri);
    match store::schema_state(real_uri).await {
        Ok(s) if s.is_current() => r.ok("store", format!("{uri} reachable, schema version {} (current)", s.latest)),
        Ok(store::SchemaState { applied: None, .. }) => {
            r.fail("store", format!("{uri} has no schema (not created by the bridge)"), "run `imessage-bridge sync`, which creates and migrates it")
        }
        Ok(store::SchemaState { applied: Some(v), latest }) if v < latest => r.fail(
            "store",
            format!("{uri} is at schema version {v}, this build needs {latest} (not migrated)"),
            "run `imessage-bridge status` (any command that opens the store migrates it)",
        ),
        Ok(s) => r.fail("store", format!("{uri} is at schema version {:?}, newer than this build's {}", s.applied, s.latest), "upgrade imessage-bridge"),
        Err(store::StoreError::NotFound(file)) => r.fail("store", format!("{file} does not exist"), "run `imessage-bridge sync`, which creates it"),
        Err(e) => r.fail("store", format!("{uri}: {e}"), "check database.uri (is the PostgreSQL server running and the user allowed?)"),
    }
}

/// A chat.db or backup: readable, schema recognised, counts, who the owner is.
async fn check_local_source(r: &mut Report, config: &Config) {
    let local = match crate::source::open_local(config).await {
        Ok(l) => l,
        Err(e) => {
            let fix = match config.source.kind {
                SourceKind::ChatDb => "point source.path at chat.db (on a Mac the bridge needs Full Disk Access to read ~/Library/Messages)",
                _ => "point source.path at the backup folder (the one with Manifest.db) and check the password file",
            };
            return r.fail("source", format!("{e:#}"), fix);
        }
    };
    let counts = local.db.counts().await;
    let handles = local.db.own_handles().await;
    let schema = local.db.schema().describe();
    local.db.close().await;
    match (counts, handles) {
        (Ok(c), Ok(h)) => {
            let me = config.source.own_handle.clone().or_else(|| h.first().cloned()).unwrap_or_else(|| "unknown (set source.own_handle)".into());
            let about = local.about.as_deref().map(|a| format!("{a}; ")).unwrap_or_default();
            r.ok(
                "source",
                format!(
                    "{} ({}): {about}{} chats, {} messages, {} attachments; {schema}; you are {me}",
                    local.origin,
                    config.source.kind.as_str(),
                    c.chats,
                    c.messages,
                    c.attachments
                ),
            )
        }
        (Err(e), _) | (_, Err(e)) => r.fail("source", format!("{}: {e}", local.origin), "the file may be damaged; copy it again"),
    }
}

/// Each contact source: read, how many cards, and (CardDAV) that the login works.
async fn check_contacts(r: &mut Report, config: &Config) {
    let own = crate::source::own_handles(config).await.unwrap_or_default();
    let contacts = crate::contacts::Contacts::new(config, own);
    // Contacts are optional: without a source there is nothing to check (ghosts are named by
    // their handles), and no line.
    if !contacts.configured() {
        return;
    }
    let loaded = contacts.load().await;
    for source in &loaded.reports {
        match &source.error {
            None => r.ok("contacts", format!("{}: {} card(s), {} not usable", source.source, source.cards, source.problems)),
            Some(e) => {
                r.fail("contacts", format!("{}: {e}", source.source), "check the contacts section (a path, or the CardDAV url, username and password_file)")
            }
        }
    }
    let stats = loaded.book.stats();
    r.ok(
        "contacts",
        format!(
            "{} card(s) in use for {} handle(s); {} handle(s) on two cards, {} number(s) not understood",
            stats.cards, stats.handles, stats.conflicts, stats.unparsed_numbers
        ),
    );
}

async fn check_session(r: &mut Report, config: &Config) -> Option<cloudkit::Session> {
    let Ok(ck) = config.cloudkit() else {
        r.fail("session", "the config has no `cloudkit:` section", "run `imessage-bridge init`");
        return None;
    };
    let path = &ck.session;
    let session = match cloudkit::session_source(path).session().await {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                "session",
                format!("cannot read {}: {e}", path.display()),
                "point cloudkit.session at the account's session file (the simulator writes one with `serve --write-session`)",
            );
            return None;
        }
    };
    let missing: Vec<&str> = [
        ("tokens.cloudkit", session.tokens.cloudkit.is_empty()),
        ("cloudkit_user_id", session.cloudkit_user_id.is_empty()),
        ("service_identity", session.service_identity.is_empty()),
        ("device_id", session.device_id.is_empty()),
        ("handles", session.handles.is_empty()),
    ]
    .into_iter()
    .filter_map(|(k, empty)| empty.then_some(k))
    .collect();
    if !missing.is_empty() {
        r.fail("session", format!("{} lacks {}", path.display(), missing.join(", ")), "write the session again from the account");
        return None;
    }
    match config.own_handles(&session.handles) {
        Ok(handles) => r.ok("session", format!("{}: keys present, {} handle(s), you are {}", path.display(), handles.len(), handles[0])),
        Err(e) => r.fail("session", format!("{e:#}"), "pick one with `imessage-bridge init` (or correct cloudkit.preferred_handle)"),
    }
    Some(session)
}

async fn check_cloudkit(r: &mut Report, config: &Config, session: cloudkit::Session) {
    let Ok(ck) = config.cloudkit() else { return };
    let url = &ck.url;
    let client = match cloudkit::Client::with_limits(url, session, ck.limits) {
        Ok(c) => c,
        Err(e) => return r.fail("cloudkit", format!("{url}: {e}"), "correct cloudkit.url"),
    };
    let asked = client.server_summary(cloudkit::records::MESSAGE_ZONE, cloudkit::records::MESSAGE_RECORD_TYPE);
    match tokio::time::timeout(TIMEOUT, asked).await {
        Ok(Ok(summary)) => {
            let count = summary.and_then(|s| s.first().copied()).map_or("no count".to_string(), |n| format!("{n} messages on the server"));
            r.ok("cloudkit", format!("{url} answers ({count})"))
        }
        Ok(Err(e)) => r.fail("cloudkit", format!("{url}: {e}"), "check cloudkit.url and the network; refused requests mean the session's tokens expired"),
        Err(_) => r.fail("cloudkit", format!("{url}: no answer in {}s", TIMEOUT.as_secs()), "check cloudkit.url and the network"),
    }
}

/// Pings the appservice through the homeserver. Prints the registration line and returns the
/// appservice-port line (kind, detail, fix) for later: the port is checked by the same ping.
async fn check_registration(
    r: &mut Report,
    m: &crate::config::MatrixConfig,
    reg: &ruma::api::appservice::Registration,
) -> Option<(&'static str, String, String)> {
    let url = format!("http://{}", m.listen);
    if reg.url.as_deref() != Some(url.as_str()) {
        r.fail(
            "registration",
            format!("its url is {:?} but matrix.listen is {}", reg.url, m.listen),
            "run `imessage-bridge init` (it keeps the tokens) and restart the homeserver",
        );
    }
    // Answer the homeserver's call ourselves if nobody else is on the port (`run` would be).
    let state = matrix::appservice::AppserviceState::new(&reg.hs_token, &m.domain);
    let (answerer, listener) = match matrix::appservice::serve(state, m.listen).await {
        Ok((_, task)) => ("doctor", Some(task)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => ("the process on that port (a running bridge?)", None),
        Err(e) => return Some(("fail", format!("cannot listen on {}: {e}", m.listen), "correct matrix.listen (an address of this machine)".into())),
    };
    let ping = ping(&m.homeserver, &reg.as_token, &reg.id).await;
    if let Some(task) = listener {
        task.abort();
    }
    let (status, body, ms) = match ping {
        Ok(p) => p,
        Err(e) => {
            r.fail("registration", format!("appservice ping failed: {e:#}"), "check that the homeserver is reachable");
            return None;
        }
    };
    let errcode = body["errcode"].as_str().unwrap_or("");
    let error = body["error"].as_str().unwrap_or("");
    let add_it = "add registration.yaml to the homeserver's app_service_config_files and restart it";
    match (status, errcode) {
        (200, _) => {
            r.ok("registration", format!("the homeserver knows appservice `{}` and accepts its as_token", reg.id));
            Some(("ok", format!("{url} reached from the homeserver, ping answered by {answerer} ({ms} ms)"), String::new()))
        }
        (401 | 403, _) => {
            r.fail("registration", format!("the homeserver refuses the registration's as_token ({status} {errcode} {error})"), add_it);
            Some(("skip", "needs a registration the homeserver accepts".into(), String::new()))
        }
        (400 | 404, _) => {
            r.fail("registration", format!("the homeserver has no appservice `{}` for this token ({status} {errcode} {error})", reg.id), add_it);
            Some(("skip", "needs a registration the homeserver accepts".into(), String::new()))
        }
        (_, "M_BAD_STATUS") => {
            r.fail(
                "registration",
                format!("the appservice at {url} refused the homeserver's call ({error})"),
                "the homeserver has an old copy of registration.yaml: restart it",
            );
            Some(("ok", format!("{url} reached from the homeserver (answered by {answerer})"), String::new()))
        }
        _ => {
            r.ok("registration", format!("the homeserver accepts the as_token of appservice `{}`", reg.id));
            let fix = format!(
                "the homeserver must reach the registration's url {url}: listen on an address it can reach (matrix.listen, then `init`) and free the port"
            );
            Some(("fail", format!("the homeserver cannot reach {url}: {status} {errcode} {error}"), fix))
        }
    }
}

/// `POST /_matrix/client/v1/appservice/{id}/ping`, once: (status, body, duration_ms).
async fn ping(homeserver: &str, as_token: &str, id: &str) -> anyhow::Result<(u16, Value, u64)> {
    let url = format!("{}/_matrix/client/v1/appservice/{}/ping", homeserver.trim_end_matches('/'), urlencode(id));
    let body = serde_json::json!({ "transaction_id": format!("imb-doctor-{}", std::process::id()) });
    let resp = http()?.post(&url).bearer_auth(as_token).json(&body).send().await.map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let ms = body["duration_ms"].as_u64().unwrap_or(0);
    Ok((status, body, ms))
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn check_owner(r: &mut Report, homeserver: &str, as_token: &str, owner: &str) {
    let url = format!("{}/_matrix/client/v3/profile/{}", homeserver.trim_end_matches('/'), urlencode(owner));
    let resp = match http() {
        Ok(c) => c.get(&url).bearer_auth(as_token).send().await,
        Err(e) => return r.fail("owner", format!("{e:#}"), "-"),
    };
    match resp {
        Ok(resp) if resp.status().is_success() => r.ok("owner", format!("{owner} exists")),
        Ok(resp) if resp.status().as_u16() == 404 => {
            r.fail("owner", format!("{owner} does not exist on the homeserver"), "register that user (e.g. register_new_matrix_user) or correct matrix.owner")
        }
        Ok(resp) => {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            r.fail(
                "owner",
                format!("profile lookup of {owner} answered {status} {}", body["errcode"].as_str().unwrap_or("")),
                "check matrix.owner and the registration",
            )
        }
        Err(e) => r.fail("owner", format!("profile lookup of {owner} failed: {}", error_chain(&e)), "check that the homeserver is reachable"),
    }
}
