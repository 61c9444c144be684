//! The client's wire format: framing, gzip, the raw page view, summaries, result codes, and the
//! typed errors malformed input must produce. (Records are decoded in
//! `crates/cloudkit-sim/tests/client_reads_sim.rs`, from the simulator's independent encoder,
//! and field by field from foreign vectors in `pcs_vectors.rs`.)

use cloudkit::codec::{decode_change, summary_list};
use cloudkit::framing::{decode_body, decode_delimited, decode_delimited_bytes, encode_body, encode_delimited, gzip};
use cloudkit::proto::{self, RequestOperation, ResponseOperation};
use cloudkit::records::*;
use cloudkit::{Error, KeyRing, RawChangesPage};

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
    let change = |i: u32| {
        let record = proto::Record {
            record_identifier: Some(proto::RecordIdentifier {
                value: Some(proto::Identifier { name: Some(format!("rec-{i}")), r#type: Some(1) }),
                zone_identifier: Some(proto::zone_id(MESSAGE_ZONE, "_owner")),
            }),
            r#type: Some(proto::RecordType { name: Some(MESSAGE_RECORD_TYPE.into()) }),
            pcs_key: Some(vec![1, 2, 3, 4]),
            ..Default::default()
        };
        proto::RecordChange { identifier: record.record_identifier.clone(), etag: None, record_type: record.r#type.clone(), record: Some(record) }
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

#[test]
fn deletions_and_nameless_changes() {
    let ring = KeyRing::default();
    let id = proto::RecordIdentifier {
        value: Some(proto::Identifier { name: Some("rec-2".into()), r#type: Some(1) }),
        zone_identifier: Some(proto::zone_id(MESSAGE_ZONE, "_owner")),
    };
    let del = proto::RecordChange { identifier: Some(id), ..Default::default() };
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
fn summary_lists_are_kept_as_they_are() {
    let int = |n: i64| proto::FieldValue { r#type: Some(proto::value_type::INT64), signed_value: Some(n), ..Default::default() };
    let field = |value: proto::FieldValue| proto::RecordField {
        identifier: Some(proto::FieldIdentifier { name: Some(MESSAGE_RECORD_TYPE.into()) }),
        value: Some(value),
    };
    let list = proto::FieldValue { r#type: Some(proto::value_type::INT64_LIST), list_values: vec![int(25072), int(3)], ..Default::default() };
    let rec = proto::Record { record_field: vec![field(list)], ..Default::default() };
    assert_eq!(summary_list(&rec, MESSAGE_RECORD_TYPE), Some(vec![25072, 3]), "not summed, not truncated");
    assert_eq!(summary_list(&rec, CHAT_RECORD_TYPE), None);
    let plain = proto::Record { record_field: vec![field(int(7))], ..Default::default() };
    assert_eq!(summary_list(&plain, MESSAGE_RECORD_TYPE), Some(vec![7]));
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
    match check_result(&reply(failure(Some(client_error::BAD_SYNTAX), None, None, "operation type 201 sent to record/sync"))) {
        Err(e @ Error::OperationFailed { client_name: Some("BAD_SYNTAX"), .. }) => assert!(e.to_string().contains("BAD_SYNTAX"), "{e}"),
        r => panic!("{r:?}"),
    }
    // No result at all is not success.
    assert!(check_result(&ResponseOperation::default()).is_err());
}
