//! Round trips of the wire format: framing, gzip, record encoding/decoding with PCS, and the
//! typed errors malformed input must produce.

use cloudkit::codec::{decode_change, decode_record, encode_attachment, encode_chat, encode_message, summary_count, summary_record};
use cloudkit::framing::{decode_body, decode_delimited, decode_delimited_bytes, encode_body, encode_delimited, gzip};
use cloudkit::proto::{self, RequestOperation, ResponseOperation};
use cloudkit::records::*;
use cloudkit::{Error, KeyRing, PcsKey, RawChangesPage};

fn op(uuid: &str) -> RequestOperation {
    RequestOperation {
        request: Some(proto::Operation { operation_uuid: Some(uuid.into()), r#type: Some(213), ..Default::default() }),
        retrieve_changes_request: Some(proto::RetrieveChangesRequest {
            sync_continuation_token: Some(vec![1, 2, 3]),
            zone_identifier: Some(proto::zone_id(MESSAGE_ZONE, "_owner")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn delimited_frames_roundtrip_through_gzip() {
    let ops: Vec<_> = (0..300).map(|i| op(&format!("UUID-{i}"))).collect();
    let body = encode_body(&ops);
    assert_eq!(&body[..2], &[0x1f, 0x8b], "body must be gzip");
    let back: Vec<RequestOperation> = decode_body(&body, true).unwrap();
    assert_eq!(back, ops);
    // Lengths above 127 need a two-byte uleb128 prefix.
    let mut big = op("X");
    big.retrieve_changes_request.as_mut().unwrap().sync_continuation_token = Some(vec![7; 200]);
    let raw = encode_delimited(std::slice::from_ref(&big));
    assert!(raw[0] & 0x80 != 0, "first length byte must have the continuation bit");
    assert_eq!(decode_delimited::<RequestOperation>(&raw).unwrap(), vec![big]);
}

#[test]
fn malformed_frames_are_typed_errors() {
    let raw = encode_delimited(&[op("A")]);
    // Truncated message.
    assert!(matches!(decode_delimited::<RequestOperation>(&raw[..raw.len() - 1]), Err(Error::Frame(_))));
    // Length prefix that never ends.
    assert!(matches!(decode_delimited::<RequestOperation>(&[0xff, 0xff, 0xff]), Err(Error::Frame(_))));
    // Garbage protobuf inside a valid length.
    assert!(matches!(decode_delimited::<ResponseOperation>(&[3, 0xff, 0xff, 0xff]), Err(Error::Frame(_))));
    // Not gzip.
    assert!(matches!(decode_body::<ResponseOperation>(b"plain text", true), Err(Error::Frame(_))));
    // Truncated gzip.
    let gz = gzip(&raw, flate2::Compression::default());
    assert!(matches!(decode_body::<RequestOperation>(&gz[..gz.len() / 2], true), Err(Error::Frame(_))));
    // Empty body is zero messages, not an error.
    assert!(decode_delimited::<ResponseOperation>(&[]).unwrap().is_empty());
}

#[test]
fn raw_page_view_reads_the_same_bytes_and_isolates_a_malformed_change() {
    let key = PcsKey::new([5; 16]);
    let change = |i: u32| {
        let record = encode_message("_owner", &key, &sample_message(i));
        proto::RecordChange {
            identifier: record.record_identifier.clone(),
            etag: None,
            record_type: record.r#type.clone(),
            record: Some(record),
        }
    };
    let changes: Vec<proto::RecordChange> = (0..3).map(change).collect();
    let full = ResponseOperation {
        response: Some(proto::Operation { operation_uuid: Some("U".into()), ..Default::default() }),
        result: Some(cloudkit::client::success()),
        retrieve_changes_response: Some(proto::RetrieveChangesResponse {
            change: changes.clone(),
            sync_continuation_token: Some(b"next".to_vec()),
            status: Some(proto::CHANGES_STATUS_DONE),
        }),
        ..Default::default()
    };
    // The raw view parses the full message's bytes: same token, status, and changes.
    let body = bytes::Bytes::from(encode_delimited(std::slice::from_ref(&full)));
    let mut raw: Vec<proto::ResponseOperationRaw> = decode_delimited_bytes(body).unwrap();
    let resp = raw.pop().unwrap().retrieve_changes_response.unwrap();
    let page = RawChangesPage { changes: resp.change, token: resp.sync_continuation_token, status: resp.status.unwrap() };
    assert!(page.done());
    assert_eq!(page.token.as_deref(), Some(&b"next"[..]));
    assert_eq!(page.clone().decode().unwrap().changes, changes);

    // One damaged change fails alone in the raw view, and the whole page in the full decode.
    let mut damaged = page.clone();
    damaged.changes.insert(1, bytes::Bytes::from_static(&[0x0a, 0x05, 0xff]));
    assert_eq!(damaged.change(0).unwrap(), changes[0]);
    assert!(matches!(damaged.change(1), Err(Error::Frame(_))));
    assert_eq!(damaged.change(2).unwrap(), changes[1]);
    assert!(matches!(damaged.change(4), Err(Error::Frame(_))));
    assert!(matches!(damaged.decode(), Err(Error::Frame(_))));
}

fn sample_message(i: u32) -> MessageRecord {
    MessageRecord {
        record_name: format!("rec-{i}"),
        guid: format!("GUID-{i}"),
        chat_id: "chat123".into(),
        sender: "tel:+15551234567".into(),
        flags: FLAG_FROM_ME,
        ts_ms: 1_600_000_000_123,
        text: Some("héllo 👋".into()),
        subject: None,
        associated_type: Some(2001),
        associated_guid: Some("GUID-0".into()),
        service: Some("iMessage".into()),
    }
}

#[test]
fn records_roundtrip_through_pcs() {
    let key = PcsKey::new([5; 16]);
    let ring = KeyRing::new([PcsKey::new([9; 16]), key.clone()]);
    let m = sample_message(1);
    let rec = encode_message("_owner", &key, &m);
    assert_eq!(rec.pcs_key.as_deref(), Some(&key.short_id()[..]));
    // No plaintext leaks into the record.
    let bytes = prost::Message::encode_to_vec(&rec);
    assert!(!bytes.windows(5).any(|w| w == b"GUID-"), "guid must be encrypted");
    assert_eq!(decode_record(MESSAGE_ZONE, &rec, &ring).unwrap(), RecordChange::Message(m));

    let c = ChatRecord {
        record_name: "chatrec".into(),
        chat_id: "chat123".into(),
        group_id: Some("G-1".into()),
        style: STYLE_GROUP,
        display_name: Some("Climbing 🧗".into()),
        participants: vec!["tel:+15551234567".into(), "mailto:a@example.com".into()],
        service: Some("iMessage".into()),
        modified_ms: 1_650_000_000_000,
    };
    let rec = encode_chat("_owner", &key, &c);
    assert_eq!(decode_record(CHAT_ZONE, &rec, &ring).unwrap(), RecordChange::Chat(c));

    let a = AttachmentRecord {
        record_name: "att".into(),
        guid: "AGUID".into(),
        mime_type: Some("image/jpeg".into()),
        filename: Some("IMG_0001.jpeg".into()),
        total_bytes: 123456,
        asset_size: Some(123500),
    };
    let rec = encode_attachment("_owner", &key, &a);
    assert_eq!(decode_record(ATTACHMENT_ZONE, &rec, &ring).unwrap(), RecordChange::Attachment(a));
}

#[test]
fn decoding_failures_are_named() {
    let key = PcsKey::new([5; 16]);
    let rec = encode_message("_owner", &key, &sample_message(2));
    // Missing key: the record's pcsKey is not in the ring.
    let other = KeyRing::new([PcsKey::new([6; 16])]);
    match decode_record(MESSAGE_ZONE, &rec, &other) {
        Err(Error::PcsKeyMissing(id)) => assert_eq!(id, cloudkit::pcs::hex(&key.short_id())),
        r => panic!("expected PcsKeyMissing, got {r:?}"),
    }
    // Decrypting in another zone fails authentication (context binds the zone).
    let ring = KeyRing::new([key.clone()]);
    assert!(matches!(decode_record(CHAT_ZONE, &rec, &ring), Err(Error::PcsAuth(_))));
    // A required field removed.
    let mut no_guid = rec.clone();
    no_guid.record_field.retain(|f| f.identifier.as_ref().unwrap().name.as_deref() != Some("guid"));
    assert!(matches!(decode_record(MESSAGE_ZONE, &no_guid, &ring), Err(Error::MissingField { field: "guid", .. })));
    // Unknown record type.
    let mut odd = rec.clone();
    odd.r#type = Some(proto::RecordType { name: Some("Other".into()) });
    assert!(matches!(decode_record(MESSAGE_ZONE, &odd, &ring), Err(Error::BadField { field: "type", .. })));
    // Deletion: change without record.
    let del = proto::RecordChange { identifier: rec.record_identifier.clone(), ..Default::default() };
    assert_eq!(decode_change(MESSAGE_ZONE, &del, &ring).unwrap(), RecordChange::Deleted { record_name: "rec-2".into() });
    assert!(matches!(decode_change(MESSAGE_ZONE, &proto::RecordChange::default(), &ring), Err(Error::NamelessRecord)));
}

#[test]
fn time_conversion_is_exact_for_ms() {
    for ms in [978_307_200_000i64, 1_700_000_000_001, 978_307_199_999] {
        assert_eq!(apple_ns_to_unix_ms(unix_ms_to_apple_ns(ms)), ms);
    }
}

#[test]
fn summary_counts() {
    let rec = summary_record(MESSAGE_ZONE, "_o", MESSAGE_RECORD_TYPE, 25072);
    assert_eq!(summary_count(&rec, MESSAGE_RECORD_TYPE), Some(25072));
    assert_eq!(summary_count(&rec, CHAT_RECORD_TYPE), None);
}

#[test]
fn result_codes_map_to_typed_errors() {
    use cloudkit::client::{check_result, failure};
    use cloudkit::proto::{client_error, server_error};
    let reply = |r| ResponseOperation { result: Some(r), ..Default::default() };
    assert!(check_result(&reply(cloudkit::client::success())).is_ok());
    match check_result(&reply(failure(Some(client_error::THROTTLED), None, Some(7), "slow down"))) {
        Err(Error::Throttled { retry_after }) => assert_eq!(retry_after, Some(std::time::Duration::from_secs(7))),
        r => panic!("{r:?}"),
    }
    assert!(matches!(check_result(&reply(failure(None, Some(server_error::ZONE_BUSY), None, ""))), Err(Error::Throttled { .. })));
    assert!(matches!(check_result(&reply(failure(Some(client_error::ZONE_NOT_FOUND), None, None, ""))), Err(Error::ZoneNotFound { .. })));
    assert!(matches!(check_result(&reply(failure(Some(client_error::FULL_RESET_NEEDED), None, None, ""))), Err(Error::FullResetNeeded)));
    assert!(matches!(check_result(&reply(failure(Some(24), None, None, "bad value"))), Err(Error::OperationFailed { client: Some(24), .. })));
    // No result at all is not success.
    assert!(check_result(&ResponseOperation::default()).is_err());
}
