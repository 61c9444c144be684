//! The one error type of the `cloudkit` crate. Every variant says what went wrong in terms an
//! operator can act on; transport, protocol, crypto and record-shape failures stay distinguishable
//! because the sync engine treats them differently (retry, reset, count as undecryptable).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot reach CloudKit at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("CloudKit returned HTTP {status}: {body}")]
    HttpStatus { status: u16, body: String },
    #[error("CloudKit rejected the session's auth token (HTTP 401: {detail}): refresh the session")]
    Unauthorized { detail: String },
    /// The gateway refused the request itself (a header, the path, the user): a client bug or a
    /// session that does not match the account, never worth retrying.
    #[error("CloudKit refused the request (HTTP {status} {code}): {detail}")]
    Refused { status: u16, code: String, detail: String },
    /// A URL (the gateway, the anisette server, a content host) that is neither https nor on
    /// this machine: the request is not made.
    #[error("refusing {what} at {url}: {why}")]
    InsecureUrl { what: String, url: String, why: String },
    #[error("cannot get anisette headers from {url}: {detail}")]
    Anisette { url: String, detail: String },
    #[error("CloudKit is throttling requests (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("zone {zone} does not exist on the server")]
    ZoneNotFound { zone: String },
    #[error("the server asked for a full reset: the sync token is no longer valid")]
    FullResetNeeded,
    #[error("operation failed (result code {code}, client error {client:?} {}, server error {server:?}): {description}", client_name.unwrap_or(""))]
    OperationFailed { code: i32, client: Option<i32>, client_name: Option<&'static str>, server: Option<i32>, description: String },
    #[error("malformed frame: {0}")]
    Frame(String),
    /// A reply body, the inflated reply or one decompressed record field is larger than the
    /// [`crate::Limits`] field `limit` allows: the bytes were not read (or inflated) past `cap`,
    /// so a broken or hostile server cannot take all memory. Not retryable: the same request
    /// gets the same answer; raise the limit if the data is genuine.
    #[error("{what} is larger than {cap} bytes (limit `{limit}`)")]
    TooLarge { what: String, limit: &'static str, cap: usize },
    #[error("response has no result for operation {0}")]
    MissingResponse(String),
    #[error("response lacks the {0} payload")]
    MissingPayload(&'static str),

    #[error("unsupported PCS ciphertext version {0} (expected 3)")]
    PcsVersion(u8),
    #[error("PCS ciphertext too short ({0} bytes)")]
    PcsTruncated(usize),
    #[error("pcs key {0} missing")]
    PcsKeyMissing(String),
    #[error("PCS authentication failed for {0}: wrong key or corrupted data")]
    PcsAuth(String),
    /// A layer of the PCS key chain did not open: `layer` is `"service identity"`,
    /// `"zone.protectionInfo"`, `"zone.recordProtectionInfo"` or `"record.protectionInfo"`.
    #[error("cannot open {layer}: {failure}")]
    Protection { layer: &'static str, failure: crate::pcs::ProtectionFailure },

    #[error("{record_type} record {record}: field {field} is missing")]
    MissingField { record_type: String, record: String, field: &'static str },
    #[error("{record_type} record {record}: field {field} is invalid: {detail}")]
    BadField { record_type: String, record: String, field: &'static str, detail: String },
    #[error("record has no name")]
    NamelessRecord,
    /// Not a failure: Apple's zones hold record types a Messages client does not read; the sync
    /// skips and counts them.
    #[error("{record_type} record {record}: a record type the bridge does not read")]
    UnknownRecordType { record_type: String, record: String },

    /// An asset download failed at one step of MMCS's protocol: `step` is `"authorization"`,
    /// `"container"`, `"ford"`, `"chunk"` or `"size"`. Retrying later may help only for
    /// `"container"` (a content host that did not answer or broke off).
    #[error("asset download failed at {step}: {detail}")]
    Mmcs { step: &'static str, detail: String },

    #[error("cannot read session file {path}: {detail}")]
    Session { path: String, detail: String },
}

impl Error {
    /// An [`Error::TooLarge`] renamed for the caller's context (`what`, and the [`crate::Limits`]
    /// field that set the cap); any other error is returned as it is.
    pub fn too_large_as(self, what: impl Into<String>, limit: &'static str) -> Error {
        match self {
            Error::TooLarge { cap, .. } => Error::TooLarge { what: what.into(), limit, cap },
            other => other,
        }
    }

    /// Whether retrying the same request later may succeed (transport hiccups, throttling,
    /// 5xx, server overload). Protocol and data errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Throttled { .. } | Error::Frame(_) | Error::MissingResponse(_) | Error::Anisette { .. } => true,
            Error::HttpStatus { status, .. } => *status >= 500 || *status == 408,
            Error::OperationFailed { server, .. } => server.is_some_and(|s| s != crate::proto::server_error::NOT_FOUND),
            _ => false,
        }
    }

    /// Server-requested delay before retrying, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
