//! How much the client reads from a server, and how far it lets data inflate.
//!
//! Why: every size in a CloudKit reply is the server's word — a `Content-Length`, a gzip
//! trailer, a protobuf length prefix, a gzipped `msgProto` inside a record. A broken or hostile
//! server (or a man in the middle of a test setup) could make any of them huge, and a client
//! that trusts them can be made to take all memory with a few kilobytes. So each read and each
//! decompression stops at a cap from here, with [`crate::Error::TooLarge`] naming the limit to
//! raise. The defaults are far above what Apple sends (a page of 200 records is a few hundred
//! kilobytes, a `msgProto` a few kilobytes) and far below what would hurt the machine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Caps on what the [`crate::Client`] reads and what record decoding inflates. `Deserialize`
/// with every field optional, so a config file can carry it as it is.
///
/// Memory beyond the caps: decoding a reply into structs may hold more than the reply itself,
/// because protobuf can say "an empty message" in two bytes. The page path the sync uses is
/// bounded by [`crate::proto::MAX_CHANGES_PER_PAGE`] and a count of replies per request; fully
/// decoded replies (`zone/retrieve`, `record/retrieve`, `query/retrieve`) may hold up to a few
/// hundred bytes of structs per adversarial input byte (FUZZING.md has the measured factor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest reply body read from the gateway, as sent (gzipped or not).
    pub max_reply_bytes: usize,
    /// The most a gzipped reply body may inflate to.
    pub max_inflated_reply_bytes: usize,
    /// The most one gzipped record field (`msgProto`, `msgProto2`, `msgProto4`, `cm`) may
    /// inflate to.
    pub max_field_bytes: usize,
}

/// The time limit of opening a connection (gateway, content hosts, anisette server).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The time limit of one gateway request, reply included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a content host may send nothing during a download (a stall, not a total time,
/// ends a download: a large file may take minutes).
pub const CONTENT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The time limit of one request to the anisette server.
pub const ANISETTE_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest error body or anisette answer read (not configurable: only its first few hundred
/// bytes are ever shown).
pub const MAX_SMALL_BODY: usize = 64 << 10;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_reply_bytes: 64 << 20, max_inflated_reply_bytes: 64 << 20, max_field_bytes: 16 << 20 }
    }
}
