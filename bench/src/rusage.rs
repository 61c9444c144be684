//! A child's exit status, peak RSS and CPU time, from `wait4` (shared by the benchmarks that
//! run the bridge as a child process).

use std::process::Child;

use anyhow::{Context, Result};

/// Waits for a child with `wait4`, returning its exit status and peak RSS in KiB. The `Child`
/// must not be waited on afterwards (it has been reaped).
pub fn wait_rusage(child: &Child) -> Result<(i32, u64, f64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unreaped child; the pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB.
    Ok((code, usage.ru_maxrss.max(0) as u64, tv(usage.ru_utime) + tv(usage.ru_stime)))
}
