//! Unit tests of `values.rs` (page plans), kept apart so `values.rs` stays a readable size.

use super::*;

fn msg(name: &str, text: &str) -> RecordChange {
    RecordChange::Message(crate::migrations::tests::v5_message(name, 0, text))
}
fn del(name: &str) -> RecordChange {
    RecordChange::Deleted { record_name: name.into() }
}

#[test]
fn plan_applies_changes_in_order() {
    let changes = vec![msg("a", "1"), msg("b", "1"), msg("a", "2"), msg("c", "1"), del("c"), del("d"), msg("d", "1")];
    let plan = Plan::new(&changes);
    let got: Vec<_> = plan.messages.iter().map(|m| (m.record_name.as_str(), m.text.as_deref())).collect();
    assert_eq!(got, vec![("a", Some("2")), ("b", Some("1")), ("d", Some("1"))]);
    assert_eq!(plan.deleted, vec!["c", "d"]);
    assert_eq!(plan.touched.len(), changes.len());
}
