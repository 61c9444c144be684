//! vCard content lines (RFC 2425/6350 and the older 2.1): unfolding, the `group.NAME;params:value`
//! split, parameter values in quotes, quoted-printable with its soft line breaks, charsets, and
//! the backslash escapes of text values.

/// One unfolded line of a vCard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentLine {
    /// The first physical line it was read from (1-based).
    pub line_no: usize,
    /// The property name, upper case, without its group (`item1.TEL` is `TEL`).
    pub name: String,
    /// Parameters: name upper case with its values. A 2.1 bare parameter (`;HOME;QUOTED-PRINTABLE`)
    /// has the name `""` and itself as its value.
    pub params: Vec<(String, Vec<String>)>,
    /// The raw value, not yet decoded or unescaped.
    pub value: String,
}

impl ContentLine {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params.iter().filter(move |(n, _)| n == name).flat_map(|(_, vs)| vs.iter().map(String::as_str))
    }

    fn has_value(&self, name: &str, value: &str) -> bool {
        self.values(name).any(|v| v.eq_ignore_ascii_case(value))
    }

    pub fn is_quoted_printable(&self) -> bool {
        self.has_value("ENCODING", "QUOTED-PRINTABLE") || self.has_value("", "QUOTED-PRINTABLE")
    }

    /// `ENCODING=b` (3.0), `ENCODING=BASE64` or a bare `BASE64` (2.1).
    pub fn is_base64(&self) -> bool {
        ["B", "BASE64"].iter().any(|v| self.has_value("ENCODING", v) || self.has_value("", v))
    }

    pub fn is_uri(&self) -> bool {
        self.has_value("VALUE", "URI") || self.has_value("VALUE", "URL")
    }

    /// The value as text: quoted-printable decoded in its charset where the line says so.
    /// Backslash escapes are left for the caller (structured values split on them first).
    pub fn decoded(&self) -> String {
        if !self.is_quoted_printable() {
            return self.value.clone();
        }
        let bytes = quoted_printable(&self.value);
        let latin1 = self.values("CHARSET").any(|c| {
            let c = c.to_ascii_uppercase();
            c == "ISO-8859-1" || c == "LATIN1" || c == "WINDOWS-1252" || c == "CP1252" || c == "US-ASCII"
        });
        if latin1 {
            bytes.iter().map(|&b| char::from(b)).collect()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

/// The unfolded lines of `text` with their first physical line numbers; blank lines dropped.
/// A line that begins with a space or tab continues the one before (RFC 6350 §3.2). A
/// quoted-printable line that ends in `=` continues on the next physical line whatever that
/// begins with (vCard 2.1 soft line break); the `=` is removed.
pub(crate) fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut soft_break = false;
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let folded = raw.starts_with([' ', '\t']);
        match out.last_mut() {
            Some((_, last)) if soft_break => {
                last.pop();
                last.push_str(if folded && raw.trim_start().starts_with('=') { raw.trim_start() } else { raw });
            }
            Some((_, last)) if folded => last.push_str(&raw[1..]),
            _ if raw.trim().is_empty() => {
                soft_break = false;
                continue;
            }
            _ => out.push((i + 1, raw.to_string())),
        }
        soft_break = out.last().is_some_and(|(_, l)| l.ends_with('=') && head_is_quoted_printable(l));
    }
    out
}

fn head_is_quoted_printable(line: &str) -> bool {
    let head = line.split(':').next().unwrap_or_default();
    head.to_ascii_uppercase().contains("QUOTED-PRINTABLE")
}

/// Splits an unfolded line into name, parameters and value; None if it has no `:` outside quotes.
pub(crate) fn parse_line(line_no: usize, line: &str) -> Option<ContentLine> {
    let mut in_quotes = false;
    let colon = line.char_indices().find_map(|(i, c)| {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => return Some(i),
            _ => {}
        }
        None
    })?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = split_outside_quotes(head, ';').into_iter();
    let full_name = parts.next()?.trim();
    let name = full_name.rsplit('.').next().unwrap_or(full_name).to_ascii_uppercase();
    if name.is_empty() {
        return None;
    }
    let params = parts
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_uppercase(),
                split_outside_quotes(v, ',').into_iter().flat_map(|v| v.trim().trim_matches('"').split(',')).map(|v| v.trim().to_string()).collect(),
            ),
            None => (String::new(), vec![p.trim().to_string()]),
        })
        .collect();
    Some(ContentLine { line_no, name, params, value: value.to_string() })
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_quotes) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// Decodes quoted-printable (`=C3=A9` → bytes); a `=` not followed by two hex digits stays as is.
pub(crate) fn quoted_printable(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Splits a value on `sep` where it is not escaped by a backslash, and unescapes each part.
pub(crate) fn split_escaped(value: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            current.push('\\');
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if c == sep {
            out.push(unescape(&current));
            current.clear();
        } else {
            current.push(c);
        }
    }
    out.push(unescape(&current));
    out
}

/// `\n` `\N` → newline, `\,` `\;` `\:` `\\` → the character itself (RFC 6350 §3.4).
pub(crate) fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_join() {
        let lines = unfold("BEGIN:VCARD\r\nFN:Sam\r\n  Rivera\r\n\t Jr\r\n\r\nEND:VCARD");
        assert_eq!(lines, vec![(1, "BEGIN:VCARD".into()), (2, "FN:Sam Rivera Jr".into()), (6, "END:VCARD".into())]);
    }

    #[test]
    fn quoted_printable_soft_breaks() {
        let lines = unfold("FN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Jos=C3=\n=A9 M=\n =C3=BCller\nTEL:1");
        assert_eq!(lines.len(), 2);
        let line = parse_line(lines[0].0, &lines[0].1).expect("line");
        assert_eq!(line.decoded(), "José Müller");
        let latin = parse_line(1, "N;CHARSET=ISO-8859-1;QUOTED-PRINTABLE:M=FCller;J=F6rg").expect("line");
        assert_eq!(latin.decoded(), "Müller;Jörg");
        assert_eq!(quoted_printable("a=zz=4"), b"a=zz=4");
    }

    #[test]
    fn params_groups_and_quotes() {
        let l = parse_line(3, r#"item1.TEL;TYPE="work,voice";PREF=1:+1 555 123 4567"#).expect("line");
        assert_eq!(l.name, "TEL");
        assert_eq!(l.params[0], ("TYPE".to_string(), vec!["work".to_string(), "voice".to_string()]));
        assert_eq!(l.value, "+1 555 123 4567");
        let p = parse_line(4, "PHOTO:data:image/jpeg;base64,AAAA").expect("line");
        assert_eq!(p.value, "data:image/jpeg;base64,AAAA");
        let q = parse_line(5, r#"X-A;LABEL="a:b":v"#).expect("line");
        assert_eq!(q.value, "v");
        assert!(parse_line(6, "no colon here").is_none());
        assert!(parse_line(7, "PHOTO;JPEG;BASE64:xx").expect("line").is_base64());
    }

    #[test]
    fn escapes() {
        assert_eq!(split_escaped(r"Rivera\, Jr.;Sam;;Dr.\;x", ';'), vec!["Rivera, Jr.", "Sam", "", "Dr.;x"]);
        assert_eq!(unescape(r"a\nb\\c\,"), "a\nb\\c,");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }
}
