//! The simulator's own PCS (Protected Cloud Storage) code: the CREATING side of Apple's zone-key
//! chain — field cipher, compact P-256 keys, and `PCSShareProtection` blobs.
//!
//! Why a second implementation: the simulator is the test fixture of the client's PCS opener.
//! If both sides shared one crypto module, a misreading of Apple's format would be baked into
//! both and every test would still pass. This module is written from the format description in
//! `shared/fixtures/pcs-keychain-vectors.json` alone (never from the client crate's PCS module) and is checked
//! byte for byte against those independent vectors (`tests/pcs_vectors.rs`).
//!
//! - [`field`]: SP 800-108 KDF, key ids, AES-128-GCM field encryption ([`RecordKey`]).
//! - [`ec`]: compact P-256 keys ([`SimEcKey`]) and the ECDH + AES-KW key wrap.
//! - [`protection`]: building a `PCSShareProtection` ([`ProtectionSpec`], [`zone_protection`],
//!   [`record_protection`]).
//! - [`identity`]: the Messages3 service identity's keychain form, signed by a MasterKey.
//! - `asn1`: the DER structures, encode side only.

mod asn1;
pub mod ec;
pub mod field;
pub mod identity;
pub mod protection;

pub use ec::SimEcKey;
pub use field::{kdf, key_id, RecordKey};
pub use identity::{service_keychain_der, service_public_identity_der};
pub use protection::{protection_info_tag, record_protection, zone_protection, Previous, Protection, ProtectionSpec};

/// Where a protection's random values come from: a seeded RNG in the simulator (blanket impl
/// for every [`rand::RngCore`]), recorded values in tests.
pub trait Randomness {
    /// A random 16-byte key (`rm_master_key` of a zone protection).
    fn key16(&mut self) -> [u8; 16];
    /// An ephemeral key for one keyset entry.
    fn ephemeral(&mut self) -> SimEcKey;
    /// A 12-byte GCM IV (of `meta`).
    fn iv(&mut self) -> [u8; 12];
}

impl<R: rand::RngCore + ?Sized> Randomness for R {
    fn key16(&mut self) -> [u8; 16] {
        let mut key = [0u8; 16];
        self.fill_bytes(&mut key);
        key
    }
    fn ephemeral(&mut self) -> SimEcKey {
        SimEcKey::generate(self)
    }
    fn iv(&mut self) -> [u8; 12] {
        let mut iv = [0u8; 12];
        self.fill_bytes(&mut iv);
        iv
    }
}

/// Why creating (or, in tests, opening) a PCS value failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PcsError {
    /// A private scalar that is 0 or not below the group order.
    InvalidScalar,
    /// A private key whose point is not the one its compact x names (`2y >= p`).
    NotCompact,
    /// A compact x that is not the x of any P-256 point.
    NotOnCurve,
    /// A record protection needs at least one record key.
    NoKeys,
    /// DER encoding failed (a length beyond DER's limits).
    Der(der::Error),
    /// A cipher refused its input.
    Crypto(&'static str),
    /// An input that is not of the expected form.
    Malformed(&'static str),
}

impl std::fmt::Display for PcsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PcsError::InvalidScalar => f.write_str("invalid P-256 private scalar"),
            PcsError::NotCompact => f.write_str("P-256 key is not in compact form (2y >= p)"),
            PcsError::NotOnCurve => f.write_str("compact x is not on P-256"),
            PcsError::NoKeys => f.write_str("no record key given"),
            PcsError::Der(e) => write!(f, "DER encoding: {e}"),
            PcsError::Crypto(what) => write!(f, "crypto: {what}"),
            PcsError::Malformed(what) => write!(f, "malformed: {what}"),
        }
    }
}

impl std::error::Error for PcsError {}

impl From<der::Error> for PcsError {
    fn from(e: der::Error) -> Self {
        PcsError::Der(e)
    }
}
