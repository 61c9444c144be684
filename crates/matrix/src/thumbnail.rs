//! Thumbnails: a small JPEG for videos and for large images, uploaded beside the file and named
//! in `info.thumbnail_url` / `info.thumbnail_info`.
//!
//! Why the bridge makes them: clients show a video as its thumbnail until it is played, and
//! without one Element shows an empty frame; the media repository cannot make one of a video.
//! For images Element's own uploads carry a thumbnail above 800×600, so bridged photos do the
//! same and a client on a slow link never has to fetch a 12-megapixel photo to draw the
//! timeline. ffmpeg does the scaling (the same tool the voice conversion uses); a missing
//! ffmpeg or a frame it cannot decode means no thumbnail, never a lost attachment.

use std::path::Path;

use crate::tools::{ffmpeg_args, read_capped_file, run, warn_once, Tools, PROBE_CAP};

/// The largest thumbnail, as Element makes them.
pub const MAX_WIDTH: u64 = 800;
pub const MAX_HEIGHT: u64 = 600;
/// A thumbnail larger than this is not one.
const THUMBNAIL_CAP: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// A JPEG.
    pub bytes: bytes::Bytes,
    pub w: u64,
    pub h: u64,
}

/// Whether an image of `dims` needs a thumbnail (videos always do).
pub(crate) fn wanted(is_video: bool, dims: Option<(u64, u64)>) -> bool {
    is_video || dims.is_some_and(|(w, h)| w > MAX_WIDTH || h > MAX_HEIGHT)
}

/// A JPEG of `input`'s first frame, scaled to fit 800×600 (never enlarged), written in `dir`;
/// `demuxer` is the input format its bytes have (`crate::sniff`). None when ffmpeg is not
/// installed.
pub(crate) async fn make(input: &Path, demuxer: &str, dir: &Path, tools: &Tools) -> Result<Option<Thumbnail>, String> {
    if demuxer.is_empty() {
        return Err("the file is of no format ffmpeg is given".into());
    }
    let out = dir.join("thumbnail.jpg");
    let scale = format!("scale=w='min({MAX_WIDTH},iw)':h='min({MAX_HEIGHT},ih)':force_original_aspect_ratio=decrease");
    let opts = ["-frames:v", "1", "-vf", &scale, "-f", "image2", "-c:v", "mjpeg", "-q:v", "4"];
    match run(&tools.ffmpeg, &ffmpeg_args(input, demuxer, &opts, &out), PROBE_CAP).await? {
        Some(r) if r.status.success() => {
            let bytes = read_capped_file(&out, THUMBNAIL_CAP, "the thumbnail").await?;
            let size = imagesize::blob_size(&bytes).map_err(|e| format!("the thumbnail is not an image: {e}"))?;
            Ok(Some(Thumbnail { bytes, w: size.width as u64, h: size.height as u64 }))
        }
        Some(r) => Err(format!("ffmpeg could not make a thumbnail ({}): {}", r.status, r.stderr)),
        None => {
            warn_once("ffmpeg-thumbnail", "ffmpeg is not installed: videos and large photos go without thumbnails");
            Ok(None)
        }
    }
}
