//! Decoders for the blobs in which Apple's Messages stores a message's content.
//!
//! A CloudKit `MessageEncryptedV3.msgProto` (fields 4, 6 and 7) and a macOS `chat.db` `message` row
//! (columns of the same names) carry the same three blobs, so one set of decoders serves every
//! source:
//!
//! | blob | format | module |
//! |---|---|---|
//! | `attributedBody` | NeXTSTEP typedstream (`NSArchiver`) of an `NSAttributedString` | [`attributed_body`] |
//! | `messageSummaryInfo` | binary plist | [`summary_info`] |
//! | `payloadData` | `NSKeyedArchiver` binary plist | [`link_preview`] |
//!
//! An `attributedBody` that is no valid typedstream still gives its text when its `NSString`
//! can be found ([`attributed_body::read_attributed_body`], as imessage-exporter's legacy parser
//! reads such blobs); the caller counts it as read by fallback.
//!
//! The byte-level parsing is done by maintained libraries (crabstep for typedstreams, plist for
//! property lists); this module only walks the object graphs they produce. Both libraries are
//! wrapped so that hostile input stays cheap: inputs are capped in size
//! ([`MAX_TYPEDSTREAM_BYTES`], [`MAX_PLIST_BYTES`]), crabstep's recursive descent gets a stack
//! sized for the worst nesting the input could hold (`typedstream`), and plist's event stream is
//! built into values under caps on depth, event count and expanded bytes (`plist`), because a
//! binary plist may reference one object many times and so describe an exponentially large tree.

pub mod attributed_body;
mod keyed_archive;
pub mod link_preview;
pub mod message;
mod nsstring_scan;
mod plist;
pub mod summary_info;
mod typedstream;

/// The largest typedstream (`attributedBody`, or the text of one edit version) accepted, in bytes.
/// Real message bodies are a few hundred bytes to some tens of kilobytes.
pub const MAX_TYPEDSTREAM_BYTES: usize = 1 << 20;

/// The largest property list (`messageSummaryInfo`, `payloadData`) accepted, in bytes.
pub const MAX_PLIST_BYTES: usize = 4 << 20;
