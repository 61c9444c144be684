//! The simulator's PCS creating side against the independent known-answer vectors in
//! `shared/fixtures/` (pcs-field-vectors.json, pcs-keychain-vectors.json): from the chains'
//! keys and recorded randomness, every protection must come out byte for byte as the vectors
//! have it, and every field must encrypt to the recorded ciphertext.

use std::collections::VecDeque;
use std::time::Instant;

use cloudkit_sim::pcs::{protection::object_key, record_protection, zone_protection, PcsError, Previous, ProtectionSpec, Randomness, RecordKey, SimEcKey};
use der::asn1::{AnyRef, OctetStringRef};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex length: {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex: {s}"))).collect()
}

fn hex_of(v: &Value) -> Vec<u8> {
    unhex(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}")))
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    let bytes = hex_of(v);
    bytes.clone().try_into().unwrap_or_else(|_| panic!("expected {N} bytes, got {}", bytes.len()))
}

fn ec_key(v: &Value) -> SimEcKey {
    SimEcKey::from_scalar(&arr(v)).expect("vector scalar is a compact key")
}

fn record_keys(list: &Value) -> Vec<RecordKey> {
    list.as_array().expect("record_keys").iter().map(|k| RecordKey::new(arr(&k["key"]))).collect()
}

/// Replays a vector's recorded random values; fails the test if the code draws more of a kind
/// than the vector recorded.
struct Recorded {
    keys: VecDeque<[u8; 16]>,
    ephemerals: VecDeque<SimEcKey>,
    ivs: VecDeque<[u8; 12]>,
}

impl Recorded {
    /// From one `intermediate.*_protection` object: its ephemeral keys in entry order, its meta
    /// IV, and (for a protection whose rm_master_key is random) its rm_master_key.
    fn from_intermediate(inter: &Value) -> Self {
        let entries = inter["keyset_entries"].as_array().expect("keyset_entries");
        Recorded {
            keys: VecDeque::from([arr(&inter["rm_master_key"])]),
            ephemerals: entries.iter().map(|e| ec_key(&e["ephemeral_private_scalar"])).collect(),
            ivs: VecDeque::from([arr(&inter["meta_iv"])]),
        }
    }
    fn assert_used_up(&self, what: &str) {
        assert!(self.ephemerals.is_empty(), "{what}: not all ephemeral keys were used");
        assert!(self.ivs.is_empty(), "{what}: meta IV not used");
    }
}

impl Randomness for Recorded {
    fn key16(&mut self) -> [u8; 16] {
        self.keys.pop_front().expect("drew more 16-byte keys than recorded")
    }
    fn ephemeral(&mut self) -> SimEcKey {
        self.ephemerals.pop_front().expect("drew more ephemeral keys than recorded")
    }
    fn iv(&mut self) -> [u8; 12] {
        self.ivs.pop_front().expect("drew more IVs than recorded")
    }
}

/// Byte equality with a useful message (first differing offset and context).
fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let ctx = |b: &[u8]| {
        let lo = at.saturating_sub(8);
        b[lo..(at + 16).min(b.len())].iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    panic!("{what}: {} bytes vs {} expected, first difference at {at}: got …{}…, want …{}…", got.len(), want.len(), ctx(got), ctx(want));
}

fn check_object_key(what: &str, inter: &Value) {
    let (signing, public) = object_key(&arr(&inter["rm_master_key"])).expect("object key");
    assert_eq!(signing.to_bytes().to_vec(), hex_of(&inter["object_key"]["private_scalar"]), "{what}: object key scalar");
    assert_eq!(public.to_vec(), hex_of(&inter["object_key"]["public_uncompressed"]), "{what}");
}

fn access_keys(inter: &Value) -> Vec<[u8; 32]> {
    let entries = inter["keyset_entries"].as_array().expect("keyset_entries");
    entries.iter().filter(|e| e["role"].as_str().is_some_and(|r| r.starts_with("access"))).map(|e| arr(&e["recipient_x"])).collect()
}

/// Rebuilds `zone.protection_info` of a chain.
fn rebuild_zone(chain: &Value) -> (Vec<u8>, String) {
    let name = chain["name"].as_str().unwrap_or("?");
    let inter = &chain["intermediate"]["zone_protection"];
    let expected = &chain["expected"];
    check_object_key(name, inter);
    let service = ec_key(&chain["service"]["private_scalar"]);
    let zone_keys: Vec<SimEcKey> = expected["zone_keys"].as_array().expect("zone_keys").iter().map(|k| ec_key(&k["private_scalar"])).collect();
    let mut rnd = Recorded::from_intermediate(inter);
    let access = access_keys(inter);
    let symm: Vec<RecordKey> = expected["zone_pcs_keys"].as_array().expect("zone_pcs_keys")[1..].iter().map(|k| RecordKey::new(arr(k))).collect();
    let plain = !inter["is_share"].as_bool().expect("is_share") && inter["signature_2_der"].is_null() && access.is_empty() && symm.is_empty();
    let protection = if plain {
        zone_protection(&service, &zone_keys, &mut rnd).expect("zone protection")
    } else {
        // The rolled zone: signature_2 by the previous zone protection's object key; that
        // protection was plain (version 5), so its rm_master_key is its first zone PCS key.
        let previous = arr(&chain["previous_expected"]["zone_pcs_keys"][0]);
        assert_eq!(chain["previous_expected"]["zone_protection_version"], 5);
        let spec = ProtectionSpec {
            symm_keys: &symm,
            handed_out: &zone_keys,
            access_keys: &access,
            share: inter["is_share"].as_bool().unwrap_or(false),
            roll_count: inter["roll_count"].as_u64().expect("roll_count") as u32,
            previous_rm_master_key: Some(previous),
            ..ProtectionSpec::new(&service, rnd.key16())
        };
        spec.create(&mut rnd).expect("rolled zone protection")
    };
    rnd.assert_used_up(name);
    assert_eq!(protection.rm_master_key, arr::<16>(&inter["rm_master_key"]), "{name}");
    assert_eq!(protection.master_key, arr::<16>(&inter["master_key"]), "{name}");
    (protection.der, protection.tag)
}

/// Rebuilds a record protection (`zone.record_protection_info` or a record's own) from the
/// zone key, the record keys (master first) and the recorded randomness.
fn rebuild_record_protection(zone_key: &SimEcKey, keys: &[RecordKey], inter: &Value, previous: Option<Previous>, what: &str) -> (Vec<u8>, String) {
    check_object_key(what, inter);
    assert_eq!(keys[0].raw(), &arr::<16>(&inter["rm_master_key"]), "{what}: master = first key");
    let mut rnd = Recorded::from_intermediate(inter);
    rnd.keys.clear(); // a record protection's rm_master_key is its first record key, not random
    let protection = record_protection(zone_key, keys, previous.as_ref(), &mut rnd).expect("record protection");
    rnd.assert_used_up(what);
    (protection.der, protection.tag)
}

#[test]
fn field_vectors_encrypt_decrypt_and_derive() {
    let vectors = fixture("pcs-field-vectors.json");
    let cases = vectors["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let key = RecordKey::new(arr(&case["raw_key"]));
        assert_eq!(key.key_id().to_vec(), hex_of(&case["key_id"]));
        assert_eq!(key.enc_key().to_vec(), hex_of(&case["enc_key"]));
        assert_eq!(key.short_id().to_vec(), hex_of(&case["key_id"])[..4].to_vec());
        let context = unhex(&hex_of_str(&case["aad_context"]));
        let plaintext = hex_of(&case["plaintext"]);
        let ciphertext = key.encrypt(&plaintext, &context, arr(&case["iv"])).expect("encrypt");
        assert_same_bytes("field ciphertext", &ciphertext, &hex_of(&case["ciphertext"]));
        assert_eq!(key.decrypt(&hex_of(&case["ciphertext"]), &context).expect("decrypt"), plaintext);
        // the context is authenticated
        assert!(key.decrypt(&ciphertext, b"messageManateeZone-other-msgProto").is_err());
    }
}

/// `aad_context` is text; turn it into hex so `unhex` gives its bytes.
fn hex_of_str(v: &Value) -> String {
    v.as_str().expect("string").bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn keychain_chains_rebuild_byte_for_byte() {
    let vectors = fixture("pcs-keychain-vectors.json");
    let chains = vectors["chains"].as_array().expect("chains");
    assert_eq!(chains.len(), 4);
    let mut fields_checked = 0;
    let mut own_protections = 0;
    for chain in chains {
        let name = chain["name"].as_str().expect("name");
        let zone = &chain["zone"];
        let expected = &chain["expected"];

        let (der, tag) = rebuild_zone(chain);
        assert_same_bytes(&format!("{name}: zone.protection_info"), &der, &hex_of(&zone["protection_info"]));
        assert_eq!(tag, zone["protection_info_tag"].as_str().expect("tag"), "{name}");

        let zone_key = ec_key(&expected["zone_keys"][0]["private_scalar"]);
        let zone_record_keys = record_keys(&expected["record_keys"]);
        let inter = &chain["intermediate"]["record_protection"];
        let previous = (!inter["signature_2_der"].is_null()).then(|| Previous {
            rm_master_key: arr(&chain["previous_expected"]["record_keys"][0]["key"]),
            roll_count: inter["roll_count"].as_u64().expect("roll_count") as u32,
        });
        let what = format!("{name}: zone.record_protection_info");
        let (der, _tag) = rebuild_record_protection(&zone_key, &zone_record_keys, inter, previous, &what);
        assert_same_bytes(&what, &der, &hex_of(&zone["record_protection_info"]));
        assert!(zone["record_protection_info_tag"].is_null());

        for record in chain["records"].as_array().expect("records") {
            let record_name = record["record_name"].as_str().expect("record_name");
            let keys = if record["protection_info"].is_null() {
                zone_record_keys.clone()
            } else {
                own_protections += 1;
                let keys = record_keys(&record["record_keys"]);
                let what = format!("{name}: {record_name}.protectionInfo");
                let (der, tag) = rebuild_record_protection(&zone_key, &keys, &record["intermediate"], None, &what);
                assert_same_bytes(&what, &der, &hex_of(&record["protection_info"]));
                assert_eq!(tag, record["protection_info_tag"].as_str().expect("tag"), "{what}");
                keys
            };
            if let Some(pcs_key) = record["pcs_key"].as_str() {
                assert!(keys.iter().any(|k| k.short_id().to_vec() == unhex(pcs_key)), "{record_name}");
            }
            for field in record["fields"].as_array().expect("fields") {
                let prefix = hex_of(&field["key_id_prefix"]);
                let key = keys.iter().find(|k| k.short_id().to_vec() == prefix).unwrap_or_else(|| panic!("{record_name}: no key with id {prefix:02x?}"));
                let aad = field["aad"].as_str().expect("aad");
                let zone_name = zone["zone_name"].as_str().expect("zone_name");
                let field_name = field["field"].as_str().expect("field");
                assert_eq!(aad, format!("{zone_name}-{record_name}-{field_name}"));
                let ciphertext = key.encrypt(&hex_of(&field["plaintext"]), aad.as_bytes(), arr(&field["iv"])).expect("encrypt");
                assert_same_bytes(&format!("{record_name}.{field_name}"), &ciphertext, &hex_of(&field["ciphertext"]));
                fields_checked += 1;
            }
        }
    }
    assert_eq!(fields_checked, 6);
    assert_eq!(own_protections, 1);
}

/// `PCSPublicKey`'s (pcsservice, unk1, pub_key).
type PublicPart = (u32, u32, Vec<u8>);

/// `SEQUENCE { key OCTET STRING, public [APPLICATION 1] .. OPTIONAL }` → (key, public part if
/// present).
fn parse_keychain(der: &[u8]) -> der::Result<(Vec<u8>, Option<PublicPart>)> {
    let mut reader = SliceReader::new(der)?;
    let parsed = reader.sequence(|r| {
        let key = OctetStringRef::decode(r)?.as_bytes().to_vec();
        let public = if r.is_finished() {
            None
        } else {
            let any = AnyRef::decode(r)?;
            assert_eq!(any.tag(), Tag::Application { constructed: true, number: TagNumber::N1 });
            let mut inner = SliceReader::new(any.value())?;
            let fields = inner.sequence(|p| {
                let service = u32::decode(p)?;
                let unk1 = u32::decode(p)?;
                let x = OctetStringRef::decode(p)?.as_bytes().to_vec();
                while !p.is_finished() {
                    AnyRef::decode(p)?; // attributes [0], signature [1]
                }
                Ok((service, unk1, x))
            })?;
            inner.finish(())?;
            Some(fields)
        };
        Ok((key, public))
    })?;
    reader.finish(parsed)
}

#[test]
fn keychain_der_carries_the_vectors_key() {
    let vectors = fixture("pcs-keychain-vectors.json");
    for chain in vectors["chains"].as_array().expect("chains") {
        let service = &chain["service"];
        let ours = ec_key(&service["private_scalar"]);
        assert_eq!(ours.public_x().to_vec(), hex_of(&service["public_x"]));
        assert_eq!(ours.compact_private().to_vec(), hex_of(&service["compact_private"]));
        let (their_key, their_public) = parse_keychain(&hex_of(&service["pcs_private_key_der"])).expect("vector keychain DER");
        let master = ec_key(&chain["master_key"]["private_scalar"]);
        let (our_key, our_public) = parse_keychain(&ours.keychain_der(&master)).expect("our keychain DER");
        assert_eq!(our_key, their_key, "x || d");
        let (service_no, unk1, x) = their_public.expect("vector has a public part");
        assert_eq!(our_public, Some((service_no, unk1, x)), "service, unk1 and x of the public part");
    }
}

#[test]
fn generated_keys_are_compact() {
    // (p - 1) / 2 for P-256, written out independently of the library's constant.
    let half_p = unhex("7fffffff800000008000000000000000000000007fffffffffffffffffffffff");
    let n = unhex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    for seed in 0..32u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = SimEcKey::generate(&mut rng);
        let secret = p256::SecretKey::from_bytes(&key.scalar_bytes().into()).expect("valid scalar");
        let point = secret.public_key().to_encoded_point(false);
        let y = point.y().expect("uncompressed").to_vec();
        assert!(y <= half_p, "seed {seed}: 2y >= p");
        assert_eq!(point.x().expect("x").to_vec(), key.public_x().to_vec());
        // The negated key has the same x and the other y: it must be refused.
        let d = key.scalar_bytes();
        let mut neg = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = i16::from(n[i]) - i16::from(d[i]) - borrow;
            borrow = i16::from(v < 0);
            neg[i] = (v + 256 * borrow) as u8;
        }
        assert!(matches!(SimEcKey::from_scalar(&neg), Err(PcsError::NotCompact)), "seed {seed}");
    }
    assert!(matches!(SimEcKey::from_scalar(&[0; 32]), Err(PcsError::InvalidScalar)));
    assert!(matches!(SimEcKey::from_scalar(&[0xff; 32]), Err(PcsError::InvalidScalar)));
}

#[test]
fn seeded_creation_is_deterministic_and_timed() {
    let make = |seed: u64| {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let service = SimEcKey::generate(&mut rng);
        let zone_key = SimEcKey::generate(&mut rng);
        let zone = zone_protection(&service, std::slice::from_ref(&zone_key), &mut rng).expect("zone");
        let keys = [RecordKey::new(rng.key16()), RecordKey::new(rng.key16())];
        let record = record_protection(&zone_key, &keys, None, &mut rng).expect("record");
        (zone, record)
    };
    let (a, b) = (make(7), make(7));
    assert_eq!(a, b);
    assert_ne!(a.0.der, make(8).0.der);
    assert!(matches!(
        record_protection(&SimEcKey::generate(&mut ChaCha20Rng::seed_from_u64(1)), &[], None, &mut ChaCha20Rng::seed_from_u64(2)),
        Err(PcsError::NoKeys)
    ));

    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let zone_key = SimEcKey::generate(&mut rng);
    let keys = [RecordKey::new(rng.key16())];
    let rounds = 100;
    let start = Instant::now();
    for _ in 0..rounds {
        record_protection(&zone_key, &keys, None, &mut rng).expect("record");
    }
    let per_call = start.elapsed() / rounds;
    let fields: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 120]).collect();
    let start = Instant::now();
    for i in 0..rounds {
        for field in &fields {
            keys[0].encrypt(field, b"messageManateeZone-rec-field", [i as u8; 12]).expect("field");
        }
    }
    let per_record = start.elapsed() / rounds;
    println!("record_protection: {per_call:?} per call; 10 fields x 120 B: {per_record:?} per record");
}
