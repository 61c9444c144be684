//! Fuzz targets for what a CloudKit server hands the client: the uleb128 frame decoder, the gzip
//! layer, protobuf record decoding (a `RecordChange` through `codec::decode_change`), and the
//! gzipped and plist fields inside a record (encrypted correctly, so the mutations reach the
//! decoders behind the cipher). Seeds are the known-answer chains of `shared/fixtures/` (real
//! shapes of Apple's records and zones) and the real Apple blobs of `crates/imessage/tests/data`.
//!
//! Properties: never a panic; every input gives a value or an error; no decoding holds more
//! memory than its input times a stated factor plus its cap; and a record whose protobuf parses
//! is never silently lost (a bad blob inside keeps its message). `cargo test` runs a few hundred
//! cases per target; `scripts/fuzz.sh SECONDS` runs each against the clock (see FUZZING.md).

mod common;

use cloudkit::framing::{decode_delimited_bytes_at_most, encode_delimited, gunzip_capped, gzip};
use cloudkit::pcs::{EcKey, PcsKey};
use cloudkit::proto::{self, ResponseOperation, ResponseOperationRaw};
use cloudkit::records::{RecordChange, ATTACHMENT_RECORD_TYPE, ATTACHMENT_ZONE, CHAT_RECORD_TYPE, CHAT_ZONE, MESSAGE_RECORD_TYPE, MESSAGE_ZONE};
use cloudkit::{codec, Error, KeyRing, Limits};
use common::{hex_of, keychain_vectors};
use flate2::Compression;
use fuzzkit::{measure, mutated, Input};
use proptest::prelude::*;
use prost::Message;

#[global_allocator]
static METER: fuzzkit::Meter = fuzzkit::Meter;

/// Each vector chain's records, as `RecordChange`s, with the zone they are in and its key ring.
struct Chain {
    zone: String,
    ring: KeyRing,
    records: Vec<proto::Record>,
}

fn chains() -> Vec<Chain> {
    let v = keychain_vectors();
    v["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let service = EcKey::from_keychain_der(&hex_of(&c["service"]["pcs_private_key_der"])).unwrap();
            let zone = &c["zone"];
            let ring = KeyRing::open_zone(&service, &hex_of(&zone["protection_info"]), &hex_of(&zone["record_protection_info"])).unwrap();
            let records = c["records"].as_array().unwrap().iter().map(|r| proto::Record::decode(hex_of(&r["record_proto"]).as_slice()).unwrap()).collect();
            Chain { zone: zone["zone_name"].as_str().unwrap().to_string(), ring, records }
        })
        .collect()
}

fn change_of(record: &proto::Record) -> proto::RecordChange {
    proto::RecordChange { identifier: record.record_identifier.clone(), etag: None, record_type: record.r#type.clone(), record: Some(record.clone()) }
}

/// A `record/sync` reply holding `changes`, as the gateway frames it.
fn page_reply(changes: Vec<proto::RecordChange>) -> Vec<u8> {
    let op = ResponseOperation {
        response: Some(proto::Operation { operation_uuid: Some("8A1F6E9C-2B4D-4C1A-9E7F-0123456789AB".into()), ..Default::default() }),
        result: Some(cloudkit::client::success()),
        retrieve_changes_response: Some(proto::RetrieveChangesResponse {
            change: changes,
            sync_continuation_token: Some(b"\x08\x01\x12\x10token-of-page-1".to_vec()),
            status: Some(proto::CHANGES_STATUS_DONE),
        }),
        ..Default::default()
    };
    encode_delimited(&[op.clone(), op])
}

/// How many bytes of Rust structs a full decode may hold per input byte. prost keeps a message
/// inline in its parent (`Option<T>`, `Vec<T>`), so two input bytes (a tag and a zero length)
/// can stand for a whole empty `RecordChange` (and a `Vec` may have doubled past it): the factor
/// is its size, and the reply caps of `cloudkit::Limits` bound the input.
fn struct_factor() -> usize {
    std::mem::size_of::<proto::RecordChange>().max(std::mem::size_of::<proto::RecordField>()) + 16
}

/// The same for the raw page view the sync reads: one `Bytes` handle per change, at most
/// `MAX_CHANGES_PER_PAGE` of them, a handful of operations.
const RAW_BOUND: usize = proto::MAX_CHANGES_PER_PAGE * 2 * std::mem::size_of::<bytes::Bytes>() + (64 << 10);

/// Operations a reply may hold for the one request of the fuzz target (as the client allows).
const MAX_OPS: usize = 10;

#[test]
fn fuzz_frame_decoder() {
    let chains = chains();
    let mut seeds: Vec<Vec<u8>> = chains.iter().map(|c| page_reply(c.records.iter().map(change_of).collect())).collect();
    seeds.push(page_reply(Vec::new()));
    seeds.push(encode_delimited(&[proto::RecordChange::default()]));
    let factor = struct_factor();
    fuzzkit::run("cloudkit/frames", mutated(seeds), |input: Input| {
        let body = bytes::Bytes::from(input.0.clone());
        let (full, peak) = measure(|| decode_delimited_bytes_at_most::<ResponseOperation>(body.clone(), MAX_OPS));
        prop_assert!(peak <= input.len() * factor + (64 << 10), "{peak} bytes held for {} input bytes", input.len());
        let (raw, peak_raw) = measure(|| decode_delimited_bytes_at_most::<ResponseOperationRaw>(body.clone(), MAX_OPS));
        prop_assert!(peak_raw <= RAW_BOUND, "raw view: {peak_raw} bytes held for {} input bytes", input.len());
        // The raw view reads a subset of the full one: where the full decode succeeds, so does
        // it (short of the change cap), with the same operations in the same order.
        if let (Ok(full), Ok(raw)) = (&full, &raw) {
            prop_assert_eq!(full.len(), raw.len());
            for (f, r) in full.iter().zip(raw) {
                prop_assert_eq!(f.response.as_ref().and_then(|o| o.operation_uuid.as_deref()), r.response.as_ref().and_then(|o| o.operation_uuid.as_deref()));
                prop_assert_eq!(f.retrieve_changes_response.as_ref().map(|c| c.change.len()), r.retrieve_changes_response.as_ref().map(|c| c.change.len()));
            }
        }
        if let (Ok(_), Err(e)) = (&full, &raw) {
            return Err(TestCaseError::fail(format!("full decode ok, raw view failed: {e}")));
        }
        for e in [full.err(), raw.err()].into_iter().flatten() {
            prop_assert!(matches!(e, Error::Frame(_)), "a bad stream is a frame error: {e}");
        }
        Ok(())
    });
}

/// The cap the gzip target inflates under: small, so the target reaches it.
const GZIP_CAP: usize = 256 << 10;

#[test]
fn fuzz_gzip_layer() {
    let chains = chains();
    let page = page_reply(chains.iter().flat_map(|c| c.records.iter().map(change_of)).collect());
    let mut seeds = vec![
        gzip(&page, Compression::fast()),
        gzip(&page, Compression::best()),
        gzip(b"", Compression::default()),
        gzip(&vec![0u8; GZIP_CAP], Compression::best()),
        gzip(&vec![b'a'; GZIP_CAP + 1], Compression::fast()),
    ];
    for name in ["attributed-body/MultiPart", "summary-info/Edited.plist", "payload/URL.plist"] {
        seeds.push(gzip(&apple_blob(name), Compression::default()));
    }
    fuzzkit::run("cloudkit/gzip", mutated(seeds), |input: Input| {
        let (out, peak) = measure(|| gunzip_capped(&input, GZIP_CAP));
        prop_assert!(peak <= GZIP_CAP + input.len() * 3 + (160 << 10), "{peak} bytes held");
        // The reference: flate2's stream decoder, read to one byte past the cap.
        let mut reference = Vec::new();
        let stock = std::io::Read::read_to_end(&mut std::io::Read::take(flate2::read::GzDecoder::new(&input[..]), GZIP_CAP as u64 + 1), &mut reference);
        match (out, stock) {
            (Ok(out), Ok(_)) => prop_assert!(out == reference, "differs from flate2"),
            (Err(Error::TooLarge { cap, .. }), Ok(_)) => prop_assert!(cap == GZIP_CAP && reference.len() > GZIP_CAP),
            (Err(Error::Frame(_)), Err(_)) => {}
            (Err(Error::TooLarge { .. }), Err(_)) => {} // damage past the cap: either is fine
            (ours, theirs) => return Err(TestCaseError::fail(format!("ours {ours:?}, flate2 ok={}", theirs.is_ok()))),
        }
        Ok(())
    });
}

fn apple_blob(name: &str) -> Vec<u8> {
    let path = format!("{}/../imessage/tests/data/apple/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn fuzz_record_decoding() {
    let chains = chains();
    let seeds: Vec<Vec<u8>> = chains.iter().flat_map(|c| c.records.iter().map(|r| change_of(r).encode_to_vec())).collect();
    let factor = struct_factor();
    fuzzkit::run("cloudkit/records", mutated(seeds), |input: Input| {
        let Ok(change) = proto::RecordChange::decode(&input[..]) else { return Ok(()) };
        for chain in &chains {
            let (decoded, peak) = measure(|| codec::decode_change(&chain.zone, &change, &chain.ring));
            prop_assert!(peak <= input.len() * factor + (1 << 20), "{peak} bytes held");
            if let Err(e) = decoded {
                // Every failure is one the sync engine can file: named, never a panic or a
                // stringly transport error.
                prop_assert!(!matches!(e, Error::Transport { .. } | Error::HttpStatus { .. }), "{e}");
            }
        }
        Ok(())
    });
}

/// A record of `record_type` whose fields are encrypted under a key of `ring`, as Apple writes
/// them: so a mutated field value reaches the gzip, protobuf and plist decoders behind the cipher.
struct Sealer {
    key: PcsKey,
    ring: KeyRing,
}

impl Sealer {
    fn new() -> Self {
        let key = PcsKey::new([0x5a; 16]);
        Sealer { ring: KeyRing::new([key.clone()]), key }
    }

    fn field(&self, zone: &str, record: &str, name: &str, plain: &[u8]) -> proto::FieldValue {
        let ct = self.key.encrypt(plain, format!("{zone}-{record}-{name}").as_bytes(), [7; 12]);
        proto::FieldValue { r#type: Some(proto::value_type::ENCRYPTED_BYTES), bytes_value: Some(ct), is_encrypted: Some(true), ..Default::default() }
    }

    fn scalar(&self, zone: &str, record: &str, name: &str, value: proto::EncryptedValue) -> proto::FieldValue {
        let mut f = self.field(zone, record, name, &value.encode_to_vec());
        f.r#type = Some(proto::value_type::STRING);
        f
    }

    fn record(&self, zone: &str, record_type: &str, fields: Vec<(&str, Vec<u8>)>, scalars: Vec<(&str, proto::EncryptedValue)>) -> proto::Record {
        let name = "FUZZ-RECORD-1";
        let mut all: Vec<(&str, proto::FieldValue)> = fields.iter().map(|(n, v)| (*n, self.field(zone, name, n, v))).collect();
        all.extend(scalars.into_iter().map(|(n, v)| (n, self.scalar(zone, name, n, v))));
        let mut r = common::record(zone, record_type, name, all);
        r.pcs_key = Some(self.key.short_id().to_vec());
        r
    }
}

fn text(s: &str) -> proto::EncryptedValue {
    proto::EncryptedValue { string_value: Some(s.into()), ..Default::default() }
}

fn number(n: i64) -> proto::EncryptedValue {
    proto::EncryptedValue { signed_value: Some(n), ..Default::default() }
}

/// Which field of which record a structured case mutates.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The plaintext of `msgProto`, gzipped after mutation.
    MessageBody,
    /// The gzipped bytes of `msgProto` themselves.
    MessageGzip,
    /// The `cm` plist, gzipped after mutation.
    AttachmentMeta,
    /// A `ptcpts` participant plist.
    Participant,
}

fn message_body_seeds() -> Vec<Vec<u8>> {
    let blob = |f: fn(&mut proto::MessageProto, Vec<u8>), name: &str| {
        let mut m = proto::MessageProto { text: Some("\u{FFFC}test 1\u{FFFC}test 2 \u{FFFC}test 3".into()), ..Default::default() };
        f(&mut m, apple_blob(name));
        m.encode_to_vec()
    };
    vec![
        blob(|m, b| m.attributed_body = Some(b), "attributed-body/MultiPart"),
        blob(|m, b| m.attributed_body = Some(b), "attributed-body/URL"),
        blob(|m, b| m.message_summary_info = Some(b), "summary-info/Edited.plist"),
        blob(|m, b| m.message_summary_info = Some(b), "summary-info/Deleted.plist"),
        blob(|m, b| m.payload_data = Some(b), "payload/URL.plist"),
        proto::MessageProto {
            text: Some("hi".into()),
            associated_message_type: Some(2001),
            associated_message_guid: Some("p:0/GUID".into()),
            ..Default::default()
        }
        .encode_to_vec(),
    ]
}

fn binary_plist(entries: &[(&str, plist::Value)]) -> Vec<u8> {
    let dict: plist::Dictionary = entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let mut out = Vec::new();
    plist::Value::Dictionary(dict).to_writer_binary(&mut out).unwrap();
    out
}

#[test]
fn fuzz_record_fields_behind_the_cipher() {
    use plist::Value as P;
    let sealer = Sealer::new();
    let bodies = message_body_seeds();
    let gzipped: Vec<Vec<u8>> = bodies.iter().map(|b| gzip(b, Compression::fast())).collect();
    let metas = vec![
        binary_plist(&[
            ("aguid", P::String("at_0_GUID".into())),
            ("mimet", P::String("image/heic".into())),
            ("tb", P::Integer(12345.into())),
            ("is", P::Boolean(true)),
            ("ha", P::Integer(0.into())),
        ]),
        binary_plist(&[
            ("aguid", P::String("at_1_GUID".into())),
            ("fn", P::String("IMG_0001.HEIC".into())),
            ("st", P::Real(5.0)),
            ("vers", P::Integer(1.into())),
        ]),
    ];
    let participants = vec![binary_plist(&[("FZPersonID", P::String("tel:+15550100".into()))])];
    let strategy = prop_oneof![
        mutated(bodies).prop_map(|i| (Target::MessageBody, i)),
        mutated(gzipped).prop_map(|i| (Target::MessageGzip, i)),
        mutated(metas).prop_map(|i| (Target::AttachmentMeta, i)),
        mutated(participants).prop_map(|i| (Target::Participant, i)),
    ];
    let limits = Limits { max_field_bytes: 1 << 20, ..Limits::default() };
    fuzzkit::run("cloudkit/record-fields", strategy, |(target, input): (Target, Input)| {
        let (zone, record) = match target {
            Target::MessageBody | Target::MessageGzip => {
                let gz = match target {
                    Target::MessageBody => gzip(&input, Compression::fast()),
                    _ => input.0.clone(),
                };
                let scalars = vec![("time", number(1)), ("guid", text("GUID-1")), ("chatID", text("chat-1")), ("sender", text("tel:+1"))];
                (MESSAGE_ZONE, sealer.record(MESSAGE_ZONE, MESSAGE_RECORD_TYPE, vec![("msgProto", gz)], scalars))
            }
            Target::AttachmentMeta => {
                (ATTACHMENT_ZONE, sealer.record(ATTACHMENT_ZONE, ATTACHMENT_RECORD_TYPE, vec![("cm", gzip(&input, Compression::fast()))], Vec::new()))
            }
            Target::Participant => {
                let mut r = sealer.record(CHAT_ZONE, CHAT_RECORD_TYPE, Vec::new(), vec![("cid", text("chat-1"))]);
                let item = sealer.field(CHAT_ZONE, "FUZZ-RECORD-1", "ptcpts", &input);
                let list = proto::FieldValue { r#type: Some(proto::value_type::ENCRYPTED_BYTES_LIST), list_values: vec![item], ..Default::default() };
                r.record_field.push(proto::RecordField { identifier: Some(proto::FieldIdentifier { name: Some("ptcpts".into()) }), value: Some(list) });
                (CHAT_ZONE, r)
            }
        };
        let (decoded, peak) = measure(|| codec::decode_record_with(zone, &record, &sealer.ring, &limits));
        prop_assert!(peak <= 4 * limits.max_field_bytes + 64 * input.len() + (4 << 20), "{peak} bytes held");
        match (&decoded, target) {
            (Err(Error::PcsAuth(_) | Error::PcsKeyMissing(_) | Error::PcsTruncated(_) | Error::PcsVersion(_)), _) => {
                return Err(TestCaseError::fail(format!("the fields are sealed correctly, yet: {decoded:?}")));
            }
            // A message whose body parses as a MessageProto is never lost to a bad blob inside
            // it: it decodes, with the blob listed as undecodable.
            (_, Target::MessageBody) if proto::MessageProto::decode(&input[..]).is_ok() => {
                prop_assert!(matches!(decoded, Ok(RecordChange::Message(_))), "lost a message: {decoded:?}");
            }
            (Err(e), _) => prop_assert!(matches!(e, Error::BadField { .. } | Error::MissingField { .. } | Error::TooLarge { .. }), "{e}"),
            (Ok(_), _) => {}
        }
        Ok(())
    });
}

/// Findings of the targets above, kept as named regression tests.
mod regressions {
    use super::*;

    /// Found by `cloudkit/frames`: a stream of empty frames (one zero byte each) decoded into one
    /// 528-byte `ResponseOperation` per input byte, so a 256 MiB reply of zeros (256 KiB
    /// gzipped) asked for over 100 GiB. A reply now holds at most a few operations per request.
    #[test]
    fn a_stream_of_empty_frames_is_refused_past_the_expected_count() {
        let input = bytes::Bytes::from(vec![0u8; 10_000]);
        let (r, peak) = measure(|| decode_delimited_bytes_at_most::<ResponseOperation>(input.clone(), MAX_OPS));
        assert!(matches!(r, Err(Error::Frame(_))), "{r:?}");
        assert!(peak < 64 << 10, "{peak}");
        assert_eq!(decode_delimited_bytes_at_most::<ResponseOperation>(input.slice(..MAX_OPS), MAX_OPS).unwrap().len(), MAX_OPS);
    }

    /// Found by `cloudkit/frames`: a page of empty changes (`0a 00` repeated) held a 32-byte
    /// handle per two input bytes in the raw view; the page decoder now stops at
    /// `MAX_CHANGES_PER_PAGE`.
    #[test]
    fn a_page_of_empty_changes_is_refused_past_the_page_cap() {
        let page = [0x0a, 0x00].repeat(proto::MAX_CHANGES_PER_PAGE + 1);
        let mut op = vec![0xaa, 0x0d]; // field 213, length-delimited
        prost::encoding::encode_varint(page.len() as u64, &mut op);
        op.extend_from_slice(&page);
        let mut body = Vec::new();
        prost::encoding::encode_varint(op.len() as u64, &mut body);
        body.extend_from_slice(&op);
        let (r, peak) = measure(|| decode_delimited_bytes_at_most::<ResponseOperationRaw>(bytes::Bytes::from(body), MAX_OPS));
        assert!(matches!(r, Err(Error::Frame(_))), "{r:?}");
        assert!(peak <= RAW_BOUND, "{peak}");
    }
}
