//! Fuzz targets for Apple's content blobs: the `attributedBody` typedstream, the
//! `messageSummaryInfo` plist and the `payloadData` keyed archive, seeded with the real Apple
//! blobs of `tests/data/apple` and mutated (bit flips, truncation, splicing of one blob into
//! another, length fields blown up). Properties: no panic, an error or a value, memory within
//! the decoders' documented caps, and what decodes is self-consistent (runs cover the text,
//! edit versions are in order of their times as given). `robustness.rs` walks every single
//! truncation and bit flip of each fixture; this explores combinations of them.

mod common;

use common::fixture;
use fuzzkit::{measure, mutated, Input};
use imessage::content::{MAX_PLIST_BYTES, MAX_TYPEDSTREAM_BYTES};
use imessage::{decode_attributed_body, decode_link_preview, decode_summary_info, Error};
use proptest::prelude::*;

#[global_allocator]
static METER: fuzzkit::Meter = fuzzkit::Meter;

const BODIES: [&str; 4] = ["attributed-body/AttributedBodyTextOnly", "attributed-body/MultiPart", "attributed-body/URL", "attributed-body/Blank"];
const PLISTS: [&str; 3] = ["summary-info/Edited.plist", "summary-info/Deleted.plist", "payload/URL.plist"];

fn seeds(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| fixture(n)).collect()
}

/// What the plist reader may hold at most: its caps on events and expanded bytes (see
/// `src/content/plist.rs`) times the size of a value, with room for a `Vec`'s doubling.
const PLIST_BOUND: usize = (1 << 18) * 64 + 8 * MAX_PLIST_BYTES;

fn limit_error(e: &Error) -> bool {
    matches!(e, Error::TooLarge { .. } | Error::Limit { .. })
}

#[test]
fn fuzz_attributed_body() {
    // Splicing plists in lets the mutator try a typedstream holding other formats' bytes.
    let mut all = seeds(&BODIES);
    all.extend(seeds(&PLISTS[..1]));
    fuzzkit::run("imessage/attributed-body", mutated(all), |input: Input| {
        let (decoded, peak) = measure(|| decode_attributed_body(&input));
        prop_assert!(peak <= 64 * input.len() + (1 << 20), "{peak} bytes held for {} input bytes", input.len());
        match decoded {
            Ok(body) => {
                let mut end = 0;
                for run in &body.runs {
                    prop_assert_eq!(run.range.start, end, "runs must be contiguous");
                    prop_assert!(run.range.end > run.range.start);
                    prop_assert!(body.text.get(run.bytes.clone()).is_some(), "run bytes inside the text");
                    end = run.range.end;
                }
                prop_assert_eq!(end, body.text.encode_utf16().count(), "runs cover the text");
                // The parts are the text again: each attachment one U+FFFC, nothing lost or added.
                let rebuilt: String = body
                    .parts()
                    .iter()
                    .map(|p| match p {
                        imessage::BodyPart::Text { text, .. } => text.clone(),
                        _ => '\u{FFFC}'.to_string(),
                    })
                    .collect();
                prop_assert_eq!(rebuilt, body.text.clone(), "parts must spell the text");
            }
            Err(e) => prop_assert!(!limit_error(&e) || input.len() > 64, "a limit hit by {} bytes: {e}", input.len()),
        }
        Ok(())
    });
}

/// A plist decoder under the reader's caps: no panic, memory within [`PLIST_BOUND`], and what
/// decodes passes `check`.
fn fuzz_plist<T>(target: &str, decode: fn(&[u8]) -> Result<T, Error>, check: impl Fn(T) -> Result<(), TestCaseError>) {
    fuzzkit::run(target, mutated(seeds(&PLISTS)), |input: Input| {
        let (decoded, peak) = measure(|| decode(&input));
        prop_assert!(peak <= PLIST_BOUND, "{peak} bytes held");
        decoded.map_or(Ok(()), &check)
    });
}

#[test]
fn fuzz_summary_info() {
    fuzz_plist("imessage/summary-info", decode_summary_info, |info| {
        // Every version's text came out of its own capped typedstream.
        for v in info.edits.iter().flat_map(|e| &e.versions) {
            prop_assert!(v.text().len() <= MAX_TYPEDSTREAM_BYTES * 3);
        }
        prop_assert!(info.remaining_parts() <= info.parts.len());
        Ok(())
    });
}

#[test]
fn fuzz_link_preview() {
    fuzz_plist("imessage/payload-data", decode_link_preview, |p| {
        prop_assert!(p.image_urls.len() <= 16, "{} image urls", p.image_urls.len());
        Ok(())
    });
}
