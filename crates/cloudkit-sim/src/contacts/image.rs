//! Small real photos for contact cards: an 8×8 PNG encoded here (signature, IHDR, one zlib IDAT,
//! IEND, each chunk with its CRC-32), coloured per person, and a JPEG made from an 8×8 baseline
//! JPEG (`photo.jpg`, written once with ffmpeg) with a per-person comment segment after SOI, so
//! every photo is a distinct, decodable image with its own SHA-256.

use std::io::Write;

use sha2::{Digest, Sha256};

/// A photo and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub png: bool,
    pub bytes: Vec<u8>,
}

impl Photo {
    pub fn sha256(&self) -> String {
        Sha256::digest(&self.bytes).iter().map(|b| format!("{b:02x}")).collect()
    }
}

const SIDE: u32 = 8;
/// An 8×8 baseline JPEG (ffmpeg's `gradients` source).
const JPEG: &[u8] = include_bytes!("photo.jpg");

/// The photo of person `n`: a PNG when `png`, else a JPEG.
pub fn photo(n: u32, png: bool) -> Photo {
    Photo { png, bytes: if png { png_bytes(n) } else { jpeg_bytes(n) } }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// An 8×8 RGB PNG whose colour depends on `n`.
pub fn png_bytes(n: u32) -> Vec<u8> {
    let colour = [(n * 67 % 256) as u8, (n * 151 % 256) as u8, (200 - n % 100) as u8];
    let mut raw = Vec::new();
    for y in 0..SIDE {
        raw.push(0); // filter: none
        for x in 0..SIDE {
            raw.extend_from_slice(&[colour[0].wrapping_add((x * 16) as u8), colour[1].wrapping_add((y * 16) as u8), colour[2]]);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&raw);
    let idat = z.finish().unwrap_or_default();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, adaptive, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The base JPEG with a comment segment (`FF FE`, length, text) naming person `n`.
pub fn jpeg_bytes(n: u32) -> Vec<u8> {
    let text = format!("cloudkit-sim contact photo {n}");
    let mut out = JPEG[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&JPEG[2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_are_distinct_images() {
        assert_eq!(&JPEG[..2], &[0xFF, 0xD8]);
        let (a, b) = (png_bytes(1), png_bytes(2));
        assert!(a.starts_with(b"\x89PNG") && a != b);
        let (a, b) = (jpeg_bytes(1), jpeg_bytes(2));
        assert!(a.starts_with(&[0xFF, 0xD8, 0xFF, 0xFE]) && a.ends_with(&[0xFF, 0xD9]) && a != b);
        assert_eq!(imagesize_of_png(&png_bytes(3)), (8, 8));
    }

    fn imagesize_of_png(b: &[u8]) -> (u32, u32) {
        (u32::from_be_bytes([b[16], b[17], b[18], b[19]]), u32::from_be_bytes([b[20], b[21], b[22], b[23]]))
    }
}
