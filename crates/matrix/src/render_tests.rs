use imessage::records::{ContentPart, LinkPreviewRecord, MessageContent, MessageRecord, PartHistory, TextVersion};

use super::*;

fn msg(text: &str) -> MessageRecord {
    MessageRecord {
        record_name: "r".into(),
        guid: "G".into(),
        chat_id: "c".into(),
        sender: "tel:+1".into(),
        flags: 0,
        ts_ms: 1_700_000_000_000,
        text: Some(text.into()),
        subject: None,
        associated_type: None,
        associated_guid: None,
        service: None,
        content: MessageContent::default(),
    }
}

fn text(part: i64, t: &str) -> ContentPart {
    ContentPart::Text { part: Some(part), text: t.into(), mention: None, link: None }
}

fn no_mention(h: &str) -> String {
    format!("@ghost_{h}:x")
}

fn parts_of(p: Plan) -> Vec<PartEvent> {
    match p {
        Plan::Message { parts, .. } => parts,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plain_message_is_one_text_event() {
    let parts = parts_of(plan(&msg("hello"), &no_mention));
    assert_eq!(parts, vec![PartEvent { part: 0, content: PartContent::Text { body: "hello".into(), html: None, link_preview: None }, chunk: None }]);
}

#[test]
fn a_captioned_attachment_is_two_events_in_order() {
    let mut m = msg("\u{FFFC}look");
    m.content.parts = vec![ContentPart::Attachment { part: Some(0), guid: Some("at_0_G".into()) }, text(1, "look")];
    let parts = parts_of(plan(&m, &no_mention));
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content, PartContent::Attachment { transfer_guid: "at_0_G".into() });
    assert_eq!((parts[1].part, &parts[1].content), (1, &PartContent::Text { body: "look".into(), html: None, link_preview: None }));
}

#[test]
fn runs_of_one_part_merge_and_mentions_become_pills() {
    let mut m = msg("hi Bob!");
    m.content.parts = vec![text(0, "hi "), ContentPart::Text { part: Some(0), text: "Bob".into(), mention: Some("tel:+2".into()), link: None }, text(0, "!")];
    let parts = parts_of(plan(&m, &no_mention));
    assert_eq!(parts.len(), 1);
    let PartContent::Text { body, html, .. } = &parts[0].content else { panic!() };
    assert_eq!(body, "hi Bob!");
    assert_eq!(html.as_deref(), Some("hi <a href=\"https://matrix.to/#/@ghost_tel:+2:x\">Bob</a>!"));
}

#[test]
fn tapbacks_react_on_their_part_and_removals_unreact() {
    let mut m = msg("Loved a message");
    m.associated_type = Some(2000);
    m.associated_guid = Some("p:1/T".into());
    assert_eq!(plan(&m, &no_mention), Plan::React { target: "T".into(), part: 1, key: ReactionKey::Emoji("❤️".into()) });
    m.associated_type = Some(3003);
    assert_eq!(plan(&m, &no_mention), Plan::Unreact { target: "T".into(), part: 1, kind: 2003 });
    m.associated_type = Some(2006);
    m.content.associated_emoji = Some("🔥".into());
    assert_eq!(plan(&m, &no_mention), Plan::React { target: "T".into(), part: 1, key: ReactionKey::Emoji("🔥".into()) });
    m.associated_type = Some(2007);
    m.content.parts = vec![ContentPart::Attachment { part: Some(0), guid: Some("at_0_S".into()) }];
    assert_eq!(plan(&m, &no_mention), Plan::React { target: "T".into(), part: 1, key: ReactionKey::Sticker { transfer_guid: "at_0_S".into() } });
    assert_eq!(associated_target("bp:X"), (0, "X"));
    assert_eq!(associated_target("X"), (0, "X"));
}

#[test]
fn unsent_messages_are_nothing_and_unsent_parts_are_left_out() {
    let mut m = msg("gone");
    m.content.unsent = true;
    assert!(matches!(plan(&m, &no_mention), Plan::Nothing { why: "unsent" }));
    let mut m = msg("\u{FFFC}kept");
    m.content.parts = vec![ContentPart::Attachment { part: Some(0), guid: Some("at".into()) }, text(1, "kept")];
    m.content.unsent_parts = vec![0];
    let parts = parts_of(plan(&m, &no_mention));
    assert_eq!(parts.iter().map(|p| p.part).collect::<Vec<_>>(), [1]);
}

#[test]
fn an_edited_part_starts_as_its_first_version_then_edits_follow() {
    let mut m = msg("final");
    m.content.parts = vec![text(0, "final")];
    m.content.edits = vec![PartHistory {
        part: 0,
        versions: vec![TextVersion { apple_ns: 1_000_000_000, text: "first".into() }, TextVersion { apple_ns: 2_000_000_000, text: "final".into() }],
    }];
    let Plan::Message { parts, edits, .. } = plan(&m, &no_mention) else { panic!() };
    assert_eq!(parts[0].content, PartContent::Text { body: "first".into(), html: None, link_preview: None });
    assert_eq!(edits, vec![Edit { part: 0, ts_ms: imessage::records::apple_ns_to_unix_ms(2_000_000_000), body: "final".into() }]);
    let c = edit_content("$orig", "final");
    assert_eq!(c["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(c["m.new_content"]["body"], "final");
}

#[test]
fn subjects_are_bold_first_lines_and_previews_and_replies_are_kept() {
    let mut m = msg("see https://example.org");
    m.subject = Some("Plans".into());
    m.content.reply_to = Some("R".into());
    m.content.link_preview = Some(LinkPreviewRecord { url: Some("https://example.org/".into()), title: Some("Example".into()), ..Default::default() });
    let Plan::Message { parts, reply_to, .. } = plan(&m, &no_mention) else { panic!() };
    assert_eq!(reply_to.as_deref(), Some("R"));
    let PartContent::Text { body, html, link_preview } = &parts[0].content else { panic!() };
    assert_eq!(body, "Plans\nsee https://example.org");
    assert_eq!(html.as_deref(), Some("<strong>Plans</strong><br>see https://example.org"));
    let v = text_content(body, html.as_deref(), link_preview.as_ref());
    assert_eq!(v["com.beeper.linkpreviews"][0]["og:title"], "Example");
    assert_eq!(v["format"], "org.matrix.custom.html");
}

#[test]
fn a_message_whose_only_content_is_an_edit_history_shows_its_versions() {
    let mut m = msg("");
    m.text = None;
    m.content.edits = vec![PartHistory {
        part: 1,
        versions: vec![TextVersion { apple_ns: 1_000_000_000, text: "first".into() }, TextVersion { apple_ns: 2_000_000_000, text: "final".into() }],
    }];
    let Plan::Message { parts, edits, .. } = plan(&m, &no_mention) else { panic!("{:?}", plan(&m, &no_mention)) };
    assert_eq!((parts[0].part, &parts[0].content), (1, &PartContent::Text { body: "first".into(), html: None, link_preview: None }));
    assert_eq!(edits.last().map(|e| (e.part, e.body.as_str())), Some((1, "final")));
    // A body with part 0 and an edit history of a part 2 it lacks: both show, in part order.
    let mut m = msg("kept");
    m.content.parts = vec![text(0, "kept")];
    m.content.edits = vec![PartHistory { part: 2, versions: vec![TextVersion { apple_ns: 1, text: "only".into() }] }];
    let parts = parts_of(plan(&m, &no_mention));
    assert_eq!(parts.iter().map(|p| p.part).collect::<Vec<_>>(), [0, 2]);
}

#[test]
fn a_message_with_nothing_readable_is_a_notice_saying_why_never_nothing() {
    let mut m = msg("");
    m.text = None;
    m.content.undecodable = vec![imessage::records::BlobFailure { field: "attributedBody".into(), reason: "not a typedstream".into() }];
    let parts = parts_of(plan(&m, &no_mention));
    let [PartEvent { content: PartContent::Notice { body }, .. }] = parts.as_slice() else { panic!("{parts:?}") };
    assert!(body.contains("attributedBody") && body.contains("not a typedstream"), "{body}");
    // No blob at all, or an attachment without a GUID: a notice too.
    let mut m = msg("");
    m.content.parts = vec![ContentPart::Attachment { part: Some(0), guid: None }];
    assert!(matches!(parts_of(plan(&m, &no_mention)).as_slice(), [PartEvent { content: PartContent::Notice { .. }, .. }]));
    // Every part unsent one by one: that is an unsent message.
    let mut m = msg("x");
    m.content.parts = vec![text(0, "x")];
    m.content.unsent_parts = vec![0];
    assert_eq!(plan(&m, &no_mention), Plan::Nothing { why: "unsent" });
}

#[test]
fn a_long_text_is_planned_as_marked_pieces() {
    let long = "Sentence number one is here. ".repeat(2_500); // 72,500 characters
    let parts = parts_of(plan(&msg(&long), &no_mention));
    assert!(parts.len() >= 3);
    assert!(parts.iter().enumerate().all(|(i, p)| p.part == 0 && p.chunk == Some((i + 1, parts.len()))));
}

#[test]
fn links_keep_an_href_only_for_http_https_mailto_and_tel() {
    let link = |url: &str| {
        let mut m = msg("see x");
        m.content.parts = vec![text(0, "see "), ContentPart::Text { part: Some(0), text: "x".into(), mention: None, link: Some(url.into()) }];
        let PartContent::Text { html, .. } = &parts_of(plan(&m, &no_mention))[0].content else { panic!() };
        html.clone()
    };
    for url in ["https://example.org/a?b=1&c=2", "http://example.org/", "mailto:a@example.org", "tel:+15550001", "HTTPS://EXAMPLE.ORG/"] {
        let html = link(url).unwrap_or_else(|| panic!("{url}: no html"));
        assert!(html.contains("<a href=\""), "{url}: {html}");
    }
    for url in
        ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd", "vbscript:x", "example.org"]
    {
        assert_eq!(link(url), None, "{url} must stay plain text");
    }
}
