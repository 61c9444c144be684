//! What the simulator checks before it answers, as CloudKit's gateway does: the URL path names
//! the operation type, Apple's clients' headers are all there with sensible values, the auth
//! token and user id are the account's, the anisette headers are ones the simulator's anisette
//! server issued, and every operation is of the path's type and the first one carries the
//! request header with this device's id. A client that gets any of it wrong gets an error reply
//! instead of data, so a client bug fails a test.
//!
//! Which headers and values: OpenBubbles/rustpush `src/icloud/cloudkit.rs`
//! (`CloudKitContainer::headers`, `perform_operations`, the `RequestOperation.Header` it fills)
//! and omnisette's anisette header set. The error bodies (`CODE: detail`, with the codes of
//! CloudKit's client-error enum) are the simulator's convention: rustpush parses no gateway
//! error body, so Apple's exact wording is not known here.

use axum::http::{HeaderMap, StatusCode};
use cloudkit::proto::{op_type, RequestOperation};

use crate::session::SimSession;

/// The operation type each database path accepts.
pub fn op_type_for_path(path: &str) -> Option<i32> {
    Some(match path {
        "zone/retrieve" => op_type::ZONE_RETRIEVE,
        "record/retrieve" => op_type::RECORD_RETRIEVE,
        "record/sync" => op_type::RECORD_RETRIEVE_CHANGES,
        "query/retrieve" => op_type::QUERY_RETRIEVE,
        _ => return None,
    })
}

/// A refused request: the HTTP status and the body `CODE: detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Refusal { status, code, detail: detail.into() }
    }
    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", detail)
    }
    pub fn body(&self) -> String {
        format!("{}: {}", self.code, self.detail)
    }
}

/// Headers every database request must carry, with the value each must have (None: any
/// non-empty value; checked further below where the form matters).
fn required_headers(session: &SimSession) -> [(&'static str, Option<&str>); 14] {
    [
        ("x-cloudkit-containerid", Some(session.container.as_str())),
        ("x-cloudkit-bundleid", Some(session.bundle_id.as_str())),
        ("x-cloudkit-databasescope", Some("Private")),
        ("x-cloudkit-environment", Some("Production")),
        ("x-cloudkit-duetpreclearedmode", Some("None")),
        ("x-apple-operation-id", None),
        ("x-apple-operation-group-id", None),
        ("x-apple-request-uuid", None),
        ("x-mme-client-info", None),
        ("x-mme-device-id", Some(session.device_id.as_str())),
        ("x-apple-i-md", None),
        ("x-apple-i-md-m", None),
        ("accept-encoding", None),
        ("cache-control", Some("no-transform")),
    ]
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// 16 uppercase hex digits, the form of rustpush's operation and group ids (8 random bytes).
fn is_op_id(v: &str) -> bool {
    v.len() == 16 && v.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// An uppercase UUID (8-4-4-4-12 hex digits).
fn is_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.len() == 5 && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
}

/// Checks the HTTP layer of a request: path, headers, token, user, anisette.
pub fn check_http(session: &SimSession, anisette_md: &str, path: &str, headers: &HeaderMap) -> Result<i32, Refusal> {
    let Some(kind) = op_type_for_path(path) else {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no database operation at {path}")));
    };
    let token = header(headers, "x-cloudkit-authtoken");
    if token != Some(session.tokens.cloudkit.as_str()) {
        let detail = if token.is_none() { "x-cloudkit-authtoken missing" } else { "x-cloudkit-authtoken is not valid" };
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "AUTHENTICATION_FAILED", detail));
    }
    match header(headers, "x-cloudkit-userid") {
        None => return Err(Refusal::bad_request("missing header x-cloudkit-userid")),
        Some(user) if user != session.cloudkit_user_id => {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "FORBIDDEN", format!("the auth token does not belong to user {user}")))
        }
        Some(_) => {}
    }
    let content_type = header(headers, "content-type").unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") || !content_type.contains("messageType=RequestOperation") {
        return Err(Refusal::bad_request(format!("content-type {content_type:?} is not a delimited RequestOperation stream")));
    }
    for (name, expected) in required_headers(session) {
        match (header(headers, name), expected) {
            (None, _) => return Err(Refusal::bad_request(format!("missing header {name}"))),
            (Some(v), Some(want)) if v != want => return Err(Refusal::bad_request(format!("header {name} is {v:?}, expected {want:?}"))),
            _ => {}
        }
    }
    for name in ["x-apple-operation-id", "x-apple-operation-group-id"] {
        let v = header(headers, name).unwrap_or("");
        if !is_op_id(v) {
            return Err(Refusal::bad_request(format!("header {name} is {v:?}, expected 16 uppercase hex digits")));
        }
    }
    let uuid = header(headers, "x-apple-request-uuid").unwrap_or("");
    if !is_uuid(uuid) {
        return Err(Refusal::bad_request(format!("header x-apple-request-uuid is {uuid:?}, expected an uppercase UUID")));
    }
    if header(headers, "x-apple-i-md") != Some(anisette_md) {
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "AUTHENTICATION_FAILED", "anisette X-Apple-I-MD was not issued by this server"));
    }
    Ok(kind)
}

/// Checks an operation's envelope: its type is the path's; the first operation carries the
/// request header naming this account's container and this device. `Err` is the description of
/// a BAD_SYNTAX result.
pub fn check_operation(session: &SimSession, kind: i32, index: usize, op: &RequestOperation) -> Result<(), String> {
    let request = op.request.as_ref().ok_or("operation without its Operation envelope")?;
    if request.r#type != Some(kind) {
        return Err(format!("operation type {:?} sent to the path of type {kind}", request.r#type));
    }
    if request.operation_uuid.as_deref().is_none_or(|u| !is_uuid(u)) {
        return Err("operationUUID missing or not an uppercase UUID".into());
    }
    if index == 0 {
        let header = op.header.as_ref().ok_or("the first operation has no request header")?;
        if header.application_container.as_deref() != Some(session.container.as_str())
            || header.application_bundle.as_deref() != Some(session.bundle_id.as_str())
        {
            return Err("request header names another container or bundle".into());
        }
        let device = header.device_identifier.as_ref().and_then(|d| d.name.as_deref());
        if device != Some(session.device_id.as_str()) {
            return Err(format!("request header device identifier {device:?} is not this session's device"));
        }
        if header.target_database != Some(1) || header.application_container_environment != Some(1) {
            return Err("request header must target the private database in production".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn session() -> SimSession {
        SimSession {
            dsid: "1".into(),
            cloudkit_user_id: "_user".into(),
            tokens: crate::session::SimTokens { cloudkit: "token".into() },
            service_identity: String::new(),
            handles: Vec::new(),
            device_id: "0A1B2C3D-0000-1111-2222-333344445555".into(),
            anisette: None,
            container: crate::session::CONTAINER.into(),
            bundle_id: crate::session::BUNDLE.into(),
        }
    }

    fn good_headers(s: &SimSession) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut put = |k: &'static str, v: &str| {
            h.insert(k, HeaderValue::from_str(v).unwrap());
        };
        for (name, value) in required_headers(s) {
            put(name, value.unwrap_or("x"));
        }
        put("x-apple-operation-id", "0123456789ABCDEF");
        put("x-apple-operation-group-id", "FEDCBA9876543210");
        put("x-apple-request-uuid", "0A1B2C3D-0000-1111-2222-333344445555");
        put("x-apple-i-md", "MD");
        put("x-cloudkit-authtoken", "token");
        put("x-cloudkit-userid", "_user");
        put("content-type", "application/x-protobuf; messageType=RequestOperation; delimited=true");
        h
    }

    #[test]
    fn a_complete_request_passes_and_names_its_operation_type() {
        let s = session();
        assert_eq!(check_http(&s, "MD", "record/sync", &good_headers(&s)), Ok(op_type::RECORD_RETRIEVE_CHANGES));
        assert_eq!(check_http(&s, "MD", "zone/retrieve", &good_headers(&s)), Ok(op_type::ZONE_RETRIEVE));
    }

    #[test]
    fn every_required_header_is_checked() {
        let s = session();
        for (name, _) in required_headers(&s) {
            let mut h = good_headers(&s);
            h.remove(name);
            let refusal = check_http(&s, "MD", "record/sync", &h).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (StatusCode::BAD_REQUEST, "BAD_REQUEST"), "{name}");
            assert!(refusal.detail.contains(name), "{name}: {}", refusal.detail);
        }
        for (name, _) in required_headers(&s).into_iter().filter(|(_, v)| v.is_some()) {
            let mut h = good_headers(&s);
            h.insert(name, HeaderValue::from_static("something else"));
            assert!(check_http(&s, "MD", "record/sync", &h).unwrap_err().detail.contains(name));
        }
    }

    #[test]
    fn path_token_user_anisette_and_id_forms_are_checked() {
        let s = session();
        let refusal = |h: &HeaderMap, path: &str| check_http(&s, "MD", path, h).unwrap_err();
        assert_eq!(refusal(&good_headers(&s), "record/nope").status, StatusCode::NOT_FOUND);
        let mut h = good_headers(&s);
        h.insert("x-cloudkit-authtoken", HeaderValue::from_static("stolen"));
        assert_eq!(refusal(&h, "record/sync").status, StatusCode::UNAUTHORIZED);
        let mut h = good_headers(&s);
        h.insert("x-cloudkit-userid", HeaderValue::from_static("_someone_else"));
        assert_eq!(refusal(&h, "record/sync").code, "FORBIDDEN");
        let mut h = good_headers(&s);
        h.insert("x-apple-i-md", HeaderValue::from_static("forged"));
        assert_eq!(refusal(&h, "record/sync").code, "AUTHENTICATION_FAILED");
        let mut h = good_headers(&s);
        h.insert("x-apple-operation-id", HeaderValue::from_static("abc"));
        assert!(refusal(&h, "record/sync").detail.contains("x-apple-operation-id"));
        let mut h = good_headers(&s);
        h.insert("x-apple-request-uuid", HeaderValue::from_static("not-a-uuid"));
        assert!(refusal(&h, "record/sync").detail.contains("x-apple-request-uuid"));
        let mut h = good_headers(&s);
        h.insert("content-type", HeaderValue::from_static("application/json"));
        assert!(refusal(&h, "record/sync").detail.contains("content-type"));
    }

    #[test]
    fn operations_must_match_the_path_and_carry_the_device_header() {
        let s = session();
        let header = cloudkit::proto::RequestHeader {
            application_container: Some(s.container.clone()),
            application_bundle: Some(s.bundle_id.clone()),
            device_identifier: Some(cloudkit::proto::Identifier { name: Some(s.device_id.clone()), r#type: Some(2) }),
            application_container_environment: Some(1),
            target_database: Some(1),
            ..Default::default()
        };
        let op = |kind: i32, header: Option<cloudkit::proto::RequestHeader>| RequestOperation {
            request: Some(cloudkit::proto::Operation {
                operation_uuid: Some("0A1B2C3D-0000-1111-2222-333344445555".into()),
                r#type: Some(kind),
                ..Default::default()
            }),
            header,
            ..Default::default()
        };
        let sync = op_type::RECORD_RETRIEVE_CHANGES;
        assert_eq!(check_operation(&s, sync, 0, &op(sync, Some(header.clone()))), Ok(()));
        assert_eq!(check_operation(&s, sync, 1, &op(sync, None)), Ok(()), "only the first operation carries the header");
        assert!(check_operation(&s, sync, 0, &op(op_type::ZONE_RETRIEVE, Some(header.clone()))).unwrap_err().contains("operation type"));
        assert!(check_operation(&s, sync, 0, &op(sync, None)).unwrap_err().contains("no request header"));
        let mut other_device = header.clone();
        other_device.device_identifier = Some(cloudkit::proto::Identifier { name: Some("X".into()), r#type: Some(2) });
        assert!(check_operation(&s, sync, 0, &op(sync, Some(other_device))).unwrap_err().contains("device"));
    }
}
