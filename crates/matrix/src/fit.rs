//! Text parts too large for one Matrix event: the link preview goes first, then the text is
//! split into consecutive events, each marked `(i/n)`.
//!
//! Why: a homeserver refuses an event over 64 KiB of JSON (Synapse: 413 `M_TOO_LARGE`), the
//! whole event counted, envelope and signatures included. A text over about 64 KB (32 KB with
//! formatting, since `formatted_body` repeats it) or a large link preview would be refused on
//! every try, and the chat's later messages would wait behind it forever. The plan therefore
//! never holds a text event whose content is over [`MAX_CONTENT_BYTES`]:
//!
//! 1. a link preview that makes it too large is dropped (the text is worth more than the card);
//! 2. a text still too large is cut at paragraph ends, else line ends, else sentence ends, else
//!    spaces, else any character, into pieces of at most [`CHUNK_BYTES`] of JSON each, sent as
//!    plain text (the formatting is dropped with the split: the words are all kept). Each piece
//!    starts with `(i/n) ` and carries its place in [`crate::keys::CHUNK_KEY`], so `verify` can
//!    check that every piece is there.
//!
//! Sizes are counted as JSON encodes them (`"` and control characters take more than a byte).

use crate::part::{text_content, PartContent, PartEvent};

/// The largest text event content the plan lets through, in bytes of JSON: well under the 65,536
/// of a whole event, leaving room for the envelope, the bridge's keys and a reply relation.
pub const MAX_CONTENT_BYTES: usize = 48_000;
/// The largest piece of a split text, in bytes of JSON-encoded body.
pub const CHUNK_BYTES: usize = 30_000;

/// Makes every text part of `parts` fit (see the module docs); other parts pass unchanged.
pub fn fit(parts: Vec<PartEvent>) -> Vec<PartEvent> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let PartContent::Text { body, html, mut link_preview } = p.content else {
            out.push(p);
            continue;
        };
        if link_preview.is_some() && content_len(&body, html.as_deref(), link_preview.as_ref()) > MAX_CONTENT_BYTES {
            link_preview = None;
        }
        if content_len(&body, html.as_deref(), link_preview.as_ref()) <= MAX_CONTENT_BYTES {
            out.push(PartEvent { content: PartContent::Text { body, html, link_preview }, ..p });
            continue;
        }
        let pieces = split(&body, CHUNK_BYTES);
        let n = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let body = format!("({}/{n}) {piece}", i + 1);
            // The preview card stays with the first piece, which has the room for it.
            let link_preview = if i == 0 { link_preview.clone() } else { None };
            let link_preview = link_preview.filter(|p| content_len(&body, None, Some(p)) <= MAX_CONTENT_BYTES);
            out.push(PartEvent { part: p.part, content: PartContent::Text { body, html: None, link_preview }, chunk: Some((i + 1, n)) });
        }
    }
    out
}

/// The JSON size of a text part's content.
fn content_len(body: &str, html: Option<&str>, preview: Option<&imessage::records::LinkPreviewRecord>) -> usize {
    serde_json::to_vec(&text_content(body, html, preview)).map_or(usize::MAX, |v| v.len())
}

/// The bytes `c` takes inside a JSON string.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Where a piece may end, best first: after a paragraph, a line, a sentence, a space.
const BREAKS: [&[&str]; 4] = [&["\n\n"], &["\n"], &[". ", "! ", "? ", "。", "！", "？"], &[" ", "\t"]];

/// Cuts `text` into pieces of at most `max` JSON bytes each, at the best boundary that leaves a
/// piece at least half full; the pieces joined give `text` back.
pub fn split(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The longest prefix that fits, on a char boundary.
        let mut used = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            used += json_len(c);
            if used > max {
                end = i;
                break;
            }
        }
        if end == rest.len() {
            pieces.push(rest);
            break;
        }
        let window = &rest[..end];
        let cut = BREAKS
            .iter()
            .find_map(|marks| marks.iter().filter_map(|m| window.rfind(m).map(|at| at + m.len())).max().filter(|&at| at >= end / 2))
            .unwrap_or(end)
            .max(rest.chars().next().map_or(1, char::len_utf8));
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use imessage::records::LinkPreviewRecord;

    fn text(body: &str, html: Option<&str>, preview: Option<LinkPreviewRecord>) -> PartEvent {
        PartEvent { part: 0, content: PartContent::Text { body: body.into(), html: html.map(str::to_string), link_preview: preview }, chunk: None }
    }

    #[test]
    fn pieces_end_at_the_best_boundary_and_join_to_the_text() {
        let para = "First sentence here. Second one! ".repeat(40);
        let text = format!("{para}\n\n{para}\n\n{para}");
        let pieces = split(&text, 2_000);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.chars().map(json_len).sum::<usize>() <= 2_000));
        assert!(pieces[0].ends_with("\n\n"), "{:?}", &pieces[0][pieces[0].len() - 20..]);
        // No paragraph in reach: a sentence end.
        let words = "Word word word. ".repeat(500);
        let pieces = split(&words, 1_000);
        assert!(pieces[..pieces.len() - 1].iter().all(|p| p.ends_with(". ")));
        // No boundary at all, and characters JSON escapes: still within the limit, nothing lost.
        let blob = "\"ä😀\u{1}".repeat(3_000);
        let pieces = split(&blob, 1_000);
        assert_eq!(pieces.concat(), blob);
        assert!(pieces.iter().all(|p| !p.is_empty() && p.chars().map(json_len).sum::<usize>() <= 1_000));
    }

    #[test]
    fn a_long_text_is_split_into_marked_pieces_that_each_fit() {
        let body = "All work and no play makes Jack a dull boy. ".repeat(1_600); // 70,400 chars
        let parts = fit(vec![text(&body, Some("<b>x</b>"), None)]);
        assert!(parts.len() >= 3, "{}", parts.len());
        let n = parts.len();
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.chunk, Some((i + 1, n)));
            let PartContent::Text { body, html, .. } = &p.content else { panic!() };
            assert!(html.is_none());
            assert!(content_len(body, None, None) <= MAX_CONTENT_BYTES);
            let marker = format!("({}/{n}) ", i + 1);
            joined.push_str(body.strip_prefix(&marker).expect("marked"));
        }
        assert_eq!(joined, body);
    }

    #[test]
    fn an_oversized_preview_is_dropped_before_the_text_is_touched() {
        let preview = LinkPreviewRecord { title: Some("t".repeat(60_000)), url: Some("https://example.org".into()), ..Default::default() };
        let parts = fit(vec![text("see https://example.org", Some("see <a href=\"https://example.org\">x</a>"), Some(preview.clone()))]);
        assert_eq!(parts, vec![text("see https://example.org", Some("see <a href=\"https://example.org\">x</a>"), None)]);
        // A small preview and a small text stay as they are.
        let small = LinkPreviewRecord { title: Some("Example".into()), ..Default::default() };
        assert_eq!(fit(vec![text("hi", None, Some(small.clone()))]), vec![text("hi", None, Some(small))]);
    }
}
