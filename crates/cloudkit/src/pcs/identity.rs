//! The signature of a PCS identity: the `[1]` of the `PCSPublicKey` stored with a keychain key.
//!
//! Apple's keychain items carry a signed public part: a service identity (Messages3) is signed by
//! the account's MasterKey, `keyid = SHA-256(signer x)[0..20]`, ECDSA P-256 / SHA-256 over the
//! DER of the same `PCSPublicKey` without `[1]`. rustpush (`PCSPrivateKey::verify_with_keychain`)
//! refuses an identity without a signature, verifies one whose keyid is the item's own
//! (`atyp = SHA-256(x)[0..20]`, self-signed) with the item's key, looks any other signer up in the
//! keychain by that keyid, treats a signature that does not verify as fatal, and only logs when
//! the signer is not in the keychain (which is the normal case for its own keys, and for the
//! bridge, whose session holds the service identity but not the MasterKey).
//!
//! This module does the same with the signers it is given: [`IdentitySignature::Verified`] when
//! the signer is the identity itself or one of the known keys and the signature holds,
//! [`IdentitySignature::Unverified`] (naming the signer's keyid) when the signer is not known, and
//! a [`ProtectionFailure`] when the identity is unsigned or a known signer's signature fails.

use sha2::{Digest, Sha256};

use super::asn1::PrivateKeyDer;
use super::ec::{EcKey, EcPublicKey, SERVICE_IDENTITY};
use super::failure::{ProtectionFailure, SignatureFailure};
use super::hex;
use crate::error::{Error, Result};

/// Length of a PCS keychain keyid (`atyp`, `PCSSignature.keyid` of an identity).
const KEYID_LEN: usize = 20;

/// `SHA-256(x)[0..20]`: the keychain's `atyp` of the key with compact public `x`, and the keyid
/// by which an identity signature names its signer.
pub fn identity_keyid(x: &[u8; 32]) -> [u8; KEYID_LEN] {
    let digest = Sha256::digest(x);
    let mut out = [0u8; KEYID_LEN];
    out.copy_from_slice(&digest[..KEYID_LEN]);
    out
}

impl EcKey {
    /// The keychain `v_Data` of a PCS identity: DER `PCSPrivateKey` V1 `{ key (x‖d), public
    /// PCSPublicKey }`. `x` (and the embedded public key) must be `d·G`, and the public part
    /// must be signed ([`super::identity`]). No signer is known here, so an identity signed by
    /// another key (the MasterKey, as Apple's are) loads with a debug line naming the signer; use
    /// [`EcKey::from_keychain_der_checked`] to verify against known signers.
    pub fn from_keychain_der(der: &[u8]) -> Result<EcKey> {
        let (key, signature) = Self::from_keychain_der_checked(der, &[])?;
        if let IdentitySignature::Unverified { signer } = &signature {
            // The normal case for a session (it carries no MasterKey), so not a warning; only
            // short prefixes are logged: the identity's bytes stay out of logs, public or not.
            let short = |s: &str| s.chars().take(8).collect::<String>();
            tracing::debug!(
                identity = %short(&hex(&key.public_x())),
                signer = %short(signer),
                "service identity signature unverified: its signer (the account's MasterKey) is not known here"
            );
        }
        Ok(key)
    }

    /// [`EcKey::from_keychain_der`] with `known_signers` (e.g. the MasterKey's public key), and
    /// what the signature check established.
    pub fn from_keychain_der_checked(der: &[u8], known_signers: &[EcPublicKey]) -> Result<(EcKey, IdentitySignature)> {
        check_keychain_identity(der, known_signers).map_err(|failure| Error::Protection { layer: SERVICE_IDENTITY, failure })
    }
}

/// What the check of an identity's signature established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySignature {
    /// The signature verifies with the key its keyid names (`signer` = that keyid, hex).
    Verified { signer: String, self_signed: bool },
    /// Signed by a key not known here (normally the account's MasterKey, which the session does
    /// not carry): the shape was read, the ECDSA signature could not be checked.
    Unverified { signer: String },
}

/// Reads a keychain `v_Data` (`PCSPrivateKey` V1) and checks its public part's signature, with
/// `known_signers` as the keys (e.g. the MasterKey) an identity may be signed by.
pub fn check_keychain_identity(der: &[u8], known_signers: &[EcPublicKey]) -> std::result::Result<(EcKey, IdentitySignature), ProtectionFailure> {
    use der::Decode;
    let decoded = PrivateKeyDer::from_der(der).map_err(|e| ProtectionFailure::Der(format!("PCSPrivateKey: {e}")))?;
    let key = EcKey::from_private_der(&decoded)?;
    let PrivateKeyDer::V1 { public: Some(public), .. } = &decoded else {
        return Err(ProtectionFailure::IdentityUnsigned);
    };
    let signature = public.signature.as_ref().ok_or(ProtectionFailure::IdentityUnsigned)?;
    let failed = |reason| ProtectionFailure::IdentitySignature { reason };
    if signature.digest != 1 {
        return Err(failed(SignatureFailure::UnsupportedDigest(signature.digest)));
    }
    let own = identity_keyid(&key.public_x());
    let self_signed = signature.keyid == own.as_slice();
    let signer = if self_signed { Some(key.public_key()) } else { known_signers.iter().find(|k| identity_keyid(&k.x()).as_slice() == signature.keyid) };
    let named = hex(signature.keyid);
    let Some(signer) = signer else {
        if signature.keyid.len() != KEYID_LEN {
            return Err(ProtectionFailure::Der(format!("PCSPublicKey signature keyid is {} bytes, not {KEYID_LEN}", signature.keyid.len())));
        }
        return Ok((key, IdentitySignature::Unverified { signer: named }));
    };
    let signed = public.signed_bytes().map_err(|e| ProtectionFailure::Der(format!("PCSPublicKey: {e}")))?;
    if !signer.verifies(&signed, signature.signature) {
        return Err(failed(SignatureFailure::Invalid));
    }
    Ok((key, IdentitySignature::Verified { signer: named, self_signed }))
}
