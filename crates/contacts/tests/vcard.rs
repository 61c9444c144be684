//! vCard files written by hand the way exporters write them, and a generated multi-card file
//! read by Python's `vobject` as an independent parser.

mod common;

use base64::Engine;
use contacts::vcard;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Folds a content line at 75 octets the way RFC 6350 writers do (CRLF + space).
fn fold(line: &str) -> String {
    let mut out = String::new();
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
    out
}

#[test]
fn vcard_3_with_inline_photo_groups_escapes_and_folding() {
    let photo = common::jpeg(3);
    let text = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        "PRODID:-//Apple Inc.//iPhone OS 17.0//EN",
        r"N:Rivera\, Jr.;Sam;Alex;;",
        r"FN:Sam Rivera\, Jr.",
        r"ORG:Rivera\; Sons;Sales",
        "item1.TEL;type=pref:(555) 123-4567",
        "item1.X-ABLabel:_$!<Mobile>!$_",
        "TEL;TYPE=HOME,VOICE:555.987.6543",
        "EMAIL;type=INTERNET;type=HOME:Sam@Example.COM",
        "UID:5A1C7E2B-0001",
    ]
    .iter()
    .map(|l| format!("{l}\r\n"))
    .collect::<String>()
        + &fold(&format!("PHOTO;ENCODING=b;TYPE=JPEG:{}", b64(&photo)))
        + "END:VCARD\r\n";
    let parsed = vcard::parse(&text, "test");
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let [card] = &parsed.cards[..] else { panic!("one card: {:?}", parsed.cards) };
    assert_eq!(card.full_name.as_deref(), Some("Sam Rivera, Jr."));
    assert_eq!(card.family.as_deref(), Some("Rivera, Jr."));
    assert_eq!(card.given.as_deref(), Some("Sam"));
    assert_eq!(card.organization.as_deref(), Some("Rivera; Sons"));
    assert_eq!(card.phones, ["(555) 123-4567", "555.987.6543"]);
    assert_eq!(card.emails, ["Sam@Example.COM"]);
    assert_eq!(card.uid, "5A1C7E2B-0001");
    assert_eq!(card.source, "test");
    let p = card.photo.as_ref().expect("photo");
    assert_eq!((p.mime.as_str(), &p.bytes), ("image/jpeg", &photo));
    assert_eq!(card.display_name().as_deref(), Some("Sam Rivera, Jr."));
}

#[test]
fn vcard_4_with_data_uri_photo_and_tel_uri() {
    let photo = common::png(9);
    let text = format!(
        "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\nN:Kim;Alex;;;\nNICKNAME:Lex,Al\nTEL;VALUE=uri;TYPE=\"voice,cell\":tel:+1-555-555-0100;ext=12\nTEL;VALUE=uri:tel:+44-20-7946-0018\nPHOTO:data:image/jpeg;base64,{}\nEND:VCARD\n",
        b64(&photo)
    );
    let parsed = vcard::parse(&text, "t");
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let card = &parsed.cards[0];
    assert_eq!(card.uid, "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1");
    assert_eq!(card.full_name, None);
    assert_eq!(card.display_name().as_deref(), Some("Alex Kim"));
    assert_eq!(card.nickname.as_deref(), Some("Lex"));
    assert_eq!(card.phones, ["+1-555-555-0100", "+44-20-7946-0018"]);
    let p = card.photo.as_ref().expect("photo");
    assert_eq!(p.mime, "image/png", "sniffed from the bytes, not the data URI's type");
    assert_eq!(p.bytes, photo);
}

#[test]
fn vcard_2_1_quoted_printable_names() {
    let photo = common::jpeg(5);
    let encoded = b64(&photo);
    let (first, rest) = encoded.split_at(40);
    let text = format!(
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=B6=\r\nrg;;;\r\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=B6rg M=C3=BC=\r\nller\r\nTEL;CELL;PREF:+49 30 901820\r\nPHOTO;JPEG;ENCODING=BASE64:\r\n {first}\r\n {rest}\r\n\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=ISO-8859-1;QUOTED-PRINTABLE:Ren=E9e\r\nTEL;HOME:06 12 34 56 78\r\nEND:VCARD\r\n"
    );
    let parsed = vcard::parse(&text, "t");
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(parsed.cards.len(), 2);
    assert_eq!(parsed.cards[0].full_name.as_deref(), Some("Jörg Müller"));
    assert_eq!(parsed.cards[0].family.as_deref(), Some("Müller"));
    assert_eq!(parsed.cards[0].given.as_deref(), Some("Jörg"));
    assert_eq!(parsed.cards[0].phones, ["+49 30 901820"]);
    assert_eq!(parsed.cards[0].photo.as_ref().map(|p| &p.bytes), Some(&photo));
    assert_eq!(parsed.cards[1].full_name.as_deref(), Some("Renée"));
    assert_eq!(parsed.cards[1].uid, "t#2", "a card without UID is named by its position");
}

#[test]
fn photos_that_cannot_be_used_are_problems_and_the_card_stays() {
    let huge = "A".repeat(contacts::MAX_PHOTO_BYTES / 3 * 4 + 400);
    let text = format!(
        "BEGIN:VCARD\nVERSION:4.0\nFN:Remote\nTEL:+15550000001\nPHOTO:https://example.com/a.jpg\nEND:VCARD\n\
         BEGIN:VCARD\nVERSION:3.0\nFN:Huge\nTEL:+15550000002\nPHOTO;ENCODING=b:{huge}\nEND:VCARD\n\
         BEGIN:VCARD\nVERSION:3.0\nFN:Not an image\nTEL:+15550000003\nPHOTO;ENCODING=b:{}\nEND:VCARD\n\
         BEGIN:VCARD\nVERSION:3.0\nFN:Bad base64\nTEL:+15550000004\nPHOTO;ENCODING=b:!!!!\nEND:VCARD\n",
        b64(b"just some text, no image")
    );
    let parsed = vcard::parse(&text, "t");
    let names: Vec<_> = parsed.cards.iter().map(|c| c.full_name.clone().unwrap_or_default()).collect();
    assert_eq!(names, ["Remote", "Huge", "Not an image", "Bad base64"]);
    assert!(parsed.cards.iter().all(|c| c.photo.is_none() && c.phones.len() == 1));
    let reasons: Vec<_> = parsed.problems.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].contains("remote photo not fetched"), "{}", reasons[0]);
    assert!(reasons[1].contains("cap"), "{}", reasons[1]);
    assert!(reasons[2].contains("not an image"), "{}", reasons[2]);
    assert!(reasons[3].contains("base64"), "{}", reasons[3]);
    assert_eq!(parsed.problems[0].item, "card 1 (line 5)");
}

#[test]
fn read_file_caps_and_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.vcf");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend("BEGIN:VCARD\r\nFN:Zoë\r\nTEL:1 555 000 0000\r\nEND:VCARD\r\n".encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&path, bytes).expect("write");
    let parsed = vcard::read_file(&path).expect("read");
    assert_eq!(parsed.cards[0].full_name.as_deref(), Some("Zoë"));
    assert_eq!(parsed.cards[0].source, format!("vcf:{}", path.display()));

    let big = dir.path().join("big.vcf");
    std::fs::File::create(&big).and_then(|f| f.set_len(contacts::MAX_VCF_BYTES + 1)).expect("sparse file");
    assert!(matches!(vcard::read_file(&big), Err(contacts::Error::TooLarge { .. })));
    assert!(matches!(vcard::read_file(&dir.path().join("missing.vcf")), Err(contacts::Error::Io { .. })));
}

/// Names as people have them: accents, commas and semicolons that must be escaped, CJK, emoji.
const GIVEN: &[&str] = &["Sam", "Zoë", "José", "Ada, the first", "O'Brien", "美咲", "Ana;María", "Łukasz", "Émile", "Kai 🌊"];
const FAMILY: &[&str] = &["Rivera", "Kim", "Müller", "Nguyễn", "Smith, Jr.", "山田", "Ó Briain", "Back\\slash"];

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace(';', "\\;")
}

#[test]
fn a_generated_file_reads_as_vobject_reads_it() {
    let formats = ["(555) {a}-{b}", "+1 555 {a} {b}", "555.{a}.{b}", "1-555-{a}-{b}", "+44 20 7946 {b}"];
    let mut text = String::new();
    for i in 0..120usize {
        let (given, family) = (GIVEN[i % GIVEN.len()], FAMILY[i % FAMILY.len()]);
        let full = format!("{given} {family} {i}");
        text.push_str("BEGIN:VCARD\r\nVERSION:3.0\r\n");
        text.push_str(&fold(&format!("N:{};{};;;", escape(family), escape(given))));
        text.push_str(&fold(&format!("FN:{}", escape(&full))));
        for k in 0..(i % 3 + 1) {
            let n = format!("{:07}", i * 7919 + k * 104729);
            let number = formats[(i + k) % formats.len()].replace("{a}", &n[..3]).replace("{b}", &n[3..]);
            text.push_str(&format!("item{k}.TEL;TYPE=CELL:{number}\r\n"));
        }
        if i % 4 == 0 {
            text.push_str(&fold(&format!("NOTE:{}", "a long note that has to be folded over several lines; ".repeat(4).replace(';', "\\;"))));
        }
        text.push_str(&format!("UID:gen-{i}\r\nEND:VCARD\r\n"));
    }
    const VOBJECT: &str = r#"
import json, sys, vobject
out = []
for card in vobject.readComponents(json.load(sys.stdin)):
    n = card.n.value
    out.append({"uid": card.uid.value, "fn": card.fn.value, "given": n.given, "family": n.family,
                "tel": [t.value for t in card.contents.get("tel", [])]})
print(json.dumps(out))
"#;
    let oracle = common::run_python("vobject", VOBJECT, &serde_json::Value::String(text.clone()));
    let theirs_all = oracle.as_array().expect("a list");
    assert_eq!(theirs_all.len(), 120);
    let ours = vcard::parse(&text, "gen");
    assert!(ours.problems.is_empty(), "{:?}", ours.problems);
    assert_eq!(ours.cards.len(), 120);
    for (card, theirs) in ours.cards.iter().zip(theirs_all) {
        assert_eq!(card.uid, theirs["uid"], "uid");
        assert_eq!(card.full_name.as_deref(), theirs["fn"].as_str(), "{}", card.uid);
        assert_eq!(card.given.as_deref(), theirs["given"].as_str(), "{}", card.uid);
        assert_eq!(card.family.as_deref(), theirs["family"].as_str(), "{}", card.uid);
        let tels: Vec<&str> = theirs["tel"].as_array().expect("tel list").iter().filter_map(|t| t.as_str()).collect();
        assert_eq!(card.phones, tels, "{}", card.uid);
    }
}
