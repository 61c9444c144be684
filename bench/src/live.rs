//! `live-bench`: how long does a new message take to reach its room while another chat's history
//! is still going in?
//!
//! One simulated account: a big group chat (`--big-chat`, ≥ 4,000 messages of history) and small
//! chats, with `--later` messages held back by the simulator. `imessage-bridge run` (not
//! `--once`: sync and delivery side by side, as a user runs it) is started against a Synapse;
//! once every small room is live (its history in) while the big room still takes in its own,
//! the later messages are released (`POST /_sim/release-later`). From that moment a client
//! (the appservice token, reading as the bot) pages each small room every 100 ms; the latency of
//! an event is when it was first seen minus the release. Reported: median and max over the new
//! events of the small rooms, and whether the big room still had history pending at the end
//! (else the figure would not be the one asked for). Goal: at most the sync interval + 2 s.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use matrix::HomeserverClient;
use serde_json::{json, Value};

#[path = "stack.rs"]
mod stack;
use stack::{run, Killed, OWNER};

#[derive(Parser)]
#[command(name = "live-bench", about = "Latency of new messages in live rooms while a big history goes in")]
struct Args {
    /// Messages of the big chat's history.
    #[arg(long, default_value_t = 4000)]
    big_chat: u64,
    /// Small chats, and the messages of their history.
    #[arg(long, default_value_t = 4)]
    chats: u32,
    #[arg(long, default_value_t = 80)]
    messages: u64,
    /// Messages released at once (over every chat, the big one too).
    #[arg(long, default_value_t = 40)]
    later: u64,
    /// The bridge's `sync_interval_secs`.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// `status --json`'s rooms.
fn rooms(bridge: &Path, config: &Path) -> Result<Vec<Value>> {
    let out = run(Command::new(bridge).arg("-c").arg(config).args(["status", "--json"]), "status")?;
    let status: Value = serde_json::from_slice(&out)?;
    status["rooms"].as_array().cloned().context("status --json has no rooms")
}

fn int(room: &Value, key: &str) -> i64 {
    room[key].as_i64().unwrap_or(0)
}

/// The event ids in the newest `limit` events of `room` that the bridge sent (they carry its key).
async fn bridged_events(hs: &HomeserverClient, room: &str, bot: &str) -> Result<Vec<String>> {
    let page = hs.messages(room, bot, None, "b", 100).await?;
    Ok(page.chunk.iter().filter(|e| e["content"][matrix::send::LEDGER_KEY].is_string()).filter_map(|e| e["event_id"].as_str().map(str::to_string)).collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (sim_bin, bridge_bin) = stack::binaries(args.bin_dir.as_deref(), "bench/live.sh")?;
    let sim_args = [("--big-chat", args.big_chat), ("--chats", u64::from(args.chats) + 1), ("--messages", args.messages), ("--later", args.later)]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect::<Vec<_>>();
    let interval = format!("sync_interval_secs: {}", args.interval);
    let stack = stack::Stack::start(&sim_bin, &bridge_bin, &sim_args, |config| config.replace("sync_interval_secs: 60", &interval)).await?;
    let (d, hs, sim_url, config_path) = (stack.dir.path(), &stack.hs, &stack.sim_url, stack.config());
    hs.register(OWNER.trim_start_matches('@').split(':').next().unwrap_or("owner")).await?;
    let bot = matrix::ghost::bot_user_id("localhost");

    let _run = Killed(
        Command::new(&bridge_bin)
            .arg("-c")
            .arg(&config_path)
            .args(["--log-format", "json", "run"])
            .env("RUST_LOG", "warn,imessage_bridge::run=info")
            .env("NO_COLOR", "1")
            .stderr(std::fs::File::create(d.join("run.log"))?)
            .spawn()?,
    );
    // Every small room live while the big room (the most messages) still takes in its history.
    let started = Instant::now();
    let (big, small): (String, Vec<(String, String)>) = loop {
        let rooms = rooms(&bridge_bin, &config_path)?;
        let big = rooms.iter().max_by_key(|r| int(r, "stored")).and_then(|r| r["chat_id"].as_str()).unwrap_or_default().to_string();
        let small: Vec<&Value> = rooms.iter().filter(|r| r["chat_id"] != big.as_str()).collect();
        if !small.is_empty() && small.iter().all(|r| r["state"] == "live" && int(r, "pending") + int(r, "in_flight") == 0) {
            let ids: Vec<(String, String)> =
                small.iter().filter_map(|r| Some((r["chat_id"].as_str()?.to_string(), r["room_id"].as_str()?.to_string()))).collect();
            break (big, ids);
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the small rooms did not become live in 30 minutes (see {})", d.join("run.log").display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let big_before = rooms(&bridge_bin, &config_path)?.into_iter().find(|r| r["chat_id"] == big.as_str()).context("no big room")?;
    let mut known: HashSet<String> = HashSet::new();
    for (_, room) in &small {
        known.extend(bridged_events(hs, room, &bot).await?);
    }

    let small_delivered = |rooms: &[Value]| rooms.iter().filter(|r| r["chat_id"] != big.as_str()).map(|r| int(r, "delivered")).sum::<i64>();
    let delivered_before = small_delivered(&rooms(&bridge_bin, &config_path)?);

    // Release, then watch the small rooms as a client until they have caught up again. Status
    // (a subprocess) is read on a thread of its own every 2 s, so it never delays a look.
    let (released, released_unix) = (Instant::now(), unix_secs(std::time::SystemTime::now()));
    reqwest::Client::new().post(format!("{sim_url}/_sim/release-later")).send().await?.error_for_status()?;
    let (caught_up_tx, mut caught_up_rx) = tokio::sync::watch::channel(None::<Value>);
    let watcher = {
        let (bridge_bin, config_path, big) = (bridge_bin.clone(), config_path.clone(), big.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            loop {
                std::thread::sleep(Duration::from_secs(2));
                let rooms = rooms(&bridge_bin, &config_path)?;
                let small = || rooms.iter().filter(|r| r["chat_id"] != big.as_str());
                let waiting: i64 = small().map(|r| int(r, "pending") + int(r, "in_flight")).sum();
                let delivered: i64 = small().map(|r| int(r, "delivered")).sum();
                if waiting == 0 && delivered > delivered_before {
                    let _ = caught_up_tx.send(rooms.into_iter().find(|r| r["chat_id"] == big.as_str()));
                    return Ok(());
                }
                if caught_up_tx.is_closed() {
                    return Ok(());
                }
            }
        })
    };
    let mut seen: HashMap<String, Duration> = HashMap::new();
    let mut caught_up = None;
    let big_after = loop {
        for (_, room) in &small {
            for id in bridged_events(hs, room, &bot).await? {
                if !known.contains(&id) {
                    seen.entry(id).or_insert_with(|| released.elapsed());
                }
            }
        }
        // The look after the one that found the small rooms caught up is the last.
        if let Some(big) = caught_up {
            break big;
        }
        if watcher.is_finished() {
            caught_up = Some(caught_up_rx.borrow_and_update().clone().context("status watcher ended without an answer")?);
        }
        if released.elapsed() > Duration::from_secs(600) {
            bail!("the small rooms did not catch up in 10 minutes ({} new events seen)", seen.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // When the sync pass that stored them ended (`run`'s log): the rest is the delivery's part.
    let log = std::fs::read_to_string(d.join("run.log"))?;
    let stored_after = log.lines().filter_map(sync_finished_at).map(|t| t - released_unix).find(|t| *t >= 0.0);
    let mut latencies: Vec<f64> = seen.values().map(Duration::as_secs_f64).collect();
    latencies.sort_by(f64::total_cmp);
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0);
    let max = latencies.last().copied().unwrap_or(0.0);
    let goal = args.interval as f64 + 2.0;
    let stored_s = stored_after.map_or("-".to_string(), |t| format!("{t:.2}"));
    let big_pending = int(&big_after, "pending") + int(&big_after, "in_flight");
    if args.json {
        println!(
            "{}",
            json!({ "events": latencies.len(), "median_s": median, "max_s": max, "interval_s": args.interval, "goal_s": goal, "stored_after_s": stored_after,
                "big_chat": { "pending_at_release": int(&big_before, "pending"), "pending_at_end": big_pending, "state_at_end": big_after["state"] } })
        );
    } else {
        println!("| new events in live rooms | median (s) | max (s) | goal: interval + 2 s | stored after (s) | big room pending at release → at end |\n|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {median:.2} | {max:.2} | {goal:.0} ({}) | {stored_s} | {} → {big_pending} ({}) |",
            latencies.len(),
            if max <= goal { "met" } else { "not met" },
            int(&big_before, "pending"),
            big_after["state"].as_str().unwrap_or("-"),
        );
    }
    if big_pending == 0 {
        bail!("the big room's history was all in before the later messages were: the figure is not the one asked for (use a bigger --big-chat)");
    }
    Ok(())
}

fn unix_secs(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// When a sync pass ended, from a line of the bridge's JSON log that carries the
/// `sync_finished` progress marker: its `timestamp`, seconds since the epoch.
fn sync_finished_at(line: &str) -> Option<f64> {
    let (marker, event) = testkit::campaign::progress_event(line)?;
    if marker != matrix::progress::SYNC_FINISHED {
        return None;
    }
    rfc3339_secs(event.get("timestamp")?.as_str()?)
}

/// An RFC 3339 UTC time (`2026-12-02T21:44:03.123456Z`, as the log writes it), seconds since the
/// epoch.
fn rfc3339_secs(stamp: &str) -> Option<f64> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let mut hms = time.split(':');
    let (h, min, sec) = (hms.next()?.parse::<f64>().ok()?, hms.next()?.parse::<f64>().ok()?, hms.next()?.parse::<f64>().ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sync_finished_marker_gives_its_time() {
        let line = r#"{"timestamp":"2026-12-02T21:44:03.500000Z","level":"INFO","fields":{"message":"sync finished","progress":"sync_finished","changes":5},"target":"imessage_bridge::run"}"#;
        assert_eq!(super::sync_finished_at(line), Some(1_796_247_843.5));
        assert_eq!(super::sync_finished_at(&line.replace("sync_finished", "files_done")), None);
        assert_eq!(super::sync_finished_at("2026-12-02T21:44:03Z  INFO sync finished"), None);
    }
}
