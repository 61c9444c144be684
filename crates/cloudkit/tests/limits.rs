//! Every cap of [`cloudkit::Limits`] tested at the edge: a reply (sized or chunked), an inflated
//! reply and each gzipped record field exactly at its cap is read, and one byte over is
//! [`Error::TooLarge`] naming the limit — never a silently shorter value, never an allocation of
//! what the server claims.

mod common;

use cloudkit::framing::{decode_body, encode_delimited, gzip};
use cloudkit::proto::{self, RequestOperation, ResponseOperation};
use cloudkit::records::{RecordChange, ATTACHMENT_RECORD_TYPE, ATTACHMENT_ZONE, MESSAGE_RECORD_TYPE, MESSAGE_ZONE};
use cloudkit::{codec, Client, Error, KeyRing, Limits};
use common::{bytes, int, record, serve, session, string, Delivery};
use flate2::Compression;
use prost::Message;

/// A valid `record/sync` reply to `request` (same operation UUID) whose token is `pad` bytes.
fn changes_reply(request: &[u8], pad: usize) -> Vec<u8> {
    let ops: Vec<RequestOperation> = decode_body(request, true).expect("the client sends gzipped operations");
    let uuid = ops[0].request.as_ref().and_then(|r| r.operation_uuid.clone());
    let reply = ResponseOperation {
        response: Some(proto::Operation { operation_uuid: uuid, ..Default::default() }),
        result: Some(cloudkit::client::success()),
        retrieve_changes_response: Some(proto::RetrieveChangesResponse {
            change: Vec::new(),
            sync_continuation_token: Some(vec![b't'; pad]),
            status: Some(proto::CHANGES_STATUS_DONE),
        }),
        ..Default::default()
    };
    encode_delimited(&[reply])
}

/// The reply's length for a token of `pad` bytes (the UUID has a fixed length).
fn reply_len(pad: usize) -> usize {
    let request = cloudkit::framing::encode_body(&[RequestOperation {
        request: Some(proto::Operation { operation_uuid: Some(uuid_like()), ..Default::default() }),
        ..Default::default()
    }]);
    changes_reply(&request, pad).len()
}

fn uuid_like() -> String {
    "00000000-0000-0000-0000-000000000000".into()
}

async fn fetch(url: &str, limits: Limits) -> Result<Vec<u8>, Error> {
    let client = Client::with_limits(url, session(), limits).unwrap();
    client.retrieve_changes_raw(MESSAGE_ZONE, None).await.map(|page| page.token.unwrap_or_default())
}

fn too_large(result: &Result<Vec<u8>, Error>, limit: &str, cap: usize) -> bool {
    matches!(result, Err(Error::TooLarge { limit: l, cap: c, .. }) if *l == limit && *c == cap)
}

#[tokio::test]
async fn reply_exactly_at_the_cap_is_read_one_byte_over_is_too_large() {
    const PAD: usize = 200_000;
    let len = reply_len(PAD);
    for send in [Delivery::Sized, Delivery::Chunked] {
        let url = serve(|req| changes_reply(req, PAD), false, send).await;
        let at = Limits { max_reply_bytes: len, ..Limits::default() };
        assert_eq!(fetch(&url, at).await.unwrap().len(), PAD, "a reply of exactly the cap is read whole");
        let under = Limits { max_reply_bytes: len - 1, ..Limits::default() };
        let r = fetch(&url, under).await;
        assert!(too_large(&r, "max_reply_bytes", len - 1), "{:?}", r.err());
        assert!(!r.unwrap_err().is_retryable(), "the same request would get the same answer");
    }
}

#[tokio::test]
async fn inflated_reply_exactly_at_the_cap_is_read_one_byte_over_is_too_large() {
    const PAD: usize = 300_000;
    let len = reply_len(PAD);
    let url = serve(|req| gzip(&changes_reply(req, PAD), Compression::fast()), true, Delivery::Sized).await;
    let at = Limits { max_inflated_reply_bytes: len, ..Limits::default() };
    assert_eq!(fetch(&url, at).await.unwrap().len(), PAD);
    // The gzipped body is a few hundred bytes: only what it inflates to is over the cap.
    let under = Limits { max_inflated_reply_bytes: len - 1, ..Limits::default() };
    let r = fetch(&url, under).await;
    assert!(too_large(&r, "max_inflated_reply_bytes", len - 1), "{:?}", r.err());
}

fn message_with(field: &'static str, inflated: &[u8]) -> proto::Record {
    record(
        MESSAGE_ZONE,
        MESSAGE_RECORD_TYPE,
        "rec-1",
        vec![("time", int(1)), ("guid", string("G")), ("chatID", string("C")), (field, bytes(gzip(inflated, Compression::fast())))],
    )
}

fn decode(record: &proto::Record, max_field_bytes: usize) -> Result<RecordChange, Error> {
    let limits = Limits { max_field_bytes, ..Limits::default() };
    codec::decode_record_with(
        record.record_identifier.as_ref().and_then(|i| i.zone_identifier.as_ref()).and_then(|z| z.zone_name()).unwrap(),
        record,
        &KeyRing::default(),
        &limits,
    )
}

#[test]
fn each_gzipped_field_exactly_at_the_cap_decodes_one_byte_over_is_too_large() {
    let text = "x".repeat(100_000);
    let body = proto::MessageProto { text: Some(text.clone()), ..Default::default() }.encode_to_vec();
    let extra2 = proto::MessageProto2 { reply: Some("p:0/".to_string() + &"R".repeat(50_000)) }.encode_to_vec();
    let extra4 = proto::MessageProto4 { associated_message_emoji: Some("e".repeat(50_000)), ..Default::default() }.encode_to_vec();
    for (field, inflated) in [("msgProto", &body), ("msgProto2", &extra2), ("msgProto4", &extra4)] {
        let rec = message_with(field, inflated);
        assert!(matches!(decode(&rec, inflated.len()), Ok(RecordChange::Message(_))), "{field} at the cap");
        match decode(&rec, inflated.len() - 1) {
            Err(Error::TooLarge { what, limit: "max_field_bytes", cap }) => {
                assert_eq!(cap, inflated.len() - 1);
                assert!(what.contains("rec-1") && what.contains(field), "names the record and field: {what}");
            }
            other => panic!("{field} one byte over: {other:?}"),
        }
    }
    // The default limit reads them all.
    assert!(codec::decode_record(MESSAGE_ZONE, &message_with("msgProto", &body), &KeyRing::default()).is_ok());
}

#[test]
fn attachment_metadata_exactly_at_the_cap_decodes_one_byte_over_is_too_large() {
    let mut meta = plist::Dictionary::new();
    meta.insert("aguid".into(), plist::Value::String("at_0_GUID".into()));
    meta.insert("fn".into(), plist::Value::String("f".repeat(80_000)));
    let mut cm = Vec::new();
    plist::Value::Dictionary(meta).to_writer_binary(&mut cm).unwrap();
    let rec = record(ATTACHMENT_ZONE, ATTACHMENT_RECORD_TYPE, "att-1", vec![("cm", bytes(gzip(&cm, Compression::fast())))]);
    assert!(matches!(decode(&rec, cm.len()), Ok(RecordChange::Attachment(a)) if a.guid == "at_0_GUID"));
    assert!(matches!(decode(&rec, cm.len() - 1), Err(Error::TooLarge { limit: "max_field_bytes", .. })));
}

#[test]
fn a_gzip_trailer_claiming_gigabytes_allocates_nothing_of_the_kind() {
    // 1 KiB that states 4 GiB - 1: decoding must find the real size, within the cap.
    let mut gz = gzip(&[0u8; 1024], Compression::fast());
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(cloudkit::framing::gunzip_capped(&gz, 1 << 20), Err(Error::Frame(_))), "a damaged trailer is a frame error");
    assert!(matches!(cloudkit::framing::gunzip_capped(&gz, 100), Err(Error::TooLarge { .. })));
}

#[test]
fn limits_read_from_config_with_defaults() {
    let l: Limits = serde_json::from_str(r#"{"max_field_bytes": 5}"#).unwrap();
    assert_eq!(l, Limits { max_field_bytes: 5, ..Limits::default() });
    assert!(serde_json::from_str::<Limits>(r#"{"max_fields": 5}"#).is_err(), "a misspelt limit is an error, not a default");
}
