//! Turns a downloaded iMessage attachment into what Matrix clients show the way an iPhone does.
//!
//! Messages stores photos as HEIC and voice messages as Opus in a Core Audio Format (CAF) file;
//! Element and most browsers can display neither, and a file uploaded without `info.w`/`h` or a
//! voice message without the MSC3245 fields shows up as a download link instead of a picture or
//! a playable voice note. So [`prepare`] picks the Matrix `msgtype` from the record's MIME type,
//! UTI and name, converts HEIC → JPEG (`heif-convert`, or `ffmpeg` when it can decode HEIF, as
//! mautrix-imessage's `convert_heif`; a sticker → PNG, keeping its transparency) and CAF → Ogg/Opus (`ffmpeg`), and fills `info` (image
//! dimensions via `imagesize`, or `heif-info` for a HEIC sent as is; video dimensions and
//! durations via `ffprobe`) plus a voice waveform (peaks of `ffmpeg`'s 8 kHz mono PCM). Codecs
//! are never implemented here: external programs do it, run with no stdin, a time limit and
//! capped output. A missing program is not
//! an error — the original goes up as is and a warning is logged once per program — but a
//! program that fails on the file is. [`message_content`] then builds the `m.room.message`
//! content once delivery has uploaded the bytes. Install the programs with
//! `scripts/install-media-tools.sh`; `IMESSAGE_BRIDGE_FFMPEG`, `IMESSAGE_BRIDGE_FFPROBE`,
//! `IMESSAGE_BRIDGE_HEIF_CONVERT` and `IMESSAGE_BRIDGE_HEIF_INFO` override where they are found
//! (default: on `PATH`).

use std::ffi::OsStr;
use std::path::Path;

use imessage::records::AttachmentRecord;
use serde_json::{json, Map, Value};

use crate::tools::{ffmpeg_args, input_args, read_capped_file, run, warn_once, Tools, PROBE_CAP};
use crate::{sniff, MatrixError, Result};

/// PCM samples decoded for a waveform at most; longer audio is decoded at a lower rate.
const PCM_SAMPLES: u64 = 4_800_000;
/// Points in a voice message's waveform.
const WAVEFORM_POINTS: usize = 50;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Convert HEIC/HEIF images to JPEG (as mautrix-imessage's convert_heif), default true.
    pub convert_heif: bool,
    /// Convert CAF voice messages to Ogg/Opus, default true.
    pub convert_voice: bool,
    /// Files larger than this are not uploaded (the caller sends a notice instead).
    pub max_bytes: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig { convert_heif: true, convert_voice: true, max_bytes: 100 << 20 }
    }
}

/// What one attachment becomes.
#[derive(Debug, Clone)]
pub struct PreparedMedia {
    /// The bytes to upload (converted or the original).
    pub bytes: bytes::Bytes,
    pub mime_type: String,
    /// The file name shown (the transfer name, with the extension changed after conversion).
    pub filename: String,
    /// `m.image` / `m.video` / `m.audio` / `m.file`.
    pub msgtype: &'static str,
    /// `info` without `url`/`thumbnail_url`: `mimetype`, `size`, `w`/`h` for images and videos
    /// when known, `duration` (ms) for audio/video when known.
    pub info: Value,
    /// A voice message (CAF from Messages, or any audio whose transfer name is "Audio
    /// Message.caf"): the event gets `org.matrix.msc3245.voice: {}` and
    /// `org.matrix.msc1767.audio: { duration, waveform }`.
    pub voice: Option<Voice>,
    /// What was done, for logs/tests: e.g. "heic→jpeg", "caf→ogg", or "as is" (also "heic→png",
    /// for a sticker).
    pub conversion: &'static str,
    /// A JPEG thumbnail, for videos and for images larger than 800×600.
    pub thumbnail: Option<crate::thumbnail::Thumbnail>,
    /// Upload this file as it is, streamed from disk, instead of `bytes` (then empty): a file
    /// of [`STREAM_FROM`] bytes or more that needs no conversion.
    pub file: Option<std::path::PathBuf>,
}

/// Files that go to Matrix as they are and have at least this many bytes are uploaded from
/// disk as the request goes out, never read into memory whole.
pub const STREAM_FROM: u64 = 8 << 20;

#[derive(Debug, Clone)]
pub struct Voice {
    pub duration_ms: u64,
    /// 0..=1024 values, ~30–100 of them
    pub waveform: Vec<u16>,
}

/// Prepares the stored file at `path` for Matrix. Errors (unreadable file, a file or converted
/// file over `max_bytes`, a converter that fails) are `MatrixError::Media`; a missing converter
/// tool is NOT an error: the original is used (`conversion: "as is"`) and a warning logged once.
pub async fn prepare(path: &Path, attachment: &AttachmentRecord, config: &MediaConfig) -> Result<PreparedMedia> {
    prepare_with(path, attachment, config, &Tools::from_env()).await
}

/// Uploads a prepared attachment (and its thumbnail) to the media repository as `user`; returns
/// the `m.room.message` content for it.
pub async fn upload(hs: &crate::HomeserverClient, user: &str, media: &PreparedMedia) -> Result<Value> {
    let mxc = match &media.file {
        Some(path) => hs.upload_file(user, path, &media.mime_type, &media.filename).await?,
        None => hs.upload(user, media.bytes.clone(), &media.mime_type, &media.filename).await?,
    };
    let thumbnail = match &media.thumbnail {
        Some(t) => Some((hs.upload(user, t.bytes.clone(), "image/jpeg", "thumbnail.jpg").await?, t)),
        None => None,
    };
    Ok(message_content(media, &mxc, thumbnail.as_ref().map(|(mxc, t)| (mxc.as_str(), *t))))
}

/// The `m.room.message` content for a prepared, uploaded attachment (`url` = the mxc URI):
/// body = filename, `filename`, `msgtype`, `info` (with `thumbnail_url`/`thumbnail_info` when
/// its thumbnail was uploaded), and the voice fields when `voice` is Some.
pub fn message_content(media: &PreparedMedia, mxc: &str, thumbnail: Option<(&str, &crate::thumbnail::Thumbnail)>) -> Value {
    let mut content = json!({
        "msgtype": media.msgtype,
        "body": media.filename,
        "filename": media.filename,
        "url": mxc,
        "info": media.info,
    });
    if let Some((url, t)) = thumbnail {
        content["info"]["thumbnail_url"] = json!(url);
        content["info"]["thumbnail_info"] = json!({ "w": t.w, "h": t.h, "mimetype": "image/jpeg", "size": t.bytes.len() });
    }
    if let (Some(voice), Some(map)) = (&media.voice, content.as_object_mut()) {
        map.insert("org.matrix.msc3245.voice".into(), json!({}));
        let audio = json!({ "duration": voice.duration_ms, "waveform": voice.waveform });
        map.insert("org.matrix.msc1767.audio".into(), audio);
    }
    content
}

/// What the attachment is, which decides conversion and `msgtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Heif,
    Image,
    Voice,
    Audio,
    Video,
    File,
}

pub(crate) async fn prepare_with(path: &Path, att: &AttachmentRecord, config: &MediaConfig, tools: &Tools) -> Result<PreparedMedia> {
    let fail = |detail: String| MatrixError::Media { file: path.display().to_string(), detail };
    // An absolute path can't be mistaken for an option by the programs below.
    let input = std::path::absolute(path).map_err(|e| fail(format!("cannot resolve the path: {e}")))?;
    let name = display_name(att);
    // Checked first, so that an oversized or unreadable file fails before any conversion.
    let len = tokio::fs::metadata(&input).await.map_err(|e| fail(format!("cannot read the file: {e}")))?.len();
    if len > config.max_bytes {
        return Err(fail(format!("the file has {len} bytes, more than the limit of {}", config.max_bytes)));
    }
    let sniffed = sniff::sniff_file(&input).await.map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let said = mime_type(att, &name);
    let (kind, format) = confirmed(kind_of(&said, att.details.uti.as_deref(), &name), sniffed);
    let (mut bytes, mut mime, mut name, mut conversion) = (None, upload_mime(kind, &said, format), name, "as is");
    let demuxer = format.map_or("", |f| f.demuxer);
    let (mut info, mut voice, mut dims) = (Map::new(), None, None);
    let tmp_dir = || tempfile::TempDir::new().map_err(|e| fail(format!("cannot create a temporary directory: {e}")));
    match kind {
        Kind::Heif if config.convert_heif => {
            // A sticker becomes a PNG: JPEG has no transparency, its cut-out would get a black box.
            let (ext, to, done) = match att.details.is_sticker {
                true => ("png", "image/png", "heic→png"),
                false => ("jpg", "image/jpeg", "heic→jpeg"),
            };
            if let Some(image) = heif_convert(&input, tmp_dir()?.path(), ext, tools, config.max_bytes).await.map_err(fail)? {
                (bytes, mime, conversion, name) = (Some(image), to.into(), done, with_extension(&name, ext));
            }
        }
        Kind::Voice | Kind::Audio | Kind::Video => {
            if let Some(probe) = ffprobe(&input, demuxer, tools).await.map_err(fail)? {
                if let Some(ms) = probe.duration_ms {
                    info.insert("duration".into(), ms.into());
                }
                dims = probe.size.filter(|_| kind == Kind::Video);
                if kind == Kind::Voice {
                    if config.convert_voice {
                        let ogg = voice_to_ogg(&input, demuxer, tmp_dir()?.path(), &probe, tools, config.max_bytes).await;
                        if let Some(ogg) = ogg.map_err(fail)? {
                            (bytes, mime, conversion) = (Some(ogg), "audio/ogg".into(), "caf→ogg");
                            name = with_extension(&name, "ogg");
                        }
                    }
                    let waveform = waveform(&input, demuxer, probe.duration_ms, tools).await.map_err(fail)?;
                    if let (Some(duration_ms), Some(waveform)) = (probe.duration_ms, waveform) {
                        voice = Some(Voice { duration_ms, waveform });
                    }
                }
            }
        }
        Kind::Heif | Kind::Image | Kind::File => {}
    }
    let (bytes, file) = match bytes {
        Some(b) => (b, None),
        None if len >= STREAM_FROM => (bytes::Bytes::new(), Some(input.clone())),
        None => (read_capped_file(&input, config.max_bytes, "the file").await.map_err(fail)?, None),
    };
    let size = if file.is_some() { len } else { bytes.len() as u64 };
    if kind == Kind::Heif && conversion == "as is" {
        // imagesize reads a HEIF's coded size (`ispe`), which its clean aperture may crop.
        dims = heif_size(&input, tools).await;
    }
    if matches!(kind, Kind::Heif | Kind::Image) && dims.is_none() {
        let found = if file.is_some() { imagesize::size(&input) } else { imagesize::blob_size(&bytes) };
        dims = found.ok().map(|s| (s.width as u64, s.height as u64));
    }
    if let Some((w, h)) = dims {
        info.insert("w".into(), w.into());
        info.insert("h".into(), h.into());
    }
    // A thumbnail of what goes to Matrix (a converted HEIC: of its JPEG); not of a HEIC kept as
    // it is, which ffmpeg cannot read.
    let mut thumbnail = None;
    if crate::thumbnail::wanted(kind == Kind::Video, dims) && !(kind == Kind::Heif && conversion == "as is") {
        let dir = tmp_dir()?;
        let (source, demuxer) = match conversion {
            "as is" => (input.clone(), demuxer),
            _ => {
                let full = dir.path().join(format!("full.{}", extension(&name)));
                tokio::fs::write(&full, &bytes).await.map_err(|e| fail(format!("cannot write a temporary file: {e}")))?;
                (full, sniff::sniff(&bytes).map_or("", |f| f.demuxer))
            }
        };
        match crate::thumbnail::make(&source, demuxer, dir.path(), tools).await {
            Ok(t) => thumbnail = t,
            Err(e) => tracing::warn!(file = %path.display(), "no thumbnail: {e}"),
        }
    }
    info.insert("mimetype".into(), mime.clone().into());
    info.insert("size".into(), size.into());
    let msgtype = match kind {
        Kind::Heif | Kind::Image => "m.image",
        Kind::Voice | Kind::Audio => "m.audio",
        Kind::Video => "m.video",
        Kind::File => "m.file",
    };
    tracing::debug!(progress = crate::progress::ATTACHMENT_PREPARED, file = %path.display(), %name, %mime, msgtype, conversion, "attachment prepared");
    Ok(PreparedMedia { bytes, mime_type: mime, filename: name, msgtype, info: Value::Object(info), voice, conversion, thumbnail, file })
}

/// The name shown: the transfer name, else the last component of `cm.fn`.
fn display_name(att: &AttachmentRecord) -> String {
    let from_path = att.filename.as_deref().and_then(|f| f.rsplit('/').next());
    match att.details.transfer_name.as_deref().or(from_path) {
        Some(n) if !n.trim().is_empty() => n.to_owned(),
        _ => "attachment".to_owned(),
    }
}

fn with_extension(name: &str, ext: &str) -> String {
    Path::new(name).with_extension(ext).to_string_lossy().into_owned()
}

fn extension(name: &str) -> String {
    Path::new(name).extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// UTI, extensions and MIME type of what iPhones send, for records without a MIME type.
#[rustfmt::skip]
const TYPES: [(&str, &[&str], &str); 10] = [
    ("public.jpeg", &["jpg", "jpeg"], "image/jpeg"), ("public.png", &["png"], "image/png"),
    ("public.heic", &["heic"], "image/heic"), ("public.heif", &["heif"], "image/heif"),
    ("com.compuserve.gif", &["gif"], "image/gif"), ("com.apple.coreaudio-format", &["caf"], "audio/x-caf"),
    ("com.apple.m4a-audio", &["m4a"], "audio/mp4"), ("com.apple.quicktime-movie", &["mov"], "video/quicktime"),
    ("public.mpeg-4", &["mp4"], "video/mp4"), ("com.adobe.pdf", &["pdf"], "application/pdf"),
];

/// The record's MIME type, else one from the UTI, else from the extension.
fn mime_type(att: &AttachmentRecord, name: &str) -> String {
    if let Some(m) = att.mime_type.as_deref().map(str::trim).filter(|m| m.contains('/')) {
        return m.to_ascii_lowercase();
    }
    let (uti, ext) = (att.details.uti.as_deref(), extension(name));
    let by_uti = TYPES.iter().find(|t| Some(t.0) == uti);
    let found = by_uti.or_else(|| TYPES.iter().find(|t| t.1.contains(&ext.as_str())));
    found.map_or("application/octet-stream", |t| t.2).to_owned()
}

/// The kind the sender's word gives, if the file's bytes bear it out (a HEIF said to be a JPEG is
/// a HEIF, a "video" that is no film a file), and the format ffmpeg reads it as.
fn confirmed(said: Kind, found: Option<sniff::Format>) -> (Kind, Option<sniff::Format>) {
    use sniff::Class;
    let Some(format) = found else { return (Kind::File, None) };
    let kind = match (said, format.class) {
        (Kind::Heif | Kind::Image, Class::Heif) => Kind::Heif,
        (Kind::Heif | Kind::Image, Class::Image) => Kind::Image,
        (Kind::Voice | Kind::Audio, Class::Audio | Class::AudioVideo) => said,
        (Kind::Video, Class::Video | Class::AudioVideo) => Kind::Video,
        _ => Kind::File,
    };
    (kind, (kind != Kind::File).then_some(format))
}

/// The Content-Type of the upload: the sender's MIME type when it is a plain one of the kind's
/// top-level type, else that of the format the bytes have; `application/octet-stream` for a file
/// (a client must not be told to render what no check vouched for).
fn upload_mime(kind: Kind, said: &str, format: Option<sniff::Format>) -> String {
    let top = match kind {
        Kind::Heif | Kind::Image => "image/",
        Kind::Voice | Kind::Audio => "audio/",
        Kind::Video => "video/",
        Kind::File => return "application/octet-stream".into(),
    };
    match format {
        _ if said.starts_with(top) && sniff::plain_mime(said) => said.to_owned(),
        Some(f) if f.mime.starts_with(top) => f.mime.to_owned(),
        Some(f) if f.demuxer == "mov" && top == "audio/" => "audio/mp4".into(),
        Some(f) if f.demuxer == "ogg" && top == "audio/" => "audio/ogg".into(),
        Some(f) if f.demuxer == "matroska" && top == "audio/" => "audio/webm".into(),
        _ => "application/octet-stream".into(),
    }
}

fn kind_of(mime: &str, uti: Option<&str>, name: &str) -> Kind {
    let caf = mime == "audio/x-caf" || uti == Some("com.apple.coreaudio-format") || extension(name) == "caf";
    if matches!(mime, "image/heic" | "image/heif" | "image/heic-sequence" | "image/heif-sequence") || matches!(uti, Some("public.heic" | "public.heif")) {
        Kind::Heif
    } else if mime.starts_with("image/") {
        Kind::Image
    } else if caf || (mime.starts_with("audio/") && name == "Audio Message.caf") {
        Kind::Voice
    } else if mime.starts_with("audio/") {
        Kind::Audio
    } else if mime.starts_with("video/") {
        Kind::Video
    } else {
        Kind::File
    }
}

/// HEIC → JPEG or PNG (`ext`) with heif-convert, else ffmpeg if it can decode the file; None
/// when neither can.
async fn heif_convert(input: &Path, dir: &Path, ext: &str, tools: &Tools, max: u64) -> Result<Option<bytes::Bytes>, String> {
    let out = dir.join(format!("out.{ext}"));
    let args = [OsStr::new("-q"), OsStr::new("90"), input.as_os_str(), out.as_os_str()];
    match run(&tools.heif_convert, &args, PROBE_CAP).await? {
        Some(r) if r.status.success() => {
            // heif-convert numbers the outputs (out-1.jpg, …) when the file holds several images.
            let file = if out.exists() { out } else { dir.join(format!("out-1.{ext}")) };
            return read_capped_file(&file, max, "the converted image").await.map(Some);
        }
        Some(r) => return Err(format!("heif-convert failed ({}): {}", r.status, r.stderr)),
        None => warn_once("heif-convert", "heif-convert is not installed: HEIC images are converted by ffmpeg if it can, else sent as HEIC"),
    }
    // ffmpeg before 7.1 cannot demux HEIF; only trust it when ffprobe sees a picture in the file.
    match ffprobe(input, "mov", tools).await? {
        Some(p) if p.size.is_some() => {}
        Some(_) => {
            warn_once("ffmpeg-heif", "heif-convert is not installed and this ffmpeg cannot decode HEIC: HEIC images are sent as HEIC");
            return Ok(None);
        }
        None => return Ok(None),
    }
    let fs = (max + 1).to_string();
    let codec = if ext == "png" { "png" } else { "mjpeg" };
    let args = ffmpeg_args(input, "mov", &["-frames:v", "1", "-q:v", "2", "-fs", &fs, "-f", "image2", "-c:v", codec], &out);
    match run(&tools.ffmpeg, &args, PROBE_CAP).await? {
        Some(r) if r.status.success() => read_capped_file(&out, max, "the converted image").await.map(Some),
        Some(r) => Err(format!("ffmpeg failed to convert HEIC ({}): {}", r.status, r.stderr)),
        None => Ok(None),
    }
}

/// The primary image's displayed size as `heif-info` prints it ("image: 900x721 (id=1), primary").
async fn heif_size(input: &Path, tools: &Tools) -> Option<(u64, u64)> {
    let r = run(&tools.heif_info, &[input.as_os_str()], PROBE_CAP).await.ok()??;
    let text = String::from_utf8_lossy(&r.stdout);
    let mut images = text.lines().filter_map(|l| l.trim().strip_prefix("image: "));
    let line = images.clone().find(|l| l.contains("primary")).or_else(|| images.next())?;
    let (w, h) = line.split_whitespace().next()?.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// CAF → Ogg: the Opus stream copied when there is one, else (or when the copy fails: CAF
/// Opus carries no OpusHead for the Ogg muxer in ffmpeg 5.1) encoded with libopus.
async fn voice_to_ogg(input: &Path, demuxer: &str, dir: &Path, probe: &Probe, tools: &Tools, max: u64) -> Result<Option<bytes::Bytes>, String> {
    let out = dir.join("out.ogg");
    let fs = (max + 1).to_string();
    let mut codecs: &[&[&str]] = &[&["-c:a", "libopus", "-b:a", "32k"]];
    if probe.audio_codec.as_deref() == Some("opus") {
        codecs = &[&["-c:a", "copy"], &["-c:a", "libopus", "-b:a", "32k"]];
    }
    let mut last = String::new();
    for codec in codecs {
        let opts = [&["-map", "0:a:0", "-vn", "-map_metadata", "-1"], *codec, &["-fs", &fs, "-f", "ogg"]].concat();
        let args = ffmpeg_args(input, demuxer, &opts, &out);
        match run(&tools.ffmpeg, &args, PROBE_CAP).await? {
            Some(r) if r.status.success() => return read_capped_file(&out, max, "the converted Ogg").await.map(Some),
            Some(r) => last = format!("ffmpeg failed to convert to Ogg/Opus ({}): {}", r.status, r.stderr),
            None => {
                warn_once("ffmpeg", "ffmpeg is not installed: voice messages are sent as CAF, without waveform");
                return Ok(None);
            }
        }
        tracing::debug!(file = %input.display(), ?codec, "{last}");
    }
    Err(last)
}

/// Peak amplitudes of the audio, from 8 kHz (lower for long audio) mono PCM, scaled to 0..=1024.
async fn waveform(input: &Path, demuxer: &str, duration_ms: Option<u64>, tools: &Tools) -> Result<Option<Vec<u16>>, String> {
    let seconds = duration_ms.unwrap_or(0) / 1000 + 1;
    let rate = (PCM_SAMPLES / seconds).clamp(100, 8000).to_string();
    let args = ffmpeg_args(input, demuxer, &["-map", "0:a:0", "-ac", "1", "-ar", &rate, "-f", "s16le"], Path::new("-"));
    let Some(r) = run(&tools.ffmpeg, &args, PCM_SAMPLES * 2).await? else {
        warn_once("ffmpeg", "ffmpeg is not installed: voice messages are sent as CAF, without waveform");
        return Ok(None);
    };
    if !r.status.success() && !r.truncated {
        return Err(format!("ffmpeg failed to decode the audio ({}): {}", r.status, r.stderr));
    }
    let samples: Vec<u16> = r.stdout.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs()).collect();
    if samples.is_empty() {
        return Ok(None);
    }
    let per = samples.len().div_ceil(WAVEFORM_POINTS);
    let peak = |c: &[u16]| c.iter().copied().max().map_or(0, |p| (u32::from(p) * 1024 / 32768) as u16);
    Ok(Some(samples.chunks(per).map(peak).collect()))
}

/// What ffprobe says about a file.
#[derive(Debug, Default)]
struct Probe {
    duration_ms: Option<u64>,
    /// Of the first video stream, as displayed (swapped for a 90° rotation).
    size: Option<(u64, u64)>,
    audio_codec: Option<String>,
}

/// `ffprobe -show_format -show_streams`; None when ffprobe is missing, an empty probe when it
/// cannot read the file (then nothing is known about it, which is not an error).
async fn ffprobe(input: &Path, demuxer: &str, tools: &Tools) -> Result<Option<Probe>, String> {
    let args = ["-v", "error", "-show_format", "-show_streams", "-of", "json"].map(OsStr::new);
    let args: Vec<&OsStr> = args.into_iter().chain(input_args(input, demuxer)).collect();
    let Some(r) = run(&tools.ffprobe, &args, PROBE_CAP).await? else {
        warn_once("ffprobe", "ffprobe is not installed: audio and video are sent without duration or dimensions, voice messages as CAF");
        return Ok(None);
    };
    let Ok(v) = serde_json::from_slice::<Value>(&r.stdout).map_err(|e| tracing::debug!("ffprobe: {e}: {}", r.stderr)) else {
        return Ok(Some(Probe::default()));
    };
    let secs = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).filter(|d| d.is_finite() && *d >= 0.0);
    let streams = v["streams"].as_array().map(Vec::as_slice).unwrap_or_default();
    let of_type = |t: &str| streams.iter().find(|s| s["codec_type"] == t && s["disposition"]["attached_pic"] != 1);
    let video = of_type("video");
    let size = video.and_then(|s| {
        let (w, h) = (s["width"].as_u64()?, s["height"].as_u64()?);
        let rotate = s["side_data_list"].as_array().and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()));
        let rotate = rotate.or_else(|| s["tags"]["rotate"].as_str().and_then(|r| r.parse().ok())).unwrap_or(0);
        Some(if rotate.rem_euclid(180) == 90 { (h, w) } else { (w, h) })
    });
    let duration = secs(&v["format"]["duration"]).or_else(|| streams.iter().find_map(|s| secs(&s["duration"])));
    Ok(Some(Probe {
        duration_ms: duration.map(|d| (d * 1000.0).round() as u64),
        size,
        audio_codec: of_type("audio").and_then(|s| s["codec_name"].as_str()).map(str::to_owned),
    }))
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
