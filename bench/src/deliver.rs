//! `deliver-bench`: how close does the bridge's delivery come to the homeserver's own ceiling?
//!
//! Against ONE Synapse in one run it measures
//! - **raw ingest**: the least any bridge must ask of the homeserver for the same rooms, done
//!   straight with the appservice token and no bridge logic — per chat: create the room, register
//!   and name one ghost per participant, invite and join them and the owner (who, double
//!   puppeted, sends the from-me messages), then the same events the bridge will
//!   send into that chat — its plan from `matrix::render`: text parts, attachments prepared and
//!   uploaded as media, edits, replies, reactions and their redactions — as timestamped sends
//!   (`PUT /send?ts=`), one sequential stream per room, `rooms` rooms at once, with the owner's
//!   push rule muted meanwhile and read markers set at the end, as for history;
//! - **bridge delivery**: `imessage-bridge deliver` (release build) for that account, after `sync`
//!   stored it: the same rooms, members and message counts, plus everything the bridge does
//!   around them (store reads, the delivery ledger, in-flight checks).
//!
//! The ratio bridge/raw is the point (target ≥ 0.95). Synapse, the simulator and the bridge all
//! run on 127.0.0.1; Synapse comes from `scripts/start-synapse.sh`, as in the tests and the demo.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[path = "media_upload.rs"]
mod media_upload;
#[path = "stack.rs"]
mod stack;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cloudkit::records::MessageRecord;
use futures_util::stream::{self, StreamExt};
use matrix::HomeserverClient;
use serde_json::json;

use stack::{run, OWNER};

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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (sim_bin, bridge_bin) = stack::binaries(args.bin_dir.as_deref(), "bench/deliver.sh")?;
    // Simulator: `rooms` chats, no big chat.
    let sim_args = ["--big-chat", "0", "--chats", &args.rooms.to_string(), "--messages", &args.messages.to_string()].map(String::from);
    let stack =
        stack::Stack::start(&sim_bin, &bridge_bin, &sim_args, |config| config.replace("concurrency: 4", &format!("concurrency: {}", args.rooms))).await?;
    let (d, reg, hs, as_port) = (stack.dir.path(), &stack.registration, &stack.hs, stack.as_port);
    run(Command::new(&bridge_bin).arg("-c").arg(d.join("config.yaml")).arg("sync").env("RUST_LOG", "warn"), "sync")?;
    let store = store::open(&format!("sqlite:{}", d.join("bridge.db").display())).await?;
    // What the bridge will deliver, chat by chat.
    let mut plan = Vec::new();
    for chat in store.chats().await? {
        plan.push((chat.participants.clone(), store.undelivered(&chat.chat_id).await?));
    }
    let to_deliver: u64 = plan.iter().map(|(_, m)| m.len() as u64).sum();
    let media = Media { dir: d.join("attachments"), config: matrix::media::MediaConfig::default() };

    let bot = matrix::ghost::bot_user_id("localhost");
    hs.register(matrix::ghost::BOT_LOCALPART).await?;
    // Media upload throughput on its own, before any room exists.
    let uploads = media_upload::measure(hs, &bot, d).await?;
    hs.register(OWNER.trim_start_matches('@').split(':').next().unwrap_or("owner")).await?;

    // Raw ingest before and after the bridge: the homeserver slows down as its database grows,
    // so the bridge is compared with the mean of the two. During raw ingest the bench serves the
    // appservice API on the registration's URL, as the bridge does while it delivers: the
    // homeserver pushes every event in the namespace there, and that work must be in both.
    let as_addr: std::net::SocketAddr = format!("127.0.0.1:{as_port}").parse()?;
    let hs_token = reg["hs_token"].as_str().context("no hs_token")?.to_string();
    let receiver = || matrix::appservice::serve(matrix::appservice::AppserviceState::new(&hs_token, "localhost"), as_addr);
    let (_, listening) = receiver().await?;
    let (raw_sent, raw_before) = raw_ingest(hs, &bot, &plan, args.rooms as usize, "before", store.as_ref(), &media).await?;
    listening.abort();
    let _ = listening.await;
    let started = Instant::now();
    run(Command::new(&bridge_bin).arg("-c").arg(d.join("config.yaml")).arg("deliver").env("RUST_LOG", "warn"), "deliver")?;
    let bridge_secs = started.elapsed().as_secs_f64();
    // Every message delivered (the ledger also has a row per further event of a message).
    let mut left = 0;
    for chat in store.chats().await? {
        left += store.undelivered(&chat.chat_id).await?.len() as u64;
    }
    if left > 0 {
        bail!("the bridge left {left} of {to_deliver} messages undelivered");
    }
    let delivered = to_deliver;
    let (_, listening) = receiver().await?;
    let (_, raw_after) = raw_ingest(hs, &bot, &plan, args.rooms as usize, "after", store.as_ref(), &media).await?;
    listening.abort();
    let raw_secs = (raw_before + raw_after) / 2.0;
    let raw_rate = raw_sent as f64 / raw_secs;
    let bridge_rate = delivered as f64 / bridge_secs;
    let ratio = bridge_rate / raw_rate;
    if args.json {
        let raw = json!({ "per_s": raw_rate, "secs_before": raw_before, "secs_after": raw_after });
        let media: Vec<serde_json::Value> = uploads.iter().map(|r| json!({ "what": r.what, "files": r.files, "bytes": r.bytes, "secs": r.secs })).collect();
        println!("{}", json!({ "messages": delivered, "rooms": args.rooms, "raw": raw, "bridge_per_s": bridge_rate, "ratio": ratio, "media_upload": media }));
    } else {
        println!("| what | events | seconds | events/s |\n|---|---:|---:|---:|");
        for (when, secs) in [("before", raw_before), ("after", raw_after)] {
            println!("| raw appservice ingest, {when} the bridge ({} rooms) | {raw_sent} | {secs:.1} | {:.1} |", args.rooms, raw_sent as f64 / secs);
        }
        println!("| bridge delivery (`deliver`, {} rooms) | {delivered} | {bridge_secs:.1} | {bridge_rate:.1} |", args.rooms);
        println!("\nratio bridge/raw (mean of both raw runs): {ratio:.3} (target ≥ 0.95: {})", if ratio >= 0.95 { "met" } else { "not met" });
        println!("\n| media upload | files | MB | seconds | MB/s |\n|---|---:|---:|---:|---:|");
        for r in &uploads {
            println!("| {} | {} | {:.1} | {:.2} | {:.1} |", r.what, r.files, r.bytes as f64 / 1e6, r.secs, r.bytes as f64 / 1e6 / r.secs);
        }
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
    store: &dyn store::Store,
    media: &Media,
) -> Result<(u64, f64)> {
    let started = Instant::now();
    let results: Vec<Result<u64>> = stream::iter(plan.iter().enumerate())
        .map(|(r, (participants, messages))| async move {
            let room = hs.create_room(bot, &json!({ "preset": "private_chat", "name": format!("raw {tag} {r}") })).await?;
            let room = room.as_str();
            // History mutes the owner in the room while it goes in, as the bridge does; the
            // owner reads every portal (and sends from-me messages, double puppeted): the
            // homeserver evaluates push rules for them on every event.
            let rule = matrix::delivery::history_rule_id(room);
            hs.mute_room_override(OWNER, &rule, room).await?;
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
            let mut events = RawRoom { hs, room, tag: format!("raw-{tag}-{r}"), n: 0, event_ids: HashMap::new(), last: None };
            let mut reactions = matrix::render::Reactions::default();
            for m in messages {
                let handle = if m.from_me() { "me" } else { m.sender.as_str() };
                let sender = senders.get(handle).with_context(|| format!("sender {handle} is not a participant"))?;
                events.send_planned(store, media, sender, m, &mut reactions).await?;
            }
            // As the bridge does for history: the owner's read markers on the last event.
            if let Some(last) = events.last.clone() {
                hs.set_read_markers(room, OWNER, &last).await?;
            }
            hs.delete_override_rule(OWNER, &rule).await?;
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

/// Where the attachment files are and how they become Matrix media (as the bridge's config says).
struct Media {
    dir: PathBuf,
    config: matrix::media::MediaConfig,
}

/// One raw room: the same events the bridge sends for each message (its plan from
/// `matrix::render`), straight, with no ledger, no store writes and no in-flight checks.
struct RawRoom<'a> {
    hs: &'a HomeserverClient,
    room: &'a str,
    tag: String,
    n: u64,
    /// (guid, part) → event id; part -1 is a reaction.
    event_ids: HashMap<(String, i64), String>,
    last: Option<String>,
}

impl RawRoom<'_> {
    async fn send(&mut self, sender: &str, event_type: &str, ts: i64, content: &serde_json::Value) -> Result<String> {
        self.n += 1;
        let id = self.hs.send(self.room, sender, event_type, &format!("{}-{}", self.tag, self.n), Some(ts), content).await?.to_string();
        self.last = Some(id.clone());
        Ok(id)
    }

    fn target(&self, guid: &str, part: i64) -> Option<String> {
        self.event_ids.get(&(guid.to_string(), part)).or_else(|| self.event_ids.get(&(guid.to_string(), 0))).cloned()
    }

    async fn upload(&self, store: &dyn store::Store, media: &Media, sender: &str, transfer: &str) -> Result<Option<serde_json::Value>> {
        let Some((record, Some(file))) = store.attachment_by_transfer_guid(transfer).await? else { return Ok(None) };
        let Some(sha) = file.sha256 else { return Ok(None) };
        let prepared = matrix::media::prepare(&media.dir.join(&sha[..2]).join(&sha), &record, &media.config).await?;
        Ok(Some(matrix::media::upload(self.hs, sender, &prepared).await?))
    }

    async fn send_planned(
        &mut self,
        store: &dyn store::Store,
        media: &Media,
        sender: &str,
        m: &MessageRecord,
        reactions: &mut matrix::render::Reactions,
    ) -> Result<()> {
        use matrix::render::{Effect, PartContent, Plan, ReactionKey};
        let plan = matrix::render::plan(m, &|h| matrix::ghost::ghost_user_id(h, "localhost"));
        let effect = reactions.apply(m, &plan);
        match plan {
            Plan::Nothing { .. } => {}
            Plan::Message { parts, edits, reply_to } => {
                let reply = reply_to.and_then(|g| self.target(&g, 0));
                for (i, p) in parts.iter().enumerate() {
                    let mut content = match &p.content {
                        PartContent::Text { body, html, link_preview } => matrix::render::text_content(body, html.as_deref(), link_preview.as_ref()),
                        PartContent::Attachment { transfer_guid } => self
                            .upload(store, media, sender, transfer_guid)
                            .await?
                            .unwrap_or_else(|| json!({ "msgtype": "m.notice", "body": "📎 attachment is not available" })),
                        PartContent::Notice { body } => json!({ "msgtype": "m.notice", "body": body }),
                    };
                    if let (0, Some(target)) = (i, &reply) {
                        content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": target } });
                    }
                    let id = self.send(sender, "m.room.message", m.ts_ms, &content).await?;
                    self.event_ids.insert((m.guid.clone(), p.part), id);
                }
                for e in edits {
                    if let Some(original) = self.event_ids.get(&(m.guid.clone(), e.part)).cloned() {
                        self.send(sender, "m.room.message", e.ts_ms, &matrix::render::edit_content(&original, &e.body)).await?;
                    }
                }
            }
            Plan::React { target, part, key } => {
                let Some(on) = self.target(&target, part) else { return Ok(()) };
                if let Some(Effect::Add { replaces: Some(old) }) = &effect {
                    if let Some(old) = self.event_ids.get(&(old.clone(), -1)).cloned() {
                        self.hs.redact(self.room, sender, &old, &format!("{}-r{}", self.tag, self.n), None).await?;
                    }
                }
                let key = match key {
                    ReactionKey::Emoji(e) => e,
                    ReactionKey::Sticker { transfer_guid } => match self.upload(store, media, sender, &transfer_guid).await? {
                        Some(c) => c["url"].as_str().unwrap_or("🖼️").to_string(),
                        None => "🖼️".into(),
                    },
                };
                let content = json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": on, "key": key } });
                match self.send(sender, "m.reaction", m.ts_ms, &content).await {
                    Ok(id) => {
                        self.event_ids.insert((m.guid.clone(), -1), id);
                    }
                    Err(e) if e.downcast_ref::<matrix::MatrixError>().and_then(|e| e.errcode()) == Some("M_DUPLICATE_ANNOTATION") => {}
                    Err(e) => return Err(e),
                }
            }
            Plan::Unreact { .. } => {
                if let Some(Effect::Remove { removes }) = effect {
                    if let Some(old) = self.event_ids.get(&(removes, -1)).cloned() {
                        self.n += 1;
                        self.hs.redact(self.room, sender, &old, &format!("{}-{}", self.tag, self.n), None).await?;
                    }
                }
            }
        }
        Ok(())
    }
}
