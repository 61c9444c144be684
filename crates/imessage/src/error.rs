//! The crate's one error type.
//!
//! Why one enum: a caller decoding a message wants to know which blob failed and whether it was
//! malformed, too big, or well-formed but not what Apple writes; it does not want to match on the
//! errors of the libraries underneath, which stay behind `source()` as boxed errors so that a
//! dependency upgrade never changes this crate's public API.

use std::fmt;

/// Which of Apple's content blobs an [`Error`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Blob {
    /// `attributedBody`: a typedstream of an `NSAttributedString` (also the text of an edit version).
    AttributedBody,
    /// `messageSummaryInfo`: a binary plist of edits and unsent parts.
    SummaryInfo,
    /// `payloadData`: an `NSKeyedArchiver` plist (link previews, app balloons).
    PayloadData,
}

impl fmt::Display for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Blob::AttributedBody => "attributedBody",
            Blob::SummaryInfo => "messageSummaryInfo",
            Blob::PayloadData => "payloadData",
        })
    }
}

/// A boxed error from a library this crate uses (crabstep, plist, std).
pub type BoxedSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a content blob could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The blob is larger than this decoder accepts.
    #[error("{blob} is {len} bytes, more than the {max} bytes accepted")]
    TooLarge {
        /// The blob.
        blob: Blob,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The blob is within the size limit but exceeds another limit (nesting, object count,
    /// expanded size) that keeps decoding bounded.
    #[error("{blob} exceeds the decoder's limit on {limit}")]
    Limit {
        /// The blob.
        blob: Blob,
        /// Which limit.
        limit: &'static str,
    },
    /// The blob is not a valid typedstream.
    #[error("{blob} is not a valid typedstream: {source}")]
    Typedstream {
        /// The blob.
        blob: Blob,
        /// The deserializer's error.
        #[source]
        source: BoxedSource,
    },
    /// The blob is not a valid property list.
    #[error("{blob} is not a valid property list: {source}")]
    Plist {
        /// The blob.
        blob: Blob,
        /// The plist reader's error.
        #[source]
        source: BoxedSource,
    },
    /// The blob decodes but does not have the structure Apple writes.
    #[error("{blob} has an unexpected structure: {detail}")]
    Shape {
        /// The blob.
        blob: Blob,
        /// What was expected or found.
        detail: String,
    },
    /// One version of an edited message part (its text is a typedstream of its own) is invalid.
    #[error("messageSummaryInfo: version {version} of part {part} is invalid: {source}")]
    EditVersion {
        /// The message part (`__kIMMessagePartAttributeName` number).
        part: i64,
        /// The version's position in the part's history, from 0.
        version: usize,
        /// Why it is invalid.
        #[source]
        source: Box<Error>,
    },
    /// A helper thread with a stack large enough for a deeply nested typedstream could not be
    /// started.
    #[error("could not start a decoder thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn shape(blob: Blob, detail: impl Into<String>) -> Self {
        Error::Shape { blob, detail: detail.into() }
    }
}
