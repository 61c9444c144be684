//! The part of MMCS's protobuf schema (package `mmcsp`, proto3) an asset download reads, as
//! prost messages. Field numbers follow Apple's schema as OpenBubbles/rustpush documents it
//! (`src/icloud/mmcs.proto`); the names are rustpush's where Apple's are unknown (`f1`).
//!
//! How a download uses them: a CloudKit reply's bundled [`super::AssetGetResponse`] carries an
//! [`AuthorizeGetResponse`]. Its containers are HTTP objects on content hosts, each a run of
//! chunks; its references say, per file (by file checksum), which chunks in which order make the
//! file, and where the file's FORD chunk (the encrypted list of its chunk keys) is.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct HttpHeader {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Where a container is fetched: `{scheme}://{domain}:{port}{path}` with `headers`.
#[derive(Clone, PartialEq, Message)]
pub struct HttpRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(uint32, tag = "2")]
    pub port: u32,
    #[prost(string, tag = "3")]
    pub method: String,
    #[prost(string, tag = "4")]
    pub path: String,
    #[prost(string, tag = "5")]
    pub protocol: String,
    #[prost(string, tag = "6")]
    pub protocol_ver: String,
    #[prost(string, tag = "7")]
    pub scheme: String,
    #[prost(message, repeated, tag = "8")]
    pub headers: Vec<HttpHeader>,
    #[prost(string, tag = "9")]
    pub datacenter: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct EncryptedChunks {
    #[prost(bytes = "vec", tag = "1")]
    pub container: Vec<u8>,
    /// The FORD chunk's id: `0x01 ‖ SHA-1(FORD key)`, the asset's `referenceSignature`.
    #[prost(bytes = "vec", tag = "2")]
    pub keys_container: Vec<u8>,
}

/// A FORD chunk's place in its container.
#[derive(Clone, PartialEq, Message)]
pub struct EncryptionMeta {
    #[prost(uint32, tag = "1")]
    pub size: u32,
    #[prost(uint32, tag = "2")]
    pub offset: u32,
    #[prost(message, optional, tag = "3")]
    pub for_chunks: Option<EncryptedChunks>,
}

/// A data chunk's place in its container. `checksum` is its 21-byte id; `encryption_key` is set
/// only for V1 chunks (AES-128-CFB, key in the clear), V2 chunks take their key from FORD.
#[derive(Clone, PartialEq, Message)]
pub struct ChunkMeta {
    #[prost(bytes = "vec", tag = "1")]
    pub checksum: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub encryption_key: Option<Vec<u8>>,
    #[prost(uint64, tag = "3")]
    pub size: u64,
    #[prost(uint64, tag = "4")]
    pub offset: u64,
}

/// One entry of a container: a data chunk (`meta`) or a FORD chunk (`encryption`).
#[derive(Clone, PartialEq, Message)]
pub struct ChunkWrapper {
    #[prost(message, optional, tag = "1")]
    pub meta: Option<ChunkMeta>,
    #[prost(message, optional, tag = "2")]
    pub encryption: Option<EncryptionMeta>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Container {
    #[prost(message, optional, tag = "1")]
    pub request: Option<HttpRequest>,
    #[prost(string, tag = "3")]
    pub cl_auth_p1: String,
    #[prost(string, tag = "4")]
    pub cl_auth_p2: String,
    #[prost(message, repeated, tag = "5")]
    pub chunks: Vec<ChunkWrapper>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ChunkReference {
    #[prost(uint32, tag = "1")]
    pub container_index: u32,
    #[prost(uint32, tag = "2")]
    pub chunk_index: u32,
}

/// One file of the authorization: its checksum (the asset's `signature`), its data chunks in
/// file order, and its FORD chunk.
#[derive(Clone, PartialEq, Message)]
pub struct ChunkReferences {
    #[prost(bytes = "vec", tag = "1")]
    pub file_checksum: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub chunk_references: Vec<ChunkReference>,
    #[prost(bytes = "vec", tag = "3")]
    pub ford_checksum: Vec<u8>,
    #[prost(uint32, tag = "5")]
    pub f5: u32,
    #[prost(message, optional, tag = "6")]
    pub ford_reference: Option<ChunkReference>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthorizedFiles {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
    #[prost(message, repeated, tag = "2")]
    pub references: Vec<ChunkReferences>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthorizeErrorDetail {
    #[prost(string, tag = "3")]
    pub reason: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AuthorizeError {
    #[prost(message, optional, tag = "2")]
    pub f2: Option<AuthorizeErrorDetail>,
}

/// The answer to an `authorizeGet`: the files (`f1`) or why not (`error`).
#[derive(Clone, PartialEq, Message)]
pub struct AuthorizeGetResponse {
    #[prost(message, optional, tag = "1")]
    pub f1: Option<AuthorizedFiles>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<AuthorizeError>,
}

/// One data chunk's key in FORD: `key` is 33 bytes (`0x04` ‖ 32-byte key), `chunk_len` the
/// plaintext length as 4 little-endian bytes.
#[derive(Clone, PartialEq, Message)]
pub struct FordChunkItem {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub chunk_len: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FordItem {
    #[prost(message, repeated, tag = "1")]
    pub chunks: Vec<FordChunkItem>,
    #[prost(bytes = "vec", tag = "2")]
    pub checksum: Vec<u8>,
}

/// The plaintext of a FORD chunk (sealed with AES-256-CMAC-SIV under a key derived from the
/// asset's FORD key).
#[derive(Clone, PartialEq, Message)]
pub struct FordChunk {
    #[prost(message, optional, tag = "1")]
    pub item: Option<FordItem>,
}
