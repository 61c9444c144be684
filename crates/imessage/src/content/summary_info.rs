//! `messageSummaryInfo`: what happened to a message after it was sent (edits, unsends).
//!
//! Why decode it: an edited or unsent iMessage keeps its history only here. Messages lets a sender
//! edit a part up to five times within 15 minutes and unsend it within 2 minutes; a bridge shows
//! the edits as `m.replace` events and the unsends as redactions, and must know which parts are
//! left at all.
//!
//! The blob is a binary plist dictionary. The keys this module reads:
//!
//! | key | holds |
//! |---|---|
//! | `otr` | per message part (`"0"`, `"1"`, …): `lo` offset and `le` length of its text |
//! | `ec` | per edited part: its versions in order, the original first, each `d` (seconds since 2001-01-01) and `t` (the version's text as an `attributedBody` typedstream), sometimes `bcg` (a GUID) |
//! | `ep` | the edited parts' numbers |
//! | `rp` | the unsent (retracted) parts' numbers |
//!
//! Other keys (`amc`, `ust`, …) are listed by name in [`SummaryInfo::other_keys`].

use plist::{Dictionary, Value};

use super::attributed_body::{decode_attributed_body, AttributedBody};
use super::plist::read;
use crate::{Blob, Error};

/// Nanoseconds per second: Apple's message times are nanoseconds since 2001-01-01.
const NANOS: i64 = 1_000_000_000;

/// A decoded `messageSummaryInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SummaryInfo {
    /// `otr`: the message's parts, by part number.
    pub parts: Vec<PartRange>,
    /// `ec`: the edit history of every edited part, by part number.
    pub edits: Vec<PartEdits>,
    /// `ep`: the numbers of the edited parts, as listed.
    pub edited_parts: Vec<i64>,
    /// `rp`: the numbers of the unsent parts, as listed.
    pub unsent_parts: Vec<i64>,
    /// The names of the keys not decoded here, sorted.
    pub other_keys: Vec<String>,
}

/// One entry of `otr`: a message part and where its text sat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartRange {
    /// The part number (`__kIMMessagePartAttributeName`).
    pub part: i64,
    /// `lo`: the offset of the part's text, in UTF-16 units.
    pub offset: i64,
    /// `le`: the length of the part's text, in UTF-16 units.
    pub length: i64,
}

/// The edit history of one message part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartEdits {
    /// The part number.
    pub part: i64,
    /// Every version of the part in order: the original first, the current text last.
    pub versions: Vec<EditVersion>,
}

/// One version of an edited message part.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EditVersion {
    /// When this version was written, in Apple nanoseconds since 2001-01-01 UTC, whole seconds
    /// (Apple stores fractional seconds in `d`; they are in [`EditVersion::seconds`]).
    pub date: i64,
    /// `d` as stored: seconds since 2001-01-01 UTC.
    pub seconds: f64,
    /// The version's text and attributes, decoded from its typedstream `t`.
    pub body: AttributedBody,
    /// `bcg`: a GUID Messages attaches to some versions (seen on edits that added a link).
    pub guid: Option<String>,
}

// `seconds` is a finite float (checked on decode), so equality is an equivalence.
impl Eq for EditVersion {}

impl EditVersion {
    /// The version's text.
    pub fn text(&self) -> &str {
        &self.body.text
    }
}

impl SummaryInfo {
    /// How many of the message's parts were not unsent.
    pub fn remaining_parts(&self) -> usize {
        self.parts.iter().filter(|p| !self.unsent_parts.contains(&p.part)).count()
    }

    /// Whether the whole message was unsent: it had parts and none remain.
    pub fn is_unsent(&self) -> bool {
        !self.parts.is_empty() && self.remaining_parts() == 0
    }

    /// The edit history of `part`, if it was edited.
    pub fn edits_of(&self, part: i64) -> Option<&PartEdits> {
        self.edits.iter().find(|e| e.part == part)
    }
}

/// Decodes a `messageSummaryInfo` plist. Missing keys give empty lists.
pub fn decode_summary_info(bytes: &[u8]) -> Result<SummaryInfo, Error> {
    let plist = read(bytes, Blob::SummaryInfo)?;
    let root = plist.as_dictionary().ok_or_else(|| shape("root is not a dictionary"))?;
    let mut info = SummaryInfo::default();
    for (key, value) in root {
        match key.as_str() {
            "otr" => info.parts = part_ranges(value)?,
            "ec" => info.edits = edits(value)?,
            "ep" => info.edited_parts = integers(value, "ep")?,
            "rp" => info.unsent_parts = integers(value, "rp")?,
            other => info.other_keys.push(other.to_owned()),
        }
    }
    info.other_keys.sort();
    Ok(info)
}

fn shape(detail: impl Into<String>) -> Error {
    Error::shape(Blob::SummaryInfo, detail)
}

/// A dictionary keyed by part number, as `(part, value)` sorted by part.
fn by_part<'a>(value: &'a Value, key: &str) -> Result<Vec<(i64, &'a Value)>, Error> {
    let dict = value.as_dictionary().ok_or_else(|| shape(format!("{key} is not a dictionary")))?;
    let mut parts = dict
        .iter()
        .map(|(part, value)| part.parse::<i64>().map(|part| (part, value)).map_err(|_| shape(format!("{key} has a key {part:?} that is not a part number"))))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|(part, _)| *part);
    Ok(parts)
}

fn part_ranges(value: &Value) -> Result<Vec<PartRange>, Error> {
    by_part(value, "otr")?
        .into_iter()
        .map(|(part, range)| {
            let range = range.as_dictionary().ok_or_else(|| shape(format!("otr part {part} is not a dictionary")))?;
            Ok(PartRange { part, offset: integer_at(range, "lo").unwrap_or(0), length: integer_at(range, "le").unwrap_or(0) })
        })
        .collect()
}

fn edits(value: &Value) -> Result<Vec<PartEdits>, Error> {
    by_part(value, "ec")?
        .into_iter()
        .map(|(part, versions)| {
            let versions = versions
                .as_array()
                .ok_or_else(|| shape(format!("ec part {part} is not an array")))?
                .iter()
                .enumerate()
                .map(|(index, version)| edit_version(version).map_err(|source| Error::EditVersion { part, version: index, source: Box::new(source) }))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PartEdits { part, versions })
        })
        .collect()
}

fn edit_version(value: &Value) -> Result<EditVersion, Error> {
    let version = value.as_dictionary().ok_or_else(|| shape("not a dictionary"))?;
    let seconds = match version.get("d") {
        Some(Value::Real(seconds)) => *seconds,
        Some(Value::Integer(seconds)) => seconds.as_signed().map(|s| s as f64).ok_or_else(|| shape("d is out of range"))?,
        _ => return Err(shape("no date d")),
    };
    // Whole seconds that fit in i64 nanoseconds (about ±292 years around 2001).
    let whole = seconds.trunc();
    if !seconds.is_finite() || whole.abs() >= (i64::MAX / NANOS) as f64 {
        return Err(shape("d is not a usable time"));
    }
    let date = whole as i64 * NANOS;
    let text = version.get("t").and_then(Value::as_data).ok_or_else(|| shape("no text t"))?;
    let body = decode_attributed_body(text)?;
    let guid = version.get("bcg").and_then(Value::as_string).map(str::to_owned);
    Ok(EditVersion { date, seconds, body, guid })
}

fn integer_at(dict: &Dictionary, key: &str) -> Option<i64> {
    dict.get(key)?.as_signed_integer()
}

fn integers(value: &Value, key: &str) -> Result<Vec<i64>, Error> {
    value
        .as_array()
        .ok_or_else(|| shape(format!("{key} is not an array")))?
        .iter()
        .map(|item| item.as_signed_integer().ok_or_else(|| shape(format!("{key} holds a value that is not an integer"))))
        .collect()
}
