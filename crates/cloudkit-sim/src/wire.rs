//! The simulator's side of CloudKit's HTTP body framing and operation results, written apart
//! from the client crate's framing and result code so that a misreading of the format
//! on one side fails the tests instead of being shared.
//!
//! A request body is gzip (when `content-encoding: gzip`) of `RequestOperation`s, each prefixed
//! with its length as an unsigned LEB128 varint; a reply body is the same with
//! `ResponseOperation`s. Decompression is capped: a gateway does not inflate a bomb.

use std::io::{Read, Write};

use bytes::Bytes;
use cloudkit::proto::{self, RequestOperation, ResponseOperation};
use flate2::{read::GzDecoder, write::GzEncoder, Compress, Compression, Crc, FlushCompress, Status};
use prost::Message;

/// The most a request body may inflate to. The bridge's requests are a few hundred bytes.
pub const MAX_REQUEST_BYTES: u64 = 4 << 20;

/// `ResponseOperation.Result.Code` values.
const CODE_SUCCESS: i32 = 1;
const CODE_FAILURE: i32 = 3;

/// Reads a request body into its operations.
pub fn read_request(body: &[u8], gzipped: bool) -> Result<Vec<RequestOperation>, String> {
    let plain = if gzipped {
        let mut out = Vec::new();
        GzDecoder::new(body).take(MAX_REQUEST_BYTES + 1).read_to_end(&mut out).map_err(|e| format!("request body is not gzip: {e}"))?;
        if out.len() as u64 > MAX_REQUEST_BYTES {
            return Err(format!("request body inflates past {MAX_REQUEST_BYTES} bytes"));
        }
        out
    } else {
        body.to_vec()
    };
    let mut rest = plain.as_slice();
    let mut ops = Vec::new();
    while !rest.is_empty() {
        let len = read_uleb128(&mut rest).ok_or("bad operation length prefix")?;
        let len = usize::try_from(len).map_err(|_| "operation length prefix too large")?;
        if len > rest.len() {
            return Err(format!("operation of {len} bytes but only {} left", rest.len()));
        }
        let (op, tail) = rest.split_at(len);
        ops.push(RequestOperation::decode(op).map_err(|e| format!("bad RequestOperation: {e}"))?);
        rest = tail;
    }
    Ok(ops)
}

/// Reads an unsigned LEB128 varint of at most ten bytes from the front of `buf`.
fn read_uleb128(buf: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Appends `len` as an unsigned LEB128 varint.
pub fn write_uleb128(out: &mut Vec<u8>, mut len: u64) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends one length-prefixed message.
pub fn write_delimited(out: &mut Vec<u8>, message: &impl Message) {
    write_uleb128(out, message.encoded_len() as u64);
    // Encoding into a Vec cannot run out of space.
    let _ = message.encode(out);
}

thread_local! {
    /// This thread's raw-deflate state, reset between members: a fresh one is hundreds of
    /// kilobytes of zeroed memory, far more work than deflating a record's few hundred bytes.
    static DEFLATE: std::cell::RefCell<Vec<(u32, Compress)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gzips a reply body: one member, a bare 10-byte header.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_at(data, Compression::fast())
}

/// Gzips a record's `msgProto` or `cm` as stored blocks: a valid member the client must inflate
/// like any other, without the per-record cost of building Huffman tables (the reply body around
/// the records is compressed anyway, and that is where the bytes shrink).
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    gzip_at(data, Compression::none())
}

fn gzip_at(data: &[u8], level: Compression) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    let deflated = DEFLATE.with(|cell| {
        let Ok(mut states) = cell.try_borrow_mut() else { return false };
        let i = match states.iter().position(|(l, _)| *l == level.level()) {
            Some(i) => i,
            None => {
                states.push((level.level(), Compress::new(level, false)));
                states.len() - 1
            }
        };
        let c = &mut states[i].1;
        c.reset();
        loop {
            out.reserve(256);
            let Some(rest) = data.get(c.total_in() as usize..) else { return false };
            match c.compress_vec(rest, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    });
    if !deflated {
        let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), level);
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(data);
        return enc.finish().unwrap_or_default();
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// The success result of an operation.
pub fn success() -> proto::OperationResult {
    proto::OperationResult { code: Some(CODE_SUCCESS), error: None }
}

/// A failed operation: a client error (the request was wrong), a server error, or both.
pub fn failure(client: Option<i32>, server: Option<i32>, retry_after: Option<i32>, description: &str) -> proto::OperationResult {
    proto::OperationResult {
        code: Some(CODE_FAILURE),
        error: Some(proto::ResultError {
            client_error: client.map(|c| proto::ClientError { r#type: Some(c) }),
            server_error: server.map(|s| proto::ServerError { r#type: Some(s) }),
            retry_after_seconds: retry_after,
            error_description: Some(description.to_string()),
        }),
    }
}

/// What a damaged change is served as: a record identifier field whose length runs past the end.
pub const DAMAGED_CHANGE: &[u8] = &[0x0a, 0x7f, 0x01];

/// The length-delimited reply stream. A reply with damaged changes goes out through the
/// wire-compatible raw view, with [`DAMAGED_CHANGE`] in place of those changes.
pub fn encode_replies(replies: &[(ResponseOperation, Vec<usize>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (reply, damaged) in replies {
        // Writing into a Vec cannot run out of space.
        match (&reply.retrieve_changes_response, damaged.is_empty()) {
            (Some(page), false) => {
                let change = page
                    .change
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if damaged.contains(&i) { Bytes::from_static(DAMAGED_CHANGE) } else { Bytes::from(c.encode_to_vec()) })
                    .collect();
                let raw = proto::ResponseOperationRaw {
                    response: reply.response.clone(),
                    result: reply.result.clone(),
                    retrieve_changes_response: Some(proto::RetrieveChangesResponseRaw {
                        change,
                        sync_continuation_token: page.sync_continuation_token.clone(),
                        status: page.status,
                    }),
                };
                write_delimited(&mut out, &raw);
            }
            _ => write_delimited(&mut out, reply),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uleb128_roundtrip_and_limits() {
        for n in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            write_uleb128(&mut out, n);
            let mut slice = out.as_slice();
            assert_eq!(read_uleb128(&mut slice), Some(n));
            assert!(slice.is_empty());
        }
        assert_eq!(read_uleb128(&mut [0x80u8, 0x80].as_slice()), None, "unterminated");
        assert_eq!(read_uleb128(&mut [0xffu8; 11].as_slice()), None, "longer than ten bytes");
    }

    #[test]
    fn request_bodies_decode_and_damage_is_an_error() {
        let op = RequestOperation {
            zone_retrieve_request: Some(proto::ZoneRetrieveRequest { zone_identifier: Some(proto::zone_id("z", "_u")) }),
            ..Default::default()
        };
        let mut plain = Vec::new();
        write_delimited(&mut plain, &op);
        write_delimited(&mut plain, &op);
        assert_eq!(read_request(&plain, false).unwrap(), vec![op.clone(), op.clone()]);
        assert_eq!(read_request(&gzip(&plain), true).unwrap().len(), 2);
        assert!(read_request(&plain[..plain.len() - 1], false).is_err(), "truncated operation");
        assert!(read_request(&plain, true).is_err(), "not gzip");
        for data in [Vec::new(), b"abc".to_vec(), plain.repeat(500)] {
            for member in [gzip(&data), gzip_stored(&data), gzip(&data)] {
                let mut back = Vec::new();
                GzDecoder::new(member.as_slice()).read_to_end(&mut back).unwrap();
                assert_eq!(back, data, "a reused deflate state gives a valid member each time");
            }
        }
        let bomb = gzip(&vec![0u8; MAX_REQUEST_BYTES as usize + 10]);
        assert!(read_request(&bomb, true).unwrap_err().contains("inflates past"));
    }
}
