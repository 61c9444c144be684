//! Dresses a generated message in the content blobs Messages would have written for it, and
//! records in the message what those blobs must decode to.
//!
//! The expectation (`MessageRecord::content`) is written from the generator's own choices — the
//! text, the part, the edit dates — never by decoding the blobs, so truth does not depend on the
//! simulator's encoder being right: a wrong encoder fails the sync tests.
//!
//! Shares of the generated history (of text messages): 3% edited (two or three versions), 1%
//! unsent, 2% links with a link preview, 2% sent with an effect; the rest plain. Every text
//! message carries an `attributedBody`; an attachment message's body is one U+FFFC naming the
//! attachment's transfer GUID.

use cloudkit::records::{ContentPart, LinkPreviewRecord, MessageContent, MessageRecord, PartHistory, TextVersion};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::content::{
    encode_attributed_body, encode_link_preview, encode_summary_info, BodyRun, ContentError, LinkPreviewSpec, PartSpan, SummaryInfoSpec, VersionSpec,
};
use crate::encode::ContentBlobs;

pub const URL_BALLOON: &str = "com.apple.messages.URLBalloonProvider";
pub const IMPACT_EFFECT: &str = "com.apple.MobileSMS.expressivesend.impact";
const APPLE_EPOCH_UNIX_MS: i64 = 978_307_200_000;

/// Whole seconds of Apple time for a Unix-ms instant (the precision of an edit's date).
pub(crate) fn apple_ns_whole_seconds(unix_ms: i64) -> i64 {
    (unix_ms - APPLE_EPOCH_UNIX_MS).div_euclid(1000) * 1_000_000_000
}

fn utf16_len(text: &str) -> i64 {
    text.encode_utf16().count() as i64
}

fn text_part(text: &str) -> ContentPart {
    ContentPart::Text { part: Some(0), text: text.to_string(), mention: None, link: None }
}

/// A text message: sets `m.content` and returns the blobs.
pub fn text_message(m: &mut MessageRecord, g: u64, r: &mut ChaCha8Rng) -> Result<ContentBlobs, ContentError> {
    let roll = r.gen_range(0..100);
    let text = m.text.clone().unwrap_or_default();
    let (blobs, content) = match roll {
        0..=2 => {
            let versions = r.gen_range(2..=3);
            let history = (0..versions)
                .map(|v| {
                    let text = if v + 1 == versions { text.clone() } else { format!("{text} (draft {v})") };
                    TextVersion { apple_ns: apple_ns_whole_seconds(m.ts_ms) + i64::from(v) * 60_000_000_000, text }
                })
                .collect();
            edited(history)?
        }
        3 => {
            m.text = None;
            unsent(&text)?
        }
        4..=5 => {
            let url = format!("https://example.com/p/{g}");
            let title = format!("Page {g}");
            let summary = g.is_multiple_of(2).then(|| format!("What page {g} is about"));
            let spec = LinkPreviewSpec {
                url: url.clone(),
                original_url: url.clone(),
                title: Some(title.clone()),
                summary: summary.clone(),
                ..LinkPreviewSpec::default()
            };
            let blobs = ContentBlobs {
                attributed_body: Some(encode_attributed_body(&[BodyRun::link(&url, &url, 0)])?),
                payload_data: Some(encode_link_preview(&spec)?),
                balloon_bundle_id: Some(URL_BALLOON.into()),
                ..ContentBlobs::default()
            };
            m.text = Some(url.clone());
            let content = MessageContent {
                parts: vec![text_part(&url)],
                balloon_bundle_id: Some(URL_BALLOON.into()),
                link_preview: Some(LinkPreviewRecord {
                    url: Some(url.clone()),
                    original_url: Some(url),
                    title: Some(title),
                    summary,
                    icon_url: None,
                    image_urls: Vec::new(),
                }),
                ..MessageContent::default()
            };
            (blobs, content)
        }
        6..=7 => {
            let blobs = ContentBlobs {
                attributed_body: Some(encode_attributed_body(&[BodyRun::text(&text, 0)])?),
                effect: Some(IMPACT_EFFECT.into()),
                ..ContentBlobs::default()
            };
            (blobs, MessageContent { parts: vec![text_part(&text)], effect: Some(IMPACT_EFFECT.into()), ..MessageContent::default() })
        }
        _ => plain(&text)?,
    };
    m.content = content;
    Ok(blobs)
}

/// A plain text message of one part: its body and what it decodes to.
pub(crate) fn plain(text: &str) -> Result<(ContentBlobs, MessageContent), ContentError> {
    let blobs = ContentBlobs { attributed_body: Some(encode_attributed_body(&[BodyRun::text(text, 0)])?), ..ContentBlobs::default() };
    Ok((blobs, MessageContent { parts: vec![text_part(text)], ..MessageContent::default() }))
}

/// A text message of one part that was edited: `history` holds its versions, the original first
/// and its text now last (the body is the last version's text).
pub(crate) fn edited(history: Vec<TextVersion>) -> Result<(ContentBlobs, MessageContent), ContentError> {
    let text = history.last().map(|v| v.text.clone()).ok_or_else(|| ContentError::invalid("an edit history without versions"))?;
    let (mut blobs, mut content) = plain(&text)?;
    let spec = SummaryInfoSpec {
        parts: vec![PartSpan { part: 0, offset: 0, length: utf16_len(&text) }],
        edits: vec![crate::content::PartHistory {
            part: 0,
            versions: history.iter().map(|v| VersionSpec { date: v.apple_ns, text: v.text.clone(), guid: None }).collect(),
        }],
        unsent_parts: Vec::new(),
    };
    blobs.message_summary_info = Some(encode_summary_info(&spec)?);
    content.edits = vec![PartHistory { part: 0, versions: history }];
    Ok((blobs, content))
}

/// A text message of one part that was unsent: Messages keeps neither the text nor the body,
/// only the summary, which lists the part (of `text`'s length) in `rp`. The caller clears the
/// record's text.
pub(crate) fn unsent(text: &str) -> Result<(ContentBlobs, MessageContent), ContentError> {
    let spec = SummaryInfoSpec { parts: vec![PartSpan { part: 0, offset: 0, length: utf16_len(text) }], edits: Vec::new(), unsent_parts: vec![0] };
    let blobs = ContentBlobs { message_summary_info: Some(encode_summary_info(&spec)?), ..ContentBlobs::default() };
    Ok((blobs, MessageContent { unsent: true, unsent_parts: vec![0], ..MessageContent::default() }))
}

/// An attachment message: one U+FFFC naming the transfer GUID.
pub fn attachment_message(m: &mut MessageRecord, transfer_guid: &str, caption: Option<&str>) -> Result<ContentBlobs, ContentError> {
    let mut runs = vec![BodyRun::attachment(transfer_guid, 0)];
    let mut parts = vec![ContentPart::Attachment { part: Some(0), guid: Some(transfer_guid.to_string()) }];
    if let Some(caption) = caption {
        // A captioned attachment: the caption is the message's second part.
        runs.push(BodyRun::text(caption, 1));
        parts.push(ContentPart::Text { part: Some(1), text: caption.to_string(), mention: None, link: None });
        m.text = Some(format!("\u{FFFC}{caption}"));
    }
    let blobs = ContentBlobs { attributed_body: Some(encode_attributed_body(&runs)?), ..ContentBlobs::default() };
    m.content = MessageContent { parts, ..MessageContent::default() };
    Ok(blobs)
}
