//! One form for every handle, whatever source wrote it, so that one person is one ghost.
//!
//! CloudKit names people `tel:+15551234567` and `mailto:sam@example.com`; a Mac's `chat.db` and
//! an iPhone's `sms.db` write `+15551234567`, `(555) 123-4567` (in `uncanonicalized_id`), or
//! `Sam@Example.com`, and their `account` columns add `P:`/`E:` prefixes. [`canonical_handle`]
//! maps all of them to CloudKit's form: E.164 with `tel:` for phone numbers (parsed with
//! libphonenumber's data, numbers without a country code read in a default region), lowercase
//! with `mailto:` for emails. What is neither (a short code, an alphanumeric sender such as a
//! bank's) is kept as it was written, without a scheme, so it still names one sender.

/// The region numbers without a country code are read in when the config names none.
pub const DEFAULT_REGION: &str = "US";

/// Short codes (`12345`) have at most this many digits; they are not dialable numbers of a
/// region and must not gain a country code.
const MAX_SHORT_CODE_DIGITS: usize = 6;

/// The canonical form of a handle (see the module doc). `region` is an ISO 3166 code such as
/// `US` or `gb` (case does not matter); None or an unknown code means [`DEFAULT_REGION`].
pub fn canonical_handle(raw: &str, region: Option<&str>) -> String {
    let trimmed = raw.trim();
    let bare = strip_scheme(trimmed);
    if bare.contains('@') {
        return format!("mailto:{}", bare.to_lowercase());
    }
    match e164(bare, region) {
        Some(number) => format!("tel:{number}"),
        None => bare.to_string(),
    }
}

/// A handle without its `tel:`, `mailto:`, `sms:` or account (`P:`, `E:`) prefix.
pub fn strip_scheme(handle: &str) -> &str {
    for prefix in ["tel:", "mailto:", "sms:", "P:", "E:", "e:", "p:"] {
        if let Some(rest) = handle.strip_prefix(prefix) {
            return rest;
        }
    }
    handle
}

/// The E.164 form of a phone number written in any of the ways people write them, None for
/// what is not a phone number.
pub fn e164(written: &str, region: Option<&str>) -> Option<String> {
    let phone_chars = |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '(' | ')' | '-' | '.' | '\u{a0}');
    if written.is_empty() || !written.chars().all(phone_chars) {
        return None;
    }
    let digits = written.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || (!written.starts_with('+') && digits <= MAX_SHORT_CODE_DIGITS) {
        return None;
    }
    let region_id = region.and_then(|r| r.trim().to_uppercase().parse::<phonenumber::country::Id>().ok()).or_else(|| DEFAULT_REGION.parse().ok());
    let number = phonenumber::parse(region_id, written).ok()?;
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_as_people_write_them() {
        for written in ["+15551234567", "tel:+15551234567", "(555) 123-4567", "555.123.4567", "+1 555 123 4567", "1-555-123-4567", "P:+15551234567"] {
            assert_eq!(canonical_handle(written, None), "tel:+15551234567", "{written}");
        }
        assert_eq!(canonical_handle("020 7946 0018", Some("gb")), "tel:+442079460018");
        assert_eq!(canonical_handle("+44 20 7946 0018", Some("US")), "tel:+442079460018");
    }

    #[test]
    fn emails_are_lowercase() {
        assert_eq!(canonical_handle("Sam@Example.COM", None), "mailto:sam@example.com");
        assert_eq!(canonical_handle("mailto:sam@example.com", None), "mailto:sam@example.com");
        assert_eq!(canonical_handle("E:me@icloud.example", None), "mailto:me@icloud.example");
    }

    #[test]
    fn short_codes_and_names_stay_as_written() {
        assert_eq!(canonical_handle("12345", None), "12345");
        assert_eq!(canonical_handle("MyBank", None), "MyBank");
        assert_eq!(canonical_handle("", None), "");
    }
}
