//! The CardDAV client against a real Radicale (PyPI), filled over HTTP by the test with MKCOL and
//! PUT of vCards: discovery, a first and an incremental sync with `sync-collection`, the same
//! changes through the ETag fallback and through a rejected sync token, and a wrong password.
//! What the server holds is known from the test's own PUTs (Radicale's ETag headers), never from
//! the client under test.

use std::collections::BTreeMap;

use carddav::{CardDav, Credentials, Delta, Error, SyncMode, SyncState};
use testkit::radicale::{Radicale, PASSWORD, USER};

const BOOK: &str = "/alice/contacts/";

fn card(uid: &str, name: &str, v4: bool) -> String {
    let version = if v4 { "4.0" } else { "3.0" };
    format!("BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nTEL:+1 555 010 {:04}\r\nEND:VCARD\r\n", uid.len() * 7)
}

/// Creates the address book (extended MKCOL) and a calendar next to it, which discovery must skip.
async fn make_collections(server: &Radicale) {
    // The first authenticated request makes Radicale create the principal collection.
    let (status, _) = server.call("PROPFIND", "/alice/", "application/xml", String::new()).await;
    assert_eq!(status, 207);
    let mkcol = |rt: &str, name: &str| {
        format!(
            r#"<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/>{rt}</D:resourcetype><D:displayname>{name}</D:displayname></D:prop></D:set></D:mkcol>"#
        )
    };
    assert_eq!(server.call("MKCOL", BOOK, "application/xml", mkcol("<CR:addressbook/>", "Contacts")).await.0, 201);
    assert_eq!(server.call("MKCOL", "/alice/calendar/", "application/xml", mkcol("<C:calendar/>", "Calendar")).await.0, 201);
}

/// PUTs a card; returns its href and the ETag Radicale gave it.
async fn put(server: &Radicale, uid: &str, text: String) -> (String, String) {
    let href = format!("{BOOK}{uid}.vcf");
    let (status, etag) = server.call("PUT", &href, "text/vcard", text).await;
    assert!(status == 201 || status == 204, "PUT {href}: {status}");
    (href, etag.expect("Radicale answers a PUT with an ETag"))
}

fn creds(server: &Radicale, password: &str) -> Credentials {
    Credentials { url: format!("{}/", server.base), username: USER.into(), password: password.into() }
}

/// The upserts of a delta as href → (etag, uid line present).
fn upserts(delta: &Delta) -> BTreeMap<String, String> {
    delta.upserted.iter().map(|c| (c.href.clone(), c.etag.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_sync_against_radicale() {
    let server = Radicale::start();
    make_collections(&server).await;
    let mut expected = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for (n, name) in ["Sam Rivera", "Ana Lima", "Wei Chen", "Olu Ade", "Zoë Ångström"].iter().enumerate() {
        let uid = format!("uid-{n}");
        let text = card(&uid, name, n % 2 == 1);
        let (href, etag) = put(&server, &uid, text.clone()).await;
        expected.insert(href.clone(), etag);
        texts.insert(href, text);
    }

    // Discovery from the server root: .well-known (a 301 to /), the principal, the home set.
    let dav = CardDav::connect(creds(&server, PASSWORD)).await.unwrap();
    let books = dav.address_books();
    assert_eq!(books.len(), 1, "{books:?}");
    assert_eq!(books[0].url, format!("{}{BOOK}", server.base));
    assert_eq!(books[0].display_name.as_deref(), Some("Contacts"));

    // First sync: every card, with the ETags and the text the test PUT.
    let mut state = SyncState::default();
    let first = dav.sync(&mut state).await.unwrap();
    assert_eq!(upserts(&first), expected);
    for card in &first.upserted {
        let sent = &texts[&card.href];
        let uid_line = sent.lines().find(|l| l.starts_with("UID:")).unwrap();
        assert!(card.vcard.contains(uid_line), "{} lacks {uid_line}", card.vcard);
        assert!(card.vcard.contains("Zoë Ångström") == sent.contains("Zoë Ångström"));
    }
    assert!(first.removed.is_empty() && first.unreadable.is_empty(), "{first:?}");
    let book_state = &state.books[&books[0].url];
    assert!(book_state.sync_token.is_some(), "Radicale has sync-collection");
    assert_eq!(book_state.etags, expected);

    // The state survives JSON, and a sync with nothing changed is empty.
    let json = serde_json::to_string(&state).unwrap();
    let mut state: SyncState = serde_json::from_str(&json).unwrap();
    let before_changes = state.clone();
    assert_eq!(dav.sync(&mut state).await.unwrap(), Delta::default());

    // Change one card, delete one, add one.
    let (changed_href, changed_etag) = put(&server, "uid-1", card("uid-1", "Ana Lima-Souza", true)).await;
    assert_ne!(changed_etag, expected[&changed_href]);
    let deleted = format!("{BOOK}uid-2.vcf");
    assert_eq!(server.call("DELETE", &deleted, "text/plain", String::new()).await.0, 200);
    let (added_href, added_etag) = put(&server, "uid-9", card("uid-9", "New Person", false)).await;
    let want: BTreeMap<String, String> = [(changed_href.clone(), changed_etag.clone()), (added_href.clone(), added_etag.clone())].into();

    let second = dav.sync(&mut state).await.unwrap();
    assert_eq!(upserts(&second), want, "sync-collection: exactly the changed and the added card");
    assert_eq!(second.removed, vec![deleted.clone()]);
    assert!(second.unreadable.is_empty());
    let changed = second.upserted.iter().find(|c| c.href == changed_href).unwrap();
    assert!(changed.vcard.contains("Ana Lima-Souza"), "{}", changed.vcard);
    assert_eq!(dav.sync(&mut state).await.unwrap(), Delta::default(), "nothing new after the second sync");
    let mut after = expected.clone();
    after.remove(&deleted);
    after.extend(want.clone());
    assert_eq!(state.books[&books[0].url].etags, after);

    // The ETag fallback from the state before the changes gives the same delta.
    let mut by_etags = before_changes.clone();
    let third = dav.sync_with(&mut by_etags, SyncMode::Etags).await.unwrap();
    assert_eq!(upserts(&third), want, "ETag path");
    assert_eq!(third.removed, vec![deleted.clone()]);
    assert_eq!(by_etags.books[&books[0].url].etags, after);
    // And from nothing it lists every card.
    let mut fresh = SyncState::default();
    assert_eq!(upserts(&dav.sync_with(&mut fresh, SyncMode::Etags).await.unwrap()), after);

    // A token the server rejects (403 valid-sync-token): a full listing, compared by ETag.
    let mut stale = before_changes.clone();
    stale.books.get_mut(&books[0].url).unwrap().sync_token = Some("http://radicale.org/ns/sync/0000".into());
    let fourth = dav.sync(&mut stale).await.unwrap();
    assert_eq!(upserts(&fourth), want, "full resync after an invalid token");
    assert_eq!(fourth.removed, vec![deleted.clone()]);
    assert!(stale.books[&books[0].url].sync_token.as_deref().is_some_and(|t| !t.ends_with("0000")));

    // A book that disappears from the account takes its cards with it.
    let mut extra = state.clone();
    extra.books.insert(
        format!("{}/alice/old-book/", server.base),
        carddav::BookState { sync_token: None, etags: [("/alice/old-book/x.vcf".to_string(), "\"1\"".to_string())].into() },
    );
    let fifth = dav.sync(&mut extra).await.unwrap();
    assert_eq!(fifth.removed, vec!["/alice/old-book/x.vcf".to_string()]);
    assert_eq!(extra, state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let server = Radicale::start();
    make_collections(&server).await;
    let wrong = "wr0ng-Secret-77";
    let err = CardDav::connect(creds(&server, wrong)).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let shown = format!("{err} / {err:?}");
    assert!(shown.contains("401") && shown.contains(USER), "{shown}");
    assert!(!shown.contains(wrong) && !shown.contains(PASSWORD), "{shown}");
    let creds_shown = format!("{:?}", creds(&server, PASSWORD));
    assert!(!creds_shown.contains(PASSWORD), "{creds_shown}");

    // The right password works, and the connection's Debug output holds no password either.
    let dav = CardDav::connect(creds(&server, PASSWORD)).await.unwrap();
    assert!(!format!("{dav:?}").contains(PASSWORD));

    // Credentials in the URL and plain http off this machine are refused before any request.
    for url in [format!("http://{USER}:{PASSWORD}@127.0.0.1:1/"), "http://contacts.example.org/".to_string()] {
        let err = CardDav::connect(Credentials { url, username: USER.into(), password: PASSWORD.into() }).await.unwrap_err();
        assert!(matches!(err, Error::RefusedUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains(PASSWORD), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_card_is_reported_with_its_href_and_retried() {
    let server = Radicale::start();
    make_collections(&server).await;
    let (small_href, small_etag) = put(&server, "small", card("small", "Small Card", false)).await;
    // A card over the client's 10 MiB cap per card (a huge photo), which Radicale accepts.
    let photo = "A".repeat(11 << 20);
    let big = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:big\r\nFN:Big Card\r\nN:Card;Big;;;\r\nPHOTO;ENCODING=b;TYPE=JPEG:{photo}\r\nEND:VCARD\r\n");
    let (big_href, _) = put(&server, "big", big).await;

    let dav = CardDav::connect(creds(&server, PASSWORD)).await.unwrap();
    let book = dav.address_books()[0].url.clone();
    let mut state = SyncState::default();
    for round in 0..2 {
        let delta = dav.sync(&mut state).await.unwrap();
        let want: BTreeMap<String, String> = if round == 0 { [(small_href.clone(), small_etag.clone())].into() } else { BTreeMap::new() };
        assert_eq!(upserts(&delta), want, "round {round}");
        assert_eq!(delta.unreadable.len(), 1, "round {round}: {:?}", delta.unreadable);
        assert_eq!(delta.unreadable[0].href, big_href);
        assert!(delta.unreadable[0].reason.contains("larger than"), "{}", delta.unreadable[0].reason);
        assert_eq!(state.books[&book].etags.keys().collect::<Vec<_>>(), vec![&small_href], "the unreadable card is not held");
    }
    // Once the card is readable, the next sync brings it.
    let (_, big_etag) = put(&server, "big", card("big", "Big Card", false)).await;
    let delta = dav.sync(&mut state).await.unwrap();
    assert_eq!(upserts(&delta), [(big_href.clone(), big_etag)].into());
    assert!(delta.unreadable.is_empty() && state.books[&book].sync_token.is_some());
}
