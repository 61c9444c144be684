//! A message's content blobs, as any source holds them, turned into the domain's
//! [`MessageContent`].
//!
//! CloudKit carries the blobs in a record's `msgProto`, a Mac's `chat.db` and an iPhone's `sms.db`
//! in columns of the same names; the sources only gather them into a [`MessageBlobs`], so every
//! source decodes a message the same way. A blob that does not decode never costs its message:
//! the failure is kept in [`MessageContent::undecodable`] (counted in `status`) and the message
//! keeps its plain `text`. An `attributedBody` that is no valid typedstream but whose `NSString`
//! could still be read gives that text, and is listed there too (read by fallback).

use crate::records::{apple_ns_to_unix_ms, BlobFailure, ContentPart, LinkPreviewRecord, MessageContent, PartHistory, TextVersion};
use crate::{decode_link_preview, decode_summary_info, read_attributed_body, BodyPart};

/// The payloadData balloon of a link preview (Apple's own URL balloon provider).
pub const URL_BALLOON: &str = "com.apple.messages.URLBalloonProvider";

/// The content blobs and plain fields of one message, borrowed from its source.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageBlobs<'a> {
    /// `attributedBody`: the typedstream of the body.
    pub attributed_body: Option<&'a [u8]>,
    /// `messageSummaryInfo` / `message_summary_info`: edits and unsends.
    pub message_summary_info: Option<&'a [u8]>,
    /// `payloadData` / `payload_data`: a link preview (or another balloon's data).
    pub payload_data: Option<&'a [u8]>,
    /// The balloon that `payload_data` belongs to.
    pub balloon_bundle_id: Option<&'a str>,
    /// The bubble or screen effect (`expressive_send_style_id`).
    pub effect: Option<&'a str>,
    /// When the message was read / delivered, nanoseconds since 2001-01-01 (0 or None: never).
    pub date_read_ns: Option<i64>,
    /// When it was delivered.
    pub date_delivered_ns: Option<i64>,
}

fn apple_ns_to_ms(ns: Option<i64>) -> Option<i64> {
    ns.filter(|&n| n > 0).map(apple_ns_to_unix_ms)
}

/// Decodes what the blobs carry beyond a message's plain text.
pub fn decode_message_content(blobs: &MessageBlobs<'_>) -> MessageContent {
    decode_message_content_and_text(blobs).0
}

/// [`decode_message_content`], with the text of the `attributedBody` as it read it (attachments
/// as U+FFFC; None when there is no body or it could not be read). A source whose text column
/// may be empty (a Mac's `chat.db` since macOS 13) takes its text from here rather than
/// decoding the body a second time.
pub fn decode_message_content_and_text(blobs: &MessageBlobs<'_>) -> (MessageContent, Option<String>) {
    let mut content = MessageContent {
        balloon_bundle_id: blobs.balloon_bundle_id.map(str::to_string),
        effect: blobs.effect.filter(|e| !e.is_empty()).map(str::to_string),
        read_ms: apple_ns_to_ms(blobs.date_read_ns),
        delivered_ms: apple_ns_to_ms(blobs.date_delivered_ns),
        ..MessageContent::default()
    };
    let mut failures = Vec::new();
    let mut body_text = None;
    if let Some(bytes) = blobs.attributed_body.filter(|b| !b.is_empty()) {
        match read_attributed_body(bytes) {
            Ok(read) => {
                content.parts = read.body.parts().into_iter().map(part).collect();
                body_text = Some(read.body.text);
                if let Some(e) = read.fallback {
                    failures.push(content_failure("attributedBody", format!("text read by the fallback NSString scan, attributes lost: {e}")));
                }
            }
            Err(e) => failures.push(content_failure("attributedBody", e.to_string())),
        }
    }
    if let Some(bytes) = blobs.message_summary_info.filter(|b| !b.is_empty()) {
        match decode_summary_info(bytes) {
            Ok(info) => {
                content.unsent = info.is_unsent();
                content.unsent_parts = info.unsent_parts.clone();
                content.edits = info
                    .edits
                    .iter()
                    .map(|e| PartHistory {
                        part: e.part,
                        versions: e.versions.iter().map(|v| TextVersion { apple_ns: v.date, text: v.text().to_string() }).collect(),
                    })
                    .collect();
            }
            Err(e) => failures.push(content_failure("messageSummaryInfo", e.to_string())),
        }
    }
    if let Some(bytes) = blobs.payload_data.filter(|b| !b.is_empty()) {
        let is_link = blobs.balloon_bundle_id.is_none_or(|b| b == URL_BALLOON);
        if is_link {
            match decode_link_preview(bytes) {
                Ok(p) => {
                    content.link_preview = Some(LinkPreviewRecord {
                        url: p.url,
                        original_url: p.original_url,
                        title: p.title,
                        summary: p.summary,
                        icon_url: p.icon_url,
                        image_urls: p.image_urls,
                    })
                }
                Err(e) => failures.push(content_failure("payloadData", e.to_string())),
            }
        }
    }
    content.undecodable = failures;
    (content, body_text)
}

fn content_failure(field: &str, reason: String) -> BlobFailure {
    BlobFailure { field: field.to_string(), reason }
}

fn part(p: BodyPart) -> ContentPart {
    match p {
        BodyPart::Text { part, text } => ContentPart::Text { part, text, mention: None, link: None },
        BodyPart::Attachment { part, guid } => ContentPart::Attachment { part, guid },
        // The domain may learn new kinds of parts; a text placeholder keeps the position.
        #[allow(unreachable_patterns)]
        _ => ContentPart::Text { part: None, text: String::new(), mention: None, link: None },
    }
}
