//! Tests of `media` on the simulator's real base files. They need ffmpeg, ffprobe and
//! heif-convert (`scripts/install-media-tools.sh`), except where noted.

use super::*;
use imessage::records::AttachmentDetails;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

const JPEG: &[u8] = include_bytes!("../../cloudkit-sim/media/base.jpeg");
const PNG: &[u8] = include_bytes!("../../cloudkit-sim/media/base.png");
const HEIC: &[u8] = include_bytes!("../../cloudkit-sim/media/base.heic");
const CAF: &[u8] = include_bytes!("../../cloudkit-sim/media/base.caf");
const MOV: &[u8] = include_bytes!("../../cloudkit-sim/media/base.mov");
const PDF: &[u8] = include_bytes!("../../cloudkit-sim/media/base.pdf");

/// The file as sync stores it: beside the database, named by content hash, no extension.
struct Stored {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn stored(bytes: &[u8]) -> Stored {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("3f1c0a9be2d84e6b7a50c4d1e9f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4");
    std::fs::write(&path, bytes).expect("write stored file");
    Stored { _dir: dir, path }
}

fn record(mime: Option<&str>, uti: Option<&str>, name: &str, len: usize) -> AttachmentRecord {
    AttachmentRecord {
        record_name: "att-1".into(),
        guid: "at_0_5C3B7E0A-1111-2222-3333-444455556666".into(),
        mime_type: mime.map(str::to_owned),
        filename: Some(format!("~/Library/Messages/Attachments/5c/12/at_0_5C3B7E0A/{name}")),
        total_bytes: len as i64,
        asset_size: Some(len as u64),
        details: AttachmentDetails { uti: uti.map(str::to_owned), transfer_name: Some(name.into()), ..Default::default() },
    }
}

/// Panics with the install script's name unless the media tools are on PATH.
fn require_tools() {
    let tools = [("ffmpeg", "-version"), ("ffprobe", "-version"), ("heif-convert", "--help"), ("heif-info", "--help")];
    for (tool, arg) in tools {
        let found = std::process::Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        assert!(found, "{tool} is not installed: run scripts/install-media-tools.sh");
    }
}

async fn prep(bytes: &[u8], rec: &AttachmentRecord, config: &MediaConfig) -> PreparedMedia {
    let file = stored(bytes);
    prepare(&file.path, rec, config).await.expect("prepare")
}

fn missing_tools() -> Tools {
    Tools {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ffprobe: "/nonexistent/ffprobe".into(),
        heif_convert: "/nonexistent/heif-convert".into(),
        heif_info: "/nonexistent/heif-info".into(),
    }
}

#[tokio::test]
async fn jpeg_is_an_image_as_is_with_dimensions() {
    let rec = record(Some("image/jpeg"), Some("public.jpeg"), "IMG_0042.jpeg", JPEG.len());
    let m = prep(JPEG, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.image", "as is", "image/jpeg"));
    assert_eq!(&m.bytes[..], JPEG);
    assert_eq!(m.filename, "IMG_0042.jpeg");
    assert_eq!(m.info, json!({ "mimetype": "image/jpeg", "size": JPEG.len(), "w": 64, "h": 48 }));
    assert!(m.voice.is_none());
}

#[tokio::test]
async fn png_is_an_image_with_dimensions() {
    let rec = record(Some("image/png"), Some("public.png"), "IMG_0043.png", PNG.len());
    let m = prep(PNG, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion), ("m.image", "as is"));
    assert_eq!(m.info, json!({ "mimetype": "image/png", "size": PNG.len(), "w": 64, "h": 48 }));
}

#[tokio::test]
async fn heic_becomes_a_jpeg_of_the_same_size() {
    require_tools();
    // `heif-info base.heic`: "image: 900x721 (id=1), primary".
    let rec = record(Some("image/heic"), Some("public.heic"), "IMG_0044.heic", HEIC.len());
    let m = prep(HEIC, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.image", "heic→jpeg", "image/jpeg"));
    assert!(m.bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "not a JPEG: {:02x?}", &m.bytes[..4]);
    assert_eq!(m.filename, "IMG_0044.jpg");
    assert_eq!((m.info["w"].as_u64(), m.info["h"].as_u64()), (Some(900), Some(721)));
    assert_eq!(m.info["mimetype"], "image/jpeg");
    assert_eq!(m.info["size"].as_u64(), Some(m.bytes.len() as u64));
    assert_ne!(m.bytes.len(), HEIC.len());
}

#[tokio::test]
async fn heic_sticker_becomes_a_png_keeping_transparency() {
    require_tools();
    let mut rec = record(Some("image/heic"), Some("public.heic"), "IMG_0051.heic", HEIC.len());
    rec.details.is_sticker = true;
    let m = prep(HEIC, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.image", "heic→png", "image/png"));
    assert!(m.bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:02x?}", &m.bytes[..8]);
    // IHDR colour type 6 (RGBA) or 4 (grey + alpha): the alpha plane survived.
    assert!(matches!(m.bytes[25], 4 | 6), "PNG colour type {} has no alpha", m.bytes[25]);
    assert_eq!(m.filename, "IMG_0051.png");
    assert_eq!((m.info["w"].as_u64(), m.info["h"].as_u64()), (Some(900), Some(721)));
}

#[tokio::test]
async fn heic_stays_heic_when_conversion_is_off() {
    require_tools(); // heif-info for the displayed size
    let rec = record(Some("image/heic"), Some("public.heic"), "IMG_0045.heic", HEIC.len());
    let config = MediaConfig { convert_heif: false, ..Default::default() };
    let m = prep(HEIC, &rec, &config).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.image", "as is", "image/heic"));
    assert_eq!(&m.bytes[..], HEIC);
    assert_eq!(m.filename, "IMG_0045.heic");
    assert_eq!(m.info, json!({ "mimetype": "image/heic", "size": HEIC.len(), "w": 900, "h": 721 }));
}

#[tokio::test]
async fn caf_voice_message_becomes_ogg_opus_with_waveform() {
    require_tools();
    let rec = record(Some("audio/x-caf"), Some("com.apple.coreaudio-format"), "Audio Message.caf", CAF.len());
    let m = prep(CAF, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.audio", "caf→ogg", "audio/ogg"));
    assert!(m.bytes.starts_with(b"OggS"), "not Ogg: {:02x?}", &m.bytes[..4]);
    assert!(m.bytes.windows(8).any(|w| w == b"OpusHead"), "Ogg without an Opus stream");
    assert_eq!(m.filename, "Audio Message.ogg");
    let ogg = stored(&m.bytes);
    let probe = ffprobe(&ogg.path, "ogg", &Tools::from_env()).await.expect("ffprobe").expect("ffprobe is installed");
    assert_eq!(probe.audio_codec.as_deref(), Some("opus"), "the Ogg does not decode as Opus");
    assert!(probe.duration_ms.is_some_and(|d| d.abs_diff(1000) <= 150), "{probe:?}");
    let voice = m.voice.as_ref().expect("a voice message");
    assert!(voice.duration_ms.abs_diff(1000) <= 150, "duration {} ms", voice.duration_ms);
    assert!((30..=100).contains(&voice.waveform.len()), "{} waveform points", voice.waveform.len());
    assert!(voice.waveform.iter().all(|&p| p <= 1024));
    assert!(voice.waveform.iter().any(|&p| p > 0), "silent waveform {:?}", voice.waveform);
    assert_eq!(m.info["duration"].as_u64(), Some(voice.duration_ms));
    assert_eq!(m.info["mimetype"], "audio/ogg");
    assert_eq!(m.info["size"].as_u64(), Some(m.bytes.len() as u64));
}

#[tokio::test]
async fn voice_message_is_found_by_name_and_kept_when_conversion_is_off() {
    require_tools();
    // No MIME type or UTI: the name alone makes it a CAF voice message.
    let mut rec = record(None, None, "Audio Message.caf", CAF.len());
    rec.details.transfer_name = None;
    let config = MediaConfig { convert_voice: false, ..Default::default() };
    let m = prep(CAF, &rec, &config).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.audio", "as is", "audio/x-caf"));
    assert_eq!(&m.bytes[..], CAF);
    assert_eq!(m.filename, "Audio Message.caf");
    assert!(m.voice.is_some_and(|v| v.duration_ms.abs_diff(1000) <= 150));
}

#[tokio::test]
async fn mov_is_a_video_with_dimensions_and_duration() {
    require_tools();
    let rec = record(Some("video/quicktime"), Some("com.apple.quicktime-movie"), "IMG_0046.mov", MOV.len());
    let m = prep(MOV, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.video", "as is", "video/quicktime"));
    assert_eq!(&m.bytes[..], MOV);
    assert_eq!((m.info["w"].as_u64(), m.info["h"].as_u64()), (Some(64), Some(48)));
    let ms = m.info["duration"].as_u64().expect("duration");
    assert!(ms.abs_diff(1000) <= 150, "duration {ms} ms");
    assert!(m.voice.is_none());
}

#[tokio::test]
async fn pdf_is_a_file() {
    let rec = record(Some("application/pdf"), Some("com.adobe.pdf"), "Document 7.pdf", PDF.len());
    let m = prep(PDF, &rec, &MediaConfig::default()).await;
    assert_eq!((m.msgtype, m.conversion), ("m.file", "as is"));
    // Not a picture, sound or film: uploaded as bytes, not as something a client would render.
    assert_eq!(m.info, json!({ "mimetype": "application/octet-stream", "size": PDF.len() }));
    assert_eq!(m.filename, "Document 7.pdf");
}

#[tokio::test]
async fn without_tools_everything_goes_as_is() {
    let tools = missing_tools();
    let config = MediaConfig::default();
    let heic = stored(HEIC);
    let rec = record(Some("image/heic"), Some("public.heic"), "IMG_0047.heic", HEIC.len());
    let m = prepare_with(&heic.path, &rec, &config, &tools).await.expect("heic");
    assert_eq!((m.conversion, m.mime_type.as_str(), m.filename.as_str()), ("as is", "image/heic", "IMG_0047.heic"));
    // Without heif-info, imagesize's coded size: base.heic's `clap` crops its 900×722 to 900×721.
    assert_eq!((m.info["w"].as_u64(), m.info["h"].as_u64()), (Some(900), Some(722)));

    let caf = stored(CAF);
    let rec = record(Some("audio/x-caf"), None, "Audio Message.caf", CAF.len());
    let m = prepare_with(&caf.path, &rec, &config, &tools).await.expect("caf");
    assert_eq!((m.msgtype, m.conversion, m.mime_type.as_str()), ("m.audio", "as is", "audio/x-caf"));
    assert!(m.voice.is_none());
    assert_eq!(&m.bytes[..], CAF);

    let mov = stored(MOV);
    let rec = record(Some("video/quicktime"), None, "IMG_0048.mov", MOV.len());
    let m = prepare_with(&mov.path, &rec, &config, &tools).await.expect("mov");
    assert_eq!(m.info, json!({ "mimetype": "video/quicktime", "size": MOV.len() }));
}

#[tokio::test]
async fn a_converter_that_fails_is_an_error() {
    require_tools();
    let broken = stored(&HEIC[..HEIC.len() / 3]);
    let rec = record(Some("image/heic"), Some("public.heic"), "IMG_0049.heic", HEIC.len());
    let err = prepare(&broken.path, &rec, &MediaConfig::default()).await.expect_err("truncated HEIC");
    let MatrixError::Media { file, detail } = err else { panic!("not a Media error: {err}") };
    assert_eq!(file, broken.path.display().to_string());
    assert!(detail.contains("heif-convert"), "{detail}");
}

#[tokio::test]
async fn missing_and_oversized_files_are_errors() {
    let rec = record(Some("image/jpeg"), None, "IMG_0050.jpeg", JPEG.len());
    let err = prepare(Path::new("/nonexistent/attachment"), &rec, &MediaConfig::default()).await;
    assert!(matches!(err, Err(MatrixError::Media { ref detail, .. }) if detail.contains("cannot read")), "{err:?}");

    let file = stored(JPEG);
    let config = MediaConfig { max_bytes: JPEG.len() as u64 - 1, ..Default::default() };
    let err = prepare(&file.path, &rec, &config).await;
    assert!(matches!(err, Err(MatrixError::Media { ref detail, .. }) if detail.contains("limit")), "{err:?}");
    let config = MediaConfig { max_bytes: JPEG.len() as u64, ..Default::default() };
    assert!(prepare(&file.path, &rec, &config).await.is_ok());
}

#[tokio::test]
async fn converted_output_over_the_limit_is_an_error() {
    require_tools();
    // The Ogg made of base.caf (2.4 kB) is bigger than the CAF: a limit between the two passes
    // the original and stops the conversion.
    let rec = record(Some("audio/x-caf"), None, "Audio Message.caf", CAF.len());
    let config = MediaConfig { max_bytes: CAF.len() as u64 + 100, ..Default::default() };
    let file = stored(CAF);
    let err = prepare(&file.path, &rec, &config).await;
    assert!(matches!(err, Err(MatrixError::Media { ref detail, .. }) if detail.contains("limit")), "{err:?}");
}

#[tokio::test]
async fn a_program_filling_stdout_is_stopped_at_the_cap() {
    // `yes` never ends on its own: only the kill at the cap (not the 120 s limit) stops it.
    let started = std::time::Instant::now();
    let r = run(OsStr::new("yes"), &[], 1000).await.expect("run").expect("yes is installed");
    assert!(r.truncated && r.stdout.len() == 1000 && !r.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(run(OsStr::new("/nonexistent/tool"), &[], 10).await.expect("missing").is_none());
    let r = run(OsStr::new("sh"), &[OsStr::new("-c"), OsStr::new("echo oops >&2; exit 3")], 10).await;
    let r = r.expect("run").expect("sh is installed");
    assert_eq!((r.status.code(), r.stderr.as_str(), r.truncated), (Some(3), "oops", false));
}

#[test]
fn kind_and_name_come_from_mime_uti_or_path() {
    let mut rec = record(None, None, "x", 1);
    rec.details.transfer_name = None;
    rec.filename = Some("~/Library/Messages/Attachments/ab/11/UUID/IMG_0042.HEIC".into());
    let name = display_name(&rec);
    assert_eq!(name, "IMG_0042.HEIC");
    assert_eq!(mime_type(&rec, &name), "image/heic");
    assert_eq!(kind_of("image/heic", None, &name), Kind::Heif);
    assert_eq!(kind_of("audio/mp4", None, "Audio Message.caf"), Kind::Voice);
    assert_eq!(kind_of("audio/mp4", None, "song.m4a"), Kind::Audio);
    assert_eq!(kind_of("application/octet-stream", Some("com.apple.coreaudio-format"), "a"), Kind::Voice);
    assert_eq!(kind_of("application/zip", None, "a.zip"), Kind::File);
    rec.filename = None;
    assert_eq!(display_name(&rec), "attachment");
    assert_eq!(with_extension("Audio Message.caf", "ogg"), "Audio Message.ogg");
}

#[test]
fn message_content_carries_url_info_and_voice_fields() {
    let mut media = PreparedMedia {
        bytes: bytes::Bytes::from_static(b"OggS"),
        mime_type: "audio/ogg".into(),
        filename: "Audio Message.ogg".into(),
        msgtype: "m.audio",
        info: json!({ "mimetype": "audio/ogg", "size": 4, "duration": 1020 }),
        voice: Some(Voice { duration_ms: 1020, waveform: vec![0, 512, 1024] }),
        conversion: "caf→ogg",
        thumbnail: None,
        file: None,
    };
    let c = message_content(&media, "mxc://example.org/abc", None);
    assert_eq!(
        c,
        json!({
            "msgtype": "m.audio",
            "body": "Audio Message.ogg",
            "filename": "Audio Message.ogg",
            "url": "mxc://example.org/abc",
            "info": { "mimetype": "audio/ogg", "size": 4, "duration": 1020 },
            "org.matrix.msc3245.voice": {},
            "org.matrix.msc1767.audio": { "duration": 1020, "waveform": [0, 512, 1024] },
        })
    );
    media.voice = None;
    let thumbnail = crate::thumbnail::Thumbnail { bytes: bytes::Bytes::from_static(b"\xff\xd8\xff"), w: 80, h: 60 };
    let c = message_content(&media, "mxc://example.org/abc", Some(("mxc://example.org/thumb", &thumbnail)));
    assert!(c.get("org.matrix.msc3245.voice").is_none() && c.get("org.matrix.msc1767.audio").is_none());
    assert_eq!(c["url"], "mxc://example.org/abc");
    assert_eq!(c["info"]["thumbnail_url"], "mxc://example.org/thumb");
    assert_eq!(c["info"]["thumbnail_info"], json!({ "w": 80, "h": 60, "mimetype": "image/jpeg", "size": 3 }));
}

#[tokio::test]
async fn a_video_gets_a_jpeg_thumbnail_of_its_first_frame() {
    require_tools();
    let rec = record(Some("video/quicktime"), Some("com.apple.quicktime-movie"), "IMG_0046.mov", MOV.len());
    let m = prep(MOV, &rec, &MediaConfig::default()).await;
    let t = m.thumbnail.expect("a video has a thumbnail");
    assert_eq!(&t.bytes[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    assert_eq!((t.w, t.h), (64, 48), "never enlarged");
}

#[tokio::test]
async fn a_large_photo_gets_a_thumbnail_within_800_by_600_and_a_small_one_none() {
    require_tools();
    let dir = tempfile::TempDir::new().unwrap();
    let big = dir.path().join("big.jpg");
    let made = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=2000x1000", "-frames:v", "1"])
        .arg(&big)
        .status()
        .unwrap();
    assert!(made.success());
    let bytes = std::fs::read(&big).unwrap();
    let rec = record(Some("image/jpeg"), Some("public.jpeg"), "IMG_0001.JPG", bytes.len());
    let m = prep(&bytes, &rec, &MediaConfig::default()).await;
    assert_eq!((m.info["w"].as_u64(), m.info["h"].as_u64()), (Some(2000), Some(1000)));
    let t = m.thumbnail.expect("a photo larger than 800×600 has a thumbnail");
    assert_eq!((t.w, t.h), (800, 400), "scaled to fit, aspect kept");
    assert_eq!(imagesize::blob_size(&t.bytes).map(|s| (s.width, s.height)).ok(), Some((800, 400)));

    let rec = record(Some("image/jpeg"), Some("public.jpeg"), "IMG_0002.JPG", JPEG.len());
    assert!(prep(JPEG, &rec, &MediaConfig::default()).await.thumbnail.is_none(), "64×48 needs none");
}

#[test]
fn prepare_can_run_on_a_spawned_task() {
    fn assert_send<T: Send>(_: &T) {}
    let (rec, config) = (record(None, None, "a.pdf", 1), MediaConfig::default());
    let fut = prepare(Path::new("a.pdf"), &rec, &config);
    assert_send(&fut);
    assert_eq!(MediaConfig::default().max_bytes, 100 * 1024 * 1024);
    assert!(MediaConfig::default().convert_heif && MediaConfig::default().convert_voice);
}

#[tokio::test]
async fn a_large_file_is_left_on_disk_for_a_streamed_upload() {
    // A PDF padded past the streaming threshold (a file needs no tool).
    let mut big = PDF.to_vec();
    big.resize(STREAM_FROM as usize + 1, b' ');
    let rec = record(Some("application/pdf"), Some("com.adobe.pdf"), "scan.pdf", big.len());
    let file = stored(&big);
    let m = prepare(&file.path, &rec, &MediaConfig::default()).await.unwrap();
    assert!(m.bytes.is_empty(), "not read into memory");
    assert_eq!(m.file.as_deref().map(std::path::absolute).and_then(Result::ok), std::path::absolute(&file.path).ok());
    assert_eq!(m.info["size"].as_u64(), Some(big.len() as u64));
    // Below the threshold it is read as before.
    let small = prep(PDF, &record(Some("application/pdf"), Some("com.adobe.pdf"), "a.pdf", PDF.len()), &MediaConfig::default()).await;
    assert!(small.file.is_none() && &small.bytes[..] == PDF);
}

/// A FIFO whose every opening by a reader is counted (a reader's open waits for a writer: this
/// thread is one, each time).
struct WatchedFifo {
    path: PathBuf,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WatchedFifo {
    fn new(path: PathBuf) -> Self {
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
        let (opened, stop) = (std::sync::Arc::<std::sync::atomic::AtomicUsize>::default(), std::sync::Arc::<std::sync::atomic::AtomicBool>::default());
        let (p, o, s) = (path.clone(), std::sync::Arc::clone(&opened), std::sync::Arc::clone(&stop));
        let thread = std::thread::spawn(move || loop {
            let writer = std::fs::OpenOptions::new().write(true).open(&p);
            if s.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            o.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(writer);
        });
        WatchedFifo { path, opened, stop, thread: Some(thread) }
    }

    /// How often a reader opened it.
    fn opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for WatchedFifo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Lets the thread's pending open return, so it sees `stop`.
        let _ = std::fs::File::open(&self.path);
        let _ = self.thread.take().map(std::thread::JoinHandle::join);
    }
}

#[tokio::test]
async fn a_playlist_sent_as_a_video_opens_no_url_and_no_other_file() {
    require_tools();
    // An HTTP server that counts the connections it gets.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    let accepting = tokio::spawn(async move {
        while let Ok((_conn, _)) = server.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let dir = tempfile::TempDir::new().unwrap();
    let fifo = WatchedFifo::new(dir.path().join("elsewhere.ts"));
    let playlist =
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{}\n#EXTINF:10,\nhttp://127.0.0.1:{port}/seg.ts\n#EXT-X-ENDLIST\n", fifo.path.display());
    let mut prepared = Vec::new();
    for (mime, name) in [("video/mp4", "IMG_0051.mp4"), ("audio/x-caf", "Audio Message.caf"), ("image/jpeg", "IMG_0052.jpeg")] {
        let rec = record(Some(mime), None, name, playlist.len());
        let file = stored(playlist.as_bytes());
        prepared.push((mime, prepare(&file.path, &rec, &MediaConfig::default()).await));
    }
    // A request would have been accepted by now: the tools have exited.
    tokio::task::yield_now().await;
    assert_eq!(fifo.opened(), 0, "a file the playlist names was opened");
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 0, "the local HTTP server was asked");
    accepting.abort();
    // The attachment becomes a file (or, failing that, a notice: an error of `prepare`).
    for (mime, result) in prepared {
        match result {
            Ok(m) => {
                assert_eq!((m.msgtype, m.mime_type.as_str(), m.conversion), ("m.file", "application/octet-stream", "as is"), "{mime}");
                assert!(m.thumbnail.is_none() && m.voice.is_none() && &m.bytes[..] == playlist.as_bytes());
            }
            Err(e) => assert!(matches!(e, MatrixError::Media { .. }), "{mime}: {e}"),
        }
    }
}

/// Tools that log each command line to `log` and then run the real program.
fn logging_tools(dir: &Path, log: &Path) -> Tools {
    let wrap = |tool: &str| {
        let script = dir.join(tool);
        std::fs::write(&script, format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec {tool} \"$@\"\n", log.display())).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        script.into_os_string()
    };
    Tools { ffmpeg: wrap("ffmpeg"), ffprobe: wrap("ffprobe"), heif_convert: "/nonexistent/heif-convert".into(), heif_info: "/nonexistent/heif-info".into() }
}

#[tokio::test]
async fn every_media_tool_run_reads_one_file_as_the_format_of_its_bytes() {
    require_tools();
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("commands.log");
    let tools = logging_tools(dir.path(), &log);
    // The sender's word is wrong or vague each time; the bytes decide the format.
    let cases: [(&[u8], &str, &str, &str); 4] = [
        (CAF, "application/octet-stream", "Audio Message.caf", "-f caf"),
        (MOV, "video/mp4", "IMG_0053.mp4", "-f mov"),
        (HEIC, "image/heic", "IMG_0054.heic", "-f mov"),
        (JPEG, "video/quicktime", "IMG_0055.mov", ""),
    ];
    for (bytes, mime, name, format) in cases {
        let _ = std::fs::remove_file(&log);
        let file = stored(bytes);
        let m = prepare_with(&file.path, &record(Some(mime), None, name, bytes.len()), &MediaConfig::default(), &tools).await.expect(name);
        let lines = std::fs::read_to_string(&log).unwrap_or_default();
        if format.is_empty() {
            // A JPEG said to be a film is no film: no tool runs, it goes as a file.
            assert_eq!((lines.as_str(), m.msgtype, m.mime_type.as_str()), ("", "m.file", "application/octet-stream"));
            continue;
        }
        assert!(!lines.is_empty(), "{name}: no tool ran");
        for line in lines.lines() {
            let expected = format!("-protocol_whitelist file {format} -i {}", std::path::absolute(&file.path).unwrap().display());
            assert!(line.contains(&expected), "{name}: {line}");
        }
    }
}
