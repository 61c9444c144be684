//! A binary property list writer that lays objects out as Apple's CoreFoundation writer does.
//!
//! Why not `plist`'s own writer: it assigns every child of a collection its object number before
//! descending (breadth first), while CoreFoundation numbers objects depth first, so its output
//! is a valid plist but never Apple's bytes. The simulator serves Apple's layout, which also
//! keeps the bridge's reader honest about references that point forward and back. The values
//! are `plist::Value`s (dictionaries keep their insertion order); only the layout is written
//! here, from the `bplist00` format:
//!
//! - objects are numbered depth first from the root: a collection, then (for a dictionary) all
//!   its keys, then each value with everything under it, (for an array) each element likewise;
//! - strings, numbers, reals, dates and data are written once and shared by every equal
//!   occurrence; a repeated boolean or UID is written again each time but every reference goes to
//!   its first copy (CoreFoundation appends it, then finds the first in its table; `URL.plist`
//!   carries such unreferenced copies); arrays and dictionaries are never shared;
//! - integers take 1, 2, 4 or 8 bytes (8 for negatives), a string is ASCII or UTF-16BE, a count
//!   of 15 or more follows its marker as an integer object;
//! - the trailer names the offset size (bytes for the offset table's own offset) and the
//!   reference size (bytes for the object count).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use plist::{Integer, Value};

use super::ContentError;

/// A property list to write: `plist::Value`s, and the one thing they cannot say.
#[derive(Debug, Clone, PartialEq)]
pub enum Plist {
    /// Any value (its arrays and dictionaries are laid out like the variants below).
    Value(Value),
    /// A string written as an object of its own, not shared with an equal string: what
    /// CoreFoundation does for a string whose hash differs from an equal one's (in `URL.plist`,
    /// the `$classes` names of LinkPresentation's classes).
    DistinctString(String),
    /// An array.
    Array(Vec<Plist>),
    /// A dictionary, in this order.
    Dictionary(Vec<(String, Plist)>),
}

impl From<Value> for Plist {
    fn from(value: Value) -> Self {
        Plist::Value(value)
    }
}

/// Encodes `value` as a binary plist in CoreFoundation's layout.
pub fn to_bytes(value: &Value) -> Result<Vec<u8>, ContentError> {
    let mut flat = Flattener::default();
    flat.visit(value)?;
    Ok(flat.write())
}

/// Encodes `plist` as a binary plist in CoreFoundation's layout.
pub fn write(plist: &Plist) -> Result<Vec<u8>, ContentError> {
    let mut flat = Flattener::default();
    flat.visit_node(plist)?;
    Ok(flat.write())
}

impl Flattener {
    /// The plist of the objects numbered so far, the first being the root.
    fn write(self) -> Vec<u8> {
        let count = self.objects.len();
        let ref_size = byte_count(count as u64);

        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"bplist00");
        let mut offsets = Vec::with_capacity(count);
        for object in &self.objects {
            offsets.push(out.len() as u64);
            write_object(&mut out, object, ref_size);
        }
        let table_offset = out.len() as u64;
        let offset_size = byte_count(table_offset);
        for offset in offsets {
            write_sized(&mut out, offset, offset_size);
        }
        // Trailer: 5 unused bytes, the sort version, the two sizes, then three big-endian u64s.
        out.extend_from_slice(&[0; 6]);
        out.push(offset_size);
        out.push(ref_size);
        out.extend_from_slice(&(count as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&table_offset.to_be_bytes());
        out
    }
}

/// A scalar by value, for sharing equal ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scalar {
    Boolean(bool),
    Integer(i128),
    Real(u64),
    Date(u64),
    Data(Vec<u8>),
    String(String),
    Uid(u64),
}

/// One object of the object table.
enum Object {
    Scalar(Scalar),
    Array(Vec<usize>),
    Dictionary(Vec<usize>, Vec<usize>),
}

#[derive(Default)]
struct Flattener {
    objects: Vec<Object>,
    shared: HashMap<Scalar, usize>,
}

impl Flattener {
    /// Numbers `value` and everything under it; returns its object number.
    fn visit(&mut self, value: &Value) -> Result<usize, ContentError> {
        let scalar = match value {
            Value::Array(items) => {
                let index = self.reserve();
                let refs = items.iter().map(|item| self.visit(item)).collect::<Result<Vec<_>, _>>()?;
                self.objects[index] = Object::Array(refs);
                return Ok(index);
            }
            Value::Dictionary(dict) => {
                let index = self.reserve();
                let keys = dict.keys().map(|key| self.scalar(Scalar::String(key.clone()))).collect::<Vec<_>>();
                let values = dict.values().map(|value| self.visit(value)).collect::<Result<Vec<_>, _>>()?;
                self.objects[index] = Object::Dictionary(keys, values);
                return Ok(index);
            }
            Value::Boolean(value) => Scalar::Boolean(*value),
            Value::Integer(value) => Scalar::Integer(integer(*value)?),
            Value::Real(value) => Scalar::Real(value.to_bits()),
            Value::Date(date) => Scalar::Date(plist_seconds(*date).to_bits()),
            Value::Data(data) => Scalar::Data(data.clone()),
            Value::String(text) => Scalar::String(text.clone()),
            Value::Uid(uid) => Scalar::Uid(uid.get()),
            _ => return Err(ContentError::invalid("a plist value of an unknown kind")),
        };
        Ok(self.scalar(scalar))
    }

    /// Numbers `node` and everything under it; returns its object number.
    fn visit_node(&mut self, node: &Plist) -> Result<usize, ContentError> {
        match node {
            Plist::Value(value) => self.visit(value),
            Plist::DistinctString(text) => {
                self.objects.push(Object::Scalar(Scalar::String(text.clone())));
                Ok(self.objects.len() - 1)
            }
            Plist::Array(items) => {
                let index = self.reserve();
                let refs = items.iter().map(|item| self.visit_node(item)).collect::<Result<Vec<_>, _>>()?;
                self.objects[index] = Object::Array(refs);
                Ok(index)
            }
            Plist::Dictionary(entries) => {
                let index = self.reserve();
                let keys = entries.iter().map(|(key, _)| self.scalar(Scalar::String(key.clone()))).collect::<Vec<_>>();
                let values = entries.iter().map(|(_, value)| self.visit_node(value)).collect::<Result<Vec<_>, _>>()?;
                self.objects[index] = Object::Dictionary(keys, values);
                Ok(index)
            }
        }
    }

    fn reserve(&mut self) -> usize {
        self.objects.push(Object::Array(Vec::new()));
        self.objects.len() - 1
    }

    fn scalar(&mut self, scalar: Scalar) -> usize {
        if let Some(&index) = self.shared.get(&scalar) {
            if matches!(scalar, Scalar::Boolean(_) | Scalar::Uid(_)) {
                // CoreFoundation unique-checks only strings, numbers, dates and data: a repeated
                // boolean or UID is written again, yet references go to its first copy.
                self.objects.push(Object::Scalar(scalar));
            }
            return index;
        }
        let index = self.objects.len();
        self.shared.insert(scalar.clone(), index);
        self.objects.push(Object::Scalar(scalar));
        index
    }
}

/// A plist integer as one number (it is an i64 or a u64).
fn integer(value: Integer) -> Result<i128, ContentError> {
    value
        .as_signed()
        .map(i128::from)
        .or_else(|| value.as_unsigned().map(i128::from))
        .ok_or_else(|| ContentError::invalid("an integer that is neither i64 nor u64"))
}

/// Seconds from 2001-01-01T00:00:00Z, the plist epoch, to `date`.
fn plist_seconds(date: plist::Date) -> f64 {
    /// Seconds from the Unix epoch to the plist epoch.
    const PLIST_EPOCH_UNIX: f64 = 978_307_200.0;
    let unix = match SystemTime::from(date).duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    unix - PLIST_EPOCH_UNIX
}

/// How many bytes `value` needs (at least one).
fn byte_count(value: u64) -> u8 {
    match value {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

fn write_sized(out: &mut Vec<u8>, value: u64, size: u8) {
    let bytes = value.to_be_bytes();
    out.extend_from_slice(&bytes[bytes.len() - usize::from(size)..]);
}

/// A marker with its count: in the low nibble, or `0xF` and an integer object after.
fn write_marker(out: &mut Vec<u8>, kind: u8, count: usize) {
    if count < 15 {
        out.push(kind | count as u8);
    } else {
        out.push(kind | 0x0f);
        write_unsigned(out, count as u64);
    }
}

fn write_unsigned(out: &mut Vec<u8>, value: u64) {
    let size = byte_count(value);
    // 1, 2, 4, 8 bytes are markers 0x10..=0x13.
    out.push(0x10 | size.trailing_zeros() as u8);
    write_sized(out, value, size);
}

fn write_object(out: &mut Vec<u8>, object: &Object, ref_size: u8) {
    match object {
        Object::Array(refs) => {
            write_marker(out, 0xa0, refs.len());
            for &r in refs {
                write_sized(out, r as u64, ref_size);
            }
        }
        Object::Dictionary(keys, values) => {
            write_marker(out, 0xd0, keys.len());
            for &r in keys.iter().chain(values) {
                write_sized(out, r as u64, ref_size);
            }
        }
        Object::Scalar(scalar) => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut Vec<u8>, scalar: &Scalar) {
    match scalar {
        Scalar::Boolean(false) => out.push(0x08),
        Scalar::Boolean(true) => out.push(0x09),
        Scalar::Integer(value) => match (i64::try_from(*value), u64::try_from(*value)) {
            (Ok(negative), Err(_)) => {
                out.push(0x13);
                out.extend_from_slice(&negative.to_be_bytes());
            }
            (Ok(_), Ok(small)) => write_unsigned(out, small),
            _ => {
                // Above i64::MAX CoreFoundation writes a 16-byte integer.
                out.push(0x14);
                out.extend_from_slice(&value.to_be_bytes());
            }
        },
        Scalar::Real(bits) => {
            out.push(0x23);
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Scalar::Date(bits) => {
            out.push(0x33);
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Scalar::Data(data) => {
            write_marker(out, 0x40, data.len());
            out.extend_from_slice(data);
        }
        Scalar::String(text) if text.is_ascii() => {
            write_marker(out, 0x50, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Scalar::String(text) => {
            let units: Vec<u16> = text.encode_utf16().collect();
            write_marker(out, 0x60, units.len());
            for unit in units {
                out.extend_from_slice(&unit.to_be_bytes());
            }
        }
        Scalar::Uid(value) => {
            let size = byte_count(*value);
            out.push(0x80 | (size - 1));
            write_sized(out, *value, size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::{Dictionary, Uid};

    fn round_trip(value: &Value) -> Value {
        let bytes = to_bytes(value).unwrap();
        plist::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn objects_are_numbered_depth_first_with_keys_before_values() {
        let mut inner = Dictionary::new();
        inner.insert("k".into(), Value::from(1));
        let mut root = Dictionary::new();
        root.insert("a".into(), Value::Dictionary(inner));
        root.insert("b".into(), Value::from(1));
        let bytes = to_bytes(&Value::Dictionary(root)).unwrap();
        // 0 root, 1 "a", 2 "b", 3 inner dict, 4 "k", 5 the integer 1 (shared by "b").
        assert_eq!(&bytes[8..11], &[0xd2, 0x01, 0x02]);
        assert_eq!(&bytes[11..13], &[0x03, 0x05]);
    }

    #[test]
    fn every_kind_of_value_reads_back() {
        let mut dict = Dictionary::new();
        dict.insert("ascii".into(), Value::from("hello"));
        dict.insert("utf16".into(), Value::from("h\u{e9}llo \u{1f600}"));
        dict.insert("long".into(), Value::from("x".repeat(300)));
        dict.insert("negative".into(), Value::from(-5));
        dict.insert("big".into(), Value::from(u64::MAX));
        dict.insert("wide".into(), Value::from(70_000));
        dict.insert("real".into(), Value::Real(690513474.2725511));
        dict.insert("data".into(), Value::Data(vec![1; 20]));
        dict.insert("uid".into(), Value::Uid(Uid::new(300)));
        dict.insert("yes".into(), Value::Boolean(true));
        dict.insert("array".into(), Value::Array((0..20).map(Value::from).collect()));
        let value = Value::Dictionary(dict);
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn repeated_uids_are_written_again_but_referenced_once() {
        let uid = || Value::Uid(Uid::new(7));
        let value = Value::Array(vec![uid(), uid()]);
        let bytes = to_bytes(&value).unwrap();
        // 0 the array (both references to 1), 1 the UID, 2 its unreferenced copy.
        assert_eq!(&bytes[8..11], &[0xa2, 0x01, 0x01]);
        assert_eq!(&bytes[11..15], &[0x80, 0x07, 0x80, 0x07]);
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn distinct_strings_are_not_shared() {
        let node = Plist::Array(vec![Value::from("a").into(), Plist::DistinctString("a".into()), Value::from("a").into()]);
        let bytes = write(&node).unwrap();
        assert_eq!(&bytes[8..12], &[0xa3, 0x01, 0x02, 0x01]);
        let value: Value = plist::from_bytes(&bytes).unwrap();
        assert_eq!(value, Value::Array(vec!["a".into(), "a".into(), "a".into()]));
    }

    #[test]
    fn many_objects_widen_references() {
        let value = Value::Array((0..300).map(Value::from).collect());
        let bytes = to_bytes(&value).unwrap();
        assert_eq!(bytes[bytes.len() - 25], 2, "reference size");
        assert_eq!(round_trip(&value), value);
    }
}
