//! The backup keybag (`BackupKeyBag` in `Manifest.plist`) and the keys it yields.
//!
//! The keybag is a TLV list: 4-byte tag, 4-byte big-endian length, value. The header (`VERS`,
//! `TYPE`, `UUID`, `HMCK`, `WRAP`, `SALT`, `ITER`, `DPWT`, `DPIC`, `DPSL`) runs up to the second
//! `UUID`; each later `UUID` starts one protection class (`CLAS`, `WRAP`, `KTYP`, `WPKY`).
//!
//! The password key is PBKDF2-HMAC-SHA1(PBKDF2-HMAC-SHA256(password, DPSL, DPIC), SALT, ITER)
//! (iOS 10.2 and later; older keybags have no DPIC/DPSL and skip the first round). It unwraps
//! (AES key wrap, RFC 3394) every class key whose `WRAP` has the passcode bit; the key wrap's
//! integrity check is what tells a wrong password from a right one.

use std::collections::BTreeMap;

use aes_kw::KekAes256;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::BackupError;

/// Iteration counts above these are refused: a crafted keybag must not make `open` spin for
/// hours. Real backups use 10,000,000 and 10,000.
const MAX_DPIC: u32 = 50_000_000;
const MAX_ITER: u32 = 10_000_000;
/// `WRAP` bit: the class key is wrapped with the password key.
const WRAP_PASSCODE: u32 = 2;

/// A 32-byte AES key, wiped when dropped.
pub(crate) type Key = Zeroizing<[u8; 32]>;

/// One protection class of the keybag.
#[derive(Debug, Clone)]
struct ClassEntry {
    wrap: u32,
    wpky: Option<Vec<u8>>,
}

/// The parsed keybag (no secrets: the class keys in it are wrapped).
#[derive(Debug, Clone)]
pub(crate) struct Keybag {
    /// SHA-256 of the keybag's bytes: names it in the key cache.
    pub digest: [u8; 32],
    salt: Vec<u8>,
    iter: u32,
    dpsl: Option<Vec<u8>>,
    dpic: Option<u32>,
    classes: BTreeMap<u32, ClassEntry>,
}

fn bad(msg: impl Into<String>) -> BackupError {
    BackupError::Keybag(msg.into())
}

fn be_u32(tag: &[u8; 4], value: &[u8]) -> Result<u32, BackupError> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| bad(format!("{} is {} bytes, not 4", String::from_utf8_lossy(tag), value.len())))?;
    Ok(u32::from_be_bytes(bytes))
}

impl Keybag {
    /// Parses the TLV list.
    pub fn parse(bytes: &[u8]) -> Result<Keybag, BackupError> {
        let mut salt = None;
        let mut iter = None;
        let mut dpsl = None;
        let mut dpic = None;
        let mut classes = BTreeMap::new();
        // The class being read (its `CLAS`, `WRAP`, `WPKY`), once the second UUID is met.
        let mut current: Option<(Option<u32>, ClassEntry)> = None;
        let mut seen_uuid = false;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (Some(tag), Some(len)) = (rest.get(..4), rest.get(4..8)) else {
                return Err(bad("truncated tag header"));
            };
            let tag: [u8; 4] = tag.try_into().map_err(|_| bad("truncated tag"))?;
            let len = u32::from_be_bytes(len.try_into().map_err(|_| bad("truncated length"))?) as usize;
            let value = rest.get(8..8 + len).ok_or_else(|| bad(format!("{} runs past the end", String::from_utf8_lossy(&tag))))?;
            rest = &rest[8 + len..];
            if &tag == b"UUID" {
                if seen_uuid {
                    finish_class(&mut current, &mut classes)?;
                    current = Some((None, ClassEntry { wrap: 0, wpky: None }));
                }
                seen_uuid = true;
                continue;
            }
            match (&mut current, &tag) {
                (Some((clas, _)), b"CLAS") => *clas = Some(be_u32(&tag, value)?),
                (Some((_, entry)), b"WRAP") => entry.wrap = be_u32(&tag, value)?,
                (Some((_, entry)), b"WPKY") => entry.wpky = Some(value.to_vec()),
                (Some(_), _) => {} // KTYP, PBKY: not needed to unwrap.
                (None, b"SALT") => salt = Some(value.to_vec()),
                (None, b"ITER") => iter = Some(be_u32(&tag, value)?),
                (None, b"DPSL") => dpsl = Some(value.to_vec()),
                (None, b"DPIC") => dpic = Some(be_u32(&tag, value)?),
                (None, _) => {} // VERS, TYPE, HMCK, WRAP, DPWT.
            }
        }
        finish_class(&mut current, &mut classes)?;
        let salt = salt.ok_or_else(|| bad("no SALT"))?;
        let iter = iter.ok_or_else(|| bad("no ITER"))?;
        if iter == 0 || iter > MAX_ITER {
            return Err(bad(format!("ITER {iter} is outside 1..={MAX_ITER}")));
        }
        match (dpic, &dpsl) {
            (Some(n), Some(_)) if n == 0 || n > MAX_DPIC => return Err(bad(format!("DPIC {n} is outside 1..={MAX_DPIC}"))),
            (Some(_), None) | (None, Some(_)) => return Err(bad("DPIC and DPSL come together")),
            _ => {}
        }
        if !classes.values().any(|c| c.wrap & WRAP_PASSCODE != 0 && c.wpky.is_some()) {
            return Err(bad("no class key is wrapped with the password"));
        }
        Ok(Keybag { digest: Sha256::digest(bytes).into(), salt, iter, dpsl, dpic, classes })
    }

    /// The password key (slow: DPIC + ITER PBKDF2 rounds).
    pub fn derive(&self, password: &[u8]) -> Key {
        match (&self.dpsl, self.dpic) {
            (Some(dpsl), Some(dpic)) => pbkdf2_sha1(&*pbkdf2_sha256(password, dpsl, dpic), &self.salt, self.iter),
            _ => pbkdf2_sha1(password, &self.salt, self.iter),
        }
    }

    /// Unwraps every class key with the password key. Any failed integrity check means the key
    /// (so the password) is wrong.
    pub fn unlock(&self, password_key: &[u8; 32]) -> Result<ClassKeys, BackupError> {
        let kek = KekAes256::from(*password_key);
        let mut keys = BTreeMap::new();
        for (&class, entry) in &self.classes {
            let Some(wpky) = &entry.wpky else { continue };
            if entry.wrap & WRAP_PASSCODE == 0 {
                continue;
            }
            if wpky.len() != 40 {
                return Err(bad(format!("class {class}: WPKY is {} bytes, not 40", wpky.len())));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            kek.unwrap(wpky, &mut *key).map_err(|_| BackupError::WrongPassword)?;
            keys.insert(class, key);
        }
        Ok(ClassKeys(keys))
    }
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> Key {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut *key);
    key
}

/// PBKDF2-HMAC-SHA1 with a 32-byte output.
fn pbkdf2_sha1(password: &[u8], salt: &[u8], rounds: u32) -> Key {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, &mut *key);
    key
}

fn finish_class(current: &mut Option<(Option<u32>, ClassEntry)>, classes: &mut BTreeMap<u32, ClassEntry>) -> Result<(), BackupError> {
    if let Some((clas, entry)) = current.take() {
        let clas = clas.ok_or_else(|| bad("a class without CLAS"))?;
        classes.insert(clas, entry);
    }
    Ok(())
}

/// The unwrapped class keys, by protection class.
pub(crate) struct ClassKeys(BTreeMap<u32, Key>);

impl std::fmt::Debug for ClassKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClassKeys(classes {:?}, <redacted>)", self.0.keys().collect::<Vec<_>>())
    }
}

/// Why a wrapped key could not be unwrapped.
pub(crate) enum UnwrapError {
    NoClass(u32),
    Length(usize),
    Integrity,
}

impl std::fmt::Display for UnwrapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnwrapError::NoClass(c) => write!(f, "the keybag has no key for protection class {c}"),
            UnwrapError::Length(n) => write!(f, "wrapped key is {n} bytes, not 40"),
            UnwrapError::Integrity => f.write_str("wrapped key fails its integrity check"),
        }
    }
}

impl ClassKeys {
    /// Unwraps a file's (or the manifest's) 40-byte wrapped key with its class key.
    pub fn unwrap(&self, class: u32, wrapped: &[u8]) -> Result<Key, UnwrapError> {
        let class_key = self.0.get(&class).ok_or(UnwrapError::NoClass(class))?;
        if wrapped.len() != 40 {
            return Err(UnwrapError::Length(wrapped.len()));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        KekAes256::from(**class_key).unwrap(wrapped, &mut *key).map_err(|_| UnwrapError::Integrity)?;
        Ok(key)
    }
}

/// Splits a `ManifestKey` or an MBFile `EncryptionKey`: 4-byte little-endian class, then the
/// wrapped key.
pub(crate) fn split_class_prefixed(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let class = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some((class, &bytes[4..]))
}

/// Known answers from the RFCs: the primitives as this module calls them.
#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn aes_key_wrap_rfc3394_4_6_256_bit_kek_256_bit_key() {
        let kek: [u8; 32] = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F").try_into().unwrap();
        let wrapped = hex("28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21");
        let keys = ClassKeys(BTreeMap::from([(3, Zeroizing::new(kek))]));
        let Ok(key) = keys.unwrap(3, &wrapped) else { panic!("the RFC's ciphertext must unwrap") };
        assert_eq!(key.to_vec(), hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"));
        // One flipped bit fails the integrity check; an unknown class is named.
        let mut tampered = wrapped.clone();
        tampered[20] ^= 1;
        assert!(matches!(keys.unwrap(3, &tampered), Err(UnwrapError::Integrity)));
        assert!(matches!(keys.unwrap(4, &wrapped), Err(UnwrapError::NoClass(4))));
        assert!(matches!(keys.unwrap(3, &wrapped[..32]), Err(UnwrapError::Length(32))));
    }

    #[test]
    fn aes_key_wrap_rfc3394_4_1_128_bit_kek_128_bit_key() {
        let kek: [u8; 16] = hex("000102030405060708090A0B0C0D0E0F").try_into().unwrap();
        let kek = aes_kw::KekAes128::from(kek);
        let data = hex("00112233445566778899AABBCCDDEEFF");
        let wrapped = hex("1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5");
        let mut out = [0u8; 24];
        kek.wrap(&data, &mut out).unwrap();
        assert_eq!(out.to_vec(), wrapped);
        let mut back = [0u8; 16];
        kek.unwrap(&wrapped, &mut back).unwrap();
        assert_eq!(back.to_vec(), data);
    }

    #[test]
    fn pbkdf2_hmac_sha1_rfc6070() {
        // RFC 6070 gives 20-byte outputs; PBKDF2's first block is the same for a 32-byte output.
        for (rounds, expected) in [
            (1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
            (2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
            (4096, "4b007901b765489abead49d926f721d065a429c1"),
        ] {
            assert_eq!(pbkdf2_sha1(b"password", b"salt", rounds)[..20], hex(expected)[..], "{rounds} rounds");
        }
    }

    #[test]
    fn pbkdf2_hmac_sha256_published_vectors() {
        // RFC 7914 section 11 (first 32 of its 64 bytes), and the widely published
        // "password"/"salt" vectors.
        assert_eq!(pbkdf2_sha256(b"passwd", b"salt", 1).to_vec(), hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"));
        assert_eq!(pbkdf2_sha256(b"password", b"salt", 1).to_vec(), hex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"));
        assert_eq!(pbkdf2_sha256(b"password", b"salt", 4096).to_vec(), hex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"));
    }

    fn tlv(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }

    #[test]
    fn keybag_rejects_what_would_hang_or_cannot_unlock() {
        let mut header = Vec::new();
        tlv(&mut header, b"UUID", &[0; 16]);
        tlv(&mut header, b"SALT", &[1; 20]);
        tlv(&mut header, b"ITER", &u32::MAX.to_be_bytes());
        let mut class = Vec::new();
        tlv(&mut class, b"UUID", &[2; 16]);
        tlv(&mut class, b"CLAS", &1u32.to_be_bytes());
        tlv(&mut class, b"WRAP", &2u32.to_be_bytes());
        tlv(&mut class, b"WPKY", &[3; 40]);
        let err = Keybag::parse(&[header.clone(), class.clone()].concat()).unwrap_err().to_string();
        assert!(err.contains("ITER"), "{err}");
        // A keybag whose class keys are not password-wrapped cannot be opened with a password.
        let mut header_ok = Vec::new();
        tlv(&mut header_ok, b"UUID", &[0; 16]);
        tlv(&mut header_ok, b"SALT", &[1; 20]);
        tlv(&mut header_ok, b"ITER", &10u32.to_be_bytes());
        let no_wpky = class[..class.len() - 48].to_vec();
        assert!(Keybag::parse(&[header_ok.clone(), no_wpky].concat()).is_err());
        // A length that runs past the end is an error, not a panic.
        let mut cut = [header_ok.clone(), class.clone()].concat();
        cut.truncate(cut.len() - 1);
        assert!(Keybag::parse(&cut).is_err());
        // With a well-formed keybag, a key that does not unwrap is the wrong password.
        let keybag = Keybag::parse(&[header_ok, class].concat()).unwrap();
        assert!(matches!(keybag.unlock(&[9; 32]), Err(BackupError::WrongPassword)));
    }
}
