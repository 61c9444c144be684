//! The seam between the bridge's contacts and its ghosts: what a person's ghost shows
//! ([`GhostProfile`]) and where that comes from ([`ProfileSource`]). A leaf, so that the deliverer
//! can hold a source without importing the code that applies it (`profiles.rs`).

use std::collections::HashMap;

/// What a person's ghost shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhostProfile {
    pub display_name: String,
    pub avatar: Option<AvatarImage>,
}

/// A photo: its bytes and their MIME type (`image/jpeg`, `image/png`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarImage {
    pub bytes: bytes::Bytes,
    pub mime: String,
}

/// Where ghost profiles come from. `canonical_handle` is a chat participant's handle as the
/// store has it (`tel:+15551234567`, `mailto:a@b.example`); None: the handle is unknown, and its
/// ghost is named by the handle.
pub trait ProfileSource: Send + Sync {
    fn profile(&self, canonical_handle: &str) -> Option<GhostProfile>;
}

/// No contacts: every ghost is named by its formatted handle.
pub struct NoProfiles;

impl ProfileSource for NoProfiles {
    fn profile(&self, _: &str) -> Option<GhostProfile> {
        None
    }
}

/// A fixed map from canonical handle to profile (tests, and any source read whole).
#[derive(Debug, Clone, Default)]
pub struct StaticProfiles(pub HashMap<String, GhostProfile>);

impl ProfileSource for StaticProfiles {
    fn profile(&self, canonical_handle: &str) -> Option<GhostProfile> {
        self.0.get(canonical_handle).cloned()
    }
}
