//! A writer for NeXTSTEP/Apple typedstreams (`NSArchiver`), the format of `attributedBody`.
//!
//! Written from the format itself (the NeXT `typedstream` layout as python-typedstream and
//! crabstep document it) and checked byte for byte against archives Messages wrote:
//!
//! - header: streamer version 4, the signature `streamtyped` (little-endian), system version 1000;
//! - integers: one byte when in `-110..=127`, else `0x81` + i16 or `0x82` + i32, little-endian (the
//!   bytes `0x80..=0x91` are tags: `0x84` new, `0x85` nil, `0x86` end of object);
//! - two reference tables, each numbered from 0 and referred to by the integer `index - 110`
//!   (so the first entries are the bytes `0x92`, `0x93`, …):
//!   - shared strings: type encodings and class names, and the text of C strings;
//!   - objects: every object (its slot taken when its `0x84` is read, before its class), every
//!     class of a class chain, and every C string value;
//! - a value group: its type encoding (a shared string), then the values;
//! - an object: `0x84`, its class chain (each new class `0x84` name version, until a known class
//!   is referenced or `0x85` ends the chain at a root class), its value groups, `0x86`.
//!
//! An object written a second time is a reference into the object table; the callers decide
//! which values are one object (Apple shares by pointer identity).

use std::collections::HashMap;

use super::ContentError;

/// The streamer version Apple writes.
const STREAMER_VERSION: u8 = 4;
/// The signature of a little-endian typedstream.
const SIGNATURE: &[u8] = b"streamtyped";
/// The system version of every Mac OS X/macOS archive.
const SYSTEM_VERSION: i64 = 1000;

/// A 2-byte integer follows.
const TAG_INT16: u8 = 0x81;
/// A 4-byte integer follows.
const TAG_INT32: u8 = 0x82;
/// A new object, class, shared string or C string follows.
const TAG_NEW: u8 = 0x84;
/// Nil; also ends a class chain at a root class.
const TAG_NIL: u8 = 0x85;
/// The end of an object.
const TAG_END: u8 = 0x86;
/// The number by which reference `0` is written.
const FIRST_REFERENCE: i64 = -110;

/// A class in a chain: its name and the version its `encodeWithCoder:` writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Class {
    pub name: &'static str,
    pub version: i64,
}

pub(crate) const NS_OBJECT: Class = Class { name: "NSObject", version: 0 };

/// An index into the object table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectIndex(i64);

/// A typedstream being written.
pub(crate) struct TypedStream {
    out: Vec<u8>,
    /// Shared strings by their bytes.
    strings: HashMap<Vec<u8>, i64>,
    /// The next free object-table index.
    next_object: i64,
    /// Classes in the object table, by name.
    classes: HashMap<&'static str, i64>,
    /// C string values in the object table, by their text.
    c_strings: HashMap<Vec<u8>, i64>,
}

impl TypedStream {
    /// A stream holding only the header.
    pub fn new() -> Result<Self, ContentError> {
        let mut stream =
            TypedStream { out: Vec::with_capacity(256), strings: HashMap::new(), next_object: 0, classes: HashMap::new(), c_strings: HashMap::new() };
        stream.out.push(STREAMER_VERSION);
        stream.raw_bytes(SIGNATURE)?;
        stream.int(SYSTEM_VERSION)?;
        Ok(stream)
    }

    /// The archive's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    /// An integer in the typedstream's variable-length form.
    pub fn int(&mut self, value: i64) -> Result<(), ContentError> {
        if (FIRST_REFERENCE..=127).contains(&value) {
            // In range, so the cast keeps the value.
            self.out.push(value as i8 as u8);
        } else if let Ok(value) = i16::try_from(value) {
            self.out.push(TAG_INT16);
            self.out.extend_from_slice(&value.to_le_bytes());
        } else if let Ok(value) = i32::try_from(value) {
            self.out.push(TAG_INT32);
            self.out.extend_from_slice(&value.to_le_bytes());
        } else {
            return Err(ContentError::out_of_range("typedstream integer", value));
        }
        Ok(())
    }

    /// An unsigned value counted by `usize` (a length), as an integer.
    pub fn length(&mut self, value: usize) -> Result<(), ContentError> {
        let value = i32::try_from(value).map_err(|_| ContentError::out_of_range("typedstream length", value as u64))?;
        self.int(i64::from(value))
    }

    /// A byte string with its length before it (the `+` type, and the body of a new string).
    fn raw_bytes(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        self.length(bytes.len())?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// A reference to entry `index` of a table.
    fn reference(&mut self, index: i64) -> Result<(), ContentError> {
        self.int(index + FIRST_REFERENCE)
    }

    /// A shared string: new the first time, a reference after.
    fn shared_string(&mut self, text: &[u8]) -> Result<(), ContentError> {
        if let Some(&index) = self.strings.get(text) {
            return self.reference(index);
        }
        let index = self.strings.len() as i64;
        self.strings.insert(text.to_vec(), index);
        self.out.push(TAG_NEW);
        self.raw_bytes(text)
    }

    /// The type encoding that starts a value group (`@`, `+`, `iI`, …).
    pub fn types(&mut self, encoding: &str) -> Result<(), ContentError> {
        self.shared_string(encoding.as_bytes())
    }

    /// The value of a `+` group: bytes with their length.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        self.raw_bytes(bytes)
    }

    /// The value of a `c` group: one byte, written as is.
    pub fn char(&mut self, value: u8) {
        self.out.push(value);
    }

    /// The value of a `*` group: a C string, which takes an object-table slot the first time and
    /// is referenced after (Apple shares C strings by pointer; the same text is the same pointer
    /// for the constant type strings written here).
    pub fn c_string(&mut self, text: &str) -> Result<(), ContentError> {
        if let Some(&index) = self.c_strings.get(text.as_bytes()) {
            return self.reference(index);
        }
        let index = self.take_object_slot();
        self.c_strings.insert(text.as_bytes().to_vec(), index);
        self.out.push(TAG_NEW);
        self.shared_string(text.as_bytes())
    }

    /// Starts a new object of the class `chain` (the class first, its superclasses after, down to
    /// a root class); the caller writes its value groups and then [`TypedStream::end_object`].
    pub fn begin_object(&mut self, chain: &[Class]) -> Result<ObjectIndex, ContentError> {
        self.out.push(TAG_NEW);
        let index = self.take_object_slot();
        self.class_chain(chain)?;
        Ok(ObjectIndex(index))
    }

    /// Ends the object begun last.
    pub fn end_object(&mut self) {
        self.out.push(TAG_END);
    }

    /// A reference to an object written before.
    pub fn object_ref(&mut self, object: ObjectIndex) -> Result<(), ContentError> {
        self.reference(object.0)
    }

    fn take_object_slot(&mut self) -> i64 {
        let index = self.next_object;
        self.next_object += 1;
        index
    }

    fn class_chain(&mut self, chain: &[Class]) -> Result<(), ContentError> {
        for class in chain {
            if let Some(&index) = self.classes.get(class.name) {
                return self.reference(index);
            }
            self.out.push(TAG_NEW);
            let index = self.take_object_slot();
            self.classes.insert(class.name, index);
            self.shared_string(class.name.as_bytes())?;
            self.int(class.version)?;
        }
        // The chain ended at a root class written anew.
        self.out.push(TAG_NIL);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_bytes(value: i64) -> Vec<u8> {
        let mut stream = TypedStream::new().unwrap();
        let header = stream.out.len();
        stream.int(value).unwrap();
        stream.out[header..].to_vec()
    }

    #[test]
    fn header_is_apples() {
        let stream = TypedStream::new().unwrap();
        assert_eq!(stream.finish(), b"\x04\x0bstreamtyped\x81\xe8\x03");
    }

    #[test]
    fn integers_avoid_the_tag_bytes() {
        assert_eq!(int_bytes(0), [0x00]);
        assert_eq!(int_bytes(127), [0x7f]);
        assert_eq!(int_bytes(-1), [0xff]);
        assert_eq!(int_bytes(-110), [0x92]);
        assert_eq!(int_bytes(-111), [0x81, 0x91, 0xff]);
        assert_eq!(int_bytes(128), [0x81, 0x80, 0x00]);
        assert_eq!(int_bytes(2359), [0x81, 0x37, 0x09]);
        assert_eq!(int_bytes(70_000), [0x82, 0x70, 0x11, 0x01, 0x00]);
        assert!(TypedStream::new().unwrap().int(1 << 40).is_err());
    }

    #[test]
    fn references_count_from_minus_110() {
        let mut stream = TypedStream::new().unwrap();
        let header = stream.out.len();
        stream.reference(0).unwrap();
        stream.reference(109).unwrap();
        stream.reference(110).unwrap();
        stream.reference(238).unwrap();
        assert_eq!(stream.out[header..], [0x92, 0xff, 0x00, 0x81, 0x80, 0x00]);
    }

    #[test]
    fn classes_take_object_slots_after_their_object() {
        let mut stream = TypedStream::new().unwrap();
        let header = stream.out.len();
        let string = [Class { name: "NSString", version: 1 }, NS_OBJECT];
        let first = stream.begin_object(&string).unwrap();
        stream.end_object();
        let second = stream.begin_object(&string).unwrap();
        stream.end_object();
        assert_eq!(first, ObjectIndex(0));
        assert_eq!(second, ObjectIndex(3));
        let mut expected = vec![0x84, 0x84, 0x84, 0x08];
        expected.extend_from_slice(b"NSString");
        expected.extend_from_slice(&[0x01, 0x84, 0x84, 0x08]);
        expected.extend_from_slice(b"NSObject");
        // End of chain, end of object, then the second object's class by reference (slot 1).
        expected.extend_from_slice(&[0x00, 0x85, 0x86, 0x84, 0x93, 0x86]);
        assert_eq!(stream.out[header..], expected[..]);
    }
}
