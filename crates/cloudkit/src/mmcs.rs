//! Downloading attachments as Apple's MMCS serves them.
//!
//! A CloudKit asset is not one HTTP object: the `authorizeGet` answer bundled with the record
//! names *containers* (HTTP objects on content hosts, each a run of chunks, possibly of several
//! files) and, per file, which chunks in which order make the file and where its FORD chunk is
//! (the file's chunk keys, sealed with AES-SIV under the asset's FORD key). Every V2 chunk is
//! AES-256-CTR under its own key and its 21-byte id is an HMAC of its plaintext, so each chunk is
//! verified on its own as it arrives: a download is streamed chunk by chunk to the caller's sink,
//! never held whole, and a corrupt chunk fails the download at that chunk. A download broken off
//! resumes at a chunk boundary (`Range` on the containers).
//!
//! The format follows OpenBubbles/rustpush (`src/icloud/mmcs.rs`); the code is our own.

use std::collections::HashMap;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use bytes::Buf;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use prost::Message;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_RANGE, RANGE, USER_AGENT};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::pcs::hex;
use crate::proto::mmcs::{
    AuthorizeGetResponse, AuthorizedFiles, ChunkMeta, ChunkReference, ChunkReferences, ChunkWrapper, Container, FordChunk, FordChunkItem,
};

type HmacSha256 = Hmac<Sha256>;

/// What a download needs besides the authorization: from the decrypted asset.
#[derive(Clone)]
pub struct AssetKeys {
    /// The file checksum (`Asset.signature`, 21 bytes): picks the file in the authorization.
    pub signature: Vec<u8>,
    /// The FORD chunk's id (`Asset.referenceSignature`): `0x01 ‖ SHA-1(ford_key)`. Empty skips
    /// this check (the container's own id of the FORD chunk is still checked).
    pub reference_signature: Vec<u8>,
    /// The decrypted `Asset.protectionInfo.protectionInfo` (32 bytes).
    pub ford_key: Vec<u8>,
    /// The file's plaintext length (`Asset.size`).
    pub size: u64,
}

/// Limits and identity for downloads.
#[derive(Debug, Clone, Copy)]
pub struct DownloadLimits {
    /// The largest file (and so the largest chunk) a download accepts.
    pub max_file_bytes: u64,
    /// The largest FORD chunk read (its plaintext is ~40 bytes per chunk key), e.g. 1 MiB.
    pub max_ford_bytes: u32,
}

const FORD_SALT: &[u8] = b"PCSMMCS2";
/// FORD chunks start with 4 when the FORD key is 256-bit (rustpush: 3 otherwise, unseen here).
const FORD_VERSION: u8 = 0x04;
/// Version byte + IV + SIV tag.
const FORD_OVERHEAD: usize = 1 + 16 + 16;
/// First byte of a V2 chunk key (33 bytes in all).
const V2_KEY_TYPE: u8 = 0x04;
const CHUNK_ID_LEN: usize = 21;

fn fail(step: &'static str, detail: impl Into<String>) -> Error {
    Error::Mmcs { step, detail: detail.into() }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA256 (RFC 5869), extract then expand; an empty salt is the RFC's default (HMAC pads
/// an empty key to the same block of zeros as HashLen zero bytes). `out` is at most 8160 bytes.
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let prk = hmac_sha256(salt, &[ikm]);
    let mut block: Vec<u8> = Vec::new();
    for (i, piece) in out.chunks_mut(32).enumerate() {
        block = hmac_sha256(&prk, &[&block, info, &[i as u8 + 1]]).to_vec();
        piece.copy_from_slice(&block[..piece.len()]);
    }
}

/// The id a FORD chunk sealed under `ford_key` has: `0x01 ‖ SHA-1(ford_key)`.
fn ford_id(ford_key: &[u8]) -> Vec<u8> {
    [&[0x01][..], &Sha1::digest(ford_key)].concat()
}

/// Opens a FORD chunk (`version ‖ iv ‖ SIV tag ‖ ciphertext`) with the asset's FORD key: the
/// keys and plaintext lengths of the file's data chunks, in file order.
pub fn open_ford(chunk: &[u8], ford_key: &[u8]) -> Result<FordChunk> {
    if chunk.len() < FORD_OVERHEAD {
        return Err(fail("ford", format!("the FORD chunk is {} bytes, too short to be sealed ({FORD_OVERHEAD} at least)", chunk.len())));
    }
    let (version, iv, sealed) = (chunk[0], &chunk[1..17], &chunk[17..]);
    if version != FORD_VERSION {
        return Err(fail("ford", format!("FORD chunk version {version} is not supported (expected {FORD_VERSION})")));
    }
    let mut key = [0u8; 64];
    hkdf_sha256(FORD_SALT, ford_key, &[], &mut key);
    let mut siv = Aes256Siv::new_from_slice(&key).map_err(|_| fail("ford", "cannot key AES-SIV"))?;
    let plain = siv
        .decrypt([iv, &[version][..]], sealed)
        .map_err(|_| fail("ford", "the FORD chunk does not open with the asset's FORD key: wrong key or corrupted chunk"))?;
    FordChunk::decode(plain.as_slice()).map_err(|e| fail("ford", format!("the opened FORD chunk is not a FordChunk: {e}")))
}

/// Decrypts one V2 chunk and verifies it against its id. `key` is the chunk's 33-byte key from
/// FORD (`0x04` ‖ 32 bytes), `chunk_len` its plaintext length from FORD.
pub fn open_v2_chunk(id: &[u8], key: &[u8], chunk_len: u32, ciphertext: &[u8]) -> Result<Vec<u8>> {
    if id.len() != CHUNK_ID_LEN {
        return Err(fail("chunk", format!("chunk id {} is {} bytes, not {CHUNK_ID_LEN}", hex(id), id.len())));
    }
    if key.len() != 33 || key[0] != V2_KEY_TYPE {
        return Err(fail("chunk", format!("the key of chunk {} is not a V2 chunk key (0x04 and 32 bytes)", hex(id))));
    }
    let sealed_len = u32::try_from(ciphertext.len()).map_err(|_| fail("chunk", format!("chunk {} is over 4 GiB", hex(id))))?;
    let mut keys = [0u8; 96];
    hkdf_sha256(&[], &key[1..], b"signature-key", &mut keys);
    let (sig_key, iv_key, aes_key) = (&keys[..32], &keys[32..64], &keys[64..]);
    let mut iv_input = [0u8; 40];
    iv_input[..20].copy_from_slice(&id[1..]);
    iv_input[32..36].copy_from_slice(&sealed_len.to_le_bytes());
    let iv = hmac_sha256(iv_key, &[&iv_input]);
    let mut plain = ciphertext.to_vec();
    ctr::Ctr128BE::<aes::Aes256>::new_from_slices(aes_key, &iv[..16]).map_err(|_| fail("chunk", "cannot key AES-CTR"))?.apply_keystream(&mut plain);
    // rustpush: "padded with zeros sometimes"; the id covers exactly `chunk_len` bytes.
    plain.resize(chunk_len as usize, 0);
    let mut mac = <HmacSha256 as Mac>::new_from_slice(sig_key).expect("HMAC accepts any key length");
    mac.update(&Sha256::digest(&plain));
    mac.verify_truncated_left(&id[1..])
        .map_err(|_| fail("chunk", format!("chunk {} does not match its id: corrupted, or opened with the wrong key", hex(id))))?;
    Ok(plain)
}

/// How a data chunk opens.
#[derive(Clone, PartialEq)]
enum Cipher {
    V2 {
        key: Vec<u8>,
        len: u32,
    },
    /// No key anywhere: the bytes are the plaintext, and nothing verifies them.
    Plain,
}

/// Where a chunk is: (container index, chunk index).
type At = (u32, u32);

/// One data chunk of the file, in file order.
struct Piece<'a> {
    at: At,
    meta: &'a ChunkMeta,
    cipher: Cipher,
    plain_len: u64,
}

/// Why the authorization gives no files.
fn refusal(authorization: &AuthorizeGetResponse) -> Error {
    match authorization.error.as_ref().and_then(|e| e.f2.as_ref()) {
        Some(detail) => fail("authorization", format!("MMCS refused the download: {}", detail.reason)),
        None => fail("authorization", "MMCS refused the download without a reason"),
    }
}

fn wrapper<'a>(files: &'a AuthorizedFiles, at: &ChunkReference) -> Result<&'a ChunkWrapper> {
    files.containers.get(at.container_index as usize).and_then(|c| c.chunks.get(at.chunk_index as usize)).ok_or_else(|| {
        fail("authorization", format!("a reference to chunk {} of container {}, which the authorization does not list", at.chunk_index, at.container_index))
    })
}

/// The container's length as its chunk list says (the end of its last chunk).
fn declared_len(container: &Container) -> u64 {
    let ends = container.chunks.iter().map(|w| match (&w.meta, &w.encryption) {
        (Some(m), _) => m.offset.saturating_add(m.size),
        (None, Some(e)) => e.offset as u64 + e.size as u64,
        (None, None) => 0,
    });
    ends.max().unwrap_or(0)
}

/// The file's data chunks in file order, with their ciphers and plaintext lengths.
fn plan<'a>(files: &'a AuthorizedFiles, reference: &ChunkReferences, ford: Option<&[FordChunkItem]>, limits: &DownloadLimits) -> Result<Vec<Piece<'a>>> {
    let count = reference.chunk_references.len();
    if let Some(items) = ford {
        if items.len() != count {
            return Err(fail("ford", format!("the FORD chunk lists {} chunk keys for the file's {count} chunks", items.len())));
        }
    }
    let too_big = |what: String, len: u64| fail("size", format!("{what} is {len} bytes, over the {}-byte limit", limits.max_file_bytes));
    let mut seen: HashMap<At, Cipher> = HashMap::new();
    let mut pieces = Vec::with_capacity(count);
    for (k, at) in reference.chunk_references.iter().enumerate() {
        let meta = wrapper(files, at)?.meta.as_ref().ok_or_else(|| fail("authorization", format!("the file's chunk {k} is a FORD chunk")))?;
        if meta.size > limits.max_file_bytes {
            return Err(too_big(format!("chunk {}", hex(&meta.checksum)), meta.size));
        }
        let (cipher, plain_len) = match ford {
            Some(items) => {
                let item = &items[k];
                let len = <[u8; 4]>::try_from(item.chunk_len.as_slice())
                    .map_err(|_| fail("ford", format!("FORD key {k} has a {}-byte chunk length, not 4", item.chunk_len.len())))?;
                let len = u32::from_le_bytes(len);
                if item.key.len() != 33 || item.key[0] != V2_KEY_TYPE {
                    return Err(fail("ford", format!("FORD key {k} is not a V2 chunk key (0x04 and 32 bytes)")));
                }
                (Cipher::V2 { key: item.key.clone(), len }, u64::from(len))
            }
            None if meta.encryption_key.is_some() => {
                return Err(fail("chunk", format!("V1 chunks are not supported (chunk {})", hex(&meta.checksum))));
            }
            None => (Cipher::Plain, meta.size),
        };
        if plain_len > limits.max_file_bytes {
            return Err(too_big(format!("chunk {} opened", hex(&meta.checksum)), plain_len));
        }
        let at = (at.container_index, at.chunk_index);
        if seen.insert(at, cipher.clone()).is_some_and(|earlier| earlier != cipher) {
            return Err(fail("ford", format!("chunk {} appears twice in the file with different keys", hex(&meta.checksum))));
        }
        pieces.push(Piece { at, meta, cipher, plain_len });
    }
    Ok(pieces)
}

/// Writes opened chunks to the sink in file order, keeping the ones that arrive early.
struct Delivery<'s, W> {
    order: Vec<At>,
    next: usize,
    /// How often each chunk is still to be written.
    uses: HashMap<At, usize>,
    /// Opened chunks not written yet (arrived before their turn, or needed again later).
    early: HashMap<At, (Vec<u8>, usize)>,
    sink: &'s mut W,
    written: u64,
    limit: u64,
}

impl<W: AsyncWrite + Unpin> Delivery<'_, W> {
    async fn deliver(&mut self, at: At, plain: Vec<u8>) -> Result<()> {
        let Some(uses) = self.uses.remove(&at) else { return Ok(()) };
        self.early.insert(at, (plain, uses));
        while let Some(at) = self.order.get(self.next) {
            let Some((plain, uses)) = self.early.get_mut(at) else { break };
            self.written += plain.len() as u64;
            if self.written > self.limit {
                return Err(fail("size", format!("the file grew past the {}-byte limit", self.limit)));
            }
            self.sink.write_all(plain).await.map_err(|e| fail("write", format!("cannot write the file: {e}")))?;
            *uses -= 1;
            if *uses == 0 {
                self.early.remove(at);
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// A container's body being read: `pos` is the container offset of `pending`'s first byte.
struct Body {
    response: reqwest::Response,
    url: String,
    pos: u64,
    pending: bytes::Bytes,
}

impl Body {
    /// The next piece of the body; false at its end.
    async fn pull(&mut self) -> Result<bool> {
        match self.response.chunk().await {
            Ok(Some(bytes)) => {
                self.pending = bytes;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(Error::Transport { url: self.url.clone(), source: e.without_url() }),
        }
    }

    /// Skips to container offset `offset` and reads `size` bytes (only what it asks is kept).
    async fn read(&mut self, offset: u64, size: u64) -> Result<Vec<u8>> {
        if offset < self.pos {
            return Err(fail("container", format!("{}: the chunk at byte {offset} overlaps the one before it (ending at {})", self.url, self.pos)));
        }
        let end = offset.saturating_add(size);
        let ended = |url: &str, pos: u64| fail("container", format!("{url}: the body ended at byte {pos}, before the chunk at bytes {offset}..{end}"));
        let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
        while self.pos < end {
            if self.pending.is_empty() && !self.pull().await? {
                return Err(ended(&self.url, self.pos));
            }
            let n = (end - self.pos).min(self.pending.len() as u64) as usize;
            let skip = offset.saturating_sub(self.pos).min(n as u64) as usize;
            data.extend_from_slice(&self.pending[skip..n]);
            self.pending.advance(n);
            self.pos += n as u64;
        }
        Ok(data)
    }

    /// Checks that nothing follows: the body is as long as the container's chunks say.
    async fn expect_end(&mut self) -> Result<()> {
        loop {
            if !self.pending.is_empty() {
                return Err(fail("container", format!("{}: the body is longer than its chunks say ({} bytes)", self.url, self.pos)));
            }
            if !self.pull().await? {
                return Ok(());
            }
        }
    }
}

/// Fetches containers of one authorization.
struct Fetch<'a> {
    http: &'a reqwest::Client,
    user_agent: &'a str,
    files: &'a AuthorizedFiles,
}

impl Fetch<'_> {
    /// GETs container `index` from byte `start` (to `last`, inclusive, when given).
    async fn open(&self, index: u32, start: u64, last: Option<u64>) -> Result<Body> {
        let container = &self.files.containers[index as usize];
        let request = container.request.as_ref().ok_or_else(|| fail("authorization", format!("container {index} has no HTTP request")))?;
        if !request.method.is_empty() && !request.method.eq_ignore_ascii_case("GET") {
            return Err(fail("authorization", format!("container {index} is to be fetched with {}, not GET", request.method)));
        }
        let scheme = if request.scheme.is_empty() { "https" } else { &request.scheme };
        let port = if request.port == 0 { String::new() } else { format!(":{}", request.port) };
        let url = format!("{scheme}://{}{port}{}", request.domain, request.path);
        // Errors name the container without its query (which may carry a signature).
        let shown = url.split('?').next().unwrap_or_default().to_string();
        crate::client::check_url(&url, "an MMCS content host").map_err(|e| match e {
            Error::InsecureUrl { what, why, .. } => Error::InsecureUrl { what, url: shown.clone(), why },
            other => other,
        })?;
        let mut get = self.http.get(&url).header("x-apple-request-uuid", uuid::Uuid::new_v4().to_string().to_uppercase()).header(USER_AGENT, self.user_agent);
        for header in &request.headers {
            let set_here = ["host", "range", "user-agent", "x-apple-request-uuid"];
            if set_here.iter().any(|n| header.name.eq_ignore_ascii_case(n)) {
                continue;
            }
            let bad = |what| fail("authorization", format!("container {index} has an invalid header {what} {:?}", header.name));
            let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| bad("name"))?;
            let value = HeaderValue::from_str(&header.value).map_err(|_| bad("value for"))?;
            get = get.header(name, value);
        }
        let ranged = start > 0 || last.is_some();
        if ranged {
            get = get.header(RANGE, format!("bytes={start}-{}", last.map(|l| l.to_string()).unwrap_or_default()));
        }
        tracing::debug!(container = %shown, start, "fetching MMCS container");
        let response = get.send().await.map_err(|e| Error::Transport { url: shown.clone(), source: e.without_url() })?;
        let status = response.status();
        let pos = match status.as_u16() {
            200 => 0,
            206 if ranged => {
                let range = response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
                if !range.is_empty() && !range.starts_with(&format!("bytes {start}-")) {
                    return Err(fail("container", format!("{shown} answered range {range:?} for bytes {start}-")));
                }
                start
            }
            _ => return Err(fail("container", format!("{shown} answered HTTP {status}"))),
        };
        let len = declared_len(container);
        if let Some(sent) = response.content_length() {
            if pos.saturating_add(sent) > len {
                return Err(fail("container", format!("{shown}: the body is longer than its chunks say ({sent} bytes from byte {pos}, chunks end at {len})")));
            }
        }
        Ok(Body { response, url: shown, pos, pending: bytes::Bytes::new() })
    }

    /// Reads and opens the file's FORD chunk: its chunk keys in file order.
    async fn ford(&self, at: &ChunkReference, keys: &AssetKeys, limits: &DownloadLimits) -> Result<Vec<FordChunkItem>> {
        let meta = wrapper(self.files, at)?.encryption.as_ref().ok_or_else(|| fail("authorization", "the file's FORD reference is not a FORD chunk"))?;
        let id = ford_id(&keys.ford_key);
        let listed = meta.for_chunks.as_ref().map(|f| f.keys_container.as_slice()).unwrap_or_default();
        for (expected, whose) in [(listed, "the container's FORD chunk id"), (&keys.reference_signature[..], "the asset's reference signature")] {
            if !expected.is_empty() && expected != id.as_slice() {
                return Err(fail("ford", format!("the FORD key does not match {whose} {} (the key's id is {}): wrong key", hex(expected), hex(&id))));
            }
        }
        if meta.size > limits.max_ford_bytes {
            return Err(fail("ford", format!("the FORD chunk is {} bytes, over the {}-byte limit", meta.size, limits.max_ford_bytes)));
        }
        if (meta.size as usize) < FORD_OVERHEAD {
            return Err(fail("ford", format!("the FORD chunk is {} bytes, too short to be sealed", meta.size)));
        }
        let (offset, size) = (u64::from(meta.offset), u64::from(meta.size));
        let mut body = self.open(at.container_index, offset, Some(offset + size - 1)).await?;
        let sealed = body.read(offset, size).await?;
        let ford = open_ford(&sealed, &keys.ford_key)?;
        Ok(ford.item.ok_or_else(|| fail("ford", "the FORD chunk lists no chunks"))?.chunks)
    }

    /// Streams container `index`, opening `wanted` (sorted by offset) and delivering each.
    async fn data(&self, index: u32, wanted: &[&Piece<'_>], out: &mut Delivery<'_, impl AsyncWrite + Unpin>) -> Result<()> {
        let Some(first) = wanted.first() else { return Ok(()) };
        let mut body = self.open(index, first.meta.offset, None).await?;
        for piece in wanted {
            let sealed = body.read(piece.meta.offset, piece.meta.size).await?;
            let plain = match &piece.cipher {
                Cipher::V2 { key, len } => open_v2_chunk(&piece.meta.checksum, key, *len, &sealed)?,
                // Unencrypted chunk: passed through as served, nothing to verify it against.
                Cipher::Plain => sealed,
            };
            out.deliver(piece.at, plain).await?;
        }
        // Read on only when the rest is ours to check; otherwise drop the other files' bytes.
        if body.pos >= declared_len(&self.files.containers[index as usize]) {
            body.expect_end().await?;
        }
        Ok(())
    }
}

/// Downloads one file the authorization covers, decrypting and verifying each chunk, writing the
/// plaintext to `sink` in file order as chunks arrive; returns `(restart_at, written)`.
///
/// `skip_bytes`: plaintext bytes the caller already has (a prefix, from an interrupted download).
/// It is rounded down to a chunk boundary, `restart_at`, and writing starts there; containers
/// whose remaining chunks all lie past some offset are requested with `Range: bytes=<offset>-`
/// (a server answering 200 instead is read from the start and the prefix discarded).
///
/// The FORD chunk is fetched first (a ranged request of its own), so data chunks are opened as
/// they arrive; the only chunks kept in memory are those arriving before their turn in the file
/// (containers holding the file's chunks out of order) and chunks the file repeats.
pub async fn download(
    http: &reqwest::Client,
    user_agent: &str,
    authorization: &AuthorizeGetResponse,
    keys: &AssetKeys,
    limits: &DownloadLimits,
    skip_bytes: u64,
    sink: &mut (impl AsyncWrite + Unpin),
) -> Result<(u64, u64)> {
    let files = authorization.f1.as_ref().ok_or_else(|| refusal(authorization))?;
    let Some(reference) = files.references.iter().find(|r| r.file_checksum == keys.signature) else {
        // An empty file needs nothing from MMCS.
        if keys.size == 0 {
            return Ok((0, 0));
        }
        return Err(fail("authorization", format!("the authorization covers no file with checksum {}", hex(&keys.signature))));
    };
    if keys.size > limits.max_file_bytes {
        return Err(fail("size", format!("the file is {} bytes, over the {}-byte limit", keys.size, limits.max_file_bytes)));
    }
    let fetch = Fetch { http, user_agent, files };
    let ford = match &reference.ford_reference {
        Some(at) => Some(fetch.ford(at, keys, limits).await?),
        None => None,
    };
    let pieces = plan(files, reference, ford.as_deref(), limits)?;
    let total = pieces.iter().fold(0u64, |sum, p| sum.saturating_add(p.plain_len));
    if total != keys.size {
        return Err(fail("size", format!("the file's chunks add up to {total} bytes, the asset says {}", keys.size)));
    }

    let mut restart_at = 0;
    let mut first = 0;
    while first < pieces.len() && restart_at + pieces[first].plain_len <= skip_bytes {
        restart_at += pieces[first].plain_len;
        first += 1;
    }
    let remaining = &pieces[first..];

    // Containers in the order the file first needs them; each one's chunks once, by offset.
    let mut containers: Vec<(u32, Vec<&Piece>)> = Vec::new();
    let mut uses: HashMap<At, usize> = HashMap::new();
    for piece in remaining {
        let count = uses.entry(piece.at).or_insert(0);
        *count += 1;
        if *count > 1 {
            continue;
        }
        match containers.iter_mut().find(|(c, _)| *c == piece.at.0) {
            Some((_, wanted)) => wanted.push(piece),
            None => containers.push((piece.at.0, vec![piece])),
        }
    }
    let mut out =
        Delivery { order: remaining.iter().map(|p| p.at).collect(), next: 0, uses, early: HashMap::new(), sink, written: 0, limit: limits.max_file_bytes };
    for (index, wanted) in &mut containers {
        wanted.sort_by_key(|p| p.meta.offset);
        fetch.data(*index, wanted, &mut out).await?;
    }
    if out.next != out.order.len() {
        return Err(fail("container", format!("the containers gave {} of the file's {} remaining chunks", out.next, out.order.len())));
    }
    out.sink.flush().await.map_err(|e| fail("write", format!("cannot write the file: {e}")))?;
    if restart_at + out.written != keys.size {
        return Err(fail("size", format!("wrote {} bytes from {restart_at}, the asset is {} bytes", out.written, keys.size)));
    }
    Ok((restart_at, out.written))
}

#[cfg(test)]
#[path = "mmcs_tests.rs"]
mod tests;
