//! HTTP client for the CloudKit operations the bridge uses: `record/sync` (RetrieveChanges),
//! `zone/retrieve` (zone record keys), `record/retrieve` (re-fetch single records) and
//! `query/retrieve` (`MessagesSummary` counts).
//!
//! Each call is one POST of gzipped, length-delimited `RequestOperation`s; replies are matched to
//! requests by operation UUID (never by position) and each operation's result code is mapped to a
//! typed [`Error`], so the sync engine can tell "retry later" from "reset" from "zone missing".
//!
//! Where the account's secrets go: the CloudKit token, user id and device id are set on each
//! gateway request, never as a client's default headers, so the anisette server (often a public
//! third-party one) gets a client of its own that carries none of them. Neither the gateway
//! client nor the content-host one follows redirects (a redirect would carry the headers to
//! wherever it points), and every URL off this machine must be https ([`check_url`]).

use std::time::Duration;

use prost::Message;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

use crate::anisette::Anisette;
use crate::body::{read_capped, BodyRead};
use crate::error::{Error, Result};
use crate::framing::{decode_delimited_bytes_at_most, encode_body, plain_body_capped};
use crate::limits::{Limits, CONNECT_TIMEOUT, CONTENT_STALL_TIMEOUT, MAX_SMALL_BODY, REQUEST_TIMEOUT};
use crate::pcs::{hex, EcKey, KeyRing};
use crate::proto::{self, client_error, op_type, result_code, server_error, RequestOperation, ResponseOperation};
use crate::session::Session;
pub use crate::urls::check_url;

pub const CONTENT_TYPE_PROTOBUF: &str =
    "application/x-protobuf; desc=\"https://gateway.icloud.com:443/static/protobuf/CloudDB/CloudDBClient.desc\"; messageType=RequestOperation; delimited=true";

/// One page of `record/sync`: its changes (parsed records by default, see [`RawChangesPage`]),
/// the token to ask for the next page with, and the status.
#[derive(Debug, Clone, Default)]
pub struct ChangesPage<C = proto::RecordChange> {
    pub changes: Vec<C>,
    pub token: Option<Vec<u8>>,
    pub status: i32,
}

impl<C> ChangesPage<C> {
    /// The server has no more changes for this zone.
    pub fn done(&self) -> bool {
        self.status == proto::CHANGES_STATUS_DONE
    }
}

/// A page whose changes are still encoded, each an encoded [`proto::RecordChange`] sharing the
/// reply's buffer: enough to ask for the next page without parsing any record (see
/// [`proto::ResponseOperationRaw`]). Parse with [`RawChangesPage::change`].
pub type RawChangesPage = ChangesPage<bytes::Bytes>;

/// A fetched record and the download authorizations the reply bundled for its assets.
pub type RecordWithAssets = (proto::Record, Vec<proto::AssetGetResponse>);

/// The headers rustpush's CloudKit client hands MMCS (`mmcs::get_headers`), sent inside the
/// request header of operations that can return assets and with every container download.
pub fn mmcs_headers() -> Vec<(&'static str, String)> {
    vec![
        ("x-apple-mmcs-proto-version", "5.0".into()),
        ("x-apple-mmcs-plist-sha256", "fvj0Y/Ybu1pq0r4NxXw3eP51exujUkEAd7LllbkTdK8=".into()),
        ("x-apple-mmcs-plist-version", "v1.0".into()),
        ("x-mme-client-info", CLIENT_INFO.into()),
    ]
}

impl RawChangesPage {
    /// Parses change `i` (a malformed change is an [`Error::Frame`] of its own).
    pub fn change(&self, i: usize) -> Result<proto::RecordChange> {
        let raw = self.changes.get(i).ok_or_else(|| Error::Frame(format!("page has no change {i}")))?;
        proto::RecordChange::decode(raw.clone()).map_err(|e| Error::Frame(format!("change {i} of the page is not a valid record change: {e}")))
    }

    /// Parses every change; the first malformed one fails the page.
    pub fn decode(self) -> Result<ChangesPage> {
        let changes = (0..self.changes.len()).map(|i| self.change(i)).collect::<Result<_>>()?;
        Ok(ChangesPage { changes, token: self.token, status: self.status })
    }
}

#[derive(Clone)]
pub struct Client {
    /// The gateway's client: headers every CloudKit request has, none of them the account's.
    http: reqwest::Client,
    /// The account's headers (token, user id, device id, container), set on each gateway request.
    account_headers: HeaderMap,
    content_http: reqwest::Client,
    /// The anisette server's client: no header of the account, no CloudKit header.
    anisette_http: reqwest::Client,
    base_url: String,
    session: Session,
    service: EcKey,
    /// `x-apple-operation-group-id`: one per client (one sync run), as a CloudKit session.
    operation_group: String,
    anisette: std::sync::Arc<Anisette>,
    limits: Limits,
}

/// User agent and library version of the CloudKit daemon rustpush presents.
const USER_AGENT: &str = "CloudKit/1970 (19H384)";
const LIBRARY_NAME: &str = "com.apple.cloudkit.CloudKitDaemon";
const LIBRARY_VERSION: &str = "1970";
const CLIENT_INFO: &str = "<iMac13,1> <Mac OS X;10.15.7;19H384> <com.apple.cloudkit.CloudKitDaemon/1970 (com.apple.cloudd/1970)>";

/// 8 random bytes as 16 uppercase hex digits: the form of CloudKit's operation and group ids.
fn op_id() -> String {
    let bytes = uuid::Uuid::new_v4();
    bytes.as_bytes()[..8].iter().map(|b| format!("{b:02X}")).collect()
}

impl Client {
    /// `base_url` is the CloudKit gateway, e.g. `https://gateway.icloud.com` or the simulator's.
    pub fn new(base_url: &str, session: Session) -> Result<Self> {
        Self::with_limits(base_url, session, Limits::default())
    }

    /// [`Client::new`] with caps of its own on replies and decompressed fields.
    pub fn with_limits(base_url: &str, session: Session, limits: Limits) -> Result<Self> {
        let service = session.service_identity()?;
        check_url(base_url, "the CloudKit gateway")?;
        if let Some(anisette) = &session.anisette {
            check_url(&anisette.url, "the anisette server")?;
        }
        let header_map = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(*name, v);
                }
            }
            headers
        };
        let account_headers = header_map(&[
            ("x-cloudkit-containerid", &session.container),
            ("x-cloudkit-bundleid", &session.bundle_id),
            ("x-mme-device-id", &session.device_id),
            ("x-cloudkit-userid", &session.cloudkit_user_id),
            ("x-cloudkit-authtoken", &session.tokens.cloudkit),
        ]);
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put("accept", "application/x-protobuf");
        put("accept-encoding", "gzip");
        put("accept-language", "en-US,en;q=0.9");
        put("cache-control", "no-transform");
        put("user-agent", USER_AGENT);
        put("x-apple-c2-metric-triggers", "0");
        put("x-cloudkit-databasescope", "Private");
        put("x-cloudkit-environment", "Production");
        put("x-cloudkit-duetpreclearedmode", "None");
        put("x-mme-client-info", CLIENT_INFO);
        let transport = |e| Error::Transport { url: base_url.to_string(), source: e };
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(8)
            .build()
            .map_err(transport)?;
        let anisette = Anisette::new(session.anisette.as_ref().map(|a| a.url.clone()));
        let anisette_http = crate::anisette::http_client().map_err(transport)?;
        // Content hosts get none of the gateway's headers (they carry the CloudKit token), and a
        // stall rather than a total time ends a download: a large file may take minutes.
        let content_http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(CONTENT_STALL_TIMEOUT)
            .pool_max_idle_per_host(8)
            .build()
            .map_err(transport)?;
        Ok(Client {
            http,
            account_headers,
            content_http,
            anisette_http,
            base_url: base_url.trim_end_matches('/').to_string(),
            session,
            service,
            operation_group: op_id(),
            anisette: std::sync::Arc::new(anisette),
            limits,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The caps this client reads replies with; record decoding should use the same
    /// ([`crate::codec::decode_change_with`]).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The HTTP client for MMCS content hosts (see [`crate::mmcs::download`]).
    pub fn content_http(&self) -> &reqwest::Client {
        &self.content_http
    }

    /// The user agent content-host requests carry.
    pub fn user_agent(&self) -> &'static str {
        USER_AGENT
    }

    fn zone_id(&self, zone: &str) -> proto::RecordZoneIdentifier {
        proto::zone_id(zone, &self.session.cloudkit_user_id)
    }

    /// The request header of the first operation, with the fields rustpush fills for a
    /// non-fetch operation against the private database.
    fn header(&self, kind: i32) -> proto::RequestHeader {
        use sha1::Digest;
        let device = self.session.device_id.clone();
        let flow_key = match kind {
            op_type::ZONE_RETRIEVE => "CKDFetchRecordZonesOperation",
            op_type::RECORD_RETRIEVE => "CKDFetchRecordsOperation",
            op_type::QUERY_RETRIEVE => "CKDQueryOperation",
            _ => "CKDFetchRecordZoneChangesOperation",
        };
        proto::RequestHeader {
            application_container: Some(self.session.container.clone()),
            application_bundle: Some(self.session.bundle_id.clone()),
            device_identifier: Some(proto::Identifier { name: Some(device.clone()), r#type: Some(proto::identifier_type::DEVICE) }),
            device_software_version: Some("10.15.7".into()),
            device_hardware_version: Some("iMac13,1".into()),
            device_library_name: Some(LIBRARY_NAME.into()),
            device_library_version: Some(LIBRARY_VERSION.into()),
            device_flow_control_key: Some(format!("{flow_key}-Private")),
            device_flow_control_budget: Some(0),
            device_flow_control_budget_cap: Some(0),
            device_flow_control_regeneration: Some(0.0),
            locale: (kind == op_type::QUERY_RETRIEVE).then(|| proto::Locale { language_code: Some("en".into()), region_code: Some("US".into()) }),
            mmcs_protocol_version: Some("5.0".into()),
            application_container_environment: Some(1),
            device_assigned_name: Some("imessage-bridge".into()),
            device_hardware_id: Some(device.clone()),
            target_database: Some(1),
            isolation_level: Some(1),
            group: (kind != op_type::ZONE_RETRIEVE && kind != op_type::RECORD_RETRIEVE).then(|| "EphemeralGroup".into()),
            unk1: Some(0),
            // rustpush sends MMCS headers with every operation that can return assets.
            mmcs_headers: (kind == op_type::RECORD_RETRIEVE || kind == op_type::QUERY_RETRIEVE).then(|| proto::MmcsHeaders {
                headers: mmcs_headers().into_iter().map(|(name, value)| proto::NamedHeader { name: Some(name.into()), value: Some(value) }).collect(),
                unk1: Some(0),
            }),
            tags: Vec::new(),
            unk2: Some(hex(&sha1::Sha1::digest(device.as_bytes()))),
            device_serial: None,
            unk3: Some(0),
            unk4: Some(1),
        }
    }

    /// Sends operations of one type in one request and returns each operation's outcome in the
    /// order given, each reply read as `R` (all of `ResponseOperation`, or a partial view).
    async fn perform<R: Message + Default + proto::Reply>(&self, path: &str, kind: i32, mut ops: Vec<RequestOperation>) -> Result<Vec<Result<R>>> {
        let count = ops.len();
        let mut uuids = Vec::with_capacity(count);
        for (i, op) in ops.iter_mut().enumerate() {
            let uuid = uuid::Uuid::new_v4().to_string().to_uppercase();
            op.request = Some(proto::Operation { operation_uuid: Some(uuid.clone()), r#type: Some(kind), synchronous_mode: None, last: Some(i + 1 == count) });
            if i == 0 {
                op.header = Some(self.header(kind));
            }
            uuids.push(uuid);
        }
        let body = self.exchange(path, &ops).await?;
        // One reply per operation; a few more are tolerated, not millions of empty ones.
        let mut replies: Vec<R> = decode_delimited_bytes_at_most(body, count * 2 + 8)?;
        Ok(uuids
            .iter()
            .map(|uuid| {
                let pos = replies.iter().position(|r| r.operation_uuid() == Some(uuid.as_str())).ok_or_else(|| Error::MissingResponse(uuid.clone()))?;
                let reply = replies.swap_remove(pos);
                check_result(&reply)?;
                Ok(reply)
            })
            .collect())
    }

    /// One POST: the operations out, the reply body (without its gzip layer) back, with HTTP
    /// failures mapped to typed errors.
    async fn exchange(&self, path: &str, ops: &[RequestOperation]) -> Result<bytes::Bytes> {
        let url = format!("{}/ckdatabase/api/client/{}", self.base_url, path);
        let transport = |e| Error::Transport { url: url.clone(), source: e };
        let mut request = self
            .http
            .post(&url)
            .headers(self.account_headers.clone())
            .header(CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)
            .header(CONTENT_ENCODING, "gzip")
            .header("x-apple-operation-group-id", &self.operation_group)
            .header("x-apple-operation-id", op_id())
            .header("x-apple-request-uuid", uuid::Uuid::new_v4().to_string().to_uppercase());
        for (name, value) in self.anisette.headers(&self.anisette_http).await? {
            request = request.header(name, value);
        }
        let response = request.body(encode_body(ops)).send().await.map_err(transport)?;
        let status = response.status();
        if status.as_u16() == 429 {
            let retry_after =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            return Err(Error::Throttled { retry_after });
        }
        let gzipped = response.headers().get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        if !status.is_success() {
            let body = read_capped(response, MAX_SMALL_BODY).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(gateway_error(status.as_u16(), text));
        }
        let cap = self.limits.max_reply_bytes;
        let body = read_capped(response, cap).await.map_err(|e| match e {
            BodyRead::Transport(source) => Error::Transport { url: url.clone(), source },
            BodyRead::TooLarge => Error::TooLarge { what: format!("the reply from {url}"), limit: "max_reply_bytes", cap },
        })?;
        plain_body_capped(bytes::Bytes::from(body), gzipped, self.limits.max_inflated_reply_bytes)
            .map_err(|e| e.too_large_as(format!("the reply from {url}, inflated,"), "max_inflated_reply_bytes"))
    }

    async fn perform_one<R: Message + Default + proto::Reply>(&self, path: &str, kind: i32, op: RequestOperation, zone: &str) -> Result<R> {
        let mut results = self.perform(path, kind, vec![op]).await?;
        results.pop().unwrap_or_else(|| Err(Error::MissingResponse(String::new()))).map_err(|e| with_zone(e, zone))
    }

    /// Fetches one page of changes after `token` (None: from the beginning), every change parsed.
    pub async fn retrieve_changes(&self, zone: &str, token: Option<&[u8]>) -> Result<ChangesPage> {
        self.retrieve_changes_raw(zone, token).await?.decode()
    }

    /// Fetches one page of changes after `token`, parsing only what paging needs.
    pub async fn retrieve_changes_raw(&self, zone: &str, token: Option<&[u8]>) -> Result<RawChangesPage> {
        let op = RequestOperation {
            retrieve_changes_request: Some(proto::RetrieveChangesRequest {
                sync_continuation_token: token.map(<[u8]>::to_vec),
                zone_identifier: Some(self.zone_id(zone)),
                max_changes: None,
                requested_changes_types: Some(3),
                assets_to_download: Some(proto::AssetsToDownload { all_assets: Some(false), asset_fields: None }),
                newest_first: Some(false),
            }),
            ..Default::default()
        };
        let reply: proto::ResponseOperationRaw = self.perform_one("record/sync", op_type::RECORD_RETRIEVE_CHANGES, op, zone).await?;
        let resp = reply.retrieve_changes_response.ok_or(Error::MissingPayload("retrieveChangesResponse"))?;
        Ok(RawChangesPage { changes: resp.change, token: resp.sync_continuation_token, status: resp.status.unwrap_or(0) })
    }

    /// Fetches the zone and opens its keys: the session's service identity opens the zone's
    /// `protectionInfo` (the zone's EC keys), which open its `recordProtectionInfo` (the record
    /// keys).
    pub async fn zone_keys(&self, zone: &str) -> Result<KeyRing> {
        let op =
            RequestOperation { zone_retrieve_request: Some(proto::ZoneRetrieveRequest { zone_identifier: Some(self.zone_id(zone)) }), ..Default::default() };
        let reply: ResponseOperation = self.perform_one("zone/retrieve", op_type::ZONE_RETRIEVE, op, zone).await?;
        let resp = reply.zone_retrieve_response.ok_or(Error::MissingPayload("zoneRetrieveResponse"))?;
        let target = resp.zone_summary.into_iter().find_map(|s| s.target_zone).ok_or(Error::MissingPayload("zone"))?;
        let zone_protection = target.protection_info.and_then(|p| p.protection_info).ok_or(Error::MissingPayload("zone protectionInfo"))?;
        let record_protection = target.record_protection_info.and_then(|p| p.protection_info).ok_or(Error::MissingPayload("zone recordProtectionInfo"))?;
        KeyRing::open_zone(&self.service, &zone_protection, &record_protection)
    }

    /// Re-fetches records by name, one operation each in one request. Each entry is the record,
    /// None when the server says it no longer exists, or that operation's error.
    pub async fn retrieve_records(&self, zone: &str, names: &[String]) -> Result<Vec<Result<Option<proto::Record>>>> {
        let replies = self.retrieve(zone, names, false).await?;
        Ok(replies.into_iter().map(|r| r.map(|found| found.map(|(record, _)| record))).collect())
    }

    /// Fetches records by name together with their assets' download authorizations (the
    /// reply's bundled `AssetGetResponse`s, which each asset names by `bundledRequestId`).
    pub async fn retrieve_with_assets(&self, zone: &str, names: &[String]) -> Result<Vec<Result<Option<RecordWithAssets>>>> {
        self.retrieve(zone, names, true).await
    }

    async fn retrieve(&self, zone: &str, names: &[String], assets: bool) -> Result<Vec<Result<Option<RecordWithAssets>>>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let ops = names
            .iter()
            .map(|name| RequestOperation {
                record_retrieve_request: Some(proto::RecordRetrieveRequest {
                    record_identifier: Some(proto::RecordIdentifier {
                        value: Some(proto::Identifier { name: Some(name.clone()), r#type: Some(proto::identifier_type::RECORD) }),
                        zone_identifier: Some(self.zone_id(zone)),
                    }),
                    assets_to_download: Some(proto::AssetsToDownload { all_assets: Some(assets), asset_fields: None }),
                }),
                ..Default::default()
            })
            .collect();
        let results = self.perform::<ResponseOperation>("record/retrieve", op_type::RECORD_RETRIEVE, ops).await?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(reply) => {
                    Ok(reply.record_retrieve_response.and_then(|r| r.record).map(|record| (record, reply.bundled.map(|b| b.requests).unwrap_or_default())))
                }
                Err(Error::OperationFailed { server: Some(server_error::NOT_FOUND), .. }) => Ok(None),
                Err(e) => Err(with_zone(e, zone)),
            })
            .collect())
    }

    /// The server's `MessagesSummary` list for `record_type` in the zone; its first element is
    /// the zone's count of that type.
    pub async fn server_summary(&self, zone: &str, record_type: &str) -> Result<Option<Vec<i64>>> {
        let op = RequestOperation {
            query_retrieve_request: Some(proto::QueryRetrieveRequest {
                query: Some(proto::Query { types: vec![proto::RecordType { name: Some(crate::records::SUMMARY_RECORD_TYPE.into()) }] }),
                continuation_marker: None,
                limit: None,
                zone_identifier: Some(self.zone_id(zone)),
            }),
            ..Default::default()
        };
        let reply: ResponseOperation = self.perform_one("query/retrieve", op_type::QUERY_RETRIEVE, op, zone).await?;
        let resp = reply.query_retrieve_response.ok_or(Error::MissingPayload("queryRetrieveResponse"))?;
        Ok(resp.query_results.iter().filter_map(|r| r.record.as_ref()).find_map(|r| crate::codec::summary_list(r, record_type)))
    }
}

/// A non-2xx reply from the gateway: 401 is the auth token; a body of the form `CODE: detail`
/// (upper-case code) names what the gateway refused; anything else is kept as it came.
fn gateway_error(status: u16, body: String) -> Error {
    if status == 401 {
        return Error::Unauthorized { detail: body };
    }
    if let Some((code, detail)) = body.split_once(": ") {
        if !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return Error::Refused { status, code: code.to_string(), detail: detail.to_string() };
        }
    }
    Error::HttpStatus { status, body }
}

fn with_zone(e: Error, zone: &str) -> Error {
    match e {
        Error::ZoneNotFound { .. } => Error::ZoneNotFound { zone: zone.to_string() },
        other => other,
    }
}

/// Maps an operation's result to an error unless it succeeded.
pub fn check_result(reply: &impl proto::Reply) -> Result<()> {
    let result = reply.result().cloned().unwrap_or_default();
    let code = result.code.unwrap_or(0);
    if code == result_code::SUCCESS {
        return Ok(());
    }
    let err = result.error.unwrap_or_default();
    let client = err.client_error.and_then(|c| c.r#type);
    let server = err.server_error.and_then(|s| s.r#type);
    let retry_after = err.retry_after_seconds.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64));
    Err(match (client, server) {
        (Some(client_error::THROTTLED), _) | (_, Some(server_error::OVERLOADED | server_error::ZONE_BUSY)) => Error::Throttled { retry_after },
        (Some(client_error::ZONE_NOT_FOUND | client_error::USER_DELETED_DATA_FOR_ZONE), _) => Error::ZoneNotFound { zone: String::new() },
        (Some(client_error::FULL_RESET_NEEDED | client_error::RESET_NEEDED), _) => Error::FullResetNeeded,
        (Some(client_error::BAD_AUTH_TOKEN), _) => Error::Unauthorized { detail: err.error_description.unwrap_or_default() },
        _ => {
            Error::OperationFailed { code, client, client_name: client.map(client_error::name), server, description: err.error_description.unwrap_or_default() }
        }
    })
}

/// Builds a failed result (for tests of [`check_result`]).
pub fn failure(client: Option<i32>, server: Option<i32>, retry_after: Option<i32>, description: &str) -> proto::OperationResult {
    proto::OperationResult {
        code: Some(result_code::FAILURE),
        error: Some(proto::ResultError {
            client_error: client.map(|c| proto::ClientError { r#type: Some(c) }),
            server_error: server.map(|s| proto::ServerError { r#type: Some(s) }),
            retry_after_seconds: retry_after,
            error_description: Some(description.to_string()),
        }),
    }
}

/// The success result.
pub fn success() -> proto::OperationResult {
    proto::OperationResult { code: Some(result_code::SUCCESS), error: None }
}

#[allow(dead_code)]
fn _assert_message<M: Message>() {}
