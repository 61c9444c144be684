//! Opening a `PCSShareProtection`: the blob in a zone's `protectionInfo` and
//! `recordProtectionInfo` and in a record's own `protectionInfo`.
//!
//! One of our EC keys finds its keyset entry (by x), unwraps the 16-byte key in it (ECDH with the
//! entry's ephemeral key, an RFC 6637-style KEK, AES key wrap), and the checks follow in
//! rustpush's order, so a tampered blob fails with the same kind of error rustpush reports:
//! outer signature `[3]` (by the decode key, or by the owner on the share path), self-signature
//! by the object key (falling back to `signature_2`) unless the entry is readonly, the owner's
//! attribute-7 signature when an owner is given, the truncated key id, the HMAC, and last the
//! `meta` ciphertext, whose identities hand out EC keys and symmetric keys.
//!
//! Leniency: the DER reader is strict (see [`super::asn1`]). rustpush's rasn also opens
//! non-minimal lengths and bytes after the value; those are refused here with
//! [`ProtectionFailure::Der`]. The digest and the HMAC are computed over the bytes as read,
//! which for strict DER are exactly rustpush's canonical re-encoding. Signature-data versions
//! other than 4 (share) and 5 (plain) are refused rather than guessed at.

use der::Decode;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::asn1::{ObjectSignature, ProtectionKeySet, ShareKey, ShareProtection, Signature};
use super::ec::{public_of_scalar, EcKey, EcPublicKey};
use super::failure::{ProtectionFailure, SignatureFailure};
use super::{hex, kdf_ctr_hmac, parse, PcsKey};
use crate::error::Error;

const LABEL_SHARE_KEY: &[u8] = b"MsaeEooevaX fooo 012";
const LABEL_HMAC_KEY: &[u8] = b"hmackey-of-masterkey";
const OBJECT_KEY_SALT: &[u8] = b"full master key";
const WRAP_FINGERPRINT: &[u8] = b"fingerprint";
/// Attribute of `PCSShareProtection.attributes` that holds the owner's signature.
const ATTRIBUTE_OWNER_SIGNATURE: u32 = 7;

/// What an opened protection hands out.
#[derive(Debug, Clone)]
pub struct OpenedProtection {
    /// `signature_data.version`: 5 plain, 4 share.
    pub version: i64,
    pub roll_count: i64,
    /// The master key, then the symmetric keys (for a record protection: the record keys).
    pub pcs_keys: Vec<PcsKey>,
    /// Every private key of every identity (for a zone protection: the zone keys).
    pub ec_keys: Vec<EcKey>,
}

/// Opens a protection with whichever of `keys` its keyset names; the outer signature, when
/// present, must be by that key.
pub fn open_protection(der: &[u8], keys: &[EcKey]) -> Result<OpenedProtection, ProtectionFailure> {
    open(der, keys, None)
}

/// The share path: `keys` holds an invited (readonly) key and the outer signature is by the
/// owner, whose attribute-7 signature is checked too when present.
pub fn open_protection_signed_by(der: &[u8], keys: &[EcKey], owner: &EcPublicKey) -> Result<OpenedProtection, ProtectionFailure> {
    open(der, keys, Some(owner))
}

/// [`open_protection`] with the failure named by `layer`.
pub(crate) fn open_at(layer: &'static str, der: &[u8], keys: &[EcKey]) -> crate::Result<OpenedProtection> {
    open_protection(der, keys).map_err(|failure| Error::Protection { layer, failure })
}

fn open(der: &[u8], keys: &[EcKey], owner: Option<&EcPublicKey>) -> Result<OpenedProtection, ProtectionFailure> {
    let p = ShareProtection::parse(der).map_err(|e| ProtectionFailure::Der(format!("PCSShareProtection: {e}")))?;
    if p.version != 4 && p.version != 5 {
        return Err(ProtectionFailure::UnsupportedVersion(p.version));
    }
    let (key, entry) = find_entry(&p, keys)?;
    let unwrapped = unwrap_key(key, entry.ciphertext)?;
    let readonly = entry.flags.unwrap_or(0) & 1 != 0;
    let digest = digest_data(&p);

    if let Some(signature) = &p.signature {
        let signer = owner.unwrap_or(key.public_key());
        check_signature(signer, signature, &digest).map_err(|reason| ProtectionFailure::OuterSignature { reason })?;
    }
    // A readonly entry holds the derived master key, not rm_master_key: no object key.
    if !readonly {
        check_self_signature(&unwrapped, &p.object_signature, &digest)?;
    }
    if let Some(owner) = owner {
        if let Some(attribute) = p.attributes.iter().find(|a| a.key == ATTRIBUTE_OWNER_SIGNATURE) {
            let signature = Signature::from_der(attribute.value).map_err(|e| ProtectionFailure::Der(format!("owner signature: {e}")))?;
            check_signature(owner, &signature, &digest).map_err(|reason| ProtectionFailure::OwnerSignature { reason })?;
        }
    }

    // Version 4 (share): the entry of the creator holds rm_master_key, from which the master
    // key is derived; a readonly entry holds the master key itself.
    let master = if p.version == 4 && !readonly {
        let mut share = [0u8; 16];
        let derived = kdf_ctr_hmac(&unwrapped, LABEL_SHARE_KEY, 16);
        share.iter_mut().zip(&derived).for_each(|(d, s)| *d = *s);
        PcsKey::new(share)
    } else {
        PcsKey::new(unwrapped)
    };
    if master.short_id().as_slice() != p.truncated_key_id {
        return Err(ProtectionFailure::TruncatedKeyId { stored: hex(p.truncated_key_id), computed: hex(&master.short_id()) });
    }
    check_hmac(&master, &p)?;

    let (pcs_keys, ec_keys) = open_meta(master, p.meta)?;
    Ok(OpenedProtection { version: p.version.into(), roll_count: p.object_signature.roll_count.into(), pcs_keys, ec_keys })
}

/// The first of `keys` that a keyset entry names (by its compact x).
fn find_entry<'k, 'p>(p: &ShareProtection<'p>, keys: &'k [EcKey]) -> Result<(&'k EcKey, ShareKey<'p>), ProtectionFailure> {
    let found = keys.iter().find_map(|key| {
        let x = key.public_x();
        p.keyset.entries.iter().find(|e| e.decryption_key.pub_key == x).map(|e| (key, *e))
    });
    found.ok_or_else(|| {
        // rustpush keeps the entries in a BTreeSet ordered by (keytype, pub_key, …) and names the
        // first one; the same entry is named here.
        let first = p.keyset.entries.iter().min_by_key(|e| (e.decryption_key.keytype, e.decryption_key.pub_key, e.ciphertext, e.flags));
        ProtectionFailure::DecodeKeyNotFound { x: first.map(|e| hex(e.decryption_key.pub_key)).unwrap_or_default() }
    })
}

/// KEK = SHA-256(00000001 ‖ Z ‖ curve OID ‖ 12 ‖ 03 01 08 07 ‖ "Anonymous Sender    " ‖
/// fingerprint padded to 20)[..16] (the RFC 6637 KDF with PCS's fixed parameters).
fn kek(shared_x: &[u8; 32]) -> [u8; 16] {
    let mut fingerprint = [0u8; 20];
    fingerprint[..WRAP_FINGERPRINT.len()].copy_from_slice(WRAP_FINGERPRINT);
    let digest = Sha256::new()
        .chain_update(1u32.to_be_bytes())
        .chain_update(shared_x)
        .chain_update([0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])
        .chain_update([18, 0x03, 0x01, 8, 7])
        .chain_update(b"Anonymous Sender    ")
        .chain_update(fingerprint)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Opens `0100 ‖ e.x (32) ‖ len ‖ AES-KW(01 ‖ key ‖ sum16 ‖ padding)` with `key`.
fn unwrap_key(key: &EcKey, ciphertext: &[u8]) -> Result<[u8; 16], ProtectionFailure> {
    use ProtectionFailure::WrappedKey;
    let (bits, rest) = ciphertext.split_first_chunk::<2>().ok_or(WrappedKey("truncated"))?;
    if u16::from_be_bytes(*bits) != 256 {
        return Err(WrappedKey("ephemeral key is not 256 bits"));
    }
    let (ephemeral_x, rest) = rest.split_first_chunk::<32>().ok_or(WrappedKey("truncated"))?;
    let (&len, wrapped) = rest.split_first().ok_or(WrappedKey("truncated"))?;
    if wrapped.len() != usize::from(len) {
        return Err(WrappedKey("wrapped length does not match its length byte"));
    }
    if wrapped.len() < 24 || wrapped.len() % 8 != 0 {
        return Err(WrappedKey("wrapped key is not a whole number of 8-byte blocks"));
    }
    let ephemeral = EcPublicKey::from_compact(ephemeral_x).map_err(|_| WrappedKey("ephemeral key is not on P-256"))?;
    let kek = aes_kw::KekAes128::from(kek(&key.shared_x(ephemeral.point())));
    let mut message = vec![0u8; wrapped.len() - 8];
    kek.unwrap(wrapped, &mut message).map_err(|_| ProtectionFailure::KeyUnwrap)?;

    // The leading 01 is not checked (rustpush does not either).
    let pad = usize::from(message.last().copied().unwrap_or(0));
    if pad + 3 > message.len() {
        return Err(WrappedKey("padding longer than the message"));
    }
    if message[message.len() - pad..].iter().any(|&b| usize::from(b) != pad) {
        return Err(WrappedKey("bad padding"));
    }
    let key_len = message.len() - pad - 3;
    let raw = &message[1..1 + key_len];
    let sum = raw.iter().fold(0u16, |acc, &b| acc.wrapping_add(u16::from(b)));
    if sum != u16::from_be_bytes([message[1 + key_len], message[2 + key_len]]) {
        return Err(WrappedKey("key checksum does not match"));
    }
    raw.try_into().map_err(|_| WrappedKey("unwrapped key is not 16 bytes"))
}

/// digest_data = DER(keyset) ‖ meta ‖ u32be(outer_sign_key_type) ‖ u32be(roll_count) ‖
/// u32be(symm_key_count or 0) ‖ u32be(public.keytype) ‖ public.pub_key ‖ DER(attributes)? ‖
/// DER(ec_key_list)?
fn digest_data(p: &ShareProtection<'_>) -> Vec<u8> {
    let os = &p.object_signature;
    let extra = os.attributes_raw.map_or(0, <[u8]>::len) + os.ec_key_list_raw.map_or(0, <[u8]>::len);
    let mut data = Vec::with_capacity(p.keyset_raw.len() + p.meta.len() + 16 + os.public.pub_key.len() + extra);
    data.extend_from_slice(p.keyset_raw);
    data.extend_from_slice(p.meta);
    data.extend_from_slice(&os.outer_sign_key_type.to_be_bytes());
    data.extend_from_slice(&os.roll_count.to_be_bytes());
    data.extend_from_slice(&os.symm_key_count.unwrap_or(0).to_be_bytes());
    data.extend_from_slice(&os.public.keytype.to_be_bytes());
    data.extend_from_slice(os.public.pub_key);
    if let Some(attributes) = os.attributes_raw {
        data.extend_from_slice(attributes);
    }
    if let Some(list) = os.ec_key_list_raw {
        data.extend_from_slice(list);
    }
    data
}

fn check_signature(signer: &EcPublicKey, signature: &Signature<'_>, digest: &[u8]) -> Result<(), SignatureFailure> {
    if !signature.keyid.is_empty() && signature.keyid != signer.x() {
        return Err(SignatureFailure::KeyMismatch { keyid: hex(signature.keyid), key: hex(&signer.x()) });
    }
    if signature.digest != 1 {
        return Err(SignatureFailure::UnsupportedDigest(signature.digest));
    }
    if signer.verifies(digest, signature.signature) {
        Ok(())
    } else {
        Err(SignatureFailure::Invalid)
    }
}

/// The object key: PBKDF2-HMAC-SHA256(rm_master_key, "full master key", 10 rounds, 128 bytes),
/// bytes 0..32 as a little-endian scalar reduced mod n.
pub(crate) fn object_key(rm_master_key: &[u8]) -> Option<(p256::NonZeroScalar, EcPublicKey)> {
    let mut out = [0u8; 128];
    pbkdf2::pbkdf2_hmac::<Sha256>(rm_master_key, OBJECT_KEY_SALT, 10, &mut out);
    let mut be = [0u8; 32];
    for (dst, src) in be.iter_mut().zip(out[..32].iter().rev()) {
        *dst = *src;
    }
    public_of_scalar(be)
}

/// The self-signature by the object key; `signature_2` is tried only when it does not verify,
/// and with the same key, as rustpush does.
fn check_self_signature(rm_master_key: &[u8; 16], os: &ObjectSignature<'_>, digest: &[u8]) -> Result<(), ProtectionFailure> {
    let (_, object) = object_key(rm_master_key).ok_or(ProtectionFailure::SelfSignature)?;
    match check_signature(&object, &os.signature, digest) {
        Ok(()) => Ok(()),
        Err(SignatureFailure::Invalid) => match &os.signature_2 {
            Some(second) => check_signature(&object, second, digest).map_err(|_| ProtectionFailure::SelfSignature),
            None => Err(ProtectionFailure::SelfSignature),
        },
        Err(_) => Err(ProtectionFailure::SelfSignature),
    }
}

/// HMAC-SHA256(KDF(master, "hmackey-of-masterkey"), DER(keyset) ‖ meta ‖ DER(object signature)).
fn check_hmac(master: &PcsKey, p: &ShareProtection<'_>) -> Result<(), ProtectionFailure> {
    let key = kdf_ctr_hmac(master.raw(), LABEL_HMAC_KEY, 16);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|_| ProtectionFailure::Mac)?;
    mac.update(p.keyset_raw);
    mac.update(p.meta);
    mac.update(p.object_signature_raw);
    mac.verify_slice(p.hmac).map_err(|_| ProtectionFailure::Mac)
}

/// Decrypts `meta` (the field cipher under the master key, empty AAD) and reads the identities.
fn open_meta(master: PcsKey, meta: &[u8]) -> Result<(Vec<PcsKey>, Vec<EcKey>), ProtectionFailure> {
    use ProtectionFailure::Meta;
    let parsed = parse(meta).map_err(|e| Meta(e.to_string()))?;
    if parsed.key_prefix4() != Some(master.short_id()) {
        return Err(Meta(format!("encrypted under key {}, not the master key {}", hex(&parsed.key_prefix()), hex(&master.short_id()))));
    }
    let plain = master.decrypt_parsed(&parsed, b"", "meta").map_err(|_| Meta("does not authenticate under the master key".into()))?;
    let identities = super::asn1::Identities::from_der(&plain).map_err(|e| Meta(format!("PCSShareProtectionIdentities: {e}")))?;

    let mut ec_keys = Vec::new();
    for keyset_der in &identities.identity_keysets {
        let keyset = ProtectionKeySet::parse(keyset_der).map_err(|e| Meta(format!("PCSShareProtectionKeySet: {e}")))?;
        let hash = keyset.hash.ok_or_else(|| Meta("identity keyset has no hash".into()))?;
        if Sha256::digest(&keyset.der_without_hash).as_slice() != hash {
            return Err(Meta("identity keyset hash does not match".into()));
        }
        for key in &keyset.keys {
            ec_keys.push(EcKey::from_private_der(key).map_err(|e| Meta(format!("identity key: {e}")))?);
        }
    }
    let mut pcs_keys = vec![master];
    for symm in &identities.symm_keys {
        pcs_keys.push(PcsKey::from_slice(symm).map_err(|_| Meta(format!("symmetric key of {} bytes, not 16", symm.len())))?);
    }
    Ok((pcs_keys, ec_keys))
}

#[cfg(test)]
mod tests {
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    use super::*;

    fn fixtures() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/pcs-keychain-vectors.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn unhex(v: &serde_json::Value) -> Vec<u8> {
        let s = v.as_str().unwrap();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn object_key_kek_and_wrap_message_match_intermediates() {
        let v = fixtures();
        for chain in v["chains"].as_array().unwrap() {
            for layer in ["zone_protection", "record_protection"] {
                let im = &chain["intermediate"][layer];
                let (scalar, public) = object_key(&unhex(&im["rm_master_key"])).unwrap();
                assert_eq!(scalar.to_bytes().to_vec(), unhex(&im["object_key"]["private_scalar"]));
                assert_eq!(public.point().to_encoded_point(false).as_bytes(), unhex(&im["object_key"]["public_uncompressed"]).as_slice());
                for entry in im["keyset_entries"].as_array().unwrap() {
                    let z: [u8; 32] = unhex(&entry["ecdh_shared_x"]).try_into().unwrap();
                    assert_eq!(kek(&z).to_vec(), unhex(&entry["kek"]));
                    let mut message = vec![0u8; 40];
                    aes_kw::KekAes128::from(kek(&z)).unwrap(&unhex(&entry["aes_kw_output"]), &mut message).unwrap();
                    assert_eq!(message, unhex(&entry["wrap_plaintext"]));
                }
            }
        }
    }

    #[test]
    fn digest_and_hmac_inputs_match_intermediates() {
        let v = fixtures();
        for chain in v["chains"].as_array().unwrap() {
            for (layer, field) in [("zone_protection", "protection_info"), ("record_protection", "record_protection_info")] {
                let der = unhex(&chain["zone"][field]);
                let p = ShareProtection::parse(&der).unwrap();
                let im = &chain["intermediate"][layer];
                assert_eq!(digest_data(&p), unhex(&im["digest_data"]), "{} {layer}", chain["name"]);
                let hmac_data = [p.keyset_raw, p.meta, p.object_signature_raw].concat();
                assert_eq!(hmac_data, unhex(&im["hmac_data"]), "{} {layer}", chain["name"]);
                assert_eq!(p.object_signature_raw, unhex(&im["object_signature_der"]).as_slice());
                assert_eq!(p.version, im["version"].as_u64().unwrap() as u32);
            }
        }
    }

    /// rustpush's outcome for a keychain item whose x is right and d wrong (a key this crate
    /// refuses to load): the entry is found and the key unwrap fails.
    #[test]
    fn claimed_x_with_wrong_scalar_fails_key_unwrap() {
        let v = fixtures();
        let case = v["negative"].as_array().unwrap().iter().find(|c| c["name"] == "service-key-wrong-scalar").unwrap();
        let v_data = unhex(&case["input"]["service_v_Data"]);
        assert!(matches!(EcKey::parse_keychain_der(&v_data), Err(ProtectionFailure::PrivateKeyMismatch { .. })));
        let chain = v["chains"].as_array().unwrap().iter().find(|c| c["name"] == case["chain"]).unwrap();
        let x: [u8; 32] = unhex(&chain["service"]["public_x"]).try_into().unwrap();
        let mut compact = vec![0u8; 32];
        compact.extend(unhex(&case["input"]["service_private_scalar"]));
        let wrong = {
            let (_, p) = public_of_scalar(compact[32..].try_into().unwrap()).unwrap();
            compact[..32].copy_from_slice(&p.x());
            EcKey::parse_compact_private(&compact).unwrap().with_claimed_x(x)
        };
        let r = open_protection(&unhex(&case["input"]["protection_info"]), &[wrong]);
        assert_eq!(r.unwrap_err(), ProtectionFailure::KeyUnwrap);
    }

    #[test]
    fn corrupted_wrapped_key_is_a_key_unwrap_failure() {
        let v = fixtures();
        let chain = &v["chains"][0];
        let service = EcKey::parse_keychain_der(&unhex(&chain["service"]["pcs_private_key_der"])).unwrap();
        let mut der = unhex(&chain["zone"]["protection_info"]);
        let wrapped = unhex(&chain["intermediate"]["zone_protection"]["keyset_entries"][0]["aes_kw_output"]);
        let at = der.windows(wrapped.len()).position(|w| w == wrapped.as_slice()).unwrap();
        der[at + 5] ^= 0x40;
        assert_eq!(open_protection(&der, &[service]).unwrap_err(), ProtectionFailure::KeyUnwrap);
    }
}
