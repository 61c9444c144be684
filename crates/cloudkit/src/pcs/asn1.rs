//! The DER shapes of Apple's PCS objects, read with the `der` crate.
//!
//! Why hand-written `DecodeValue` impls and not derives: the `der` derive macros are not
//! available here, and several fields need their *raw* bytes besides their value (the keyset and
//! the object signature are hashed and MACed exactly as encoded, the identity keyset is hashed
//! without its own hash field). Every struct borrows from the input; nothing is copied.
//!
//! The reader is strict DER, on purpose (see the module docs of [`super::protection`]): minimal
//! lengths and INTEGERs (enforced by `der`), EXPLICIT tags constructed, SET OF elements in DER
//! order, no data after a value or inside a SEQUENCE beyond its fields. For canonical input this
//! makes "the bytes as read" equal to "the canonical re-encoding" that rustpush signs and MACs.

use std::cmp::Ordering;

use der::asn1::{AnyRef, OctetStringRef, Utf8StringRef};
use der::{Decode, DecodeValue, FixedTag, Header, Reader, SliceReader, Tag, TagNumber};

/// `[APPLICATION 1]`, the outer tag of PCSShareProtection and PCSPublicKey.
const APPLICATION_1: Tag = Tag::Application { constructed: true, number: TagNumber::N1 };
/// `[APPLICATION 2]`, the outer tag of PCSShareProtectionKeySet.
const APPLICATION_2: Tag = Tag::Application { constructed: true, number: TagNumber::N2 };
/// `[APPLICATION 5]`, PCSPrivateKey V2.
const APPLICATION_5: Tag = Tag::Application { constructed: true, number: TagNumber::N5 };

/// Reads an `[n] EXPLICIT` field if it comes next and returns the one TLV inside it.
fn explicit<'a, R: Reader<'a>>(r: &mut R, number: TagNumber) -> der::Result<Option<&'a [u8]>> {
    let Some(byte) = r.peek_byte() else {
        return Ok(None);
    };
    let tag = Tag::try_from(byte)?;
    match tag {
        Tag::ContextSpecific { number: n, constructed } if n == number => {
            if !constructed {
                return Err(tag.non_canonical_error());
            }
            let header = Header::decode(r)?;
            r.read_nested(header.length, |inner| inner.tlv_bytes()).map(Some)
        }
        _ => Ok(None),
    }
}

/// Like [`explicit`], for a field that must be present.
fn required_explicit<'a, R: Reader<'a>>(r: &mut R, number: TagNumber) -> der::Result<&'a [u8]> {
    match explicit(r, number)? {
        Some(inner) => Ok(inner),
        None => {
            let expected = Tag::ContextSpecific { constructed: true, number };
            Err(match r.peek_tag() {
                Ok(actual) => actual.unexpected_error(Some(expected)),
                Err(e) => e,
            })
        }
    }
}

/// X.690 11.6: SET OF components in ascending order of their encodings, compared as octet
/// strings with the shorter one padded with trailing zeros.
fn der_set_order(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n).map(|i| (a.get(i).copied().unwrap_or(0), b.get(i).copied().unwrap_or(0))).find(|(x, y)| x != y).map_or(Ordering::Equal, |(x, y)| x.cmp(&y))
}

/// Decodes one whole TLV `tlv` as a `SET OF T` (elements kept in their DER order).
pub(crate) fn set_of<'a, T: Decode<'a>>(tlv: &'a [u8]) -> der::Result<Vec<T>> {
    let mut r = SliceReader::new(tlv)?;
    let header = Header::decode(&mut r)?;
    header.tag.assert_eq(Tag::Set)?;
    let items = r.read_nested(header.length, |inner| {
        let mut out = Vec::new();
        let mut prev: Option<&'a [u8]> = None;
        while !inner.is_finished() {
            let raw = inner.tlv_bytes()?;
            if prev.is_some_and(|p| der_set_order(p, raw) == Ordering::Greater) {
                return Err(Tag::Set.non_canonical_error());
            }
            out.push(T::from_der(raw)?);
            prev = Some(raw);
        }
        Ok(out)
    })?;
    r.finish(items)
}

/// Decodes one whole TLV `tlv` as a `SEQUENCE OF T`.
pub(crate) fn sequence_of<'a, T: Decode<'a>>(tlv: &'a [u8]) -> der::Result<Vec<T>> {
    let mut r = SliceReader::new(tlv)?;
    let items = r.sequence(|inner| {
        let mut out = Vec::new();
        while !inner.is_finished() {
            out.push(inner.decode()?);
        }
        Ok(out)
    })?;
    r.finish(items)
}

fn octets<'a, R: Reader<'a>>(r: &mut R) -> der::Result<&'a [u8]> {
    Ok(OctetStringRef::decode(r)?.as_bytes())
}

macro_rules! sequence {
    ($ty:ident, |$r:ident| $body:expr) => {
        impl<'a> FixedTag for $ty<'a> {
            const TAG: Tag = Tag::Sequence;
        }
        impl<'a> DecodeValue<'a> for $ty<'a> {
            fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
                reader.read_nested(header.length, |$r| $body)
            }
        }
    };
}

/// `PCSKeyRef ::= SEQUENCE { keytype INTEGER, pub_key OCTET STRING }` (3 = compact x,
/// 1 = uncompressed point).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub keytype: u32,
    pub pub_key: &'a [u8],
}
sequence!(KeyRef, |r| Ok(KeyRef { keytype: r.decode()?, pub_key: octets(r)? }));

/// `PCSSignature ::= SEQUENCE { keyid OCTET STRING, digest INTEGER, signature OCTET STRING }`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signature<'a> {
    pub keyid: &'a [u8],
    pub digest: u32,
    pub signature: &'a [u8],
}
sequence!(Signature, |r| Ok(Signature { keyid: octets(r)?, digest: r.decode()?, signature: octets(r)? }));

/// `PCSAttribute ::= SEQUENCE { key INTEGER, value OCTET STRING }`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attribute<'a> {
    pub key: u32,
    pub value: &'a [u8],
}
sequence!(Attribute, |r| Ok(Attribute { key: r.decode()?, value: octets(r)? }));

/// `PCSShareKey ::= SEQUENCE { decryption_key PCSKeyRef, ciphertext OCTET STRING, flags INTEGER OPTIONAL }`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShareKey<'a> {
    pub decryption_key: KeyRef<'a>,
    pub ciphertext: &'a [u8],
    pub flags: Option<u32>,
}
sequence!(ShareKey, |r| Ok(ShareKey { decryption_key: r.decode()?, ciphertext: octets(r)?, flags: r.decode()? }));

/// `PCSKeySet ::= SEQUENCE { INTEGER, SET OF PCSShareKey, [0] EXPLICIT SEQUENCE OF PCSAttribute OPTIONAL }`.
#[derive(Debug)]
pub(crate) struct KeySet<'a> {
    pub entries: Vec<ShareKey<'a>>,
}
sequence!(KeySet, |r| {
    let _unk: u32 = r.decode()?;
    let entries = set_of(r.tlv_bytes()?)?;
    if let Some(attrs) = explicit(r, TagNumber::N0)? {
        sequence_of::<Attribute>(attrs)?;
    }
    Ok(KeySet { entries })
});

/// `signature_data ::= SEQUENCE { version INTEGER, data OCTET STRING }`.
struct SignatureData<'a> {
    version: u32,
    data: &'a [u8],
}
sequence!(SignatureData, |r| Ok(SignatureData { version: r.decode()?, data: octets(r)? }));

/// `PCSObjectSignature` (inside `signature_data.data`), with the raw bare SEQUENCE OF of its
/// `[2]` and `[3]` fields, which the signed digest includes as encoded.
#[derive(Debug)]
pub(crate) struct ObjectSignature<'a> {
    pub roll_count: u32,
    pub outer_sign_key_type: u32,
    pub public: KeyRef<'a>,
    pub signature: Signature<'a>,
    pub symm_key_count: Option<u32>,
    pub signature_2: Option<Signature<'a>>,
    pub ec_key_list_raw: Option<&'a [u8]>,
    pub attributes_raw: Option<&'a [u8]>,
}
sequence!(ObjectSignature, |r| {
    let roll_count = r.decode()?;
    let outer_sign_key_type = r.decode()?;
    let public = r.decode()?;
    let signature = r.decode()?;
    let symm_key_count = explicit(r, TagNumber::N0)?.map(u32::from_der).transpose()?;
    let signature_2 = explicit(r, TagNumber::N1)?.map(Signature::from_der).transpose()?;
    let ec_key_list_raw = explicit(r, TagNumber::N2)?;
    if let Some(list) = ec_key_list_raw {
        sequence_of::<KeyRef>(list)?;
    }
    let attributes_raw = explicit(r, TagNumber::N3)?;
    if let Some(attrs) = attributes_raw {
        sequence_of::<Attribute>(attrs)?;
    }
    Ok(ObjectSignature { roll_count, outer_sign_key_type, public, signature, symm_key_count, signature_2, ec_key_list_raw, attributes_raw })
});

/// `PCSShareProtection ::= [APPLICATION 1] EXPLICIT SEQUENCE { … }` with the raw bytes the
/// digest and the HMAC need.
#[derive(Debug)]
pub(crate) struct ShareProtection<'a> {
    pub keyset_raw: &'a [u8],
    pub keyset: KeySet<'a>,
    pub meta: &'a [u8],
    pub version: u32,
    /// `signature_data.data`: DER of the PCSObjectSignature.
    pub object_signature_raw: &'a [u8],
    pub object_signature: ObjectSignature<'a>,
    pub hmac: &'a [u8],
    pub truncated_key_id: &'a [u8],
    pub signature: Option<Signature<'a>>,
    pub attributes: Vec<Attribute<'a>>,
}

impl<'a> ShareProtection<'a> {
    pub fn parse(der: &'a [u8]) -> der::Result<Self> {
        let mut r = SliceReader::new(der)?;
        let header = Header::decode(&mut r)?;
        header.tag.assert_eq(APPLICATION_1)?;
        let protection = r.read_nested(header.length, |outer| {
            outer.sequence(|r| {
                let keyset_raw = r.tlv_bytes()?;
                let keyset = KeySet::from_der(keyset_raw)?;
                let meta = OctetStringRef::from_der(required_explicit(r, TagNumber::N0)?)?.as_bytes();
                let signature_data = SignatureData::from_der(required_explicit(r, TagNumber::N1)?)?;
                let object_signature = ObjectSignature::from_der(signature_data.data)?;
                let hmac = octets(r)?;
                let truncated_key_id = OctetStringRef::from_der(required_explicit(r, TagNumber::N2)?)?.as_bytes();
                let signature = explicit(r, TagNumber::N3)?.map(Signature::from_der).transpose()?;
                let attributes = explicit(r, TagNumber::N4)?.map(sequence_of::<Attribute>).transpose()?.unwrap_or_default();
                Ok(ShareProtection {
                    keyset_raw,
                    keyset,
                    meta,
                    version: signature_data.version,
                    object_signature_raw: signature_data.data,
                    object_signature,
                    hmac,
                    truncated_key_id,
                    signature,
                    attributes,
                })
            })
        })?;
        r.finish(protection)
    }
}

/// `PCSShareProtectionIdentities`, the plaintext of `meta`: the symmetric keys and the DER of
/// each identity keyset.
#[derive(Debug)]
pub(crate) struct Identities<'a> {
    pub symm_keys: Vec<&'a [u8]>,
    pub identity_keysets: Vec<&'a [u8]>,
}
sequence!(Identities, |r| {
    let symm_keys = match explicit(r, TagNumber::N0)? {
        Some(set) => set_of::<OctetStringRef>(set)?.into_iter().map(|o| o.as_bytes()).collect(),
        None => Vec::new(),
    };
    let tag1 = required_explicit(r, TagNumber::N1)?;
    SliceReader::new(tag1)?.sequence(|t| {
        let _unk1: u32 = t.decode()?;
        octets(t).map(|_| ())
    })?;
    let identity_keysets = match explicit(r, TagNumber::N2)? {
        Some(set) => set_of::<IdentityData>(set)?.into_iter().map(|i| i.keyset).collect(),
        None => Vec::new(),
    };
    Ok(Identities { symm_keys, identity_keysets })
});

/// `SEQUENCE { INTEGER, OCTET STRING (DER PCSShareProtectionKeySet) }`.
struct IdentityData<'a> {
    keyset: &'a [u8],
}
sequence!(IdentityData, |r| {
    let _unk1: u32 = r.decode()?;
    Ok(IdentityData { keyset: octets(r)? })
});

/// `PCSShareProtectionKeySet ::= [APPLICATION 2] EXPLICIT SEQUENCE { UTF8String, SET OF
/// PCSPrivateKey, SET OF ANY, hash OCTET STRING OPTIONAL }` with the DER of the same value
/// without `hash`, over which `hash` is the SHA-256.
pub(crate) struct ProtectionKeySet<'a> {
    pub keys: Vec<PrivateKeyDer<'a>>,
    pub hash: Option<&'a [u8]>,
    pub der_without_hash: Vec<u8>,
}

impl<'a> ProtectionKeySet<'a> {
    pub fn parse(der: &'a [u8]) -> der::Result<Self> {
        let mut r = SliceReader::new(der)?;
        let header = Header::decode(&mut r)?;
        header.tag.assert_eq(APPLICATION_2)?;
        let (name_raw, keys_raw, others_raw, hash) = r.read_nested(header.length, |outer| {
            outer.sequence(|r| {
                let name_raw = r.tlv_bytes()?;
                Utf8StringRef::from_der(name_raw)?;
                let keys_raw = r.tlv_bytes()?;
                let others_raw = r.tlv_bytes()?;
                let hash: Option<OctetStringRef<'a>> = r.decode()?;
                Ok((name_raw, keys_raw, others_raw, hash.map(|h| h.as_bytes())))
            })
        })?;
        r.finish(())?;
        let keys = set_of::<PrivateKeyDer>(keys_raw)?;
        set_of::<AnyRef>(others_raw)?;
        let body_len = name_raw.len() + keys_raw.len() + others_raw.len();
        let mut der_without_hash = Vec::with_capacity(body_len + 8);
        let sequence = Header::new(Tag::Sequence, body_len)?;
        let sequence_len = der::Encode::encoded_len(&sequence)?;
        let outer = Header::new(APPLICATION_2, (sequence_len + der::Length::try_from(body_len)?)?)?;
        der::Encode::encode_to_vec(&outer, &mut der_without_hash)?;
        der::Encode::encode_to_vec(&sequence, &mut der_without_hash)?;
        der_without_hash.extend_from_slice(name_raw);
        der_without_hash.extend_from_slice(keys_raw);
        der_without_hash.extend_from_slice(others_raw);
        Ok(ProtectionKeySet { keys, hash, der_without_hash })
    }
}

/// `PCSPrivateKey ::= CHOICE { V1 SEQUENCE { key OCTET STRING (x‖d), public PCSPublicKey
/// OPTIONAL }, V2 [APPLICATION 5] … }`. Only V1 is read (Messages3 keys are V1).
#[derive(Debug)]
pub(crate) enum PrivateKeyDer<'a> {
    V1 { key: &'a [u8], public: Option<PublicKeyDer<'a>> },
    V2,
}

impl<'a> Decode<'a> for PrivateKeyDer<'a> {
    fn decode<R: Reader<'a>>(r: &mut R) -> der::Result<Self> {
        let header = Header::decode(r)?;
        match header.tag {
            Tag::Sequence => r.read_nested(header.length, |r| {
                let key = octets(r)?;
                let public = if r.is_finished() { None } else { Some(PublicKeyDer::from_der(r.tlv_bytes()?)?) };
                Ok(PrivateKeyDer::V1 { key, public })
            }),
            APPLICATION_5 => {
                r.read_slice(header.length)?;
                Ok(PrivateKeyDer::V2)
            }
            other => Err(other.unexpected_error(Some(Tag::Sequence))),
        }
    }
}

/// `PCSPublicKey ::= [APPLICATION 1] EXPLICIT SEQUENCE { pcsservice INTEGER, unk1 INTEGER,
/// pub_key OCTET STRING, [0] attributes OPTIONAL, [1] signature OPTIONAL }`.
#[derive(Debug)]
pub(crate) struct PublicKeyDer<'a> {
    pub pub_key: &'a [u8],
    /// The TLVs of the fields before `[1]` (pcsservice, unk1, pub_key, `[0]` if present), as
    /// read: re-wrapped in their SEQUENCE and `[APPLICATION 1]`, they are the signed bytes.
    pub unsigned_fields: Vec<&'a [u8]>,
    pub signature: Option<Signature<'a>>,
}

impl<'a> PublicKeyDer<'a> {
    fn from_der(der: &'a [u8]) -> der::Result<Self> {
        let mut r = SliceReader::new(der)?;
        let header = Header::decode(&mut r)?;
        header.tag.assert_eq(APPLICATION_1)?;
        let public = r.read_nested(header.length, |outer| {
            outer.sequence(|r| {
                let service = r.tlv_bytes()?;
                let _service = i64::from_der(service)?;
                let unk1 = r.tlv_bytes()?;
                let _unk1 = u64::from_der(unk1)?;
                let key = r.tlv_bytes()?;
                let pub_key = OctetStringRef::from_der(key)?.as_bytes();
                let mut unsigned_fields = vec![service, unk1, key];
                let attributes_tag = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };
                if r.peek_tag().ok() == Some(attributes_tag) {
                    let raw = r.tlv_bytes()?;
                    let mut inner = SliceReader::new(raw)?;
                    let attrs = required_explicit(&mut inner, TagNumber::N0)?;
                    inner.finish(())?;
                    sequence_of::<Attribute>(attrs)?;
                    unsigned_fields.push(raw);
                }
                let signature = explicit(r, TagNumber::N1)?.map(Signature::from_der).transpose()?;
                Ok(PublicKeyDer { pub_key, unsigned_fields, signature })
            })
        })?;
        r.finish(public)
    }

    /// DER of this `PCSPublicKey` without its `[1]` signature: what the signature is over.
    pub fn signed_bytes(&self) -> der::Result<Vec<u8>> {
        use der::Encode;
        let body: Vec<u8> = self.unsigned_fields.concat();
        let sequence = Header::new(Tag::Sequence, der::Length::try_from(body.len())?)?;
        let mut sequence_der = sequence.to_der()?;
        sequence_der.extend_from_slice(&body);
        let outer = Header::new(APPLICATION_1, der::Length::try_from(sequence_der.len())?)?;
        let mut out = outer.to_der()?;
        out.extend_from_slice(&sequence_der);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_order_is_x690() {
        assert_eq!(der_set_order(&[1, 2], &[1, 2, 0]), Ordering::Equal);
        assert_eq!(der_set_order(&[1, 2], &[1, 3]), Ordering::Less);
        assert_eq!(der_set_order(&[0x30, 0x7f], &[0x30, 0x7c, 0xff]), Ordering::Greater);
    }

    #[test]
    fn unsorted_set_and_primitive_explicit_tag_are_refused() {
        // SET { OCTET STRING 02, OCTET STRING 01 }
        assert!(set_of::<OctetStringRef>(&[0x31, 6, 4, 1, 2, 4, 1, 1]).is_err());
        assert_eq!(set_of::<OctetStringRef>(&[0x31, 6, 4, 1, 1, 4, 1, 2]).unwrap().len(), 2);
        // [0] primitive around an INTEGER
        let mut r = SliceReader::new(&[0x80, 3, 2, 1, 5]).unwrap();
        assert!(explicit(&mut r, TagNumber::N0).is_err());
        let mut r = SliceReader::new(&[0xa0, 3, 2, 1, 5]).unwrap();
        assert_eq!(explicit(&mut r, TagNumber::N0).unwrap(), Some(&[2u8, 1, 5][..]));
    }
}
