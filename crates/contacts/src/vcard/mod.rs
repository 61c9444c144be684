//! vCard files (`.vcf`): what phones, Google Contacts, Outlook and CardDAV servers give.
//!
//! A small parser of our own rather than a vCard crate: the bridge needs a handful of properties
//! (names, numbers, addresses, one photo) from files written by twenty years of exporters, and
//! those need leniency that a strict RFC 6350 parser refuses: vCard 2.1's quoted-printable names
//! with soft line breaks and bare parameters (`TEL;CELL;PREF:`), 3.0's `ENCODING=b` photos,
//! 4.0's `data:` URIs and `tel:` values, Apple's `item1.` groups, missing `END:VCARD` at the end
//! of a truncated file. Every card that does not parse, and every property that cannot be used,
//! is a [`Problem`](crate::Problem) with its line number; nothing is fetched from the network (a
//! photo on a web server is reported, not downloaded).

mod line;

use std::io::Read;
use std::path::Path;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::{Card, CardSet, Error, Photo, Problem, Result, MAX_PHOTO_BYTES, MAX_VCF_BYTES};
use line::{parse_line, split_escaped, unescape, unfold, ContentLine};

/// What [`parse`] found: the cards, and the problems with their line numbers.
pub type VcardParse = CardSet;

/// Exporters write base64 with and without padding, with line breaks inside.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true),
);

/// Reads a `.vcf` file (at most [`MAX_VCF_BYTES`]; UTF-8, or UTF-16 with a byte-order mark as
/// some Windows exporters write) and parses it with the source `vcf:<path>`.
pub fn read_file(path: &Path) -> Result<VcardParse> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let too_large = || Error::TooLarge { path: path.display().to_string(), cap: MAX_VCF_BYTES };
    if file.metadata().map_err(|e| Error::io(path, e))?.len() > MAX_VCF_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_VCF_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_VCF_BYTES {
        return Err(too_large());
    }
    let source = format!("vcf:{}", path.display());
    let (text, lossy) = decode_text(&bytes);
    let mut parsed = parse(&text, &source);
    if lossy {
        parsed.problems.insert(0, Problem { source, item: "file".into(), reason: "not valid UTF-8: undecodable bytes replaced by U+FFFD".into() });
    }
    Ok(parsed)
}

/// The text of a file's bytes and whether anything had to be replaced.
fn decode_text(bytes: &[u8]) -> (String, bool) {
    let utf16 = |be: bool, body: &[u8]| {
        let units = body.chunks(2).map(|c| match *c {
            [a, b] if be => u16::from_be_bytes([a, b]),
            [a, b] => u16::from_le_bytes([a, b]),
            _ => 0xFFFD,
        });
        let mut lossy = !body.len().is_multiple_of(2);
        let text = char::decode_utf16(units)
            .map(|r| {
                r.unwrap_or_else(|_| {
                    lossy = true;
                    '\u{FFFD}'
                })
            })
            .collect();
        (text, lossy)
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(false, rest),
        [0xFE, 0xFF, rest @ ..] => utf16(true, rest),
        _ => {
            let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            match String::from_utf8_lossy(body) {
                std::borrow::Cow::Borrowed(s) => (s.to_string(), false),
                std::borrow::Cow::Owned(s) => (s, true),
            }
        }
    }
}

/// Parses every card of a vCard text. `source` names where it came from in each card and problem
/// (e.g. `vcf:/home/me/contacts.vcf`, `carddav:https://…/card.vcf`). A card without a `UID` gets
/// `<source>#<n>` (its position, from 1).
pub fn parse(text: &str, source: &str) -> VcardParse {
    let mut out = VcardParse::default();
    let mut current: Option<(usize, Card)> = None;
    let mut nested = 0usize;
    let mut count = 0usize;
    for (line_no, raw) in unfold(text) {
        let problem = |reason: String| Problem { source: source.to_string(), item: format!("line {line_no}"), reason };
        let Some(line) = parse_line(line_no, &raw) else {
            out.problems.push(problem("not a vCard content line (no `name:value`)".into()));
            continue;
        };
        let is = |name: &str| line.name == name && line.value.trim().eq_ignore_ascii_case("VCARD");
        match &mut current {
            None if is("BEGIN") => {
                count += 1;
                current = Some((line_no, Card { source: source.to_string(), ..Card::default() }));
            }
            None => out.problems.push(problem(format!("`{}` outside BEGIN:VCARD … END:VCARD", line.name))),
            Some(_) if is("BEGIN") => nested += 1,
            Some(_) if is("END") && nested > 0 => nested -= 1,
            Some(_) if is("END") => {
                if let Some((_, card)) = current.take() {
                    out.cards.push(finish(card, source, count));
                }
            }
            Some(_) if nested > 0 => {}
            Some((_, card)) => {
                if let Err(reason) = apply(card, &line) {
                    out.problems.push(Problem { source: source.to_string(), item: format!("card {count} (line {line_no})"), reason });
                }
            }
        }
    }
    if let Some((begin, card)) = current {
        out.problems.push(Problem {
            source: source.to_string(),
            item: format!("card {count} (line {begin})"),
            reason: "no END:VCARD before the end of the text; the card is used as read".into(),
        });
        out.cards.push(finish(card, source, count));
    }
    out
}

fn finish(mut card: Card, source: &str, n: usize) -> Card {
    if card.uid.trim().is_empty() {
        card.uid = format!("{source}#{n}");
    }
    card
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Applies one property to the card being read; Err is a problem with the property.
fn apply(card: &mut Card, line: &ContentLine) -> Result<(), String> {
    let set = |field: &mut Option<String>, value: Option<String>| {
        if field.is_none() {
            *field = value;
        }
    };
    match line.name.as_str() {
        "FN" => set(&mut card.full_name, non_empty(unescape(&line.decoded()))),
        "N" => {
            let parts = split_escaped(&line.decoded(), ';');
            let mut parts = parts.into_iter();
            set(&mut card.family, parts.next().and_then(non_empty));
            set(&mut card.given, parts.next().and_then(non_empty));
        }
        "NICKNAME" => set(&mut card.nickname, split_escaped(&line.decoded(), ',').into_iter().find_map(non_empty)),
        "ORG" => set(&mut card.organization, split_escaped(&line.decoded(), ';').into_iter().next().and_then(non_empty)),
        "UID" if card.uid.is_empty() => card.uid = unescape(line.value.trim()),
        "TEL" => {
            let value = unescape(&line.decoded());
            let value = value.trim();
            let number = match value.get(..4) {
                Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => value[4..].split(';').next().unwrap_or_default(),
                _ => value,
            };
            match non_empty(number.to_string()) {
                Some(n) => card.phones.push(n),
                None => return Err("TEL without a number".into()),
            }
        }
        "EMAIL" => match non_empty(unescape(&line.decoded())) {
            Some(e) => card.emails.push(e),
            None => return Err("EMAIL without an address".into()),
        },
        "PHOTO" if card.photo.is_none() => card.photo = photo(line)?,
        _ => {}
    }
    Ok(())
}

/// The photo of a `PHOTO` line: inline base64 (2.1/3.0), a `data:` URI (4.0); a URL is a
/// problem (never fetched).
fn photo(line: &ContentLine) -> Result<Option<Photo>, String> {
    let value = line.value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if line.is_base64() {
        return decode_photo(value).map(Some);
    }
    let scheme = value.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("data") => {
            let (meta, data) = value.split_once(',').ok_or("data URI without a `,`")?;
            if !meta.to_ascii_lowercase().ends_with(";base64") {
                return Err("data URI photo that is not base64".into());
            }
            decode_photo(data).map(Some)
        }
        Some("http" | "https") => Err("remote photo not fetched (the bridge does not download contact photos from the web)".into()),
        Some(other) if line.is_uri() || other.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') => Err(format!("photo URI `{other}:` not supported")),
        // Some exporters leave out ENCODING: try the value as base64.
        _ => decode_photo(value).map(Some).map_err(|e| format!("photo without ENCODING: {e}")),
    }
}

fn decode_photo(b64: &str) -> Result<Photo, String> {
    let compact: Vec<u8> = b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.len() > MAX_PHOTO_BYTES / 3 * 4 + 8 {
        return Err(format!("photo of about {} bytes is larger than the {MAX_PHOTO_BYTES}-byte cap", compact.len() / 4 * 3));
    }
    let bytes = BASE64.decode(&compact).map_err(|e| format!("photo is not valid base64: {e}"))?;
    Photo::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_and_bom() {
        let mut le = vec![0xFF, 0xFE];
        le.extend("FN:é".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode_text(&le), ("FN:é".to_string(), false));
        assert_eq!(decode_text(b"\xEF\xBB\xBFFN:x"), ("FN:x".to_string(), false));
        assert!(decode_text(b"FN:\xFFx").1);
    }

    #[test]
    fn lines_outside_cards_and_unclosed_cards_are_problems() {
        let parsed = parse("junk:1\nBEGIN:VCARD\nFN:A\nnonsense\n", "t");
        assert_eq!(parsed.cards.len(), 1);
        assert_eq!(parsed.cards[0].uid, "t#1");
        let reasons: Vec<&str> = parsed.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("outside"));
        assert!(reasons[1].contains("not a vCard content line"));
        assert!(reasons[2].contains("no END:VCARD"));
    }
}
