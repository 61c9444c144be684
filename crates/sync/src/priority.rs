//! CPU priority of the sync's background threads: the threads that decode and store pages
//! yield the CPU to the one that fetches the next page, which is the sync's critical path.
//!
//! Linux sets a nice value per thread (`setpriority` on a thread id, and the store's sqlx worker
//! threads found by name in `/proc/self/task`). Elsewhere (macOS) a nice value applies to the
//! whole process, which would slow the fetcher too, so these do nothing there.

#[cfg(target_os = "linux")]
mod imp {
    /// Nice value of the background threads.
    const BACKGROUND_NICE: libc::c_int = 10;

    /// Lowers the calling thread's CPU priority, once per thread.
    pub fn background_priority() {
        thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        DONE.with(|done| {
            if !done.replace(true) {
                // SAFETY: a plain syscall about the calling thread; failure only leaves the priority.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, BACKGROUND_NICE);
                }
            }
        });
    }

    /// Lowers the priority of the store's worker threads (sqlx runs each SQLite connection on a
    /// thread named `sqlx-sqlite-worker-N`); does nothing if /proc is unreadable.
    pub fn background_priority_for_store_threads() {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
        for task in tasks.flatten() {
            let is_store = std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with("sqlx-sqlite"));
            let tid = task.file_name().to_str().and_then(|t| t.parse::<libc::id_t>().ok());
            if let (true, Some(tid)) = (is_store, tid) {
                // SAFETY: a plain syscall about one of this process's threads.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE);
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn background_priority() {}
    pub fn background_priority_for_store_threads() {}
}

pub(crate) use imp::{background_priority, background_priority_for_store_threads};
