//! The Matrix-facing commands: `init`, `deliver`, `run`, `verify`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use matrix::delivery::{DeliveryConfig, Deliverer};
use matrix::{appservice, registration, HomeserverClient};
use ruma::api::appservice::Registration;

use crate::config::{CloudKitConfig, Config, DatabaseConfig, MatrixConfig, SyncConfig};

pub const APPSERVICE_ID: &str = "imessage";

/// Arguments of `init`.
pub struct InitArgs {
    pub homeserver: String,
    pub domain: String,
    pub owner: String,
    pub cloudkit: String,
    pub session: PathBuf,
    pub database: String,
    pub out: PathBuf,
    pub listen: std::net::SocketAddr,
    pub force: bool,
}

pub fn init(args: InitArgs) -> anyhow::Result<()> {
    ruma::UserId::parse(&args.owner).with_context(|| format!("--owner {:?} is not a Matrix user id (@user:domain)", args.owner))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let config_path = args.out.join("config.yaml");
    let reg_path = args.out.join("registration.yaml");
    for p in [&config_path, &reg_path] {
        if p.exists() && !args.force {
            bail!("{} exists; pass --force to overwrite (tokens will change)", p.display());
        }
    }
    let reg = registration::build(
        APPSERVICE_ID,
        &format!("http://{}", args.listen),
        &args.domain,
        Some(&args.owner),
        registration::random_token(),
        registration::random_token(),
    );
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let config = Config {
        cloudkit: CloudKitConfig { url: args.cloudkit, session: absolute(&args.session) },
        database: DatabaseConfig { uri: args.database },
        sync: SyncConfig::default(),
        attachments: Default::default(),
        matrix: Some(MatrixConfig {
            homeserver: args.homeserver,
            domain: args.domain,
            owner: args.owner,
            registration: PathBuf::from("registration.yaml"),
            listen: args.listen,
            concurrency: 4,
            sync_interval_secs: 60,
            room_version: None,
        }),
    };
    // Both hold secrets (the appservice tokens; the config names the session): owner only.
    cloudkit::session::write_private(&reg_path, serde_yaml::to_string(&reg)?.as_bytes())
        .with_context(|| format!("writing {}", reg_path.display()))?;
    cloudkit::session::write_private(&config_path, serde_yaml::to_string(&config)?.as_bytes())
        .with_context(|| format!("writing {}", config_path.display()))?;
    eprintln!("wrote {} and {}", config_path.display(), reg_path.display());
    eprintln!("add {} to the homeserver's app_service_config_files and restart it", absolute(&reg_path).display());
    Ok(())
}

/// Everything a Matrix command needs: registration, homeserver client, deliverer, and the
/// appservice API listening (the homeserver's ping needs it).
pub struct Bridge {
    pub deliverer: Deliverer,
    _listener: tokio::task::JoinHandle<()>,
}

impl Bridge {
    pub async fn start(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<Self> {
        let m = config.matrix.as_ref().context("the config has no `matrix:` section; run `imessage-bridge init`")?;
        let text = std::fs::read_to_string(&m.registration).with_context(|| format!("reading {}", m.registration.display()))?;
        let registration: Registration = serde_yaml::from_str(&text).with_context(|| format!("{} is not a registration", m.registration.display()))?;
        let state = appservice::AppserviceState::new(&registration.hs_token, &m.domain);
        let (addr, listener) = appservice::serve(state, m.listen).await.with_context(|| format!("binding the appservice listener on {}", m.listen))?;
        tracing::debug!(%addr, "appservice API listening");
        let hs = HomeserverClient::new(&m.homeserver, &registration.as_token)?;
        hs.wait_ready(Duration::from_secs(30)).await.with_context(|| format!("homeserver {} is not answering", m.homeserver))?;
        let txn = format!("imb-ping-{}", std::process::id());
        let ms = hs.ping(&registration.id, &txn).await.context(
            "the homeserver could not reach the bridge (appservice ping failed): is registration.yaml in app_service_config_files and its url reachable?",
        )?;
        tracing::info!(homeserver = %m.homeserver, roundtrip_ms = ms, "appservice link ok");
        let session = cloudkit::session_source(&config.cloudkit.session).session().await?;
        let double_puppet = registration::owns_user(&registration, &m.owner);
        let deliverer = Deliverer::new(
            hs,
            store,
            DeliveryConfig {
                domain: m.domain.clone(),
                owner: m.owner.clone(),
                double_puppet,
                own_handles: session.handles.clone(),
                concurrency: m.concurrency,
                room_version: m.room_version.clone(),
                attachments_dir: config.attachments.options().dir,
                media: matrix::media::MediaConfig {
                    convert_heif: config.attachments.convert_heif,
                    convert_voice: config.attachments.convert_voice,
                    max_bytes: config.attachments.max_bytes,
                },
            },
        );
        Ok(Bridge { deliverer, _listener: listener })
    }

    pub async fn deliver(&self) -> anyhow::Result<()> {
        let progress: Box<dyn matrix::delivery::DeliveryProgress> =
            if std::io::stderr().is_terminal() { Box::new(crate::progress::RoomBars::new()) } else { Box::new(matrix::delivery::NoDeliveryProgress) };
        let started = std::time::Instant::now();
        let report = self.deliverer.deliver_all(progress.as_ref()).await?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            rooms = report.rooms,
            created = report.rooms_created,
            sent = report.sent,
            renamed = report.renamed,
            recovered_in_flight = report.recovered_in_flight,
            resent_in_flight = report.resent_in_flight,
            adopted = report.adopted,
            rate = format!("{:.1}/s", report.sent as f64 / secs.max(1e-9)),
            "delivery finished"
        );
        Ok(())
    }
}

pub async fn verify(bridge: &Bridge, json: bool) -> anyhow::Result<bool> {
    let v = matrix::verify::verify_all(&bridge.deliverer).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(v.ok);
    }
    writeln!(out, "{:<34} {:>8} {:>9} {:>7} {:>5} {:>6} {:>6} {:>4} {:>5}  name", "chat", "expected", "reachable", "missing", "dups", "order", "sender", "bot", "start")?;
    for c in &v.chats {
        writeln!(
            out,
            "{:<34} {:>8} {:>9} {:>7} {:>5} {:>6} {:>6} {:>4} {:>5}  {} {}",
            truncate(&c.chat_id, 34),
            c.expected,
            c.reachable,
            c.missing,
            c.duplicates,
            c.out_of_order,
            c.wrong_sender,
            c.bot_messages,
            if c.reached_start { "yes" } else { "no" },
            if c.name_ok { "ok" } else { "WRONG" },
            c.name.as_deref().unwrap_or("-"),
        )?;
    }
    let expected: u64 = v.chats.iter().map(|c| c.expected).sum();
    let reachable: u64 = v.chats.iter().map(|c| c.reachable).sum();
    let sum = |f: fn(&matrix::verify::ChatVerification) -> u64| v.chats.iter().map(f).sum::<u64>();
    writeln!(
        out,
        "media {} ({} not downloadable or not the source's bytes), attachment notices {}, reactions {}, edits {}, replies {}, shown but should not be {}",
        sum(|c| c.media),
        sum(|c| c.media_bad),
        sum(|c| c.attachment_notices),
        sum(|c| c.reactions),
        sum(|c| c.edits),
        sum(|c| c.replies),
        sum(|c| c.unexpected)
    )?;
    writeln!(out, "{} rooms, {reachable}/{expected} messages reachable by back-pagination: {}", v.chats.len(), if v.ok { "OK" } else { "NOT OK" })?;
    Ok(v.ok)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
