//! A `msgProto`'s content blobs handed to the domain's decoder ([`imessage::decode_message_content`]),
//! which every source shares: a macOS `chat.db` holds the very same blobs.

use imessage::records::MessageContent;
use imessage::{decode_message_content, MessageBlobs};

use crate::proto::MessageProto;

/// Decodes what `body` carries beyond its plain text.
pub fn message_content(body: &MessageProto) -> MessageContent {
    decode_message_content(&MessageBlobs {
        attributed_body: body.attributed_body.as_deref(),
        message_summary_info: body.message_summary_info.as_deref(),
        payload_data: body.payload_data.as_deref(),
        balloon_bundle_id: body.balloon_bundle_id.as_deref(),
        effect: body.effect.as_deref(),
        date_read_ns: body.date_read.and_then(|n| i64::try_from(n).ok()),
        date_delivered_ns: body.date_delivered.and_then(|n| i64::try_from(n).ok()),
    })
}
