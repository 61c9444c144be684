//! `read_attributed_body`: a body that is no valid typedstream still gives its text, as Apple's
//! readers and imessage-exporter's legacy parser read it, and says it was read by fallback.
//!
//! Oracles: the texts imessage-exporter's own tests expect of its blobs (see
//! `tests/data/exporter-streamtyped/README.md`) and of `shared/fixtures/apple` (its README).

mod common;

use common::fixture;
use imessage::{decode_attributed_body, read_attributed_body, BodyPart};

fn exporter_blob(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exporter-streamtyped").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `bytes` with the first `from` replaced by `to`.
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern in blob");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

#[test]
fn a_real_body_whose_string_claims_more_bytes_than_it_has_is_read_by_fallback() {
    let bytes = exporter_blob("ExtraData");
    assert!(decode_attributed_body(&bytes).is_err(), "a strict typedstream reader refuses this blob");
    let read = read_attributed_body(&bytes).expect("the fallback reads it");
    assert!(read.fallback.is_some(), "counted as read by fallback");
    assert!(read.body.text.starts_with("This is parsing"), "{:?}", read.body.text);
    assert_eq!(read.body.parts(), vec![BodyPart::Text { part: None, text: read.body.text.clone() }]);
}

#[test]
fn a_built_body_with_a_too_long_length_header_is_read_by_fallback() {
    // The real "Noter test" body with its one-byte length (10) replaced by 5000 (0x81 + u16 LE).
    let real = fixture("attributed-body/AttributedBodyTextOnly");
    let bytes = patched(&real, b"+\x0aNoter", b"+\x81\x88\x13Noter");
    assert!(decode_attributed_body(&bytes).is_err());
    let read = read_attributed_body(&bytes).unwrap();
    assert_eq!(read.body.text, "Noter test");
    assert!(read.fallback.is_some());
    // A 4-byte length far past the end, on a body with 4-byte UTF-8 characters.
    let weird = exporter_blob("WeirdText");
    let bytes = patched(&weird, b"+\x29", b"+\x82\x00\x00\x00\x10");
    let read = read_attributed_body(&bytes).unwrap();
    assert_eq!(read.body.text, "𝖍𝖊𝖑𝖑𝖔 𝖜𝖔𝖗𝖑𝖉");
    assert!(read.fallback.is_some());
}

#[test]
fn real_bodies_cut_inside_their_string_give_what_is_there_by_fallback() {
    // Each blob cut one byte before the end of its backing string: its declared length is now
    // longer than the bytes that follow, as in Apple's own `ExtraData`. The text up to the cut
    // (less a character the cut split) is read.
    let cases: [(Vec<u8>, &str); 5] = [
        (fixture("attributed-body/AttributedBodyTextOnly"), "Noter test"),
        (fixture("attributed-body/URL"), "https://github.com/ReagentX/Logria"),
        (fixture("attributed-body/MultiPart"), "\u{FFFC}test 1\u{FFFC}test 2 \u{FFFC}test 3"),
        (exporter_blob("WeirdText"), "𝖍𝖊𝖑𝖑𝖔 𝖜𝖔𝖗𝖑𝖉"),
        (exporter_blob("AttributedBodyTextOnly2"), "Test 3"),
    ];
    for (bytes, text) in cases {
        let end = bytes.windows(text.len()).position(|w| w == text.as_bytes()).expect("text in blob") + text.len();
        let cut = &bytes[..end - 1];
        assert!(decode_attributed_body(cut).is_err(), "{text:?}: the cut blob is no typedstream");
        let read = read_attributed_body(cut).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let mut expected = text.chars();
        expected.next_back();
        assert_eq!(read.body.text, expected.as_str());
        assert!(read.fallback.is_some());
    }
}

#[test]
fn valid_bodies_are_not_read_by_fallback_and_garbage_stays_an_error() {
    for name in ["attributed-body/AttributedBodyTextOnly", "attributed-body/MultiPart", "attributed-body/URL", "attributed-body/Blank"] {
        let bytes = fixture(name);
        let read = read_attributed_body(&bytes).unwrap();
        assert!(read.fallback.is_none(), "{name}");
        assert_eq!(read.body, decode_attributed_body(&bytes).unwrap(), "{name}");
    }
    assert!(read_attributed_body(b"").is_err());
    assert!(read_attributed_body(b"\x04\x0bstreamtyped").is_err());
    assert!(read_attributed_body(&fixture("payload/URL.plist")).is_err());
}
