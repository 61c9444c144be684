//! `payloadData` of a link: the preview Messages built when the link was sent.
//!
//! Why decode it: the preview (title, summary, site, icon, images) was fetched by the sender's
//! device when the link was sent and is kept with the message, so a bridge can show it (for
//! example as `com.beeper.linkpreviews`) even when the page has changed or is gone.
//!
//! The blob is an `NSKeyedArchiver` plist whose root is a `RichLink` object: its
//! `richLinkMetadata` is an `LPLinkMetadata` (`title`, `summary`, `siteName`, `itemType`, `URL`,
//! `originalURL`, `iconMetadata` / `icons` of `LPIconMetadata`, `imageMetadata` / `images` of
//! `LPImageMetadata`, each metadata with its own `URL`) and `richLinkIsPlaceholder` says whether
//! the preview was ever filled in. Some older payloads keep the metadata under `metadata`.

use plist::{Dictionary, Value};

use super::keyed_archive::KeyedArchive;
use super::plist::read;
use crate::{Blob, Error};

/// How many image URLs one preview yields.
const MAX_IMAGES: usize = 16;

/// A decoded link preview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkPreview {
    /// `URL`: the URL that served the content, after redirects.
    pub url: Option<String>,
    /// `originalURL`: the URL as sent, before redirects.
    pub original_url: Option<String>,
    /// `title`: the page's title.
    pub title: Option<String>,
    /// `summary`: the page's description.
    pub summary: Option<String>,
    /// `siteName`: the site's name.
    pub site_name: Option<String>,
    /// `itemType`: what kind of page Apple took it for (`article`, …).
    pub item_type: Option<String>,
    /// The URL of the site icon (`iconMetadata`, else the first of `icons`).
    pub icon_url: Option<String>,
    /// The URLs of the preview images (`imageMetadata`, then `images`), without repeats.
    pub image_urls: Vec<String>,
    /// `richLinkIsPlaceholder`: the preview was never filled in beyond the URL.
    pub is_placeholder: bool,
}

impl LinkPreview {
    /// The URL to link to: the final URL, else the original one.
    pub fn target(&self) -> Option<&str> {
        self.url.as_deref().or(self.original_url.as_deref())
    }
}

/// Decodes the `payloadData` of a link message into its preview.
///
/// A payload that is not a link preview (an app balloon, say) is an [`Error::Shape`].
pub fn decode_link_preview(bytes: &[u8]) -> Result<LinkPreview, Error> {
    let plist = read(bytes, Blob::PayloadData)?;
    let archive = KeyedArchive::open(&plist, Blob::PayloadData)?;
    let root = archive.root().as_dictionary().ok_or_else(|| Error::shape(Blob::PayloadData, "archived root is not an object"))?;
    let metadata = if archive.class_name(root) == Some("LPLinkMetadata") {
        root
    } else {
        ["richLinkMetadata", "metadata"]
            .iter()
            .find_map(|key| archive.get(root, key).and_then(Value::as_dictionary))
            .ok_or_else(|| Error::shape(Blob::PayloadData, "payload holds no link metadata"))?
    };
    let is_placeholder = archive.get(root, "richLinkIsPlaceholder").and_then(Value::as_boolean).unwrap_or(false);
    Ok(from_metadata(&archive, metadata, is_placeholder))
}

fn from_metadata<'a>(archive: &KeyedArchive<'a>, metadata: &'a Dictionary, is_placeholder: bool) -> LinkPreview {
    let metadata_url = |value: &'a Value| archive.object(value).and_then(|meta| archive.url_at(meta, "URL"));
    let icon_url = metadata.get("iconMetadata").and_then(metadata_url).or_else(|| {
        let icons = metadata.get("icons")?;
        archive.array(icons).into_iter().find_map(metadata_url)
    });
    let mut image_urls: Vec<String> = Vec::new();
    let images = metadata.get("images").map(|images| archive.array(images)).unwrap_or_default();
    for url in metadata.get("imageMetadata").into_iter().chain(images).filter_map(metadata_url) {
        if image_urls.len() < MAX_IMAGES && !image_urls.contains(&url) {
            image_urls.push(url);
        }
    }
    LinkPreview {
        url: archive.url_at(metadata, "URL"),
        original_url: archive.url_at(metadata, "originalURL"),
        title: archive.string_at(metadata, "title"),
        summary: archive.string_at(metadata, "summary"),
        site_name: archive.string_at(metadata, "siteName"),
        item_type: archive.string_at(metadata, "itemType"),
        icon_url,
        image_urls,
        is_placeholder,
    }
}
