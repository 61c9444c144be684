//! `attributedBody`: a message's text and attribute runs, archived as Messages archives them.
//!
//! Why: since macOS Ventura / iOS 16 a message's text, the place of every attachment (a U+FFFC
//! named by `__kIMFileTransferGUIDAttributeName`), its part numbers (what tapbacks and replies
//! point at), mentions and links exist only in this blob, so the simulator must serve it for the
//! bridge's decoder to be exercised at all.
//!
//! The blob is a typedstream (see `typedstream`) of one `NSMutableAttributedString`
//! (`NSAttributedString` in the text of an edit version), whose value groups are:
//!
//! 1. `@`: the text, an `NSMutableString` (`NSString`) holding `+` UTF-8 bytes;
//! 2. per attribute run, `iI`: the run's attribute-set number (1, 2, … in order of first use) and
//!    its length in UTF-16 code units (Apple's `NSString` length); when the number is new, an `@`
//!    group follows with the set's `NSDictionary` (`i` count, then `@` key, `@` value pairs). A run
//!    whose attributes equal an earlier run's repeats that number and writes no dictionary.
//!
//! Attribute values: `__kIMMessagePartAttributeName` and `__kIMBaseWritingDirectionAttributeName`
//! are `NSNumber`s (`*` C string of the type, then the value), the attachment GUID and the
//! mentioned handle `NSString`s, a link an `NSURL` (`c` 0, no base; `@` its `NSString`).
//!
//! Sharing follows Messages' pointers where they are predictable: the classes, the type C
//! strings and equal `NSNumber`s (tagged pointers) are written once and referenced after; GUIDs,
//! handles and URLs are new objects every time. Whether an attribute *name* is shared is not: it
//! depends on which string instances reached the archiver. `Mention` and `MultiPartWithDeleted`
//! (crabstep's test data) write every name anew in every dictionary, `MultiPart` reuses the names
//! of its first dictionary in its later ones except in the second, `MultiAttachment` mixes both.
//! The presets write names anew (which reproduces `Mention` and `MultiPartWithDeleted` byte for
//! byte); [`BodyStyle::shared_names`] writes each name once, so a decoder meets both forms.
//! Adjacent runs with equal attributes are one run (`NSAttributedString` coalesces them). The
//! order of keys in a dictionary is Apple's hash order, which this encoder does not model: it
//! writes GUID, link, mention, then writing direction and part (part before writing direction in
//! a link run), the orders of the fixtures.
//!
//! With [`BodyStyle::MESSAGE`], `AttributedBodyTextOnly` and `Blank` of `shared/fixtures/apple/`
//! and crabstep's `Mention` and `MultiPartWithDeleted` are reproduced byte for byte, with
//! [`BodyStyle::EDIT`] crabstep's `AttributedBodyTextOnly2`. `MultiPart` is not, for its name
//! sharing alone: where Apple references, from its third dictionary on, a name object of its
//! first, this encoder writes the name again (or, with `shared_names`, references it also in the
//! second dictionary, where Apple wrote a copy); it decodes to the same text, runs and attributes.
//!
//! A reference to object 110 or later is the integer `index - 110` in one byte `0x00..=0x7f` (then
//! `0x81` + i16), as the format has it; crabstep 0.7 reads only the one-byte references
//! `0x92..=0xff`, so it rejects such a body (one that references, say, an `NSNumber` or a shared
//! name first written after some 110 objects: a long message with many attachments).

use std::collections::HashMap;

use super::typedstream::{Class, ObjectIndex, TypedStream, NS_OBJECT};
use super::ContentError;

/// U+FFFC OBJECT REPLACEMENT CHARACTER: the character an attachment stands on.
pub const ATTACHMENT_CHAR: char = '\u{FFFC}';

const MESSAGE_PART: &str = "__kIMMessagePartAttributeName";
const FILE_TRANSFER_GUID: &str = "__kIMFileTransferGUIDAttributeName";
const MENTION: &str = "__kIMMentionConfirmedMention";
const LINK: &str = "__kIMLinkAttributeName";
const WRITING_DIRECTION: &str = "__kIMBaseWritingDirectionAttributeName";

/// `NSWritingDirectionNatural`, the base writing direction Messages writes.
const NATURAL_WRITING_DIRECTION: i64 = -1;

const NS_ATTRIBUTED_STRING: Class = Class { name: "NSAttributedString", version: 0 };
const NS_MUTABLE_ATTRIBUTED_STRING: Class = Class { name: "NSMutableAttributedString", version: 0 };
const NS_STRING: Class = Class { name: "NSString", version: 1 };
const NS_MUTABLE_STRING: Class = Class { name: "NSMutableString", version: 1 };
const NS_DICTIONARY: Class = Class { name: "NSDictionary", version: 0 };
const NS_NUMBER: Class = Class { name: "NSNumber", version: 0 };
const NS_VALUE: Class = Class { name: "NSValue", version: 0 };
const NS_URL: Class = Class { name: "NSURL", version: 0 };

/// One run of a message body: text with the attributes Messages gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyRun {
    /// The run's text; an attachment's run is one U+FFFC.
    pub text: String,
    /// `__kIMMessagePartAttributeName`: the message part the run belongs to.
    pub part: i64,
    /// `__kIMFileTransferGUIDAttributeName`: the attachment on this run's U+FFFC.
    pub attachment_guid: Option<String>,
    /// `__kIMMentionConfirmedMention`: the handle this run mentions.
    pub mention: Option<String>,
    /// `__kIMLinkAttributeName`: the URL this run links to.
    pub link: Option<String>,
}

impl BodyRun {
    /// Plain text of part `part`.
    pub fn text(text: impl Into<String>, part: i64) -> Self {
        BodyRun { text: text.into(), part, ..BodyRun::default() }
    }

    /// The attachment `guid` (on a U+FFFC) as part `part`.
    pub fn attachment(guid: impl Into<String>, part: i64) -> Self {
        BodyRun { text: ATTACHMENT_CHAR.to_string(), part, attachment_guid: Some(guid.into()), ..BodyRun::default() }
    }

    /// `text` mentioning `handle`, in part `part`.
    pub fn mention(text: impl Into<String>, handle: impl Into<String>, part: i64) -> Self {
        BodyRun { mention: Some(handle.into()), ..BodyRun::text(text, part) }
    }

    /// `text` linking to `url`, in part `part`.
    pub fn link(text: impl Into<String>, url: impl Into<String>, part: i64) -> Self {
        BodyRun { link: Some(url.into()), ..BodyRun::text(text, part) }
    }
}

/// Which of the forms Messages has written over the years an archive takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyStyle {
    /// `NSMutableAttributedString` of an `NSMutableString` (a sent message), else
    /// `NSAttributedString` of an `NSString` (the text of an edit version).
    pub mutable: bool,
    /// `NSNumber`s of C type `q` (long long), as newer Messages writes them, else `i` (int).
    pub long_numbers: bool,
    /// `__kIMBaseWritingDirectionAttributeName` -1 on every run, as newer Messages writes.
    pub writing_direction: bool,
    /// Every attribute name is one object, referenced from the second dictionary on (Apple's
    /// constant strings); else each dictionary writes its names anew (strings that reached the
    /// archiver as distinct copies).
    pub shared_names: bool,
}

impl BodyStyle {
    /// A sent message as in `AttributedBodyTextOnly` and `MultiPart`: mutable, `i` numbers, no
    /// writing direction.
    pub const MESSAGE: BodyStyle = BodyStyle { mutable: true, long_numbers: false, writing_direction: false, shared_names: false };
    /// A sent message of newer Messages (as in the `URL` fixture): mutable, `q` numbers, writing
    /// direction on every run.
    pub const CURRENT: BodyStyle = BodyStyle { mutable: true, long_numbers: true, writing_direction: true, shared_names: false };
    /// The original text of an edited part, as version 0 of `Edited.plist`.
    pub const EDIT_ORIGINAL: BodyStyle = BodyStyle { mutable: false, long_numbers: false, writing_direction: false, shared_names: false };
    /// An edited text, as versions 1… of `Edited.plist`.
    pub const EDIT: BodyStyle = BodyStyle { mutable: false, long_numbers: true, writing_direction: true, shared_names: false };
}

/// Encodes `runs` as a sent message's `attributedBody` ([`BodyStyle::MESSAGE`]).
pub fn encode_attributed_body(runs: &[BodyRun]) -> Result<Vec<u8>, ContentError> {
    encode_attributed_body_with(runs, BodyStyle::MESSAGE)
}

/// Encodes `runs` as an `attributedBody` of the given style.
///
/// Runs with empty text are dropped; a body with no text at all is Messages' blank body (an
/// `NSAttributedString` of an empty `NSString`, no runs), whatever the style.
pub fn encode_attributed_body_with(runs: &[BodyRun], style: BodyStyle) -> Result<Vec<u8>, ContentError> {
    let runs = coalesce(runs)?;
    let mut writer = BodyWriter { stream: TypedStream::new()?, style, keys: HashMap::new(), numbers: HashMap::new() };
    if runs.is_empty() {
        writer.blank()?;
    } else {
        writer.body(&runs)?;
    }
    Ok(writer.stream.finish())
}

/// What a run is, which decides the order of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Attachment,
    Mention,
    Link,
}

/// A run after validation: its UTF-16 length and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span<'a> {
    text: String,
    attributes: Attributes<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attributes<'a> {
    part: i64,
    attachment_guid: Option<&'a str>,
    mention: Option<&'a str>,
    link: Option<&'a str>,
}

impl Attributes<'_> {
    fn kind(&self) -> Kind {
        if self.attachment_guid.is_some() {
            Kind::Attachment
        } else if self.link.is_some() {
            Kind::Link
        } else if self.mention.is_some() {
            Kind::Mention
        } else {
            Kind::Text
        }
    }
}

/// Validates the runs, drops empty ones and joins neighbours with equal attributes.
fn coalesce(runs: &[BodyRun]) -> Result<Vec<Span<'_>>, ContentError> {
    let mut spans: Vec<Span<'_>> = Vec::new();
    let mut guids: Vec<&str> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        if run.part < 0 {
            return Err(ContentError::invalid(format!("run {index} has the negative part number {}", run.part)));
        }
        if let Some(guid) = run.attachment_guid.as_deref() {
            let mut chars = run.text.chars();
            if chars.next() != Some(ATTACHMENT_CHAR) || chars.next().is_some() {
                return Err(ContentError::invalid(format!("run {index} names attachment {guid} but its text is not one U+FFFC")));
            }
            if guids.contains(&guid) {
                return Err(ContentError::invalid(format!("attachment {guid} is on more than one U+FFFC")));
            }
            guids.push(guid);
        }
        if run.text.is_empty() {
            continue;
        }
        let attributes =
            Attributes { part: run.part, attachment_guid: run.attachment_guid.as_deref(), mention: run.mention.as_deref(), link: run.link.as_deref() };
        match spans.last_mut() {
            Some(last) if last.attributes == attributes => last.text.push_str(&run.text),
            _ => spans.push(Span { text: run.text.clone(), attributes }),
        }
    }
    Ok(spans)
}

/// The archive being written with the objects it shares.
struct BodyWriter {
    stream: TypedStream,
    style: BodyStyle,
    /// Attribute-name objects, when they are shared.
    keys: HashMap<&'static str, ObjectIndex>,
    /// `NSNumber` objects by value.
    numbers: HashMap<i64, ObjectIndex>,
}

/// An attribute value.
enum Value<'a> {
    Number(i64),
    String(&'a str),
    Url(&'a str),
}

impl BodyWriter {
    /// Messages' body without text: no runs at all.
    fn blank(&mut self) -> Result<(), ContentError> {
        self.stream.types("@")?;
        self.stream.begin_object(&[NS_ATTRIBUTED_STRING, NS_OBJECT])?;
        self.stream.types("@")?;
        self.string_object(&[NS_STRING, NS_OBJECT], "")?;
        self.stream.end_object();
        Ok(())
    }

    fn body(&mut self, spans: &[Span<'_>]) -> Result<(), ContentError> {
        let (root, text_class): (&[Class], &[Class]) = if self.style.mutable {
            (&[NS_MUTABLE_ATTRIBUTED_STRING, NS_ATTRIBUTED_STRING, NS_OBJECT], &[NS_MUTABLE_STRING, NS_STRING, NS_OBJECT])
        } else {
            (&[NS_ATTRIBUTED_STRING, NS_OBJECT], &[NS_STRING, NS_OBJECT])
        };
        let text: String = spans.iter().map(|span| span.text.as_str()).collect();
        self.stream.types("@")?;
        self.stream.begin_object(root)?;
        self.stream.types("@")?;
        self.string_object(text_class, &text)?;

        let mut sets: Vec<&Attributes<'_>> = Vec::new();
        for span in spans {
            let known = sets.iter().position(|set| **set == span.attributes);
            let number = known.unwrap_or(sets.len()) + 1;
            self.stream.types("iI")?;
            self.stream.length(number)?;
            self.stream.length(span.text.encode_utf16().count())?;
            if known.is_none() {
                sets.push(&span.attributes);
                self.stream.types("@")?;
                self.dictionary(&span.attributes)?;
            }
        }
        self.stream.end_object();
        Ok(())
    }

    /// The attribute dictionary of one attribute set.
    fn dictionary(&mut self, attributes: &Attributes<'_>) -> Result<(), ContentError> {
        let kind = attributes.kind();
        let mut entries: Vec<(&'static str, Value<'_>)> = Vec::with_capacity(4);
        if let Some(guid) = attributes.attachment_guid {
            entries.push((FILE_TRANSFER_GUID, Value::String(guid)));
        }
        if let Some(link) = attributes.link {
            entries.push((LINK, Value::Url(link)));
        }
        if let Some(handle) = attributes.mention {
            entries.push((MENTION, Value::String(handle)));
        }
        let part = (MESSAGE_PART, Value::Number(attributes.part));
        let direction = (WRITING_DIRECTION, Value::Number(NATURAL_WRITING_DIRECTION));
        match (self.style.writing_direction, kind) {
            (false, _) => entries.push(part),
            (true, Kind::Link) => entries.extend([part, direction]),
            (true, _) => entries.extend([direction, part]),
        }

        self.stream.begin_object(&[NS_DICTIONARY, NS_OBJECT])?;
        self.stream.types("i")?;
        self.stream.length(entries.len())?;
        for (key, value) in entries {
            self.stream.types("@")?;
            self.key(key)?;
            self.stream.types("@")?;
            match value {
                Value::Number(number) => self.number(number)?,
                Value::String(text) => {
                    self.string_object(&[NS_STRING, NS_OBJECT], text)?;
                }
                Value::Url(url) => self.url(url)?,
            }
        }
        self.stream.end_object();
        Ok(())
    }

    /// An attribute name: a new object, or the one written before if names are shared.
    fn key(&mut self, name: &'static str) -> Result<(), ContentError> {
        if let Some(&object) = self.keys.get(name) {
            return self.stream.object_ref(object);
        }
        let object = self.string_object(&[NS_STRING, NS_OBJECT], name)?;
        if self.style.shared_names {
            self.keys.insert(name, object);
        }
        Ok(())
    }

    /// A new string object of class `class` holding `text`.
    fn string_object(&mut self, class: &[Class], text: &str) -> Result<ObjectIndex, ContentError> {
        let object = self.stream.begin_object(class)?;
        self.stream.types("+")?;
        self.stream.bytes(text.as_bytes())?;
        self.stream.end_object();
        Ok(object)
    }

    /// An `NSNumber`; equal numbers are one object.
    fn number(&mut self, value: i64) -> Result<(), ContentError> {
        if let Some(&object) = self.numbers.get(&value) {
            return self.stream.object_ref(object);
        }
        let c_type = if self.style.long_numbers { "q" } else { "i" };
        let object = self.stream.begin_object(&[NS_NUMBER, NS_VALUE, NS_OBJECT])?;
        self.stream.types("*")?;
        self.stream.c_string(c_type)?;
        self.stream.types(c_type)?;
        self.stream.int(value)?;
        self.stream.end_object();
        self.numbers.insert(value, object);
        Ok(())
    }

    /// An absolute `NSURL`: no base (`c` 0), then its string.
    fn url(&mut self, url: &str) -> Result<(), ContentError> {
        self.stream.begin_object(&[NS_URL, NS_OBJECT])?;
        self.stream.types("c")?;
        self.stream.char(0);
        self.stream.types("@")?;
        self.string_object(&[NS_STRING, NS_OBJECT], url)?;
        self.stream.end_object();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_runs_with_equal_attributes_are_one_run() {
        let runs = [BodyRun::text("ab", 0), BodyRun::text("c", 0)];
        assert_eq!(encode_attributed_body(&runs).unwrap(), encode_attributed_body(&[BodyRun::text("abc", 0)]).unwrap());
    }

    #[test]
    fn a_repeated_attribute_set_reuses_its_number_without_a_dictionary() {
        let runs = [BodyRun::text("Hi ", 0), BodyRun::mention("Bob", "bob@example.com", 0), BodyRun::text("!", 0)];
        let bytes = encode_attributed_body(&runs).unwrap();
        // The last run: `iI` by reference, set 1 again, length 1, end of the root object.
        assert!(bytes.ends_with(&[0x01, 0x01, 0x86]), "{bytes:02x?}");
        assert_eq!(bytes.windows(MESSAGE_PART.len()).filter(|w| *w == MESSAGE_PART.as_bytes()).count(), 2, "the part key is one object per kind of run");
    }

    #[test]
    fn impossible_runs_are_errors() {
        let guid_on_text = BodyRun { attachment_guid: Some("at_0_X".into()), ..BodyRun::text("not an attachment", 0) };
        assert!(encode_attributed_body(&[guid_on_text]).is_err());
        let twice = [BodyRun::attachment("g", 0), BodyRun::attachment("g", 1)];
        assert!(encode_attributed_body(&twice).is_err());
        assert!(encode_attributed_body(&[BodyRun::text("x", -1)]).is_err());
        assert!(encode_attributed_body(&[BodyRun::text("x", 1 << 40)]).is_err());
    }

    #[test]
    fn empty_runs_give_the_blank_body() {
        let blank = encode_attributed_body(&[]).unwrap();
        assert_eq!(encode_attributed_body(&[BodyRun::text("", 3)]).unwrap(), blank);
        assert!(blank.ends_with(b"\x84\x01+\x00\x86\x86"));
    }
}
