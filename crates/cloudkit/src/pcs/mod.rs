//! PCS (Protected CloudKit Service): the key chain and field encryption of Apple's
//! Messages in iCloud.
//!
//! A field value is AES-128-GCM with a 12-byte nonce and a 12-byte tag under a key derived from a
//! 16-byte *record key*. The ciphertext carries a version-3 header naming the first four bytes of
//! the record key's id, so the reader can pick the key; the header is authenticated together with
//! `"{zone}-{record}-{field}"`, which binds a value to its place (a value copied into another
//! record or field fails to decrypt).
//!
//! Byte layout: `03 | kid[0..2] | 02 | kid[2..4] | nonce(12) | tag(12) | ciphertext`.
//!
//! The record keys come out of Apple's chain of `PCSShareProtection` blobs ([`protection`]):
//! the account's Messages3 service identity from the iCloud Keychain (an [`EcKey`], [`ec`])
//! opens the zone's `protectionInfo`, which hands out the zone's EC keys; those open the zone's
//! `recordProtectionInfo`, which holds the record keys; a record with a `protectionInfo` of its
//! own is opened with the zone EC keys instead. [`KeyRing::open_zone`] and
//! [`KeyRing::for_record_protection`] walk that chain; everything below the ring (key ids,
//! field cipher, AAD) is the hot path and does not change with it.
//!
//! The service identity's own signature (by the account's MasterKey) is checked by
//! [`identity`] when it is loaded.
//!
//! Why the split into files: the field cipher here is small and hot; the DER shapes
//! ([`asn1`]), the curve conventions ([`ec`]) and the checks of a protection ([`protection`])
//! are each a separate concern that the known-answer vectors in `shared/fixtures/` test layer
//! by layer. The ring that walks the chain (`ring.rs`) and the failures of a layer
//! (`failure.rs`, named by the crate's error) are apart so that no two of these files import
//! each other.

mod asn1;
pub mod ec;
mod failure;
pub mod identity;
pub mod protection;
mod ring;

pub use ec::{EcKey, EcPublicKey};
pub use failure::{ProtectionFailure, SignatureFailure};
pub use identity::{check_keychain_identity, identity_keyid, IdentitySignature};
pub use protection::{open_protection, open_protection_signed_by, OpenedProtection};
pub use ring::KeyRing;

use aes_gcm::{
    aead::{consts::U12, AeadInPlace, KeyInit},
    aes::Aes128,
    AesGcm, Nonce, Tag,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

type Aes128Gcm12 = AesGcm<Aes128, U12, U12>;
type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 3;
const HEADER_LEN: usize = 6;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 12;

const LABEL_ENCRYPTION_KEY: &[u8; 20] = b"encryption key key m";
const LABEL_KEY_ID: &[u8; 20] = b"master key id labell";
const KEY_ID_INPUT: &[u8; 20] = b"M key input data 2 u";

/// NIST SP 800-108 counter-mode KDF with HMAC-SHA256 and an empty context, as PCS uses it.
pub fn kdf_ctr_hmac(key: &[u8], label: &[u8], out_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(out_len + 32);
    let mut counter: u32 = 1;
    while out.len() < out_len {
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else {
            break;
        };
        mac.update(&counter.to_be_bytes());
        mac.update(label);
        mac.update(&[0]);
        mac.update(&((out_len as u32) * 8).to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(out_len);
    out
}

/// A 16-byte PCS record key with its derived id and field cipher.
#[derive(Clone)]
pub struct PcsKey {
    raw: [u8; 16],
    id: [u8; 32],
    cipher: Aes128Gcm12,
}

impl std::fmt::Debug for PcsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PcsKey({})", hex(&self.short_id()))
    }
}

impl PcsKey {
    pub fn new(raw: [u8; 16]) -> Self {
        let id_key = kdf_ctr_hmac(&raw, LABEL_KEY_ID, 16);
        let id = match <HmacSha256 as Mac>::new_from_slice(&id_key) {
            Ok(mut mac) => {
                mac.update(KEY_ID_INPUT);
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0; 32],
        };
        let ek = kdf_ctr_hmac(&raw, LABEL_ENCRYPTION_KEY, 16);
        let cipher = Aes128Gcm12::new(aes_gcm::Key::<Aes128Gcm12>::from_slice(&ek));
        PcsKey { raw, id, cipher }
    }

    pub fn from_slice(raw: &[u8]) -> Result<Self> {
        let raw: [u8; 16] = raw.try_into().map_err(|_| Error::PcsTruncated(raw.len()))?;
        Ok(Self::new(raw))
    }

    pub fn raw(&self) -> &[u8; 16] {
        &self.raw
    }

    /// The full 32-byte key id.
    pub fn key_id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The 4-byte prefix used in ciphertext headers and `Record.pcsKey`.
    pub fn short_id(&self) -> [u8; 4] {
        [self.id[0], self.id[1], self.id[2], self.id[3]]
    }

    /// Encrypts `plaintext` bound to `context` with the given nonce.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let kid = self.short_id();
        let header = [VERSION, kid[0], kid[1], 2, kid[2], kid[3]];
        let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
        aad.extend_from_slice(&header);
        aad.extend_from_slice(context);
        let mut body = plaintext.to_vec();
        // Encryption of an in-memory buffer below the size limit cannot fail; an empty tag would
        // only make the reader reject the value, never corrupt data silently.
        let tag = self.cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + TAG_LEN + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&body);
        out
    }

    fn decrypt_parsed(&self, parsed: &Parsed<'_>, context: &[u8], what: &str) -> Result<Vec<u8>> {
        // Every field of every record comes through here: the AAD of the usual short context is
        // assembled on the stack rather than in a fresh allocation.
        let aad_len = parsed.header.len() + context.len();
        let mut stack = [0u8; 192];
        let mut heap = Vec::new();
        let aad: &[u8] = if aad_len <= stack.len() {
            stack[..parsed.header.len()].copy_from_slice(parsed.header);
            stack[parsed.header.len()..aad_len].copy_from_slice(context);
            &stack[..aad_len]
        } else {
            heap.reserve_exact(aad_len);
            heap.extend_from_slice(parsed.header);
            heap.extend_from_slice(context);
            &heap
        };
        let mut body = parsed.body.to_vec();
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(parsed.nonce), aad, &mut body, Tag::<U12>::from_slice(parsed.tag))
            .map_err(|_| Error::PcsAuth(what.to_string()))?;
        Ok(body)
    }
}

struct Parsed<'a> {
    header: &'a [u8],
    nonce: &'a [u8],
    tag: &'a [u8],
    body: &'a [u8],
}

impl Parsed<'_> {
    /// The key-id prefix the header names: bytes 1..3 and 4.. of the header.
    fn key_prefix(&self) -> Vec<u8> {
        let mut prefix = self.header[1..3].to_vec();
        prefix.extend_from_slice(&self.header[4..]);
        prefix
    }

    /// The prefix as the usual four bytes, without allocating (None for other lengths).
    fn key_prefix4(&self) -> Option<[u8; 4]> {
        match *self.header {
            [_, a, b, _, c, d] => Some([a, b, c, d]),
            _ => None,
        }
    }
}

fn parse(ct: &[u8]) -> Result<Parsed<'_>> {
    let version = *ct.first().ok_or(Error::PcsTruncated(0))?;
    if version != VERSION {
        return Err(Error::PcsVersion(version));
    }
    if ct.len() < 4 {
        return Err(Error::PcsTruncated(ct.len()));
    }
    let second = ct[3] as usize;
    let header_len = 4 + second;
    if ct.len() < header_len + NONCE_LEN + TAG_LEN {
        return Err(Error::PcsTruncated(ct.len()));
    }
    let (header, rest) = ct.split_at(header_len);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (tag, body) = rest.split_at(TAG_LEN);
    Ok(Parsed { header, nonce, tag, body })
}

/// Lowercase hex of bytes (for key ids in messages).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PcsKey {
        PcsKey::new([b; 16])
    }

    #[test]
    fn kdf_matches_sp800_108_definition() {
        // One block: HMAC(K, BE32(1) || label || 0 || BE32(128)), truncated to 16 bytes.
        let k = [7u8; 16];
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&k).unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"encryption key key m");
        mac.update(&[0]);
        mac.update(&[0, 0, 0, 128]);
        let expect = mac.finalize().into_bytes();
        assert_eq!(kdf_ctr_hmac(&k, LABEL_ENCRYPTION_KEY, 16), expect[..16].to_vec());
        // Two blocks for longer output, the first equal to the one-block output only if out_len
        // matches, because the length is an input.
        let long = kdf_ctr_hmac(&k, LABEL_ENCRYPTION_KEY, 40);
        assert_eq!(long.len(), 40);
        assert_ne!(long[..16], expect[..16]);
    }

    #[test]
    fn field_roundtrip_and_layout() {
        let k = key(1);
        let ct = k.encrypt(b"hello", b"messageManateeZone-rec1-text", [9; 12]);
        assert_eq!(ct.len(), 6 + 12 + 12 + 5);
        assert_eq!(ct[0], 3);
        assert_eq!(ct[3], 2);
        let id = k.short_id();
        assert_eq!([ct[1], ct[2], ct[4], ct[5]], id);
        assert_eq!(&ct[6..18], &[9; 12]);
        let ring = KeyRing::new([key(2), k.clone()]);
        assert_eq!(ring.decrypt(&ct, "messageManateeZone-rec1-text").unwrap(), b"hello");
    }

    #[test]
    fn context_binds_value_to_its_field() {
        let k = key(1);
        let ct = k.encrypt(b"hello", b"z-r-text", [0; 12]);
        let ring = KeyRing::new([k]);
        assert!(matches!(ring.decrypt(&ct, "z-r-subject"), Err(Error::PcsAuth(_))));
        assert!(matches!(ring.decrypt(&ct, "z-other-text"), Err(Error::PcsAuth(_))));
    }

    #[test]
    fn tampering_and_bad_headers_are_typed_errors() {
        let k = key(1);
        let ring = KeyRing::new([k.clone()]);
        let mut ct = k.encrypt(b"hello", b"c", [0; 12]);
        let last = ct.len() - 1;
        ct[last] ^= 1;
        assert!(matches!(ring.decrypt(&ct, "c"), Err(Error::PcsAuth(_))));
        assert!(matches!(ring.decrypt(&[], "c"), Err(Error::PcsTruncated(0))));
        assert!(matches!(ring.decrypt(&[2, 0, 0, 2, 0, 0], "c"), Err(Error::PcsVersion(2))));
        assert!(matches!(ring.decrypt(&[3, 0, 0, 2, 0, 0, 1], "c"), Err(Error::PcsTruncated(7))));
        let other = key(5).encrypt(b"x", b"c", [0; 12]);
        match ring.decrypt(&other, "c") {
            Err(Error::PcsKeyMissing(id)) => assert_eq!(id, hex(&key(5).short_id())),
            r => panic!("expected missing key, got {r:?}"),
        }
    }

    #[test]
    fn key_ids_differ_per_key_and_are_stable() {
        assert_eq!(key(1).key_id(), key(1).key_id());
        assert_ne!(key(1).short_id(), key(2).short_id());
    }
}
