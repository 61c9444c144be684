//! `attributedBody`: a message's text with its attributes, as Apple's Messages archives it.
//!
//! Why it matters: since macOS Ventura / iOS 16 many messages have no plain `text` at all; the
//! text, the position of every attachment (one U+FFFC OBJECT REPLACEMENT CHARACTER each, named by
//! `__kIMFileTransferGUIDAttributeName`), the message-part numbers that tapbacks and replies point
//! at (`p:N/GUID`), mentions, links and text styles live only here.
//!
//! The format is a NeXTSTEP typedstream (`NSArchiver`) of an `NSMutableAttributedString` (or
//! `NSAttributedString`). crabstep deserializes it; this module walks the root object, whose data
//! groups are, in order:
//!
//! 1. the backing `NSString`/`NSMutableString`;
//! 2. per attribute run, an `iI` pair (`i`: the run's attribute-set number, `I`: its length in
//!    UTF-16 code units), followed by an `NSDictionary` of attributes the first time that number
//!    appears; a later run with the same number reuses that dictionary without repeating it.
//!
//! Offsets: Apple counts UTF-16 code units, so [`Run::range`] does too; [`Run::bytes`] gives the
//! same run as byte offsets into [`AttributedBody::text`].

use std::collections::HashMap;
use std::ops::Range;

use crabstep::Property;

use super::typedstream::{integer, string, url, with_root};
use crate::{Blob, Error};

/// U+FFFC OBJECT REPLACEMENT CHARACTER: where an attachment sits in the text.
pub const ATTACHMENT_CHAR: char = '\u{FFFC}';

/// Attribute names Apple uses in `attributedBody`.
pub mod attribute {
    /// The message part a run belongs to (an integer).
    pub const MESSAGE_PART: &str = "__kIMMessagePartAttributeName";
    /// The GUID of the attachment at a U+FFFC.
    pub const FILE_TRANSFER_GUID: &str = "__kIMFileTransferGUIDAttributeName";
    /// The attachment's file name.
    pub const FILENAME: &str = "__kIMFilenameAttributeName";
    /// A confirmed mention; the value is the mentioned handle.
    pub const MENTION: &str = "__kIMMentionConfirmedMention";
    /// A link; the value is an `NSURL`.
    pub const LINK: &str = "__kIMLinkAttributeName";
    /// The base writing direction (an integer, -1 natural).
    pub const WRITING_DIRECTION: &str = "__kIMBaseWritingDirectionAttributeName";
    /// Bold text (iOS 18 formatting).
    pub const BOLD: &str = "__kIMTextBoldAttributeName";
    /// Italic text.
    pub const ITALIC: &str = "__kIMTextItalicAttributeName";
    /// Underlined text.
    pub const UNDERLINE: &str = "__kIMTextUnderlineAttributeName";
    /// Struck-through text.
    pub const STRIKETHROUGH: &str = "__kIMTextStrikethroughAttributeName";
    /// An animated text effect; the value is Apple's effect number.
    pub const TEXT_EFFECT: &str = "__kIMTextEffectAttributeName";
}

/// A decoded `attributedBody`: the text and the attribute runs that cover it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttributedBody {
    /// The whole text, attachments included as U+FFFC.
    pub text: String,
    /// Attribute runs in order; together they cover `text` exactly, without gaps or overlaps.
    pub runs: Vec<Run>,
}

/// One attribute run of an [`AttributedBody`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Run {
    /// The run's place in the text in UTF-16 code units, as Apple counts.
    pub range: Range<usize>,
    /// The same run as byte offsets into [`AttributedBody::text`] (always on char boundaries).
    pub bytes: Range<usize>,
    /// `__kIMMessagePartAttributeName`: the message part this run belongs to.
    pub part: Option<i64>,
    /// `__kIMFileTransferGUIDAttributeName`: the attachment at this run's U+FFFC.
    pub attachment_guid: Option<String>,
    /// `__kIMFilenameAttributeName`: the attachment's file name, when given.
    pub attachment_name: Option<String>,
    /// `__kIMMentionConfirmedMention`: the handle mentioned by this run.
    pub mention: Option<String>,
    /// `__kIMLinkAttributeName`: the link of this run.
    pub link: Option<String>,
    /// `__kIMBaseWritingDirectionAttributeName`.
    pub writing_direction: Option<i64>,
    /// `__kIMTextBoldAttributeName`.
    pub bold: bool,
    /// `__kIMTextItalicAttributeName`.
    pub italic: bool,
    /// `__kIMTextUnderlineAttributeName`.
    pub underline: bool,
    /// `__kIMTextStrikethroughAttributeName`.
    pub strikethrough: bool,
    /// `__kIMTextEffectAttributeName`: Apple's number of an animated text effect.
    pub text_effect: Option<i64>,
    /// The names of this run's other attributes, not decoded here (data detectors, inline media
    /// sizes, calendar events, …), in archive order.
    pub other_attributes: Vec<String>,
}

/// One part of a message body, in order: a run of text or one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyPart {
    /// Text; consecutive runs of the same part are joined.
    Text {
        /// The message part number.
        part: Option<i64>,
        /// The text, exactly as written (whitespace kept).
        text: String,
    },
    /// The attachment at one U+FFFC.
    Attachment {
        /// The message part number.
        part: Option<i64>,
        /// The attachment's GUID; `None` for a U+FFFC without one.
        guid: Option<String>,
    },
}

/// Decodes an `attributedBody` typedstream.
///
/// A body with no text (Apple's "Blank") decodes to an empty text with no runs.
pub fn decode_attributed_body(bytes: &[u8]) -> Result<AttributedBody, Error> {
    with_root(bytes, Blob::AttributedBody, walk_root)
}

/// An `attributedBody` as [`read_attributed_body`] read it.
#[derive(Debug)]
#[non_exhaustive]
pub struct BodyRead {
    /// The body. When it was read by the fallback scan, its text is one run without attributes
    /// (no part numbers, no attachment GUIDs).
    pub body: AttributedBody,
    /// Why the typedstream did not decode, when the text was read by the fallback scan for its
    /// `NSString` (see `nsstring_scan`) instead: a message read so is to be counted.
    pub fallback: Option<Error>,
}

/// Decodes an `attributedBody` as [`decode_attributed_body`] does and, when that fails, falls
/// back as Apple's readers do: the text of the blob's `NSString`, whatever bytes of it are
/// there (a declared length longer than the blob is the common case). Only a blob with no
/// readable `NSString` at all is an error (the typedstream's).
pub fn read_attributed_body(bytes: &[u8]) -> Result<BodyRead, Error> {
    let error = match decode_attributed_body(bytes) {
        Ok(body) => return Ok(BodyRead { body, fallback: None }),
        // Over a limit: the scan must not do the work the limit refused.
        Err(e @ (Error::TooLarge { .. } | Error::Limit { .. })) => return Err(e),
        Err(e) => e,
    };
    let Some(text) = super::nsstring_scan::scan(bytes) else {
        return Err(error);
    };
    let offsets = Utf16Offsets::new(&text);
    let run = Attributes::default().into_run(0..offsets.len(), &offsets);
    Ok(BodyRead { body: AttributedBody { text, runs: vec![run] }, fallback: Some(error) })
}

impl AttributedBody {
    /// The message's parts in order: text runs and attachments, one attachment per U+FFFC.
    ///
    /// A U+FFFC inside a run with an attachment GUID is that attachment; a U+FFFC without one is
    /// an attachment with `guid: None`. Other text of consecutive runs with the same part number
    /// is joined into one [`BodyPart::Text`].
    pub fn parts(&self) -> Vec<BodyPart> {
        let mut parts: Vec<BodyPart> = Vec::new();
        for run in &self.runs {
            let Some(text) = self.text.get(run.bytes.clone()) else {
                continue;
            };
            for (i, piece) in text.split(ATTACHMENT_CHAR).enumerate() {
                if i > 0 {
                    parts.push(BodyPart::Attachment { part: run.part, guid: run.attachment_guid.clone() });
                }
                if piece.is_empty() {
                    continue;
                }
                match parts.last_mut() {
                    Some(BodyPart::Text { part, text }) if *part == run.part => text.push_str(piece),
                    _ => parts.push(BodyPart::Text { part: run.part, text: piece.to_owned() }),
                }
            }
        }
        parts
    }

    /// The attachment GUIDs in text order.
    pub fn attachment_guids(&self) -> Vec<&str> {
        self.runs.iter().filter_map(|run| run.attachment_guid.as_deref()).collect()
    }

    /// The text of `run` (which should be one of this body's runs).
    pub fn run_text(&self, run: &Run) -> &str {
        self.text.get(run.bytes.clone()).unwrap_or("")
    }
}

/// Walks the root `NSAttributedString` object.
fn walk_root(root: Property<'_, '_>) -> Result<AttributedBody, Error> {
    let Property::Object { name, data, .. } = root else {
        return Err(Error::shape(Blob::AttributedBody, "root is not an object"));
    };
    if !matches!(name, "NSAttributedString" | "NSMutableAttributedString") {
        return Err(Error::shape(Blob::AttributedBody, format!("root is an {name}, not an NSAttributedString")));
    }
    let mut groups = data.peekable();
    let text = groups.next().as_ref().and_then(string).ok_or_else(|| Error::shape(Blob::AttributedBody, "no backing string"))?;
    let offsets = Utf16Offsets::new(&text);

    // Attribute sets by their number, for runs that reuse one.
    let mut known: HashMap<i64, Attributes> = HashMap::new();
    let mut runs = Vec::new();
    let mut end = 0usize;
    while let Some(group) = groups.next() {
        let Some((number, length)) = run_header(&group) else {
            // Not a run header: nothing Apple writes here that we know of; skip it.
            continue;
        };
        let attributes = match groups.peek().and_then(Property::as_dictionary) {
            Some(dict) => {
                let attributes = Attributes::from_dict(&dict);
                groups.next();
                known.insert(number, attributes.clone());
                attributes
            }
            None => known.get(&number).cloned().unwrap_or_default(),
        };
        let start = end;
        end = usize::try_from(length)
            .ok()
            .and_then(|length| start.checked_add(length))
            .filter(|&end| end <= offsets.len())
            .ok_or_else(|| Error::shape(Blob::AttributedBody, format!("attribute runs cover more than the text's {} UTF-16 units", offsets.len())))?;
        if end > start {
            runs.push(attributes.into_run(start..end, &offsets));
        }
    }
    if end < offsets.len() {
        // Apple's runs always cover the text; if they do not, the rest has no attributes.
        runs.push(Attributes::default().into_run(end..offsets.len(), &offsets));
    }
    Ok(AttributedBody { text, runs })
}

/// An `iI` group: the run's attribute-set number and its length in UTF-16 units.
fn run_header(group: &Property<'_, '_>) -> Option<(i64, u64)> {
    let Property::Group(group) = group else {
        return None;
    };
    if group.len() != 2 {
        return None;
    }
    let (Some(Property::Primitive(number)), Some(Property::Primitive(length))) = (group.get(0), group.get(1)) else {
        return None;
    };
    Some((number.as_i64()?, length.as_u64()?))
}

/// The attributes of one attribute set, before they get a range.
#[derive(Debug, Clone, Default)]
struct Attributes {
    run: Run,
}

impl Attributes {
    fn from_dict(dict: &crabstep::deserializer::foundation::FoundationDict<'_, '_>) -> Self {
        let mut run = Run::default();
        for (key, value) in dict.iter() {
            let Some(key) = key.as_string() else {
                continue;
            };
            match key {
                attribute::MESSAGE_PART => run.part = integer(&value),
                attribute::FILE_TRANSFER_GUID => run.attachment_guid = string(&value),
                attribute::FILENAME => run.attachment_name = string(&value),
                attribute::MENTION => run.mention = string(&value),
                attribute::LINK => run.link = url(&value),
                attribute::WRITING_DIRECTION => run.writing_direction = integer(&value),
                attribute::BOLD => run.bold = flag(&value),
                attribute::ITALIC => run.italic = flag(&value),
                attribute::UNDERLINE => run.underline = flag(&value),
                attribute::STRIKETHROUGH => run.strikethrough = flag(&value),
                attribute::TEXT_EFFECT => run.text_effect = integer(&value),
                other => run.other_attributes.push(other.to_owned()),
            }
        }
        Attributes { run }
    }

    fn into_run(self, range: Range<usize>, offsets: &Utf16Offsets) -> Run {
        Run { bytes: offsets.byte(range.start)..offsets.byte(range.end), range, ..self.run }
    }
}

/// A style attribute is on unless its value is the number 0.
fn flag(value: &Property<'_, '_>) -> bool {
    integer(value) != Some(0)
}

/// Byte offsets of every UTF-16 code unit of a text.
struct Utf16Offsets {
    /// `bytes[n]` is the byte offset of the char holding UTF-16 unit `n`; one extra entry at the
    /// end holds the text's length.
    bytes: Vec<usize>,
}

impl Utf16Offsets {
    fn new(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        for (offset, ch) in text.char_indices() {
            for _ in 0..ch.len_utf16() {
                bytes.push(offset);
            }
        }
        bytes.push(text.len());
        Utf16Offsets { bytes }
    }

    /// The text's length in UTF-16 units.
    fn len(&self) -> usize {
        self.bytes.len() - 1
    }

    /// The byte offset of UTF-16 unit `unit` (a unit inside a surrogate pair maps to its char).
    fn byte(&self, unit: usize) -> usize {
        self.bytes.get(unit).or(self.bytes.last()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_offsets_count_surrogate_pairs_as_two_units() {
        let offsets = Utf16Offsets::new("a😀b");
        assert_eq!(offsets.len(), 4);
        assert_eq!(offsets.byte(0), 0);
        assert_eq!(offsets.byte(1), 1);
        assert_eq!(offsets.byte(2), 1);
        assert_eq!(offsets.byte(3), 5);
        assert_eq!(offsets.byte(4), 6);
    }

    #[test]
    fn parts_split_attachments_and_join_text_of_one_part() {
        let text = format!("a{ATTACHMENT_CHAR}bc");
        let offsets = Utf16Offsets::new(&text);
        let run = |range: Range<usize>, part: i64, guid: Option<&str>| {
            Attributes { run: Run { part: Some(part), attachment_guid: guid.map(str::to_owned), ..Run::default() } }.into_run(range, &offsets)
        };
        let body = AttributedBody { runs: vec![run(0..1, 0, None), run(1..2, 1, Some("g")), run(2..3, 2, None), run(3..4, 2, None)], text };
        assert_eq!(
            body.parts(),
            vec![
                BodyPart::Text { part: Some(0), text: "a".into() },
                BodyPart::Attachment { part: Some(1), guid: Some("g".into()) },
                BodyPart::Text { part: Some(2), text: "bc".into() },
            ]
        );
    }
}
