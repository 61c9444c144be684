//! The cryptography of an encrypted backup, written from the format description: the keybag
//! (TLV) with class keys wrapped under the password key, per-file keys wrapped under a class key,
//! and AES-256-CBC with a zero IV and PKCS7 padding, streamed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use aes::cipher::{BlockEncryptMut, KeyIvInit};
use aes_kw::KekAes256;
use rand::RngCore;
use sha2::Sha256;

/// Password-key derivation rounds: `dpic` PBKDF2-HMAC-SHA256, then `iter` PBKDF2-HMAC-SHA1.
#[derive(Debug, Clone, Copy)]
pub struct Iterations {
    pub dpic: u32,
    pub iter: u32,
}

impl Iterations {
    /// What iOS writes (10,000,000 + 10,000): seconds per derivation.
    pub const REAL: Iterations = Iterations { dpic: 10_000_000, iter: 10_000 };
    /// Small counts for tests.
    pub const TEST: Iterations = Iterations { dpic: 1000, iter: 10 };
}

/// The protection classes a backup keybag lists (NSFileProtection A–D and the others).
const CLASSES: std::ops::RangeInclusive<u32> = 1..=11;

fn tlv(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

fn random<const N: usize>(rng: &mut impl RngCore) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

/// Wraps a 32-byte key (RFC 3394) into 40 bytes.
pub(crate) fn wrap(kek: &[u8; 32], key: &[u8; 32]) -> [u8; 40] {
    let mut out = [0u8; 40];
    // A 32-byte input into a 40-byte output cannot fail.
    if KekAes256::from(*kek).wrap(key, &mut out).is_err() {
        unreachable!("AES key wrap of 32 bytes into 40");
    }
    out
}

/// A keybag and the class keys it wraps.
pub(crate) struct Keybag {
    pub bytes: Vec<u8>,
    pub class_keys: BTreeMap<u32, [u8; 32]>,
}

impl Keybag {
    /// New random class keys, wrapped under the key derived from `password`.
    pub fn generate(rng: &mut impl RngCore, password: &[u8], it: Iterations) -> Keybag {
        let (salt, dpsl): ([u8; 20], [u8; 20]) = (random(rng), random(rng));
        let mut round1 = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &dpsl, it.dpic, &mut round1);
        let mut kek = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(&round1, &salt, it.iter, &mut kek);

        let mut bytes = Vec::new();
        tlv(&mut bytes, b"VERS", &4u32.to_be_bytes());
        tlv(&mut bytes, b"TYPE", &1u32.to_be_bytes()); // 1: backup keybag
        tlv(&mut bytes, b"UUID", &random::<16>(rng));
        tlv(&mut bytes, b"HMCK", &random::<40>(rng));
        tlv(&mut bytes, b"WRAP", &0u32.to_be_bytes());
        tlv(&mut bytes, b"SALT", &salt);
        tlv(&mut bytes, b"ITER", &it.iter.to_be_bytes());
        tlv(&mut bytes, b"DPWT", &1u32.to_be_bytes());
        tlv(&mut bytes, b"DPIC", &it.dpic.to_be_bytes());
        tlv(&mut bytes, b"DPSL", &dpsl);
        let mut class_keys = BTreeMap::new();
        for class in CLASSES {
            let key: [u8; 32] = random(rng);
            tlv(&mut bytes, b"UUID", &random::<16>(rng));
            tlv(&mut bytes, b"CLAS", &class.to_be_bytes());
            tlv(&mut bytes, b"WRAP", &2u32.to_be_bytes()); // wrapped with the password key
            tlv(&mut bytes, b"KTYP", &0u32.to_be_bytes());
            tlv(&mut bytes, b"WPKY", &wrap(&kek, &key));
            class_keys.insert(class, key);
        }
        Keybag { bytes, class_keys }
    }

    /// A new random key for a file of `class`, and its `EncryptionKey` bytes (4-byte
    /// little-endian class, then the key wrapped with the class key).
    pub fn file_key(&self, rng: &mut impl RngCore, class: u32) -> ([u8; 32], Vec<u8>) {
        let key: [u8; 32] = random(rng);
        let class_key = self.class_keys.get(&class).copied().unwrap_or_else(|| panic!("class {class} is not in the simulator's keybag"));
        let mut wrapped = class.to_le_bytes().to_vec();
        wrapped.extend_from_slice(&wrap(&class_key, &key));
        (key, wrapped)
    }
}

const CHUNK: usize = 64 * 1024;

/// Encrypts everything `input` yields into `output` (AES-256-CBC, zero IV, PKCS7); returns the
/// plaintext length.
pub(crate) fn encrypt_stream(key: &[u8; 32], input: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    let mut cipher = cbc::Encryptor::<aes::Aes256>::new(key.into(), &[0u8; 16].into());
    let mut buf = vec![0u8; CHUNK + 16];
    let mut total = 0u64;
    loop {
        // Fill the chunk (or reach the end): `take` + `copy` into the slice loops over short reads.
        let n = io::copy(&mut input.by_ref().take(CHUNK as u64), &mut io::Cursor::new(&mut buf[..CHUNK]))? as usize;
        total += n as u64;
        let len = if n == CHUNK {
            n
        } else {
            let pad = 16 - n % 16;
            buf[n..n + pad].fill(pad as u8);
            n + pad
        };
        let (blocks, _) = aes::cipher::inout::InOutBuf::from(&mut buf[..len]).into_chunks();
        cipher.encrypt_blocks_inout_mut(blocks);
        output.write_all(&buf[..len])?;
        if n < CHUNK {
            return Ok(total);
        }
    }
}
