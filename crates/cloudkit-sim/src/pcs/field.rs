//! The PCS field cipher, the creating side: what a record field and a protection's `meta` look
//! like once encrypted under a 16-byte PCS key.
//!
//! Layout: `03 kid0 kid1 02 kid2 kid3 | iv (12) | tag (12) | AES-128-GCM body`, where `kid` is
//! the key's 32-byte key id, the AES key is `KDF(k, "encryption key key m")`, and the AAD is the
//! six header bytes followed by the caller's context (`"{zone}-{record}-{field}"` for a field,
//! nothing for `meta`). Everything that depends only on the key (key id, AES key schedule,
//! header) is derived once in [`RecordKey::new`]: the simulator encrypts every field of every
//! record it serves, so per-field work is one GCM pass.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes128;
use aes_gcm::{AesGcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::PcsError;

/// KDF label of the share key (`master_key` of a version-4 protection).
pub const LABEL_SHARE_KEY: &[u8] = b"MsaeEooevaX fooo 012";
/// KDF label of a protection's HMAC key.
pub const LABEL_HMAC_KEY: &[u8] = b"hmackey-of-masterkey";
/// KDF label of the key that computes a key id.
pub const LABEL_KEY_ID: &[u8] = b"master key id labell";
/// KDF label of the AES-128-GCM key of the field cipher.
pub const LABEL_ENCRYPTION_KEY: &[u8] = b"encryption key key m";
/// The message that the key-id key authenticates to give the key id.
pub const KEY_ID_INPUT: &[u8] = b"M key input data 2 u";

/// Header byte that opens an encrypted field (format version 3, key id present).
const HEADER_VERSION: u8 = 0x03;
/// Header byte between the two halves of the short key id.
const HEADER_KEY_ID_MARK: u8 = 0x02;
const HEADER_LEN: usize = 6;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 12;

type HmacSha256 = Hmac<Sha256>;
/// AES-128-GCM with a 12-byte nonce and a 12-byte (truncated) tag.
type FieldGcm = AesGcm<Aes128, U12, U12>;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `KDF(k, label)`: SP 800-108 counter mode with HMAC-SHA256, one block, output as long as the
/// 16-byte key: `HMAC(k, u32be(1) || label || 00 || u32be(128))[..16]`.
pub fn kdf(key: &[u8; 16], label: &[u8]) -> [u8; 16] {
    let bits = (8 * key.len() as u32).to_be_bytes();
    let block = hmac_sha256(key, &[&1u32.to_be_bytes(), label, &[0], &bits]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&block[..16]);
    out
}

/// `key_id(k) = HMAC-SHA256(KDF(k, "master key id labell"), "M key input data 2 u")`.
pub fn key_id(key: &[u8; 16]) -> [u8; 32] {
    hmac_sha256(&kdf(key, LABEL_KEY_ID), &[KEY_ID_INPUT])
}

/// A 16-byte PCS key (record key, zone PCS key or a protection's master key) with its derived
/// state, ready to encrypt fields.
#[derive(Clone)]
pub struct RecordKey {
    raw: [u8; 16],
    key_id: [u8; 32],
    enc_key: [u8; 16],
    header: [u8; HEADER_LEN],
    cipher: FieldGcm,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material; the short id names the key well enough.
        f.debug_struct("RecordKey").field("short_id", &self.short_id()).finish_non_exhaustive()
    }
}

impl PartialEq for RecordKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for RecordKey {}

impl RecordKey {
    /// Derives the key id, the AES key and its schedule once.
    pub fn new(raw: [u8; 16]) -> Self {
        let key_id = key_id(&raw);
        let enc_key = kdf(&raw, LABEL_ENCRYPTION_KEY);
        let header = [HEADER_VERSION, key_id[0], key_id[1], HEADER_KEY_ID_MARK, key_id[2], key_id[3]];
        let cipher = FieldGcm::new(&enc_key.into());
        RecordKey { raw, key_id, enc_key, header, cipher }
    }

    /// The 16 raw key bytes.
    pub fn raw(&self) -> &[u8; 16] {
        &self.raw
    }

    /// The 32-byte key id.
    pub fn key_id(&self) -> [u8; 32] {
        self.key_id
    }

    /// `key_id[0..4]`: a record's `pcsKey`, and the key-id bytes of every field header.
    pub fn short_id(&self) -> [u8; 4] {
        [self.key_id[0], self.key_id[1], self.key_id[2], self.key_id[3]]
    }

    /// The derived AES-128-GCM key (`KDF(k, "encryption key key m")`).
    pub fn enc_key(&self) -> [u8; 16] {
        self.enc_key
    }

    fn aad(&self, context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
        aad.extend_from_slice(&self.header);
        aad.extend_from_slice(context);
        aad
    }

    /// Encrypts `plaintext` with AAD `header || context` under the given IV, giving the whole
    /// stored value: header, IV, tag, body. Fails only for a plaintext beyond GCM's limit.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8], iv: [u8; 12]) -> Result<Vec<u8>, PcsError> {
        let body_at = HEADER_LEN + IV_LEN + TAG_LEN;
        let mut out = Vec::with_capacity(body_at + plaintext.len());
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&iv), &self.aad(context), &mut out[body_at..])
            .map_err(|_| PcsError::Crypto("field plaintext too long for AES-GCM"))?;
        out[HEADER_LEN + IV_LEN..body_at].copy_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a value made by [`RecordKey::encrypt`] (used by the simulator's own tests).
    pub fn decrypt(&self, ciphertext: &[u8], context: &[u8]) -> Result<Vec<u8>, PcsError> {
        let body_at = HEADER_LEN + IV_LEN + TAG_LEN;
        if ciphertext.len() < body_at {
            return Err(PcsError::Malformed("encrypted field shorter than its header"));
        }
        if ciphertext[..HEADER_LEN] != self.header {
            return Err(PcsError::Malformed("encrypted field names another key"));
        }
        let iv = &ciphertext[HEADER_LEN..HEADER_LEN + IV_LEN];
        let tag = Tag::<U12>::from_slice(&ciphertext[HEADER_LEN + IV_LEN..body_at]);
        let mut body = ciphertext[body_at..].to_vec();
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(iv), &self.aad(context), &mut body, tag)
            .map_err(|_| PcsError::Crypto("field authentication failed"))?;
        Ok(body)
    }
}
