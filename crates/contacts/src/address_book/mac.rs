//! A Mac's Contacts database: `~/Library/Application Support/AddressBook/AddressBook-v22.abcddb`
//! and one more per account under `Sources/<UUID>/`. The top file holds the "On My Mac" cards,
//! each `Sources/` file an account's (iCloud, Google, Exchange); the same person synced from two
//! places keeps one `ZUNIQUEID`, so cards are merged by it.
//!
//! Tables (Core Data): `ZABCDRECORD` (people, but also groups and account records: only rows
//! with a number or an address are cards), `ZABCDPHONENUMBER` and `ZABCDEMAILADDRESS`
//! (`ZOWNER` → `ZABCDRECORD.Z_PK`; some versions name the owner column `Z<n>_OWNER`).
//! Images: `ZIMAGEDATA`/`ZTHUMBNAILIMAGEDATA` blobs start with a tag byte, `0x01` before the
//! image or `0x02` before the UUID of a file in `.AddressBook-v22_SUPPORT/_EXTERNAL_DATA/`;
//! full-size images also live in `Images/` beside the database, named by the record's
//! `ZUNIQUEID` without its `:ABPerson` suffix. The full-size image is preferred, the thumbnail
//! is the fallback.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{blob, not_address_book, push_unique, select, text, Db, MAC_FILE};
use crate::{Card, CardSet, Error, Photo, Problem, Result};

/// The `.abcddb` files at `path`: the file itself, or a folder's top file and its
/// `Sources/*/` files (sorted, top first).
pub fn mac_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    if path.join(MAC_FILE).is_file() {
        files.push(path.join(MAC_FILE));
    }
    let sources = path.join("Sources");
    if sources.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&sources)
            .map_err(|e| Error::io(&sources, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path().join(MAC_FILE)))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        return Err(not_address_book(path, format!("no {MAC_FILE} in the folder or under Sources/")));
    }
    Ok(files)
}

/// Reads a Mac's address book: an `AddressBook-v22.abcddb` file, or a folder holding them (see
/// [`mac_files`]), merged by `ZUNIQUEID`.
pub async fn read_mac(path: &Path) -> Result<CardSet> {
    let mut out = CardSet::default();
    let mut by_uid: HashMap<String, usize> = HashMap::new();
    for file in mac_files(path)? {
        let (cards, problems) = read_file(&file).await?;
        out.problems.extend(problems);
        for card in cards {
            match by_uid.get(&card.uid).and_then(|&i| out.cards.get_mut(i)) {
                Some(held) => merge(held, card),
                None => {
                    by_uid.insert(card.uid.clone(), out.cards.len());
                    out.cards.push(card);
                }
            }
        }
    }
    Ok(out)
}

/// Fills what `held` lacks from `other`, the same person read from another account file.
fn merge(held: &mut Card, other: Card) {
    for (field, value) in [
        (&mut held.full_name, other.full_name),
        (&mut held.given, other.given),
        (&mut held.family, other.family),
        (&mut held.nickname, other.nickname),
        (&mut held.organization, other.organization),
    ] {
        if field.is_none() {
            *field = value;
        }
    }
    other.phones.into_iter().for_each(|p| push_unique(&mut held.phones, p));
    other.emails.into_iter().for_each(|e| push_unique(&mut held.emails, e));
    if held.photo.is_none() {
        held.photo = other.photo;
    }
}

async fn read_file(path: &Path) -> Result<(Vec<Card>, Vec<Problem>)> {
    let db = Db::open(path).await?;
    let result = read_db(&db).await;
    db.close().await;
    result
}

async fn read_db(db: &Db) -> Result<(Vec<Card>, Vec<Problem>)> {
    let source = format!("abcddb:{}", db.path.display());
    let problem = |item: String, reason: String| Problem { source: source.clone(), item, reason };
    let rc = db.columns("ZABCDRECORD").await?;
    if !rc.contains("Z_PK") {
        return Err(not_address_book(&db.path, "no ZABCDRECORD table with Z_PK"));
    }
    let sql = format!(
        "SELECT Z_PK AS pk, {}, {}, {}, {}, {}, {}, {} FROM ZABCDRECORD ORDER BY Z_PK",
        select(&rc, "ZUNIQUEID", "uid"),
        select(&rc, "ZFIRSTNAME", "first"),
        select(&rc, "ZLASTNAME", "last"),
        select(&rc, "ZNICKNAME", "nick"),
        select(&rc, "ZORGANIZATION", "org"),
        select(&rc, "ZIMAGEDATA", "image"),
        select(&rc, "ZTHUMBNAILIMAGEDATA", "thumb"),
    );
    let records = sqlx::query(&sql).fetch_all(&db.pool).await.map_err(|e| db.error(e))?;
    let mut problems = Vec::new();
    let mut phones = handles(db, "ZABCDPHONENUMBER", &["ZFULLNUMBER"]).await?;
    let mut emails = handles(db, "ZABCDEMAILADDRESS", &["ZADDRESS", "ZADDRESSNORMALIZED"]).await?;
    let folder = db.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cards = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &records {
        let Ok(pk) = sqlx::Row::try_get::<i64, _>(row, "pk") else {
            problems.push(problem("ZABCDRECORD".into(), "a row whose Z_PK is not an integer".into()));
            continue;
        };
        seen.insert(pk);
        let (card_phones, card_emails) = (phones.remove(&pk).unwrap_or_default(), emails.remove(&pk).unwrap_or_default());
        if card_phones.is_empty() && card_emails.is_empty() {
            continue; // a group, an account record, or a card nobody can be matched to
        }
        let uid = text(row, "uid").unwrap_or_else(|| format!("{source}#{pk}"));
        let mut card = Card {
            given: text(row, "first"),
            family: text(row, "last"),
            nickname: text(row, "nick"),
            organization: text(row, "org"),
            phones: card_phones,
            emails: card_emails,
            source: source.clone(),
            ..Card::default()
        };
        let candidates = [ImageAt::Blob(blob(row, "image")), ImageAt::Folder, ImageAt::Blob(blob(row, "thumb"))];
        for at in candidates {
            match at.photo(&folder, &uid) {
                None => continue,
                Some(Ok(photo)) => {
                    card.photo = Some(photo);
                    break;
                }
                Some(Err(reason)) => problems.push(problem(format!("ZABCDRECORD {pk}"), reason)),
            }
        }
        card.uid = uid;
        cards.push(card);
    }
    for (table, left) in [("ZABCDPHONENUMBER", phones), ("ZABCDEMAILADDRESS", emails)] {
        for (owner, values) in left {
            problems.push(problem(format!("{table} owner {owner}"), format!("{} value(s) of a record that does not exist", values.len())));
        }
    }
    Ok((cards, problems))
}

/// Where a record's image may be.
enum ImageAt {
    Blob(Option<Vec<u8>>),
    /// `Images/<ZUNIQUEID>` beside the database.
    Folder,
}

impl ImageAt {
    /// None: no image here; Some(Err): an image that cannot be used.
    fn photo(self, folder: &Path, uid: &str) -> Option<Result<Photo, String>> {
        match self {
            ImageAt::Blob(None) => None,
            ImageAt::Blob(Some(bytes)) if bytes.first() == Some(&0x02) => {
                let reference = String::from_utf8_lossy(&bytes[1..]).trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string();
                if reference.is_empty() || reference.contains(['/', '\\']) || reference.starts_with('.') {
                    return Some(Err("image reference that is not a file name".into()));
                }
                let file = folder.join(".AddressBook-v22_SUPPORT/_EXTERNAL_DATA").join(&reference);
                Some(if file.is_file() { Photo::read_file(&file) } else { Err(format!("image file {} is missing", file.display())) })
            }
            ImageAt::Blob(Some(bytes)) => Some(Photo::from_bytes(bytes)),
            ImageAt::Folder => {
                let bare = uid.split(':').next().unwrap_or(uid);
                let names = [bare.to_string(), uid.to_string(), format!("{bare}.jpeg"), format!("{bare}.jpg")];
                let file = names.iter().filter(|n| !n.is_empty() && !n.contains(['/', '\\'])).map(|n| folder.join("Images").join(n)).find(|p| p.is_file())?;
                Some(Photo::read_file(&file))
            }
        }
    }
}

/// Phone numbers or addresses by owner `Z_PK`, in the order the card lists them. `value_columns`
/// are tried in order (the first non-empty one of a row is its value).
async fn handles(db: &Db, table: &str, value_columns: &[&str]) -> Result<HashMap<i64, Vec<String>>> {
    let columns = db.columns(table).await?;
    let owner = columns.iter().find(|c| *c == "ZOWNER").or_else(|| columns.iter().find(|c| is_numbered_owner(c)));
    let values: Vec<&str> = value_columns.iter().copied().filter(|c| columns.contains(*c)).collect();
    let (Some(owner), false) = (owner, values.is_empty()) else {
        return Ok(HashMap::new());
    };
    let value = if values.len() == 1 { values[0].to_string() } else { format!("COALESCE({})", values.join(", ")) };
    let order = if columns.contains("ZORDERINGINDEX") { "ZORDERINGINDEX, " } else { "" };
    let pk = if columns.contains("Z_PK") { "Z_PK" } else { "rowid" };
    let sql = format!("SELECT {owner} AS owner, {value} AS value FROM {table} WHERE {owner} IS NOT NULL ORDER BY {owner}, {order}{pk}");
    let rows = sqlx::query(&sql).fetch_all(&db.pool).await.map_err(|e| db.error(e))?;
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for row in &rows {
        let (Ok(owner), Some(value)) = (sqlx::Row::try_get::<i64, _>(row, "owner"), text(row, "value")) else { continue };
        push_unique(out.entry(owner).or_default(), value);
    }
    Ok(out)
}

/// `Z22_OWNER` and the like: the owner column of some Core Data versions.
fn is_numbered_owner(column: &str) -> bool {
    column.strip_prefix('Z').and_then(|r| r.strip_suffix("_OWNER")).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_owner_columns() {
        assert!(is_numbered_owner("Z22_OWNER"));
        assert!(!is_numbered_owner("Z_OWNER"));
        assert!(!is_numbered_owner("ZOWNER"));
        assert!(!is_numbered_owner("ZXX_OWNER"));
    }
}
