//! The appservice registration the homeserver loads (`registration.yaml`), built with ruma's
//! [`Registration`] type so its shape is the spec's.

use ruma::api::appservice::{Namespace, Namespaces, Registration, RegistrationInit};

use crate::ghost::{BOT_LOCALPART, GHOST_PREFIX};

/// A random token for `as_token` / `hs_token`.
pub fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..48).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rng.gen_range(0..62)])).collect()
}

fn escape_regex(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Builds the registration: exclusive namespace for ghosts and the bot; the owner in a
/// non-exclusive namespace so from-me messages can be sent as the owner (appservice double
/// puppeting).
pub fn build(id: &str, url: &str, domain: &str, owner: Option<&str>, as_token: String, hs_token: String) -> Registration {
    let mut users = vec![
        Namespace::new(true, format!("@{}.*:{}", escape_regex(GHOST_PREFIX), escape_regex(domain))),
        Namespace::new(true, format!("@{}:{}", escape_regex(BOT_LOCALPART), escape_regex(domain))),
    ];
    if let Some(owner) = owner {
        users.push(Namespace::new(false, escape_regex(owner)));
    }
    let mut namespaces = Namespaces::new();
    namespaces.users = users;
    // Portal aliases (see `ghost::portal_alias_localpart`).
    namespaces.aliases = vec![Namespace::new(true, format!("#{}.*:{}", escape_regex(GHOST_PREFIX), escape_regex(domain)))];
    let mut reg: Registration = RegistrationInit {
        id: id.to_string(),
        url: Some(url.to_string()),
        as_token,
        hs_token,
        sender_localpart: BOT_LOCALPART.to_string(),
        namespaces,
        rate_limited: Some(false),
        protocols: Some(vec!["imessage".to_string()]),
    }
    .into();
    reg.receive_ephemeral = false;
    reg
}

/// Whether `user_id` falls in the registration's user namespaces (i.e. we can act as it).
pub fn owns_user(reg: &Registration, user_id: &str) -> bool {
    reg.namespaces.users.iter().any(|ns| regex_lite::Regex::new(&format!("^(?:{})$", ns.regex)).is_ok_and(|re| re.is_match(user_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_shape_and_namespaces() {
        let reg = build("imessage", "http://127.0.0.1:29333", "example.org", Some("@alice:example.org"), "a".into(), "h".into());
        let yaml = serde_norway::to_string(&reg).unwrap();
        assert!(yaml.contains("rate_limited: false"), "{yaml}");
        assert!(yaml.contains("sender_localpart: imessagebot"), "{yaml}");
        assert!(owns_user(&reg, "@imessage_=2b1555:example.org"));
        assert!(owns_user(&reg, "@imessagebot:example.org"));
        assert!(owns_user(&reg, "@alice:example.org"));
        assert!(!owns_user(&reg, "@bob:example.org"));
        assert!(!owns_user(&reg, "@imessage_x:other.org"));
        let back: Registration = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back.id, "imessage");
    }
}
