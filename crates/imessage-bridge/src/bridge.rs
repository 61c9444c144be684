//! The Matrix side of the commands: a [`Bridge`] is what `deliver`, `run` and `verify` need to
//! talk to the homeserver. Only `run` and `deliver` serve the appservice API
//! ([`Bridge::listen`]): `verify`, `status` and `doctor` must work beside a running bridge, which
//! holds the port.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use matrix::delivery::{DeliveryConfig, Deliverer};
use matrix::{appservice, registration, HomeserverClient};
use ruma::api::appservice::Registration;

use crate::config::{Config, MatrixConfig};

pub const APPSERVICE_ID: &str = "imessage";

/// Everything a Matrix command needs: the registration, the homeserver client and the
/// deliverer. Connecting does not bind the appservice port.
pub struct Bridge {
    pub deliverer: Deliverer,
    registration: Registration,
    matrix: MatrixConfig,
    _listener: Option<tokio::task::JoinHandle<()>>,
}

/// Reads the registration a config names.
pub fn read_registration(path: &Path) -> anyhow::Result<Registration> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{} is not a registration", path.display()))
}

impl Bridge {
    /// Reads the registration and the session and waits (bounded) for the homeserver.
    pub async fn connect(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<Self> {
        let m = config.matrix.as_ref().context("the config has no `matrix:` section; run `imessage-bridge init`")?;
        let registration = read_registration(&m.registration)?;
        let hs = HomeserverClient::new(&m.homeserver, &registration.as_token)?;
        hs.wait_ready(Duration::from_secs(30)).await.with_context(|| format!("homeserver {} is not answering", m.homeserver))?;
        let session = cloudkit::session_source(&config.cloudkit.session).session().await?;
        let double_puppet = registration::owns_user(&registration, &m.owner);
        let deliverer = Deliverer::new(
            hs,
            store,
            DeliveryConfig {
                domain: m.domain.clone(),
                owner: m.owner.clone(),
                double_puppet,
                own_handles: config.own_handles(&session.handles)?,
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
        Ok(Bridge { deliverer, registration, matrix: m.clone(), _listener: None })
    }

    /// Connects, serves the appservice API on `matrix.listen` and checks with the homeserver's
    /// ping that it reaches it (`run` and `deliver`).
    pub async fn start(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<Self> {
        let mut bridge = Self::connect(config, store).await?;
        bridge.listen().await?;
        Ok(bridge)
    }

    async fn listen(&mut self) -> anyhow::Result<()> {
        let m = &self.matrix;
        let state = appservice::AppserviceState::new(&self.registration.hs_token, &m.domain);
        let (addr, listener) = appservice::serve(state, m.listen).await.with_context(|| {
            format!("binding the appservice listener on {} (is another `imessage-bridge run` using it?)", m.listen)
        })?;
        tracing::debug!(%addr, "appservice API listening");
        self._listener = Some(listener);
        let txn = format!("imb-ping-{}", std::process::id());
        let ms = self.deliverer.hs.ping(&self.registration.id, &txn).await.context(
            "the homeserver could not reach the bridge (appservice ping failed): is registration.yaml in app_service_config_files and its url reachable? `imessage-bridge doctor` checks each piece",
        )?;
        tracing::info!(homeserver = %m.homeserver, roundtrip_ms = ms, "appservice link ok");
        Ok(())
    }

    /// One delivery round. `sent` is notified after every event the homeserver accepted (`run`
    /// waits for one before it stops on a signal).
    pub async fn deliver(&self, sent: Option<&tokio::sync::Notify>) -> anyhow::Result<()> {
        let bars: Box<dyn matrix::delivery::DeliveryProgress> =
            if std::io::stderr().is_terminal() { Box::new(crate::progress::RoomBars::new()) } else { Box::new(matrix::delivery::NoDeliveryProgress) };
        let progress = crate::progress::Notifying { inner: bars.as_ref(), sent };
        let started = std::time::Instant::now();
        let report = self.deliverer.deliver_all(&progress).await?;
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

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
