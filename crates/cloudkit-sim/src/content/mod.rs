//! The simulator's encoders for the blobs in which Apple's Messages stores a message's content.
//!
//! Why they exist: a `MessageEncryptedV3` record carries a message's text, attachments, edits,
//! unsends and link preview only inside Apple blobs (`msgProto` fields 4, 6 and 7), so a
//! simulator that serves plain strings would never exercise the bridge's decoders. These encoders
//! write the blobs as Messages does, and they are a second implementation: written from the
//! formats (NeXTSTEP typedstreams, Apple's binary plist writer, `NSKeyedArchiver`) and from real
//! blobs (`shared/fixtures/apple/`), sharing no code with the bridge's decoders (`imessage`) or
//! with the libraries those use (crabstep, plist's reader), so that a misreading of the format
//! on one side is not mirrored on the other.
//!
//! | blob | format | module |
//! |---|---|---|
//! | `attributedBody` (and the text of an edit version) | typedstream of an `NSAttributedString` | [`attributed_body`] |
//! | `messageSummaryInfo` | binary plist | [`summary_info`] |
//! | `payloadData` of a link | `NSKeyedArchiver` binary plist | [`link_preview`] |
//!
//! Every encoder is deterministic (the same input gives the same bytes) and returns a
//! [`ContentError`] for input Messages could not have produced, never panics.

pub mod attributed_body;
pub mod bplist;
pub mod link_preview;
pub mod summary_info;
mod typedstream;

pub use attributed_body::{encode_attributed_body, encode_attributed_body_with, BodyRun, BodyStyle};
pub use link_preview::{encode_link_preview, LinkPreviewSpec};
pub use summary_info::{encode_summary_info, PartHistory, PartSpan, SummaryInfoSpec, VersionSpec};

use std::fmt;

/// Why a blob could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentError {
    /// A number (a part number, a length, a count) beyond what the format can carry.
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// Its value, saturated to `i128`.
        value: i128,
    },
    /// Input that Messages cannot produce (a GUID on a character that is not U+FFFC, an edit
    /// history without versions, a part listed twice, …).
    Invalid(String),
}

impl ContentError {
    pub(crate) fn out_of_range(what: &'static str, value: impl Into<i128>) -> Self {
        ContentError::OutOfRange { what, value: value.into() }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        ContentError::Invalid(detail.into())
    }
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentError::OutOfRange { what, value } => {
                write!(f, "{what} {value} is out of the format's range")
            }
            ContentError::Invalid(detail) => write!(f, "invalid content: {detail}"),
        }
    }
}

impl std::error::Error for ContentError {}
