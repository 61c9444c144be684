//! CloudKit's HTTP body framing: a sequence of protobuf messages, each prefixed with its length as
//! an unsigned LEB128 varint, the whole body gzipped once (`content-encoding: gzip`). Replies use
//! the same delimiting and may or may not be gzipped.

use std::io::{Read, Write};

use flate2::{read::GzDecoder, write::GzEncoder, Compression};
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
pub fn decode_delimited<M: Message + Default>(mut body: &[u8]) -> Result<Vec<M>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = prost::decode_length_delimiter(&mut body)
            .map_err(|e| Error::Frame(format!("bad length prefix: {e}")))?;
        if len > body.len() {
            return Err(Error::Frame(format!("message of {len} bytes but only {} left", body.len())));
        }
        let (msg, rest) = body.split_at(len);
        out.push(M::decode(msg).map_err(|e| Error::Frame(format!("bad protobuf message: {e}")))?);
        body = rest;
    }
    Ok(out)
}

pub fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 3 + 64), level);
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

pub fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3);
    GzDecoder::new(data).read_to_end(&mut out).map_err(|e| Error::Frame(format!("bad gzip data: {e}")))?;
    Ok(out)
}

/// A request body: gzip of the delimited operations.
pub fn encode_body<M: Message>(messages: &[M]) -> Vec<u8> {
    gzip(&encode_delimited(messages), Compression::fast())
}

/// Decodes a body, gunzipping it first when `gzipped`.
pub fn decode_body<M: Message + Default>(body: &[u8], gzipped: bool) -> Result<Vec<M>> {
    if gzipped {
        decode_delimited(&gunzip(body)?)
    } else {
        decode_delimited(body)
    }
}
