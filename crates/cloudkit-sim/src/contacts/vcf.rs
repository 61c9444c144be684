//! Cards as a vCard file, as phones, Google Contacts and Outlook export them: 3.0 cards with
//! `PHOTO;ENCODING=b;TYPE=JPEG:` and 4.0 cards with a `data:` URI photo, lines folded at 75
//! octets (RFC 6350 §3.2: CRLF and one space, never inside a UTF-8 sequence), text escaped.

use base64::Engine;

use super::Card;

/// Escapes a text value (`\`, `,`, `;`, newlines).
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace(',', "\\,").replace(';', "\\;").replace('\n', "\\n")
}

/// Folds one content line into `out`.
fn fold(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

fn label_type(label: &str) -> &'static str {
    match label {
        "_$!<Mobile>!$_" => "CELL",
        "_$!<Work>!$_" => "WORK",
        _ => "HOME",
    }
}

/// One card.
pub fn card(card: &Card) -> String {
    let mut out = String::new();
    let mut line = |l: String| fold(&mut out, &l);
    line("BEGIN:VCARD".into());
    line(format!("VERSION:{}", if card.v4 { "4.0" } else { "3.0" }));
    line(format!("UID:{}", card.uid));
    line(format!("FN:{}", escape(&card.formatted_name())));
    line(format!("N:{};{};;;", escape(card.family.as_deref().unwrap_or("")), escape(card.given.as_deref().unwrap_or(""))));
    if let Some(nick) = &card.nickname {
        line(format!("NICKNAME:{}", escape(nick)));
    }
    if let Some(org) = &card.organization {
        line(format!("ORG:{}", escape(org)));
    }
    for phone in &card.phones {
        let kind = label_type(phone.label);
        if card.v4 {
            line(format!("TEL;TYPE={}:{}", kind.to_lowercase(), phone.written));
        } else {
            line(format!("TEL;TYPE={kind},VOICE:{}", phone.written));
        }
    }
    for email in &card.emails {
        let kind = label_type(email.label);
        line(if card.v4 { format!("EMAIL;TYPE={}:{}", kind.to_lowercase(), email.written) } else { format!("EMAIL;TYPE=INTERNET,{kind}:{}", email.written) });
    }
    if let Some(photo) = &card.photo {
        let data = base64::engine::general_purpose::STANDARD.encode(&photo.bytes);
        let mime = if photo.png { "png" } else { "jpeg" };
        line(if card.v4 { format!("PHOTO:data:image/{mime};base64,{data}") } else { format!("PHOTO;ENCODING=b;TYPE={}:{data}", mime.to_uppercase()) });
    }
    line("END:VCARD".into());
    out
}

/// A whole file.
pub fn file(cards: &[Card]) -> String {
    cards.iter().map(card).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_utf8_and_width() {
        let mut out = String::new();
        fold(&mut out, &format!("FN:{}", "Ångström ".repeat(20)));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{l:?}");
        }
        assert_eq!(out.replace("\r\n ", ""), format!("FN:{}\r\n", "Ångström ".repeat(20)));
    }
}
