//! `payloadData` of a link: the preview the sender's Messages built, as it archives it.
//!
//! Why: a link message's preview (title, summary, icon) exists only in this blob, fetched by the
//! sender's device when it was sent, so the simulator serves it for the bridge to show.
//!
//! The blob is an `NSKeyedArchiver` archive (a binary plist `{$version: 100000, $archiver:
//! "NSKeyedArchiver", $top: {root: UID 1}, $objects: […]}`): `$objects[0]` is `$null`, every
//! object is a dictionary whose `$class` is the UID of a class dictionary (`$classname`, and
//! `$classes` the class and its superclasses; Messages' own `RichLink` classes have only
//! `$classname`), and object references are UIDs. Objects get their numbers in the order they are
//! encoded, an object before its contents, a class when the first object of the class is done;
//! each archived string and URL is its own object. The root is a `RichLink`
//! (`richLinkIsPlaceholder`, `richLinkMetadata`) of an `LPLinkMetadata`: `originalURL`, `URL`
//! (`NSURL`s: `NS.base` `$null`, `NS.relative` the string), `title`, `summary`, `icon` (a
//! `RichLinkImageAttachmentSubstitute`: the icon image went along as attachment 0, with its
//! `MIMEType`), `iconMetadata` and `icons` (an `NSArray`) of an `LPIconMetadata` with its `URL`,
//! and `version` 1.
//!
//! Dictionary keys are in the order of `payload/URL.plist` (Apple's hash order, not modelled;
//! `summary`, absent there, follows `title`), and the plist is laid out as that fixture's
//! CoreFoundation laid it out (see [`super::bplist`], and [`Plist::DistinctString`] for the
//! class names); with the fixture's inputs the output is the fixture byte for byte.

use std::collections::HashMap;

use plist::{Uid, Value};

use super::bplist::{self, Plist};
use super::ContentError;

/// `NSKeyedArchiver`'s archive version.
const ARCHIVE_VERSION: i64 = 100_000;

/// A link preview to archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPreviewSpec {
    /// `URL`: where the content was served from, after redirects.
    pub url: String,
    /// `originalURL`: the URL as sent.
    pub original_url: String,
    /// `title`.
    pub title: Option<String>,
    /// `summary`: the page's description.
    pub summary: Option<String>,
    /// The site icon's URL (`iconMetadata`, `icons`).
    pub icon_url: Option<String>,
    /// The MIME type of the icon image when it was sent along as the message's first attachment
    /// (`icon`, a `RichLinkImageAttachmentSubstitute`).
    pub icon_mime_type: Option<String>,
    /// `richLinkIsPlaceholder`: the preview was never filled in.
    pub is_placeholder: bool,
}

/// Encodes a link's `payloadData`.
pub fn encode_link_preview(spec: &LinkPreviewSpec) -> Result<Vec<u8>, ContentError> {
    if spec.url.is_empty() || spec.original_url.is_empty() {
        return Err(ContentError::invalid("a link preview needs its URL and original URL"));
    }
    let mut archive = Archive::new();
    let root = archive.reserve();
    let metadata = metadata(&mut archive, spec);
    let class = archive.class("RichLink", Classes::None);
    archive.put(root, vec![("richLinkIsPlaceholder", Value::Boolean(spec.is_placeholder).into()), ("richLinkMetadata", metadata), ("$class", class)]);
    bplist::write(&archive.finish(root))
}

/// The `LPLinkMetadata` object.
fn metadata(archive: &mut Archive, spec: &LinkPreviewSpec) -> Plist {
    let index = archive.reserve();
    let original_url = archive.url(&spec.original_url);
    let url = archive.url(&spec.url);
    let title = spec.title.as_deref().map(|title| archive.string(title));
    let summary = spec.summary.as_deref().map(|summary| archive.string(summary));
    let icon = spec.icon_mime_type.as_deref().map(|mime| icon_substitute(archive, mime));
    let icon_metadata = spec.icon_url.as_deref().map(|icon_url| {
        let index = archive.reserve();
        let url = archive.url(icon_url);
        let class = archive.class("LPIconMetadata", Classes::Distinct);
        archive.put(index, vec![("version", Value::from(1).into()), ("URL", url), ("$class", class)])
    });
    let icons = icon_metadata.clone().map(|icon| {
        let index = archive.reserve();
        let class = archive.class("NSArray", Classes::Shared);
        archive.put(index, vec![("NS.objects", Plist::Array(vec![icon])), ("$class", class)])
    });
    let class = archive.class("LPLinkMetadata", Classes::Distinct);

    let entries = [
        ("icons", icons),
        ("originalURL", Some(original_url)),
        ("iconMetadata", icon_metadata),
        ("$class", Some(class)),
        ("title", title),
        ("summary", summary),
        ("version", Some(Value::from(1).into())),
        ("URL", Some(url)),
        ("icon", icon),
    ];
    let entries = entries.into_iter().filter_map(|(key, value)| value.map(|value| (key, value))).collect();
    archive.put(index, entries)
}

/// The icon as an image sent along as attachment 0.
fn icon_substitute(archive: &mut Archive, mime_type: &str) -> Plist {
    let index = archive.reserve();
    let mime = archive.string(mime_type);
    let class = archive.class("RichLinkImageAttachmentSubstitute", Classes::None);
    archive.put(
        index,
        vec![("imageType", Value::from(0).into()), ("richLinkImageAttachmentSubstituteIndex", Value::from(0).into()), ("MIMEType", mime), ("$class", class)],
    )
}

/// What a class dictionary lists in `$classes`.
#[derive(Debug, Clone, Copy)]
enum Classes {
    /// No `$classes` (Messages' own `RichLink` classes).
    None,
    /// The class and `NSObject`, the class's name being the same string as `$classname`
    /// (Foundation's classes).
    Shared,
    /// The same, but the name in `$classes` is a string of its own (LinkPresentation's classes,
    /// in `URL.plist`).
    Distinct,
}

/// A reference to object `index`.
fn uid(index: u64) -> Plist {
    Value::Uid(Uid::new(index)).into()
}

/// An `NSKeyedArchiver` object table being filled.
struct Archive {
    objects: Vec<Plist>,
    classes: HashMap<&'static str, u64>,
}

impl Archive {
    fn new() -> Self {
        Archive { objects: vec![Value::from("$null").into()], classes: HashMap::new() }
    }

    /// Takes the next object number for an object whose contents come later.
    fn reserve(&mut self) -> u64 {
        self.objects.push(Value::Boolean(false).into());
        self.objects.len() as u64 - 1
    }

    /// Fills object `index` with `entries`; returns a reference to it.
    fn put(&mut self, index: u64, entries: Vec<(&str, Plist)>) -> Plist {
        let object = entries.into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        if let Some(slot) = usize::try_from(index).ok().and_then(|index| self.objects.get_mut(index)) {
            *slot = Plist::Dictionary(object);
        }
        uid(index)
    }

    fn push(&mut self, object: Plist) -> Plist {
        self.objects.push(object);
        uid(self.objects.len() as u64 - 1)
    }

    fn string(&mut self, text: &str) -> Plist {
        self.push(Value::from(text).into())
    }

    /// An absolute `NSURL`.
    fn url(&mut self, url: &str) -> Plist {
        let index = self.reserve();
        let relative = self.string(url);
        let class = self.class("NSURL", Classes::Shared);
        self.put(index, vec![("NS.base", uid(0)), ("$class", class), ("NS.relative", relative)])
    }

    /// The class dictionary of `name`, written once.
    fn class(&mut self, name: &'static str, classes: Classes) -> Plist {
        if let Some(&index) = self.classes.get(name) {
            return uid(index);
        }
        let mut class = vec![("$classname".to_owned(), Value::from(name).into())];
        let own_name = match classes {
            Classes::None => None,
            Classes::Shared => Some(Value::from(name).into()),
            Classes::Distinct => Some(Plist::DistinctString(name.to_owned())),
        };
        if let Some(own_name) = own_name {
            let hierarchy = vec![own_name, Value::from("NSObject").into()];
            class.push(("$classes".to_owned(), Plist::Array(hierarchy)));
        }
        let reference = self.push(Plist::Dictionary(class));
        self.classes.insert(name, self.objects.len() as u64 - 1);
        reference
    }

    fn finish(self, root: u64) -> Plist {
        Plist::Dictionary(vec![
            ("$version".into(), Value::from(ARCHIVE_VERSION).into()),
            ("$archiver".into(), Value::from("NSKeyedArchiver").into()),
            ("$top".into(), Plist::Dictionary(vec![("root".into(), uid(root))])),
            ("$objects".into(), Plist::Array(self.objects)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_needs_its_urls() {
        let spec = LinkPreviewSpec { url: "https://example.com/".into(), ..LinkPreviewSpec::default() };
        assert!(encode_link_preview(&spec).is_err());
    }

    #[test]
    fn objects_follow_encoding_order() {
        let spec = LinkPreviewSpec {
            url: "https://a/".into(),
            original_url: "https://a".into(),
            title: Some("A".into()),
            summary: Some("About a".into()),
            ..LinkPreviewSpec::default()
        };
        let bytes = encode_link_preview(&spec).unwrap();
        let value: Value = plist::from_bytes(&bytes).unwrap();
        let objects = value.as_dictionary().and_then(|d| d.get("$objects")).and_then(Value::as_array).unwrap();
        let strings: Vec<&str> = objects.iter().filter_map(Value::as_string).collect();
        assert_eq!(strings, ["$null", "https://a", "https://a/", "A", "About a"]);
    }
}
