//! The simulator's content encoders against Apple's own blobs and against the bridge's decoders.
//!
//! `shared/fixtures/apple/` holds blobs Messages wrote (from ReagentX/imessage-exporter's test
//! data, GPL-3.0-or-later). Given those blobs' contents, the encoders must write the very same
//! bytes; every other output must decode, through `imessage` (the bridge's decoders) and crabstep
//! (the typedstream reader underneath), to what was put in. The encoders share no code with
//! either, so agreement here is agreement on Apple's format, not with ourselves.

use cloudkit_sim::content::{
    encode_attributed_body, encode_attributed_body_with, encode_link_preview, encode_summary_info, BodyRun, BodyStyle, LinkPreviewSpec, PartHistory, PartSpan,
    SummaryInfoSpec, VersionSpec,
};
use crabstep::{OutputData, TypedStreamDeserializer};
use imessage::{decode_attributed_body, decode_link_preview, decode_summary_info, AttributedBody, BodyPart};
use plist::Value;

const FFFC: &str = "\u{FFFC}";
const FILE_TRANSFER_GUID: &str = "__kIMFileTransferGUIDAttributeName";
const GUID_SUFFIX: &str = "F0668F79-20C2-49C9-A87F-1B007ABB0CED";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../../shared/fixtures/apple/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Asserts `actual == expected`, showing where the bytes first differ.
fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let at = actual.iter().zip(expected).position(|(a, e)| a != e).unwrap_or(actual.len().min(expected.len()));
        let window = |b: &[u8]| b[at.saturating_sub(8)..(at + 16).min(b.len())].to_vec();
        panic!(
            "{what}: differs from Apple's at byte {at} (lengths {} vs {}):\n ours  {:02x?}\n apple {:02x?}",
            actual.len(),
            expected.len(),
            window(actual),
            window(expected)
        );
    }
}

/// Parses `bytes` with crabstep and returns every primitive value it resolves.
fn crabstep_primitives(bytes: &[u8]) -> Vec<String> {
    let mut stream = TypedStreamDeserializer::new(bytes);
    let root = stream.oxidize().expect("crabstep reads the typedstream");
    stream
        .resolve_properties(root)
        .expect("crabstep resolves the root")
        .primitives()
        .into_iter()
        .filter_map(|value| match value {
            OutputData::String(text) => Some((*text).to_owned()),
            OutputData::SignedInteger(n) => Some(n.to_string()),
            OutputData::UnsignedInteger(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// Asserts that crabstep parses `bytes` and finds each of `expected` among its values.
fn assert_crabstep_reads(bytes: &[u8], expected: &[&str]) {
    let values = crabstep_primitives(bytes);
    for want in expected {
        assert!(values.iter().any(|value| value == want), "crabstep did not find {want:?} in {values:?}");
    }
}

/// The runs a decoded body holds, as encoder input.
fn runs_of(body: &AttributedBody) -> Vec<BodyRun> {
    body.runs
        .iter()
        .map(|run| BodyRun {
            text: body.run_text(run).to_owned(),
            part: run.part.expect("every fixture run has a part"),
            attachment_guid: run.attachment_guid.clone(),
            mention: run.mention.clone(),
            link: run.link.clone(),
        })
        .collect()
}

/// Asserts that Apple's `archive` holds `runs` (so that encoding `runs` should give it back).
fn assert_holds(archive: &[u8], runs: &[BodyRun]) {
    assert_eq!(runs_of(&decode(archive)), runs, "the archive holds these runs");
}

fn decode(bytes: &[u8]) -> AttributedBody {
    decode_attributed_body(bytes).expect("imessage decodes the body")
}

fn plist_value(bytes: &[u8]) -> Value {
    plist::from_bytes(bytes).expect("a valid plist")
}

// --- attributedBody: Apple's bytes -------------------------------------------------------------

#[test]
fn text_only_body_is_apples_bytes() {
    let apple = fixture("attributed-body/AttributedBodyTextOnly");
    assert_holds(&apple, &[BodyRun::text("Noter test", 0)]);
    let ours = encode_attributed_body(&[BodyRun::text("Noter test", 0)]).unwrap();
    assert_same_bytes(&ours, &apple, "AttributedBodyTextOnly");
}

/// `MultiPart` is byte-equal up to the one thing the encoder cannot know: from its third
/// dictionary on, Apple references the attribute-name objects of the first (they were the same
/// NSString instances), while its second dictionary holds a copy of its own. No content decides
/// that, so the encoder writes names anew (or, with `shared_names`, shares them everywhere),
/// and the output must decode to exactly what Apple's does.
#[test]
fn multi_part_body_matches_apples_up_to_name_sharing() {
    let apple = fixture("attributed-body/MultiPart");
    let guid = |n: u32| format!("at_{n}_{GUID_SUFFIX}");
    let runs = [
        BodyRun::attachment(guid(0), 0),
        BodyRun::text("test 1", 1),
        BodyRun::attachment(guid(2), 2),
        BodyRun::text("test 2 ", 3),
        BodyRun::attachment(guid(4), 4),
        BodyRun::text("test 3", 5),
    ];
    assert_holds(&apple, &runs);

    let ours = encode_attributed_body(&runs).unwrap();
    // Header, text and the first two runs with their dictionaries are Apple's bytes; at byte 398
    // (the third dictionary's first key) Apple writes a reference to object 9, the
    // `__kIMFileTransferGUIDAttributeName` of the first dictionary, where we write the name again.
    let n = 398;
    assert_same_bytes(&ours[..n], &apple[..n], "MultiPart");
    assert_eq!((apple[n], ours[n]), (0x92 + 9, 0x84), "Apple's reference, our new object");

    let shared = BodyStyle { shared_names: true, ..BodyStyle::MESSAGE };
    for bytes in [ours, encode_attributed_body_with(&runs, shared).unwrap()] {
        assert_eq!(decode(&bytes), decode(&apple), "imessage");
        assert_eq!(crabstep_primitives(&bytes), crabstep_primitives(&apple));
    }
}

#[test]
fn empty_body_is_apples_blank() {
    let apple = fixture("attributed-body/Blank");
    assert_same_bytes(&encode_attributed_body(&[]).unwrap(), &apple, "Blank");
}

#[test]
fn link_body_decodes_like_apples() {
    // Not byte-equal: Apple's link run also carries a data-detector result (an archived
    // DDScannerResult) that the simulator does not write, and its keys are in hash order.
    let apple = decode(&fixture("attributed-body/URL"));
    let url = "https://github.com/ReagentX/Logria";
    let ours = encode_attributed_body_with(&[BodyRun::link(url, url, 0)], BodyStyle::CURRENT).unwrap();
    let ours = decode(&ours);
    assert_eq!(ours.text, apple.text);
    assert_eq!(ours.runs.len(), 1);
    let (mine, theirs) = (&ours.runs[0], &apple.runs[0]);
    assert_eq!(mine.range, theirs.range);
    assert_eq!(mine.part, theirs.part);
    assert_eq!(mine.link, theirs.link);
    assert_eq!(mine.writing_direction, theirs.writing_direction);
}

/// Decodes a hex string (whitespace-free pieces joined by `concat!`).
fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// Three more archives Messages wrote, from crabstep 0.7.0's test data (`src/test_data/`,
/// ReagentX/crabstep, GPL-3.0-or-later like the fixtures), kept here so this test needs no
/// registry path: a mention, a body whose attachment GUID has no `at_` prefix, and the text of
/// an edited version of newer Messages.
const MENTION: &str = concat!(
    "040b73747265616d747970656481e803840140848484194e534d757461626c6541747472696275746564537472696e67",
    "008484124e5341747472696275746564537472696e67008484084e534f626a6563740085928484840f4e534d75746162",
    "6c65537472696e67018484084e53537472696e67019584012b0954657374204461642086840269490105928484840c4e",
    "5344696374696f6e617279009584016901928498981d5f5f6b494d4d657373616765506172744174747269627574654e",
    "616d658692848484084e534e756d626572008484074e5356616c7565009584012a849b9b00868699020392849a9b0292",
    "8498981c5f5f6b494d4d656e74696f6e436f6e6669726d65644d656e74696f6e86928498980c2b313535353836373533",
    "303986928498981d5f5f6b494d4d657373616765506172744174747269627574654e616d6586929c8699010186",
);
const MULTI_PART_WITH_DELETED: &str = concat!(
    "040b73747265616d747970656481e803840140848484194e534d757461626c6541747472696275746564537472696e67",
    "008484124e5341747472696275746564537472696e67008484084e534f626a6563740085928484840f4e534d75746162",
    "6c65537472696e67018484084e53537472696e67019584012b3f46726f6d206172626974726172792062797465207374",
    "7265616d3a0defbfbc546f206e61746976652052757374206461746120737472756374757265733a0d8684026949011c",
    "928484840c4e5344696374696f6e617279009584016901928498981d5f5f6b494d4d6573736167655061727441747472",
    "69627574654e616d658692848484084e534e756d626572008484074e5356616c7565009584012a849b9b008686990201",
    "92849a9b0292849898225f5f6b494d46696c655472616e73666572475549444174747269627574654e616d6586928498",
    "982444303535314438392d344531312d343344302d394130452d30364631393730344539374286928498981d5f5f6b49",
    "4d4d657373616765506172744174747269627574654e616d658692849d9e9f9b01868699032092849a9b01928498981d",
    "5f5f6b494d4d657373616765506172744174747269627574654e616d658692849d9e9f9b02868686",
);
const EDITED_TEXT: &str = concat!(
    "040b73747265616d747970656481e803840140848484124e5341747472696275746564537472696e67008484084e534f",
    "626a656374008592848484084e53537472696e67019484012b0654657374203386840269490106928484840c4e534469",
    "6374696f6e61727900948401690292849696265f5f6b494d4261736557726974696e67446972656374696f6e41747472",
    "69627574654e616d658692848484084e534e756d626572008484074e5356616c7565009484012a848401719dff869284",
    "96961d5f5f6b494d4d657373616765506172744174747269627574654e616d658692849b9c9d9d00868686",
);

#[test]
fn mention_body_is_apples_bytes() {
    let runs = [BodyRun::text("Test ", 0), BodyRun::mention("Dad", "+15558675309", 0), BodyRun::text(" ", 0)];
    let apple = hex(MENTION);
    assert_holds(&apple, &runs);
    assert_same_bytes(&encode_attributed_body(&runs).unwrap(), &apple, "Mention");
}

#[test]
fn attachment_between_texts_is_apples_bytes() {
    let runs = [
        BodyRun::text("From arbitrary byte stream:\r", 0),
        BodyRun::attachment("D0551D89-4E11-43D0-9A0E-06F19704E97B", 1),
        BodyRun::text("To native Rust data structures:\r", 2),
    ];
    let apple = hex(MULTI_PART_WITH_DELETED);
    assert_holds(&apple, &runs);
    let ours = encode_attributed_body(&runs).unwrap();
    assert_same_bytes(&ours, &apple, "MultiPartWithDeleted");
}

#[test]
fn newer_edit_text_is_apples_bytes() {
    let ours = encode_attributed_body_with(&[BodyRun::text("Test 3", 0)], BodyStyle::EDIT).unwrap();
    assert_same_bytes(&ours, &hex(EDITED_TEXT), "AttributedBodyTextOnly2");
    assert_eq!(decode(&ours).runs[0].writing_direction, Some(-1));
}

// --- attributedBody: round trips ---------------------------------------------------------------

#[test]
fn plain_text_round_trips() {
    let bytes = encode_attributed_body(&[BodyRun::text("Hello, world", 0)]).unwrap();
    let body = decode(&bytes);
    assert_eq!(body.text, "Hello, world");
    assert_eq!(body.runs.len(), 1);
    assert_eq!(body.runs[0].range, 0..12);
    assert_eq!(body.runs[0].part, Some(0));
    assert_eq!(body.runs[0].writing_direction, None);
    assert_crabstep_reads(&bytes, &["Hello, world", "__kIMMessagePartAttributeName"]);
}

#[test]
fn three_attachments_round_trip_in_order() {
    let runs = [
        BodyRun::text("look: ", 0),
        BodyRun::attachment("at_1_A", 1),
        BodyRun::attachment("at_2_B", 2),
        BodyRun::text(" and ", 3),
        BodyRun::attachment("at_4_C", 4),
    ];
    let bytes = encode_attributed_body(&runs).unwrap();
    let body = decode(&bytes);
    assert_eq!(body.text, format!("look: {FFFC}{FFFC} and {FFFC}"));
    assert_eq!(body.attachment_guids(), ["at_1_A", "at_2_B", "at_4_C"]);
    let attachment = |part, guid: &str| BodyPart::Attachment { part: Some(part), guid: Some(guid.to_owned()) };
    let text = |part, text: &str| BodyPart::Text { part: Some(part), text: text.to_owned() };
    assert_eq!(body.parts(), [text(0, "look: "), attachment(1, "at_1_A"), attachment(2, "at_2_B"), text(3, " and "), attachment(4, "at_4_C"),]);
    assert_crabstep_reads(&bytes, &["at_1_A", "at_2_B", "at_4_C", FILE_TRANSFER_GUID]);
}

#[test]
fn mention_round_trips() {
    let runs = [BodyRun::text("Hi ", 0), BodyRun::mention("Bob", "+15555550123", 0), BodyRun::text(", lunch?", 0)];
    let bytes = encode_attributed_body(&runs).unwrap();
    let body = decode(&bytes);
    assert_eq!(body.text, "Hi Bob, lunch?");
    let mentions: Vec<_> = body.runs.iter().map(|run| (body.run_text(run), run.mention.as_deref(), run.part)).collect();
    assert_eq!(mentions, [("Hi ", None, Some(0)), ("Bob", Some("+15555550123"), Some(0)), (", lunch?", None, Some(0)),]);
    assert_crabstep_reads(&bytes, &["+15555550123", "__kIMMentionConfirmedMention"]);
}

#[test]
fn link_round_trips_in_every_style() {
    for style in [BodyStyle::MESSAGE, BodyStyle::CURRENT, BodyStyle::EDIT_ORIGINAL, BodyStyle::EDIT] {
        let runs = [BodyRun::text("see ", 0), BodyRun::link("example.com/a", "https://example.com/a", 0)];
        let bytes = encode_attributed_body_with(&runs, style).unwrap();
        let body = decode(&bytes);
        assert_eq!(body.text, "see example.com/a", "{style:?}");
        assert_eq!(body.runs[1].link.as_deref(), Some("https://example.com/a"));
        assert_eq!(body.runs[1].range, 4..17);
        let direction = style.writing_direction.then_some(-1);
        assert!(body.runs.iter().all(|run| run.writing_direction == direction));
        assert!(body.runs.iter().all(|run| run.part == Some(0)));
        assert_crabstep_reads(&bytes, &["https://example.com/a", "__kIMLinkAttributeName"]);
    }
}

#[test]
fn non_bmp_text_counts_utf16_units() {
    let runs = [BodyRun::text("😀 hi ", 0), BodyRun::attachment("at_1_E", 1), BodyRun::text("👍🏽 done 𝄞", 2)];
    let bytes = encode_attributed_body(&runs).unwrap();
    let body = decode(&bytes);
    assert_eq!(body.text, format!("😀 hi {FFFC}👍🏽 done 𝄞"));
    let ranges: Vec<_> = body.runs.iter().map(|run| run.range.clone()).collect();
    // 😀 is two UTF-16 units, 👍🏽 four, 𝄞 two.
    assert_eq!(ranges, [0..6, 6..7, 7..19]);
    let texts: Vec<_> = body.runs.iter().map(|run| body.run_text(run)).collect();
    assert_eq!(texts, ["😀 hi ", FFFC, "👍🏽 done 𝄞"]);
    assert_crabstep_reads(&bytes, &["😀 hi \u{FFFC}👍🏽 done 𝄞", "6", "12"]);
}

#[test]
fn shared_names_round_trip() {
    let style = BodyStyle { shared_names: true, ..BodyStyle::CURRENT };
    let runs = [
        BodyRun::text("a ", 0),
        BodyRun::mention("Bob", "bob@example.com", 0),
        BodyRun::attachment("at_1_S", 1),
        BodyRun::link("b", "https://example.com/b", 2),
        BodyRun::text(" c", 3),
    ];
    let bytes = encode_attributed_body_with(&runs, style).unwrap();
    let name = b"__kIMMessagePartAttributeName";
    let names = bytes.windows(name.len()).filter(|w| w == name).count();
    assert_eq!(names, 1, "written once, referenced after");
    let body = decode(&bytes);
    assert_eq!(runs_of(&body), runs);
    assert!(body.runs.iter().all(|run| run.writing_direction == Some(-1)));
    assert_crabstep_reads(&bytes, &["bob@example.com", "at_1_S", "https://example.com/b"]);
}

#[test]
fn empty_text_decodes_to_nothing() {
    let bytes = encode_attributed_body(&[BodyRun::text("", 0)]).unwrap();
    let body = decode(&bytes);
    assert_eq!(body.text, "");
    assert!(body.runs.is_empty());
    assert_crabstep_reads(&bytes, &[""]);
}

#[test]
fn long_text_uses_wide_lengths() {
    let text = "lorem ipsum ".repeat(300);
    let bytes = encode_attributed_body(&[BodyRun::text(text.clone(), 3)]).unwrap();
    let body = decode(&bytes);
    assert_eq!(body.text, text);
    assert_eq!(body.runs[0].range, 0..3600);
    assert_eq!(body.runs[0].part, Some(3));
    assert_crabstep_reads(&bytes, &["3600"]);
}

// --- messageSummaryInfo ------------------------------------------------------------------------

/// The versions of `Edited.plist`: Apple nanosecond times and texts.
const EDITED: [(i64, &str); 4] = [
    (690_513_474_272_551_100, "First message  "),
    (690_513_480_468_557_600, "Edit 1"),
    (690_513_485_971_860_200, "Edit 2"),
    (690_513_494_012_085_900, "Edited message"),
];

fn span(part: i64, offset: i64, length: i64) -> PartSpan {
    PartSpan { part, offset, length }
}

fn history(part: i64, versions: &[(i64, &str)]) -> PartHistory {
    PartHistory { part, versions: versions.iter().map(|&(date, text)| VersionSpec { date, text: text.to_owned(), guid: None }).collect() }
}

/// Every version text of a summary plist, each checked with crabstep.
fn assert_versions_read_by_crabstep(bytes: &[u8]) {
    let value = plist_value(bytes);
    let Some(edits) = value.as_dictionary().and_then(|d| d.get("ec")) else {
        return;
    };
    for versions in edits.as_dictionary().unwrap().values() {
        for version in versions.as_array().unwrap() {
            let text = version.as_dictionary().unwrap().get("t").unwrap();
            assert_crabstep_reads(text.as_data().unwrap(), &["__kIMMessagePartAttributeName"]);
        }
    }
}

#[test]
fn edited_summary_is_apples_bytes() {
    let apple = fixture("summary-info/Edited.plist");
    let decoded = decode_summary_info(&apple).unwrap();
    let versions = &decoded.edits_of(0).unwrap().versions;
    let from_fixture: Vec<_> = versions.iter().map(|v| (v.date, v.text())).collect();
    let whole = |ns: i64| ns / 1_000_000_000 * 1_000_000_000;
    let inputs: Vec<_> = EDITED.iter().map(|&(ns, text)| (whole(ns), text)).collect();
    assert_eq!(from_fixture, inputs, "the fixture holds these versions");

    let spec = SummaryInfoSpec { parts: vec![span(0, 0, 15)], edits: vec![history(0, &EDITED)], unsent_parts: vec![] };
    let ours = encode_summary_info(&spec).unwrap();
    assert_eq!(plist_value(&ours), plist_value(&apple), "same plist values");
    assert_same_bytes(&ours, &apple, "Edited.plist");
    assert_versions_read_by_crabstep(&ours);
}

#[test]
fn deleted_summary_is_apples_bytes() {
    let apple = fixture("summary-info/Deleted.plist");
    let spec = SummaryInfoSpec { parts: vec![span(0, 0, 13)], edits: vec![], unsent_parts: vec![0] };
    let ours = encode_summary_info(&spec).unwrap();
    assert_eq!(plist_value(&ours), plist_value(&apple), "same plist values");
    assert_same_bytes(&ours, &apple, "Deleted.plist");
    assert!(decode_summary_info(&ours).unwrap().is_unsent());
}

#[test]
fn edit_histories_of_one_to_four_versions_round_trip() {
    for count in 1..=4 {
        let mut edits = history(1, &EDITED[..count]);
        edits.versions[count - 1].guid = Some("292BF9C6-C9B8-4827-BE65-6EA1C9B5B384".into());
        let spec = SummaryInfoSpec { parts: vec![span(0, 0, 1), span(1, 1, 14)], edits: vec![edits], unsent_parts: vec![] };
        let bytes = encode_summary_info(&spec).unwrap();
        let info = decode_summary_info(&bytes).unwrap();
        assert_eq!(info.edited_parts, [1], "{count} versions");
        assert_eq!(info.parts.len(), 2);
        assert_eq!((info.parts[1].offset, info.parts[1].length), (1, 14));
        let versions = &info.edits_of(1).unwrap().versions;
        assert_eq!(versions.len(), count);
        for (version, &(ns, text)) in versions.iter().zip(&EDITED) {
            assert_eq!(version.text(), text);
            assert_eq!(version.date, ns / 1_000_000_000 * 1_000_000_000);
            assert!((version.seconds - ns as f64 / 1e9).abs() < 1e-6);
            assert_eq!(version.body.runs[0].part, Some(1));
        }
        let guids: Vec<_> = versions.iter().map(|v| v.guid.is_some()).collect();
        assert_eq!(guids.iter().filter(|g| **g).count(), 1);
        assert!(guids[count - 1]);
        assert!(!info.is_unsent());
        assert_eq!(info.other_keys, ["amc", "ust"]);
        assert_versions_read_by_crabstep(&bytes);
    }
}

#[test]
fn one_unsent_part_of_two_leaves_one() {
    let spec = SummaryInfoSpec { parts: vec![span(0, 0, 1), span(1, 1, 5)], edits: vec![], unsent_parts: vec![1] };
    let info = decode_summary_info(&encode_summary_info(&spec).unwrap()).unwrap();
    assert_eq!(info.unsent_parts, [1]);
    assert_eq!(info.remaining_parts(), 1);
    assert!(!info.is_unsent());
    assert!(info.edits.is_empty());
}

// --- payloadData -------------------------------------------------------------------------------

fn chrissardegna() -> LinkPreviewSpec {
    LinkPreviewSpec {
        url: "https://chrissardegna.com/".into(),
        original_url: "https://chrissardegna.com".into(),
        title: Some("Christopher Sardegna".into()),
        summary: None,
        icon_url: Some("https://chrissardegna.com/favicon.ico".into()),
        icon_mime_type: Some("image/vnd.microsoft.icon".into()),
        is_placeholder: false,
    }
}

#[test]
fn link_preview_is_apples_bytes() {
    let apple = fixture("payload/URL.plist");
    let ours = encode_link_preview(&chrissardegna()).unwrap();
    assert_eq!(plist_value(&ours), plist_value(&apple), "same plist values");
    assert_same_bytes(&ours, &apple, "URL.plist");
}

#[test]
fn link_previews_round_trip_with_and_without_summary_and_icon() {
    let full = LinkPreviewSpec { summary: Some("Sample page description — with “quotes”".into()), ..chrissardegna() };
    let bare = LinkPreviewSpec { icon_url: None, icon_mime_type: None, ..chrissardegna() };
    let placeholder = LinkPreviewSpec {
        url: "https://example.com/x".into(),
        original_url: "https://example.com/x".into(),
        title: None,
        is_placeholder: true,
        ..bare.clone()
    };
    for spec in [chrissardegna(), full, bare, placeholder] {
        let preview = decode_link_preview(&encode_link_preview(&spec).unwrap()).unwrap();
        assert_eq!(preview.url.as_deref(), Some(spec.url.as_str()));
        assert_eq!(preview.original_url.as_deref(), Some(spec.original_url.as_str()));
        assert_eq!(preview.title, spec.title);
        assert_eq!(preview.summary, spec.summary);
        assert_eq!(preview.icon_url, spec.icon_url);
        assert!(preview.image_urls.is_empty());
        assert_eq!(preview.is_placeholder, spec.is_placeholder);
    }
}
