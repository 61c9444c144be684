//! `imessage-bridge`: syncs Messages in iCloud into a local database (and, later, Matrix).
//! The binary is thin: argument parsing, config, logging and progress bars around the library
//! crates.

mod bridge;
mod config;
mod progress;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use config::Config;

/// mimalloc instead of glibc malloc: a sync allocates and frees millions of short-lived strings
/// and protobuf buffers across threads, and glibc's malloc/free/consolidate took ~17% of the
/// bridge's CPU in a 100k-message sync profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "imessage-bridge", version, about = "Bridge your whole iMessage history from iCloud into Matrix")]
struct Cli {
    /// Configuration file (YAML).
    #[arg(short, long, global = true, default_value = "config.yaml", env = "IMESSAGE_BRIDGE_CONFIG")]
    config: PathBuf,
    /// More log output on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the account's handles (`tel:+…`, `mailto:…`), one per line, and nothing else on
    /// stdout. Reads the session named by --session, else the config's.
    ListHandles {
        #[arg(long)]
        session: Option<PathBuf>,
    },
    /// Fetch every record of every Messages zone into the database, then every attachment's
    /// file (both resume where they stopped).
    Sync {
        /// Fetch the records only, not the attachment files.
        #[arg(long)]
        records_only: bool,
    },
    /// Show per-zone sync state: server counts, stored, undecryptable, stop reasons.
    Status {
        /// Print JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write config.yaml and the appservice registration.yaml.
    Init {
        /// Homeserver client-server API URL, e.g. http://127.0.0.1:8008
        #[arg(long)]
        homeserver: String,
        /// The homeserver's server name, e.g. example.org
        #[arg(long)]
        domain: String,
        /// Your Matrix user id; every portal invites it, from-me messages are sent as it.
        #[arg(long)]
        owner: String,
        /// CloudKit gateway URL (the simulator's for the demo).
        #[arg(long)]
        cloudkit: String,
        /// Session file with the account's tokens and keys.
        #[arg(long)]
        session: PathBuf,
        /// Database URI: sqlite:PATH or postgres://…
        #[arg(long, default_value = "sqlite:bridge.db")]
        database: String,
        /// Folder to write config.yaml and registration.yaml into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Address the appservice API listens on.
        #[arg(long, default_value = "127.0.0.1:29333")]
        listen: std::net::SocketAddr,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Create missing portals and deliver every undelivered message to Matrix.
    Deliver,
    /// Sync, deliver, and keep serving the appservice; syncs again every sync_interval_secs.
    Run {
        /// Exit after the first sync and delivery.
        #[arg(long)]
        once: bool,
    },
    /// Page every portal like a client and compare with the store. Exit code 1 if not ok.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info,sqlx=warn",
        1 => "debug,sqlx=warn,hyper=info,reqwest=info",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .init();
}

fn main() -> anyhow::Result<()> {
    without_transparent_huge_pages();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run_cli())
}

/// mimalloc advises transparent huge pages for its arenas, so every 2 MiB region it touches is
/// resident in full: a sync's peak RSS was about 90 MiB, of which about 60 MiB were huge pages
/// (`AnonHugePages` in smaps), mostly unused. The bridge is a long-running service that should
/// stay small, so huge pages are off for this process, before the runtime's threads allocate.
/// A 1M-message sync then peaked at 47 MiB instead of 90 MiB, at the same speed.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag of the calling process; a failure (old
    // kernel) leaves huge pages as they were.
    unsafe {
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused);
    }
}

async fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Command::Init { homeserver, domain, owner, cloudkit, session, database, out, listen, force } = cli.command {
        return bridge::init(bridge::InitArgs { homeserver, domain, owner, cloudkit, session, database, out, listen, force });
    }
    if let Command::ListHandles { session } = &cli.command {
        return list_handles(&cli.config, session.as_deref()).await;
    }
    let config = Config::load(&cli.config)?;
    let store: Arc<dyn store::Store> = Arc::from(
        store::open(&config.database.uri).await.with_context(|| format!("opening database {}", config.database.uri))?,
    );
    match cli.command {
        Command::Sync { records_only } => sync(&config, store, !records_only).await,
        Command::Status { json } => status(store.as_ref(), json).await,
        Command::Deliver => bridge::Bridge::start(&config, store).await?.deliver().await,
        Command::Verify { json } => {
            let b = bridge::Bridge::start(&config, store).await?;
            if !bridge::verify(&b, json).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run { once } => run(&config, store, once).await,
        Command::Init { .. } | Command::ListHandles { .. } => Ok(()),
    }
}

async fn run(config: &Config, store: Arc<dyn store::Store>, once: bool) -> anyhow::Result<()> {
    let b = bridge::Bridge::start(config, store.clone()).await?;
    let interval = config.matrix.as_ref().map_or(60, |m| m.sync_interval_secs).max(1);
    loop {
        // A sync that stops early still delivers what it stored; the next round resumes it.
        if let Err(e) = sync(config, store.clone(), true).await {
            tracing::warn!("{e:#}");
        }
        b.deliver().await?;
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(interval)) => {}
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                return Ok(());
            }
        }
    }
}

async fn sync(config: &Config, store: Arc<dyn store::Store>, files: bool) -> anyhow::Result<()> {
    let session = cloudkit::session_source(&config.cloudkit.session).session().await?;
    let client = cloudkit::Client::with_limits(&config.cloudkit.url, session, config.cloudkit.limits)?;
    let progress: Arc<dyn sync::Progress> = if std::io::stderr().is_terminal() {
        Arc::new(progress::Bars::new())
    } else {
        Arc::new(sync::NoProgress)
    };
    let started = std::time::Instant::now();
    let report = sync::sync_all(&client, store.clone(), &config.sync.options(), progress).await?;
    let secs = started.elapsed().as_secs_f64();
    let changes: u64 = report.zones.iter().map(|z| z.changes).sum();
    for z in &report.zones {
        tracing::info!(zone = %z.zone, pages = z.pages, changes = z.changes, recovered = z.recovered,
            stop_reason = z.stop_reason.as_str(), error = z.error.as_deref().unwrap_or(""), "zone finished");
    }
    tracing::info!(changes, secs = format!("{secs:.1}"), rate = format!("{:.0}/s", changes as f64 / secs.max(1e-9)),
        full_resync = report.full_resync, "sync finished");
    // Files after records: a download problem never holds back the history.
    if files {
        let started = std::time::Instant::now();
        match sync::fetch_files(&client, store.as_ref(), &config.attachments.options()).await {
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

/// `list-handles`: the session's handles on stdout, one a line (logs stay on stderr).
async fn list_handles(config: &std::path::Path, session: Option<&std::path::Path>) -> anyhow::Result<()> {
    let path = match session {
        Some(p) => p.to_path_buf(),
        None => Config::load(config).context("no --session given, so the config names the session")?.cloudkit.session,
    };
    let session = cloudkit::session_source(&path).session().await.with_context(|| format!("reading the session {}", path.display()))?;
    if session.handles.is_empty() {
        anyhow::bail!("the session {} lists no handles", path.display());
    }
    let mut out = std::io::stdout().lock();
    for h in &session.handles {
        writeln!(out, "{h}")?;
    }
    Ok(())
}

async fn status(store: &dyn store::Store, json: bool) -> anyhow::Result<()> {
    let status = sync::status(store).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &status)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<22} {:>8} {:>8} {:>8} {:>13} {:>8} {:>6}  {}",
        "zone", "server", "stored", "skipped", "undecryptable", "complete", "pages", "stop_reason"
    )?;
    for z in &status.zones {
        let server = z.server_count.map_or("-".to_string(), |c| c.to_string());
        writeln!(
            out,
            "{:<22} {:>8} {:>8} {:>8} {:>13} {:>8} {:>6}  {}",
            z.zone,
            server,
            z.stored,
            z.skipped,
            z.undecryptable,
            if z.complete { "yes" } else { "no" },
            z.pages,
            z.stop_reason.as_deref().unwrap_or("-")
        )?;
        if let Some(e) = &z.last_error {
            writeln!(out, "  last error: {e}")?;
        }
        for f in z.undecryptable_records.iter().take(20) {
            writeln!(out, "  undecryptable {}: {}", f.record_name, f.reason)?;
        }
        if z.undecryptable_records.len() > 20 {
            writeln!(out, "  … and {} more (see --json)", z.undecryptable_records.len() - 20)?;
        }
    }
    if !status.undecodable_blobs.is_empty() {
        writeln!(out, "{} message(s) kept with their text although a content blob did not decode:", status.undecodable_blobs.len())?;
        for b in status.undecodable_blobs.iter().take(20) {
            writeln!(out, "  {} {} in {}: {}", b.guid, b.field, b.chat_id, b.reason)?;
        }
    }
    let f = &status.files;
    writeln!(
        out,
        "attachment files: {} of {} stored ({:.1} MB), {} pending, {} failed, {} over the size cap, {} refused",
        f.stored,
        f.with_asset,
        f.stored_bytes as f64 / 1e6,
        f.pending(),
        f.failed,
        f.too_large,
        f.refused
    )?;
    writeln!(out, "server: the first element of the zone's MessagesSummary list (complete = stored equals it); skipped: records of types the bridge does not read")?;
    writeln!(out, "sync version: {}", status.sync_version.map_or("none".into(), |v| v.to_string()))?;
    Ok(())
}
