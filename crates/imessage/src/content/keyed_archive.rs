//! Navigating an `NSKeyedArchiver` plist (`payloadData`).
//!
//! Why it is needed: a keyed archive is a plist whose objects sit flat in one `$objects` array and
//! point at each other by UID (`$top.root` is the archived object; `$objects[0]` is `$null`). The
//! plist crate reads the plist; this module follows the UIDs on demand, a bounded number of hops
//! at a time, instead of expanding the whole graph (which may share or even cycle through objects).

use plist::{Dictionary, Value};

use crate::{Blob, Error};

/// How many UID-to-UID hops one dereference follows before giving up (real archives use one).
const MAX_HOPS: usize = 8;
/// How many elements of one `NSArray` are read.
const MAX_ARRAY: usize = 256;
/// How many `NS.base` levels of an `NSURL` are followed.
const MAX_URL_BASES: usize = 4;

/// An `NSKeyedArchiver` archive over a decoded plist.
pub(crate) struct KeyedArchive<'a> {
    objects: &'a [Value],
    root: &'a Value,
}

impl<'a> KeyedArchive<'a> {
    /// Opens the archive in `plist`, checking its `$archiver` and finding `$top.root`.
    pub(crate) fn open(plist: &'a Value, blob: Blob) -> Result<Self, Error> {
        let archive = plist.as_dictionary().ok_or_else(|| Error::shape(blob, "plist root is not a dictionary"))?;
        if let Some(archiver) = archive.get("$archiver") {
            if archiver.as_string() != Some("NSKeyedArchiver") {
                return Err(Error::shape(blob, "not an NSKeyedArchiver archive"));
            }
        }
        let objects = archive.get("$objects").and_then(Value::as_array).ok_or_else(|| Error::shape(blob, "keyed archive has no $objects array"))?;
        let top = archive.get("$top").and_then(Value::as_dictionary).ok_or_else(|| Error::shape(blob, "keyed archive has no $top dictionary"))?;
        let root = top.get("root").and_then(|root| deref_in(objects, root)).ok_or_else(|| Error::shape(blob, "keyed archive's $top.root points nowhere"))?;
        Ok(KeyedArchive { objects, root })
    }

    /// The archived root object.
    pub(crate) fn root(&self) -> &'a Value {
        self.root
    }

    /// Follows UIDs from `value` to a value that is not one; `None` for `$null` or a dangling UID.
    pub(crate) fn deref(&self, value: &'a Value) -> Option<&'a Value> {
        deref_in(self.objects, value)
    }

    /// The object `value` refers to, as a dictionary.
    pub(crate) fn object(&self, value: &'a Value) -> Option<&'a Dictionary> {
        self.deref(value)?.as_dictionary()
    }

    /// `object[key]`, dereferenced.
    pub(crate) fn get(&self, object: &'a Dictionary, key: &str) -> Option<&'a Value> {
        self.deref(object.get(key)?)
    }

    /// The class name (`$class` → `$classname`) of an object.
    pub(crate) fn class_name(&self, object: &'a Dictionary) -> Option<&'a str> {
        self.object(object.get("$class")?)?.get("$classname")?.as_string()
    }

    /// A string value: a plain string, or an archived `NSString` (`NS.string`).
    pub(crate) fn string(&self, value: &'a Value) -> Option<&'a str> {
        match self.deref(value)? {
            Value::String(s) => Some(s),
            Value::Dictionary(dict) => self.get(dict, "NS.string")?.as_string(),
            _ => None,
        }
    }

    /// `object[key]` as a string.
    pub(crate) fn string_at(&self, object: &'a Dictionary, key: &str) -> Option<String> {
        self.string(object.get(key)?).map(str::to_owned)
    }

    /// An `NSURL`: its `NS.relative` string, joined onto its `NS.base` URL when it has one and is
    /// not absolute itself. A plain string is taken as a URL too.
    pub(crate) fn url(&self, value: &'a Value) -> Option<String> {
        self.url_with_bases(value, MAX_URL_BASES)
    }

    fn url_with_bases(&self, value: &'a Value, bases: usize) -> Option<String> {
        let value = self.deref(value)?;
        let Value::Dictionary(url) = value else {
            return value.as_string().map(str::to_owned);
        };
        let relative = self.string(url.get("NS.relative")?)?;
        if relative.contains("://") || bases == 0 {
            return Some(relative.to_owned());
        }
        match url.get("NS.base").and_then(|base| self.url_with_bases(base, bases - 1)) {
            Some(base) => Some(join(&base, relative)),
            None => Some(relative.to_owned()),
        }
    }

    /// `object[key]` as a URL.
    pub(crate) fn url_at(&self, object: &'a Dictionary, key: &str) -> Option<String> {
        self.url(object.get(key)?)
    }

    /// The elements of an archived `NSArray` (`NS.objects`), dereferenced, at most [`MAX_ARRAY`].
    pub(crate) fn array(&self, value: &'a Value) -> Vec<&'a Value> {
        let Some(items) = self.object(value).and_then(|array| array.get("NS.objects")).and_then(Value::as_array) else {
            return Vec::new();
        };
        items.iter().take(MAX_ARRAY).filter_map(|item| self.deref(item)).collect()
    }
}

/// Follows UIDs from `value` through `objects`, at most [`MAX_HOPS`] of them.
fn deref_in<'a>(objects: &'a [Value], mut value: &'a Value) -> Option<&'a Value> {
    for _ in 0..MAX_HOPS {
        match value {
            Value::Uid(uid) => value = objects.get(usize::try_from(uid.get()).ok()?)?,
            Value::String(s) if s == "$null" => return None,
            other => return Some(other),
        }
    }
    None
}

/// Joins a relative URL reference onto a base URL, for the simple cases Apple produces (an
/// absolute path, or a path relative to the base's directory).
fn join(base: &str, relative: &str) -> String {
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    if let Some(path) = relative.strip_prefix('/') {
        let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
        return format!("{}/{}", &base[..host_end], path);
    }
    match base[scheme_end..].rfind('/') {
        Some(i) => format!("{}{}", &base[..scheme_end + i + 1], relative),
        None => format!("{base}/{relative}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_handles_absolute_and_relative_paths() {
        assert_eq!(join("https://a.example/x/y", "/z"), "https://a.example/z");
        assert_eq!(join("https://a.example/x/y", "z"), "https://a.example/x/z");
        assert_eq!(join("https://a.example", "z"), "https://a.example/z");
    }

    #[test]
    fn uid_cycles_end() {
        let plist = Value::Dictionary(
            [
                ("$archiver".to_owned(), Value::String("NSKeyedArchiver".into())),
                ("$objects".to_owned(), Value::Array(vec![Value::String("$null".into()), Value::Uid(plist::Uid::new(2)), Value::Uid(plist::Uid::new(1))])),
                ("$top".to_owned(), Value::Dictionary([("root".to_owned(), Value::Uid(plist::Uid::new(1)))].into_iter().collect())),
            ]
            .into_iter()
            .collect(),
        );
        assert!(KeyedArchive::open(&plist, Blob::PayloadData).is_err());
    }
}
