//! `deliver-bench`: how close does the bridge's delivery come to the homeserver's own ceiling?
//!
//! Against ONE Synapse in one run it measures
//! - **raw ingest**: the least any bridge must ask of the homeserver for the same rooms, done
//!   straight with the appservice token and no bridge logic — per chat: create the room, register
//!   and name one ghost per participant, invite and join them and the owner (who, double
//!   puppeted, sends the from-me messages), then the same events the bridge will
//!   send into that chat — texts, and reactions for tapbacks — as timestamped sends
//!   (`PUT /send?ts=`), one sequential stream per room, `rooms` rooms at once;
//! - **bridge delivery**: `imessage-bridge deliver` (release build) for that account, after `sync`
//!   stored it: the same rooms, members and message counts, plus everything the bridge does
//!   around them (store reads, the delivery ledger, in-flight checks).
//!
//! The ratio bridge/raw is the point (target ≥ 0.95). Synapse, the simulator and the bridge all
//! run on 127.0.0.1; Synapse comes from `scripts/start-synapse.sh`, as in the tests and the demo.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::stream::{self, StreamExt};
use cloudkit::records::MessageRecord;
use matrix::HomeserverClient;
use serde_json::json;

const OWNER: &str = "@owner:localhost";

#[derive(Parser)]
#[command(name = "deliver-bench", about = "Bridge delivery rate vs raw appservice ingest on one Synapse")]
struct Args {
    /// Messages in the account (spread over `rooms` chats).
    #[arg(long, default_value_t = 4000)]
    messages: u64,
    /// Rooms, and rooms delivered at once (the bridge's default concurrency is 4).
    #[arg(long, default_value_t = 4)]
    rooms: u32,
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("executable has no directory")?.to_path_buf(),
    };
    let (sim_bin, bridge_bin) = (bin_dir.join("cloudkit-sim"), bin_dir.join("imessage-bridge"));
    for b in [&sim_bin, &bridge_bin] {
        if !b.exists() {
            bail!("{} is missing: run bench/deliver.sh (it builds the release binaries)", b.display());
        }
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    // Simulator: `rooms` chats, no big chat.
    let mut sim = Killed(
        Command::new(&sim_bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--big-chat", "0"])
            .args(["--chats", &args.rooms.to_string(), "--messages", &args.messages.to_string()])
            .arg("--write-session")
            .arg(d.join("session.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let mut line = String::new();
    BufReader::new(sim.0.stdout.take().context("no simulator stdout")?).read_line(&mut line)?;
    let sim_url = line.trim().strip_prefix("listening on ").context("simulator did not print its address")?.to_string();

    let (hs_port, as_port) = (free_port()?, free_port()?);
    let hs_url = format!("http://127.0.0.1:{hs_port}");
    run(
        Command::new(&bridge_bin)
            .args(["init", "--homeserver", &hs_url, "--domain", "localhost", "--owner", OWNER])
            .args(["--cloudkit", &sim_url, "--database", "sqlite:bridge.db", "--force"])
            .arg("--session")
            .arg(d.join("session.json"))
            .arg("--out")
            .arg(d)
            .args(["--listen", &format!("127.0.0.1:{as_port}")]),
        "imessage-bridge init",
    )?;
    let config = std::fs::read_to_string(d.join("config.yaml"))?.replace("concurrency: 4", &format!("concurrency: {}", args.rooms));
    std::fs::write(d.join("config.yaml"), config)?;
    let _synapse = Killed(
        Command::new(repo_root().join("scripts/start-synapse.sh"))
            .arg(d.join("synapse"))
            .arg(hs_port.to_string())
            .arg("localhost")
            .arg(d.join("registration.yaml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("synapse.log"))?)
            .spawn()?,
    );
    let reg: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(d.join("registration.yaml"))?)?;
    let hs = HomeserverClient::new(&hs_url, reg["as_token"].as_str().context("no as_token")?)?;
    hs.wait_ready(Duration::from_secs(180)).await.context("Synapse did not start")?;

    run(Command::new(&bridge_bin).arg("-c").arg(d.join("config.yaml")).arg("sync").env("RUST_LOG", "warn"), "sync")?;
    let store = store::open(&format!("sqlite:{}", d.join("bridge.db").display())).await?;
    // What the bridge will deliver, chat by chat.
    let mut plan = Vec::new();
    for chat in store.chats().await? {
        plan.push((chat.participants.clone(), store.undelivered(&chat.chat_id).await?));
    }
    let to_deliver: u64 = plan.iter().map(|(_, m)| m.len() as u64).sum();

    let bot = matrix::ghost::bot_user_id("localhost");
    hs.register(matrix::ghost::BOT_LOCALPART).await?;
    hs.register(OWNER.trim_start_matches('@').split(':').next().unwrap_or("owner")).await?;

    // Raw ingest before and after the bridge: the homeserver slows down as its database grows,
    // so the bridge is compared with the mean of the two. During raw ingest the bench serves the
    // appservice API on the registration's URL, as the bridge does while it delivers: the
    // homeserver pushes every event in the namespace there, and that work must be in both.
    let as_addr: std::net::SocketAddr = format!("127.0.0.1:{as_port}").parse()?;
    let hs_token = reg["hs_token"].as_str().context("no hs_token")?.to_string();
    let receiver = || matrix::appservice::serve(matrix::appservice::AppserviceState::new(&hs_token, "localhost"), as_addr);
    let (_, listening) = receiver().await?;
    let (raw_sent, raw_before) = raw_ingest(&hs, &bot, &plan, args.rooms as usize, "before").await?;
    listening.abort();
    let _ = listening.await;
    let started = Instant::now();
    run(Command::new(&bridge_bin).arg("-c").arg(d.join("config.yaml")).arg("deliver").env("RUST_LOG", "warn"), "deliver")?;
    let bridge_secs = started.elapsed().as_secs_f64();
    let delivered = store.delivered_count().await? as u64;
    if delivered != to_deliver {
        bail!("the bridge delivered {delivered} of {to_deliver} messages");
    }
    let (_, listening) = receiver().await?;
    let (_, raw_after) = raw_ingest(&hs, &bot, &plan, args.rooms as usize, "after").await?;
    listening.abort();
    let raw_secs = (raw_before + raw_after) / 2.0;
    let raw_rate = raw_sent as f64 / raw_secs;
    let bridge_rate = delivered as f64 / bridge_secs;
    let ratio = bridge_rate / raw_rate;
    if args.json {
        let raw = json!({ "per_s": raw_rate, "secs_before": raw_before, "secs_after": raw_after });
        println!("{}", json!({ "messages": delivered, "rooms": args.rooms, "raw": raw, "bridge_per_s": bridge_rate, "ratio": ratio }));
    } else {
        println!("| what | events | seconds | events/s |\n|---|---:|---:|---:|");
        for (when, secs) in [("before", raw_before), ("after", raw_after)] {
            println!("| raw appservice ingest, {when} the bridge ({} rooms) | {raw_sent} | {secs:.1} | {:.1} |", args.rooms, raw_sent as f64 / secs);
        }
        println!("| bridge delivery (`deliver`, {} rooms) | {delivered} | {bridge_secs:.1} | {bridge_rate:.1} |", args.rooms);
        println!("\nratio bridge/raw (mean of both raw runs): {ratio:.3} (target ≥ 0.95: {})", if ratio >= 0.95 { "met" } else { "not met" });
    }
    Ok(())
}

/// One raw-ingest run over `plan` (participants and messages per chat), `rooms` rooms at once:
/// what any bridge must ask of the homeserver for these chats, with no bridge logic. Returns the
/// events sent and the seconds taken.
async fn raw_ingest(
    hs: &HomeserverClient,
    bot: &str,
    plan: &[(Vec<String>, Vec<MessageRecord>)],
    rooms: usize,
    tag: &str,
) -> Result<(u64, f64)> {
    let started = Instant::now();
    let results: Vec<Result<u64>> = stream::iter(plan.iter().enumerate())
        .map(|(r, (participants, messages))| async move {
            let room = hs.create_room(bot, &json!({ "preset": "private_chat", "name": format!("raw {tag} {r}") })).await?;
            let room = room.as_str();
            // The owner reads every portal (and sends from-me messages, double puppeted): the
            // homeserver evaluates push rules for them on every event.
            hs.invite(room, bot, OWNER).await?;
            hs.join(room, OWNER).await?;
            let mut senders = HashMap::from([("me".to_string(), OWNER.to_string())]);
            for handle in participants {
                let raw = format!("raw-{tag}-{r}-{handle}");
                let ghost = matrix::ghost::ghost_user_id(&raw, "localhost");
                hs.register(&matrix::ghost::ghost_localpart(&raw)).await?;
                hs.set_displayname(&ghost, &raw).await?;
                hs.invite(room, bot, &ghost).await?;
                hs.join(room, &ghost).await?;
                senders.insert(handle.clone(), ghost);
            }
            let mut event_ids: HashMap<&str, String> = HashMap::new();
            for (i, m) in messages.iter().enumerate() {
                let handle = if m.from_me() { "me" } else { m.sender.as_str() };
                let sender = senders.get(handle).with_context(|| format!("sender {handle} is not a participant"))?;
                let target = m.associated_guid.as_deref().map(|t| t.rsplit('/').next().unwrap_or(t));
                let reaction = m.associated_type.and_then(matrix::render::tapback_key).zip(target.and_then(|t| event_ids.get(t)));
                let (event_type, content) = match reaction {
                    Some((key, event_id)) => {
                        ("m.reaction", json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": event_id, "key": key } }))
                    }
                    None => ("m.room.message", json!({ "msgtype": "m.text", "body": m.text.clone().unwrap_or_default() })),
                };
                let event_id = hs.send(room, sender, event_type, &format!("raw-{tag}-{r}-{i}"), Some(m.ts_ms), &content).await?;
                event_ids.insert(m.guid.as_str(), event_id.to_string());
            }
            Ok(messages.len() as u64)
        })
        .buffer_unordered(rooms)
        .collect()
        .await;
    let mut sent = 0;
    for r in results {
        sent += r?;
    }
    Ok((sent, started.elapsed().as_secs_f64()))
}
