//! Reading a property list into a [`plist::Value`] with bounded work.
//!
//! Why not `plist::Value::from_reader`: a binary plist names its children by index into one
//! object table, so one object may be referenced many times, and the reader expands every
//! reference. A few hundred bytes that reference the previous level twice per level describe a
//! tree of 2^N values, and dropping a value nested a hundred thousand levels deep recurses once
//! per level. So this module consumes plist's own event stream (the plist crate still does all the
//! parsing) and builds the value itself under caps on depth, events and expanded bytes.

use std::io::Cursor;

use plist::stream::{BinaryReader, Event, OwnedEvent, XmlReader};
use plist::{Dictionary, Value};

use super::MAX_PLIST_BYTES;
use crate::{Blob, Error};

/// The deepest nesting of arrays and dictionaries accepted. Apple's summary infos nest four
/// levels, keyed archives three.
const MAX_DEPTH: usize = 32;
/// The most events (values, starts and ends of collections) accepted.
const MAX_EVENTS: usize = 1 << 18;
/// The most bytes of strings and data accepted after reference expansion.
const MAX_EXPANDED_BYTES: usize = 4 * MAX_PLIST_BYTES;

/// Reads a binary (`bplist00`) or XML property list.
pub(crate) fn read(bytes: &[u8], blob: Blob) -> Result<Value, Error> {
    if bytes.len() > MAX_PLIST_BYTES {
        return Err(Error::TooLarge { blob, len: bytes.len(), max: MAX_PLIST_BYTES });
    }
    if bytes.starts_with(b"bplist") {
        build(BinaryReader::new(Cursor::new(bytes)), blob)
    } else {
        build(XmlReader::new(Cursor::new(bytes)), blob)
    }
}

/// A collection being built.
enum Frame {
    Array(Vec<Value>),
    /// A dictionary and, between a key and its value, the key.
    Dict(Dictionary, Option<String>),
}

fn build<I>(events: I, blob: Blob) -> Result<Value, Error>
where
    I: Iterator<Item = Result<OwnedEvent, plist::Error>>,
{
    let limit = |limit| Error::Limit { blob, limit };
    let mut stack: Vec<Frame> = Vec::new();
    let mut expanded = 0usize;
    for (count, event) in events.enumerate() {
        if count >= MAX_EVENTS {
            return Err(limit("number of plist objects"));
        }
        let event = event.map_err(|e| Error::Plist { blob, source: Box::new(e) })?;
        let value = match event {
            Event::StartArray(_) | Event::StartDictionary(_) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(limit("plist nesting depth"));
                }
                stack.push(match event {
                    Event::StartArray(_) => Frame::Array(Vec::new()),
                    _ => Frame::Dict(Dictionary::new(), None),
                });
                continue;
            }
            Event::EndCollection => match stack.pop() {
                Some(Frame::Array(array)) => Value::Array(array),
                Some(Frame::Dict(dict, None)) => Value::Dictionary(dict),
                Some(Frame::Dict(_, Some(key))) => return Err(Error::shape(blob, format!("plist key {key:?} has no value"))),
                None => return Err(Error::shape(blob, "plist closes a collection it never opened")),
            },
            Event::Boolean(b) => Value::Boolean(b),
            Event::Data(data) => {
                expanded = expanded.saturating_add(data.len());
                Value::Data(data.into_owned())
            }
            Event::Date(date) => Value::Date(date),
            Event::Integer(integer) => Value::Integer(integer),
            Event::Real(real) => Value::Real(real),
            Event::String(string) => {
                expanded = expanded.saturating_add(string.len());
                Value::String(string.into_owned())
            }
            Event::Uid(uid) => Value::Uid(uid),
            _ => return Err(Error::shape(blob, "plist holds a kind of value this decoder does not know")),
        };
        if expanded > MAX_EXPANDED_BYTES {
            return Err(limit("expanded plist size"));
        }
        match stack.last_mut() {
            // The root is complete; plist's readers end the stream after it.
            None => return Ok(value),
            Some(Frame::Array(array)) => array.push(value),
            Some(Frame::Dict(_, key @ None)) => match value {
                Value::String(k) => *key = Some(k),
                _ => return Err(Error::shape(blob, "plist dictionary key is not a string")),
            },
            Some(Frame::Dict(dict, key @ Some(_))) => {
                if let Some(k) = key.take() {
                    dict.insert(k, value);
                }
            }
        }
    }
    Err(Error::shape(blob, "plist ends before its root value is complete"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary plist of `levels` arrays, each holding the next one twice: 2^levels leaves from
    /// a few hundred bytes.
    fn doubling(levels: u8) -> Vec<u8> {
        let mut body = Vec::new();
        let mut offsets = Vec::new();
        for level in 0..levels {
            offsets.push(8 + body.len());
            // An array of two refs to the next object.
            body.extend_from_slice(&[0xA2, level + 1, level + 1]);
        }
        offsets.push(8 + body.len());
        body.push(0x09); // true
        let mut out = b"bplist00".to_vec();
        out.extend_from_slice(&body);
        let table = out.len();
        for offset in &offsets {
            out.extend_from_slice(&u16::try_from(*offset).unwrap().to_be_bytes());
        }
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 2, 1]);
        out.extend_from_slice(&(offsets.len() as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&(table as u64).to_be_bytes());
        out
    }

    #[test]
    fn small_doubling_plist_is_read() {
        let value = read(&doubling(3), Blob::SummaryInfo).unwrap();
        let mut depth = 0;
        let mut v = &value;
        while let Value::Array(items) = v {
            assert_eq!(items.len(), 2);
            v = &items[0];
            depth += 1;
        }
        assert_eq!(depth, 3);
        assert_eq!(v, &Value::Boolean(true));
    }

    #[test]
    fn exponential_expansion_is_refused() {
        // 30 levels deep is within MAX_DEPTH, but would expand to 2^30 leaves.
        assert!(matches!(read(&doubling(30), Blob::SummaryInfo), Err(Error::Limit { .. })));
    }

    #[test]
    fn deep_nesting_is_refused() {
        assert!(matches!(read(&doubling(100), Blob::SummaryInfo), Err(Error::Limit { .. })));
    }
}
