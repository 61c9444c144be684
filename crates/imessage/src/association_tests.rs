use super::*;

use AssociationKind::{LegacySticker, Poll, Tapback, Unknown};
use TapbackKind::*;

/// The numbers as DESIGN.md and imessage-exporter list them, written out here rather than
/// derived from the module's constants, so a wrong constant fails.
const KINDS: [(u32, TapbackKind); 8] =
    [(2000, Love), (2001, Like), (2002, Dislike), (2003, Laugh), (2004, Emphasize), (2005, Question), (2006, Emoji), (2007, Sticker)];

#[test]
fn every_tapback_number_and_its_removal_is_read() {
    for (code, kind) in KINDS {
        assert_eq!(AssociatedType::parse(code), AssociatedType { kind: Tapback(kind), removal: false }, "{code}");
        assert_eq!(AssociatedType::parse(code + 1000), AssociatedType { kind: Tapback(kind), removal: true }, "{}", code + 1000);
        assert_eq!(kind.code(), code);
        assert_eq!(AssociatedType::parse(code).tapback(), Some(kind));
        assert!(AssociatedType::parse(code + 1000).removes(AssociatedType::parse(code)));
        assert!(!AssociatedType::parse(code).removes(AssociatedType::parse(code)));
    }
    assert_eq!(STICKER_TAPBACK, 2007);
    assert!(Love.is_classic() && Question.is_classic() && !Emoji.is_classic() && !Sticker.is_classic());
    // The removal of one kind does not take back another.
    assert!(!AssociatedType::parse(3001).removes(AssociatedType::parse(2000)));
}

#[test]
fn the_legacy_sticker_polls_and_other_numbers_are_named_not_guessed() {
    assert_eq!(AssociatedType::parse(1000), AssociatedType { kind: LegacySticker, removal: false });
    assert_eq!(LEGACY_STICKER_TAPBACK, 1000);
    assert_eq!(AssociatedType::parse(1000).normalized(), AssociatedType::parse(2007));
    assert_eq!(AssociatedType::parse(2003).normalized(), AssociatedType::parse(2003));
    assert_eq!(AssociatedType::parse(4000), AssociatedType { kind: Poll, removal: false });
    for code in [0, 2, 3, 999, 1001, 1999, 2008, 2999, 4001, 5000, u32::MAX] {
        assert_eq!(AssociatedType::parse(code), AssociatedType { kind: Unknown(code), removal: false }, "{code}");
        assert_eq!(AssociatedType::parse(code).tapback(), None);
    }
    // A removal of a number Apple may add later still reads as a removal of that number.
    assert_eq!(AssociatedType::parse(3008), AssociatedType { kind: Unknown(2008), removal: true });
    assert_eq!(AssociatedType::parse(3999), AssociatedType { kind: Unknown(2999), removal: true });
}

#[test]
fn every_number_reads_back_as_itself() {
    for code in (0..10_000).chain([u32::MAX - 1, u32::MAX]) {
        assert_eq!(AssociatedType::parse(code).code(), code, "{code}");
    }
}

#[test]
fn additions_and_the_tapback_range_follow_apples_blocks() {
    for code in [2, 3, 1000, 2000, 2005, 2007, 2008, 2999] {
        assert!(AssociatedType::parse(code).adds(), "{code}");
    }
    for code in [3000, 3007, 3999, 4000, 4001, 9000] {
        assert!(!AssociatedType::parse(code).adds(), "{code}");
    }
    for code in [2000, 2007, 2999, 3000, 3007, 3999] {
        assert!(AssociatedType::parse(code).in_tapback_range(), "{code}");
    }
    for code in [0, 3, 1000, 1999, 4000, 4001] {
        assert!(!AssociatedType::parse(code).in_tapback_range(), "{code}");
    }
}

#[test]
fn targets_name_a_part_a_balloon_or_a_message() {
    let t = AssociationTarget::parse("p:2/ABC-123");
    assert_eq!(t, AssociationTarget { guid: "ABC-123", part: 2, form: TargetForm::Part });
    assert_eq!(AssociationTarget::parse("bp:ABC"), AssociationTarget { guid: "ABC", part: 0, form: TargetForm::Balloon });
    assert_eq!(AssociationTarget::parse("ABC"), AssociationTarget { guid: "ABC", part: 0, form: TargetForm::Message });
    for written in ["p:2/ABC-123", "bp:ABC", "ABC", "p:0/X"] {
        assert_eq!(AssociationTarget::parse(written).to_string(), written);
    }
    assert_eq!(AssociationTarget::part_of("G", 3).to_string(), "p:3/G");
}

#[test]
fn malformed_targets_give_a_value_never_a_panic() {
    // `p:` without its `/`: the whole string is the GUID, as written.
    assert_eq!(AssociationTarget::parse("p:ABC"), AssociationTarget { guid: "p:ABC", part: 0, form: TargetForm::Message });
    // A part that is not a number (or too large) is part 0; the GUID is what follows the `/`.
    assert_eq!(AssociationTarget::parse("p:x/G"), AssociationTarget { guid: "G", part: 0, form: TargetForm::Part });
    assert_eq!(AssociationTarget::parse("p:99999999999999999999/G").part, 0);
    assert_eq!(AssociationTarget::parse("p:-1/G").part, -1);
    // Only the first `/` separates: a GUID may hold more.
    assert_eq!(AssociationTarget::parse("p:1/G/H").guid, "G/H");
    assert_eq!(AssociationTarget::parse("p:/").guid, "");
    assert_eq!(AssociationTarget::parse(""), AssociationTarget { guid: "", part: 0, form: TargetForm::Message });
    assert_eq!(AssociationTarget::parse("bp:").guid, "");
    // Prefixes are case-sensitive and only at the start.
    assert_eq!(AssociationTarget::parse("P:1/G").form, TargetForm::Message);
    assert_eq!(AssociationTarget::parse("xbp:G").guid, "xbp:G");
    assert_eq!(AssociationTarget::parse("p:1/é").guid, "é");
}

#[test]
fn an_association_reads_both_fields() {
    let a = Association::parse(3004, "p:1/T");
    assert_eq!(a.kind, AssociatedType { kind: Tapback(Emphasize), removal: true });
    assert_eq!((a.target.guid, a.target.part), ("T", 1));
}
