//! Running crabstep, the typedstream deserializer, so that no input can overflow the stack.
//!
//! Why this exists: crabstep parses nested objects (and nested `[`/`{` type descriptors) by
//! recursion, one set of stack frames per level, and a typedstream can nest a new level every
//! three bytes. A 64 KiB hostile `attributedBody` would overflow a 2 MiB thread stack and abort
//! the whole process, which no `Result` can report. Real message bodies nest a handful of levels.
//!
//! The cure needs no parser of our own: every level of nesting has to consume at least one byte
//! that is an object start marker (`0x84`), a `[` or a `{`, so counting those bytes bounds the
//! depth from above. Streams whose bound is small are decoded on the caller's thread; larger ones
//! on a scoped helper thread whose stack is sized for the bound; a bound above [`MAX_NESTING`] is
//! refused. crabstep's per-level cost measured about 400 bytes (debug and release builds);
//! [`STACK_PER_LEVEL`] allows several times that.

use crabstep::{Property, TypedStreamDeserializer};

use super::MAX_TYPEDSTREAM_BYTES;
use crate::{Blob, Error};

/// Object start marker in a typedstream (`START` in crabstep).
const OBJECT_START: u8 = 0x84;
/// Streams whose nesting bound is at most this are decoded on the caller's thread
/// (`INLINE_LEVELS * STACK_PER_LEVEL` = 128 KiB of stack at worst).
const INLINE_LEVELS: usize = 128;
/// Stack bytes reserved per possible nesting level on the helper thread.
const STACK_PER_LEVEL: usize = 1024;
/// Extra stack for the helper thread beyond the nesting levels (our own frames, crabstep's).
const STACK_BASE: usize = 512 * 1024;
/// The deepest nesting bound accepted (64 MiB of reserved, mostly untouched, helper stack).
const MAX_NESTING: usize = 64 * 1024;

/// Deserializes `bytes` with crabstep and hands the root object to `walk`, on a stack that is
/// large enough for any nesting the input could contain.
pub(crate) fn with_root<T, F>(bytes: &[u8], blob: Blob, walk: F) -> Result<T, Error>
where
    T: Send,
    F: for<'a, 'b> FnOnce(Property<'a, 'b>) -> Result<T, Error> + Send,
{
    if bytes.len() > MAX_TYPEDSTREAM_BYTES {
        return Err(Error::TooLarge { blob, len: bytes.len(), max: MAX_TYPEDSTREAM_BYTES });
    }
    let bound = nesting_bound(bytes);
    if bound > MAX_NESTING {
        return Err(Error::Limit { blob, limit: "nesting depth" });
    }
    let run = move || {
        let mut stream = TypedStreamDeserializer::new(bytes);
        let root = stream.root().map_err(|e| Error::Typedstream { blob, source: Box::new(e) })?;
        walk(root)
    };
    if bound <= INLINE_LEVELS {
        return run();
    }
    let stack = STACK_BASE + bound * STACK_PER_LEVEL;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new().name("typedstream".into()).stack_size(stack).spawn_scoped(scope, run).map_err(Error::Thread)?;
        // A panic here would be a bug in crabstep or in this crate: pass it on, do not hide it.
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An upper bound on how deeply `bytes` can make crabstep recurse: every level consumes at least
/// one object start, `[` or `{` byte.
fn nesting_bound(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == OBJECT_START || b == b'[' || b == b'{').count()
}

/// The text of an `NSString`-like value: an `NSString`/`NSMutableString` object, or a group
/// holding one.
pub(crate) fn string(value: &Property<'_, '_>) -> Option<String> {
    value.as_string().map(str::to_owned)
}

/// An integer value: an `NSNumber` or a bare integer.
pub(crate) fn integer(value: &Property<'_, '_>) -> Option<i64> {
    value.as_i64()
}

/// The string of an `NSURL` (or of an `NSString`, which some producers use for links).
pub(crate) fn url(value: &Property<'_, '_>) -> Option<String> {
    value.as_url().or_else(|| value.as_string()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header, then objects nested `depth` levels deep: each level is an object start, a class
    /// reference and the `@` type of the next level.
    fn nested(depth: usize) -> Vec<u8> {
        let mut b = vec![4u8, 11];
        b.extend_from_slice(b"streamtyped");
        b.extend_from_slice(&[0x81, 0xe8, 0x03, 0x84, 0x01, b'@']);
        b.extend_from_slice(&[0x84, 0x84, 0x84, 0x01, b'X', 0x00, 0x85]);
        for _ in 0..depth {
            b.extend_from_slice(&[0x92, 0x84, 0x93]);
        }
        b
    }

    #[test]
    fn deep_nesting_is_decoded_on_a_big_enough_stack() {
        // 40_000 levels need ~16 MiB of stack in crabstep: on a 2 MiB test thread this would
        // abort the process if it were run inline.
        let bytes = nested(40_000);
        assert!(nesting_bound(&bytes) > INLINE_LEVELS);
        let result = with_root(&bytes, Blob::AttributedBody, |_root| Ok(()));
        // Whatever crabstep makes of the (unterminated) stream, it must come back as a value.
        let _ = result;
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let bytes = nested(MAX_NESTING);
        assert!(matches!(with_root(&bytes, Blob::AttributedBody, |_root| Ok(())), Err(Error::Limit { .. })));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let bytes = vec![0u8; MAX_TYPEDSTREAM_BYTES + 1];
        assert!(matches!(with_root(&bytes, Blob::AttributedBody, |_root| Ok(())), Err(Error::TooLarge { .. })));
    }
}
