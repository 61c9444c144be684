//! Three generations of Messages' database (today's macOS, iOS 13's `sms.db`, and before High
//! Sierra with dates in seconds), written by the simulator's own writer from one generated
//! account, read back by the reader and compared with the truth the writer works out from the
//! generator (never with what the reader returns): every message in its conversation with its
//! sender, time, text and association.

use std::collections::BTreeMap;

use ::chatdb::ChatDb;
use cloudkit_sim::chatdb::{self as folder, FolderTruth, Layout, Schema};
use cloudkit_sim::{AccountSpec, Faults, Sim, TruthLine};
use imessage::records::{LEGACY_STICKER_TAPBACK, STICKER_TAPBACK};

struct Expected {
    chat: String,
    sender: String,
    from_me: bool,
    system: bool,
    ts_ms: i64,
    text: Option<String>,
    associated: Option<(u32, String)>,
    unsent: bool,
}

async fn check(schema: Schema) {
    let sim = Sim::new(AccountSpec { seed: 31, chats: 8, messages: 600, big_chat: 0, later: 0 }, Faults::default());
    let layout = Layout::new(&sim.account, schema);
    let dir = tempfile::tempdir().unwrap();
    folder::write_folder(&layout, dir.path()).await.unwrap();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    folder::truth(&layout, |t| {
        if let FolderTruth::Line(TruthLine::Message { chat, guid, sender, from_me, system, ts_ms, text, associated_type, associated_guid, content, .. }) = t {
            let associated = associated_type.zip(associated_guid);
            expected.insert(guid, Expected { chat, sender, from_me, system, ts_ms, text, associated, unsent: content.unsent });
        }
    });
    let db = ChatDb::open(&dir.path().join("chat.db"), None).await.unwrap();
    let own = db.own_handles().await.unwrap();
    // Which of the owner's addresses a generation names most is its own affair; both are hers.
    assert!(own.first().is_some_and(|h| cloudkit_sim::account::OWN_HANDLES.contains(&h.as_str())), "{schema:?}: {own:?}");
    let chats = db.chats().await.unwrap();
    let (mut after, mut read) = (0, 0);
    loop {
        let page = db.messages_after(&chats, after, 250, &own[0]).await.unwrap();
        if page.rows == 0 {
            break;
        }
        assert!(page.skipped.is_empty(), "{schema:?}: {:?}", page.skipped);
        after = page.last_rowid;
        for m in page.records {
            read += 1;
            let want = expected.get(&m.guid).unwrap_or_else(|| panic!("{schema:?}: {} is not in truth", m.guid));
            assert_eq!(m.chat_id, want.chat, "{schema:?} {}: conversation", m.guid);
            assert_eq!(m.is_system(), want.system, "{schema:?} {}: system", m.guid);
            assert_eq!(m.from_me(), want.from_me, "{schema:?} {}: from me", m.guid);
            if !want.system {
                if !want.from_me {
                    assert_eq!(m.sender, want.sender, "{schema:?} {}: sender", m.guid);
                }
                assert_eq!(m.text, want.text, "{schema:?} {}: text", m.guid);
            }
            assert_eq!(m.ts_ms, want.ts_ms, "{schema:?} {}: time", m.guid);
            assert_eq!(m.content.unsent, want.unsent, "{schema:?} {}: unsent", m.guid);
            let associated = want.associated.clone().map(|(t, g)| (if t == LEGACY_STICKER_TAPBACK { STICKER_TAPBACK } else { t }, g));
            assert_eq!(m.associated_type.zip(m.associated_guid.clone()), associated, "{schema:?} {}: association", m.guid);
        }
    }
    assert_eq!(read, expected.len(), "{schema:?}: every message read");
}

#[tokio::test]
async fn todays_macos() {
    check(Schema::Macos).await;
}

#[tokio::test]
async fn ios_13_sms_db() {
    check(Schema::Ios13).await;
}

#[tokio::test]
async fn before_high_sierra_in_seconds() {
    check(Schema::Legacy).await;
}
