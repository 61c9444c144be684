//! Every decoder is total: truncations and bit flips of each real fixture, and each fixture fed
//! to the wrong decoder, return (an error or a value) and never panic.

mod common;

use common::fixture;
use imessage::{decode_attributed_body, decode_link_preview, decode_summary_info, Error};

type Decoder = fn(&[u8]) -> Result<(), Error>;

fn body(bytes: &[u8]) -> Result<(), Error> {
    decode_attributed_body(bytes).map(|b| {
        // Whatever decodes must be self-consistent.
        let mut end = 0;
        for run in &b.runs {
            assert_eq!(run.range.start, end, "runs must be contiguous");
            assert!(run.range.end > run.range.start);
            assert!(b.text.get(run.bytes.clone()).is_some());
            end = run.range.end;
        }
        assert_eq!(end, b.text.encode_utf16().count(), "runs must cover the text");
        let _ = b.parts();
    })
}

fn summary(bytes: &[u8]) -> Result<(), Error> {
    decode_summary_info(bytes).map(|s| {
        let _ = s.remaining_parts();
    })
}

fn preview(bytes: &[u8]) -> Result<(), Error> {
    decode_link_preview(bytes).map(drop)
}

const CASES: [(&str, Decoder); 7] = [
    ("attributed-body/AttributedBodyTextOnly", body),
    ("attributed-body/MultiPart", body),
    ("attributed-body/URL", body),
    ("attributed-body/Blank", body),
    ("summary-info/Edited.plist", summary),
    ("summary-info/Deleted.plist", summary),
    ("payload/URL.plist", preview),
];

#[test]
fn truncations_never_panic() {
    for (name, decode) in CASES {
        let bytes = fixture(name);
        let mut errors = 0;
        for len in 0..bytes.len() {
            if decode(&bytes[..len]).is_err() {
                errors += 1;
            }
        }
        // The empty prefix at least is no valid blob.
        assert!(errors > 0, "{name}: no truncation was rejected");
        assert!(decode(&bytes).is_ok(), "{name}: the whole fixture must decode");
    }
}

#[test]
fn bit_flips_never_panic() {
    for (name, decode) in CASES {
        let mut bytes = fixture(name);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                bytes[i] ^= 1 << bit;
                let _ = decode(&bytes);
                bytes[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn byte_overwrites_never_panic() {
    // Values that mean something to the formats: typedstream markers, plist type nibbles.
    const SPECIAL: [u8; 10] = [0x00, 0x84, 0x85, 0x86, 0x92, 0xff, 0x0f, 0xa0, 0xd0, 0x80];
    for (name, decode) in CASES {
        let mut bytes = fixture(name);
        for i in 0..bytes.len() {
            let original = bytes[i];
            for value in SPECIAL {
                bytes[i] = value;
                let _ = decode(&bytes);
            }
            bytes[i] = original;
        }
    }
}

#[test]
fn every_fixture_through_every_decoder_never_panics() {
    let decoders: [Decoder; 3] = [body, summary, preview];
    for (name, _) in CASES {
        let bytes = fixture(name);
        for decode in decoders {
            let _ = decode(&bytes);
        }
    }
}

#[test]
fn garbage_is_an_error() {
    for decode in [body as Decoder, summary, preview] {
        assert!(decode(b"").is_err());
        assert!(decode(b"bplist00").is_err());
        assert!(decode(b"\x04\x0bstreamtyped").is_err());
        assert!(decode(&[0xffu8; 4096]).is_err());
    }
}

#[test]
fn oversized_input_is_refused() {
    let big = vec![0u8; 5 << 20];
    assert!(matches!(decode_attributed_body(&big), Err(Error::TooLarge { .. })));
    assert!(matches!(decode_summary_info(&big), Err(Error::TooLarge { .. })));
    assert!(matches!(decode_link_preview(&big), Err(Error::TooLarge { .. })));
}
