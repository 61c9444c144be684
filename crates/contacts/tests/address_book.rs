//! Apple's address book databases, made here with Apple's table and column names (the columns a
//! real macOS 14 `AddressBook-v22.abcddb` and iOS 17 `AddressBook.sqlitedb` have for these
//! tables, plus some the readers do not use), then read back.

mod common;

use std::path::Path;

use contacts::address_book;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

async fn create(path: &Path, statements: &[&str]) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options).await.expect("creating the database");
    for sql in statements {
        sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn
}

const MAC_SCHEMA: &[&str] = &[
    "CREATE TABLE ZABCDRECORD (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZCONTACTINDEX INTEGER, ZFIRSTNAME VARCHAR, ZLASTNAME VARCHAR, ZMIDDLENAME VARCHAR, ZNICKNAME VARCHAR, ZORGANIZATION VARCHAR, ZNAME VARCHAR, ZUNIQUEID VARCHAR, ZMODIFICATIONDATE TIMESTAMP, ZIMAGEDATA BLOB, ZTHUMBNAILIMAGEDATA BLOB)",
    "CREATE TABLE ZABCDPHONENUMBER (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZISPRIMARY INTEGER, ZORDERINGINDEX INTEGER, ZOWNER INTEGER, Z22_OWNER INTEGER, ZAREACODE VARCHAR, ZCOUNTRYCODE VARCHAR, ZFULLNUMBER VARCHAR, ZLABEL VARCHAR, ZLASTFOURDIGITS VARCHAR, ZUNIQUEID VARCHAR)",
    "CREATE TABLE ZABCDEMAILADDRESS (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZISPRIMARY INTEGER, ZORDERINGINDEX INTEGER, ZOWNER INTEGER, Z22_OWNER INTEGER, ZADDRESS VARCHAR, ZADDRESSNORMALIZED VARCHAR, ZLABEL VARCHAR, ZUNIQUEID VARCHAR)",
];

async fn record(conn: &mut SqliteConnection, pk: i64, uid: &str, first: Option<&str>, last: Option<&str>, image: Option<Vec<u8>>, thumb: Option<Vec<u8>>) {
    sqlx::query("INSERT INTO ZABCDRECORD (Z_PK, Z_ENT, ZFIRSTNAME, ZLASTNAME, ZUNIQUEID, ZIMAGEDATA, ZTHUMBNAILIMAGEDATA) VALUES (?, 22, ?, ?, ?, ?, ?)")
        .bind(pk)
        .bind(first)
        .bind(last)
        .bind(uid)
        .bind(image)
        .bind(thumb)
        .execute(conn)
        .await
        .expect("record");
}

async fn phone(conn: &mut SqliteConnection, owner: i64, index: i64, number: &str) {
    sqlx::query("INSERT INTO ZABCDPHONENUMBER (ZOWNER, ZORDERINGINDEX, ZFULLNUMBER, ZLABEL) VALUES (?, ?, ?, '_$!<Mobile>!$_')")
        .bind(owner)
        .bind(index)
        .bind(number)
        .execute(conn)
        .await
        .expect("phone");
}

async fn email(conn: &mut SqliteConnection, owner: i64, address: &str) {
    sqlx::query("INSERT INTO ZABCDEMAILADDRESS (ZOWNER, ZADDRESS, ZADDRESSNORMALIZED) VALUES (?, ?, lower(?))")
        .bind(owner)
        .bind(address)
        .bind(address)
        .execute(conn)
        .await
        .expect("email");
}

fn tagged(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut b = vec![tag];
    b.extend_from_slice(bytes);
    b
}

/// A Mac's `AddressBook` folder: the "On My Mac" file and one iCloud account file.
async fn mac_folder(root: &Path) {
    let account = root.join("Sources/1F0E6B59-7C4A-4F4E-9A39-AB12CD34EF56");
    std::fs::create_dir_all(&account).expect("folders");
    std::fs::create_dir_all(root.join("Images")).expect("Images");
    std::fs::create_dir_all(account.join(".AddressBook-v22_SUPPORT/_EXTERNAL_DATA")).expect("external data");

    let mut top = create(&root.join(address_book::MAC_FILE), MAC_SCHEMA).await;
    // Sam: thumbnail behind the 0x01 tag, numbers as people write them, ordered by ZORDERINGINDEX.
    record(&mut top, 1, "AAAA-SAM:ABPerson", Some("Sam"), Some("Rivera"), None, Some(tagged(1, &common::jpeg(1)))).await;
    phone(&mut top, 1, 1, "+1 555 123 4567").await;
    phone(&mut top, 1, 0, "(555) 987-6543").await;
    // A group row: no numbers, not a card.
    sqlx::query("INSERT INTO ZABCDRECORD (Z_PK, Z_ENT, ZNAME, ZUNIQUEID) VALUES (2, 19, 'Family', 'GRP:ABGroup')").execute(&mut top).await.expect("group");
    // Kim: full-size image in Images/ named by ZUNIQUEID without `:ABPerson`, and a thumbnail.
    record(&mut top, 3, "BBBB-KIM:ABPerson", Some("Alex"), Some("Kim"), None, Some(tagged(1, &common::jpeg(2)))).await;
    email(&mut top, 3, "Alex.Kim@Example.com").await;
    std::fs::write(root.join("Images/BBBB-KIM"), common::png(3)).expect("image");
    // An image blob that is not an image: a problem, the card stays.
    record(&mut top, 4, "CCCC-BAD:ABPerson", None, None, Some(tagged(1, b"not an image at all")), None).await;
    sqlx::query("UPDATE ZABCDRECORD SET ZORGANIZATION = 'Acme Plumbing' WHERE Z_PK = 4").execute(&mut top).await.expect("org");
    phone(&mut top, 4, 0, "555.000.1234").await;
    // A number of a record that does not exist: a problem.
    phone(&mut top, 99, 0, "+1 555 999 9999").await;
    top.close().await.expect("close");

    let mut icloud = create(&account.join(address_book::MAC_FILE), MAC_SCHEMA).await;
    // Sam again (same ZUNIQUEID, another Z_PK): an address and a number more, one card.
    record(&mut icloud, 7, "AAAA-SAM:ABPerson", Some("Sam"), Some("Rivera"), None, None).await;
    phone(&mut icloud, 7, 0, "+1 555 123 4567").await;
    email(&mut icloud, 7, "sam@example.com").await;
    // Lee: full image kept as external data (0x02 + UUID), Z22_OWNER-only rows are ignored.
    record(&mut icloud, 8, "DDDD-LEE:ABPerson", Some("Lee"), None, Some(tagged(2, b"0E5C1D2A-EXT\0")), None).await;
    phone(&mut icloud, 8, 0, "1-555-222-3333").await;
    std::fs::write(account.join(".AddressBook-v22_SUPPORT/_EXTERNAL_DATA/0E5C1D2A-EXT"), common::jpeg(4)).expect("external");
    icloud.close().await.expect("close");
}

#[tokio::test]
async fn a_mac_folder_reads_all_files_and_merges_by_unique_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    mac_folder(dir.path()).await;
    let set = address_book::read_mac(dir.path()).await.expect("read");
    let uids: Vec<&str> = set.cards.iter().map(|c| c.uid.as_str()).collect();
    assert_eq!(uids, ["AAAA-SAM:ABPerson", "BBBB-KIM:ABPerson", "CCCC-BAD:ABPerson", "DDDD-LEE:ABPerson"]);

    let sam = &set.cards[0];
    assert_eq!(sam.display_name().as_deref(), Some("Sam Rivera"));
    assert_eq!(sam.phones, ["(555) 987-6543", "+1 555 123 4567"]);
    assert_eq!(sam.emails, ["sam@example.com"]);
    assert_eq!(sam.photo.as_ref().map(|p| (p.mime.as_str(), &p.bytes)), Some(("image/jpeg", &common::jpeg(1))));
    assert_eq!(sam.source, format!("abcddb:{}", dir.path().join(address_book::MAC_FILE).display()));

    let kim = &set.cards[1];
    assert_eq!(kim.emails, ["Alex.Kim@Example.com"]);
    assert_eq!(kim.photo.as_ref().map(|p| &p.bytes), Some(&common::png(3)), "the full-size image in Images/ wins over the thumbnail");

    let bad = &set.cards[2];
    assert_eq!(bad.display_name().as_deref(), Some("Acme Plumbing"));
    assert!(bad.photo.is_none());

    let lee = &set.cards[3];
    assert_eq!(lee.photo.as_ref().map(|p| &p.bytes), Some(&common::jpeg(4)));

    let problems: Vec<(&str, &str)> = set.problems.iter().map(|p| (p.item.as_str(), p.reason.as_str())).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().any(|(item, reason)| *item == "ZABCDRECORD 4" && reason.contains("not an image")), "{problems:?}");
    assert!(problems.iter().any(|(item, _)| *item == "ZABCDPHONENUMBER owner 99"), "{problems:?}");

    // The same through `open`, on the folder and on one file.
    let opened = address_book::open(dir.path()).await.expect("open folder");
    assert_eq!(opened.cards, set.cards);
    let one = address_book::open(&dir.path().join(address_book::MAC_FILE)).await.expect("open file");
    assert_eq!(one.cards.len(), 3);
}

#[tokio::test]
async fn an_old_layout_without_image_or_ordering_columns_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("copy.db");
    let db = create(
        &path,
        &[
            "CREATE TABLE ZABCDRECORD (Z_PK INTEGER PRIMARY KEY, ZFIRSTNAME VARCHAR, ZLASTNAME VARCHAR)",
            "CREATE TABLE ZABCDPHONENUMBER (Z_PK INTEGER PRIMARY KEY, Z22_OWNER INTEGER, ZFULLNUMBER VARCHAR)",
            "INSERT INTO ZABCDRECORD VALUES (5, 'Old', 'Mac')",
            "INSERT INTO ZABCDPHONENUMBER VALUES (1, 5, '555 444 3333')",
        ],
    )
    .await;
    db.close().await.expect("close");
    let set = address_book::open(&path).await.expect("recognised by its tables");
    assert_eq!(set.cards.len(), 1);
    assert_eq!(set.cards[0].phones, ["555 444 3333"]);
    assert_eq!(set.cards[0].uid, format!("abcddb:{}#5", path.display()));
}

const IOS_SCHEMA: &[&str] = &[
    "CREATE TABLE ABPerson (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, First TEXT, Last TEXT, Middle TEXT, FirstPhonetic TEXT, MiddlePhonetic TEXT, LastPhonetic TEXT, Organization TEXT, Department TEXT, Note TEXT, Kind INTEGER, Birthday TEXT, JobTitle TEXT, Nickname TEXT, Prefix TEXT, Suffix TEXT, CreationDate INTEGER, ModificationDate INTEGER, guid TEXT)",
    "CREATE TABLE ABMultiValue (UID INTEGER PRIMARY KEY, record_id INTEGER, property INTEGER, identifier INTEGER, label INTEGER, value TEXT, guid TEXT)",
];

const IOS_IMAGES_SCHEMA: &[&str] = &[
    "CREATE TABLE ABFullSizeImage (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER, record_id INTEGER, crop_x INTEGER, crop_y INTEGER, crop_width INTEGER, crop_height INTEGER, data BLOB)",
    "CREATE TABLE ABThumbnailImage (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER, format INTEGER, derived_from_format INTEGER, width INTEGER, height INTEGER, bytes_per_row INTEGER, data BLOB)",
];

#[tokio::test]
async fn an_iphone_address_book_with_its_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ab = create(&dir.path().join(address_book::IOS_FILE), IOS_SCHEMA).await;
    for sql in [
        "INSERT INTO ABPerson (ROWID, First, Last, Nickname, guid) VALUES (1, 'Sam', 'Rivera', 'Sammy', 'G-SAM')",
        "INSERT INTO ABPerson (ROWID, First, Last, Organization) VALUES (2, NULL, NULL, 'Joe''s Pizza')",
        "INSERT INTO ABPerson (ROWID, Nickname) VALUES (3, 'Mo')",
        "INSERT INTO ABPerson (ROWID, First) VALUES (4, 'No Numbers')",
        "INSERT INTO ABMultiValue (record_id, property, label, value) VALUES (1, 3, 1, '(555) 123-4567')",
        "INSERT INTO ABMultiValue (record_id, property, label, value) VALUES (1, 4, 2, 'Sam@Example.com')",
        "INSERT INTO ABMultiValue (record_id, property, label, value) VALUES (1, 5, 3, 'https://sam.example')",
        "INSERT INTO ABMultiValue (record_id, property, label, value) VALUES (2, 3, 1, '555.321.0000')",
        "INSERT INTO ABMultiValue (record_id, property, label, value) VALUES (3, 3, 1, '+44 20 7946 0018')",
        "INSERT INTO ABMultiValue (record_id, property, label, value) VALUES (42, 3, 1, '+1 555 000 0042')",
    ] {
        sqlx::query(sql).execute(&mut ab).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    ab.close().await.expect("close");
    let mut images = create(&dir.path().join(address_book::IOS_IMAGES_FILE), IOS_IMAGES_SCHEMA).await;
    let insert_thumb = "INSERT INTO ABThumbnailImage (record_id, format, data) VALUES (?, ?, ?)";
    for (record, format, data) in [(1, 0, common::jpeg(7)[..60].to_vec()), (1, 5, common::jpeg(7)), (2, 0, common::png(1)), (3, 0, b"garbage".to_vec())] {
        sqlx::query(insert_thumb).bind(record).bind(format).bind(data).execute(&mut images).await.expect("thumb");
    }
    sqlx::query("INSERT INTO ABFullSizeImage (record_id, data) VALUES (2, ?)").bind(common::jpeg(8)).execute(&mut images).await.expect("full");
    images.close().await.expect("close");

    let set = address_book::open(dir.path()).await.expect("open folder");
    type Row<'a> = (&'a str, Option<String>, &'a [String], &'a [String]);
    let got: Vec<Row> = set.cards.iter().map(|c| (c.uid.as_str(), c.display_name(), &c.phones[..], &c.emails[..])).collect();
    assert_eq!(
        got,
        [
            ("G-SAM", Some("Sam Rivera".to_string()), &["(555) 123-4567".to_string()][..], &["Sam@Example.com".to_string()][..]),
            ("ios:2", Some("Joe's Pizza".to_string()), &["555.321.0000".to_string()][..], &[][..]),
            ("ios:3", Some("Mo".to_string()), &["+44 20 7946 0018".to_string()][..], &[][..]),
        ]
    );
    assert_eq!(set.cards[0].photo.as_ref().map(|p| &p.bytes), Some(&common::jpeg(7)), "the largest thumbnail");
    assert_eq!(set.cards[1].photo.as_ref().map(|p| &p.bytes), Some(&common::jpeg(8)), "the full-size image over the thumbnail");
    assert!(set.cards[2].photo.is_none());
    let items: Vec<&str> = set.problems.iter().map(|p| p.item.as_str()).collect();
    assert_eq!(items.len(), 2, "{:?}", set.problems);
    assert!(items.contains(&"ABMultiValue record_id 42"));
    assert!(items.contains(&"ABThumbnailImage record_id 3"));

    // Without the images file: the same cards, no photos.
    let bare = address_book::read_ios(&dir.path().join(address_book::IOS_FILE), None).await.expect("read");
    assert_eq!(bare.cards.len(), 3);
    assert!(bare.cards.iter().all(|c| c.photo.is_none()));
}

#[tokio::test]
async fn what_is_not_an_address_book_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(address_book::open(dir.path()).await, Err(contacts::Error::NotAddressBook { .. })));
    assert!(matches!(address_book::open(&dir.path().join("nope.abcddb")).await, Err(contacts::Error::Io { .. })));
    let other = dir.path().join("other.sqlitedb");
    create(&other, &["CREATE TABLE t (x)"]).await.close().await.expect("close");
    assert!(matches!(address_book::open(&other).await, Err(contacts::Error::NotAddressBook { .. })));
    std::fs::write(dir.path().join("text.abcddb"), "this is not sqlite").expect("write");
    assert!(matches!(address_book::open(&dir.path().join("text.abcddb")).await, Err(contacts::Error::Database { .. })));
}
