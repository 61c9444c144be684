//! CloudKit's HTTP body framing: a sequence of protobuf messages, each prefixed with its length as
//! an unsigned LEB128 varint, the whole body gzipped once (`content-encoding: gzip`). Replies use
//! the same delimiting and may or may not be gzipped.
//!
//! [`gzip`] and [`gunzip`] also serve the per-record gzip of `msgProto` and attachment metadata,
//! so they run once per record on both sides of a sync. A fresh deflate state is a few hundred
//! kilobytes (an inflate state tens of kilobytes) of zeroed memory, which dominated the cost of
//! a 100-byte record; so each thread keeps one compressor per level and one decompressor and
//! resets them between calls, and a member is inflated straight into a buffer of the size its
//! trailer states. The output is byte for byte what `flate2`'s `GzEncoder` writes, and
//! anything but a plain, complete gzip member is handed to `flate2`'s `GzDecoder`, so results and
//! errors are the same as with the stock streams (pinned by the tests below).

use std::cell::RefCell;
use std::io::{Read, Write};

use bytes::{Buf, Bytes};
use flate2::{read::GzDecoder, write::GzEncoder, Compress, Compression, Crc, FlushCompress, Status};
use prost::Message;

use crate::error::{Error, Result};

/// Encodes messages as a length-delimited stream (no compression).
pub fn encode_delimited<M: Message>(messages: &[M]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.encoded_len() + 5).sum());
    for m in messages {
        // Writing into a Vec cannot run out of space.
        let _ = m.encode_length_delimited(&mut out);
    }
    out
}

/// Decodes a length-delimited stream until its end. A truncated length or message is an error,
/// never a silently shorter list.
pub fn decode_delimited<M: Message + Default>(body: &[u8]) -> Result<Vec<M>> {
    decode_stream(body)
}

/// [`decode_delimited`] over a shared buffer: `bytes::Bytes` fields of the messages become slices
/// of `body` instead of copies.
pub fn decode_delimited_bytes<M: Message + Default>(body: Bytes) -> Result<Vec<M>> {
    decode_stream(body)
}

/// [`decode_delimited_bytes`] refusing more than `max` messages: an empty message is one byte
/// on the wire and hundreds in memory, so a reader that knows how many to expect (a reply holds
/// one per operation sent) says so.
pub fn decode_delimited_bytes_at_most<M: Message + Default>(body: Bytes, max: usize) -> Result<Vec<M>> {
    decode_stream_at_most(body, max)
}

fn decode_stream<M: Message + Default, B: Buf>(body: B) -> Result<Vec<M>> {
    decode_stream_at_most(body, usize::MAX)
}

fn decode_stream_at_most<M: Message + Default, B: Buf>(mut body: B, max: usize) -> Result<Vec<M>> {
    let mut out = Vec::new();
    while body.has_remaining() {
        if out.len() >= max {
            return Err(Error::Frame(format!("more than the {max} messages expected")));
        }
        let len = prost::decode_length_delimiter(&mut body).map_err(|e| Error::Frame(format!("bad length prefix: {e}")))?;
        if len > body.remaining() {
            return Err(Error::Frame(format!("message of {len} bytes but only {} left", body.remaining())));
        }
        out.push(M::decode((&mut body).take(len)).map_err(|e| Error::Frame(format!("bad protobuf message: {e}")))?);
    }
    Ok(out)
}

/// Gzip member header as `GzEncoder` writes it: no flags, mtime 0, XFL from the level, OS 255.
fn gzip_header(level: Compression) -> [u8; 10] {
    let xfl = if level.level() >= Compression::best().level() {
        2
    } else if level.level() <= Compression::fast().level() {
        4
    } else {
        0
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

thread_local! {
    /// Raw-deflate compressors of this thread, one per level used.
    static DEFLATERS: RefCell<Vec<(u32, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// Gzips `data` in one member, exactly as `GzEncoder` with default settings does.
pub fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    out.extend_from_slice(&gzip_header(level));
    let deflated = DEFLATERS.with(|cell| {
        let Ok(mut pool) = cell.try_borrow_mut() else { return false };
        let i = match pool.iter().position(|(l, _)| *l == level.level()) {
            Some(i) => i,
            None => {
                pool.push((level.level(), Compress::new(level, false)));
                pool.len() - 1
            }
        };
        let c = &mut pool[i].1;
        c.reset();
        deflate_all(c, data, &mut out)
    });
    if !deflated {
        return gzip_stream(data, level);
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Raw-deflates all of `data` onto `out` with a freshly reset compressor.
fn deflate_all(c: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> bool {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let consumed = c.total_in() as usize;
        let Some(input) = data.get(consumed..) else { return false };
        match c.compress_vec(input, out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// The stock `flate2` stream encoder (fallback; same bytes as [`gzip`]).
fn gzip_stream(data: &[u8], level: Compression) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 3 + 64), level);
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// The most one gzip member may inflate to through [`gunzip`] (the default of
/// [`crate::Limits::max_inflated_reply_bytes`]; callers with a [`crate::Limits`] use
/// [`gunzip_capped`] with the field that applies).
pub const MAX_INFLATED_BYTES: usize = 64 << 20;

/// Gunzips the first gzip member of `data`, refusing output past [`MAX_INFLATED_BYTES`].
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    gunzip_capped(data, MAX_INFLATED_BYTES)
}

/// Gunzips the first gzip member of `data`, inflating at most `cap` bytes: more is
/// [`Error::TooLarge`] (rename it for the caller with [`Error::too_large_as`]), and no buffer
/// larger than `cap` is ever allocated, whatever the member's trailer claims.
pub fn gunzip_capped(data: &[u8], cap: usize) -> Result<Vec<u8>> {
    match gunzip_plain(data, cap) {
        Some(out) => Ok(out),
        None => gunzip_stream(data, cap),
    }
}

/// Appends `chunk` to `out` unless that would make `out` longer than `cap` (then false, `out`
/// unchanged). The buffer grows by doubling as usual but never past `cap`, so a capped read holds
/// at most `cap` bytes of buffer, not twice that.
pub(crate) fn extend_capped(out: &mut Vec<u8>, chunk: &[u8], cap: usize) -> bool {
    let Some(need) = out.len().checked_add(chunk.len()).filter(|&n| n <= cap) else { return false };
    if need > out.capacity() {
        let target = need.max(out.capacity().saturating_mul(2)).min(cap);
        out.reserve_exact(target - out.len());
    }
    out.extend_from_slice(chunk);
    true
}

fn too_large(what: &str, cap: usize) -> Error {
    Error::TooLarge { what: what.to_string(), limit: "max_inflated_reply_bytes", cap }
}

/// Deflate cannot expand data by more than this factor (a 258-byte match per 2-bit code, give or
/// take), so a trailer that claims more is damaged.
const MAX_DEFLATE_RATIO: usize = 1032;
/// Largest output the fast path allocates up front from the trailer's word; a bigger member goes
/// to the streaming decoder, which grows its buffer only as data actually inflates.
const MAX_PLAIN_OUTPUT: usize = 64 << 20;

/// Fast path for what CloudKit and `GzEncoder` write: a member with a bare 10-byte header and
/// nothing after its trailer. The trailer states the output size, so the deflate stream is
/// inflated straight into a buffer of exactly that size: no 32 KiB window to clear and copy
/// through, which is most of the cost of a 100-byte record. Returns None for anything else,
/// including every kind of damage and a stated size over `cap`, so the stock decoder decides
/// (and words the error).
fn gunzip_plain(data: &[u8], cap: usize) -> Option<Vec<u8>> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    thread_local! {
        /// Inflate state of this thread; `init` readies it for a new stream without clearing it.
        static INFLATER: RefCell<Option<Box<DecompressorOxide>>> = const { RefCell::new(None) };
    }
    let header = data.get(..10)?;
    if header[..4] != [0x1f, 0x8b, 8, 0] {
        return None;
    }
    let body = data.get(10..data.len().checked_sub(8)?)?;
    let trailer = data.get(data.len() - 8..)?;
    let crc = u32::from_le_bytes(trailer[..4].try_into().ok()?);
    let size = u32::from_le_bytes(trailer[4..].try_into().ok()?) as usize;
    if size > cap || size > MAX_PLAIN_OUTPUT || size > body.len().saturating_mul(MAX_DEFLATE_RATIO).saturating_add(64) {
        return None;
    }
    let mut out = vec![0u8; size];
    let (status, consumed, written) = INFLATER.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let d = slot.get_or_insert_with(Box::default);
        d.init();
        Some(decompress(d, body, &mut out, 0, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF))
    })?;
    if status != TINFLStatus::Done || consumed != body.len() || written != size {
        return None;
    }
    let mut check = Crc::new();
    check.update(&out);
    (check.sum() == crc).then_some(out)
}

/// The stock `flate2` stream decoder, reading at most `cap` bytes of output.
fn gunzip_stream(data: &[u8], cap: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(cap));
    let mut decoder = GzDecoder::new(data);
    let mut buf = [0u8; 32 << 10];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Frame(format!("bad gzip data: {e}"))),
        };
        if !extend_capped(&mut out, &buf[..n], cap) {
            return Err(too_large("gzip data, inflated,", cap));
        }
    }
}

/// A request body: gzip of the delimited operations.
pub fn encode_body<M: Message>(messages: &[M]) -> Vec<u8> {
    gzip(&encode_delimited(messages), Compression::fast())
}

/// A reply body without its gzip layer; a plain body is passed on without a copy.
pub fn plain_body(body: Bytes, gzipped: bool) -> Result<Bytes> {
    plain_body_capped(body, gzipped, MAX_INFLATED_BYTES)
}

/// [`plain_body`] inflating at most `cap` bytes.
pub fn plain_body_capped(body: Bytes, gzipped: bool, cap: usize) -> Result<Bytes> {
    if gzipped {
        Ok(Bytes::from(gunzip_capped(&body, cap)?))
    } else {
        Ok(body)
    }
}

/// Decodes a body, gunzipping it first when `gzipped`.
pub fn decode_body<M: Message + Default>(body: &[u8], gzipped: bool) -> Result<Vec<M>> {
    if gzipped {
        decode_delimited(&gunzip(body)?)
    } else {
        decode_delimited(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test inputs: empty, tiny, text-like, incompressible, and larger than the
    /// 32 KiB window.
    fn inputs() -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut noise = |n: usize| {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>()
        };
        let text: Vec<u8> = b"hey lunch tomorrow sounds good see you there (#1234) ".repeat(3000);
        vec![
            Vec::new(),
            b"a".to_vec(),
            b"\x08\x01\x12\x0bhello world".to_vec(),
            text[..150].to_vec(),
            text.clone(),
            noise(100),
            noise(70_000),
            [noise(40_000), text[..40_000].to_vec()].concat(),
        ]
    }

    #[test]
    fn gzip_matches_flate2_byte_for_byte_and_reuse_does_not_leak_state() {
        for round in 0..2 {
            for level in [Compression::fast(), Compression::default(), Compression::best()] {
                for (i, data) in inputs().iter().enumerate() {
                    assert!(gzip(data, level) == gzip_stream(data, level), "input {i}, level {level:?}, round {round}");
                }
            }
        }
    }

    #[test]
    fn inflating_past_the_cap_is_an_error_on_both_paths() {
        let data = vec![7u8; 100_000];
        let gz = gzip(&data, Compression::fast());
        assert_eq!(gunzip_capped(&gz, 100_000).unwrap(), data);
        for cap in [99_999, 1000, 0] {
            assert!(matches!(gunzip_capped(&gz, cap), Err(Error::TooLarge { cap: c, .. }) if c == cap), "cap {cap}");
        }
        // A damaged trailer sends the member down the streaming path, which is capped too.
        let mut odd = gz.clone();
        let n = odd.len();
        odd[n - 1] ^= 0x40;
        assert!(matches!(gunzip_capped(&odd, 1000), Err(Error::TooLarge { .. })));
        // A trailer claiming more than the cap allocates nothing of that size: the member goes
        // to the streaming path, which finds the real size within the cap.
        let small = gzip(b"hello", Compression::fast());
        let mut claims = small.clone();
        let n = claims.len();
        claims[n - 4..].copy_from_slice(&5000u32.to_le_bytes());
        assert!(gunzip_plain(&claims, 1000).is_none());
        assert_eq!(gunzip_capped(&small, 5).unwrap(), b"hello");
        assert!(matches!(gunzip_capped(&small, 4), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn extend_capped_never_grows_past_the_cap() {
        let mut out = Vec::new();
        for _ in 0..10 {
            assert!(extend_capped(&mut out, &[1; 100], 1000));
        }
        assert!(out.capacity() <= 1000, "capacity {}", out.capacity());
        assert!(!extend_capped(&mut out, &[1], 1000));
        assert_eq!(out.len(), 1000);
        assert!(!extend_capped(&mut Vec::new(), &[0; 10], 9));
    }

    #[test]
    fn gunzip_agrees_with_flate2_on_good_and_damaged_input() {
        for data in inputs() {
            let gz = gzip(&data, Compression::fast());
            assert!(gunzip(&gz).unwrap() == data);
            assert!(gunzip_plain(&gz, MAX_INFLATED_BYTES).as_deref() == Some(data.as_slice()), "fast path must take plain members ({} bytes)", data.len());
            let mut cases: Vec<Vec<u8>> = Vec::new();
            // Every truncation of short members, a sample of long ones.
            let step = (gz.len() / 200).max(1);
            cases.extend((0..gz.len()).step_by(step).map(|n| gz[..n].to_vec()));
            // Bit flips in the header, body and trailer.
            for pos in (0..gz.len()).step_by(step) {
                let mut bad = gz.clone();
                bad[pos] ^= 0x10;
                cases.push(bad);
            }
            // Trailing data, a second member, flags the fast path leaves to flate2.
            cases.push([gz.clone(), vec![0]].concat());
            cases.push([gz.clone(), gz.clone()].concat());
            let mut named = gz.clone();
            named[3] = 8; // FNAME
            named.splice(10..10, b"name\0".iter().copied());
            cases.push(named);
            for (i, case) in cases.iter().enumerate() {
                match (gunzip(case), gunzip_stream(case, MAX_INFLATED_BYTES)) {
                    (Ok(a), Ok(b)) => assert!(a == b, "case {i}: different output"),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "case {i}"),
                    (a, b) => panic!("case {i}: fast path ok={} but flate2 ok={}", a.is_ok(), b.is_ok()),
                }
            }
        }
    }
}
