//! `crash-campaign`: does the bridge lose, duplicate or misorder anything when it is SIGKILLed
//! at random moments? For each seed, [`campaign::run_seed`] kills `run --once` `--kills` times
//! across sync, attachment download, delivery and media upload (moments from a seeded RNG),
//! releases the later messages halfway, lets it finish, and compares every room with the
//! simulator's truth by back-pagination. Prints one table row per seed and the totals; exits 1
//! if any message is missing, duplicated, out of order or shown with the wrong sender.
//! `scripts/crash-campaign.sh` builds the release binaries and runs this.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cloudkit_sim::{AccountSpec, Faults};
use testkit::campaign;

#[derive(Parser)]
#[command(name = "crash-campaign", about = "SIGKILL the bridge at random moments, then compare every room with the truth")]
struct Args {
    /// Seeds: a count N (seeds 1..=N) or a comma-separated list.
    #[arg(long, default_value = "2")]
    seeds: String,
    /// Kills per seed.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Stop starting new lives after this many seconds in all (the runs in flight finish).
    #[arg(long, default_value_t = 1500)]
    deadline_secs: u64,
    #[arg(long, default_value_t = 8)]
    chats: u32,
    #[arg(long, default_value_t = 1500)]
    messages: u64,
    #[arg(long, default_value_t = 1500)]
    big_chat: u64,
    #[arg(long, default_value_t = 200)]
    later: u64,
    /// Directory of the release binaries (default: this executable's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// The faults every seed runs with (besides the kills).
pub fn faults() -> Faults {
    Faults { page_size: 25, page_errors: 0.03, throttle: 0.01, retry_after_secs: 0, pcs_late: 0.01, asset_errors: 0.05, ..Faults::default() }
}

fn seeds(arg: &str) -> Result<Vec<u64>> {
    if arg.contains(',') {
        return arg.split(',').map(|s| s.trim().parse().with_context(|| format!("seed {s:?}"))).collect();
    }
    let n: u64 = arg.parse().with_context(|| format!("--seeds {arg:?}: a count or a comma-separated list"))?;
    Ok((1..=n).collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // On SIGTERM (the script's `timeout`) or Ctrl-C the campaign's future is dropped, and with it
    // the bridge, Synapse and the simulator it started (they are killed on drop).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let all_right = tokio::select! {
        r = campaign(args) => r?,
        _ = term.recv() => bail!("stopped by SIGTERM"),
        _ = tokio::signal::ctrl_c() => bail!("stopped by Ctrl-C"),
    };
    if !all_right {
        std::process::exit(1);
    }
    Ok(())
}

/// Every seed in turn; true if every room of every seed matched the truth.
async fn campaign(args: Args) -> Result<bool> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("executable has no directory")?.to_path_buf(),
    };
    let bridge_bin = bin_dir.join("imessage-bridge");
    if !bridge_bin.exists() {
        bail!("{} is missing: run scripts/crash-campaign.sh (it builds the release binaries)", bridge_bin.display());
    }
    let deadline = Instant::now() + Duration::from_secs(args.deadline_secs);
    let f = faults();
    println!(
        "account per seed: {} chats, {} messages, big chat {}, {} later; faults: page size {}, page errors {}, throttle {}, pcs-late {}, asset errors {}",
        args.chats, args.messages, args.big_chat, args.later, f.page_size, f.page_errors, f.throttle, f.pcs_late, f.asset_errors
    );
    println!("\n| seed | kills | sync | download | delivery | upload | rooms | messages | missing | duplicated | out of order | wrong sender | unexpected | bot events | bad rooms | seconds |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = Vec::new();
    for seed in seeds(&args.seeds)? {
        let plan = campaign::Plan {
            account: AccountSpec { seed, chats: args.chats, messages: args.messages, big_chat: args.big_chat, later: args.later },
            faults: f.clone(),
            kills: args.kills,
            bridge_bin: bridge_bin.clone(),
            repo_root: campaign::repo_root_from(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
            database: None,
            deadline,
            verbose: true,
        };
        let r = campaign::run_seed(&plan).await.with_context(|| format!("seed {seed}"))?;
        let t = &r.totals;
        let k = |p| r.kills.get(&p).copied().unwrap_or(0);
        use campaign::Phase::*;
        println!(
            "| {seed} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            r.killed(),
            if r.cut_short { " (cut short)" } else { "" },
            k(Sync),
            k(Download),
            k(Delivery),
            k(Upload),
            t.rooms,
            t.messages,
            t.missing,
            t.duplicated,
            t.out_of_order,
            t.wrong_sender,
            t.unexpected,
            t.bot_events,
            t.bad_rooms,
            r.secs
        );
        eprintln!("seed {}: {} lives ended on their own before their kill", r.seed, r.finished_lives);
        for c in r.checks.iter().filter(|c| !c.ok()) {
            eprintln!("seed {seed}: {c:?}");
        }
        all.push(r);
    }
    let sum = |f: &dyn Fn(&campaign::Report) -> usize| all.iter().map(f).sum::<usize>();
    let bad = sum(&|r| {
        r.totals.missing + r.totals.duplicated + r.totals.out_of_order + r.totals.wrong_sender + r.totals.unexpected + r.totals.bot_events + r.totals.bad_rooms
    });
    println!(
        "\ntotal: {} seeds, {} kills, {} messages, {} missing, {} duplicated, {} out of order, {} wrong sender",
        all.len(),
        sum(&|r| r.killed()),
        sum(&|r| r.totals.messages),
        sum(&|r| r.totals.missing),
        sum(&|r| r.totals.duplicated),
        sum(&|r| r.totals.out_of_order),
        sum(&|r| r.totals.wrong_sender)
    );
    Ok(bad == 0)
}
