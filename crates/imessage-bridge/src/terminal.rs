//! What the bridge prints to a terminal from data it did not write: chat names, ids and error
//! texts come from other people's phones and from servers, and a control character among them
//! (an escape sequence, a carriage return, a newline) could move the cursor, recolour or clear
//! the screen, or forge a row of the `status`, `verify` or `doctor` output. [`terminal_safe`]
//! escapes them. Database URIs can hold a password; [`redacted_uri`] is how they are shown.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls, DEL, the line and
/// paragraph separators, and the bidirectional overrides and isolates (which reorder the text
/// around them).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as an escape (`\n`, `\r`, `\t`, else `\u{…}`);
/// borrowed when there is none.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A database URI as it may be shown: the password of `scheme://user:password@host/…` and a
/// `password=` query parameter replaced by `***` (a `sqlite:` path is shown as it is).
pub fn redacted_uri(uri: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = uri.split_once("://") else { return Cow::Borrowed(uri) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params = query.split('&').map(|p| match p.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => p.to_string(),
            });
            format!("{path}?{}", params.collect::<Vec<_>>().join("&"))
        }
        None => tail.to_string(),
    };
    let shown = format!("{scheme}://{authority}{tail}");
    if shown == uri {
        Cow::Borrowed(uri)
    } else {
        Cow::Owned(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(terminal_safe("Family 👨‍👩‍👧 chat, ünïcödé"), Cow::Borrowed(_)));
        assert_eq!(terminal_safe("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(terminal_safe("row\nforged\rrow\t"), "row\\nforged\\rrow\\t");
        assert_eq!(terminal_safe("x\u{7f}\u{9b}y"), "x\\u{7f}\\u{9b}y");
        assert_eq!(terminal_safe("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(terminal_safe("\u{2028}"), "\\u{2028}");
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redacted_uri("postgres://bridge:s3cret@db.example:5432/imb"), "postgres://bridge:***@db.example:5432/imb");
        assert_eq!(redacted_uri("postgresql://u:p%40ss:w@h/db?sslmode=require"), "postgresql://u:***@h/db?sslmode=require");
        assert_eq!(redacted_uri("postgres://h/db?user=u&password=pw&sslmode=require"), "postgres://h/db?user=u&password=***&sslmode=require");
        for kept in ["postgres://bridge@localhost/imb", "sqlite:/var/lib/imb/bridge.db", "postgres:///imb?host=/run/postgresql"] {
            assert!(matches!(redacted_uri(kept), Cow::Borrowed(_)), "{kept}");
        }
    }
}
