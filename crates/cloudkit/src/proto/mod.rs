//! The subset of CloudKit's `CloudDBClient` protobuf schema (package `cloudkitp`, proto2) that the
//! bridge speaks, as prost messages. Field numbers and names follow Apple's schema as documented by
//! OpenBubbles/rustpush `cloudkit-proto/src/cloudkit.proto`; fields we never read are omitted
//! (protobuf skips unknown fields, so real server replies still decode). Enums are kept as `i32`
//! with named constants, so an enum value we do not know is data, not a decode failure.

#![allow(clippy::derive_partial_eq_without_eq)]

use prost::Message;

pub mod mmcs;
mod raw;
pub use raw::{RetrieveChangesResponseRaw, MAX_CHANGES_PER_PAGE};

/// `Operation.Type` values for the operations we send.
pub mod op_type {
    pub const ZONE_RETRIEVE: i32 = 201;
    pub const RECORD_RETRIEVE: i32 = 211;
    pub const RECORD_RETRIEVE_CHANGES: i32 = 213;
    pub const QUERY_RETRIEVE: i32 = 220;
}

/// `ResponseOperation.Result.Code`.
pub mod result_code {
    pub const SUCCESS: i32 = 1;
    pub const PARTIAL: i32 = 2;
    pub const FAILURE: i32 = 3;
    pub const INDETERMINATE: i32 = 4;
}

/// `ResponseOperation.Result.Error.Client.Code` values the bridge acts on.
pub mod client_error {
    pub const BAD_SYNTAX: i32 = 4;
    pub const FORBIDDEN: i32 = 5;
    pub const THROTTLED: i32 = 6;
    pub const NOT_SUPPORTED: i32 = 8;
    pub const BAD_AUTH_TOKEN: i32 = 11;
    pub const RESET_NEEDED: i32 = 17;
    pub const FULL_RESET_NEEDED: i32 = 40;
    pub const ZONE_NOT_FOUND: i32 = 48;
    pub const USER_DELETED_DATA_FOR_ZONE: i32 = 59;

    /// The schema's name of a client-error code, for messages.
    pub fn name(code: i32) -> &'static str {
        match code {
            1 => "UNKNOWN",
            2 => "EXPIRED_APP_CONFIG",
            3 => "EXPIRED_GLOBAL_CONFIG",
            BAD_SYNTAX => "BAD_SYNTAX",
            FORBIDDEN => "FORBIDDEN",
            THROTTLED => "THROTTLED",
            7 => "REFUSED",
            NOT_SUPPORTED => "NOT_SUPPORTED",
            9 => "EXISTS",
            BAD_AUTH_TOKEN => "BAD_AUTH_TOKEN",
            12 => "NEEDS_AUTHENTICATION",
            RESET_NEEDED => "RESET_NEEDED",
            FULL_RESET_NEEDED => "FULL_RESET_NEEDED",
            ZONE_NOT_FOUND => "ZONE_NOT_FOUND",
            49 => "INVALID_BUNDLE_ID",
            52 => "RECORD_PROTECTION_INFO_TAG_MISMATCH",
            53 => "ZONE_PROTECTION_INFO_TAG_MISMATCH",
            USER_DELETED_DATA_FOR_ZONE => "USER_DELETED_DATA_FOR_ZONE",
            _ => "unnamed client error",
        }
    }
}

/// `ResponseOperation.Result.Error.Server.Code` values the bridge acts on.
pub mod server_error {
    pub const OVERLOADED: i32 = 2;
    pub const NOT_FOUND: i32 = 3;
    pub const ZONE_BUSY: i32 = 7;
}

/// `Record.Field.Value.Type`.
pub mod value_type {
    pub const BYTES: i32 = 1;
    pub const DATE: i32 = 2;
    pub const STRING: i32 = 3;
    pub const ASSET: i32 = 6;
    pub const INT64: i32 = 7;
    pub const INT64_LIST: i32 = 17;
    pub const ENCRYPTED_BYTES: i32 = 20;
    pub const ENCRYPTED_BYTES_LIST: i32 = 21;
}

/// `Identifier.Type`.
pub mod identifier_type {
    pub const RECORD: i32 = 1;
    pub const DEVICE: i32 = 2;
    pub const RECORD_ZONE: i32 = 6;
    pub const USER: i32 = 7;
}

#[derive(Clone, PartialEq, Message)]
pub struct Identifier {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub r#type: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordZoneIdentifier {
    #[prost(message, optional, tag = "1")]
    pub value: Option<Identifier>,
    #[prost(message, optional, tag = "2")]
    pub owner_identifier: Option<Identifier>,
    #[prost(int32, optional, tag = "3")]
    pub environment: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordIdentifier {
    #[prost(message, optional, tag = "1")]
    pub value: Option<Identifier>,
    #[prost(message, optional, tag = "2")]
    pub zone_identifier: Option<RecordZoneIdentifier>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtectionInfo {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub protection_info: Option<Vec<u8>>,
    #[prost(string, optional, tag = "2")]
    pub protection_info_tag: Option<String>,
}

/// Seconds since 2001-01-01 as a double.
#[derive(Clone, PartialEq, Message)]
pub struct Date {
    #[prost(double, optional, tag = "1")]
    pub time: Option<f64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DateStatistics {
    #[prost(message, optional, tag = "1")]
    pub creation: Option<Date>,
    #[prost(message, optional, tag = "2")]
    pub modification: Option<Date>,
}

/// An asset field's value: the file itself lives in MMCS, addressed by its `signature` (the
/// file checksum) and `referenceSignature` (the checksum of its chunk-key list, "FORD"). Its
/// `protectionInfo.protectionInfo` is the FORD key, sealed by the record key (field name
/// `{field}-{b64 signature}-{b64 referenceSignature}`).
#[derive(Clone, PartialEq, Message)]
pub struct Asset {
    #[prost(string, optional, tag = "1")]
    pub owner: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signature: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "4")]
    pub size: Option<u64>,
    #[prost(string, optional, tag = "5")]
    pub download_token: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub record_id: Option<RecordIdentifier>,
    #[prost(uint64, optional, tag = "14")]
    pub download_url_expiration: Option<u64>,
    #[prost(message, optional, tag = "15")]
    pub protection_info: Option<ProtectionInfo>,
    #[prost(bytes = "vec", optional, tag = "17")]
    pub reference_signature: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "18")]
    pub download_token_expiration: Option<u64>,
    /// Names the [`AssetGetResponse`] of the reply's `bundled` requests that authorizes this
    /// asset's download (set only when the request asked for assets).
    #[prost(string, optional, tag = "21")]
    pub bundled_request_id: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordType {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldIdentifier {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
}

/// Plaintext of an encrypted int64/date/string field value.
#[derive(Clone, PartialEq, Message)]
pub struct EncryptedValue {
    #[prost(int64, optional, tag = "3")]
    pub signed_value: Option<i64>,
    #[prost(message, optional, tag = "5")]
    pub date_value: Option<Date>,
    #[prost(string, optional, tag = "6")]
    pub string_value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldValue {
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub bytes_value: Option<Vec<u8>>,
    #[prost(int64, optional, tag = "4")]
    pub signed_value: Option<i64>,
    #[prost(double, optional, tag = "5")]
    pub double_value: Option<f64>,
    #[prost(message, optional, tag = "6")]
    pub date_value: Option<Date>,
    #[prost(string, optional, tag = "7")]
    pub string_value: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub asset_value: Option<Asset>,
    #[prost(message, repeated, tag = "11")]
    pub list_values: Vec<FieldValue>,
    #[prost(bool, optional, tag = "13")]
    pub is_encrypted: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordField {
    #[prost(message, optional, tag = "1")]
    pub identifier: Option<FieldIdentifier>,
    #[prost(message, optional, tag = "2")]
    pub value: Option<FieldValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(string, optional, tag = "1")]
    pub etag: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub record_identifier: Option<RecordIdentifier>,
    #[prost(message, optional, tag = "3")]
    pub r#type: Option<RecordType>,
    #[prost(message, optional, tag = "5")]
    pub time_statistics: Option<DateStatistics>,
    #[prost(message, repeated, tag = "7")]
    pub record_field: Vec<RecordField>,
    #[prost(message, optional, tag = "13")]
    pub protection_info: Option<ProtectionInfo>,
    /// Truncated (4-byte) key id of the zone default record key that encrypts this record.
    #[prost(bytes = "vec", optional, tag = "24")]
    pub pcs_key: Option<Vec<u8>>,
}

/// `RequestOperation.Header`: sent with the first operation of a request. The fields are those
/// rustpush fills (`src/icloud/cloudkit.rs`, around l. 1945–1998).
#[derive(Clone, PartialEq, Message)]
pub struct RequestHeader {
    #[prost(string, optional, tag = "2")]
    pub application_container: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub application_bundle: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub device_identifier: Option<Identifier>,
    #[prost(string, optional, tag = "8")]
    pub device_software_version: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub device_hardware_version: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub device_library_name: Option<String>,
    #[prost(string, optional, tag = "11")]
    pub device_library_version: Option<String>,
    #[prost(string, optional, tag = "12")]
    pub device_flow_control_key: Option<String>,
    #[prost(uint64, optional, tag = "13")]
    pub device_flow_control_budget: Option<u64>,
    #[prost(uint64, optional, tag = "14")]
    pub device_flow_control_budget_cap: Option<u64>,
    #[prost(float, optional, tag = "15")]
    pub device_flow_control_regeneration: Option<f32>,
    #[prost(message, optional, tag = "17")]
    pub locale: Option<Locale>,
    #[prost(string, optional, tag = "18")]
    pub mmcs_protocol_version: Option<String>,
    #[prost(int32, optional, tag = "19")]
    pub application_container_environment: Option<i32>,
    #[prost(string, optional, tag = "21")]
    pub device_assigned_name: Option<String>,
    #[prost(string, optional, tag = "22")]
    pub device_hardware_id: Option<String>,
    #[prost(int32, optional, tag = "23")]
    pub target_database: Option<i32>,
    #[prost(int32, optional, tag = "25")]
    pub isolation_level: Option<i32>,
    #[prost(string, optional, tag = "26")]
    pub group: Option<String>,
    #[prost(int32, optional, tag = "29")]
    pub unk1: Option<i32>,
    #[prost(message, optional, tag = "30")]
    pub mmcs_headers: Option<MmcsHeaders>,
    #[prost(string, repeated, tag = "31")]
    pub tags: Vec<String>,
    /// Hex SHA-1 of the device identifier.
    #[prost(string, optional, tag = "32")]
    pub unk2: Option<String>,
    #[prost(string, optional, tag = "33")]
    pub device_serial: Option<String>,
    #[prost(int32, optional, tag = "34")]
    pub unk3: Option<i32>,
    #[prost(int32, optional, tag = "35")]
    pub unk4: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Locale {
    #[prost(string, optional, tag = "1")]
    pub language_code: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub region_code: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, optional, tag = "1")]
    pub operation_uuid: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub r#type: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub synchronous_mode: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub last: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ZoneRetrieveRequest {
    #[prost(message, optional, tag = "1")]
    pub zone_identifier: Option<RecordZoneIdentifier>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Zone {
    #[prost(message, optional, tag = "1")]
    pub zone_identifier: Option<RecordZoneIdentifier>,
    #[prost(string, optional, tag = "2")]
    pub etag: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub protection_info: Option<ProtectionInfo>,
    #[prost(message, optional, tag = "6")]
    pub record_protection_info: Option<ProtectionInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ZoneSummary {
    #[prost(message, optional, tag = "1")]
    pub target_zone: Option<Zone>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ZoneRetrieveResponse {
    #[prost(message, repeated, tag = "1")]
    pub zone_summary: Vec<ZoneSummary>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordRetrieveRequest {
    #[prost(message, optional, tag = "1")]
    pub record_identifier: Option<RecordIdentifier>,
    #[prost(message, optional, tag = "6")]
    pub assets_to_download: Option<AssetsToDownload>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordRetrieveResponse {
    #[prost(message, optional, tag = "1")]
    pub record: Option<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AssetsToDownload {
    #[prost(bool, optional, tag = "1")]
    pub all_assets: Option<bool>,
    #[prost(message, optional, tag = "2")]
    pub asset_fields: Option<RequestedFields>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RequestedFields {
    #[prost(message, repeated, tag = "1")]
    pub fields: Vec<FieldIdentifier>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedHeader {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// The MMCS `authorizeGet` the server made on the client's behalf for some of a reply's assets:
/// `body` is an encoded [`mmcs::AuthorizeGetResponse`].
#[derive(Clone, PartialEq, Message)]
pub struct AssetGetResponse {
    #[prost(string, optional, tag = "1")]
    pub asset_id: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub body: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<NamedHeader>,
}

#[derive(Clone, PartialEq, Message)]
pub struct BundledRequests {
    #[prost(message, repeated, tag = "1")]
    pub requests: Vec<AssetGetResponse>,
}

/// `RequestOperation.Header.MMCSHeaders`: the headers the server passes on to MMCS when it
/// authorizes downloads for an operation that fetches assets.
#[derive(Clone, PartialEq, Message)]
pub struct MmcsHeaders {
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<NamedHeader>,
    #[prost(int32, optional, tag = "2")]
    pub unk1: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RetrieveChangesRequest {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub sync_continuation_token: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    pub zone_identifier: Option<RecordZoneIdentifier>,
    /// Sent empty: the server picks the page size.
    #[prost(uint32, optional, tag = "4")]
    pub max_changes: Option<u32>,
    #[prost(int32, optional, tag = "5")]
    pub requested_changes_types: Option<i32>,
    #[prost(message, optional, tag = "6")]
    pub assets_to_download: Option<AssetsToDownload>,
    #[prost(bool, optional, tag = "7")]
    pub newest_first: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecordChange {
    #[prost(message, optional, tag = "1")]
    pub identifier: Option<RecordIdentifier>,
    #[prost(string, optional, tag = "2")]
    pub etag: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub record_type: Option<RecordType>,
    /// Absent: the record was deleted.
    #[prost(message, optional, tag = "5")]
    pub record: Option<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RetrieveChangesResponse {
    #[prost(message, repeated, tag = "1")]
    pub change: Vec<RecordChange>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub sync_continuation_token: Option<Vec<u8>>,
    /// 3 = no more pages.
    #[prost(int32, optional, tag = "4")]
    pub status: Option<i32>,
}

/// `RetrieveChangesResponse.status` value meaning the zone has no more changes.
pub const CHANGES_STATUS_DONE: i32 = 3;

#[derive(Clone, PartialEq, Message)]
pub struct Query {
    #[prost(message, repeated, tag = "1")]
    pub types: Vec<RecordType>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryRetrieveRequest {
    #[prost(message, optional, tag = "1")]
    pub query: Option<Query>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub continuation_marker: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "3")]
    pub limit: Option<u32>,
    #[prost(message, optional, tag = "4")]
    pub zone_identifier: Option<RecordZoneIdentifier>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    #[prost(message, optional, tag = "1")]
    pub identifier: Option<RecordIdentifier>,
    #[prost(message, optional, tag = "4")]
    pub record: Option<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryRetrieveResponse {
    #[prost(message, repeated, tag = "1")]
    pub query_results: Vec<QueryResult>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub continuation_marker: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RequestOperation {
    #[prost(message, optional, tag = "1")]
    pub header: Option<RequestHeader>,
    #[prost(message, optional, tag = "2")]
    pub request: Option<Operation>,
    #[prost(message, optional, tag = "201")]
    pub zone_retrieve_request: Option<ZoneRetrieveRequest>,
    #[prost(message, optional, tag = "211")]
    pub record_retrieve_request: Option<RecordRetrieveRequest>,
    #[prost(message, optional, tag = "213")]
    pub retrieve_changes_request: Option<RetrieveChangesRequest>,
    #[prost(message, optional, tag = "220")]
    pub query_retrieve_request: Option<QueryRetrieveRequest>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ClientError {
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ServerError {
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResultError {
    #[prost(message, optional, tag = "1")]
    pub client_error: Option<ClientError>,
    #[prost(message, optional, tag = "2")]
    pub server_error: Option<ServerError>,
    #[prost(int32, optional, tag = "3")]
    pub retry_after_seconds: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub error_description: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperationResult {
    #[prost(int32, optional, tag = "1")]
    pub code: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<ResultError>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResponseOperation {
    #[prost(message, optional, tag = "2")]
    pub response: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub result: Option<OperationResult>,
    #[prost(message, optional, tag = "4")]
    pub bundled: Option<BundledRequests>,
    #[prost(message, optional, tag = "201")]
    pub zone_retrieve_response: Option<ZoneRetrieveResponse>,
    #[prost(message, optional, tag = "211")]
    pub record_retrieve_response: Option<RecordRetrieveResponse>,
    #[prost(message, optional, tag = "213")]
    pub retrieve_changes_response: Option<RetrieveChangesResponse>,
    #[prost(message, optional, tag = "220")]
    pub query_retrieve_response: Option<QueryRetrieveResponse>,
}

/// [`ResponseOperation`] as the sync's fetch loop reads a `record/sync` reply: the operation it
/// answers, its result, and the page with every change left as its encoded bytes.
///
/// Why: the next page can be requested as soon as the token is known, and parsing two hundred
/// records first would put that work on the sync's critical path. A message field and a bytes
/// field share protobuf's length-delimited wire type, so this reads the same bytes as
/// [`ResponseOperation`]; the changes are parsed later, one by one ([`RecordChange`]), so one
/// malformed change fails alone instead of taking its page with it.
#[derive(Clone, PartialEq, Message)]
pub struct ResponseOperationRaw {
    #[prost(message, optional, tag = "2")]
    pub response: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub result: Option<OperationResult>,
    #[prost(message, optional, tag = "213")]
    pub retrieve_changes_response: Option<RetrieveChangesResponseRaw>,
}

/// What every reply type shares: the operation it answers and how it ended.
pub trait Reply {
    fn operation_uuid(&self) -> Option<&str>;
    fn result(&self) -> Option<&OperationResult>;
}

macro_rules! impl_reply {
    ($($t:ty),*) => {$(
        impl Reply for $t {
            fn operation_uuid(&self) -> Option<&str> {
                self.response.as_ref().and_then(|o| o.operation_uuid.as_deref())
            }
            fn result(&self) -> Option<&OperationResult> {
                self.result.as_ref()
            }
        }
    )*};
}
impl_reply!(ResponseOperation, ResponseOperationRaw);

/// iMessage `msgProto` body (gzipped inside the encrypted field).
#[derive(Clone, PartialEq, Message)]
pub struct MessageProto {
    #[prost(uint32, optional, tag = "1")]
    pub unk1: Option<u32>,
    /// rustpush names it `groupTitle`; Messages writes a message's subject line here.
    #[prost(string, optional, tag = "2")]
    pub subject: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub text: Option<String>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub attributed_body: Option<Vec<u8>>,
    #[prost(string, optional, tag = "5")]
    pub balloon_bundle_id: Option<String>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub payload_data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub message_summary_info: Option<Vec<u8>>,
    #[prost(string, optional, tag = "8")]
    pub effect: Option<String>,
    /// Apple nanoseconds since 2001-01-01.
    #[prost(uint64, optional, tag = "9")]
    pub date_read: Option<u64>,
    #[prost(uint64, optional, tag = "13")]
    pub date_delivered: Option<u64>,
    #[prost(uint32, optional, tag = "15")]
    pub associated_message_type: Option<u32>,
    #[prost(string, optional, tag = "16")]
    pub associated_message_guid: Option<String>,
    #[prost(uint32, optional, tag = "17")]
    pub associated_message_range_location: Option<u32>,
    #[prost(uint32, optional, tag = "18")]
    pub associated_message_range_length: Option<u32>,
}

/// `msgProto2` of a `MessageEncryptedV3` record (gzipped inside its own encrypted field): the
/// message a reply answers. rustpush saw it empty; Messages fills it for inline replies with the
/// thread originator's GUID (read here as a bare GUID or Apple's `p:N/GUID`).
#[derive(Clone, PartialEq, Message)]
pub struct MessageProto2 {
    #[prost(string, optional, tag = "2")]
    pub reply: Option<String>,
}

/// `msgProto4` of a `MessageEncryptedV3` record (gzipped inside its own encrypted field).
#[derive(Clone, PartialEq, Message)]
pub struct MessageProto4 {
    /// The emoji of an emoji tapback (`associatedMessageType` 2006).
    #[prost(string, optional, tag = "2")]
    pub associated_message_emoji: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub service: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub group_id: Option<String>,
}

/// Builds a private-database zone identifier.
pub fn zone_id(zone: &str, owner: &str) -> RecordZoneIdentifier {
    RecordZoneIdentifier {
        value: Some(Identifier { name: Some(zone.to_string()), r#type: Some(identifier_type::RECORD_ZONE) }),
        owner_identifier: Some(Identifier { name: Some(owner.to_string()), r#type: Some(identifier_type::USER) }),
        environment: Some(1),
    }
}

impl RecordIdentifier {
    /// The record name, if present.
    pub fn record_name(&self) -> Option<&str> {
        self.value.as_ref()?.name.as_deref()
    }
}

impl RecordZoneIdentifier {
    pub fn zone_name(&self) -> Option<&str> {
        self.value.as_ref()?.name.as_deref()
    }
}

impl Record {
    pub fn record_name(&self) -> Option<&str> {
        self.record_identifier.as_ref()?.record_name()
    }
    pub fn type_name(&self) -> Option<&str> {
        self.r#type.as_ref()?.name.as_deref()
    }
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.record_field.iter().find(|f| f.identifier.as_ref().and_then(|i| i.name.as_deref()) == Some(name)).and_then(|f| f.value.as_ref())
    }
}
