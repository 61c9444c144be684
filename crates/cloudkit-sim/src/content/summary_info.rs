//! `messageSummaryInfo`: the edits and unsends of a message, as Messages records them.
//!
//! Why: an edited or unsent iMessage keeps its history only in this blob (the record's text is
//! the current text, or empty once unsent), so the simulator writes it for the bridge to turn
//! into `m.replace` edits and redactions.
//!
//! The blob is a binary plist dictionary; the keys, as `Edited.plist` and `Deleted.plist` of
//! `shared/fixtures/apple/` have them (and in their order):
//!
//! | key | value |
//! |---|---|
//! | `amc` | 0 (always present in both fixtures) |
//! | `ec` | part number (a string) → the part's versions, the original first: `t` the version's text as an `attributedBody` typedstream, `d` its time in seconds since 2001-01-01 (a real), `bcg` a GUID on some versions |
//! | `ust` | true (always present in both fixtures) |
//! | `ep` | the edited parts' numbers |
//! | `otr` | part number → `lo` offset and `le` length of the part's text, UTF-16 units |
//! | `rp` | the unsent (retracted) parts' numbers |
//!
//! A version's text is archived as Messages archives it: the original with
//! [`BodyStyle::EDIT_ORIGINAL`], the edits with [`BodyStyle::EDIT`]; with the fixture's inputs the
//! output is `Edited.plist` and `Deleted.plist` byte for byte (the plist is laid out by
//! [`super::bplist`], CoreFoundation's order).

use plist::{Dictionary, Value};

use super::attributed_body::{encode_attributed_body_with, BodyRun, BodyStyle};
use super::{bplist, ContentError};

/// Nanoseconds per second.
const NANOS: i64 = 1_000_000_000;

/// What happened to a message after it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryInfoSpec {
    /// `otr`: the message's parts and where their text sits.
    pub parts: Vec<PartSpan>,
    /// `ec` (and `ep`): the edit history of every edited part.
    pub edits: Vec<PartHistory>,
    /// `rp`: the parts that were unsent.
    pub unsent_parts: Vec<i64>,
}

/// One part of a message and the place of its text, in UTF-16 code units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartSpan {
    /// The part number.
    pub part: i64,
    /// `lo`: where the part's text starts.
    pub offset: i64,
    /// `le`: how long it is.
    pub length: i64,
}

/// The versions of one edited part, the original first and the current text last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHistory {
    /// The part number.
    pub part: i64,
    /// At least one version.
    pub versions: Vec<VersionSpec>,
}

/// One version of an edited part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionSpec {
    /// When it was written: nanoseconds since 2001-01-01 UTC.
    pub date: i64,
    /// Its text.
    pub text: String,
    /// `bcg`: the GUID Messages gives some versions (seen on an edit that added a link).
    pub guid: Option<String>,
}

/// Encodes a `messageSummaryInfo` plist.
pub fn encode_summary_info(spec: &SummaryInfoSpec) -> Result<Vec<u8>, ContentError> {
    bplist::to_bytes(&summary_value(spec)?)
}

fn summary_value(spec: &SummaryInfoSpec) -> Result<Value, ContentError> {
    let mut root = Dictionary::new();
    root.insert("amc".into(), Value::from(0));
    if !spec.edits.is_empty() {
        let mut edits = Dictionary::new();
        for history in &spec.edits {
            let key = part_key(history.part, "ec")?;
            if edits.contains_key(&key) {
                return Err(ContentError::invalid(format!("part {} has two edit histories", history.part)));
            }
            edits.insert(key, versions(history)?);
        }
        root.insert("ec".into(), Value::Dictionary(edits));
    }
    root.insert("ust".into(), Value::Boolean(true));
    if !spec.edits.is_empty() {
        let edited = spec.edits.iter().map(|h| Value::from(h.part)).collect();
        root.insert("ep".into(), Value::Array(edited));
    }
    if !spec.parts.is_empty() {
        let mut ranges = Dictionary::new();
        for span in &spec.parts {
            let key = part_key(span.part, "otr")?;
            if ranges.contains_key(&key) {
                return Err(ContentError::invalid(format!("part {} has two ranges", span.part)));
            }
            if span.offset < 0 || span.length < 0 {
                return Err(ContentError::invalid(format!("part {} has a negative range", span.part)));
            }
            let mut range = Dictionary::new();
            range.insert("lo".into(), Value::from(span.offset));
            range.insert("le".into(), Value::from(span.length));
            ranges.insert(key, Value::Dictionary(range));
        }
        root.insert("otr".into(), Value::Dictionary(ranges));
    }
    if !spec.unsent_parts.is_empty() {
        let mut unsent = Vec::with_capacity(spec.unsent_parts.len());
        for &part in &spec.unsent_parts {
            part_key(part, "rp")?;
            unsent.push(Value::from(part));
        }
        root.insert("rp".into(), Value::Array(unsent));
    }
    Ok(Value::Dictionary(root))
}

/// A part number as a dictionary key.
fn part_key(part: i64, key: &str) -> Result<String, ContentError> {
    if part < 0 {
        return Err(ContentError::invalid(format!("{key} names the negative part {part}")));
    }
    Ok(part.to_string())
}

fn versions(history: &PartHistory) -> Result<Value, ContentError> {
    if history.versions.is_empty() {
        return Err(ContentError::invalid(format!("the edit history of part {} has no versions", history.part)));
    }
    let mut versions = Vec::with_capacity(history.versions.len());
    for (index, version) in history.versions.iter().enumerate() {
        let style = if index == 0 { BodyStyle::EDIT_ORIGINAL } else { BodyStyle::EDIT };
        let text = encode_attributed_body_with(&[BodyRun::text(version.text.clone(), history.part)], style)?;
        let mut entry = Dictionary::new();
        entry.insert("t".into(), Value::Data(text));
        entry.insert("d".into(), Value::Real(apple_seconds(version.date)));
        if let Some(guid) = &version.guid {
            entry.insert("bcg".into(), Value::from(guid.as_str()));
        }
        versions.push(Value::Dictionary(entry));
    }
    Ok(Value::Array(versions))
}

/// Apple nanoseconds as the seconds Messages stores in `d`: whole seconds plus the fraction.
fn apple_seconds(nanos: i64) -> f64 {
    nanos.div_euclid(NANOS) as f64 + nanos.rem_euclid(NANOS) as f64 / NANOS as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_keep_the_fraction_of_the_fixture() {
        assert_eq!(apple_seconds(690_513_474_272_551_100), 690513474.2725511);
        assert_eq!(apple_seconds(-1_500_000_000), -1.5);
    }

    #[test]
    fn impossible_summaries_are_errors() {
        let no_versions = SummaryInfoSpec { edits: vec![PartHistory { part: 0, versions: vec![] }], ..SummaryInfoSpec::default() };
        assert!(encode_summary_info(&no_versions).is_err());
        let span = PartSpan { part: 0, offset: 0, length: 1 };
        let twice = SummaryInfoSpec { parts: vec![span, span], ..SummaryInfoSpec::default() };
        assert!(encode_summary_info(&twice).is_err());
        let negative = SummaryInfoSpec { unsent_parts: vec![-1], ..SummaryInfoSpec::default() };
        assert!(encode_summary_info(&negative).is_err());
    }
}
