//! The DER productions of a `PCSShareProtection`, encode side only.
//!
//! The simulator only ever writes these structures, so they are plain owned structs with
//! hand-written `der` encoders (the `der` derive feature is not enabled in this workspace): each
//! SEQUENCE lists its fields once in [`sequence!`], EXPLICIT tags use `der`'s
//! [`ContextSpecificRef`] or [`Application`], and every SET OF is a [`SetOfVec`] of the
//! elements' encodings ([`set_of`]), which `der` keeps in DER order (sorted by encoding).

use der::asn1::{Any, ContextSpecificRef, OctetStringRef, SetOfVec, Utf8StringRef};
use der::{Encode, EncodeValue, FixedTag, Length, Tag, TagMode, TagNumber, Tagged, Writer};

/// Implements `EncodeValue` + `FixedTag` (SEQUENCE) from the list of field encoders.
macro_rules! sequence {
    ($ty:ty, $s:ident => [$($field:expr),* $(,)?]) => {
        impl EncodeValue for $ty {
            fn value_len(&self) -> der::Result<Length> {
                let $s = self;
                let len = Length::ZERO;
                $( let len = (len + ($field).encoded_len()?)?; )*
                Ok(len)
            }
            fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
                let $s = self;
                $( ($field).encode(writer)?; )*
                Ok(())
            }
        }
        impl FixedTag for $ty {
            const TAG: Tag = Tag::Sequence;
        }
    };
}

/// A DER SET OF the given elements. `SetOfVec` encodes only elements it can also decode, so
/// the elements go in as their encodings ([`Any`]); its `DerOrd` (header, then value bytes)
/// is the X.690 order of the encodings.
pub(crate) fn set_of<T: EncodeValue + Tagged>(items: impl IntoIterator<Item = T>) -> der::Result<SetOfVec<Any>> {
    let encoded = items.into_iter().map(|item| Any::encode_from(&item));
    SetOfVec::try_from(encoded.collect::<der::Result<Vec<_>>>()?)
}

fn octets(bytes: &[u8]) -> der::Result<OctetStringRef<'_>> {
    OctetStringRef::new(bytes)
}

/// `[n] EXPLICIT value`.
pub(crate) fn explicit<T>(number: TagNumber, value: &T) -> ContextSpecificRef<'_, T> {
    ContextSpecificRef { tag_number: number, tag_mode: TagMode::Explicit, value }
}

/// `[APPLICATION n] EXPLICIT value`.
pub(crate) struct Application<'a, T> {
    pub number: TagNumber,
    pub inner: &'a T,
}

impl<T: Encode> EncodeValue for Application<'_, T> {
    fn value_len(&self) -> der::Result<Length> {
        self.inner.encoded_len()
    }
    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.inner.encode(writer)
    }
}

impl<T> Tagged for Application<'_, T> {
    fn tag(&self) -> Tag {
        Tag::Application { constructed: true, number: self.number }
    }
}

/// `PCSKeyRef ::= SEQUENCE { keytype INTEGER, pub_key OCTET STRING }`.
pub(crate) struct KeyRef {
    /// 3 = compact x, 1 = uncompressed `04 || x || y`.
    pub keytype: u32,
    pub pub_key: Vec<u8>,
}
sequence!(KeyRef, s => [s.keytype, octets(&s.pub_key)?]);

/// `PCSShareKey ::= SEQUENCE { decryption_key PCSKeyRef, ciphertext OCTET STRING, flags INTEGER OPTIONAL }`.
pub(crate) struct ShareKey {
    pub decryption_key: KeyRef,
    pub ciphertext: Vec<u8>,
    pub flags: Option<u32>,
}
sequence!(ShareKey, s => [s.decryption_key, octets(&s.ciphertext)?, s.flags]);

/// `PCSKeySet ::= SEQUENCE { INTEGER 0, SET OF PCSShareKey }` (the optional `[0]` attributes are
/// never written).
pub(crate) struct KeySet {
    pub entries: SetOfVec<Any>,
}
sequence!(KeySet, s => [0u32, s.entries]);

/// `PCSSignature ::= SEQUENCE { keyid OCTET STRING, digest INTEGER (1 = SHA-256), signature OCTET STRING }`.
pub(crate) struct Signature {
    pub keyid: Vec<u8>,
    pub signature: Vec<u8>,
}
/// `PCSSignature.digest` for SHA-256.
const DIGEST_SHA256: u32 = 1;
sequence!(Signature, s => [octets(&s.keyid)?, DIGEST_SHA256, octets(&s.signature)?]);

/// `PCSAttribute ::= SEQUENCE { key INTEGER, value OCTET STRING }`.
pub(crate) struct Attribute {
    pub key: u32,
    pub value: Vec<u8>,
}
sequence!(Attribute, s => [s.key, octets(&s.value)?]);

/// `PCSObjectSignature`.
pub(crate) struct ObjectSignature {
    pub roll_count: u32,
    pub outer_sign_key_type: u32,
    pub public: KeyRef,
    pub signature: Signature,
    pub symm_key_count: Option<u32>,
    pub signature_2: Option<Signature>,
    pub ec_key_list: Option<Vec<KeyRef>>,
    pub attributes: Option<Vec<Attribute>>,
}
sequence!(ObjectSignature, s => [
    s.roll_count,
    s.outer_sign_key_type,
    s.public,
    s.signature,
    s.symm_key_count.as_ref().map(|v| explicit(TagNumber::N0, v)),
    s.signature_2.as_ref().map(|v| explicit(TagNumber::N1, v)),
    s.ec_key_list.as_ref().map(|v| explicit(TagNumber::N2, v)),
    s.attributes.as_ref().map(|v| explicit(TagNumber::N3, v)),
]);

/// `signature_data ::= SEQUENCE { version INTEGER, data OCTET STRING (DER PCSObjectSignature) }`.
pub(crate) struct SignatureData {
    pub version: u32,
    pub data: Vec<u8>,
}
sequence!(SignatureData, s => [s.version, octets(&s.data)?]);

/// The SEQUENCE inside `PCSShareProtection ::= [APPLICATION 1] EXPLICIT SEQUENCE {..}`.
pub(crate) struct ShareProtectionBody {
    pub keyset: KeySet,
    pub meta: Vec<u8>,
    pub signature_data: SignatureData,
    pub hmac: [u8; 32],
    pub truncated_key_id: [u8; 4],
    pub signature: Option<Signature>,
}
sequence!(ShareProtectionBody, s => [
    s.keyset,
    explicit(TagNumber::N0, &octets(&s.meta)?),
    explicit(TagNumber::N1, &s.signature_data),
    octets(&s.hmac)?,
    explicit(TagNumber::N2, &octets(&s.truncated_key_id)?),
    s.signature.as_ref().map(|v| explicit(TagNumber::N3, v)),
]);

/// DER of a whole `PCSShareProtection`.
pub(crate) fn share_protection_der(body: &ShareProtectionBody) -> der::Result<Vec<u8>> {
    Application { number: TagNumber::N1, inner: body }.to_der()
}

/// `SEQUENCE { INTEGER 0, OCTET STRING '' }` (`tag1` of the identities).
struct Tag1;
sequence!(Tag1, _s => [0u32, octets(&[])?]);

/// One handed-out identity: `SEQUENCE { INTEGER 0, OCTET STRING (DER PCSShareProtectionKeySet) }`.
pub(crate) struct Identity {
    pub keyset_der: Vec<u8>,
}
sequence!(Identity, s => [0u32, octets(&s.keyset_der)?]);

/// `PCSShareProtectionIdentities`, the plaintext of `meta`.
pub(crate) struct Identities {
    pub symm_keys: Option<SetOfVec<Any>>,
    pub identities: Option<SetOfVec<Any>>,
}
sequence!(Identities, s => [
    s.symm_keys.as_ref().map(|v| explicit(TagNumber::N0, v)),
    explicit(TagNumber::N1, &Tag1),
    s.identities.as_ref().map(|v| explicit(TagNumber::N2, v)),
]);

/// `PCSPublicKey`'s SEQUENCE `{ pcsservice, unk1, pub_key, [0] attributes OPTIONAL, [1] signature
/// OPTIONAL }`; written inside `[APPLICATION 1] EXPLICIT`. Without `signature`, its DER is what
/// the signature is over.
pub(crate) struct PublicKey {
    pub service: u32,
    pub unk1: u32,
    pub pub_key: [u8; 32],
    pub attributes: Option<Vec<Attribute>>,
    pub signature: Option<Signature>,
}
sequence!(PublicKey, s => [
    s.service,
    s.unk1,
    octets(&s.pub_key)?,
    s.attributes.as_ref().map(|v| explicit(TagNumber::N0, v)),
    s.signature.as_ref().map(|v| explicit(TagNumber::N1, v)),
]);

/// DER of a whole `PCSPublicKey`.
pub(crate) fn public_key_der(key: &PublicKey) -> der::Result<Vec<u8>> {
    Application { number: TagNumber::N1, inner: key }.to_der()
}

/// Service-key attribute 3: `SEQUENCE { INTEGER flags }`.
pub(crate) struct ManateeFlags {
    pub flags: u32,
}
sequence!(ManateeFlags, s => [s.flags]);

/// Service-key attribute 1: `SEQUENCE { [0] EXPLICIT UTF8String '<os>;<build>', [1] EXPLICIT
/// GeneralizedTime }`.
pub(crate) struct BuildAndTime<'a> {
    pub build: &'a str,
    pub time: der::asn1::GeneralizedTime,
}
sequence!(BuildAndTime<'_>, s => [
    explicit(TagNumber::N0, &Utf8StringRef::new(s.build)?),
    explicit(TagNumber::N1, &s.time),
]);

/// `PCSPrivateKey` V1: `SEQUENCE { key OCTET STRING (x || d), public PCSPublicKey OPTIONAL }`.
pub(crate) struct PrivateKeyV1 {
    pub key: Vec<u8>,
    pub public: Option<PublicKey>,
}
sequence!(PrivateKeyV1, s => [
    octets(&s.key)?,
    s.public.as_ref().map(|p| Application { number: TagNumber::N1, inner: p }),
]);

/// The SEQUENCE inside `PCSShareProtectionKeySet ::= [APPLICATION 2] EXPLICIT SEQUENCE {..}`.
pub(crate) struct ProtectionKeySetBody {
    pub keys: SetOfVec<Any>,
    pub hash: Option<[u8; 32]>,
}
sequence!(ProtectionKeySetBody, s => [
    Utf8StringRef::new("")?,
    s.keys,
    SetOfVec::<Any>::new(),
    s.hash.as_ref().map(|h| octets(h)).transpose()?,
]);

/// DER of a whole `PCSShareProtectionKeySet`.
pub(crate) fn protection_key_set_der(body: &ProtectionKeySetBody) -> der::Result<Vec<u8>> {
    Application { number: TagNumber::N2, inner: body }.to_der()
}
