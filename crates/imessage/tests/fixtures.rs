//! One test per real Apple blob in `tests/data/apple/` (copies of `shared/fixtures/apple/`),
//! asserting the values listed in `shared/fixtures/README.md`.

mod common;

use common::{fixture, local_dir, shared_dir, COPIED_DIRS};
use imessage::{decode_attributed_body, decode_link_preview, decode_summary_info, BodyPart};

const GUID_SUFFIX: &str = "F0668F79-20C2-49C9-A87F-1B007ABB0CED";

#[test]
fn attributed_body_text_only() {
    let body = decode_attributed_body(&fixture("attributed-body/AttributedBodyTextOnly")).unwrap();
    assert_eq!(body.text, "Noter test");
    assert_eq!(body.runs.len(), 1);
    assert_eq!(body.runs[0].range, 0..10);
    assert_eq!(body.runs[0].bytes, 0..10);
    assert_eq!(body.runs[0].part, Some(0));
    assert_eq!(body.runs[0].attachment_guid, None);
    assert_eq!(body.parts(), vec![BodyPart::Text { part: Some(0), text: "Noter test".into() }]);
}

#[test]
fn attributed_body_multi_part() {
    let body = decode_attributed_body(&fixture("attributed-body/MultiPart")).unwrap();
    assert_eq!(body.text, "\u{FFFC}test 1\u{FFFC}test 2 \u{FFFC}test 3");
    let guid = |n: u32| format!("at_{n}_{GUID_SUFFIX}");
    assert_eq!(body.attachment_guids(), vec![guid(0), guid(2), guid(4)]);
    // Runs cover the text in order, in UTF-16 units.
    let ranges: Vec<_> = body.runs.iter().map(|r| r.range.clone()).collect();
    assert_eq!(ranges, vec![0..1, 1..7, 7..8, 8..15, 15..16, 16..22]);
    // A part number on every run, each attachment GUID on its own U+FFFC.
    for run in &body.runs {
        assert!(run.part.is_some(), "run {run:?} has no part number");
        let text = body.run_text(run);
        assert_eq!(run.attachment_guid.is_some(), text == "\u{FFFC}", "run {run:?} over {text:?}");
    }
    assert_eq!(
        body.parts(),
        vec![
            BodyPart::Attachment { part: Some(0), guid: Some(guid(0)) },
            BodyPart::Text { part: Some(1), text: "test 1".into() },
            BodyPart::Attachment { part: Some(2), guid: Some(guid(2)) },
            BodyPart::Text { part: Some(3), text: "test 2 ".into() },
            BodyPart::Attachment { part: Some(4), guid: Some(guid(4)) },
            BodyPart::Text { part: Some(5), text: "test 3".into() },
        ]
    );
}

#[test]
fn attributed_body_url() {
    let body = decode_attributed_body(&fixture("attributed-body/URL")).unwrap();
    let url = "https://github.com/ReagentX/Logria";
    assert_eq!(body.text, url);
    assert_eq!(body.runs.len(), 1);
    let run = &body.runs[0];
    assert_eq!(run.range, 0..34);
    assert_eq!(run.link.as_deref(), Some(url));
    assert_eq!(run.part, Some(0));
    assert_eq!(run.writing_direction, Some(-1));
    assert_eq!(run.other_attributes, vec!["__kIMDataDetectedAttributeName".to_owned()]);
    assert_eq!(body.parts(), vec![BodyPart::Text { part: Some(0), text: url.into() }]);
}

#[test]
fn attributed_body_blank() {
    // No text: decodes to an empty body (the README allows an error too; we choose empty).
    let body = decode_attributed_body(&fixture("attributed-body/Blank")).unwrap();
    assert_eq!(body.text, "");
    assert!(body.runs.is_empty());
    assert!(body.parts().is_empty());
}

#[test]
fn summary_info_edited() {
    let info = decode_summary_info(&fixture("summary-info/Edited.plist")).unwrap();
    assert_eq!(info.edits.len(), 1);
    let edits = info.edits_of(0).expect("part 0 was edited");
    let versions: Vec<(i64, &str)> = edits.versions.iter().map(|v| (v.date, v.text())).collect();
    assert_eq!(
        versions,
        vec![(690513474000000000, "First message  "), (690513480000000000, "Edit 1"), (690513485000000000, "Edit 2"), (690513494000000000, "Edited message"),]
    );
    assert!((edits.versions[0].seconds - 690513474.2725511).abs() < 1e-6);
    assert!(edits.versions.iter().all(|v| v.guid.is_none()));
    assert_eq!(edits.versions[3].body.runs[0].part, Some(0));
    assert_eq!(info.parts.len(), 1);
    assert_eq!((info.parts[0].part, info.parts[0].offset, info.parts[0].length), (0, 0, 15));
    assert_eq!(info.edited_parts, vec![0]);
    assert!(info.unsent_parts.is_empty());
    assert_eq!(info.remaining_parts(), 1);
    assert!(!info.is_unsent());
    assert_eq!(info.other_keys, vec!["amc".to_owned(), "ust".to_owned()]);
}

#[test]
fn summary_info_deleted() {
    let info = decode_summary_info(&fixture("summary-info/Deleted.plist")).unwrap();
    assert_eq!(info.unsent_parts, vec![0]);
    assert_eq!(info.parts.len(), 1);
    assert_eq!((info.parts[0].part, info.parts[0].length), (0, 13));
    assert_eq!(info.remaining_parts(), 0);
    assert!(info.is_unsent());
    assert!(info.edits.is_empty());
    assert!(info.edited_parts.is_empty());
}

#[test]
fn payload_url_link_preview() {
    let preview = decode_link_preview(&fixture("payload/URL.plist")).unwrap();
    assert_eq!(preview.title.as_deref(), Some("Christopher Sardegna"));
    assert_eq!(preview.url.as_deref(), Some("https://chrissardegna.com/"));
    assert_eq!(preview.original_url.as_deref(), Some("https://chrissardegna.com"));
    assert_eq!(preview.icon_url.as_deref(), Some("https://chrissardegna.com/favicon.ico"));
    assert_eq!(preview.summary, None);
    assert!(preview.image_urls.is_empty());
    assert_eq!(preview.site_name, None);
    assert_eq!(preview.item_type, None);
    assert!(!preview.is_placeholder);
    assert_eq!(preview.target(), Some("https://chrissardegna.com/"));
}

#[test]
fn local_copies_are_identical_to_shared_fixtures() {
    let Some(shared) = shared_dir() else {
        eprintln!("shared/fixtures/apple not present: checked the local copies only");
        return;
    };
    let mut compared = 0;
    for dir in COPIED_DIRS {
        for entry in std::fs::read_dir(shared.join(dir)).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
            let local = std::fs::read(local_dir().join(&name)).unwrap_or_else(|e| panic!("no local copy of shared fixture {name}: {e}"));
            assert!(local == std::fs::read(entry.path()).unwrap(), "{name} differs");
            compared += 1;
        }
    }
    assert_eq!(compared, 7);
}

#[test]
fn wrong_decoder_for_a_blob_is_an_error() {
    assert!(decode_attributed_body(&fixture("payload/URL.plist")).is_err());
    assert!(decode_link_preview(&fixture("summary-info/Edited.plist")).is_err());
    assert!(decode_summary_info(&fixture("attributed-body/MultiPart")).is_err());
    assert!(decode_link_preview(&fixture("attributed-body/URL")).is_err());
}
