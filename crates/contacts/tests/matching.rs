//! Matching cards to handles. The expected E.164 forms come from Python's `phonenumbers`
//! (Google's libphonenumber metadata), not from the crate under test.

mod common;

use contacts::{Card, CardSet, ContactBook, MatchOptions, Problem};

fn card(uid: &str, name: &str, phones: &[&str], emails: &[&str]) -> Card {
    Card {
        uid: uid.to_string(),
        full_name: Some(name.to_string()),
        phones: phones.iter().map(|p| p.to_string()).collect(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        source: "test".into(),
        ..Card::default()
    }
}

fn region(r: &str) -> MatchOptions {
    MatchOptions { default_region: Some(r.to_string()), own_handles: Vec::new() }
}

#[test]
fn numbers_as_people_write_them_match_the_e164_form_phonenumbers_gives() {
    let written: &[(&str, &str)] = &[
        ("(555) 123-4567", "US"),
        ("+1 555 123 4567", "US"),
        ("555.123.4567", "US"),
        ("1-555-123-4567", "US"),
        ("(212) 555-0199", "US"),
        ("020 7946 0018", "GB"),
        ("+44 20 7946 0018", "US"),
        ("07700 900123", "GB"),
        ("06 12 34 56 78", "FR"),
        ("030 901820", "DE"),
        ("+49 30 901820", "GB"),
        ("0412 345 678", "AU"),
        ("090-1234-5678", "JP"),
    ];
    let expected = common::e164(written);
    for ((number, r), e164) in written.iter().zip(&expected) {
        let book = ContactBook::build(vec![vec![card("u1", "Person", &[number], &[])]], region(r));
        let hit = book.lookup(&format!("tel:{e164}"));
        assert_eq!(hit.map(|m| m.display_name), Some("Person"), "{number} in {r} should be {e164}");
        assert_eq!(book.lookup(e164).map(|m| m.card_uid), Some("u1"), "a bare E.164 looks up too");
        assert_eq!(book.stats().handles, 1);
        assert_eq!(book.stats().unparsed_numbers, 0);
    }
    // All the US forms of one number are one handle.
    let us: Vec<&str> = written[..4].iter().map(|(n, _)| *n).collect();
    let book = ContactBook::build(vec![vec![card("u", "Sam", &us, &[])]], MatchOptions::default());
    assert_eq!(book.stats().handles, 1);
    assert_eq!(book.lookup("555-123-4567").map(|m| m.display_name), Some("Sam"));
}

#[test]
fn emails_match_case_insensitively() {
    let book = ContactBook::build(vec![vec![card("u", "Sam", &[], &["Sam.Rivera@Example.COM"])]], MatchOptions::default());
    for h in ["mailto:sam.rivera@example.com", "SAM.RIVERA@example.com", "E:sam.rivera@EXAMPLE.com"] {
        assert_eq!(book.lookup(h).map(|m| m.display_name), Some("Sam"), "{h}");
    }
    assert!(book.lookup("mailto:sam@example.com").is_none());
}

#[test]
fn a_shared_number_goes_to_the_name_that_sorts_first_then_the_smaller_uid() {
    let shared = "+1 555 700 0001";
    let a = card("uid-b", "Sam Rivera", &[shared, "+1 555 700 0002"], &[]);
    let b = card("uid-z", "Alex Kim", &["(555) 700-0001"], &[]);
    let c = card("uid-a", "Sam Rivera", &["555.700.0002"], &[]);
    for sets in [vec![vec![a.clone(), b.clone(), c.clone()]], vec![vec![c.clone()], vec![b.clone(), a.clone()]]] {
        let book = ContactBook::build(sets, MatchOptions::default());
        assert_eq!(book.lookup("tel:+15557000001").map(|m| m.card_uid), Some("uid-z"), "Alex Kim < Sam Rivera");
        assert_eq!(book.lookup("tel:+15557000002").map(|m| m.card_uid), Some("uid-a"), "same name: the smaller uid");
        assert_eq!(book.stats().conflicts, 2);
        assert_eq!(book.stats().cards, 3);
    }
    // Code points, not a locale: "Zoe" < "alex" (uppercase before lowercase), "Zoe" < "Zoë".
    let book = ContactBook::build(
        vec![vec![card("1", "alex", &["+15557000003"], &[]), card("2", "Zoë", &["+15557000003"], &[]), card("3", "Zoe", &["+15557000003"], &[])]],
        MatchOptions::default(),
    );
    assert_eq!(book.lookup("+15557000003").map(|m| m.display_name), Some("Zoe"));
}

#[test]
fn the_owners_card_is_not_used() {
    let me = card("me", "Me Myself", &["(555) 000-1111"], &["me@example.com"]);
    let other = card("o", "Other", &["+1 555 000 2222"], &[]);
    let opts = MatchOptions { default_region: None, own_handles: vec!["tel:+15550001111".into()] };
    let book = ContactBook::build(vec![vec![me.clone(), other.clone()]], opts);
    assert!(book.lookup("tel:+15550001111").is_none());
    assert!(book.lookup("mailto:me@example.com").is_none(), "none of the owner's card is used");
    assert_eq!(book.lookup("+15550002222").map(|m| m.display_name), Some("Other"));
    assert_eq!(book.stats().own_cards_skipped, 1);
    assert_eq!(book.stats().cards, 1);
    // An email owner handle in another case works too.
    let book = ContactBook::build(vec![vec![me, other]], MatchOptions { default_region: None, own_handles: vec!["Me@Example.com".into()] });
    assert_eq!(book.stats().own_cards_skipped, 1);
}

#[test]
fn unparsed_numbers_and_nameless_cards_are_counted() {
    let cards = vec![
        card("a", "Bank", &["12345", "not a number", "+1 555 800 0000"], &[]),
        Card { uid: "b".into(), phones: vec!["+1 555 800 0001".into()], ..Card::default() },
    ];
    let sets = vec![CardSet { cards, problems: vec![Problem { source: "s".into(), item: "line 1".into(), reason: "r".into() }] }];
    let book = ContactBook::build_from(sets, MatchOptions::default());
    let stats = book.stats();
    assert_eq!((stats.cards, stats.handles, stats.unparsed_numbers, stats.nameless_cards, stats.problems), (1, 1, 2, 1, 1));
    assert!(book.lookup("+15558000001").is_none());
}

#[test]
fn a_rebuild_follows_renamed_and_removed_cards_and_photos() {
    let mut sam = card("s", "Sam Rivera", &["+1 555 600 0001"], &[]);
    let lee = card("l", "Lee", &["+1 555 600 0002"], &[]);
    let book = ContactBook::build(vec![vec![sam.clone(), lee]], MatchOptions::default());
    assert_eq!(book.lookup("+15556000001").map(|m| m.display_name), Some("Sam Rivera"));
    assert!(book.lookup("+15556000001").and_then(|m| m.photo).is_none());
    sam.full_name = Some("Samantha Rivera".into());
    sam.photo = contacts::Photo::from_bytes(common::jpeg(1)).ok();
    let book = ContactBook::build(vec![vec![sam]], MatchOptions::default());
    let hit = book.lookup("+15556000001").expect("still there");
    assert_eq!(hit.display_name, "Samantha Rivera");
    assert_eq!(hit.photo.map(|p| p.mime.as_str()), Some("image/jpeg"));
    assert!(book.lookup("+15556000002").is_none(), "a removed card is gone");
    let handles = ["tel:+15556000001", "tel:+15556000002", "mailto:x@example.com"];
    assert_eq!(book.match_handles(handles), contacts::MatchStats { matched: 1, unmatched: 2 });
}

#[test]
fn vcard_to_book_end_to_end() {
    let text = "BEGIN:VCARD\nVERSION:3.0\nFN:Sam Rivera\nitem1.TEL:(555) 123-4567\nEND:VCARD\nBEGIN:VCARD\nVERSION:4.0\nN:;;;;\nORG:Rivera Family\nTEL;VALUE=uri:tel:+1-555-123-4567\nEND:VCARD\n";
    let parsed = contacts::vcard::parse(text, "t");
    let book = ContactBook::build_from(vec![parsed], MatchOptions::default());
    assert_eq!(book.lookup("tel:+15551234567").map(|m| m.display_name), Some("Rivera Family"), "R-i-v < S-a-m");
    assert_eq!(book.stats().conflicts, 1);
}
