//! `status`: what is synced (per zone, from the sync engine's status) and what is delivered
//! (per room, from the store's ledger), as a table or as JSON on stdout.
//!
//! Why a module of its own: `status` is the command an operator runs beside `run`, so it opens
//! nothing but the store (no appservice port, no homeserver) and its output is data: the table
//! or JSON on stdout, nothing else there.

use crate::terminal::terminal_safe;
use std::io::Write;

use serde::Serialize;

/// One room's delivery line: the store's counts plus the chat's name, whether it is taking in
/// its history or is live (its history is in: new messages go in within a sync interval), and
/// how long its oldest undelivered message has waited since it was sent.
#[derive(Serialize)]
struct Room<'a> {
    #[serde(flatten)]
    delivery: &'a store::RoomDelivery,
    name: Option<&'a str>,
    state: &'static str,
    oldest_pending_age_s: Option<i64>,
}

/// `3s`, `5m`, `2h`, `41d`: the coarsest unit that is at least one.
fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Where a zone's expected count comes from, for the table's header and its legend.
#[derive(Clone, Copy)]
pub enum CountSource {
    /// CloudKit's MessagesSummary.
    Server,
    /// The rows a local database (chat.db, a backup's sms.db) holds.
    LocalDatabase,
}

pub async fn status(store: &dyn store::Store, json: bool, counts_from: CountSource) -> anyhow::Result<()> {
    let status = sync::status(store).await?;
    let deliveries = store.room_deliveries().await?;
    let chats = store.chats().await?;
    let name_of = |chat_id: &str| chats.iter().find(|c| c.chat_id == chat_id).and_then(|c| c.display_name.as_deref());
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let rooms: Vec<Room> = deliveries
        .iter()
        .map(|d| Room {
            delivery: d,
            name: name_of(&d.chat_id),
            state: if d.live_since_ms.is_some() { "live" } else { "history" },
            oldest_pending_age_s: d.oldest_pending_ms.map(|t| (now_ms - t).max(0) / 1000),
        })
        .collect();
    let contacts = ContactCounts::of(&store.ghost_profiles().await?);
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(&status)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("rooms".into(), serde_json::to_value(&rooms)?);
            object.insert("contacts".into(), serde_json::to_value(&contacts)?);
        }
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    zones_table(&mut out, &status, counts_from)?;
    contacts_line(&mut out, &contacts)?;
    rooms_table(&mut out, &rooms)?;
    Ok(())
}

/// How many of the people in chats show a contact's name, as `run` last applied them.
#[derive(serde::Serialize)]
struct ContactCounts {
    people: usize,
    matched: usize,
    unmatched: usize,
    with_photo: usize,
}

impl ContactCounts {
    fn of(ghosts: &[store::GhostProfileRow]) -> Self {
        let matched = ghosts.iter().filter(|g| g.display_name != matrix::ghost::display_name(&g.handle)).count();
        let with_photo = ghosts.iter().filter(|g| g.avatar_mxc.is_some()).count();
        ContactCounts { people: ghosts.len(), matched, unmatched: ghosts.len() - matched, with_photo }
    }
}

fn contacts_line(out: &mut impl Write, c: &ContactCounts) -> anyhow::Result<()> {
    writeln!(
        out,
        "contacts: {} of {} people in chats named from a contact ({} with a photo), {} by their number or address",
        c.matched, c.people, c.with_photo, c.unmatched
    )?;
    Ok(())
}

fn zones_table(out: &mut impl Write, status: &sync::Status, counts_from: CountSource) -> anyhow::Result<()> {
    let (column, legend) = match counts_from {
        CountSource::Server => ("server", "server: the first element of the zone's MessagesSummary list (complete = stored equals it)"),
        CountSource::LocalDatabase => ("source", "source: the rows the local database holds for the zone (complete = stored equals it)"),
    };
    writeln!(out, "{:<22} {:>8} {:>8} {:>8} {:>13} {:>8} {:>6}  stop_reason", "zone", column, "stored", "skipped", "undecryptable", "complete", "pages")?;
    for z in &status.zones {
        let server = z.server_count.map_or("-".to_string(), |c| c.to_string());
        writeln!(
            out,
            "{:<22} {:>8} {:>8} {:>8} {:>13} {:>8} {:>6}  {}",
            terminal_safe(&z.zone),
            server,
            z.stored,
            z.skipped,
            z.undecryptable,
            if z.complete { "yes" } else { "no" },
            z.pages,
            terminal_safe(z.stop_reason.as_deref().unwrap_or("-"))
        )?;
        if let Some(e) = &z.last_error {
            writeln!(out, "  last error: {}", terminal_safe(e))?;
        }
        for f in z.undecryptable_records.iter().take(20) {
            writeln!(out, "  undecryptable {}: {}", terminal_safe(&f.record_name), terminal_safe(&f.reason))?;
        }
        if z.undecryptable_records.len() > 20 {
            writeln!(out, "  … and {} more (see --json)", z.undecryptable_records.len() - 20)?;
        }
    }
    if !status.undecodable_blobs.is_empty() {
        writeln!(out, "{} message(s) kept with their text although a content blob did not decode:", status.undecodable_blobs.len())?;
        for b in status.undecodable_blobs.iter().take(20) {
            writeln!(out, "  {} {} in {}: {}", terminal_safe(&b.guid), b.field, terminal_safe(&b.chat_id), terminal_safe(&b.reason))?;
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
    writeln!(out, "{legend}; skipped: records of types the bridge does not read")?;
    writeln!(out, "sync version: {}", status.sync_version.map_or("none".into(), |v| v.to_string()))?;
    Ok(())
}

fn rooms_table(out: &mut impl Write, rooms: &[Room]) -> anyhow::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{:<34} {:<24} {:>8} {:>9} {:>8} {:>9} {:>6} {:<7} {:>6}  name",
        "chat", "room", "stored", "delivered", "pending", "in_flight", "typed", "state", "oldest"
    )?;
    for r in rooms {
        let d = r.delivery;
        writeln!(
            out,
            "{:<34} {:<24} {:>8} {:>9} {:>8} {:>9} {:>6} {:<7} {:>6}  {}",
            crate::bridge::truncate(&terminal_safe(&d.chat_id), 34),
            crate::bridge::truncate(&terminal_safe(d.room_id.as_deref().unwrap_or("-")), 24),
            d.stored,
            d.delivered,
            d.pending,
            d.in_flight,
            d.owner_messages,
            r.state,
            r.oldest_pending_age_s.map_or("-".to_string(), age),
            terminal_safe(r.name.unwrap_or("-"))
        )?;
        if let Some(e) = &d.last_error {
            writeln!(out, "  last delivery error: {}", terminal_safe(e))?;
        }
    }
    let sum = |f: fn(&store::RoomDelivery) -> i64| rooms.iter().map(|r| f(r.delivery)).sum::<i64>();
    writeln!(out, "state: history while a room takes in its history, live once it is in; oldest: how long ago its oldest undelivered message was sent")?;
    writeln!(
        out,
        "{} rooms: {} of {} messages delivered, {} pending, {} in flight, {} with an error",
        rooms.len(),
        sum(|d| d.delivered),
        sum(|d| d.stored),
        sum(|d| d.pending),
        sum(|d| d.in_flight),
        rooms.iter().filter(|r| r.delivery.last_error.is_some()).count()
    )?;
    let refused = sum(|d| d.refused);
    if refused > 0 {
        writeln!(out, "refused: {refused} event(s) the homeserver refused for good went in as notices naming what was refused")?;
    }
    let typed = sum(|d| d.owner_messages);
    if typed > 0 {
        writeln!(out, "typed: {typed} message(s) you wrote in portals; this bridge cannot send them to iMessage (each room was told so)")?;
    }
    Ok(())
}
