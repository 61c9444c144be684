//! `--revise`: after the release, the server serves changes to history records the client
//! already has — deletion tombstones, unsent and edited-again messages re-served under their
//! record names, a group's new participant list — after the later messages, and its counts and
//! truth follow. Read with the real `cloudkit::Client` and its decoder (independent of the
//! simulator's encoder), before and after the release from the saved sync tokens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cloudkit::codec::{decode_change, decode_record};
use cloudkit::records::*;
use cloudkit::{Client, KeyRing, Session};
use cloudkit_sim::revisions::RevisionKind;
use cloudkit_sim::{AccountSpec, Faults, Sim, TruthLine};

const APPLE_EPOCH_UNIX_MS: i64 = 978_307_200_000;

fn spec() -> AccountSpec {
    AccountSpec { seed: 21, chats: 14, messages: 1200, big_chat: 400, later: 20 }
}

fn faults() -> Faults {
    Faults { revise: 2, page_size: 150, ..Faults::default() }
}

/// What a client that applied every change it was served holds.
#[derive(Default)]
struct Model {
    messages: HashMap<String, MessageRecord>,
    chats: Vec<ChatRecord>,
    tombstones: u64,
}

struct Reader {
    client: Client,
    rings: HashMap<&'static str, KeyRing>,
    tokens: HashMap<&'static str, Vec<u8>>,
    model: Model,
}

impl Reader {
    async fn new(sim: &Sim, url: &str, dir: &std::path::Path) -> Self {
        sim.session_at(url).save(&dir.join("session.json")).unwrap();
        let client = Client::new(url, Session::load(&dir.join("session.json")).unwrap()).unwrap();
        let mut rings = HashMap::new();
        for zone in ZONES {
            rings.insert(zone, client.zone_keys(zone).await.unwrap());
        }
        Reader { client, rings, tokens: HashMap::new(), model: Model::default() }
    }

    /// Every change of `zone` since the saved token, decoded and applied to the model.
    async fn pull(&mut self, zone: &'static str) -> Vec<RecordChange> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            let page = self.client.retrieve_changes(zone, self.tokens.get(zone).map(Vec::as_slice)).await.unwrap();
            for change in &page.changes {
                match decode_change(zone, change, &self.rings[zone]) {
                    Ok(decoded) => out.push(decoded),
                    // Records of a type a Messages client does not read.
                    Err(cloudkit::Error::UnknownRecordType { .. }) => {}
                    Err(e) => panic!("{zone}: {e}"),
                }
            }
            self.tokens.insert(zone, page.token.clone().unwrap());
            if page.done() {
                for change in &out {
                    self.apply(change.clone());
                }
                return out;
            }
        }
        panic!("{zone} never finished");
    }

    fn apply(&mut self, change: RecordChange) {
        match change {
            RecordChange::Message(m) => {
                self.model.messages.insert(m.record_name.clone(), m);
            }
            RecordChange::Deleted { record_name } => {
                self.model.tombstones += 1;
                self.model.messages.remove(&record_name);
            }
            RecordChange::Chat(c) => self.model.chats.push(c),
            RecordChange::Attachment(_) => {}
        }
    }

    async fn pull_all(&mut self) -> HashMap<&'static str, Vec<RecordChange>> {
        let mut all = HashMap::new();
        for zone in ZONES {
            all.insert(zone, self.pull(zone).await);
        }
        all
    }

    /// The server's `[live, deleted]` message counts and its chat record count.
    async fn counts(&self) -> (Vec<i64>, i64) {
        let messages = self.client.server_summary(MESSAGE_ZONE, MESSAGE_RECORD_TYPE).await.unwrap().unwrap();
        let chats = self.client.server_summary(CHAT_ZONE, CHAT_RECORD_TYPE).await.unwrap().unwrap();
        (messages, chats[0])
    }
}

/// What truth says now.
struct Truth {
    /// By guid.
    messages: HashMap<String, TruthLine>,
    /// By chat id: the name and the participants.
    chats: BTreeMap<String, (Option<String>, Vec<String>)>,
    /// The messages its `revised` field marks, sorted by guid.
    revised: Vec<(String, RevisionKind)>,
}

fn truth(sim: &Sim) -> Truth {
    let mut t = Truth { messages: HashMap::new(), chats: BTreeMap::new(), revised: Vec::new() };
    sim.truth(|line| match line {
        TruthLine::Message { ref guid, revised, .. } => {
            if let Some(kind) = revised {
                t.revised.push((guid.clone(), kind));
            }
            t.messages.insert(guid.clone(), line);
        }
        TruthLine::Chat { chat, name, participants, .. } => {
            t.chats.insert(chat, (name, participants));
        }
        TruthLine::Attachment { .. } => {}
    });
    t.revised.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// The model agrees with truth: the same messages (text and content) and, per chat, the newest
/// record's name and participants.
fn assert_model_is_truth(sim: &Sim, model: &Model) {
    let Truth { messages, chats, .. } = truth(sim);
    assert_eq!(model.messages.len(), messages.len(), "live messages");
    for m in model.messages.values() {
        let Some(TruthLine::Message { text, content, sender, ts_ms, .. }) = messages.get(&m.guid) else { panic!("{} not in truth", m.guid) };
        assert_eq!((&m.text, &m.content, &m.sender, m.ts_ms), (text, content, sender, *ts_ms), "message {}", m.guid);
    }
    for (chat, (name, participants)) in &chats {
        let newest = model.chats.iter().filter(|c| &c.chat_id == chat).max_by_key(|c| c.modified_ms).unwrap();
        assert_eq!((&newest.display_name, &newest.participants), (name, participants), "chat {chat}");
    }
}

#[tokio::test]
async fn revisions_are_served_after_the_later_messages_and_read_as_truth_says() {
    let sim = Arc::new(Sim::new(spec(), faults()));
    let revisions = sim.revisions().clone();
    for kind in [RevisionKind::Deleted, RevisionKind::Unsent, RevisionKind::Edited] {
        assert_eq!(revisions.guids(kind).count(), 2, "{kind:?}");
    }
    let big_chat = sim.account.chats[0].chat_id.clone();
    let revised_chats: HashSet<&str> = revisions.messages.iter().map(|r| r.chat_id.as_str()).collect();
    assert_eq!(revised_chats.len(), 6, "one chat per pick: {revised_chats:?}");
    assert!(!revised_chats.contains(big_chat.as_str()));
    assert!(revisions.messages.iter().all(|r| r.g < sim.account.history));
    let change = revisions.participants.clone().expect("a group's participant change");
    let first_group = sim.account.chats.iter().find(|c| c.style == STYLE_GROUP).unwrap();
    assert_ne!(change.chat_id, big_chat);
    assert_ne!(change.chat_id, first_group.chat_id, "the first group is the one the first later message renames");
    assert!(change.added.starts_with("tel:+1555"));

    let (addr, _task) = cloudkit_sim::spawn(sim.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut reader = Reader::new(&sim, &format!("http://{addr}"), dir.path()).await;

    // Before the release: the history as it was, nothing revised.
    reader.pull_all().await;
    for r in &revisions.messages {
        assert_eq!(reader.model.messages.get(&r.record_name), Some(&sim.account.message(r.g).record), "message {} before", r.g);
    }
    assert_model_is_truth(&sim, &reader.model);
    assert!(truth(&sim).revised.is_empty(), "nothing is revised before the release");
    let (messages, chats) = reader.counts().await;
    assert_eq!(messages, [reader.model.messages.len() as i64, reader.model.tombstones as i64]);
    assert_eq!(chats, reader.model.chats.len() as i64);
    let history_tombstones = reader.model.tombstones;

    sim.release_later();
    let served = reader.pull_all().await;

    // Message zone: the later messages, then the revisions in their order.
    let later = (sim.account.total - sim.account.history) as usize;
    let changes = &served[MESSAGE_ZONE];
    assert_eq!(changes.len(), later + revisions.messages.len());
    let latest_later_ms = changes[..later]
        .iter()
        .map(|c| match c {
            RecordChange::Message(m) => m.ts_ms,
            other => panic!("a later message is {other:?}"),
        })
        .max()
        .unwrap();
    for (r, change) in revisions.messages.iter().zip(&changes[later..]) {
        match (r.kind, change) {
            (RevisionKind::Deleted, RecordChange::Deleted { record_name }) => assert_eq!(record_name, &r.record_name),
            (RevisionKind::Unsent, RecordChange::Message(m)) => {
                assert_eq!((&m.record_name, &m.guid), (&r.record_name, &r.guid), "the same record");
                assert_eq!(m, &r.record);
                assert!(m.text.is_none() && m.content.unsent && m.content.parts.is_empty());
                assert_eq!(m.content.unsent_parts, [0]);
            }
            (RevisionKind::Edited, RecordChange::Message(m)) => {
                assert_eq!((&m.record_name, &m.guid), (&r.record_name, &r.guid), "the same record");
                assert_eq!(m, &r.record);
                let before = sim.account.message(r.g).record;
                let versions = &m.content.edits[0].versions;
                assert_eq!(versions.len(), before.content.edits.first().map_or(1, |h| h.versions.len()) + 1, "one more version");
                let last = versions.last().unwrap();
                assert_eq!(Some(&last.text), m.text.as_ref());
                assert_ne!(m.text, before.text);
                assert!(last.apple_ns / 1_000_000 + APPLE_EPOCH_UNIX_MS > latest_later_ms, "edited after the later messages");
            }
            (kind, other) => panic!("{kind:?} revision of message {} served as {other:?}", r.g),
        }
    }

    // Chat zone: the participant change comes after the later versions.
    let chat_changes = &served[CHAT_ZONE];
    let Some(RecordChange::Chat(version)) = chat_changes.last() else { panic!("{chat_changes:?}") };
    assert_eq!(version, &change.record);
    assert!(version.participants.contains(&change.added) && !version.participants.contains(&change.removed));
    let before = sim.account.chats.iter().find(|c| c.chat_id == change.chat_id).unwrap();
    assert_eq!(version.participants.len(), before.participants.len());
    assert!(sim.account.chat_records.iter().all(|c| c.modified_ms < version.modified_ms));

    // Truth after the release is what the client now holds.
    assert_model_is_truth(&sim, &reader.model);
    let after = truth(&sim);
    for guid in revisions.guids(RevisionKind::Deleted) {
        assert!(!after.messages.contains_key(guid), "deleted {guid} is in truth");
    }
    let mut expected: Vec<(String, RevisionKind)> =
        revisions.messages.iter().filter(|r| r.kind != RevisionKind::Deleted).map(|r| (r.guid.clone(), r.kind)).collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(after.revised, expected, "truth marks the revised messages");
    assert_eq!(after.chats[&change.chat_id].1, change.record.participants);

    // Counts: a re-served record is the same record; a tombstone is one live record fewer.
    let (messages, chats) = reader.counts().await;
    assert_eq!(messages, [reader.model.messages.len() as i64, (history_tombstones + 2) as i64]);
    assert_eq!(reader.model.tombstones, history_tombstones + 2);
    assert_eq!(chats, reader.model.chats.len() as i64);

    // Fetched by name, a record is as it is now: the revision, or gone.
    let names: Vec<String> = revisions.messages.iter().map(|r| r.record_name.clone()).collect();
    let fetched = reader.client.retrieve_records(MESSAGE_ZONE, &names).await.unwrap();
    for (r, fetched) in revisions.messages.iter().zip(fetched) {
        match (r.kind, fetched.unwrap()) {
            (RevisionKind::Deleted, None) => {}
            (_, Some(record)) => {
                assert_eq!(record.etag.as_deref(), Some("2"), "a record's second version");
                let RecordChange::Message(m) = decode_record(MESSAGE_ZONE, &record, &reader.rings[MESSAGE_ZONE]).unwrap() else { panic!() };
                assert_eq!(m, r.record);
            }
            (kind, None) => panic!("{kind:?} message {} not found", r.g),
        }
    }
    assert!(reader.pull(MESSAGE_ZONE).await.is_empty(), "nothing more to serve");
}

#[test]
fn picks_are_deterministic_spare_what_others_point_at_and_off_by_default() {
    let picks = |sim: &Sim| {
        let r = sim.revisions();
        let messages: Vec<(RevisionKind, String)> = r.messages.iter().map(|m| (m.kind, m.guid.clone())).collect();
        (messages, r.participants.as_ref().map(|c| c.record.clone()))
    };
    let sim = Sim::new(spec(), faults());
    assert_eq!(picks(&sim), picks(&Sim::new(spec(), faults())), "same seed and args, same picks");
    assert_ne!(picks(&sim), picks(&Sim::new(AccountSpec { seed: 22, ..spec() }, faults())));

    // No tapback, sticker or reply of the account points at a pick.
    let picked: HashSet<String> = sim.revisions().messages.iter().map(|m| m.guid.clone()).collect();
    for g in 0..sim.account.total {
        let m = sim.account.message(g).record;
        let targets = [m.associated_guid.as_deref().and_then(|a| a.split('/').nth(1)), m.content.reply_to.as_deref()];
        assert!(targets.iter().flatten().all(|t| !picked.contains(*t)), "message {g} points at a pick");
    }

    let plain = Sim::new(spec(), Faults::default());
    assert!(plain.revisions().messages.is_empty() && plain.revisions().participants.is_none());
    let mut before = Vec::new();
    plain.truth(|l| before.push(serde_json::to_string(&l).unwrap()));
    let mut with = Vec::new();
    sim.truth(|l| with.push(serde_json::to_string(&l).unwrap()));
    assert_eq!(before, with, "before the release a revising account's truth is the same");
}
