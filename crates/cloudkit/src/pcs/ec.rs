//! P-256 keys the way PCS carries them.
//!
//! PCS names a public key by its 32-byte x coordinate only ("compact" form); the point meant is
//! the one whose y satisfies 2y < p (Apple and rustpush generate keys by rejection until y is of
//! that form). A private key travels as 64 bytes `x ‖ d`, and in the iCloud Keychain (the
//! Messages3 service identity's `v_Data`) as DER `PCSPrivateKey` V1. Loading checks that `x` is
//! really `d·G`: a keychain item whose halves disagree is refused when it is loaded, not later
//! as an inexplicable key-unwrap failure.
//!
//! [`EcKey`] never prints its scalar; [`EcKey::compact_private`] is the one way to get it out.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{FieldBytes, NonZeroScalar, PublicKey, SecretKey};

use super::asn1::PrivateKeyDer;
use super::failure::ProtectionFailure;
use super::hex;
use crate::error::{Error, Result};

/// (p − 1) / 2 for P-256, big-endian: a compact key's y is at most this.
const HALF_P: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

pub(crate) const SERVICE_IDENTITY: &str = "service identity";

/// A P-256 public key with its x coordinate (the compact name PCS uses).
#[derive(Clone, PartialEq, Eq)]
pub struct EcPublicKey {
    point: PublicKey,
    x: [u8; 32],
}

impl std::fmt::Debug for EcPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcPublicKey({})", hex(&self.x))
    }
}

impl EcPublicKey {
    pub(crate) fn from_point(point: PublicKey) -> Self {
        let encoded = point.to_encoded_point(false);
        let mut x = [0u8; 32];
        // An uncompressed encoding of a valid public key always has its x.
        if let Some(bytes) = encoded.x() {
            x.copy_from_slice(bytes);
        }
        EcPublicKey { point, x }
    }

    /// The point named by a compact 32-byte x: the root y with 2y < p.
    pub fn from_compact(x: &[u8]) -> Result<Self, ProtectionFailure> {
        let x: [u8; 32] = x.try_into().map_err(|_| ProtectionFailure::InvalidPublicKey("compact key is not 32 bytes"))?;
        let mut sec1 = [0u8; 33];
        sec1[0] = 0x02;
        sec1[1..].copy_from_slice(&x);
        let point = PublicKey::from_sec1_bytes(&sec1).map_err(|_| ProtectionFailure::InvalidPublicKey("x is not on P-256"))?;
        let encoded = point.to_encoded_point(false);
        let high = encoded.y().is_some_and(|y| y.as_slice() > HALF_P.as_slice());
        let point = if high {
            sec1[0] = 0x03;
            PublicKey::from_sec1_bytes(&sec1).map_err(|_| ProtectionFailure::InvalidPublicKey("x is not on P-256"))?
        } else {
            point
        };
        Ok(EcPublicKey { point, x })
    }

    /// A SEC1 point (uncompressed `04‖x‖y` or compressed).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, ProtectionFailure> {
        PublicKey::from_sec1_bytes(bytes).map(Self::from_point).map_err(|_| ProtectionFailure::InvalidPublicKey("not a SEC1 P-256 point"))
    }

    /// The 32-byte big-endian x coordinate.
    pub fn x(&self) -> [u8; 32] {
        self.x
    }

    pub(crate) fn point(&self) -> &PublicKey {
        &self.point
    }

    /// ECDSA P-256 / SHA-256 over `msg`, signature DER-encoded (high S accepted, as OpenSSL does).
    pub(crate) fn verifies(&self, msg: &[u8], signature_der: &[u8]) -> bool {
        let Ok(signature) = Signature::from_der(signature_der) else {
            return false;
        };
        VerifyingKey::from(&self.point).verify(msg, &signature).is_ok()
    }
}

/// A P-256 private key: the service identity, a zone key, or a key handed out by a protection.
/// `Debug` shows only the public x.
#[derive(Clone)]
pub struct EcKey {
    secret: SecretKey,
    public: EcPublicKey,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcKey(x={}, d=<redacted>)", hex(&self.public.x))
    }
}

impl EcKey {
    /// 64 bytes `x ‖ d`; `x` must be `d·G`.
    pub fn from_compact_private(bytes: &[u8]) -> Result<EcKey> {
        Self::parse_compact_private(bytes).map_err(|failure| Error::Protection { layer: SERVICE_IDENTITY, failure })
    }

    /// The key of a keychain `v_Data` without the signature check (unit tests of the opener).
    #[cfg(test)]
    pub(crate) fn parse_keychain_der(der: &[u8]) -> Result<EcKey, ProtectionFailure> {
        use der::Decode;
        let decoded = PrivateKeyDer::from_der(der).map_err(|e| ProtectionFailure::Der(format!("PCSPrivateKey: {e}")))?;
        Self::from_private_der(&decoded)
    }

    pub(crate) fn from_private_der(decoded: &PrivateKeyDer<'_>) -> Result<EcKey, ProtectionFailure> {
        match decoded {
            PrivateKeyDer::V1 { key, public } => {
                let ec = Self::parse_compact_private(key)?;
                if let Some(public) = public {
                    if public.pub_key != ec.public.x {
                        return Err(ProtectionFailure::PrivateKeyMismatch { x: hex(public.pub_key) });
                    }
                }
                Ok(ec)
            }
            PrivateKeyDer::V2 => Err(ProtectionFailure::InvalidPrivateKey("PCSPrivateKey V2 is not supported")),
        }
    }

    pub(crate) fn parse_compact_private(bytes: &[u8]) -> Result<EcKey, ProtectionFailure> {
        if bytes.len() != 64 {
            return Err(ProtectionFailure::InvalidPrivateKey("compact private key is not 64 bytes (x‖d)"));
        }
        let (x, d) = bytes.split_at(32);
        let secret = SecretKey::from_slice(d).map_err(|_| ProtectionFailure::InvalidPrivateKey("scalar is zero or not below the group order"))?;
        let public = EcPublicKey::from_point(secret.public_key());
        if public.x.as_slice() != x {
            return Err(ProtectionFailure::PrivateKeyMismatch { x: hex(x) });
        }
        Ok(EcKey { secret, public })
    }

    /// The 32-byte x of the public key: what keyset entries and signatures name.
    pub fn public_x(&self) -> [u8; 32] {
        self.public.x
    }

    pub fn public_key(&self) -> &EcPublicKey {
        &self.public
    }

    /// The secret in its compact form `x ‖ d` (as the keychain and protections carry it).
    pub fn compact_private(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.public.x);
        out[32..].copy_from_slice(&self.secret.to_bytes());
        out
    }

    /// The x coordinate of `d · peer` (ECDH).
    pub(crate) fn shared_x(&self, peer: &PublicKey) -> [u8; 32] {
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        let mut out = [0u8; 32];
        out.copy_from_slice(shared.raw_secret_bytes());
        out
    }

    /// A key whose claimed x is not its scalar's, as a corrupted keychain item would give
    /// rustpush (for the test that reproduces rustpush's outcome with such an item).
    #[cfg(test)]
    pub(crate) fn with_claimed_x(mut self, x: [u8; 32]) -> Self {
        self.public.x = x;
        self
    }
}

/// The public key of a scalar given as big-endian bytes (reduced mod n); None for zero.
pub(crate) fn public_of_scalar(be: [u8; 32]) -> Option<(NonZeroScalar, EcPublicKey)> {
    use p256::elliptic_curve::ops::Reduce;
    let scalar = <p256::Scalar as Reduce<p256::U256>>::reduce_bytes(&FieldBytes::from(be));
    let nz = Option::<NonZeroScalar>::from(NonZeroScalar::new(scalar))?;
    Some((nz, EcPublicKey::from_point(PublicKey::from_secret_scalar(&nz))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn compact_decompression_takes_the_low_root() {
        // From the fixtures: 02… and 03… points, both named by x alone.
        for sec1 in [
            "04f893ec29813d40b9c21b362020df2bf464c6672417f6628557e1b5e8d40d89641d8a56a4605c42003e666f121f884290a12d58da04423116734b1c7f164b45a0",
            "043b1f04b68117de30c0527b6353a3e783d915aa1473adf986b15ad8db766e71ec7f407606787d1bf7077843c46c0453c16d88e13fc9b7ff589294d33b472d9e97",
        ] {
            let full = EcPublicKey::from_sec1(&unhex(sec1)).unwrap();
            assert_eq!(EcPublicKey::from_compact(&full.x()).unwrap(), full);
        }
        assert!(EcPublicKey::from_compact(&[0u8; 31]).is_err());
    }

    #[test]
    fn compact_private_checks_x_and_redacts_debug() {
        let good = unhex("f893ec29813d40b9c21b362020df2bf464c6672417f6628557e1b5e8d40d8964b4bb453a01ec3a8badb6fcdcb5367fdc1fc358f9f945829df34749b7f9486bdd");
        let key = EcKey::parse_compact_private(&good).unwrap();
        assert_eq!(key.compact_private().to_vec(), good);
        let debug = format!("{key:?}");
        assert!(debug.contains("f893ec29") && !debug.contains("b4bb453a"), "{debug}");
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(matches!(EcKey::parse_compact_private(&bad), Err(ProtectionFailure::PrivateKeyMismatch { .. })));
        assert!(matches!(EcKey::parse_compact_private(&good[..63]), Err(ProtectionFailure::InvalidPrivateKey(_))));
        let mut zero = good.clone();
        zero[32..].fill(0);
        assert!(matches!(EcKey::parse_compact_private(&zero), Err(ProtectionFailure::InvalidPrivateKey(_))));
    }
}
