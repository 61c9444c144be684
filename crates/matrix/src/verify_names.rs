//! `verify`'s check of what a person reads in a room list: the name a client computes for each
//! room, and each ghost's display name there.
//!
//! The room name is computed here from the room's state alone, the way the Matrix spec's
//! "Calculating the display name for a room" says — independently of `portal.rs`, which sends
//! the state: `m.room.name`, else `m.room.canonical_alias`, else the other members (the
//! "heroes": joined and invited, the reader left out), else "Empty Room". Two choices where the
//! spec leaves them to the client: heroes are the first five members by user id (the spec's
//! server-side heroes are in join order; only the text differs, never where the name comes
//! from), and members that `io.element.functional_members` lists as service members (the
//! bridge bot) are no heroes, as Element leaves them out. A member is shown by its
//! `displayname`, by its user id when it has none, and as `name (user id)` when two share one.
//!
//! A room counts as `alias_named` when its computed name is an alias, a user id, or "Empty
//! Room": none of them tells a person who the room is with.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// Where a room's computed name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    Name,
    CanonicalAlias,
    Members,
    Empty,
}

/// A room's name as a client shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComputedName {
    pub name: String,
    pub source: NameSource,
    /// Some member in the name is shown by its user id (it has no display name).
    pub by_user_id: bool,
}

impl ComputedName {
    /// Named by an alias or an id (or not at all): nothing that tells a person who is in it.
    pub fn alias_named(&self) -> bool {
        matches!(self.source, NameSource::CanonicalAlias | NameSource::Empty) || self.by_user_id
    }
}

const HEROES: usize = 5;

fn state_of<'a>(state: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    let kind = kind.to_string();
    state.iter().filter(move |e| e["type"] == kind.as_str())
}

/// Members (joined or invited) by user id, with their display name if they have one.
fn members(state: &[Value]) -> BTreeMap<String, Option<String>> {
    state_of(state, "m.room.member")
        .filter(|e| matches!(e["content"]["membership"].as_str(), Some("join" | "invite")))
        .filter_map(|e| {
            let user = e["state_key"].as_str()?.to_string();
            let name = e["content"]["displayname"].as_str().filter(|n| !n.is_empty()).map(str::to_string);
            Some((user, name))
        })
        .collect()
}

/// The name a client shows for `user` in a room whose members are `members`.
fn member_name(members: &BTreeMap<String, Option<String>>, user: &str) -> (String, bool) {
    match members.get(user).cloned().flatten() {
        None => (user.to_string(), true),
        Some(name) if members.iter().filter(|(u, n)| *u != user && n.as_deref() == Some(&name)).count() > 0 => (format!("{name} ({user})"), false),
        Some(name) => (name, false),
    }
}

/// The room's display name as `me` sees it (see the module doc).
pub fn room_display_name(state: &[Value], me: &str) -> ComputedName {
    let content = |kind| state_of(state, kind).find(|e| e["state_key"] == "").map(|e| &e["content"]);
    if let Some(name) = content("m.room.name").and_then(|c| c["name"].as_str()).filter(|n| !n.is_empty()) {
        return ComputedName { name: name.to_string(), source: NameSource::Name, by_user_id: false };
    }
    if let Some(alias) = content("m.room.canonical_alias").and_then(|c| c["alias"].as_str()).filter(|a| !a.is_empty()) {
        return ComputedName { name: alias.to_string(), source: NameSource::CanonicalAlias, by_user_id: false };
    }
    let service: Vec<&str> = content("io.element.functional_members")
        .and_then(|c| c["service_members"].as_array())
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let all = members(state);
    let others: Vec<&String> = all.keys().filter(|u| *u != me && !service.contains(&u.as_str())).collect();
    if others.is_empty() {
        return ComputedName { name: "Empty Room".into(), source: NameSource::Empty, by_user_id: false };
    }
    let shown: Vec<(String, bool)> = others.iter().take(HEROES).map(|u| member_name(&all, u)).collect();
    let by_user_id = shown.iter().any(|(_, id)| *id);
    let mut names: Vec<String> = shown.into_iter().map(|(n, _)| n).collect();
    let rest = others.len() - names.len();
    let name = if rest > 0 {
        format!("{} and {rest} others", names.join(", "))
    } else if names.len() == 1 {
        names.remove(0)
    } else {
        let last = names.pop().unwrap_or_default();
        format!("{} and {last}", names.join(", "))
    };
    ComputedName { name, source: NameSource::Members, by_user_id }
}

/// Ghost members (joined or invited) whose display name in the room is not `expected`'s for
/// their handle; `ghosts` maps each ghost user id the room may hold to its expected name. A
/// ghost the map does not know is counted too: nothing says what it should be called.
pub fn names_wrong(state: &[Value], ghosts: &HashMap<String, String>, is_ghost: &dyn Fn(&str) -> bool) -> u64 {
    members(state).iter().filter(|(user, _)| is_ghost(user)).filter(|(user, name)| ghosts.get(*user) != name.as_ref()).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(user: &str, name: Option<&str>, membership: &str) -> Value {
        let mut content = json!({ "membership": membership });
        if let Some(n) = name {
            content["displayname"] = json!(n);
        }
        json!({ "type": "m.room.member", "state_key": user, "content": content })
    }

    fn functional(bot: &str) -> Value {
        json!({ "type": "io.element.functional_members", "state_key": "", "content": { "service_members": [bot] } })
    }

    #[test]
    fn spec_order_name_then_alias_then_members() {
        let me = "@owner:x";
        let mut state = vec![
            member(me, Some("Owner"), "join"),
            member("@bot:x", Some("Bridge"), "join"),
            functional("@bot:x"),
            member("@g1:x", Some("Sam Rivera"), "invite"),
        ];
        let dm = room_display_name(&state, me);
        assert_eq!((dm.name.as_str(), dm.source, dm.alias_named()), ("Sam Rivera", NameSource::Members, false));
        state.push(json!({ "type": "m.room.canonical_alias", "state_key": "", "content": { "alias": "#imessage_chat_1:x" } }));
        let aliased = room_display_name(&state, me);
        assert_eq!((aliased.name.as_str(), aliased.alias_named()), ("#imessage_chat_1:x", true));
        // An emptied canonical alias (`{}`) names nothing.
        state.pop();
        state.push(json!({ "type": "m.room.canonical_alias", "state_key": "", "content": {} }));
        assert_eq!(room_display_name(&state, me).name, "Sam Rivera");
        state.push(json!({ "type": "m.room.name", "state_key": "", "content": { "name": "Team" } }));
        assert_eq!(room_display_name(&state, me).source, NameSource::Name);
    }

    #[test]
    fn members_without_names_and_crowds() {
        let me = "@owner:x";
        let nameless = vec![member(me, None, "join"), member("@g1:x", None, "join")];
        let n = room_display_name(&nameless, me);
        assert_eq!((n.name.as_str(), n.alias_named()), ("@g1:x", true), "a member without a display name is shown by its id");
        let alone = room_display_name(&[member(me, None, "join"), member("@g1:x", Some("Left"), "leave")], me);
        assert_eq!((alone.source, alone.alias_named()), (NameSource::Empty, true));
        let mut group = vec![member(me, None, "join")];
        for i in 0..7 {
            group.push(member(&format!("@g{i}:x"), Some(&format!("P{i}")), "join"));
        }
        assert_eq!(room_display_name(&group, me).name, "P0, P1, P2, P3, P4 and 2 others");
        assert_eq!(room_display_name(&group[..4], me).name, "P0, P1 and P2");
        let twins = vec![member(me, None, "join"), member("@a:x", Some("Sam"), "join"), member("@b:x", Some("Sam"), "join")];
        assert_eq!(room_display_name(&twins, me).name, "Sam (@a:x) and Sam (@b:x)");
    }

    #[test]
    fn ghost_names_are_compared_with_the_expected_ones() {
        let state = vec![
            member("@owner:x", None, "join"),
            member("@imessage_1:x", Some("Sam"), "join"),
            member("@imessage_2:x", Some("+1 (555) 000-0002"), "join"),
            member("@imessage_3:x", Some("Old"), "leave"),
        ];
        let is_ghost = |u: &str| u.starts_with("@imessage_");
        let mut want = HashMap::from([("@imessage_1:x".to_string(), "Sam".to_string()), ("@imessage_2:x".to_string(), "+1 (555) 000-0002".to_string())]);
        assert_eq!(names_wrong(&state, &want, &is_ghost), 0, "a ghost that left is not looked at");
        want.insert("@imessage_1:x".into(), "Sam Rivera".into());
        assert_eq!(names_wrong(&state, &want, &is_ghost), 1);
        want.remove("@imessage_2:x");
        assert_eq!(names_wrong(&state, &want, &is_ghost), 2, "an unknown ghost is wrong");
    }
}
