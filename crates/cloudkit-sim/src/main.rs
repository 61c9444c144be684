//! `cloudkit-sim` command line: `serve` the simulated account, print its `truth`, write it as a
//! Mac's Messages folder (`messages-folder`), write its people as contact files (`contacts`), or
//! pack a Messages folder into an iPhone backup (`ios-backup`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cloudkit_sim::revisions::RevisionKind;
use cloudkit_sim::{AccountSpec, Faults, Sim};

#[derive(Parser)]
#[command(name = "cloudkit-sim", about = "Local CloudKit server with a deterministic iMessage account")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the account over CloudKit's wire protocol.
    Serve {
        /// Address to listen on (port 0 picks a free port; the real address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Write the session file the bridge needs to this path (0600; its anisette URL is this
        /// server's).
        #[arg(long)]
        write_session: Option<PathBuf>,
        #[command(flatten)]
        account: AccountArgs,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Print the account's ground truth as JSON lines (chats, messages, attachments).
    Truth {
        #[command(flatten)]
        account: AccountArgs,
        /// Include the later messages (the truth after `/_sim/release-later`).
        #[arg(long)]
        released: bool,
        /// Accepted so that `truth` takes the same flags as `serve`. Of them only `--revise`
        /// changes truth (with `--released`: then a `{"kind":"deleted","guid":…}` line follows
        /// for each message it deleted).
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Write the account (its history) as a Mac's Messages folder: DIR/chat.db (Apple's DDL,
    /// WAL) and DIR/Attachments/xx/yy/GUID/name, one attachment file left out as "Optimize
    /// Storage" does.
    MessagesFolder {
        /// The folder to write (must not hold a chat.db yet).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        account: AccountArgs,
        /// Which generation of Messages' database: macos (recent macOS), ios13 (iOS 13 sms.db),
        /// legacy (before High Sierra: dates in seconds).
        #[arg(long, default_value = "macos", value_parser = ["macos", "ios13", "legacy"])]
        schema: String,
        /// Also write the folder's truth here as JSON lines (`cloudkit-sim truth`'s lines as this
        /// schema holds them, then `sms_chat` and `missing_file`).
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Write chat.db only: the attachment rows without their files (for benchmarks of the
        /// reader; a million messages otherwise means ~3 GB of files).
        #[arg(long)]
        no_files: bool,
    },
    /// Write the account's people as contact files (see `cloudkit_sim::contacts`): `contacts.vcf`
    /// and `contacts-renamed.vcf` (vcf), `AddressBook/Sources/<UUID>/AddressBook-v22.abcddb`
    /// with `Images/` (mac), `AddressBook.sqlitedb` and `AddressBookImages.sqlitedb` (ios).
    Contacts {
        /// The folder to write into (created if missing; the files must not exist yet).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        account: AccountArgs,
        /// Which files to write.
        #[arg(long, default_value = "all", value_parser = ["mac", "ios", "vcf", "all"])]
        layout: String,
        /// Also write the truth here as JSON: `{"base": [...], "renamed": [...]}`, one
        /// `{handle, expected_display_name, photo_sha256}` per handle of the account.
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Pack a Messages folder (`sms.db` or `chat.db`, and `Attachments/`) into an iPhone backup
    /// folder, encrypted when a password file is given. `AddressBook.sqlitedb` and
    /// `AddressBookImages.sqlitedb` in the folder go in as HomeDomain `Library/AddressBook/…`.
    /// Prints one JSON line (files, encrypted).
    IosBackup {
        /// Folder with `sms.db` (or a Mac's `chat.db`) and an `Attachments/` tree.
        #[arg(long)]
        from_dir: PathBuf,
        /// The backup folder to write (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Encrypt with the password in this file (one trailing line break is not part of it).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Use iOS's key derivation rounds (10,000,000 + 10,000) instead of test-sized ones
        /// (1,000 + 10).
        #[arg(long)]
        real_iterations: bool,
        /// Also store this file as HomeDomain `Library/AddressBook/AddressBook.sqlitedb`.
        #[arg(long)]
        address_book: Option<PathBuf>,
        /// Seed of the keys (the same seed and files give the same backup).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args)]
struct AccountArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Chats besides the big chat.
    #[arg(long, default_value_t = 30)]
    chats: u32,
    /// Messages spread over those chats.
    #[arg(long, default_value_t = 3000)]
    messages: u64,
    /// Messages in the one big group chat (0: none).
    #[arg(long, default_value_t = 25072)]
    big_chat: u64,
    /// Messages that arrive after the history: served once `POST /_sim/release-later` is called.
    #[arg(long, default_value_t = 0)]
    later: u64,
    /// Also serve every file of DIR/attributed-body, DIR/summary-info and DIR/payload as that
    /// msgProto field of one message, in a chat named "Apple fixtures" (e.g.
    /// ../shared/fixtures/apple); `truth` names each message's file.
    #[arg(long)]
    apple_blobs: Option<PathBuf>,
}

#[derive(Args)]
struct FaultArgs {
    /// Changes per record/sync page.
    #[arg(long, default_value_t = 200)]
    page_size: usize,
    /// Probability that a request fails (HTTP 503 or an operation error).
    #[arg(long, default_value_t = 0.0)]
    page_errors: f64,
    /// Each injected failure is followed by this many failures in total.
    #[arg(long, default_value_t = 1)]
    error_burst: u32,
    /// Probability of an HTTP 429 response.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Retry-After seconds sent with 429.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// Fraction of records whose key appears only after a key refresh.
    #[arg(long, default_value_t = 0.0)]
    pcs_late: f64,
    /// Key refreshes after which a late key appears (2: within the sync that met it).
    #[arg(long, default_value_t = 2)]
    late_refreshes: u64,
    /// Fraction of records whose key never appears.
    #[arg(long, default_value_t = 0.0)]
    pcs_lost: f64,
    /// Fraction of message-zone changes served as bytes that are not a valid record change.
    #[arg(long, default_value_t = 0.0)]
    bad_changes: f64,
    /// Probability that an attachment container download fails (HTTP 503, or a body that breaks
    /// off half-way).
    #[arg(long, default_value_t = 0.0)]
    asset_errors: f64,
    /// On release, after the later messages: N history messages deleted, N unsent, N edited
    /// again, and one group's participants changed (one removed, one new handle).
    #[arg(long, default_value_t = 0)]
    revise: u64,
}

impl AccountArgs {
    fn spec(&self) -> AccountSpec {
        AccountSpec { seed: self.seed, chats: self.chats, messages: self.messages, big_chat: self.big_chat, later: self.later }
    }

    /// The simulator for these arguments.
    fn sim(&self, faults: Faults) -> anyhow::Result<Sim> {
        let spec = self.spec();
        anyhow::ensure!(spec.chats > 0 || spec.messages + spec.later == 0, "--messages and --later need at least one chat (--chats)");
        let sim = Sim::new(spec, faults);
        Ok(match &self.apple_blobs {
            None => sim,
            Some(dir) => {
                let friend = sim.account.chats.iter().flat_map(|c| c.participants.first()).next().cloned().unwrap_or_else(|| "tel:+15550001111".into());
                let fixtures = cloudkit_sim::fixtures::AppleFixtures::load(dir, &friend).with_context(|| format!("reading {}", dir.display()))?;
                anyhow::ensure!(!fixtures.messages.is_empty(), "{} has no blobs under attributed-body/, summary-info/ or payload/", dir.display());
                sim.with_apple_fixtures(fixtures)
            }
        })
    }
}

impl FaultArgs {
    fn faults(&self) -> anyhow::Result<Faults> {
        for (name, v) in [
            ("page-errors", self.page_errors),
            ("throttle", self.throttle),
            ("pcs-late", self.pcs_late),
            ("pcs-lost", self.pcs_lost),
            ("bad-changes", self.bad_changes),
            ("asset-errors", self.asset_errors),
        ] {
            anyhow::ensure!((0.0..=1.0).contains(&v), "--{name} must be between 0 and 1, got {v}");
        }
        anyhow::ensure!(self.page_size > 0, "--page-size must be at least 1");
        Ok(Faults {
            page_size: self.page_size,
            page_errors: self.page_errors,
            error_burst: self.error_burst.max(1),
            throttle: self.throttle,
            retry_after_secs: self.retry_after,
            pcs_late: self.pcs_late,
            late_refreshes: self.late_refreshes.max(1),
            pcs_lost: self.pcs_lost,
            bad_changes: self.bad_changes,
            asset_errors: self.asset_errors,
            revise: self.revise,
        })
    }
}

/// Writes one JSON line.
fn write_line(out: &mut impl Write, line: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    Ok(out.write_all(b"\n")?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match Cli::parse().command {
        Command::Serve { listen, write_session, account, faults } => {
            let sim = Arc::new(account.sim(faults.faults()?)?);
            tracing::info!(messages = sim.account.total, chats = sim.account.chats.len(), attachments = sim.account.attachments.len(), "account generated");
            let (addr, server) = cloudkit_sim::spawn(sim.clone(), listen).await.with_context(|| format!("binding {listen}"))?;
            if let Some(path) = write_session {
                sim.session_at(&format!("http://{addr}")).save(&path).with_context(|| format!("writing {}", path.display()))?;
            }
            println!("listening on http://{addr}");
            std::io::stdout().flush()?;
            tokio::select! {
                r = server => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!(stats = ?sim.stats(), "stopped");
        }
        Command::Truth { account, released, faults } => {
            let sim = account.sim(faults.faults()?)?;
            if released {
                sim.release_later();
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut result = Ok(());
            sim.truth(|line| {
                if result.is_ok() {
                    result = write_line(&mut out, &line);
                }
            });
            if released {
                for guid in sim.revisions().guids(RevisionKind::Deleted) {
                    if result.is_ok() {
                        result = write_line(&mut out, &serde_json::json!({ "kind": "deleted", "guid": guid }));
                    }
                }
            }
            result?;
            out.flush()?;
        }
        Command::MessagesFolder { out, account, schema, truth, no_files } => {
            anyhow::ensure!(
                account.later == 0 && account.apple_blobs.is_none(),
                "messages-folder writes the history only: --later and --apple-blobs are not supported"
            );
            let sim = account.sim(Faults::default())?;
            let schema = cloudkit_sim::chatdb::Schema::parse(&schema).with_context(|| format!("unknown schema {schema}"))?;
            let layout = cloudkit_sim::chatdb::Layout::new(&sim.account, schema);
            let started = std::time::Instant::now();
            let summary = cloudkit_sim::chatdb::write_folder_with(&layout, &out, !no_files).await.with_context(|| format!("writing {}", out.display()))?;
            tracing::info!(?summary, seconds = started.elapsed().as_secs_f64(), "messages folder written");
            if let Some(path) = truth {
                let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let mut w = std::io::BufWriter::new(file);
                let mut result = Ok(());
                cloudkit_sim::chatdb::truth(&layout, |line| {
                    if result.is_ok() {
                        result = write_line(&mut w, &line);
                    }
                });
                result?;
                w.flush()?;
            }
            println!("{}", out.join("chat.db").display());
        }
        Command::Contacts { out, account, layout, truth } => {
            use cloudkit_sim::contacts;
            anyhow::ensure!(
                account.later == 0 && account.apple_blobs.is_none(),
                "contacts covers the history's people only: --later and --apple-blobs are not supported"
            );
            let sim = account.sim(Faults::default())?;
            let base = contacts::plan(&sim.account);
            let renamed = contacts::renamed(&base);
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let all = layout == "all";
            if all || layout == "vcf" {
                for (name, book) in [("contacts.vcf", &base), ("contacts-renamed.vcf", &renamed)] {
                    let path = out.join(name);
                    anyhow::ensure!(!path.exists(), "{} already exists", path.display());
                    std::fs::write(&path, contacts::vcf::file(&book.cards)).with_context(|| format!("writing {}", path.display()))?;
                }
            }
            if all || layout == "mac" {
                contacts::sqlite::write_mac(&out, &base.cards).await.with_context(|| format!("writing the Mac address book into {}", out.display()))?;
            }
            if all || layout == "ios" {
                contacts::sqlite::write_ios(&out, &base.cards).await.with_context(|| format!("writing the iPhone address book into {}", out.display()))?;
            }
            if let Some(path) = truth {
                let json = serde_json::json!({ "base": contacts::truth(&base), "renamed": contacts::truth(&renamed) });
                std::fs::write(&path, serde_json::to_vec_pretty(&json)?).with_context(|| format!("writing {}", path.display()))?;
            }
            tracing::info!(cards = base.cards.len(), handles = base.handles.len(), out = %out.display(), "contacts written");
        }
        Command::IosBackup { from_dir, out, password_file, real_iterations, address_book, seed } => {
            use cloudkit_sim::backup::{self, BackupEntry, Content, Encryption, Iterations, PackOptions};
            let mut entries = backup::entries_from_messages_dir(&from_dir).with_context(|| format!("reading {}", from_dir.display()))?;
            if let Some(path) = address_book {
                entries.retain(|e| e.relative_path != "Library/AddressBook/AddressBook.sqlitedb");
                entries.push(BackupEntry {
                    domain: "HomeDomain".into(),
                    relative_path: "Library/AddressBook/AddressBook.sqlitedb".into(),
                    content: Content::File(path),
                });
            }
            let encryption = match password_file {
                None => None,
                Some(path) => {
                    let mut password = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    if password.ends_with(b"\n") {
                        password.pop();
                        if password.ends_with(b"\r") {
                            password.pop();
                        }
                    }
                    let iterations = if real_iterations { Iterations::REAL } else { Iterations::TEST };
                    Some(Encryption { password, iterations })
                }
            };
            let encrypted = encryption.is_some();
            let options = PackOptions { encryption, seed, ..PackOptions::default() };
            let files = backup::pack(&out, &entries, &options).await.with_context(|| format!("writing the backup to {}", out.display()))?.files;
            tracing::info!(files, encrypted, out = %out.display(), "backup written");
            write_line(&mut std::io::stdout().lock(), &serde_json::json!({ "files": files, "encrypted": encrypted, "out": out }))?;
        }
    }
    Ok(())
}
