//! The events of one message part, as the plan holds them, and the content of a text part.
//!
//! Why a leaf module: the planner (`render`) builds these and the fitting of large texts
//! (`fit`) splits them; with the types apart, the planner calls the fitting without the
//! fitting importing the planner back.

use imessage::records::LinkPreviewRecord;
use serde_json::{json, Value};

/// One part of a message as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEvent {
    /// The message part number (`__kIMMessagePartAttributeName`).
    pub part: i64,
    pub content: PartContent,
    /// Piece `.0` of `.1` (from 1) of a text too long for one event (see `fit.rs`).
    pub chunk: Option<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartContent {
    /// A text part: plain body, HTML when it has formatting (subject, mentions), and the link
    /// preview of the message when this part carries its link.
    Text { body: String, html: Option<String>, link_preview: Option<LinkPreviewRecord> },
    /// An attachment, by transfer GUID.
    Attachment { transfer_guid: String },
    /// A notice in the message's place, saying why it cannot be shown as it is.
    Notice { body: String },
}

/// The `m.room.message` content of a text part.
pub fn text_content(body: &str, html: Option<&str>, link_preview: Option<&LinkPreviewRecord>) -> Value {
    let mut v = json!({ "msgtype": "m.text", "body": body });
    if let Some(html) = html {
        v["format"] = json!("org.matrix.custom.html");
        v["formatted_body"] = json!(html);
    }
    if let Some(p) = link_preview {
        let url = p.url.clone().or_else(|| p.original_url.clone());
        let mut preview = json!({ "matched_url": p.original_url.clone().or_else(|| url.clone()) });
        for (key, value) in [("og:url", &url), ("og:title", &p.title), ("og:description", &p.summary)] {
            if let Some(value) = value {
                preview[key] = json!(value);
            }
        }
        // Beeper's field and MSC4095's, which clients read to show the preview card.
        v["com.beeper.linkpreviews"] = json!([preview.clone()]);
        v["m.url_previews"] = json!([preview]);
    }
    v
}
