//! `imessage-bridge`: brings iMessage history (Messages in iCloud, a Mac's `chat.db`, an iPhone
//! backup) into a local database and delivers it into Matrix rooms, then keeps them current.
//! The binary is thin: argument parsing, config, logging and progress bars around the library
//! crates.

mod backup;
mod bridge;
mod config;
mod contacts;
mod doctor;
mod init;
mod progress;
mod run;
mod source;
mod status;
mod terminal;
mod watch;

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
    /// How log lines on stderr are written: `text` for people, `json` for programs (one JSON
    /// object per line; progress markers in `fields.progress`, see `matrix::progress`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "IMESSAGE_BRIDGE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the account's handles (`tel:+…`, `mailto:…`), one per line, and nothing else on
    /// stdout. Reads the session named by --session, or the source named by --source and
    /// --source-path, else the config's source.
    ListHandles {
        #[arg(long)]
        session: Option<PathBuf>,
        /// A source to read instead of the config's (chat-db or ios-backup, with --source-path).
        #[arg(long, value_enum)]
        source: Option<config::SourceKind>,
        #[arg(long)]
        source_path: Option<PathBuf>,
    },
    /// Fetch every record of every Messages zone into the database, then every attachment's
    /// file (both resume where they stopped).
    Sync {
        /// Fetch the records only, not the attachment files.
        #[arg(long)]
        records_only: bool,
    },
    /// Show sync per zone (server counts, stored, undecryptable, stop reasons) and delivery per
    /// room (stored, delivered, pending, last error). Safe beside `run`.
    Status {
        /// Print JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write config.yaml and registration.yaml, asking for what no flag gives when run on a
    /// terminal; on an existing config, upgrade it in place (tokens and choices kept).
    Init(Box<init::InitArgs>),
    /// Check each piece of the setup in order, one line each (✓/✗ with a hint); exit 1 on any ✗.
    /// Safe beside `run`.
    Doctor,
    /// Create missing portals and deliver every undelivered message to Matrix.
    Deliver,
    /// Sync, deliver, and keep serving the appservice; syncs again every sync_interval_secs.
    Run {
        /// Exit after the first sync and delivery.
        #[arg(long)]
        once: bool,
    },
    /// Page every portal like a client and compare with the store. Exit code 1 if not ok.
    /// Safe beside `run`.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

/// The format of the log on stderr.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One line per event, `2026-12-01T11:47:23Z  INFO target: message key=value`.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, and the event's fields under
    /// `fields` (the message as `fields.message`), as tracing-subscriber's JSON formatter writes
    /// them. Nested rather than flattened, so that no field of an event can collide with those
    /// four keys.
    Json,
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "info,sqlx=warn",
        1 => "debug,sqlx=warn,hyper=info,reqwest=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let terminal = std::io::stderr().is_terminal();
    // On a terminal through the progress bars, so a log line never lands in the middle of one.
    let writer = if terminal {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(|| progress::BarsWriter)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    };
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(terminal && format == LogFormat::Text);
    match format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.json().init(),
    }
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
    init_logging(cli.verbose, cli.log_format);
    match cli.command {
        Command::Init(args) => return init::init(&cli.config, *args).await,
        Command::ListHandles { session, source, source_path } => return list_handles(&cli.config, session.as_deref(), source, source_path.as_deref()).await,
        Command::Doctor => {
            if !doctor::doctor(&cli.config).await {
                std::process::exit(1);
            }
            return Ok(());
        }
        _ => {}
    }
    let config = Config::load(&cli.config)?;
    let store: Arc<dyn store::Store> =
        Arc::from(store::open(&config.database.uri).await.with_context(|| format!("opening database {}", terminal::redacted_uri(&config.database.uri)))?);
    match cli.command {
        Command::Sync { records_only } => run::sync(&config, store, !records_only, &run::stop_on_signals(), None).await,
        Command::Status { json } => {
            let counts_from = match config.source.kind {
                config::SourceKind::Cloudkit => status::CountSource::Server,
                config::SourceKind::ChatDb | config::SourceKind::IosBackup => status::CountSource::LocalDatabase,
            };
            status::status(store.as_ref(), json, counts_from).await
        }
        Command::Deliver => {
            let report = bridge::Bridge::start(&config, store).await?.deliver(None).await?;
            if !report.failed_rooms.is_empty() {
                let rooms: Vec<String> = report.failed_rooms.iter().map(|f| format!("{}: {}", f.chat_id, f.error)).collect();
                anyhow::bail!("{} room(s) not delivered (run `deliver` again to retry them):\n  {}", rooms.len(), rooms.join("\n  "));
            }
            Ok(())
        }
        Command::Verify { json } => {
            let b = bridge::Bridge::connect(&config, store).await?;
            if !bridge::verify(&b, json).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run { once } => run::run(&config, store, once, run::stop_on_signals()).await,
        Command::Init(_) | Command::ListHandles { .. } | Command::Doctor => Ok(()),
    }
}

/// `list-handles`: the account's handles on stdout, one a line (logs stay on stderr).
async fn list_handles(
    config: &std::path::Path,
    session: Option<&std::path::Path>,
    source: Option<config::SourceKind>,
    source_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let (handles, origin) = match (session, source, source_path) {
        (Some(path), _, _) => {
            let session = cloudkit::session_source(path).session().await.with_context(|| format!("reading the session {}", path.display()))?;
            (session.handles, path.display().to_string())
        }
        (None, Some(kind), Some(path)) if kind != config::SourceKind::Cloudkit => {
            let base = Config::load(config).unwrap_or_else(|_| Config::placeholder());
            (source::handles_of(kind, path, &base).await?, path.display().to_string())
        }
        (None, Some(_), _) | (None, None, Some(_)) => anyhow::bail!("name a local source with both --source chat-db|ios-backup and --source-path"),
        (None, None, None) => {
            let config = Config::load(config).context("no --session or --source given, so the config names the source")?;
            let origin = config.source.path.as_ref().map_or_else(|| "the session".to_string(), |p| p.display().to_string());
            (source::own_handles(&config).await?, origin)
        }
    };
    if handles.is_empty() {
        anyhow::bail!("{origin} names no handles of yours");
    }
    let mut out = std::io::stdout().lock();
    for h in &handles {
        writeln!(out, "{h}")?;
    }
    Ok(())
}
