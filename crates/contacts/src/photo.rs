//! Contact photos: the image type is sniffed from the bytes, never taken from what a card says
//! (vCard `TYPE=JPEG`, a data URI's type, a file name), because exporters get it wrong and the
//! Matrix side needs the real type to upload and convert the image.
//!
//! Apple's address books wrap image blobs: a Mac's `ZTHUMBNAILIMAGEDATA`/`ZIMAGEDATA` start with
//! one tag byte, `0x01` before the image bytes, or `0x02` before the UUID of a file in the
//! database's external-data folder. [`Photo::from_bytes`] accepts a bare image or one behind a
//! `0x01`; the `0x02` reference is resolved by the Mac reader.

use std::io::Read;
use std::path::Path;

use crate::MAX_PHOTO_BYTES;

/// A contact's picture.
#[derive(Clone, PartialEq, Eq)]
pub struct Photo {
    pub bytes: Vec<u8>,
    /// Sniffed from the bytes: `image/jpeg`, `image/png`, `image/heic`, `image/avif`,
    /// `image/gif`, `image/webp` or `image/bmp`.
    pub mime: String,
}

impl std::fmt::Debug for Photo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Photo({}, {} bytes)", self.mime, self.bytes.len())
    }
}

impl Photo {
    /// The photo in `bytes` (a bare image, or one behind Apple's `0x01` tag byte), or why not.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Result<Photo, String> {
        if bytes.len() > MAX_PHOTO_BYTES {
            return Err(format!("photo of {} bytes is larger than the {MAX_PHOTO_BYTES}-byte cap", bytes.len()));
        }
        if bytes.is_empty() {
            return Err("photo is empty".into());
        }
        if let Some(mime) = sniff(&bytes) {
            return Ok(Photo { bytes, mime: mime.to_string() });
        }
        if bytes.first() == Some(&0x01) {
            if let Some(mime) = bytes.get(1..).and_then(sniff) {
                bytes.remove(0);
                return Ok(Photo { bytes, mime: mime.to_string() });
            }
        }
        Err(format!("photo is not an image this bridge knows (starts {})", hex_start(&bytes)))
    }

    /// Reads an image file, capped at [`MAX_PHOTO_BYTES`].
    pub fn read_file(path: &Path) -> Result<Photo, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut bytes = Vec::new();
        file.take(MAX_PHOTO_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Photo::from_bytes(bytes)
    }
}

/// The MIME type of an image, from its first bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => Some("image/heic"),
            b"avif" | b"avis" => Some("image/avif"),
            _ => None,
        };
    }
    if bytes.len() >= 14 && bytes.starts_with(b"BM") {
        return Some("image/bmp");
    }
    None
}

fn hex_start(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];

    #[test]
    fn sniffs_and_strips_apples_tag_byte() {
        assert_eq!(Photo::from_bytes(JPEG.to_vec()).map(|p| p.mime), Ok("image/jpeg".to_string()));
        let mut tagged = vec![0x01];
        tagged.extend_from_slice(JPEG);
        let p = Photo::from_bytes(tagged).expect("tagged jpeg");
        assert_eq!(p.bytes, JPEG);
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        assert_eq!(Photo::from_bytes(heic).map(|p| p.mime), Ok("image/heic".to_string()));
        assert!(Photo::from_bytes(b"hello world".to_vec()).unwrap_err().contains("68656c6c"));
        assert!(Photo::from_bytes(Vec::new()).is_err());
    }

    #[test]
    fn too_large_is_refused() {
        let mut big = JPEG.to_vec();
        big.resize(MAX_PHOTO_BYTES + 1, 0);
        assert!(Photo::from_bytes(big).unwrap_err().contains("cap"));
    }
}
