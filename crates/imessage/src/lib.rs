//! The iMessage domain crate.
//!
//! Why it exists: the bridge reads Apple's messages from more than one place (CloudKit's
//! `MessageEncryptedV3` records today, a macOS `chat.db` or a device backup later), and every one of
//! them carries a message's content in the very same Apple blobs. Decoding those blobs here, once,
//! keeps the store and the Matrix delivery independent of any transport crate.
//!
//! What is here so far: [`records`], the chats, messages and attachments a source produces and
//! the store keeps; and [`content`], the decoders for Apple's blobs:
//!
//! - [`decode_attributed_body`]: `attributedBody`, a typedstream of an `NSAttributedString`, into
//!   its text and attribute runs (message parts, attachment GUIDs, mentions, links, styles), and
//!   [`AttributedBody::parts`] into the ordered text / attachment parts of a message;
//! - [`decode_summary_info`]: `messageSummaryInfo`, a binary plist, into the edit history and the
//!   unsent parts of a message;
//! - [`decode_link_preview`]: `payloadData` of a link, an `NSKeyedArchiver` plist, into a link
//!   preview.
//!
//! Every decoder is total: malformed, truncated or hostile input gives an [`Error`], never a panic,
//! and the work each decoder does is bounded by its input size limit (see [`content`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod association;
pub mod content;
mod error;
pub mod handle;
pub mod records;

pub use content::attributed_body::{decode_attributed_body, read_attributed_body, AttributedBody, BodyPart, BodyRead, Run};
pub use content::link_preview::{decode_link_preview, LinkPreview};
pub use content::message::{decode_message_content, decode_message_content_and_text, MessageBlobs};
pub use content::summary_info::{decode_summary_info, EditVersion, PartEdits, PartRange, SummaryInfo};
pub use error::{Blob, Error};
