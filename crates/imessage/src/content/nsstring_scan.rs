//! The last resort for an `attributedBody` that is not a valid typedstream: find its `NSString`
//! and read the text that is there.
//!
//! Why: Apple writes some bodies that a strict typedstream reader refuses, most often an
//! `NSString` whose declared length is longer than the bytes that follow it (imessage-exporter's
//! test blob `ExtraData` declares 157 bytes and holds 17). Apple's own readers, and
//! imessage-exporter's legacy `streamtyped` parser, still show such a message's text; a bridge
//! that shows nothing would make the message vanish. So, like that parser, this scan looks for
//! the backing string by its shape instead of parsing the archive:
//!
//! `NSString` (the class name), then within a few bytes the `+` type of its data (0x2B), then
//! the length as a typedstream integer (one byte below 0x80; 0x81 and a u16 LE; 0x82 and a u32
//! LE), then that many UTF-8 bytes. What is there is taken, capped to the blob's end, and cut
//! before the first byte that is not UTF-8 (the object's end marker 0x86 never is). Attributes
//! (parts, attachment GUIDs, links) are lost; the caller counts the message as read by fallback.

/// The class name that precedes the backing string's data.
const CLASS: &[u8] = b"NSString";
/// The type code of the string's bytes (`+`: an unsigned char array with a length).
const STRING_TYPE: u8 = b'+';
/// How far after the class name the `+` may be (version byte, class reference, type marker).
const TYPE_WINDOW: usize = 8;
/// Typedstream integer tags: a 16-bit or a 32-bit little-endian value follows.
const TAG_I16: u8 = 0x81;
const TAG_I32: u8 = 0x82;

/// The text of the first `NSString` in `bytes` (see the module docs), None when there is no
/// such string or nothing of it is readable. The caller caps `bytes` to its size limit.
pub(crate) fn scan(bytes: &[u8]) -> Option<String> {
    let class_end = find(bytes, CLASS)? + CLASS.len();
    let window = bytes.get(class_end..)?;
    let plus = window.iter().take(TYPE_WINDOW).position(|&b| b == STRING_TYPE)?;
    let mut rest = window.get(plus + 1..)?;
    let declared = length(&mut rest)?;
    let available = rest.get(..declared.min(rest.len()))?;
    let text = match std::str::from_utf8(available) {
        Ok(text) => text,
        // What comes before the first byte that is not UTF-8 is valid by definition.
        Err(e) => std::str::from_utf8(available.get(..e.valid_up_to())?).ok()?,
    };
    (!text.is_empty()).then(|| text.to_owned())
}

/// A typedstream length at the start of `rest`, advancing past it.
fn length(rest: &mut &[u8]) -> Option<usize> {
    let (&tag, after) = rest.split_first()?;
    let (value, after) = match tag {
        TAG_I16 => {
            let (b, after) = after.split_first_chunk::<2>()?;
            (usize::from(u16::from_le_bytes(*b)), after)
        }
        TAG_I32 => {
            let (b, after) = after.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_le_bytes(*b)).ok()?, after)
        }
        0..=0x7f => (usize::from(tag), after),
        // Other tags are negative numbers or markers: no length.
        _ => return None,
    };
    *rest = after;
    Some(value)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(length: &[u8], text: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut b = b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x08NSString\x01\x94\x84\x01+".to_vec();
        b.extend_from_slice(length);
        b.extend_from_slice(text);
        b.extend_from_slice(tail);
        b
    }

    #[test]
    fn a_declared_length_is_read_in_each_width() {
        assert_eq!(scan(&blob(&[5], b"hello", b"\x86\x84")).as_deref(), Some("hello"));
        assert_eq!(scan(&blob(&[0x81, 5, 0], b"hello", b"\x86\x84")).as_deref(), Some("hello"));
        assert_eq!(scan(&blob(&[0x82, 5, 0, 0, 0], b"hello world", b"")).as_deref(), Some("hello"));
    }

    #[test]
    fn a_length_beyond_the_blob_takes_what_is_there() {
        assert_eq!(scan(&blob(&[0x82, 0xff, 0xff, 0xff, 0x7f], "héllo".as_bytes(), b"")).as_deref(), Some("héllo"));
        // The end marker after the text is no UTF-8: the text stops there.
        assert_eq!(scan(&blob(&[0x81, 0x10, 0x27], b"hi there", b"\x86\x84\x02iI\x01")).as_deref(), Some("hi there"));
        // A char cut by the blob's end is left out, not mangled.
        assert_eq!(scan(&blob(&[100], &"ab😀".as_bytes()[..4], b"")).as_deref(), Some("ab"));
    }

    #[test]
    fn no_string_no_text() {
        assert_eq!(scan(b""), None);
        assert_eq!(scan(b"NSString"), None);
        assert_eq!(scan(&blob(&[0], b"", b"\x86")), None);
        assert_eq!(scan(&blob(&[0x85], b"x", b"")), None);
        assert_eq!(scan(&blob(&[0x81, 1], b"", b"")), None, "a cut length");
        assert_eq!(scan(b"NSString\x01\x01\x01\x01\x01\x01\x01\x01\x01+\x01x"), None, "no + near the class");
    }
}
