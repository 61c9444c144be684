//! `sync` and `run`: the long-running side of the bridge.
//!
//! Why it is shaped like this: `run` is left alone for months under systemd or in a container,
//! and a new message should reach its room within one sync interval whatever else it does. So
//! the sync runs in a loop of its own (its interval, or a change of a watched chat.db) and each
//! pass it ends wakes the delivery, which works room by room beside it (`matrix::live`): a big
//! chat's history going in holds back no other room. `run --once` is a sync, then delivery
//! until nothing is pending. One failed room or round must not end it (it is logged, recorded
//! per room for `status`, and retried after a backoff), and SIGTERM/SIGINT stop it cleanly: the sync
//! finishes the page it is committing and records `interrupted` (its token at that page), the
//! delivery gets a moment to finish the event in flight. A second signal exits at once. Whatever
//! a stop cuts off is what a crash would cut off, and both are resumed from the store's token
//! and ledger on the next start.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use crate::bridge::Bridge;
use crate::config::{Config, SourceKind};

/// How long a stopping delivery may take to finish the message each room is sending (an
/// upload can take a while) before it is dropped (the ledger recovers a send cut off there on
/// the next start).
const DELIVERY_GRACE: Duration = Duration::from_secs(60);
/// How long `run --once` tries to reach a homeserver that is down before it gives up.
const ONCE_HOMESERVER_GIVE_UP: Duration = Duration::from_secs(30);
/// The first wait after a failed delivery round; doubles per failed round up to the sync interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

/// Watches SIGINT and SIGTERM (Ctrl-C elsewhere). The first asks everything to stop (the
/// returned signal fires); a second exits the process at once.
pub fn stop_on_signals() -> sync::StopSignal {
    let (tx, stop) = sync::StopSignal::new();
    let mut signals = Signals::install();
    tokio::spawn(async move {
        let name = signals.next().await;
        tracing::info!("{name}: stopping after the page or event in flight (again to exit at once)");
        let _ = tx.send(true);
        let name = signals.next().await;
        tracing::warn!("{name} again: exiting now");
        std::process::exit(130);
    });
    stop
}

struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(term), Ok(int)) => Signals { unix: Some((term, int)) },
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("cannot watch SIGTERM/SIGINT ({e}); only Ctrl-C stops cleanly");
                    Signals { unix: None }
                }
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((term, int)) = self.unix.as_mut() {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

pub async fn run(config: &Config, store: Arc<dyn store::Store>, once: bool, stop: sync::StopSignal) -> anyhow::Result<()> {
    let metrics = config.matrix.as_ref().is_some_and(|m| m.metrics_listen.is_some()).then(matrix::metrics::Metrics::new);
    // The homeserver may be down or not set up yet: it is tried in the background (the port is
    // bound at once) while the sync goes ahead.
    let listener = Bridge::bind(config, store.clone(), metrics.clone()).await?;
    let give_up = once.then_some(ONCE_HOMESERVER_GIVE_UP);
    let mut connecting = tokio::spawn(Bridge::start_retrying(config.clone(), store.clone(), listener, metrics.clone(), give_up, stop.clone()));
    let interval = Duration::from_secs(config.matrix.as_ref().map_or(crate::config::DEFAULT_SYNC_INTERVAL_SECS, |m| m.sync_interval_secs).max(1));
    if once {
        // A sync that stops early still delivers what it stored (if the history is whole).
        if let Err(e) = sync(config, store.clone(), true, &stop, metrics.as_ref()).await {
            tracing::warn!("{e:#}");
        }
        if stop.is_stopped() {
            return Ok(());
        }
        // Waits for the homeserver until it gives up.
        let bridge = tokio::select! {
            joined = &mut connecting => joined??,
            _ = stop.stopped() => None,
        };
        return match bridge {
            Some(b) => {
                apply_contacts(&b).await;
                deliver_round(&b, store.as_ref(), &stop).await
            }
            None => Ok(()),
        };
    }
    // A Mac's chat.db is watched: a change syncs at once, the interval is the fallback.
    let watch = match (&config.source.kind, &config.source.path) {
        (SourceKind::ChatDb, Some(path)) => match crate::watch::DatabaseWatch::start(path) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch {} for changes ({e}); polling every {}s", path.display(), interval.as_secs());
                None
            }
        },
        _ => None,
    };
    // Sync and delivery side by side: the sync keeps its interval whatever delivery does, and
    // each pass it ends wakes the delivery, which works room by room (`matrix::live`).
    let (stored, passes) = tokio::sync::watch::channel(0u64);
    let syncing = tokio::spawn(sync_loop(config.clone(), store.clone(), stop.clone(), metrics, interval, watch, stored));
    let bridge = tokio::select! {
        joined = &mut connecting => joined??,
        _ = stop.stopped() => None,
    };
    if let Some(b) = bridge {
        let refresh = Duration::from_secs(config.contacts.refresh_secs.max(1));
        tokio::join!(deliver_live(&b, passes, &stop, interval), refresh_contacts(&b, &stop, refresh));
    }
    // The sync finishes the page it is committing.
    syncing.await?;
    Ok(())
}

/// `run`'s sync: a pass, then a wake for the delivery, then the interval (or a change of the
/// watched source), until a stop.
async fn sync_loop(
    config: Config,
    store: Arc<dyn store::Store>,
    stop: sync::StopSignal,
    metrics: Option<Arc<matrix::metrics::Metrics>>,
    interval: Duration,
    watch: Option<crate::watch::DatabaseWatch>,
    stored: tokio::sync::watch::Sender<u64>,
) {
    loop {
        // A pass that stops early still wakes the delivery, which first checks that the stored
        // history is whole.
        if let Err(e) = sync(&config, store.clone(), true, &stop, metrics.as_ref()).await {
            tracing::warn!("{e:#}");
        }
        if stop.is_stopped() {
            return;
        }
        stored.send_modify(|passes| *passes += 1);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::watch::changed(watch.as_ref()) => tracing::debug!("the source changed: syncing now"),
            _ = stop.stopped() => return,
        }
    }
}

/// `run`'s contacts: read again every `refresh` (they were read when the bridge started), so a
/// renamed, new or removed contact reaches its ghost; until a stop.
async fn refresh_contacts(b: &Bridge, stop: &sync::StopSignal, refresh: Duration) {
    if b.contacts.is_none() {
        return;
    }
    apply_contacts(b).await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = stop.stopped() => return,
        }
        if let Err(e) = b.refresh_contacts().await {
            tracing::warn!("contacts not applied: {e:#}");
        }
    }
}

/// Brings the ghosts the bridge named before this start up to date with the contacts read at
/// start (a contact renamed or removed while the bridge was stopped).
async fn apply_contacts(b: &Bridge) {
    if b.contacts.is_some() {
        if let Err(e) = b.deliverer.refresh_profiles().await {
            tracing::warn!("contacts not applied: {e:#}");
        }
    }
}

/// `run`'s delivery until a stop (after a grace for the event in flight in each room). A
/// delivery that fails as a whole (the store, say) starts again after a backoff.
async fn deliver_live(b: &Bridge, passes: tokio::sync::watch::Receiver<u64>, stop: &sync::StopSignal, interval: Duration) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match until_stopped(b, stop, b.deliver_live(passes.clone()), ()).await {
            Err(e) if !stop.is_stopped() => {
                tracing::warn!("delivery round failed, next round in {}s: {e:#}", backoff.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.stopped() => return,
                }
                backoff = (backoff * 2).min(interval);
            }
            _ => return,
        }
    }
}

/// Awaits a delivery; on a stop, each room finishes the message it is sending, then the
/// delivery ends (`cut_off` if that takes longer than the grace).
async fn until_stopped<T>(
    b: &Bridge,
    stop: &sync::StopSignal,
    delivery: impl std::future::Future<Output = anyhow::Result<T>>,
    cut_off: T,
) -> anyhow::Result<T> {
    tokio::pin!(delivery);
    tokio::select! {
        r = &mut delivery => r,
        _ = stop.stopped() => {
            b.deliverer.request_stop();
            tokio::select! {
                r = &mut delivery => r,
                _ = tokio::time::sleep(DELIVERY_GRACE) => Ok(cut_off),
            }
        }
    }
}

/// `run --once`'s delivery, stopped (after a grace for the event in flight) by `stop`. Each room
/// that failed has its error already (see `matrix::live`); a round that failed as a whole gives
/// its error to every room still waiting, so `status` shows what is stuck and why.
async fn deliver_round(b: &Bridge, store: &dyn store::Store, stop: &sync::StopSignal) -> anyhow::Result<()> {
    let sent = tokio::sync::Notify::new();
    let result = until_stopped(b, stop, b.deliver(Some(&sent)), Default::default()).await;
    if let (Err(e), false) = (&result, stop.is_stopped()) {
        let error = format!("{e:#}");
        for room in store.room_deliveries().await? {
            // Shown where messages wait; a room with nothing to send is in the log only.
            if room.pending + room.in_flight > 0 {
                store.set_delivery_error(&room.chat_id, Some(&error)).await?;
            }
        }
    }
    result.map(|_| ())
}

pub async fn sync(
    config: &Config,
    store: Arc<dyn store::Store>,
    files: bool,
    stop: &sync::StopSignal,
    metrics: Option<&Arc<matrix::metrics::Metrics>>,
) -> anyhow::Result<()> {
    let mut progress: Arc<dyn sync::Progress> = if std::io::stderr().is_terminal() {
        Arc::new(crate::progress::Bars::new())
    } else {
        Arc::new(crate::progress::LogProgress::start("sync", crate::progress::log_interval()))
    };
    let options = sync::SyncOptions { stop: stop.clone(), ..config.sync.options() };
    if let Some(m) = metrics {
        progress = Arc::new(crate::progress::CountingSync { inner: progress, metrics: m.clone() });
    }
    let started = std::time::Instant::now();
    let client = match config.source.kind {
        SourceKind::Cloudkit => {
            let ck = config.cloudkit()?;
            let session = cloudkit::session_source(&ck.session).session().await?;
            Some(cloudkit::Client::with_limits(&ck.url, session, ck.limits)?)
        }
        _ => None,
    };
    let report = match &client {
        Some(client) => sync::sync_all(client, store.clone(), &options, progress).await.map_err(anyhow::Error::from),
        None => crate::source::sync_local(config, store.clone(), files, &options, progress.as_ref()).await,
    };
    if let Some(m) = metrics {
        m.page_errors.inc_by(options.failed_requests.load(std::sync::atomic::Ordering::Relaxed));
        match sync::status(store.as_ref()).await {
            Ok(st) => {
                m.undecryptable.set(st.zones.iter().map(|z| z.undecryptable).sum());
            }
            Err(e) => tracing::warn!("undecryptable records not counted for metrics: {e}"),
        }
    }
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    let changes: u64 = report.zones.iter().map(|z| z.changes).sum();
    for z in &report.zones {
        tracing::info!(zone = %z.zone, pages = z.pages, changes = z.changes, recovered = z.recovered,
            stop_reason = z.stop_reason.as_str(), error = z.error.as_deref().unwrap_or(""), "zone finished");
    }
    tracing::info!(
        progress = matrix::progress::SYNC_FINISHED,
        changes,
        secs = format!("{secs:.1}"),
        rate = format!("{:.0}/s", changes as f64 / secs.max(1e-9)),
        full_resync = report.full_resync,
        "sync finished"
    );
    // Files after records: a download problem never holds back the history (a local source
    // copied its files already).
    if let (Some(client), true, false) = (&client, files, stop.is_stopped()) {
        let started = std::time::Instant::now();
        let options = sync::FileOptions { stop: stop.clone(), ..config.attachments.options() };
        match sync::fetch_files(client, store.as_ref(), &options).await {
            Ok(f) => tracing::info!(
                progress = matrix::progress::FILES_DONE,
                stored = f.stored,
                bytes = f.bytes,
                mb = format!("{:.1}", f.bytes as f64 / 1e6),
                failed = f.failed,
                too_large = f.too_large,
                refused = f.refused,
                secs = format!("{:.2}", started.elapsed().as_secs_f64()),
                "attachment files fetched"
            ),
            Err(e) => tracing::warn!(progress = matrix::progress::FILES_DONE, "attachment files not fetched this time: {e}"),
        }
    }
    if !report.all_done() {
        let stopped: Vec<String> =
            report.zones.iter().filter(|z| z.stop_reason != store::StopReason::ApiDone).map(|z| format!("{}: {}", z.zone, z.stop_reason.as_str())).collect();
        anyhow::bail!("sync stopped early ({}); run `sync` again to resume", stopped.join(", "));
    }
    Ok(())
}
