//! The bridge's progress markers: fixed names, carried in a log event's `progress` field, for
//! the events that end a phase of a pass (sync → attachment files → delivery, and each
//! attachment made ready for upload).
//!
//! Why they exist: a program watching the bridge (the crash campaign in `crates/testkit`, which
//! aims SIGKILLs at phases as they happen; an operator's log pipeline) must not depend on how a
//! log line is worded. With `--log-format json` every event is one JSON object on stderr, and a
//! marker is `fields.progress` of the event that carries it. The message beside it may be
//! reworded at any time; the field name and these values are a stable interface: a marker is
//! never renamed or moved to another moment, only new ones are added.
//!
//! The markers (level of the event in brackets):
//! - [`SYNC_FINISHED`] (info): every zone's pass of a sync ended (done or stopped early); the
//!   records are committed. For a local source (chat.db, iPhone backup) its files were copied
//!   before this.
//! - [`FILES_DONE`] (info, or warn when the pass failed): the attachment files' pass ended —
//!   fetched from CloudKit, or copied from a local source — successfully or not; delivery comes
//!   next.
//! - [`ATTACHMENT_PREPARED`] (debug, target `matrix::media`): one attachment's file is read and
//!   converted for Matrix; its upload as Matrix media, then its event, follow at once.
//! - [`DELIVERY_FINISHED`] (info): a delivery round ended; the metrics were updated before it.
//! - [`METRICS_LISTENING`] (info): the metrics listener is bound; its address is the event's
//!   `addr` field (so `metrics_listen: 127.0.0.1:0` takes a free port and says which).
//!
//! They live in this crate because it is the lowest that emits one (`matrix::media`); the
//! binary emits the others, and the test kit reads them through these constants.

/// The name of the field that carries a marker (`progress = "sync_finished"`). Emitting code
/// writes the field as `progress = …` (a `tracing` field name is an identifier, not a value).
pub const FIELD: &str = "progress";

/// A sync's records are all committed (every zone's pass ended).
pub const SYNC_FINISHED: &str = "sync_finished";

/// The attachment files' pass ended, with or without errors.
pub const FILES_DONE: &str = "files_done";

/// An attachment is converted and about to be uploaded as Matrix media.
pub const ATTACHMENT_PREPARED: &str = "attachment_prepared";

/// A delivery round ended (its figures are the event's other fields).
pub const DELIVERY_FINISHED: &str = "delivery_finished";

/// The metrics listener is bound, at the event's `addr`.
pub const METRICS_LISTENING: &str = "metrics_listening";
