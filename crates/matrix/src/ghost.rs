//! Ghost users: one Matrix user per iMessage handle, `@imessage_<escaped handle>:<domain>`.
//!
//! Handles (`tel:+15551234567`, `mailto:a@b.example`) become localparts with a reversible
//! escape: lowercase letters, digits, `.`, `-` stay; `_` becomes `__`; uppercase `A` becomes `_a`;
//! anything else is `=xx` (hex). That keeps every localpart valid and distinct.
//!
//! A Matrix user id is at most 255 bytes, so a very long handle (or one escaped long) would make
//! ghost registration fail (`M_INVALID_USERNAME`) and its chat wait forever. A localpart over
//! [`MAX_LOCALPART`] is cut and ends in `==` and a SHA-256 of the handle instead: the escape
//! never writes `==` (an `=` is always followed by two hex digits), so a shortened localpart is
//! distinct from every escaped one, and from the shortened ones of other handles.

use std::fmt::Write;

pub const GHOST_PREFIX: &str = "imessage_";
pub const BOT_LOCALPART: &str = "imessagebot";

/// Strips the `tel:`/`mailto:` scheme.
pub fn bare_handle(handle: &str) -> &str {
    handle.strip_prefix("tel:").or_else(|| handle.strip_prefix("mailto:")).unwrap_or(handle)
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            'a'..='z' | '0'..='9' | '.' | '-' => out.push(c),
            '_' => out.push_str("__"),
            'A'..='Z' => {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            }
            other => {
                let mut buf = [0u8; 4];
                for b in other.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "={b:02x}");
                }
            }
        }
    }
    out
}

/// The longest ghost localpart, in bytes: 255 for the whole user id leaves 90 for the server name.
pub const MAX_LOCALPART: usize = 160;
/// Hex digits of the handle's SHA-256 at the end of a shortened localpart.
const HASH_HEX: usize = 32;
/// The largest display name set for a ghost, in characters (Synapse refuses more than 256).
const MAX_DISPLAY_NAME: usize = 200;

/// Localpart of the ghost for a handle.
pub fn ghost_localpart(handle: &str) -> String {
    use sha2::Digest;
    let full = format!("{GHOST_PREFIX}{}", escape(bare_handle(handle)));
    if full.len() <= MAX_LOCALPART {
        return full;
    }
    let hash: String = sha2::Sha256::digest(handle.as_bytes()).iter().take(HASH_HEX / 2).map(|b| format!("{b:02x}")).collect();
    // The escape writes ASCII only, so any byte offset is a char boundary.
    let keep = MAX_LOCALPART - 2 - HASH_HEX;
    format!("{}=={hash}", &full[..keep])
}

pub fn ghost_user_id(handle: &str, domain: &str) -> String {
    format!("@{}:{domain}", ghost_localpart(handle))
}

pub fn bot_user_id(domain: &str) -> String {
    format!("@{BOT_LOCALPART}:{domain}")
}

/// Display name of a ghost: the phone number or address, readable (a very long one cut).
pub fn display_name(handle: &str) -> String {
    let bare = bare_handle(handle);
    let digits: String = bare.chars().filter(|c| c.is_ascii_digit()).collect();
    if bare.starts_with("+1") && digits.len() == 11 {
        format!("+1 ({}) {}-{}", &digits[1..4], &digits[4..7], &digits[7..])
    } else if bare.chars().count() > MAX_DISPLAY_NAME {
        let mut name: String = bare.chars().take(MAX_DISPLAY_NAME - 1).collect();
        name.push('…');
        name
    } else {
        bare.to_string()
    }
}

/// The local part of a portal's room alias (`#imessage_chat_…:domain`, in the appservice's
/// alias namespace): derived from the chat id, so a second `createRoom` for the same chat —
/// one sent after a crash while the first was still being served — is refused by the
/// homeserver (`M_ROOM_IN_USE`) instead of making a second room.
pub fn portal_alias_localpart(chat_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(chat_id.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("{GHOST_PREFIX}chat_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts_are_valid_and_distinct() {
        let handles = ["tel:+15551234567", "mailto:Friend_1@Example.com", "mailto:friend1@example.com", "tel:+4930 123"];
        let parts: Vec<String> = handles.iter().map(|h| ghost_localpart(h)).collect();
        for p in &parts {
            assert!(p.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-')), "{p}");
            assert!(ruma::UserId::parse(format!("@{p}:example.org")).is_ok(), "{p}");
        }
        let unique: std::collections::BTreeSet<_> = parts.iter().collect();
        assert_eq!(unique.len(), parts.len());
        assert_eq!(parts[0], "imessage_=2b15551234567");
    }

    #[test]
    fn very_long_handles_get_short_distinct_localparts() {
        let long = |c: char| format!("mailto:{}@example.org", c.to_string().repeat(400));
        let (a, b) = (ghost_localpart(&long('a')), ghost_localpart(&long('b')));
        // Same first 300 characters, different ends: still two users.
        let (a2, b2) = (ghost_localpart(&format!("{}x", long('a'))), ghost_localpart(&format!("{}Ä", long('a'))));
        let parts = [&a, &b, &a2, &b2];
        for p in parts {
            assert!(p.len() <= MAX_LOCALPART, "{}", p.len());
            assert!(p.contains("=="), "{p}");
            assert!(ruma::UserId::parse(format!("@{p}:{}", "d".repeat(90))).is_ok(), "{p}");
        }
        assert_eq!(parts.iter().collect::<std::collections::BTreeSet<_>>().len(), 4);
        // Short handles keep their readable, reversible localparts.
        assert_eq!(ghost_localpart("mailto:a@b.example"), "imessage_a=40b.example");
        assert!(display_name(&long('a')).chars().count() <= 200);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("tel:+15551234567"), "+1 (555) 123-4567");
        assert_eq!(display_name("mailto:a@b.example"), "a@b.example");
    }
}
