//! Real attachment bytes: a valid JPEG, PNG, HEIC, CAF voice message, QuickTime movie or PDF of
//! a requested size, unique per salt.
//!
//! It exists because the simulator serves iMessage attachments through MMCS, and what the bridge
//! and the Matrix clients do with them (sniff the type, thumbnail, decode, transcode a voice
//! message) only gets tested on real formats. Filler bytes would pass a checksum and fail the first
//! decoder. Each kind starts from one small real file in `media/` (made once with ffmpeg, the HEIC
//! is a real Apple sticker). The salt and the padding go into structures that decoders must skip:
//! JPEG `COM` segments, a private ancillary PNG chunk, `free` boxes (ISO BMFF / QuickTime) and
//! `free` chunks (CAF), and PDF comment lines before the xref table, with `startxref` moved to
//! match. The padding is splitmix64 output, so compression and dedup can't shrink it, and a 1 MB
//! file costs one pass over its bytes.

/// The kinds of attachment an iPhone sends that the simulator can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Jpeg,
    Png,
    Heic,
    /// An iPhone voice message (Opus in a Core Audio Format file).
    Caf,
    /// A QuickTime movie (H.264).
    Mov,
    Pdf,
}

/// Per kind, in declaration order: MIME type, Apple UTI, extension, base file.
#[rustfmt::skip]
const KINDS: [(&str, &str, &str, &[u8]); 6] = [
    ("image/jpeg", "public.jpeg", "jpeg", include_bytes!("../media/base.jpeg")),
    ("image/png", "public.png", "png", include_bytes!("../media/base.png")),
    ("image/heic", "public.heic", "heic", include_bytes!("../media/base.heic")),
    ("audio/x-caf", "com.apple.coreaudio-format", "caf", include_bytes!("../media/base.caf")),
    ("video/quicktime", "com.apple.quicktime-movie", "mov", include_bytes!("../media/base.mov")),
    ("application/pdf", "com.adobe.pdf", "pdf", include_bytes!("../media/base.pdf")),
];

impl MediaKind {
    #[rustfmt::skip]
    pub const ALL: [MediaKind; 6] =
        [Self::Jpeg, Self::Png, Self::Heic, Self::Caf, Self::Mov, Self::Pdf];

    pub fn mime_type(self) -> &'static str {
        KINDS[self as usize].0
    }

    /// Apple's uniform type identifier, as an attachment record carries it.
    pub fn uti(self) -> &'static str {
        KINDS[self as usize].1
    }

    pub fn extension(self) -> &'static str {
        KINDS[self as usize].2
    }

    /// The file name an iPhone gives such an attachment: `IMG_0042.heic`, `Audio Message.caf`,
    /// `Document 42.pdf`.
    pub fn filename(self, n: u64) -> String {
        match self {
            Self::Caf => "Audio Message.caf".to_owned(),
            Self::Pdf => format!("Document {n}.pdf"),
            _ => format!("IMG_{:04}.{}", n % 10_000, self.extension()),
        }
    }

    /// The real file every output of this kind is built from (`media/base.<extension>`).
    pub fn base(self) -> &'static [u8] {
        KINDS[self as usize].3
    }
}

/// A real `kind` file of at least `min_len` bytes (the base file plus a few dozen bytes when
/// `min_len` is smaller), unique for each `salt`, the same for the same (kind, salt, min_len).
pub fn file_bytes(kind: MediaKind, salt: u64, min_len: usize) -> Vec<u8> {
    let base = kind.base();
    let mut out = Vec::with_capacity(min_len.max(base.len() + 64) + 64);
    let mut pad = Pad { state: salt ^ (kind as u64).wrapping_mul(0xA076_1D64_78BD_642F), tag: format!("cloudkit-sim salt {salt:016x} ") };
    let tag = pad.tag.len();
    let need = min_len.saturating_sub(base.len());
    match kind {
        MediaKind::Jpeg => {
            // After SOI and the JFIF APP0 segment, so the file still reads as JFIF.
            let mut at = 2;
            if base[2..4] == [0xFF, 0xE0] {
                at += 2 + usize::from(u16::from_be_bytes([base[4], base[5]]));
            }
            out.extend_from_slice(&base[..at]);
            for (i, len) in units(need, 4, tag, 65_533) {
                out.extend_from_slice(&[0xFF, 0xFE]);
                out.extend_from_slice(&(len as u16 + 2).to_be_bytes());
                pad.unit(&mut out, i, len);
            }
            out.extend_from_slice(&base[at..]);
        }
        MediaKind::Png => {
            // After IHDR, which must come first; `saLt` = ancillary, private, safe to copy.
            // 1 MiB per chunk stays far below libpng's 8 MB limit on a chunk it doesn't know.
            let at = 8 + 12 + be32(&base[8..12]) as usize;
            out.extend_from_slice(&base[..at]);
            for (i, len) in units(need, 12, tag, 1 << 20) {
                out.extend_from_slice(&(len as u32).to_be_bytes());
                let start = out.len();
                out.extend_from_slice(b"saLt");
                pad.unit(&mut out, i, len);
                let crc = crc32fast::hash(&out[start..]);
                out.extend_from_slice(&crc.to_be_bytes());
            }
            out.extend_from_slice(&base[at..]);
        }
        MediaKind::Heic | MediaKind::Mov => {
            // Top-level `free` boxes at the end: `iloc`/`stco` offsets are absolute and unmoved.
            out.extend_from_slice(base);
            for (i, len) in units(need, 8, tag, 1 << 30) {
                out.extend_from_slice(&(len as u32 + 8).to_be_bytes());
                out.extend_from_slice(b"free");
                pad.unit(&mut out, i, len);
            }
        }
        MediaKind::Caf => {
            // The base's `data` chunk has an explicit size, so chunks may follow it.
            out.extend_from_slice(base);
            for (i, len) in units(need, 12, tag, usize::MAX >> 1) {
                out.extend_from_slice(b"free");
                out.extend_from_slice(&(len as i64).to_be_bytes());
                pad.unit(&mut out, i, len);
            }
        }
        MediaKind::Pdf => {
            // Comment lines between the last object and the xref table: no object moves, only
            // `startxref` does. Lines stay within the 255 bytes PDF writers are asked to keep to.
            let (xref, tail) = pdf_xref(base);
            out.extend_from_slice(&base[..xref]);
            for (i, len) in units(need, 2, tag, 253) {
                out.push(b'%');
                let start = out.len();
                pad.unit(&mut out, i, len);
                for b in &mut out[start..] {
                    if *b == b'\n' || *b == b'\r' {
                        *b |= 0x80;
                    }
                }
                out.push(b'\n');
            }
            let moved = out.len();
            out.extend_from_slice(&base[xref..tail]);
            out.extend_from_slice(format!("startxref\n{moved}\n%%EOF\n").as_bytes());
        }
    }
    out
}

/// The offset of the xref table of a classic-xref PDF and of its final `startxref` keyword.
fn pdf_xref(pdf: &[u8]) -> (usize, usize) {
    let tail = rfind(pdf, b"startxref").expect("media/base.pdf has a startxref");
    let xref: usize =
        std::str::from_utf8(&pdf[tail + 9..]).ok().and_then(|t| t.split_whitespace().next()?.parse().ok()).expect("media/base.pdf: startxref offset");
    let classic = pdf[xref..].starts_with(b"xref");
    assert!(classic, "media/base.pdf has a classic xref table");
    (xref, tail)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Payload lengths `(index, len)` of padding units of `overhead` header bytes each, together at
/// least `need` bytes (over by at most `overhead`), the first at least `first` long, none over `max`.
fn units(need: usize, overhead: usize, first: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut left = need.max(overhead + first);
    let mut i = 0;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let floor = if i == 0 { first } else { 0 };
        let len = left.saturating_sub(overhead).clamp(floor, max);
        left = left.saturating_sub(overhead + len);
        i += 1;
        Some((i - 1, len))
    })
}

/// The salt tag, then a splitmix64 stream: fast, and each salt gets its own.
struct Pad {
    state: u64,
    tag: String,
}

impl Pad {
    /// Writes the payload of padding unit `i`: the salt tag first in unit 0, then random bytes.
    fn unit(&mut self, out: &mut Vec<u8>, i: usize, len: usize) {
        let end = out.len() + len;
        if i == 0 {
            out.extend_from_slice(self.tag.as_bytes());
        }
        let start = out.len();
        out.resize(end, 0);
        for chunk in out[start..].chunks_mut(8) {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [usize; 4] = [0, 1000, 300_000, 2_100_000];

    fn be64(b: &[u8]) -> u64 {
        u64::from_be_bytes(b[..8].try_into().unwrap())
    }

    /// JPEG: markers from SOI to SOS, then EOI at the end; returns the segments' markers.
    fn walk_jpeg(f: &[u8]) -> Vec<(u8, usize)> {
        assert_eq!(&f[..3], [0xFF, 0xD8, 0xFF], "SOI");
        assert_eq!(&f[f.len() - 2..], [0xFF, 0xD9], "EOI at the end");
        let (mut at, mut segs) = (2, vec![]);
        loop {
            // Markers only, no standalone RSTn/TEM, each segment's length inside the file.
            assert_eq!(f[at], 0xFF, "marker at {at}");
            let marker = f[at + 1];
            assert!(!matches!(marker, 0x01 | 0xD0..=0xD9), "standalone {marker:x}");
            let len = usize::from(u16::from_be_bytes([f[at + 2], f[at + 3]]));
            assert!(len >= 2 && at + 2 + len <= f.len());
            segs.push((marker, at));
            if marker == 0xDA {
                return segs;
            }
            at += 2 + len;
        }
    }

    /// PNG: every chunk with its CRC; IHDR first, IEND last, ending the file.
    fn walk_png(f: &[u8]) -> Vec<[u8; 4]> {
        assert_eq!(&f[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut types) = (8, vec![]);
        while at < f.len() {
            let len = be32(&f[at..]) as usize;
            let body = &f[at + 4..at + 8 + len];
            let crc = be32(&f[at + 8 + len..]);
            assert_eq!(crc32fast::hash(body), crc, "CRC at {at}");
            types.push(body[..4].try_into().unwrap());
            at += 12 + len;
        }
        assert_eq!(at, f.len());
        assert_eq!(&types[0], b"IHDR");
        assert_eq!(types.last().unwrap(), b"IEND");
        types
    }

    /// Boxes (ISO BMFF / QuickTime) or chunks (CAF) from `at`, whose sizes must sum to the file
    /// length; `head` gives a unit's type and total size.
    fn walk(f: &[u8], mut at: usize, head: fn(&[u8]) -> ([u8; 4], u64)) -> Vec<[u8; 4]> {
        let mut types = vec![];
        while at < f.len() {
            let (ty, size) = head(&f[at..]);
            assert!(size >= 8 && at as u64 + size <= f.len() as u64, "overrun at {at}");
            types.push(ty);
            at += size as usize;
        }
        assert_eq!(at, f.len());
        types
    }

    fn bmff_box(b: &[u8]) -> ([u8; 4], u64) {
        let size = match be32(b) {
            1 => be64(&b[8..]),
            n => u64::from(n), // 0 ("to the end") fails the walk's size check
        };
        (b[4..8].try_into().unwrap(), size)
    }

    fn caf_chunk(c: &[u8]) -> ([u8; 4], u64) {
        let size = i64::try_from(be64(&c[4..])).expect("CAF chunk size -1 before the end");
        (c[..4].try_into().unwrap(), 12 + size as u64)
    }

    /// PDF: header, `%%EOF` in the last 1024 bytes, `startxref` pointing at `xref`.
    fn check_pdf(f: &[u8]) -> usize {
        assert!(f.starts_with(b"%PDF-1."));
        assert!(rfind(&f[f.len().saturating_sub(1024)..], b"%%EOF").is_some());
        let (xref, tail) = pdf_xref(f);
        assert!(rfind(&f[..tail], b"trailer").unwrap() > xref);
        xref
    }

    fn check(kind: MediaKind, f: &[u8]) {
        let base = kind.base();
        match kind {
            MediaKind::Jpeg => {
                let segs = walk_jpeg(f);
                let base_segs = walk_jpeg(base);
                let coms = segs.iter().filter(|s| s.0 == 0xFE).count();
                assert_eq!(segs.len(), base_segs.len() + coms);
                assert!(segs[1..=coms].iter().all(|s| s.0 == 0xFE), "COMs after APP0");
                assert_eq!(segs[0].0, 0xE0, "APP0 still first");
                // The entropy-coded data after SOS is the base's, byte for byte.
                let sos = |s: &[(u8, usize)]| s.last().unwrap().1;
                assert_eq!(&f[sos(&segs)..], &base[sos(&base_segs)..]);
            }
            MediaKind::Png => {
                let types = walk_png(f);
                assert!(f == base || &types[1] == b"saLt", "saLt right after IHDR");
                let kept: Vec<_> = types.into_iter().filter(|t| t != b"saLt").collect();
                assert_eq!(kept, walk_png(base));
                assert!(f.ends_with(&base[33..]), "chunks after IHDR unchanged");
            }
            MediaKind::Heic | MediaKind::Mov => {
                let boxes = walk(f, 0, bmff_box);
                assert_eq!(&boxes[0], b"ftyp");
                let brand = &f[8..12];
                if kind == MediaKind::Heic {
                    assert!(brand == b"heic" || brand == b"mif1");
                    assert!(boxes.contains(b"meta"));
                } else {
                    assert_eq!(brand, b"qt  ");
                    assert!(boxes.contains(b"moov"));
                }
                assert!(f.starts_with(base));
                let added = &boxes[walk(base, 0, bmff_box).len()..];
                assert!(added.iter().all(|b| b == b"free"));
            }
            MediaKind::Caf => {
                assert_eq!(&f[..8], b"caff\x00\x01\x00\x00", "caff version 1");
                let chunks = walk(f, 8, caf_chunk);
                assert_eq!(&chunks[0], b"desc");
                assert!(chunks.contains(b"data"));
                assert!(f.starts_with(base));
                let added = &chunks[walk(base, 8, caf_chunk).len()..];
                assert!(added.iter().all(|c| c == b"free"));
            }
            MediaKind::Pdf => {
                let (xref, base_xref) = (check_pdf(f), check_pdf(base));
                assert_eq!(&f[..base_xref], &base[..base_xref], "objects unmoved");
                let (_, base_tail) = pdf_xref(base);
                assert!(f[xref..].starts_with(&base[base_xref..base_tail]), "same xref");
                let mut lines = f[base_xref..xref].split_inclusive(|&b| b == b'\n');
                let comment = |l: &[u8]| l[0] == b'%' && l.len() <= 255 && l.ends_with(b"\n");
                assert!(lines.all(|l| comment(l) && !l.contains(&b'\r')));
            }
        }
    }

    #[test]
    fn every_kind_is_valid_sized_unique_and_deterministic() {
        for kind in MediaKind::ALL {
            check(kind, kind.base());
            for min in SIZES {
                let a = file_bytes(kind, 7, min);
                assert!(a.len() >= min, "{kind:?} {min}: {}", a.len());
                let cap = min.max(kind.base().len()) + 64;
                assert!(a.len() <= cap, "{kind:?} {min} too long");
                check(kind, &a);
                assert_eq!(a, file_bytes(kind, 7, min), "{kind:?} deterministic");
                let b = file_bytes(kind, 8, min);
                assert_ne!(a, b, "{kind:?} {min}: salts differ");
                let tag = b"cloudkit-sim salt 0000000000000007 ";
                assert!(rfind(&a, tag).is_some(), "{kind:?} carries its salt");
            }
        }
    }

    #[test]
    fn padding_does_not_compress() {
        let f = file_bytes(MediaKind::Png, 3, 100_000);
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &f).unwrap();
        assert!(z.finish().unwrap().len() > 99_000);
    }

    #[test]
    fn exact_sizes_near_unit_limits() {
        // Around the JPEG segment limit and PDF line length, where a unit split could go wrong.
        for kind in [MediaKind::Jpeg, MediaKind::Pdf, MediaKind::Png] {
            for extra in [65_535, 65_536, 65_537, 65_541, 131_074, 253, 254, 255, 256, 510] {
                let min = kind.base().len() + extra;
                let f = file_bytes(kind, 9, min);
                assert!((min..=min + 12).contains(&f.len()), "{kind:?} {extra}: {}", f.len());
                check(kind, &f);
            }
        }
    }

    #[test]
    fn names_and_types() {
        assert_eq!(MediaKind::Heic.filename(10_042), "IMG_0042.heic");
        assert_eq!(MediaKind::Caf.filename(3), "Audio Message.caf");
        assert_eq!(MediaKind::Pdf.filename(3), "Document 3.pdf");
        let mimes: std::collections::HashSet<_> = MediaKind::ALL.iter().map(|k| k.mime_type()).collect();
        assert_eq!(mimes.len(), 6);
        assert_eq!(MediaKind::Caf.uti(), "com.apple.coreaudio-format");
        assert_eq!(MediaKind::Mov.extension(), "mov");
    }
}
