//! `sync` and `run`: the long-running side of the bridge.
//!
//! Why it is shaped like this: `run` is left alone for months under systemd or in a container.
//! So one failed delivery round must not end it (it is logged, recorded per room for `status`,
//! and the next round comes after a backoff), and SIGTERM/SIGINT stop it cleanly: the sync
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
    let give_up = once.then_some(Duration::from_secs(30));
    let mut connecting = tokio::spawn(Bridge::start_retrying(config.clone(), store.clone(), listener, metrics.clone(), give_up, stop.clone()));
    let mut bridge: Option<Bridge> = None;
    let interval = Duration::from_secs(config.matrix.as_ref().map_or(60, |m| m.sync_interval_secs).max(1));
    let mut backoff = FIRST_BACKOFF;
    // A Mac's chat.db is watched: a change syncs at once, the interval is the fallback.
    let watch = match (&config.source.kind, &config.source.path) {
        (SourceKind::ChatDb, Some(path)) if !once => match crate::watch::DatabaseWatch::start(path) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch {} for changes ({e}); polling every {}s", path.display(), interval.as_secs());
                None
            }
        },
        _ => None,
    };
    loop {
        // A sync that stops early still delivers what it stored; the next round resumes it.
        if let Err(e) = sync(config, store.clone(), true, &stop, metrics.as_ref()).await {
            tracing::warn!("{e:#}");
        }
        if stop.is_stopped() {
            return Ok(());
        }
        let b = match bridge.as_ref() {
            Some(b) => b,
            None => {
                // Waits for the homeserver until the next sync is due (`--once`: until it gives up).
                let connected = tokio::select! {
                    r = &mut connecting => Some(r),
                    _ = tokio::time::sleep(interval), if !once => None,
                    _ = stop.stopped() => return Ok(()),
                };
                match connected {
                    Some(joined) => match joined?? {
                        Some(b) => bridge.insert(b),
                        None => return Ok(()),
                    },
                    None => continue,
                }
            }
        };
        let delivered = deliver_round(b, store.as_ref(), &stop).await;
        if stop.is_stopped() {
            return Ok(());
        }
        let wait = match delivered {
            Ok(()) => {
                backoff = FIRST_BACKOFF;
                interval
            }
            Err(e) if once => return Err(e),
            Err(e) => {
                let wait = backoff.min(interval);
                tracing::warn!("delivery round failed, next round in {}s: {e:#}", wait.as_secs());
                backoff = (backoff * 2).min(interval);
                wait
            }
        };
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::watch::changed(watch.as_ref()) => tracing::debug!("the source changed: syncing now"),
            _ = stop.stopped() => return Ok(()),
        }
    }
}

/// One delivery round, stopped (after a grace for the event in flight) by `stop`. Afterwards
/// every chat still waiting for messages gets the round's error, every other one loses its old
/// one, so `status` shows what is stuck and why.
async fn deliver_round(b: &Bridge, store: &dyn store::Store, stop: &sync::StopSignal) -> anyhow::Result<()> {
    let sent = tokio::sync::Notify::new();
    let round = b.deliver(Some(&sent));
    tokio::pin!(round);
    let result = tokio::select! {
        r = &mut round => r,
        _ = stop.stopped() => {
            // Each room finishes the message it is sending, then the round ends.
            b.deliverer.request_stop();
            tokio::select! {
                r = &mut round => r,
                _ = tokio::time::sleep(DELIVERY_GRACE) => Ok(Default::default()),
            }
        }
    };
    if stop.is_stopped() {
        return result.map(|_| ());
    }
    // Each waiting room that failed gets its own error (and its own backoff in the deliverer);
    // a round that failed as a whole gives its error to every room still waiting.
    let (round_error, failed): (Option<String>, std::collections::HashMap<String, String>) = match &result {
        Err(e) => (Some(format!("{e:#}")), Default::default()),
        Ok(report) => (None, report.failed_rooms.iter().map(|f| (f.chat_id.clone(), f.error.clone())).collect()),
    };
    for room in store.room_deliveries().await? {
        let waiting = room.pending + room.in_flight > 0;
        // Shown where messages wait; a room with nothing to send that failed a housekeeping
        // request is in the log only.
        let error = failed.get(&room.chat_id).or(round_error.as_ref()).filter(|_| waiting);
        match error {
            Some(e) => store.set_delivery_error(&room.chat_id, Some(e)).await?,
            None if room.last_error.is_some() => store.set_delivery_error(&room.chat_id, None).await?,
            None => {}
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
    tracing::info!(changes, secs = format!("{secs:.1}"), rate = format!("{:.0}/s", changes as f64 / secs.max(1e-9)),
        full_resync = report.full_resync, "sync finished");
    // Files after records: a download problem never holds back the history (a local source
    // copied its files already).
    if let (Some(client), true, false) = (&client, files, stop.is_stopped()) {
        let started = std::time::Instant::now();
        let options = sync::FileOptions { stop: stop.clone(), ..config.attachments.options() };
        match sync::fetch_files(client, store.as_ref(), &options).await {
            Ok(f) => tracing::info!(stored = f.stored, bytes = f.bytes, mb = format!("{:.1}", f.bytes as f64 / 1e6), failed = f.failed,
                too_large = f.too_large, refused = f.refused, secs = format!("{:.2}", started.elapsed().as_secs_f64()), "attachment files fetched"),
            Err(e) => tracing::warn!("attachment files not fetched this time: {e}"),
        }
    }
    if !report.all_done() {
        let stopped: Vec<String> =
            report.zones.iter().filter(|z| z.stop_reason != store::StopReason::ApiDone).map(|z| format!("{}: {}", z.zone, z.stop_reason.as_str())).collect();
        anyhow::bail!("sync stopped early ({}); run `sync` again to resume", stopped.join(", "));
    }
    Ok(())
}
