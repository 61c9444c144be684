//! The simulator's side of CloudKit's HTTP body framing and operation results, written apart
//! from the client crate's framing and result code so that a misreading of the format
//! on one side fails the tests instead of being shared.
//!
//! A request body is gzip (when `content-encoding: gzip`) of `RequestOperation`s, each prefixed
//! with its length as an unsigned LEB128 varint; a reply body is the same with
//! `ResponseOperation`s. Decompression is capped: a gateway does not inflate a bomb.

use std::io::{Read, Write};

use cloudkit::proto::{self, RequestOperation};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
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
        GzDecoder::new(body)
            .take(MAX_REQUEST_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("request body is not gzip: {e}"))?;
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

/// Gzips a reply body (or a record's `msgProto` / `cm`).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
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
        let bomb = gzip(&vec![0u8; MAX_REQUEST_BYTES as usize + 10]);
        assert!(read_request(&bomb, true).unwrap_err().contains("inflates past"));
    }
}
