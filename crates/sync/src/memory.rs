//! Giving freed heap memory back to the system during a long local import.
//!
//! Why: glibc's allocator gives each thread that allocates an arena of its own, and pages freed
//! inside an arena stay resident until something trims them. An import of a `chat.db` runs on
//! many threads (sqlx's SQLite threads, tokio's workers, the decoders' blocking threads), so
//! with the same page size its peak RSS still grew with the length of the history: 62 MiB at
//! 100k messages, 84 MiB at 1M (`bench/chatdb.sh`). That growth is free memory held by the
//! arenas, not live data: with `MALLOC_ARENA_MAX=2` the same runs measured 54 and 56 MiB.
//! `malloc_trim(0)` hands those pages back; the import calls it every [`TRIM_EVERY_PAGES`]
//! pages, a few milliseconds each time. On other platforms and C libraries it does nothing.

/// Pages between two trims (at 2,000 messages a page, every 50,000 messages).
pub(crate) const TRIM_EVERY_PAGES: u64 = 4;

/// Returns the heap's free pages to the system (glibc on Linux).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn return_freed_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the heap's free pages to the system: nothing to do off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn return_freed_memory() {}
