//! What an attachment file really is, from its first bytes: the one input format ffmpeg and
//! ffprobe are told to read it as, and whether it is a picture, sound or film at all.
//!
//! Why: the bytes come from any contact, and the MIME type, UTI and name beside them are the
//! sender's word. Left to probe, ffmpeg picks a demuxer by content, and some demuxers open other
//! files or URLs that the content names: an HLS playlist sent as "video/mp4" makes ffprobe read
//! the files its segments point at. So every ffmpeg and ffprobe run gets `-f` with a demuxer chosen
//! here from magic bytes (a closed list of plain containers, none of which follows references)
//! and `-protocol_whitelist file` ([`crate::media::ffmpeg_args`]); a file whose bytes match none
//! of them never reaches a media tool and goes to Matrix as a file of type
//! `application/octet-stream`.

use std::path::Path;

use tokio::io::AsyncReadExt;

/// Bytes read from the start of a file to recognise it.
const HEAD: usize = 64;

/// What a file's container can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A still image of a format every client draws (JPEG, PNG, GIF, WebP, BMP, TIFF).
    Image,
    /// A HEIF/HEIC image (an ISO base media file with a HEIF brand).
    Heif,
    /// Sound only (CAF, MP3, FLAC, WAV, AMR, ADTS AAC).
    Audio,
    /// Film only (AVI).
    Video,
    /// Sound or film (MP4/QuickTime, Ogg, Matroska/WebM).
    AudioVideo,
}

/// A recognised file: its class, the ffmpeg demuxer that reads it, and its MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    pub class: Class,
    /// The `-f` name given to ffmpeg and ffprobe.
    pub demuxer: &'static str,
    /// The MIME type of the format (for an audio-or-video container, of its video form).
    pub mime: &'static str,
}

const fn format(class: Class, demuxer: &'static str, mime: &'static str) -> Option<Format> {
    Some(Format { class, demuxer, mime })
}

/// Recognises a file from its first bytes (at least [`HEAD`] of them when the file has them).
pub(crate) fn sniff(head: &[u8]) -> Option<Format> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(4, b"ftyp") {
        let brand = head.get(8..12).unwrap_or_default();
        return match brand {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => format(Class::Heif, "mov", "image/heic"),
            b"qt  " => format(Class::AudioVideo, "mov", "video/quicktime"),
            b"M4A " | b"M4B " => format(Class::Audio, "mov", "audio/mp4"),
            _ => format(Class::AudioVideo, "mov", "video/mp4"),
        };
    }
    // QuickTime files written without `ftyp` start with another top-level atom.
    if [&b"moov"[..], b"mdat", b"wide", b"free"].iter().any(|atom| at(4, atom)) {
        return format(Class::AudioVideo, "mov", "video/quicktime");
    }
    match () {
        _ if at(0, &[0xff, 0xd8, 0xff]) => format(Class::Image, "jpeg_pipe", "image/jpeg"),
        _ if at(0, b"\x89PNG\r\n\x1a\n") => format(Class::Image, "png_pipe", "image/png"),
        _ if at(0, b"GIF87a") || at(0, b"GIF89a") => format(Class::Image, "gif", "image/gif"),
        _ if at(0, b"RIFF") && at(8, b"WEBP") => format(Class::Image, "webp_pipe", "image/webp"),
        _ if at(0, b"BM") && head.len() >= 26 => format(Class::Image, "bmp_pipe", "image/bmp"),
        _ if at(0, b"II*\0") || at(0, b"MM\0*") => format(Class::Image, "tiff_pipe", "image/tiff"),
        _ if at(0, b"caff") => format(Class::Audio, "caf", "audio/x-caf"),
        _ if at(0, b"OggS") => format(Class::AudioVideo, "ogg", "video/ogg"),
        _ if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) => format(Class::AudioVideo, "matroska", "video/x-matroska"),
        _ if at(0, b"RIFF") && at(8, b"WAVE") => format(Class::Audio, "wav", "audio/wav"),
        _ if at(0, b"RIFF") && at(8, b"AVI ") => format(Class::Video, "avi", "video/x-msvideo"),
        _ if at(0, b"fLaC") => format(Class::Audio, "flac", "audio/flac"),
        _ if at(0, b"#!AMR\n") => format(Class::Audio, "amr", "audio/amr"),
        _ if at(0, b"ID3") => format(Class::Audio, "mp3", "audio/mpeg"),
        // An MPEG audio frame header (sync, layer III) or an ADTS AAC one (sync, layer 0).
        _ if head.len() >= 2 && head[0] == 0xff && head[1] & 0xe6 == 0xe2 => format(Class::Audio, "mp3", "audio/mpeg"),
        _ if head.len() >= 2 && head[0] == 0xff && head[1] & 0xf6 == 0xf0 => format(Class::Audio, "aac", "audio/aac"),
        _ => None,
    }
}

/// [`sniff`] of the file at `path`.
pub(crate) async fn sniff_file(path: &Path) -> std::io::Result<Option<Format>> {
    let file = tokio::fs::File::open(path).await?;
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64).read_to_end(&mut head).await?;
    Ok(sniff(&head))
}

/// A MIME type as `type/subtype` of plain token characters (no parameters, no line breaks).
pub(crate) fn plain_mime(mime: &str) -> bool {
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    mime.split_once('/').is_some_and(|(t, s)| token(t) && token(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_media_are_recognised_by_their_bytes() {
        let cases: [(&[u8], Class, &str); 5] = [
            (include_bytes!("../../cloudkit-sim/media/base.jpeg"), Class::Image, "jpeg_pipe"),
            (include_bytes!("../../cloudkit-sim/media/base.png"), Class::Image, "png_pipe"),
            (include_bytes!("../../cloudkit-sim/media/base.heic"), Class::Heif, "mov"),
            (include_bytes!("../../cloudkit-sim/media/base.caf"), Class::Audio, "caf"),
            (include_bytes!("../../cloudkit-sim/media/base.mov"), Class::AudioVideo, "mov"),
        ];
        for (bytes, class, demuxer) in cases {
            let f = sniff(&bytes[..HEAD]).expect("recognised");
            assert_eq!((f.class, f.demuxer), (class, demuxer));
        }
    }

    #[test]
    fn playlists_documents_and_scraps_are_not_media() {
        let pdf = include_bytes!("../../cloudkit-sim/media/base.pdf");
        for head in [&b"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1/seg.ts\n"[..], b"ffconcat version 1.0\n", b"v=0\r\n", &pdf[..], b"", b"\xff", b"RIFF"] {
            assert_eq!(sniff(head), None, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn plain_mime_types_only() {
        assert!(plain_mime("video/quicktime") && plain_mime("image/svg+xml") && plain_mime("audio/x-caf"));
        for bad in ["video", "video/", "/mp4", "video/mp4; codecs=avc1", "image/png\r\nx: y", "a/b/c"] {
            assert!(!plain_mime(bad), "{bad:?}");
        }
    }
}
