//! A `msgProto`'s content blobs turned into the domain's [`MessageContent`], with the domain
//! crate's decoders (the same blobs a macOS `chat.db` holds, so the decoding lives there).
//!
//! A blob that does not decode never costs its message: the failure is kept in
//! [`MessageContent::undecodable`] (counted in `status`) and the message keeps its plain `text`.
//! An `attributedBody` that is no valid typedstream but whose `NSString` could still be read
//! gives that text, and is listed there too (read by fallback).

use imessage::records::{BlobFailure, ContentPart, LinkPreviewRecord, MessageContent, PartHistory, TextVersion};
use imessage::{decode_link_preview, decode_summary_info, read_attributed_body, BodyPart};

use crate::proto::MessageProto;
use crate::records::APPLE_EPOCH_UNIX_SECS;

/// The payloadData balloon of a link preview (Apple's own URL balloon provider).
const URL_BALLOON: &str = "com.apple.messages.URLBalloonProvider";

fn apple_ns_to_ms(ns: u64) -> Option<i64> {
    i64::try_from(ns).ok().filter(|&n| n > 0).map(|n| n / 1_000_000 + APPLE_EPOCH_UNIX_SECS * 1000)
}

/// Decodes what `body` carries beyond its plain text.
pub fn message_content(body: &MessageProto) -> MessageContent {
    let mut content = MessageContent {
        balloon_bundle_id: body.balloon_bundle_id.clone(),
        effect: body.effect.clone().filter(|e| !e.is_empty()),
        read_ms: body.date_read.and_then(apple_ns_to_ms),
        delivered_ms: body.date_delivered.and_then(apple_ns_to_ms),
        ..MessageContent::default()
    };
    let mut failures = Vec::new();
    if let Some(bytes) = body.attributed_body.as_deref().filter(|b| !b.is_empty()) {
        match read_attributed_body(bytes) {
            Ok(read) => {
                content.parts = read.body.parts().into_iter().map(part).collect();
                if let Some(e) = read.fallback {
                    failures.push(content_failure("attributedBody", format!("text read by the fallback NSString scan, attributes lost: {e}")));
                }
            }
            Err(e) => failures.push(content_failure("attributedBody", e.to_string())),
        }
    }
    if let Some(bytes) = body.message_summary_info.as_deref().filter(|b| !b.is_empty()) {
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
    if let Some(bytes) = body.payload_data.as_deref().filter(|b| !b.is_empty()) {
        let is_link = body.balloon_bundle_id.as_deref().is_none_or(|b| b == URL_BALLOON);
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
    content
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
