//! The Matrix side of the commands: a [`Bridge`] is what `deliver`, `run` and `verify` need to
//! talk to the homeserver. Only `run` and `deliver` serve the appservice API
//! ([`Bridge::start`], [`Bridge::start_retrying`]): `verify`, `status` and `doctor` must work
//! beside a running bridge, which holds the port. The listener also hands the homeserver's events
//! to `matrix::inbound` (owner messages get a notice) and serves `/metrics` when it is on.

use crate::terminal::terminal_safe;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use matrix::delivery::{Deliverer, DeliveryConfig};
use matrix::metrics::Metrics;
use matrix::{appservice, registration, HomeserverClient};
use ruma::api::appservice::Registration;

use crate::config::{Config, MatrixConfig};

pub const APPSERVICE_ID: &str = "imessage";
/// The longest pause between two tries of a homeserver that is down when `run` starts.
const MAX_HOMESERVER_PAUSE: Duration = Duration::from_secs(60);
/// The first such pause; it doubles up to [`MAX_HOMESERVER_PAUSE`].
const FIRST_HOMESERVER_PAUSE: Duration = Duration::from_secs(1);
/// How long one such try waits for the homeserver to answer.
const HOMESERVER_TRY: Duration = Duration::from_secs(5);
/// How long a one-off command (`verify`, `deliver`…) waits for the homeserver to answer.
const HOMESERVER_READY: Duration = Duration::from_secs(30);

/// Everything a Matrix command needs: the registration, the homeserver client and the
/// deliverer. Connecting does not bind the appservice port.
pub struct Bridge {
    pub deliverer: Deliverer,
    registration: Registration,
    matrix: MatrixConfig,
    /// Prometheus metrics, when `matrix.metrics_listen` is set (served there).
    pub metrics: Option<Arc<Metrics>>,
    /// Media bytes the homeserver client had uploaded at the last metrics update.
    uploaded_seen: AtomicU64,
    _listener: Option<Listener>,
    /// The contact sources, when the config names any (read again by `run` every
    /// `contacts.refresh_secs`).
    pub contacts: Option<Arc<crate::contacts::Contacts>>,
}

/// The appservice API on `matrix.listen` (with `/metrics` when on) and the task that acts on
/// the events it receives (owner messages: `matrix::inbound`).
pub struct Listener {
    _http: tokio::task::JoinHandle<()>,
    _inbound: tokio::task::JoinHandle<()>,
    _metrics: Option<tokio::task::JoinHandle<()>>,
}

impl Listener {
    async fn bind(m: &MatrixConfig, registration: &Registration, store: Arc<dyn store::Store>, metrics: Option<Arc<Metrics>>) -> anyhow::Result<Self> {
        let on_refused: Option<matrix::inbound::OnRefused> = metrics.clone().map(|m| {
            Box::new(move || {
                m.owner_messages_refused.inc();
            }) as matrix::inbound::OnRefused
        });
        let inbound = matrix::inbound::Inbound {
            hs: HomeserverClient::new(&m.homeserver, &registration.as_token)?,
            store,
            owner: m.owner.clone(),
            bot: matrix::ghost::bot_user_id(&m.domain),
            on_refused,
        };
        let (inbox, inbound) = inbound.spawn();
        let state = appservice::AppserviceState::with_inbox(&registration.hs_token, &m.domain, Some(inbox));
        let (addr, http) = appservice::serve(state, m.listen)
            .await
            .with_context(|| format!("binding the appservice listener on {} (is another `imessage-bridge run` using it?)", m.listen))?;
        tracing::debug!(%addr, "appservice API listening");
        let mut served = None;
        if let (Some(metrics), Some(at)) = (metrics, m.metrics_listen) {
            let (addr, task) = metrics.serve(at).await.with_context(|| format!("binding the metrics listener on {at} (matrix.metrics_listen)"))?;
            tracing::info!(progress = matrix::progress::METRICS_LISTENING, %addr, "metrics at http://{addr}/metrics");
            served = Some(task);
        }
        Ok(Listener { _http: http, _inbound: inbound, _metrics: served })
    }
}

/// Reads the registration a config names.
pub fn read_registration(path: &Path) -> anyhow::Result<Registration> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("{} is not a registration", path.display()))
}

/// The config's Matrix section and registration, and a client for the homeserver.
fn homeserver(config: &Config) -> anyhow::Result<(MatrixConfig, Registration, HomeserverClient)> {
    let m = config.matrix.as_ref().context("the config has no `matrix:` section; run `imessage-bridge init`")?;
    let registration = read_registration(&m.registration)?;
    let hs = HomeserverClient::new(&m.homeserver, &registration.as_token)?;
    Ok((m.clone(), registration, hs))
}

/// Who the people are: the owner's handles and, when the config names contact sources, the
/// contacts that name everyone else (read once per start).
#[derive(Clone)]
struct People {
    own_handles: Vec<String>,
    contacts: Option<Arc<crate::contacts::Contacts>>,
    profiles: Option<Arc<dyn matrix::profiles::ProfileSource>>,
}

impl People {
    async fn read(config: &Config) -> anyhow::Result<People> {
        let own_handles = crate::source::own_handles(config).await?;
        let contacts = crate::contacts::Contacts::new(config, own_handles.clone());
        if !contacts.configured() {
            return Ok(People { own_handles, contacts: None, profiles: None });
        }
        let loaded = contacts.load().await;
        let profiles: Arc<dyn matrix::profiles::ProfileSource> = Arc::new(crate::contacts::BookProfiles(loaded.book));
        Ok(People { own_handles, contacts: Some(Arc::new(contacts)), profiles: Some(profiles) })
    }
}

impl Bridge {
    /// Reads the registration and the session and waits (bounded) for the homeserver.
    pub async fn connect(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<Self> {
        let (m, registration, hs) = homeserver(config)?;
        hs.wait_ready(HOMESERVER_READY).await.with_context(|| format!("homeserver {} is not answering", m.homeserver))?;
        let people = People::read(config).await?;
        Self::with_homeserver(config, store, m, registration, hs, people)
    }

    fn with_homeserver(
        config: &Config,
        store: Arc<dyn store::Store>,
        m: MatrixConfig,
        registration: Registration,
        hs: HomeserverClient,
        people: People,
    ) -> anyhow::Result<Self> {
        let People { own_handles, contacts, profiles } = people;
        let double_puppet = registration::owns_user(&registration, &m.owner);
        let deliverer = Deliverer::new(
            hs,
            store,
            DeliveryConfig {
                domain: m.domain.clone(),
                owner: m.owner.clone(),
                double_puppet,
                own_handles,
                concurrency: m.concurrency,
                room_version: m.room_version.clone(),
                attachments_dir: config.attachments.options().dir,
                media: matrix::media::MediaConfig {
                    convert_heif: config.attachments.convert_heif,
                    convert_voice: config.attachments.convert_voice,
                    max_bytes: config.attachments.max_bytes,
                },
            },
        )
        .with_profiles(profiles);
        Ok(Bridge { deliverer, registration, matrix: m, metrics: None, uploaded_seen: AtomicU64::new(0), _listener: None, contacts })
    }

    /// Connects, serves the appservice API on `matrix.listen` and checks with the homeserver's
    /// ping that it reaches it (`deliver`).
    pub async fn start(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<Self> {
        let (m, registration, _) = homeserver(config)?;
        let metrics = m.metrics_listen.is_some().then(Metrics::new);
        let listener = Listener::bind(&m, &registration, store.clone(), metrics.clone()).await?;
        let mut bridge = Self::connect(config, store).await?;
        bridge.ping().await?;
        (bridge._listener, bridge.metrics) = (Some(listener), metrics);
        Ok(bridge)
    }

    /// Binds the appservice port for [`start_retrying`](Self::start_retrying) (`run` binds it
    /// first, so a port in use is an error at once).
    pub async fn bind(config: &Config, store: Arc<dyn store::Store>, metrics: Option<Arc<Metrics>>) -> anyhow::Result<Listener> {
        let (m, registration, _) = homeserver(config)?;
        Listener::bind(&m, &registration, store, metrics).await
    }

    /// As [`start`](Self::start) for `run`, which must outlast a homeserver that is down or not
    /// set up yet: the homeserver is tried until it answers and pings back, with a growing pause
    /// between tries (logged); `give_up` bounds that (`run --once`). None if `stop` fired first.
    pub async fn start_retrying(
        config: Config,
        store: Arc<dyn store::Store>,
        listener: Listener,
        metrics: Option<Arc<Metrics>>,
        give_up: Option<Duration>,
        stop: sync::StopSignal,
    ) -> anyhow::Result<Option<Self>> {
        let (m, registration, hs) = homeserver(&config)?;
        let started = std::time::Instant::now();
        let mut pause = FIRST_HOMESERVER_PAUSE;
        // The owner's handles and the contacts are read once, not again on each try.
        let mut people: Option<People> = None;
        loop {
            let attempt = async {
                hs.wait_ready(HOMESERVER_TRY).await.with_context(|| format!("homeserver {} is not answering", m.homeserver))?;
                let read = match people.clone() {
                    Some(read) => read,
                    None => people.insert(People::read(&config).await?).clone(),
                };
                let bridge = Self::with_homeserver(&config, store.clone(), m.clone(), registration.clone(), hs.clone(), read)?;
                bridge.ping().await?;
                anyhow::Ok(bridge)
            };
            match attempt.await {
                Ok(mut bridge) => {
                    (bridge._listener, bridge.metrics) = (Some(listener), metrics);
                    return Ok(Some(bridge));
                }
                Err(e) if give_up.is_some_and(|g| started.elapsed() >= g) => return Err(e),
                Err(e) => tracing::warn!("{e:#}; trying the homeserver again in {}s (syncing meanwhile)", pause.as_secs()),
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.stopped() => return Ok(None),
            }
            pause = (pause * 2).min(MAX_HOMESERVER_PAUSE);
        }
    }

    /// Reads the contact sources again and brings the ghosts' names and photos up to date.
    pub async fn refresh_contacts(&self) -> anyhow::Result<()> {
        let Some(contacts) = &self.contacts else { return Ok(()) };
        let loaded = contacts.load().await;
        self.deliverer.set_profiles(Some(Arc::new(crate::contacts::BookProfiles(loaded.book))));
        let report = self.deliverer.refresh_profiles().await?;
        tracing::info!(renamed = report.renamed, avatars_set = report.avatars_set, avatars_removed = report.avatars_removed, "contacts applied");
        Ok(())
    }

    /// The homeserver's ping reaches the appservice API (bound before).
    async fn ping(&self) -> anyhow::Result<()> {
        let txn = format!("imb-ping-{}", std::process::id());
        let ms = self.deliverer.hs.ping(&self.registration.id, &txn).await.context(
            "the homeserver could not reach the bridge (appservice ping failed): is registration.yaml in app_service_config_files and its url reachable? `imessage-bridge doctor` checks each piece",
        )?;
        tracing::info!(homeserver = %self.matrix.homeserver, roundtrip_ms = ms, "appservice link ok");
        Ok(())
    }

    /// One delivery round. `sent` is notified after every event the homeserver accepted (`run`
    /// waits for one before it stops on a signal).
    pub async fn deliver(&self, sent: Option<&tokio::sync::Notify>) -> anyhow::Result<matrix::delivery::DeliveryReport> {
        self.deliver_rooms(sent, None).await
    }

    /// `run`'s delivery beside its sync: room by room (see `matrix::live`), a wake each time
    /// `stored` changes (a sync pass ended), until a stop. Each time the queue runs empty the
    /// pass is logged (and counted for metrics).
    pub async fn deliver_live(&self, stored: tokio::sync::watch::Receiver<u64>) -> anyhow::Result<()> {
        self.deliver_rooms(None, Some(stored)).await.map(|_| ())
    }

    async fn deliver_rooms(
        &self,
        sent: Option<&tokio::sync::Notify>,
        stored: Option<tokio::sync::watch::Receiver<u64>>,
    ) -> anyhow::Result<matrix::delivery::DeliveryReport> {
        let bars: Box<dyn matrix::delivery::DeliveryProgress> = if std::io::stderr().is_terminal() {
            Box::new(crate::progress::RoomBars::new())
        } else {
            Box::new(crate::progress::LogProgress::start("delivery", crate::progress::log_interval()))
        };
        let progress = crate::progress::Notifying::new(bars.as_ref(), sent, self.metrics.as_deref());
        let (once, begun) = (stored.is_none(), std::time::Instant::now());
        let (passes, mut ended) = tokio::sync::mpsc::unbounded_channel();
        let delivering = async {
            let on_pass = move |report: &matrix::delivery::DeliveryReport| {
                let _ = passes.send(report.clone());
            };
            self.deliverer.deliver_rooms(&progress, stored, &on_pass).await
        };
        let logging = async {
            let mut started = std::time::Instant::now();
            while let Some(report) = ended.recv().await {
                self.pass_ended(&report, started.elapsed()).await;
                started = std::time::Instant::now();
            }
        };
        let (report, ()) = tokio::join!(delivering, logging);
        let report = report?;
        if once {
            self.pass_ended(&report, begun.elapsed()).await;
        }
        Ok(report)
    }

    /// Logs a delivery pass (and updates the metrics first: a log line says they are current).
    async fn pass_ended(&self, report: &matrix::delivery::DeliveryReport, took: Duration) {
        if let Some(metrics) = &self.metrics {
            self.update_metrics(metrics).await;
        }
        tracing::info!(
            progress = matrix::progress::DELIVERY_FINISHED,
            rooms = report.rooms,
            created = report.rooms_created,
            sent = report.sent,
            renamed = report.renamed,
            recovered_in_flight = report.recovered_in_flight,
            resent_in_flight = report.resent_in_flight,
            adopted = report.adopted,
            late = report.late,
            failed_rooms = report.failed_rooms.len(),
            backing_off = report.backing_off,
            rate = format!("{:.1}/s", report.sent as f64 / took.as_secs_f64().max(1e-9)),
            "delivery finished"
        );
    }

    /// After a round: media bytes uploaded since the last update, and what is still pending.
    async fn update_metrics(&self, metrics: &Metrics) {
        let uploaded = self.deliverer.hs.uploaded_bytes();
        let before = self.uploaded_seen.swap(uploaded, Ordering::Relaxed);
        metrics.media_bytes_uploaded.inc_by(uploaded.saturating_sub(before));
        match self.deliverer.store.room_deliveries().await {
            Ok(rooms) => {
                metrics.pending_messages.set(rooms.iter().map(|r| r.pending + r.in_flight).sum());
            }
            Err(e) => tracing::warn!("pending messages not counted for metrics: {e}"),
        }
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
    writeln!(
        out,
        "{:<34} {:>8} {:>9} {:>7} {:>5} {:>6} {:>6} {:>4} {:>5}  name",
        "chat", "expected", "reachable", "missing", "dups", "order", "sender", "bot", "start"
    )?;
    for c in &v.chats {
        writeln!(
            out,
            "{:<34} {:>8} {:>9} {:>7} {:>5} {:>6} {:>6} {:>4} {:>5}  {} {}",
            truncate(&terminal_safe(&c.chat_id), 34),
            c.expected,
            c.reachable,
            c.missing,
            c.duplicates,
            c.out_of_order,
            c.wrong_sender,
            c.bot_messages,
            if c.reached_start { "yes" } else { "no" },
            if c.name_ok { "ok" } else { "WRONG" },
            terminal_safe(c.name.as_deref().unwrap_or("-")),
        )?;
        if let Some(e) = &c.error {
            writeln!(out, "  cannot read the room: {}", terminal_safe(e))?;
        }
    }
    let expected: u64 = v.chats.iter().map(|c| c.expected).sum();
    let reachable: u64 = v.chats.iter().map(|c| c.reachable).sum();
    let sum = |f: fn(&matrix::verify::ChatVerification) -> u64| v.chats.iter().map(f).sum::<u64>();
    writeln!(
        out,
        "media {} ({} not downloadable or not the source's bytes), attachment notices {}, reactions {}, edits {} ({} not the final text), replies {}, shown but should not be {}, late {}, invisible {}, pieces of split texts missing {}",
        sum(|c| c.media),
        sum(|c| c.media_bad),
        sum(|c| c.attachment_notices),
        sum(|c| c.reactions),
        sum(|c| c.edits),
        sum(|c| c.edits_wrong),
        sum(|c| c.replies),
        sum(|c| c.unexpected),
        sum(|c| c.late),
        sum(|c| c.invisible),
        sum(|c| c.chunks_missing)
    )?;
    writeln!(
        out,
        "ghost names not their contact's (or handle's) {}, rooms a client names by an alias or an id {}",
        sum(|c| c.names_wrong),
        sum(|c| c.alias_named)
    )?;
    for c in v.chats.iter().filter(|c| c.alias_named > 0) {
        writeln!(out, "  {} is shown as {}", terminal_safe(&c.chat_id), terminal_safe(c.shown_name.as_deref().unwrap_or("-")))?;
    }
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
