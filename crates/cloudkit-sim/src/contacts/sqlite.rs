//! Cards as Apple's address book databases:
//! - a Mac's `AddressBook/Sources/<UUID>/AddressBook-v22.abcddb` (Core Data: `ZABCDRECORD`
//!   with `Z_ENT` 22 for a person, `ZABCDPHONENUMBER` and `ZABCDEMAILADDRESS` joined by
//!   `ZOWNER`, labels as `_$!<Mobile>!$_`), the thumbnail in `ZTHUMBNAILIMAGEDATA` as Core Data
//!   stores inline external-storage data (a 0x01 byte, then the image), the full-size photo in
//!   `Sources/<UUID>/Images/<id>` where `<id>` is `ZUNIQUEID` without its `:ABPerson` suffix;
//! - an iPhone's `AddressBook.sqlitedb` (`ABPerson`, `ABMultiValue` with property 3 = phone,
//!   4 = email and the label a row of `ABMultiValueLabel`) and `AddressBookImages.sqlitedb`
//!   (`ABFullSizeImage`, `ABThumbnailImage` by `record_id` = `ABPerson.ROWID`).
//!
//! Only the columns a reader needs and Apple's keys are written; real databases have many more.

use std::io;
use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};

use super::{Card, Entry};

/// The Mac source folder's UUID (fixed: the same account gives the same folder).
pub const MAC_SOURCE: &str = "5C6F2B1E-0D3A-4B7E-9A51-3F0E8C2D7A10";

fn sql(e: sqlx::Error) -> io::Error {
    io::Error::other(e)
}

async fn create(path: &Path) -> io::Result<SqliteConnection> {
    if path.exists() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} already exists", path.display())));
    }
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true).journal_mode(SqliteJournalMode::Delete);
    SqliteConnection::connect_with(&options).await.map_err(sql)
}

async fn run(conn: &mut SqliteConnection, statements: &str) -> io::Result<()> {
    for statement in statements.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(statement).execute(&mut *conn).await.map_err(sql)?;
    }
    Ok(())
}

const MAC_DDL: &str = "
CREATE TABLE ZABCDRECORD (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZFIRSTNAME VARCHAR, ZLASTNAME VARCHAR, ZMIDDLENAME VARCHAR, ZNICKNAME VARCHAR, ZORGANIZATION VARCHAR, ZUNIQUEID VARCHAR, ZCREATIONDATE TIMESTAMP, ZMODIFICATIONDATE TIMESTAMP, ZTHUMBNAILIMAGEDATA BLOB);
CREATE TABLE ZABCDPHONENUMBER (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZOWNER INTEGER, ZORDERINGINDEX INTEGER, ZISPRIMARY INTEGER, ZFULLNUMBER VARCHAR, ZLABEL VARCHAR);
CREATE TABLE ZABCDEMAILADDRESS (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZOWNER INTEGER, ZORDERINGINDEX INTEGER, ZISPRIMARY INTEGER, ZADDRESS VARCHAR, ZADDRESSNORMALIZED VARCHAR, ZLABEL VARCHAR);
CREATE INDEX ZABCDPHONENUMBER_ZOWNER_INDEX ON ZABCDPHONENUMBER (ZOWNER);
CREATE INDEX ZABCDEMAILADDRESS_ZOWNER_INDEX ON ZABCDEMAILADDRESS (ZOWNER);
CREATE TABLE Z_PRIMARYKEY (Z_ENT INTEGER PRIMARY KEY, Z_NAME VARCHAR, Z_SUPER INTEGER, Z_MAX INTEGER);
CREATE TABLE Z_METADATA (Z_VERSION INTEGER PRIMARY KEY, Z_UUID VARCHAR(255), Z_PLIST BLOB)
";

/// The `ZUNIQUEID` of a card.
pub fn mac_unique_id(n: usize) -> String {
    format!("{:08X}-1A2B-4C3D-8E4F-{:012X}:ABPerson", 0x5100_0000 + n, 0xC0FFEE + n)
}

/// The rows of `ZABCDPHONENUMBER` (or, with `email`, `ZABCDEMAILADDRESS`) of card `owner`;
/// `pk` is the table's last `Z_PK`.
async fn insert_values(conn: &mut SqliteConnection, email: bool, owner: i64, entries: &[Entry], pk: &mut i64) -> io::Result<()> {
    let statement = if email {
        "INSERT INTO ZABCDEMAILADDRESS (Z_PK, Z_ENT, Z_OPT, ZOWNER, ZORDERINGINDEX, ZISPRIMARY, ZADDRESS, ZLABEL, ZADDRESSNORMALIZED) VALUES (?, 10, 1, ?, ?, ?, ?, ?, ?)"
    } else {
        "INSERT INTO ZABCDPHONENUMBER (Z_PK, Z_ENT, Z_OPT, ZOWNER, ZORDERINGINDEX, ZISPRIMARY, ZFULLNUMBER, ZLABEL) VALUES (?, 29, 1, ?, ?, ?, ?, ?)"
    };
    for (k, entry) in entries.iter().enumerate() {
        *pk += 1;
        let mut query = sqlx::query(statement).bind(*pk).bind(owner).bind(k as i64).bind(i64::from(k == 0)).bind(&entry.written).bind(entry.label);
        if email {
            query = query.bind(entry.written.to_lowercase());
        }
        query.execute(&mut *conn).await.map_err(sql)?;
    }
    Ok(())
}

/// Writes the Mac folder `dir/AddressBook` (`dir` must not hold one); returns the database path.
pub async fn write_mac(dir: &Path, cards: &[Card]) -> io::Result<PathBuf> {
    let source = dir.join("AddressBook/Sources").join(MAC_SOURCE);
    std::fs::create_dir_all(source.join("Images"))?;
    let db = source.join("AddressBook-v22.abcddb");
    let mut conn = create(&db).await?;
    run(&mut conn, MAC_DDL).await?;
    sqlx::query("BEGIN").execute(&mut conn).await.map_err(sql)?;
    let (mut phone_pk, mut email_pk) = (0i64, 0i64);
    for (n, card) in cards.iter().enumerate() {
        let pk = n as i64 + 1;
        let unique = mac_unique_id(n);
        let thumbnail = card.photo.as_ref().map(|p| [&[1u8][..], &p.bytes].concat());
        sqlx::query("INSERT INTO ZABCDRECORD (Z_PK, Z_ENT, Z_OPT, ZFIRSTNAME, ZLASTNAME, ZNICKNAME, ZORGANIZATION, ZUNIQUEID, ZCREATIONDATE, ZMODIFICATIONDATE, ZTHUMBNAILIMAGEDATA) VALUES (?, 22, 1, ?, ?, ?, ?, ?, 700000000, 700000000, ?)")
            .bind(pk)
            .bind(&card.given)
            .bind(&card.family)
            .bind(&card.nickname)
            .bind(&card.organization)
            .bind(&unique)
            .bind(thumbnail)
            .execute(&mut conn)
            .await
            .map_err(sql)?;
        if let Some(photo) = &card.photo {
            let id = unique.trim_end_matches(":ABPerson");
            std::fs::write(source.join("Images").join(id), &photo.bytes)?;
        }
        insert_values(&mut conn, false, pk, &card.phones, &mut phone_pk).await?;
        insert_values(&mut conn, true, pk, &card.emails, &mut email_pk).await?;
    }
    for (ent, name, max) in [(22, "ABCDContact", cards.len() as i64), (29, "ABCDPhoneNumber", phone_pk), (10, "ABCDEmailAddress", email_pk)] {
        sqlx::query("INSERT INTO Z_PRIMARYKEY (Z_ENT, Z_NAME, Z_SUPER, Z_MAX) VALUES (?, ?, 0, ?)")
            .bind(ent)
            .bind(name)
            .bind(max)
            .execute(&mut conn)
            .await
            .map_err(sql)?;
    }
    sqlx::query("COMMIT").execute(&mut conn).await.map_err(sql)?;
    conn.close().await.map_err(sql)?;
    Ok(db)
}

const IOS_DDL: &str = "
CREATE TABLE ABPerson (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, First TEXT, Last TEXT, Middle TEXT, Nickname TEXT, Organization TEXT, Kind INTEGER DEFAULT 0, CreationDate INTEGER, ModificationDate INTEGER, guid TEXT);
CREATE TABLE ABMultiValue (UID INTEGER PRIMARY KEY, record_id INTEGER, property INTEGER, identifier INTEGER, label INTEGER, value TEXT, guid TEXT);
CREATE TABLE ABMultiValueLabel (value TEXT, UNIQUE(value));
CREATE INDEX ABMultiValueRecordIDIndex ON ABMultiValue(record_id)
";

const IOS_IMAGES_DDL: &str = "
CREATE TABLE ABFullSizeImage (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER, crop_x INTEGER, crop_y INTEGER, crop_width INTEGER, data BLOB, UNIQUE(record_id));
CREATE TABLE ABThumbnailImage (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER, format INTEGER, derived_from_format INTEGER, data BLOB, UNIQUE(record_id, format))
";

/// Writes `dir/AddressBook.sqlitedb` and `dir/AddressBookImages.sqlitedb`.
pub async fn write_ios(dir: &Path, cards: &[Card]) -> io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let (book_path, images_path) = (dir.join("AddressBook.sqlitedb"), dir.join("AddressBookImages.sqlitedb"));
    let mut book = create(&book_path).await?;
    let mut images = create(&images_path).await?;
    run(&mut book, IOS_DDL).await?;
    run(&mut images, IOS_IMAGES_DDL).await?;
    sqlx::query("BEGIN").execute(&mut book).await.map_err(sql)?;
    let mut labels: Vec<&str> = Vec::new();
    for (n, card) in cards.iter().enumerate() {
        let rowid = n as i64 + 1;
        sqlx::query("INSERT INTO ABPerson (ROWID, First, Last, Nickname, Organization, CreationDate, ModificationDate, guid) VALUES (?, ?, ?, ?, ?, 700000000, 700000000, ?)")
            .bind(rowid)
            .bind(&card.given)
            .bind(&card.family)
            .bind(&card.nickname)
            .bind(&card.organization)
            .bind(&card.uid)
            .execute(&mut book)
            .await
            .map_err(sql)?;
        let entries = card.phones.iter().map(|e| (3i64, e)).chain(card.emails.iter().map(|e| (4i64, e)));
        for (identifier, (property, entry)) in entries.enumerate() {
            let label = match labels.iter().position(|l| *l == entry.label) {
                Some(i) => i,
                None => {
                    labels.push(entry.label);
                    sqlx::query("INSERT INTO ABMultiValueLabel (rowid, value) VALUES (?, ?)")
                        .bind(labels.len() as i64)
                        .bind(entry.label)
                        .execute(&mut book)
                        .await
                        .map_err(sql)?;
                    labels.len() - 1
                }
            };
            sqlx::query("INSERT INTO ABMultiValue (record_id, property, identifier, label, value) VALUES (?, ?, ?, ?, ?)")
                .bind(rowid)
                .bind(property)
                .bind(identifier as i64)
                .bind(label as i64 + 1)
                .bind(&entry.written)
                .execute(&mut book)
                .await
                .map_err(sql)?;
        }
        if let Some(photo) = &card.photo {
            // The same bytes as the full-size image and as its thumbnail.
            for insert in [
                "INSERT INTO ABFullSizeImage (record_id, crop_x, crop_y, crop_width, data) VALUES (?, 0, 0, 8, ?)",
                "INSERT INTO ABThumbnailImage (record_id, format, derived_from_format, data) VALUES (?, 0, 0, ?)",
            ] {
                sqlx::query(insert).bind(rowid).bind(&photo.bytes).execute(&mut images).await.map_err(sql)?;
            }
        }
    }
    sqlx::query("COMMIT").execute(&mut book).await.map_err(sql)?;
    book.close().await.map_err(sql)?;
    images.close().await.map_err(sql)?;
    Ok((book_path, images_path))
}
