//! Tests of [`super`]: files sealed here with the raw primitives, served by a tiny HTTP/1.1
//! responder on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::proto::mmcs::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn raw_hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().to_vec()
}

/// RFC 5869 written out again, with the "no salt" case as 32 explicit zero bytes.
fn raw_hkdf(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let prk = raw_hmac(salt.unwrap_or(&[0u8; 32]), &[ikm]);
    let (mut okm, mut t) = (Vec::new(), Vec::new());
    for i in 1..=len.div_ceil(32) as u8 {
        t = raw_hmac(&prk, &[&t, info, &[i]]);
        okm.extend_from_slice(&t);
    }
    okm.truncate(len);
    okm
}

/// A V2 chunk as an uploader makes it: (id, ciphertext).
fn seal_v2(key: &[u8], plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let keys = raw_hkdf(None, &key[1..], b"signature-key", 96);
    let mut id = vec![0x84];
    id.extend_from_slice(&raw_hmac(&keys[..32], &[&Sha256::digest(plain)])[..20]);
    let mut m = [0u8; 40];
    m[..20].copy_from_slice(&id[1..]);
    m[32..36].copy_from_slice(&(plain.len() as u32).to_le_bytes());
    let iv = raw_hmac(&keys[32..64], &[&m]);
    let mut sealed = plain.to_vec();
    ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&keys[64..], &iv[..16]).unwrap().apply_keystream(&mut sealed);
    (id, sealed)
}

fn seal_ford(ford_key: &[u8], items: Vec<FordChunkItem>) -> Vec<u8> {
    let plain = FordChunk { item: Some(FordItem { chunks: items, checksum: vec![7; 32] }) }.encode_to_vec();
    let key = raw_hkdf(Some(b"PCSMMCS2"), ford_key, b"", 64);
    let iv = [0x5a; 16];
    let sealed = Aes256Siv::new_from_slice(&key).unwrap().encrypt([&iv[..], &[4]], &plain).unwrap();
    [&[4][..], &iv, &sealed].concat()
}

#[test]
fn known_answers() {
    // RFC 5869 test cases 1 and 3 for the module's HKDF.
    let mut okm = [0u8; 42];
    hkdf_sha256(&unhex("000102030405060708090a0b0c"), &[0x0b; 22], &unhex("f0f1f2f3f4f5f6f7f8f9"), &mut okm);
    assert_eq!(okm.to_vec(), unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
    hkdf_sha256(&[], &[0x0b; 22], &[], &mut okm);
    assert_eq!(okm.to_vec(), unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"));

    // A V2 chunk computed separately (Python `cryptography`: HKDF, HMAC, AES-CTR) for this key.
    let key: Vec<u8> = [&[4u8][..], &(0..32).collect::<Vec<u8>>()].concat();
    let plain = b"The quick brown fox jumps over the lazy dog";
    let id = unhex("847be1d024df23fde26232e1b2925d5411de227bbe");
    let sealed = unhex("7dfce78f608c5d36c802a994cd451e85519eb61e2d0379aa5909030fc9544e02bc59efafae945e9c96fcc1");
    assert_eq!(seal_v2(&key, plain), (id.clone(), sealed.clone()));
    assert_eq!(open_v2_chunk(&id, &key, plain.len() as u32, &sealed).unwrap(), plain);
    // A longer chunk_len zero-extends; the id then no longer matches.
    assert!(open_v2_chunk(&id, &key, 44, &sealed).unwrap_err().to_string().contains("does not match its id"));

    // A FORD chunk sealed by Python's AES-SIV (IV a5…, version 4) listing that key.
    let ford_key: Vec<u8> = (0x20..0x40).collect();
    let ford = unhex("04a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a514e5eb31819e8a0bf8940da8e1a975d5e1e87b1b7363d13773d5ebe6826c313670d3da4867b5467f8aff4390fd06f72e92028e417d08597024739b3563dad2");
    let item = open_ford(&ford, &ford_key).unwrap().item.unwrap();
    assert_eq!(item.chunks, vec![FordChunkItem { key, chunk_len: 43u32.to_le_bytes().to_vec() }]);
    assert_eq!(ford_id(&ford_key), unhex("019502711a5b6468a0400d095480515d9610f327ac"));
}

// ---- test files and their authorizations

struct Chunk {
    plain: Vec<u8>,
    key: Vec<u8>,
    id: Vec<u8>,
    sealed: Vec<u8>,
}

struct TestFile {
    /// The distinct chunks.
    chunks: Vec<Chunk>,
    /// File order as indices into `chunks`.
    order: Vec<usize>,
    ford: Vec<u8>,
    keys: AssetKeys,
}

impl TestFile {
    fn new(sizes: &[usize], order: &[usize]) -> TestFile {
        let chunks: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                let plain: Vec<u8> = (0..n).map(|i| ((i * 131 + k * 17) >> 3) as u8 ^ (i as u8)).collect();
                let key = [&[4u8][..], &Sha256::digest([k as u8, 99])].concat();
                let (id, sealed) = seal_v2(&key, &plain);
                Chunk { plain, key, id, sealed }
            })
            .collect();
        let ford_key = vec![0x42; 32];
        let items =
            order.iter().map(|&k| FordChunkItem { key: chunks[k].key.clone(), chunk_len: (chunks[k].plain.len() as u32).to_le_bytes().to_vec() }).collect();
        let ford = seal_ford(&ford_key, items);
        let size = order.iter().map(|&k| chunks[k].plain.len() as u64).sum();
        let keys = AssetKeys { signature: [&[1u8][..], &[0xf1; 20]].concat(), reference_signature: ford_id(&ford_key), ford_key, size };
        TestFile { chunks, order: order.to_vec(), ford, keys }
    }

    fn plain(&self) -> Vec<u8> {
        self.order.iter().flat_map(|&k| self.chunks[k].plain.clone()).collect()
    }
}

/// What a container holds, in order.
#[derive(Clone, Copy)]
enum Entry {
    Data(usize),
    Ford,
    /// Another file's chunk of this many bytes.
    Foreign(usize),
}

/// The authorization for `file` stored as `layout`, and each container's path and body.
fn authorize(port: u16, file: &TestFile, layout: &[&[Entry]]) -> (AuthorizeGetResponse, Vec<(String, Vec<u8>)>) {
    let mut containers = Vec::new();
    let mut bodies = Vec::new();
    let mut found: HashMap<Option<usize>, ChunkReference> = HashMap::new();
    for (c, entries) in layout.iter().enumerate() {
        let (mut body, mut chunks) = (Vec::new(), Vec::new());
        for (i, entry) in entries.iter().enumerate() {
            let offset = body.len() as u64;
            let at = ChunkReference { container_index: c as u32, chunk_index: i as u32 };
            let wrapper = match *entry {
                Entry::Data(k) => {
                    found.entry(Some(k)).or_insert(at);
                    body.extend_from_slice(&file.chunks[k].sealed);
                    let size = file.chunks[k].sealed.len() as u64;
                    ChunkWrapper { meta: Some(ChunkMeta { checksum: file.chunks[k].id.clone(), encryption_key: None, size, offset }), encryption: None }
                }
                Entry::Ford => {
                    found.insert(None, at);
                    body.extend_from_slice(&file.ford);
                    let for_chunks = Some(EncryptedChunks { container: Vec::new(), keys_container: file.keys.reference_signature.clone() });
                    ChunkWrapper { meta: None, encryption: Some(EncryptionMeta { size: file.ford.len() as u32, offset: offset as u32, for_chunks }) }
                }
                Entry::Foreign(n) => {
                    body.extend(std::iter::repeat_n(0xee, n));
                    ChunkWrapper { meta: Some(ChunkMeta { checksum: vec![0x84; 21], encryption_key: None, size: n as u64, offset }), encryption: None }
                }
            };
            chunks.push(wrapper);
        }
        let path = format!("/c{c}?sig=secret");
        let headers = vec![HttpHeader { name: "Host".into(), value: "content.example".into() }, HttpHeader { name: "x-test".into(), value: format!("{c}") }];
        let request = HttpRequest {
            scheme: "http".into(),
            domain: "127.0.0.1".into(),
            port: port.into(),
            method: "GET".into(),
            path: path.clone(),
            headers,
            ..Default::default()
        };
        containers.push(Container { request: Some(request), chunks, ..Default::default() });
        bodies.push((path, body));
    }
    let ours = ChunkReferences {
        file_checksum: file.keys.signature.clone(),
        chunk_references: file.order.iter().map(|k| found[&Some(*k)].clone()).collect(),
        ford_reference: found.get(&None).cloned(),
        ..Default::default()
    };
    let other = ChunkReferences { file_checksum: vec![9; 21], ..Default::default() };
    let f1 = AuthorizedFiles { containers, references: vec![other, ours] };
    (AuthorizeGetResponse { f1: Some(f1), error: None }, bodies)
}

// ---- a tiny HTTP/1.1 responder

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// Answers 200 with the whole body even when asked for a range.
    IgnoreRange,
    /// A complete answer, but only the first n bytes of the body.
    Truncate(usize),
    /// Announces the whole body, sends n bytes and closes.
    Cut(usize),
    Status(u16),
    /// The whole body in 700-byte pieces of chunked transfer encoding (no length up front).
    Chunked,
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
}

impl Seen {
    fn range(&self) -> Option<&str> {
        self.headers.get("range").map(String::as_str)
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn handle(mut socket: tokio::net::TcpStream, bodies: Arc<HashMap<String, (Vec<u8>, Mode)>>, log: Log) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
    let headers: HashMap<String, String> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let range = headers.get("range").cloned();
    log.lock().unwrap().push(Seen { path: path.clone(), headers });
    let Some((body, mode)) = bodies.get(&path) else {
        return socket.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    };
    let total = body.len();
    if *mode == Mode::Chunked {
        socket.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").await?;
        for piece in body.chunks(700) {
            socket.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
            socket.write_all(piece).await?;
            socket.write_all(b"\r\n").await?;
        }
        socket.write_all(b"0\r\n\r\n").await?;
        return socket.shutdown().await;
    }
    let (status, extra, sent, announced) = match (*mode, range) {
        (Mode::Status(s), _) => (s, String::new(), &body[..0], 0),
        (Mode::Truncate(n), _) => (200, String::new(), &body[..n], n),
        (Mode::Cut(n), _) => (200, String::new(), &body[..n], total),
        (Mode::Normal, Some(range)) => {
            let (start, end) = range.trim_start_matches("bytes=").split_once('-').unwrap();
            let start: usize = start.parse().unwrap();
            let end: usize = if end.is_empty() { total - 1 } else { end.parse().unwrap() };
            (206, format!("Content-Range: bytes {start}-{end}/{total}\r\n"), &body[start..=end], end + 1 - start)
        }
        _ => (200, String::new(), &body[..], total),
    };
    let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {announced}\r\n{extra}Connection: close\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(sent).await?;
    socket.shutdown().await
}

async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn serve(listener: TcpListener, bodies: Vec<(String, Vec<u8>)>, modes: &[Mode]) -> Log {
    let bodies: HashMap<_, _> = bodies.into_iter().enumerate().map(|(i, (p, b))| (p, (b, modes.get(i).copied().unwrap_or(Mode::Normal)))).collect();
    let (bodies, log) = (Arc::new(bodies), Log::default());
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(handle(socket, bodies.clone(), seen.clone()));
        }
    });
    log
}

const LIMITS: DownloadLimits = DownloadLimits { max_file_bytes: 1 << 20, max_ford_bytes: 1 << 16 };

async fn fetch(auth: &AuthorizeGetResponse, keys: &AssetKeys, limits: &DownloadLimits, skip: u64) -> (Result<(u64, u64)>, Vec<u8>) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut sink = Vec::new();
    let result = download(&http, "test-agent/1", auth, keys, limits, skip, &mut sink).await;
    (result, sink)
}

/// Builds `file` as `layout`, serves it with `modes` per container, downloads from `skip`.
async fn run(file: &TestFile, layout: &[&[Entry]], modes: &[Mode], skip: u64) -> (Result<(u64, u64)>, Vec<u8>, Vec<Seen>) {
    let (listener, port) = listen().await;
    let (auth, bodies) = authorize(port, file, layout);
    let log = serve(listener, bodies, modes);
    let (result, sink) = fetch(&auth, &file.keys, &LIMITS, skip).await;
    let seen = log.lock().unwrap().clone();
    (result, sink, seen)
}

fn step<T: std::fmt::Debug>(result: &Result<T>) -> &'static str {
    match result {
        Err(Error::Mmcs { step, .. }) => step,
        other => panic!("expected an MMCS error, got {other:?}"),
    }
}

use Entry::{Data, Ford, Foreign};

#[tokio::test]
async fn single_chunk() {
    let file = TestFile::new(&[1000], &[0]);
    let (result, sink, seen) = run(&file, &[&[Ford, Data(0)]], &[], 0).await;
    assert_eq!(result.unwrap(), (0, 1000));
    assert_eq!(sink, file.plain());
    assert_eq!(seen.len(), 2, "one ranged FORD request, one data request");
    let ford_end = file.ford.len() - 1;
    assert_eq!(seen[0].range(), Some(format!("bytes=0-{ford_end}").as_str()));
    assert_eq!(seen[1].range(), Some(format!("bytes={}-", ford_end + 1).as_str()));
    for s in &seen {
        assert_eq!(s.path, "/c0?sig=secret");
        assert_eq!(s.headers["user-agent"], "test-agent/1");
        assert_eq!(s.headers["x-test"], "0");
        assert_ne!(s.headers["host"], "content.example");
        let uuid = &s.headers["x-apple-request-uuid"];
        assert!(uuid.len() == 36 && !uuid.chars().any(|c| c.is_ascii_lowercase()), "{uuid}");
    }
}

#[tokio::test]
async fn several_chunks_ford_last() {
    let file = TestFile::new(&[1, 16, 17, 4096, 333], &[0, 1, 2, 3, 4]);
    let (result, sink, seen) = run(&file, &[&[Data(0), Data(1), Data(2), Data(3), Data(4), Ford]], &[], 0).await;
    assert_eq!(result.unwrap(), (0, 1 + 16 + 17 + 4096 + 333));
    assert_eq!(sink, file.plain());
    assert_eq!(seen[1].range(), None, "the data chunks start the container");
    // The same, streamed without a length.
    let (result, sink, _) = run(&file, &[&[Data(0), Data(1), Data(2), Data(3), Data(4), Ford]], &[Mode::Chunked], 0).await;
    assert_eq!(result.unwrap(), (0, 1 + 16 + 17 + 4096 + 333));
    assert_eq!(sink, file.plain());
}

#[tokio::test]
async fn zero_byte_file() {
    let file = TestFile::new(&[], &[]);
    let (result, sink, _) = run(&file, &[&[Ford]], &[], 0).await;
    assert_eq!(result.unwrap(), (0, 0));
    assert!(sink.is_empty());
}

#[tokio::test]
async fn two_containers_ford_in_second_interleaved() {
    // File order 0, 2, 1: chunk 1 arrives (container 0) before its turn and waits for chunk 2.
    let file = TestFile::new(&[500, 600, 700], &[0, 2, 1]);
    let layout: &[&[Entry]] = &[&[Data(0), Foreign(50), Data(1)], &[Foreign(30), Data(2), Ford]];
    let (result, sink, seen) = run(&file, layout, &[], 0).await;
    assert_eq!(result.unwrap(), (0, 1800));
    assert_eq!(sink, file.plain());
    let paths: Vec<_> = seen.iter().map(|s| (s.path.as_str(), s.range())).collect();
    let ford_at = 30 + file.chunks[2].sealed.len();
    let ford_range = format!("bytes={ford_at}-{}", ford_at + file.ford.len() - 1);
    assert_eq!(paths, [("/c1?sig=secret", Some(ford_range.as_str())), ("/c0?sig=secret", None), ("/c1?sig=secret", Some("bytes=30-"))]);
}

#[tokio::test]
async fn out_of_order_and_repeated_chunks() {
    let file = TestFile::new(&[300, 400, 500], &[0, 1, 2, 1, 0]);
    let layout: &[&[Entry]] = &[&[Data(2), Ford, Data(1), Foreign(10), Data(0)]];
    let (result, sink, seen) = run(&file, layout, &[], 0).await;
    assert_eq!(result.unwrap(), (0, 300 + 400 + 500 + 400 + 300));
    assert_eq!(sink, file.plain());
    assert_eq!(seen.len(), 2, "each container once for data");
}

#[tokio::test]
async fn flipped_ciphertext_byte() {
    let file = TestFile::new(&[100, 200], &[0, 1]);
    let (listener, port) = listen().await;
    let (auth, mut bodies) = authorize(port, &file, &[&[Ford, Data(0), Data(1)]]);
    let at = file.ford.len() + 100 + 150;
    bodies[0].1[at] ^= 0x01;
    serve(listener, bodies, &[]);
    let (result, sink) = fetch(&auth, &file.keys, &LIMITS, 0).await;
    assert_eq!(step(&result), "chunk");
    assert!(result.unwrap_err().to_string().contains(&hex(&file.chunks[1].id)));
    assert_eq!(sink, file.chunks[0].plain, "the good first chunk was written before the bad one");
}

#[tokio::test]
async fn wrong_ford_key() {
    let file = TestFile::new(&[100], &[0]);
    let mut wrong = file.keys.clone();
    wrong.ford_key = vec![0x43; 32];
    let (listener, port) = listen().await;
    let (auth, bodies) = authorize(port, &file, &[&[Ford, Data(0)]]);
    let log = serve(listener, bodies, &[]);
    let (result, sink) = fetch(&auth, &wrong, &LIMITS, 0).await;
    assert_eq!(step(&result), "ford");
    assert!(sink.is_empty() && log.lock().unwrap().is_empty(), "the key's id is checked before any fetch");
    // And the chunk itself does not open with it.
    assert_eq!(step(&open_ford(&file.ford, &wrong.ford_key)), "ford");
    let mut bent = file.ford.clone();
    bent[20] ^= 1;
    assert_eq!(step(&open_ford(&bent, &file.keys.ford_key)), "ford");
}

#[tokio::test]
async fn refused_authorization() {
    let file = TestFile::new(&[100], &[0]);
    let detail = AuthorizeErrorDetail { reason: "asset has been deleted".into() };
    let auth = AuthorizeGetResponse { f1: None, error: Some(AuthorizeError { f2: Some(detail) }) };
    let (result, _) = fetch(&auth, &file.keys, &LIMITS, 0).await;
    assert_eq!(step(&result), "authorization");
    assert!(result.unwrap_err().to_string().contains("asset has been deleted"));
}

#[tokio::test]
async fn body_short_long_or_broken() {
    let file = TestFile::new(&[100, 200], &[0, 1]);
    let layout: &[&[Entry]] = &[&[Ford, Data(0), Data(1)]];
    let len = file.ford.len() + 300;
    // A complete answer with 10 bytes missing.
    let (result, sink, _) = run(&file, layout, &[Mode::Truncate(len - 10)], 0).await;
    assert_eq!(step(&result), "container");
    assert!(result.unwrap_err().to_string().contains("ended at byte"));
    assert_eq!(sink, file.chunks[0].plain);
    // The connection breaks off mid-body: a transport error, worth retrying.
    let (result, _, _) = run(&file, layout, &[Mode::Cut(len - 10)], 0).await;
    assert!(matches!(&result, Err(e @ Error::Transport { url, .. }) if e.is_retryable() && !url.contains("secret")), "{result:?}");
    // More bytes than the chunks say.
    let (listener, port) = listen().await;
    let (auth, mut bodies) = authorize(port, &file, layout);
    bodies[0].1.extend_from_slice(b"extra");
    serve(listener, bodies, &[]);
    let (result, _) = fetch(&auth, &file.keys, &LIMITS, 0).await;
    assert_eq!(step(&result), "container");
    assert!(result.unwrap_err().to_string().contains("longer than its chunks say"));
    // The same without a length up front: noticed at the end.
    let (listener, port) = listen().await;
    let (auth, mut bodies) = authorize(port, &file, layout);
    bodies[0].1.extend_from_slice(b"extra");
    serve(listener, bodies, &[Mode::Chunked]);
    let (result, sink) = fetch(&auth, &file.keys, &LIMITS, 0).await;
    assert_eq!(step(&result), "container");
    assert!(result.unwrap_err().to_string().contains("longer than its chunks say"));
    assert_eq!(sink, file.plain(), "every chunk checked out before the extra bytes came");
    // Not found.
    let (result, _, _) = run(&file, layout, &[Mode::Status(404)], 0).await;
    assert_eq!(step(&result), "container");
}

#[tokio::test]
async fn larger_than_the_limit() {
    let file = TestFile::new(&[2000, 2000], &[0, 1]);
    let limits = DownloadLimits { max_file_bytes: 3000, ..LIMITS };
    let (listener, port) = listen().await;
    let (auth, bodies) = authorize(port, &file, &[&[Ford, Data(0), Data(1)]]);
    let log = serve(listener, bodies, &[]);
    let (result, _) = fetch(&auth, &file.keys, &limits, 0).await;
    assert_eq!(step(&result), "size");
    assert!(log.lock().unwrap().is_empty(), "nothing fetched");
    // An asset claiming less than its chunks hold: only the FORD chunk is fetched.
    let lying = AssetKeys { size: 1000, ..file.keys.clone() };
    let (result, _) = fetch(&auth, &lying, &limits, 0).await;
    assert_eq!(step(&result), "size");
    assert_eq!(log.lock().unwrap().len(), 1);
    let lying = AssetKeys { size: 3999, ..file.keys.clone() };
    let (result, _) = fetch(&auth, &lying, &LIMITS, 0).await;
    assert_eq!(step(&result), "size");
}

#[tokio::test]
async fn resume_from_a_chunk_boundary() {
    let file = TestFile::new(&[1000, 1000, 1000], &[0, 1, 2]);
    let layout: &[&[Entry]] = &[&[Ford, Data(0), Data(1), Data(2)]];
    let data_1 = file.ford.len() + 1000;
    for mode in [Mode::Normal, Mode::IgnoreRange] {
        let (result, sink, seen) = run(&file, layout, &[mode], 1500).await;
        assert_eq!(result.unwrap(), (1000, 2000));
        assert_eq!(sink, file.plain()[1000..]);
        assert_eq!(seen.last().unwrap().range(), Some(format!("bytes={data_1}-").as_str()));
    }
    // Past the end: nothing to write, nothing to fetch but the FORD chunk.
    let (result, sink, seen) = run(&file, layout, &[], 5000).await;
    assert_eq!(result.unwrap(), (3000, 0));
    assert!(sink.is_empty() && seen.len() == 1);
}
