//! Creating a `PCSShareProtection`: the DER blob that hands a zone's EC keys to the service
//! identity (`zone.protectionInfo`) or a zone's record keys to its EC key
//! (`zone.recordProtectionInfo`, or a record's own `protectionInfo`).
//!
//! One general [`ProtectionSpec`] covers every shape the keychain vectors contain (plain
//! version 5, share version 4 with readonly access entries, symm keys after a key roll,
//! handed-out identities, `signature_2` by the previous object key); [`zone_protection`] and
//! [`record_protection`] are the two shapes the simulator makes all the time. Randomness comes in
//! through [`Randomness`] so a seeded RNG drives it in the simulator and tests can replay a
//! vector's intermediate values; ECDSA nonces are RFC 6979, so equal inputs give equal bytes.

use der::asn1::OctetString;
use der::Encode;
use hmac::{Hmac, Mac};
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{FieldBytes, NonZeroScalar, ProjectivePoint, Scalar, U256};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::asn1::{
    protection_key_set_der, set_of, share_protection_der, Attribute, Identities, Identity, KeyRef, KeySet, ObjectSignature, PrivateKeyV1, ProtectionKeySetBody,
    ShareKey, ShareProtectionBody, Signature, SignatureData,
};
use super::ec::{sign_with, wrap_to, SimEcKey};
use super::field::{kdf, RecordKey, LABEL_HMAC_KEY, LABEL_SHARE_KEY};
use super::{PcsError, Randomness};

/// `signature_data.version` of a plain protection.
pub const VERSION_PLAIN: u32 = 5;
/// `signature_data.version` of a share.
pub const VERSION_SHARE: u32 = 4;
/// `PCSKeyRef.keytype` of a compact x.
const KEYTYPE_COMPACT: u32 = 3;
/// `PCSKeyRef.keytype` of an uncompressed point.
const KEYTYPE_UNCOMPRESSED: u32 = 1;
/// `outer_sign_key_type` when the outer signature `[3]` is present (always, here).
const OUTER_SIGN_KEY_TYPE: u32 = 3;
/// `PCSShareKey.flags` of a readonly share entry.
const FLAG_READONLY: u32 = 1;
/// `PCSAttribute.key` listing the symm keys' short ids.
const ATTRIBUTE_SYMM_KEY_IDS: u32 = 5;
const OBJECT_KEY_SALT: &[u8] = b"full master key";
const OBJECT_KEY_ROUNDS: u32 = 10;

/// A created protection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// DER of the `PCSShareProtection`.
    pub der: Vec<u8>,
    /// `protectionInfoTag`: uppercase hex SHA-1 of `der`.
    pub tag: String,
    /// The random key wrapped to the creator; keep it to sign `signature_2` at the next roll.
    pub rm_master_key: [u8; 16],
    /// The key an opener gets first (equal to `rm_master_key` unless this is a share).
    pub master_key: [u8; 16],
}

/// What a key roll carries over from the protection being replaced.
#[derive(Clone, Copy, Debug)]
pub struct Previous {
    /// `rm_master_key` of the replaced protection: its object key signs `signature_2`.
    pub rm_master_key: [u8; 16],
    /// Roll count written into the NEW protection (rustpush's zone roll writes the old count
    /// plus one; its record protection after the first roll writes 3: the caller decides).
    pub roll_count: u32,
}

/// Everything a `PCSShareProtection` is made from, apart from randomness.
#[derive(Clone, Copy, Debug)]
pub struct ProtectionSpec<'a> {
    /// "me": gets `rm_master_key` wrapped to its x and makes the outer signature `[3]`.
    pub creator: &'a SimEcKey,
    /// The random 16-byte key of this protection.
    pub rm_master_key: [u8; 16],
    /// Older PCS keys an opener also gets (after a key roll): in `meta` (a SET OF, so sorted)
    /// and, by short id in this order, in attribute 5 of the object signature.
    pub symm_keys: &'a [RecordKey],
    /// EC keys handed out inside `meta` (the zone keys, for a zone protection).
    pub handed_out: &'a [SimEcKey],
    /// Further compact public keys that get `master_key` wrapped (readonly if `share`).
    pub access_keys: &'a [[u8; 32]],
    /// Version 4 (share): `master_key = KDF(rm_master_key, share label)`.
    pub share: bool,
    pub roll_count: u32,
    /// `rm_master_key` of the replaced protection, for `signature_2`.
    pub previous_rm_master_key: Option<[u8; 16]>,
}

impl<'a> ProtectionSpec<'a> {
    /// A plain, fresh protection (roll count 1) with nothing but the creator's entry.
    pub fn new(creator: &'a SimEcKey, rm_master_key: [u8; 16]) -> Self {
        ProtectionSpec { creator, rm_master_key, symm_keys: &[], handed_out: &[], access_keys: &[], share: false, roll_count: 1, previous_rm_master_key: None }
    }

    /// Builds the DER. Ephemeral keys are drawn in entry order (creator first, then
    /// `access_keys`), then the `meta` IV.
    pub fn create(&self, rnd: &mut impl Randomness) -> Result<Protection, PcsError> {
        let rm = self.rm_master_key;
        let (version, master) = if self.share { (VERSION_SHARE, kdf(&rm, LABEL_SHARE_KEY)) } else { (VERSION_PLAIN, rm) };
        let master_key = RecordKey::new(master);

        let creator_x = self.creator.public_x();
        let mut entries = vec![share_key(&creator_x, &rm, None, &rnd.ephemeral())?];
        let flags = self.share.then_some(FLAG_READONLY);
        for x in self.access_keys {
            entries.push(share_key(x, &master, flags, &rnd.ephemeral())?);
        }
        let keyset = KeySet { entries: set_of(entries)? };
        let keyset_der = keyset.to_der()?;

        let meta = master_key.encrypt(&self.meta_plaintext()?, b"", rnd.iv())?;

        let (own_object_key, object_public) = object_key(&rm)?;
        let ec_key_list = (!self.handed_out.is_empty()).then(|| {
            let refs = self.handed_out.iter();
            refs.map(|k| KeyRef { keytype: KEYTYPE_COMPACT, pub_key: k.public_x().to_vec() }).collect::<Vec<_>>()
        });
        let attributes = if self.symm_keys.is_empty() {
            None
        } else {
            let ids = self.symm_keys.iter().map(|k| OctetString::new(k.short_id().to_vec()));
            let ids = ids.collect::<Result<Vec<_>, _>>()?;
            Some(vec![Attribute { key: ATTRIBUTE_SYMM_KEY_IDS, value: ids.to_der()? }])
        };
        let symm_key_count = u32::try_from(self.symm_keys.len()).map_err(|_| PcsError::Malformed("too many symm keys"))?;

        let mut digest_data = Vec::with_capacity(keyset_der.len() + meta.len() + 200);
        digest_data.extend_from_slice(&keyset_der);
        digest_data.extend_from_slice(&meta);
        for n in [OUTER_SIGN_KEY_TYPE, self.roll_count, symm_key_count, KEYTYPE_UNCOMPRESSED] {
            digest_data.extend_from_slice(&n.to_be_bytes());
        }
        digest_data.extend_from_slice(&object_public);
        if let Some(attributes) = &attributes {
            digest_data.extend_from_slice(&attributes.to_der()?);
        }
        if let Some(list) = &ec_key_list {
            digest_data.extend_from_slice(&list.to_der()?);
        }

        let unnamed = |signature: Vec<u8>| Signature { keyid: Vec::new(), signature };
        let signature_2 = match &self.previous_rm_master_key {
            Some(previous) => Some(unnamed(sign_with(&object_key(previous)?.0, &digest_data))),
            None => None,
        };
        let object_signature = ObjectSignature {
            roll_count: self.roll_count,
            outer_sign_key_type: OUTER_SIGN_KEY_TYPE,
            public: KeyRef { keytype: KEYTYPE_UNCOMPRESSED, pub_key: object_public.to_vec() },
            signature: unnamed(sign_with(&own_object_key, &digest_data)),
            symm_key_count: (symm_key_count > 0).then_some(symm_key_count),
            signature_2,
            ec_key_list,
            attributes,
        };
        let object_signature_der = object_signature.to_der()?;

        let hmac_key = kdf(&master, LABEL_HMAC_KEY);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&hmac_key).map_err(|_| PcsError::Crypto("HMAC key"))?;
        mac.update(&keyset_der);
        mac.update(&meta);
        mac.update(&object_signature_der);
        let hmac: [u8; 32] = mac.finalize().into_bytes().into();

        let body = ShareProtectionBody {
            keyset,
            meta,
            signature_data: SignatureData { version, data: object_signature_der },
            hmac,
            truncated_key_id: master_key.short_id(),
            signature: Some(Signature { keyid: creator_x.to_vec(), signature: self.creator.sign(&digest_data) }),
        };
        let der = share_protection_der(&body)?;
        let tag = protection_info_tag(&der);
        Ok(Protection { der, tag, rm_master_key: rm, master_key: master })
    }

    /// DER of `PCSShareProtectionIdentities` (the plaintext of `meta`).
    fn meta_plaintext(&self) -> Result<Vec<u8>, PcsError> {
        let symm_keys = if self.symm_keys.is_empty() {
            None
        } else {
            let keys = self.symm_keys.iter().map(|k| OctetString::new(k.raw().to_vec()));
            Some(set_of(keys.collect::<Result<Vec<_>, _>>()?)?)
        };
        let identities = if self.handed_out.is_empty() {
            None
        } else {
            let keyset_der = handed_out_keyset_der(self.handed_out)?;
            Some(set_of([Identity { keyset_der }])?)
        };
        Ok(Identities { symm_keys, identities }.to_der()?)
    }
}

/// One keyset entry: `key` wrapped to the compact public key `x`.
fn share_key(x: &[u8; 32], key: &[u8; 16], flags: Option<u32>, ephemeral: &SimEcKey) -> Result<ShareKey, PcsError> {
    Ok(ShareKey { decryption_key: KeyRef { keytype: KEYTYPE_COMPACT, pub_key: x.to_vec() }, ciphertext: wrap_to(x, key, ephemeral)?.to_vec(), flags })
}

/// `PCSShareProtectionKeySet` carrying the given private keys (one identity holds them all),
/// with `hash` = SHA-256 of the same DER without `hash`.
fn handed_out_keyset_der(keys: &[SimEcKey]) -> Result<Vec<u8>, PcsError> {
    let keys = keys.iter().map(|k| PrivateKeyV1 { key: k.compact_private().to_vec(), public: None });
    let mut body = ProtectionKeySetBody { keys: set_of(keys)?, hash: None };
    let unhashed = protection_key_set_der(&body)?;
    body.hash = Some(Sha256::digest(&unhashed).into());
    Ok(protection_key_set_der(&body)?)
}

/// The object key of a protection: PBKDF2-HMAC-SHA256(rm_master_key, "full master key", 10
/// rounds, 128 bytes), bytes 0..32 read little-endian and reduced mod n; with its public point
/// (uncompressed, 65 bytes).
pub fn object_key(rm_master_key: &[u8; 16]) -> Result<(SigningKey, [u8; 65]), PcsError> {
    let mut stretched = [0u8; 128];
    pbkdf2::pbkdf2_hmac::<Sha256>(rm_master_key, OBJECT_KEY_SALT, OBJECT_KEY_ROUNDS, &mut stretched);
    let mut be = [0u8; 32];
    for (dst, src) in be.iter_mut().zip(stretched[..32].iter().rev()) {
        *dst = *src;
    }
    let scalar = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(be));
    let scalar: Option<NonZeroScalar> = NonZeroScalar::new(scalar).into();
    let scalar = scalar.ok_or(PcsError::InvalidScalar)?;
    let point = (ProjectivePoint::GENERATOR * *scalar).to_affine().to_encoded_point(false);
    let mut public = [0u8; 65];
    if point.as_bytes().len() != public.len() {
        return Err(PcsError::Crypto("object key point encoding"));
    }
    public.copy_from_slice(point.as_bytes());
    Ok((SigningKey::from(scalar), public))
}

/// `protectionInfoTag`: uppercase hex SHA-1 of the DER.
pub fn protection_info_tag(der: &[u8]) -> String {
    Sha1::digest(der).iter().map(|b| format!("{b:02X}")).collect()
}

/// `zone.protectionInfo`: the service identity is the creator, a fresh random `rm_master_key`
/// (the zone PCS key), and `zone_keys` handed out inside `meta` (all in one identity; an opener
/// that sorts them as DER does gets them in SET OF order, not in this slice's order).
pub fn zone_protection(service: &SimEcKey, zone_keys: &[SimEcKey], rnd: &mut impl Randomness) -> Result<Protection, PcsError> {
    let spec = ProtectionSpec { handed_out: zone_keys, ..ProtectionSpec::new(service, rnd.key16()) };
    spec.create(rnd)
}

/// `zone.recordProtectionInfo` or a record's own `protectionInfo`: created by the zone EC key,
/// `keys[0]` is the master key (the one new records use), `keys[1..]` go in as symm keys (older
/// keys after a key roll). `roll` signs `signature_2` and sets the roll count.
pub fn record_protection(zone_key: &SimEcKey, keys: &[RecordKey], roll: Option<&Previous>, rnd: &mut impl Randomness) -> Result<Protection, PcsError> {
    let (master, older) = keys.split_first().ok_or(PcsError::NoKeys)?;
    let spec = ProtectionSpec {
        symm_keys: older,
        roll_count: roll.map_or(1, |p| p.roll_count),
        previous_rm_master_key: roll.map(|p| p.rm_master_key),
        ..ProtectionSpec::new(zone_key, *master.raw())
    };
    spec.create(rnd)
}
