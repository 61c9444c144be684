//! The client decodes what the simulator's independent encoder serves, record for record and
//! field for field, over real HTTP: messages under the rolled and the current record key and
//! under their own protectionInfo, chats, attachments, deletions, and records of a type the
//! bridge does not read (which decode to `UnknownRecordType`, never a failure).

use std::sync::Arc;

use cloudkit::codec::decode_change;
use cloudkit::records::*;
use cloudkit::{Client, Error, Session};
use cloudkit_sim::account::Kind;
use cloudkit_sim::keys::KeyChoice;
use cloudkit_sim::{AccountSpec, Faults, Sim};

#[tokio::test]
async fn every_served_record_decodes_to_what_the_simulator_generated() {
    let spec = AccountSpec { seed: 11, chats: 8, messages: 1500, big_chat: 0, later: 0 };
    let sim = Arc::new(Sim::new(spec, Faults::default()));
    let (addr, _task) = cloudkit_sim::spawn(sim.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    sim.session_at(&url).save(&dir.path().join("session.json")).unwrap();
    let client = Client::new(&url, Session::load(&dir.path().join("session.json")).unwrap()).unwrap();

    let mut seen_choices = std::collections::HashSet::new();
    let (mut messages, mut deleted, mut foreign) = (0, 0, 0);
    for zone in ZONES {
        let ring = client.zone_keys(zone).await.unwrap();
        let mut token = None;
        for _ in 0..100 {
            let page = client.retrieve_changes(zone, token.as_deref()).await.unwrap();
            for change in &page.changes {
                let name = change.identifier.as_ref().and_then(|i| i.record_name()).unwrap().to_string();
                let decoded = decode_change(zone, change, &ring);
                match zone {
                    MESSAGE_ZONE => {
                        let g = sim.account.message_index(&name).expect("a generated message");
                        seen_choices.insert(std::mem::discriminant(&sim.key_choice(zone, g)));
                        let generated = sim.account.message(g);
                        match (generated.kind, decoded) {
                            (Kind::Deleted, Ok(RecordChange::Deleted { record_name })) => {
                                assert_eq!(record_name, name);
                                deleted += 1;
                            }
                            (Kind::Foreign, Err(Error::UnknownRecordType { record, .. })) => {
                                assert_eq!(record, name);
                                foreign += 1;
                            }
                            (_, Ok(RecordChange::Message(m))) => {
                                assert_eq!(m, generated.record, "every field of message {g}");
                                messages += 1;
                            }
                            (kind, other) => panic!("message {g} ({kind:?}) decoded to {other:?}"),
                        }
                    }
                    CHAT_ZONE => match decoded.unwrap() {
                        RecordChange::Chat(c) => assert!(sim.account.chat_records.contains(&c), "{c:?}"),
                        other => panic!("{other:?}"),
                    },
                    _ => match decoded.unwrap() {
                        RecordChange::Attachment(mut a) => {
                            let g = sim.account.attachment_index(&a.record_name).unwrap();
                            // The asset's MMCS signature is the sealed file's (the server's part).
                            let sealed = sim.assets.sealed(&sim.account, g);
                            let signature: String = sealed.signature.iter().map(|b| format!("{b:02x}")).collect();
                            assert_eq!(a.details.asset_signature.take(), Some(signature));
                            assert_eq!(a, sim.account.attachment(g));
                        }
                        other => panic!("{other:?}"),
                    },
                }
            }
            token = page.token.clone();
            if page.done() {
                break;
            }
        }
    }
    assert_eq!(messages + deleted + foreign, sim.account.history);
    assert_eq!(foreign, sim.account.foreign);
    assert!(deleted > 0 && foreign > 0, "the account must have deletions ({deleted}) and foreign records ({foreign})");
    for choice in [KeyChoice::Current, KeyChoice::Previous, KeyChoice::Own(0)] {
        assert!(seen_choices.contains(&std::mem::discriminant(&choice)), "no message under {choice:?}");
    }
}
