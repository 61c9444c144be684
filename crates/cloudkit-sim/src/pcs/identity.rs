//! The Messages3 service identity as Apple's keychain holds it: a `PCSPrivateKey` V1 whose
//! public part is signed by the account's MasterKey.
//!
//! Why signed: Apple's keychain items carry the signature, and rustpush refuses an identity
//! without one (`verify_with_keychain` expects it), so an outside opener that follows rustpush
//! could not load an unsigned simulator identity at all. Written from the `service_identity`
//! entry of `shared/fixtures/pcs-keychain-vectors.json`'s `format`:
//!
//! - `PCSPublicKey ::= [APPLICATION 1] EXPLICIT SEQUENCE { pcsservice 55, unk1 1, pub_key x,
//!   [0] attributes, [1] signature }`, attributes 3 (`SEQUENCE { INTEGER 0 }`, the flags) and 1
//!   (`SEQUENCE { [0] UTF8String '<os>;<build>', [1] GeneralizedTime }`), in that order.
//! - The signature is ECDSA P-256 / SHA-256 (DER) by the MasterKey over the DER of the same
//!   `PCSPublicKey` without `[1]`; `PCSSignature { keyid = SHA-256(master x)[0..20], digest 1 }`.
//!
//! The MasterKey itself stays in the simulator (as it stays in the account's keychain): the
//! session carries only the service identity, so a client can name the signer but not check it
//! unless it is handed the MasterKey's public key ([`crate::Sim::master_key_x`]).

use der::asn1::GeneralizedTime;
use der::{DateTime, Encode};
use sha2::{Digest, Sha256};

use super::asn1::{public_key_der, Attribute, BuildAndTime, ManateeFlags, PrivateKeyV1, PublicKey, Signature};
use super::ec::MESSAGES3_SERVICE;
use super::{PcsError, SimEcKey};

/// The `<os>;<build>` of attribute 1 (the build the vectors' identities name).
pub const BUILD: &str = "macOS;24G84";

/// Creation time of attribute 1: fixed, so a seeded simulator writes the same bytes every run.
const CREATED: (u16, u8, u8) = (2025, 6, 1);

/// `SHA-256(x)[0..20]`: the keychain `atyp` of a key and the keyid a signature names it by.
pub fn keyid(x: &[u8; 32]) -> [u8; 20] {
    let digest = Sha256::digest(x);
    let mut out = [0u8; 20];
    out.copy_from_slice(&digest[..20]);
    out
}

/// The two attributes of a service key: flags (3), then build and time (1).
fn service_attributes() -> Result<Vec<Attribute>, PcsError> {
    let (year, month, day) = CREATED;
    let time = GeneralizedTime::from_date_time(DateTime::new(year, month, day, 0, 0, 0)?);
    Ok(vec![Attribute { key: 3, value: ManateeFlags { flags: 0 }.to_der()? }, Attribute { key: 1, value: BuildAndTime { build: BUILD, time }.to_der()? }])
}

/// `service`'s public identity, signed by `master`.
fn signed_public(service: &SimEcKey, master: &SimEcKey) -> Result<PublicKey, PcsError> {
    let mut public = PublicKey { service: MESSAGES3_SERVICE, unk1: 1, pub_key: service.public_x(), attributes: Some(service_attributes()?), signature: None };
    let signed = public_key_der(&public)?;
    public.signature = Some(Signature { keyid: keyid(&master.public_x()).to_vec(), signature: master.sign(&signed) });
    Ok(public)
}

/// DER of `service`'s `PCSPublicKey`, signed by `master` (the keychain's `pcspublicidentity`).
pub fn service_public_identity_der(service: &SimEcKey, master: &SimEcKey) -> Result<Vec<u8>, PcsError> {
    Ok(public_key_der(&signed_public(service, master)?)?)
}

/// The service identity's keychain form (`v_Data`): `PCSPrivateKey` V1 `SEQUENCE { key OCTET
/// STRING (x || d), public PCSPublicKey }`, the public part signed by `master`.
pub fn service_keychain_der(service: &SimEcKey, master: &SimEcKey) -> Result<Vec<u8>, PcsError> {
    let key = PrivateKeyV1 { key: service.compact_private().to_vec(), public: Some(signed_public(service, master)?) };
    Ok(key.to_der()?)
}

impl SimEcKey {
    /// [`service_keychain_der`] of this key signed by `master`. Fixed-size content with constant
    /// attributes: encoding cannot fail (no length is anywhere near der's limits, the date is
    /// valid).
    pub fn keychain_der(&self, master: &SimEcKey) -> Vec<u8> {
        service_keychain_der(self, master).expect("fixed-size PCSPrivateKey encodes")
    }
}
