//! The signature of a keychain identity (`PCSPublicKey [1]`), checked against the identities of
//! `shared/fixtures/pcs-keychain-vectors.json` (made by an implementation that follows rustpush,
//! signatures cross-checked on OpenSSL): the Messages3 service identity is signed by the
//! MasterKey, the MasterKey by a throwaway key the vectors name. The vectors' keychain `atyp`
//! values (SHA-256(x)[0..20], written by their generator) are the expected signer names.

mod common;

use cloudkit::pcs::{check_keychain_identity, identity_keyid, EcKey, EcPublicKey, IdentitySignature, ProtectionFailure, SignatureFailure};
use cloudkit::Error;
use common::{hex_of, keychain_vectors};
use serde_json::Value;

fn public(x: &Value) -> EcPublicKey {
    EcPublicKey::from_compact(&hex_of(x)).expect("compact x")
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_string()
}

#[test]
fn vector_service_identities_verify_with_their_master_key() {
    let v = keychain_vectors();
    for chain in v["chains"].as_array().expect("chains") {
        let der = hex_of(&chain["service"]["pcs_private_key_der"]);
        let master = public(&chain["master_key"]["public_x"]);
        let master_atyp = s(&chain["master_key"]["keychain_item"]["atyp"]);
        assert_eq!(cloudkit::pcs::hex(&identity_keyid(&master.x())), master_atyp);

        let (key, signature) = EcKey::from_keychain_der_checked(&der, std::slice::from_ref(&master)).expect("verifies");
        assert_eq!(key.public_x().to_vec(), hex_of(&chain["service"]["public_x"]));
        assert_eq!(signature, IdentitySignature::Verified { signer: master_atyp.clone(), self_signed: false }, "{}", chain["name"]);
        // Without the MasterKey the signer is named, not trusted, and the key still loads.
        let (_, signature) = EcKey::from_keychain_der_checked(&der, &[]).expect("loads");
        assert_eq!(signature, IdentitySignature::Unverified { signer: master_atyp });
        EcKey::from_keychain_der(&der).expect("the session's path loads Apple-shaped identities");

        // Another chain's master key is not the signer: still unverified, never "verified".
        let other = v["chains"].as_array().unwrap().iter().find(|c| c["name"] != chain["name"]).unwrap();
        let (_, signature) = EcKey::from_keychain_der_checked(&der, &[public(&other["master_key"]["public_x"])]).unwrap();
        assert!(matches!(signature, IdentitySignature::Unverified { .. }));
    }
}

#[test]
fn vector_master_identities_verify_with_their_signer() {
    let v = keychain_vectors();
    for chain in v["chains"].as_array().expect("chains") {
        let master = &chain["master_key"];
        let der = hex_of(&master["pcs_private_key_der"]);
        let signer = public(&master["self_signature_signer"]["public_x"]);
        let (key, signature) = check_keychain_identity(&der, std::slice::from_ref(&signer)).expect("verifies");
        assert_eq!(key.public_x().to_vec(), hex_of(&master["public_x"]));
        let IdentitySignature::Verified { signer: named, self_signed: false } = signature else {
            panic!("{}: {signature:?}", chain["name"]);
        };
        assert_eq!(named, cloudkit::pcs::hex(&identity_keyid(&signer.x())));
        // rustpush ends this lookup in MasterKeyNotFound (logged): here, Unverified.
        assert!(matches!(check_keychain_identity(&der, &[]).unwrap().1, IdentitySignature::Unverified { .. }));
    }
}

fn expect_signature_failure(der: &[u8], signer: &EcPublicKey, what: &str) {
    match EcKey::from_keychain_der_checked(der, std::slice::from_ref(signer)) {
        Err(Error::Protection { layer: "service identity", failure: ProtectionFailure::IdentitySignature { reason: SignatureFailure::Invalid } }) => {}
        other => panic!("{what}: expected IdentitySignature(Invalid), got {other:?}"),
    }
}

#[test]
fn tampered_identity_signature_is_refused_by_name() {
    let v = keychain_vectors();
    let chain = &v["chains"][0];
    let der = hex_of(&chain["service"]["pcs_private_key_der"]);
    let master = public(&chain["master_key"]["public_x"]);

    // The ECDSA signature is the last TLV of the item: flip its last byte (part of s).
    let mut flipped = der.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    expect_signature_failure(&flipped, &master, "flipped signature");

    // The signed part: the build string of attribute 1 ("macOS;…" -> "macOT;…").
    let at = der.windows(5).position(|w| w == b"macOS").expect("build attribute");
    let mut edited = der.clone();
    edited[at + 4] = b'T';
    expect_signature_failure(&edited, &master, "edited attribute");

    // Self-signed claim by a key that did not sign: the keyid is changed to the identity's own.
    let service_x: [u8; 32] = hex_of(&chain["service"]["public_x"]).try_into().unwrap();
    let master_id = identity_keyid(&master.x());
    let at = der.windows(20).position(|w| w == master_id).expect("keyid in the item");
    let mut self_claim = der.clone();
    self_claim[at..at + 20].copy_from_slice(&identity_keyid(&service_x));
    expect_signature_failure(&self_claim, &master, "false self-signed claim");
    match EcKey::from_keychain_der(&self_claim) {
        Err(Error::Protection { failure: ProtectionFailure::IdentitySignature { .. }, .. }) => {}
        other => panic!("a self-signed claim is always checkable: {other:?}"),
    }
}

/// DER `SEQUENCE { OCTET STRING x‖d, public }` (every length below 256).
fn v1(compact_private: &[u8], public: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![0x04, compact_private.len() as u8];
    body.extend_from_slice(compact_private);
    if let Some(p) = public {
        body.extend_from_slice(p);
    }
    let mut out = if body.len() < 128 { vec![0x30] } else { vec![0x30, 0x81] };
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

#[test]
fn unsigned_identity_is_refused_by_name() {
    let v = keychain_vectors();
    let service = &v["chains"][0]["service"];
    let private = hex_of(&service["compact_private"]);
    let x = hex_of(&service["public_x"]);
    // [APPLICATION 1] { SEQUENCE { INTEGER 55, INTEGER 1, OCTET STRING x } }: the simulator's
    // identity before it was signed.
    let mut seq = vec![0x30, 6 + 2 + 32, 0x02, 0x01, 55, 0x02, 0x01, 0x01, 0x04, 32];
    seq.extend_from_slice(&x);
    let mut public = vec![0x61, seq.len() as u8];
    public.extend_from_slice(&seq);
    for (what, der) in [("no [1]", v1(&private, Some(&public))), ("no public part", v1(&private, None))] {
        match EcKey::from_keychain_der(&der) {
            Err(Error::Protection { layer: "service identity", failure: ProtectionFailure::IdentityUnsigned }) => {}
            other => panic!("{what}: expected IdentityUnsigned, got {other:?}"),
        }
    }
}
