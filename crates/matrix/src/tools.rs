//! Running the external media programs (ffmpeg, ffprobe, heif-convert, heif-info): where they
//! are, and one runner that gives each no stdin, a time limit and capped output.
//!
//! Why a leaf module: both the attachment conversion (`media`) and the thumbnails (`thumbnail`)
//! run these programs; with the runner apart, neither imports the other for it. Codecs are never
//! implemented in the bridge: a missing program is a warning logged once (see [`warn_once`]),
//! a program that fails on a file an error for that file.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long one external program may run before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Output kept from a program's stdout when it is not a media file (ffprobe's JSON).
pub(crate) const PROBE_CAP: u64 = 1 << 20;
/// Bytes of stderr kept for an error message (the rest is read and dropped, so it never blocks).
const STDERR_CAP: usize = 4096;

/// Where the external programs are.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub ffmpeg: OsString,
    pub ffprobe: OsString,
    pub heif_convert: OsString,
    pub heif_info: OsString,
}

impl Tools {
    pub(crate) fn from_env() -> Self {
        let get = |var: &str, default: &str| std::env::var_os(var).unwrap_or_else(|| default.into());
        let (ffmpeg, ffprobe) = (get("IMESSAGE_BRIDGE_FFMPEG", "ffmpeg"), get("IMESSAGE_BRIDGE_FFPROBE", "ffprobe"));
        let heif_convert = get("IMESSAGE_BRIDGE_HEIF_CONVERT", "heif-convert");
        Tools { ffmpeg, ffprobe, heif_convert, heif_info: get("IMESSAGE_BRIDGE_HEIF_INFO", "heif-info") }
    }
}

/// `ffmpeg -nostdin -v error -y -protocol_whitelist file -f <demuxer> -i <input> <opts…> <out>`:
/// the input read as the format its bytes have ([`sniff`]), opening no other file and no URL.
pub(crate) fn ffmpeg_args<'a>(input: &'a Path, demuxer: &'a str, opts: &[&'a str], out: &'a Path) -> Vec<&'a OsStr> {
    let head = ["-nostdin", "-v", "error", "-y"].map(OsStr::new).into_iter().chain(input_args(input, demuxer));
    head.chain(opts.iter().map(|o| OsStr::new(*o))).chain([out.as_os_str()]).collect()
}

/// `-protocol_whitelist file -f <demuxer> -i <input>`, for ffmpeg and ffprobe alike.
pub(crate) fn input_args<'a>(input: &'a Path, demuxer: &'a str) -> [&'a OsStr; 6] {
    let o = OsStr::new;
    [o("-protocol_whitelist"), o("file"), o("-f"), o(demuxer), o("-i"), input.as_os_str()]
}

pub(crate) struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// stdout reached its cap, and the program was killed.
    pub truncated: bool,
    pub stderr: String,
}

/// Runs `program` with stdin closed, at most [`TOOL_TIMEOUT`], keeping at most `cap` bytes of
/// stdout. None when the program is not installed.
pub(crate) async fn run(program: &OsStr, args: &[&OsStr], cap: u64) -> Result<Option<Ran>, String> {
    let name = Path::new(program).file_name().unwrap_or(program).to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot run {name}: {e}")),
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        // Killed as soon as stdout is full: it can't exit while blocked on a pipe nobody reads.
        let out = async {
            let (out, truncated) = read_pipe(stdout, cap as usize, true).await;
            if truncated {
                let _ = child.start_kill();
            }
            (out, truncated)
        };
        let ((stdout, truncated), (err, _)) = tokio::join!(out, read_pipe(stderr, STDERR_CAP, false));
        let stderr = String::from_utf8_lossy(&err).trim().to_owned();
        Ok::<_, std::io::Error>((child.wait().await?, stdout, truncated, stderr))
    };
    match tokio::time::timeout(TOOL_TIMEOUT, work).await {
        Ok(Ok((status, stdout, truncated, stderr))) => Ok(Some(Ran { status, stdout, truncated, stderr })),
        Ok(Err(e)) => Err(format!("{name}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("{name} took more than {} s and was killed", TOOL_TIMEOUT.as_secs()))
        }
    }
}

/// Reads `pipe` to its end keeping the first `keep` bytes, or with `stop` only until more came;
/// true when there was more. A read error counts as the end (the exit status tells the rest).
async fn read_pipe(pipe: Option<impl AsyncRead + Unpin>, keep: usize, stop: bool) -> (Vec<u8>, bool) {
    let (mut kept, mut chunk, mut more) = (Vec::new(), vec![0u8; 64 << 10], false);
    if let Some(mut pipe) = pipe {
        while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
            let room = keep.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&chunk[..room]);
            more |= room < n;
            if more && stop {
                break;
            }
        }
    }
    (kept, more)
}

/// Reads a whole file that must not be larger than `max`.
pub(crate) async fn read_capped_file(path: &Path, max: u64, what: &str) -> Result<bytes::Bytes, String> {
    let (file, mut buf) = (tokio::fs::File::open(path).await.map_err(|e| format!("cannot read {what}: {e}"))?, vec![]);
    file.take(max + 1).read_to_end(&mut buf).await.map_err(|e| format!("cannot read {what}: {e}"))?;
    if buf.len() as u64 > max {
        return Err(format!("{what} has more than the limit of {max} bytes"));
    }
    Ok(buf.into())
}

/// Logs what a missing program (or ability) means, once per process and key.
pub(crate) fn warn_once(key: &'static str, consequence: &str) {
    static WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.contains(&key) {
        warned.push(key);
        tracing::warn!("{consequence} (scripts/install-media-tools.sh installs the tools)");
    }
}
