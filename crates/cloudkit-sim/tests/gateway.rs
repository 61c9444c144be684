//! The simulator answers as CloudKit's gateway does, and the client names what it was told: a
//! session that does not match the account, missing anisette, a request on the wrong path, a
//! missing header. Real HTTP on 127.0.0.1, the real `cloudkit::Client`.

use std::sync::Arc;

use cloudkit::proto::{self, RequestOperation, ResponseOperation};
use cloudkit::records::MESSAGE_ZONE;
use cloudkit::{Client, Error, Session};
use cloudkit_sim::{AccountSpec, Faults, Sim};
use prost::Message;

struct Served {
    sim: Arc<Sim>,
    url: String,
    dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve() -> Served {
    let spec = AccountSpec { seed: 3, chats: 2, messages: 40, big_chat: 0, later: 0 };
    let sim = Arc::new(Sim::new(spec, Faults::default()));
    let (addr, task) = cloudkit_sim::spawn(sim.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Served { sim, url: format!("http://{addr}"), dir: tempfile::tempdir().unwrap(), _task: task }
}

impl Served {
    /// The session the simulator writes, read back by the client, then changed by `edit`.
    fn session(&self, edit: impl FnOnce(&mut Session)) -> Session {
        let path = self.dir.path().join("session.json");
        self.sim.session_at(&self.url).save(&path).unwrap();
        let mut session = Session::load(&path).unwrap();
        edit(&mut session);
        session
    }

    async fn sync_page(&self, edit: impl FnOnce(&mut Session)) -> Result<cloudkit::ChangesPage, Error> {
        Client::new(&self.url, self.session(edit)).unwrap().retrieve_changes(MESSAGE_ZONE, None).await
    }
}

#[tokio::test]
async fn the_written_session_is_accepted_and_opens_the_zone() {
    let s = serve().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        s.sim.session_at(&s.url).save(&s.dir.path().join("private.json")).unwrap();
        let mode = std::fs::metadata(s.dir.path().join("private.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the session holds tokens and keys");
    }
    let page = s.sync_page(|_| {}).await.unwrap();
    assert!(!page.changes.is_empty());
    let client = Client::new(&s.url, s.session(|_| {})).unwrap();
    let ring = client.zone_keys(MESSAGE_ZONE).await.unwrap();
    assert!(ring.len() >= 2, "current and rolled record keys, got {}", ring.len());
    assert_eq!(ring.zone_ec_keys().len(), 1);
}

#[tokio::test]
async fn a_session_of_another_user_is_forbidden_by_name() {
    let s = serve().await;
    match s.sync_page(|session| session.cloudkit_user_id = "_0000someoneelse".into()).await {
        Err(Error::Refused { status: 403, code, .. }) => assert_eq!(code, "FORBIDDEN"),
        other => panic!("expected FORBIDDEN, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let s = serve().await;
    assert!(matches!(s.sync_page(|session| session.tokens.cloudkit = "expired".into()).await, Err(Error::Unauthorized { .. })));
}

#[tokio::test]
async fn missing_anisette_is_a_named_missing_header() {
    let s = serve().await;
    match s.sync_page(|session| session.anisette = None).await {
        Err(Error::Refused { status: 400, code, detail }) => {
            assert_eq!(code, "BAD_REQUEST");
            assert!(detail.contains("x-apple-i-md"), "{detail}");
        }
        other => panic!("expected a refused request, got {other:?}"),
    }
}

#[tokio::test]
async fn another_device_id_is_refused() {
    let s = serve().await;
    match s.sync_page(|session| session.device_id = "00000000-0000-0000-0000-000000000000".into()).await {
        Err(Error::Refused { detail, .. }) => assert!(detail.contains("x-mme-device-id"), "{detail}"),
        other => panic!("expected a refused request, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_anisette_server_is_an_anisette_error() {
    let s = serve().await;
    let result = s.sync_page(|session| session.anisette.as_mut().unwrap().url = format!("{}/_sim/no-such-anisette", s.url)).await;
    assert!(matches!(result, Err(Error::Anisette { .. })), "{result:?}");
}

/// A hand-made request: the headers a client sends (from the simulator's own session), the body
/// framed by hand, so that one piece at a time can be wrong.
async fn raw_request(s: &Served, path: &str, op_type: i32, omit: Option<&str>) -> (u16, Vec<u8>) {
    let session = s.sim.session_at(&s.url);
    let anisette: serde_json::Value = reqwest::get(format!("{}/_sim/anisette", s.url)).await.unwrap().json().await.unwrap();
    let mut headers = vec![
        ("content-type", "application/x-protobuf; messageType=RequestOperation; delimited=true".to_string()),
        ("x-cloudkit-containerid", session.container.clone()),
        ("x-cloudkit-bundleid", session.bundle_id.clone()),
        ("x-cloudkit-databasescope", "Private".into()),
        ("x-cloudkit-environment", "Production".into()),
        ("x-cloudkit-duetpreclearedmode", "None".into()),
        ("x-cloudkit-userid", session.cloudkit_user_id.clone()),
        ("x-cloudkit-authtoken", session.tokens.cloudkit.clone()),
        ("x-apple-operation-id", "0123456789ABCDEF".into()),
        ("x-apple-operation-group-id", "0123456789ABCDEF".into()),
        ("x-apple-request-uuid", "0A1B2C3D-0000-1111-2222-333344445555".into()),
        ("x-mme-client-info", "<test>".into()),
        ("x-mme-device-id", session.device_id.clone()),
        ("x-apple-i-md", anisette["X-Apple-I-MD"].as_str().unwrap().to_string()),
        ("x-apple-i-md-m", anisette["X-Apple-I-MD-M"].as_str().unwrap().to_string()),
        ("accept-encoding", "gzip".into()),
        ("cache-control", "no-transform".into()),
    ];
    headers.retain(|(name, _)| Some(*name) != omit);
    let op = RequestOperation {
        request: Some(proto::Operation {
            operation_uuid: Some("0A1B2C3D-0000-1111-2222-333344445556".into()),
            r#type: Some(op_type),
            last: Some(true),
            ..Default::default()
        }),
        header: Some(proto::RequestHeader {
            application_container: Some(session.container.clone()),
            application_bundle: Some(session.bundle_id.clone()),
            device_identifier: Some(proto::Identifier { name: Some(session.device_id.clone()), r#type: Some(2) }),
            application_container_environment: Some(1),
            target_database: Some(1),
            ..Default::default()
        }),
        zone_retrieve_request: Some(proto::ZoneRetrieveRequest { zone_identifier: Some(proto::zone_id(MESSAGE_ZONE, &session.cloudkit_user_id)) }),
        ..Default::default()
    };
    let body = op.encode_length_delimited_to_vec();
    let mut request = reqwest::Client::new().post(format!("{}/ckdatabase/api/client/{path}", s.url)).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_operation_on_the_wrong_path_is_bad_syntax_by_name() {
    let s = serve().await;
    let (status, body) = raw_request(&s, "zone/retrieve", proto::op_type::ZONE_RETRIEVE, None).await;
    assert_eq!(status, 200, "the well-formed request is answered");
    let ok: Vec<ResponseOperation> = cloudkit::framing::decode_body(&body, true).unwrap();
    assert!(cloudkit::client::check_result(&ok[0]).is_ok());

    let (status, body) = raw_request(&s, "record/sync", proto::op_type::ZONE_RETRIEVE, None).await;
    assert_eq!(status, 200, "the envelope is fine; the operation fails");
    let replies: Vec<ResponseOperation> = cloudkit::framing::decode_body(&body, true).unwrap();
    match cloudkit::client::check_result(&replies[0]) {
        Err(e @ Error::OperationFailed { client_name: Some("BAD_SYNTAX"), .. }) => assert!(e.to_string().contains("BAD_SYNTAX")),
        other => panic!("expected BAD_SYNTAX, got {other:?}"),
    }
}

#[tokio::test]
async fn each_missing_header_and_an_unknown_path_are_refused() {
    let s = serve().await;
    for header in ["x-apple-operation-id", "x-apple-request-uuid", "x-mme-client-info", "x-cloudkit-databasescope", "cache-control"] {
        let (status, body) = raw_request(&s, "zone/retrieve", proto::op_type::ZONE_RETRIEVE, Some(header)).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{header}: {body}");
        assert_eq!(body, format!("BAD_REQUEST: missing header {header}"));
    }
    let (status, body) = raw_request(&s, "record/frobnicate", proto::op_type::ZONE_RETRIEVE, None).await;
    assert_eq!((status, String::from_utf8_lossy(&body).starts_with("NOT_FOUND")), (404, true));
}
