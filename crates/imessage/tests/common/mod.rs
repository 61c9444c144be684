//! Loading the Apple fixtures: the crate's own copies, checked against `shared/` when present.

use std::path::PathBuf;

/// The crate's copies of the fixtures.
pub fn local_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/apple")
}

/// `shared/fixtures/apple` beside the repository, if this checkout has it.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/apple");
    dir.is_dir().then_some(dir)
}

/// The folders of `shared/fixtures/apple` that this crate decodes and keeps copies of.
#[allow(dead_code)] // used by one of the two test crates that share this module
pub const COPIED_DIRS: [&str; 3] = ["attributed-body", "summary-info", "payload"];

/// A fixture's bytes (e.g. `"attributed-body/MultiPart"`); when `shared/` is present its copy
/// there must be identical.
pub fn fixture(name: &str) -> Vec<u8> {
    let local = std::fs::read(local_dir().join(name)).unwrap_or_else(|e| panic!("reading fixture {name}: {e}"));
    if let Some(shared) = shared_dir() {
        let original = std::fs::read(shared.join(name)).unwrap_or_else(|e| panic!("reading shared fixture {name}: {e}"));
        assert!(local == original, "tests/data/apple/{name} differs from shared/fixtures/apple/{name}");
    }
    local
}
