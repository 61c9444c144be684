//! WebDAV XML replies (RFC 4918 multistatus, RFC 6578 sync tokens, RFC 6352 address data) read
//! into a small element tree, by namespace and local name, never by prefix: servers pick their
//! own prefixes (`d:`, `D:`, none, `CR:`), and iCloud and Radicale differ.
//!
//! The tree is built iteratively with a depth cap, so a hostile nesting cannot overflow the stack;
//! the body itself was already capped when it was read.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// The WebDAV namespace.
pub(crate) const DAV: &str = "DAV:";
/// The CardDAV namespace.
pub(crate) const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";

/// How deep a reply may nest (a multistatus needs about 6 levels).
const MAX_DEPTH: usize = 64;

/// One element: its namespace (empty when unbound), local name, text and child elements.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub ns: String,
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The child elements named `ns`:`name`.
    pub(crate) fn all<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// The text of the first `ns`:`name` child, trimmed.
    pub(crate) fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.trim())
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = NsReader::from_str(text);
    // Stack of open elements; the bottom one collects the root.
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let at = reader.buffer_position();
        let (resolved, event) = reader.read_resolved_event().map_err(|e| format!("after byte {at}: {e}"))?;
        let ns = match resolved {
            ResolveResult::Bound(ns) => ns.into_inner().to_owned(),
            _ => String::new(),
        };
        match event {
            Event::Start(start) | Event::Empty(start) if stack.len() > MAX_DEPTH => {
                return Err(format!("elements nested deeper than {MAX_DEPTH} (at <{}>)", start.local_name().into_inner()));
            }
            Event::Start(start) => {
                let name = start.local_name().into_inner().to_owned();
                stack.push(Element { ns, name, ..Element::default() });
            }
            Event::Empty(start) => {
                let name = start.local_name().into_inner().to_owned();
                let element = Element { ns, name, ..Element::default() };
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(element);
                }
            }
            Event::End(_) => {
                // The reader checks that end tags match their start tags.
                let Some(done) = stack.pop() else { return Err("an end tag without a start".into()) };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Err("an end tag without a start".into()),
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
            Event::CData(t) => push_text(&mut stack, &t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(|e| e.to_string())?.map(String::from)
                } else {
                    quick_xml::escape::resolve_predefined_entity(&r.xml10_content()).map(String::from)
                };
                let Some(resolved) = resolved else { return Err(format!("unknown entity &{};", r.xml10_content())) };
                push_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err("the document ends inside an element".into());
    }
    stack.pop().and_then(|top| top.children.into_iter().next()).ok_or_else(|| "an empty document".to_string())
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(open) = stack.last_mut() {
        open.text.push_str(text);
    }
}

/// The code of a `DAV:status` line (`HTTP/1.1 404 Not Found` → 404).
pub(crate) fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One `DAV:response` of a multistatus.
pub(crate) struct Response<'a> {
    pub href: &'a str,
    /// The response-level status (a removed member in a sync report), if any.
    pub status: Option<u16>,
    element: &'a Element,
}

impl<'a> Response<'a> {
    /// A property from a propstat whose status is 2xx.
    pub(crate) fn prop(&self, ns: &str, name: &str) -> Option<&'a Element> {
        self.element
            .all(DAV, "propstat")
            .filter(|ps| ps.child_text(DAV, "status").and_then(status_code).is_some_and(|s| (200..300).contains(&s)))
            .filter_map(|ps| ps.child(DAV, "prop"))
            .find_map(|p| p.child(ns, name))
    }

    /// The first href inside a property (`current-user-principal`, `addressbook-home-set`).
    pub(crate) fn prop_href(&self, ns: &str, name: &str) -> Option<&'a str> {
        self.prop(ns, name)?.child_text(DAV, "href").filter(|h| !h.is_empty())
    }
}

/// A parsed `DAV:multistatus`.
pub(crate) struct Multistatus {
    root: Element,
}

impl Multistatus {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let root = parse(body)?;
        if !root.is(DAV, "multistatus") {
            return Err(format!("the root element is {{{}}}{}, not DAV:multistatus", root.ns, root.name));
        }
        Ok(Multistatus { root })
    }

    pub(crate) fn responses(&self) -> impl Iterator<Item = Response<'_>> {
        self.root.all(DAV, "response").filter_map(|r| {
            let href = r.child_text(DAV, "href")?;
            Some(Response { href, status: r.child_text(DAV, "status").and_then(status_code), element: r })
        })
    }

    /// The new sync token of a `sync-collection` report.
    pub(crate) fn sync_token(&self) -> Option<&str> {
        self.root.child_text(DAV, "sync-token").filter(|t| !t.is_empty())
    }
}

/// Whether an error body (`DAV:error`) names the precondition `ns`:`name`.
pub(crate) fn error_names(body: &[u8], ns: &str, name: &str) -> bool {
    parse(body).is_ok_and(|root| root.is(DAV, "error") && root.child(ns, name).is_some())
}

/// Escapes text for an XML element body (hrefs in a multiget, a sync token).
pub(crate) fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_decide_not_prefixes() {
        let body = br#"<?xml version="1.0"?>
<x:multistatus xmlns:x="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav" xmlns:o="urn:other">
 <x:response><x:href>/a%20b/&amp;1.vcf</x:href>
  <x:propstat><x:prop><x:getetag>"e&#49;"</x:getetag><o:getetag>wrong</o:getetag>
   <c:address-data><![CDATA[BEGIN:VCARD]]>&#13;
END:VCARD</c:address-data></x:prop><x:status>HTTP/1.1 200 OK</x:status></x:propstat>
  <x:propstat><x:prop><x:displayname>hidden</x:displayname></x:prop><x:status>HTTP/1.1 404 Not Found</x:status></x:propstat>
 </x:response>
 <response xmlns="DAV:"><href>/gone.vcf</href><status>HTTP/1.1 404 Not Found</status></response>
 <x:sync-token>tok-2</x:sync-token>
</x:multistatus>"#;
        let ms = Multistatus::parse(body).unwrap();
        let responses: Vec<_> = ms.responses().collect();
        assert_eq!(responses.len(), 2);
        assert_eq!(responses[0].href, "/a%20b/&1.vcf");
        assert_eq!(responses[0].prop(DAV, "getetag").unwrap().text, "\"e1\"");
        assert_eq!(responses[0].prop(CARDDAV, "address-data").unwrap().text, "BEGIN:VCARD\r\nEND:VCARD");
        assert!(responses[0].prop(DAV, "displayname").is_none(), "a 404 propstat is no value");
        assert_eq!(responses[1].status, Some(404));
        assert_eq!(ms.sync_token(), Some("tok-2"));
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(Multistatus::parse(b"<error xmlns='DAV:'/>").is_err());
        assert!(Multistatus::parse(b"<multistatus xmlns='DAV:'><response>").is_err());
        assert!(Multistatus::parse(b"<a><b></a>").is_err());
        assert!(Multistatus::parse(b"\xff\xfe").is_err());
        assert!(Multistatus::parse(b"<multistatus xmlns='DAV:'>&bogus;</multistatus>").is_err());
        let deep = "<a>".repeat(10_000);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
        assert!(error_names(b"<D:error xmlns:D='DAV:'><D:valid-sync-token/></D:error>", DAV, "valid-sync-token"));
        assert!(!error_names(b"<D:error xmlns:D='urn:x'><D:valid-sync-token/></D:error>", DAV, "valid-sync-token"));
    }
}
