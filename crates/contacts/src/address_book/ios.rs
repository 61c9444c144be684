//! An iPhone's Contacts database, as an iPhone backup holds it (HomeDomain
//! `Library/AddressBook/AddressBook.sqlitedb` and `AddressBookImages.sqlitedb`).
//!
//! `ABPerson` (`ROWID`, `First`, `Last`, `Nickname`, `Organization`, on newer iOS a `guid`) and
//! `ABMultiValue` (`record_id` → `ABPerson.ROWID`, `property` 3 = phone number, 4 = email
//! address, `value`). Photos are in the second file: `ABFullSizeImage(record_id, data)` when the
//! person has a full-size image, else the largest `ABThumbnailImage(record_id, format, data)`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sqlx::Row;

use super::{blob, not_address_book, push_unique, select, text, Db};
use crate::{Card, CardSet, Photo, Problem, Result};

const PROPERTY_PHONE: i64 = 3;
const PROPERTY_EMAIL: i64 = 4;

/// Reads an iPhone's `AddressBook.sqlitedb`, with photos from `images` (its
/// `AddressBookImages.sqlitedb`) when given and present. A card's uid is `ABPerson.guid` where
/// the file has it, else `ios:<ROWID>`.
pub async fn read_ios(address_book: &Path, images: Option<&Path>) -> Result<CardSet> {
    let db = Db::open(address_book).await?;
    let result = read_people(&db).await;
    db.close().await;
    let (mut cards, mut problems) = result?;
    if let Some(images) = images.filter(|p| p.is_file()) {
        let db = Db::open(images).await?;
        let result = read_images(&db, &mut cards).await;
        db.close().await;
        problems.extend(result?);
    }
    Ok(CardSet { cards: cards.into_values().collect(), problems })
}

/// People by `ROWID` (so cards come out in the file's order).
type People = BTreeMap<i64, Card>;

async fn read_people(db: &Db) -> Result<(People, Vec<Problem>)> {
    let source = format!("sqlitedb:{}", db.path.display());
    let pc = db.columns("ABPerson").await?;
    if !db.has_table("ABPerson") {
        return Err(not_address_book(&db.path, "no ABPerson table"));
    }
    let sql = format!(
        "SELECT ROWID AS id, {}, {}, {}, {}, {} FROM ABPerson ORDER BY ROWID",
        select(&pc, "guid", "guid"),
        select(&pc, "First", "first"),
        select(&pc, "Last", "last"),
        select(&pc, "Nickname", "nick"),
        select(&pc, "Organization", "org"),
    );
    let rows = sqlx::query(&sql).fetch_all(&db.pool).await.map_err(|e| db.error(e))?;
    let mut people = People::new();
    let mut problems = Vec::new();
    for row in &rows {
        let Ok(id) = row.try_get::<i64, _>("id") else { continue };
        let card = Card {
            uid: text(row, "guid").unwrap_or_else(|| format!("ios:{id}")),
            given: text(row, "first"),
            family: text(row, "last"),
            nickname: text(row, "nick"),
            organization: text(row, "org"),
            source: source.clone(),
            ..Card::default()
        };
        people.insert(id, card);
    }
    let mc = db.columns("ABMultiValue").await?;
    if ["record_id", "property", "value"].iter().all(|c| mc.contains(*c)) {
        let sql =
            format!("SELECT record_id, property, value FROM ABMultiValue WHERE property IN ({PROPERTY_PHONE}, {PROPERTY_EMAIL}) ORDER BY record_id, ROWID");
        let rows = sqlx::query(&sql).fetch_all(&db.pool).await.map_err(|e| db.error(e))?;
        let mut orphans: HashMap<i64, usize> = HashMap::new();
        for row in &rows {
            let (Ok(record), Ok(property), Some(value)) = (row.try_get::<i64, _>("record_id"), row.try_get::<i64, _>("property"), text(row, "value")) else {
                continue;
            };
            match people.get_mut(&record) {
                Some(card) if property == PROPERTY_PHONE => push_unique(&mut card.phones, value),
                Some(card) => push_unique(&mut card.emails, value),
                None => *orphans.entry(record).or_default() += 1,
            }
        }
        for (record, n) in orphans {
            problems.push(Problem {
                source: source.clone(),
                item: format!("ABMultiValue record_id {record}"),
                reason: format!("{n} value(s) of a person that does not exist"),
            });
        }
    }
    // People without a number or an address cannot be matched to anyone.
    people.retain(|_, c| !c.phones.is_empty() || !c.emails.is_empty());
    Ok((people, problems))
}

async fn read_images(db: &Db, people: &mut People) -> Result<Vec<Problem>> {
    let source = format!("sqlitedb:{}", db.path.display());
    let mut problems = Vec::new();
    for (table, order) in [("ABFullSizeImage", "ROWID"), ("ABThumbnailImage", "length(data) DESC, ROWID")] {
        let columns = db.columns(table).await?;
        if !columns.contains("record_id") || !columns.contains("data") {
            continue;
        }
        let sql = format!("SELECT record_id, data FROM {table} ORDER BY record_id, {order}");
        let rows = sqlx::query(&sql).fetch_all(&db.pool).await.map_err(|e| db.error(e))?;
        for row in &rows {
            let (Ok(record), Some(bytes)) = (row.try_get::<i64, _>("record_id"), blob(row, "data")) else { continue };
            let Some(card) = people.get_mut(&record) else { continue };
            if card.photo.is_some() {
                continue;
            }
            match Photo::from_bytes(bytes) {
                Ok(photo) => card.photo = Some(photo),
                Err(reason) => problems.push(Problem { source: source.clone(), item: format!("{table} record_id {record}"), reason }),
            }
        }
    }
    Ok(problems)
}
