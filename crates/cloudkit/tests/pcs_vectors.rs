//! Known-answer tests of the PCS chain against `shared/fixtures/` (made by an independent
//! implementation that follows rustpush; see `shared/fixtures/README.md`): the field cipher, the
//! four key chains layer by layer, the ten negative cases, and the non-canonical inputs rustpush
//! still opens.

use std::collections::BTreeSet;

use cloudkit::pcs::{hex, kdf_ctr_hmac, open_protection, open_protection_signed_by, EcKey, EcPublicKey, KeyRing, PcsKey, ProtectionFailure, SignatureFailure};
use cloudkit::Error;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/");

fn load(name: &str) -> Value {
    let path = format!("{FIXTURES}{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Hex bytes of a JSON string value.
fn h(v: &Value) -> Vec<u8> {
    unhex(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn keychain() -> Value {
    load("pcs-keychain-vectors.json")
}

fn chain<'v>(v: &'v Value, name: &str) -> &'v Value {
    v["chains"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no chain {name}"))
}

fn negative<'v>(v: &'v Value, name: &str) -> &'v Value {
    v["negative"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no negative case {name}"))
}

fn service_key(chain: &Value) -> EcKey {
    EcKey::from_keychain_der(&h(&chain["service"]["pcs_private_key_der"])).unwrap()
}

fn compact_key(v: &Value) -> EcKey {
    EcKey::from_compact_private(&h(&v["compact_private"])).unwrap()
}

/// EC keys compared with an `expected.zone_keys`-style list (order as given).
fn assert_ec_keys(got: &[EcKey], expected: &Value, what: &str) {
    let expected = expected.as_array().unwrap();
    assert_eq!(got.len(), expected.len(), "{what}: number of EC keys");
    for (k, e) in got.iter().zip(expected) {
        assert_eq!(k.public_x().to_vec(), h(&e["public_x"]), "{what}: public x");
        assert_eq!(k.compact_private()[32..].to_vec(), h(&e["private_scalar"]), "{what}: private scalar");
        assert_eq!(k.compact_private().to_vec(), h(&e["compact_private"]), "{what}: compact private");
    }
}

fn raw_keys(keys: &[PcsKey]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.raw().to_vec()).collect()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn hex_list(v: &Value) -> Vec<Vec<u8>> {
    v.as_array().unwrap().iter().map(h).collect()
}

/// The zone's EC and PCS keys, the record keys, and the intermediate master keys of both layers.
fn check_zone(zone: &Value, want: &Value, intermediate: Option<&Value>, svc: &EcKey) -> KeyRing {
    let name = s(&zone["zone_name"]);
    let (pi, rpi) = (h(&zone["protection_info"]), h(&zone["record_protection_info"]));
    let opened = open_protection(&pi, std::slice::from_ref(svc)).unwrap();
    let version = (int(&want["zone_protection_version"]), int(&want["zone_roll_count"]));
    assert_eq!((opened.version, opened.roll_count), version, "{name}: zone version, rolls");
    assert_ec_keys(&opened.ec_keys, &want["zone_keys"], name);
    assert_eq!(raw_keys(&opened.pcs_keys), hex_list(&want["zone_pcs_keys"]), "{name}");
    assert_eq!(s(&want["zone_protection_opened_by"]), hex(&svc.public_x()));

    let records = open_protection(&rpi, &opened.ec_keys).unwrap();
    let version = (int(&want["record_protection_version"]), int(&want["record_roll_count"]));
    assert_eq!((records.version, records.roll_count), version, "{name}: record version, rolls");
    assert!(records.ec_keys.is_empty(), "{name}: a record protection hands out no EC keys");
    let record_keys = want["record_keys"].as_array().unwrap();
    assert_eq!(records.pcs_keys.len(), record_keys.len(), "{name}: number of record keys");
    for (k, e) in records.pcs_keys.iter().zip(record_keys) {
        assert_eq!(k.raw().to_vec(), h(&e["key"]));
        assert_eq!(k.key_id().to_vec(), h(&e["key_id"]));
        assert_eq!(k.short_id().to_vec(), h(&e["pcs_key_prefix"]));
    }

    let layers = intermediate.map(|im| [(&opened, &im["zone_protection"]), (&records, &im["record_protection"])]);
    for (opened, im) in layers.into_iter().flatten() {
        let m = &opened.pcs_keys[0];
        let got = [
            m.raw().to_vec(),
            m.key_id().to_vec(),
            m.short_id().to_vec(),
            kdf_ctr_hmac(m.raw(), b"hmackey-of-masterkey", 16),
            kdf_ctr_hmac(m.raw(), b"encryption key key m", 16),
        ];
        let fields = ["master_key", "master_key_id", "truncated_key_id", "hmac_key", "meta_enc_key"];
        assert_eq!(got, fields.map(|f| h(&im[f])), "{name}: master key and what derives from it");
        assert_eq!((opened.version, opened.roll_count), (int(&im["version"]), int(&im["roll_count"])));
    }

    // The same through the ring the client uses.
    let ring = KeyRing::open_zone(svc, &pi, &rpi).unwrap();
    assert_eq!(ring.len(), record_keys.len());
    assert_ec_keys(ring.zone_ec_keys(), &want["zone_keys"], name);
    for e in record_keys {
        assert_eq!(ring.get(&h(&e["pcs_key_prefix"])).unwrap().raw().to_vec(), h(&e["key"]));
    }
    ring
}

/// Picks each record's keys (pcsKey or its own protectionInfo) and decrypts and re-encrypts
/// every field.
fn check_records(chain: &Value, ring: &KeyRing) {
    for record in chain["records"].as_array().unwrap() {
        let name = s(&record["record_name"]);
        let keys = if record["protection_info"].is_string() {
            assert!(record["pcs_key"].is_null());
            let pi = h(&record["protection_info"]);
            let own = ring.for_record_protection(&pi).unwrap();
            let opened = open_protection(&pi, ring.zone_ec_keys()).unwrap();
            assert_eq!(opened.version, int(&record["record_protection_version"]));
            let want: Vec<Vec<u8>> = record["record_keys"].as_array().unwrap().iter().map(|k| h(&k["key"])).collect();
            assert_eq!(raw_keys(&opened.pcs_keys), want, "{name}: own record keys");
            let truncated = h(&record["intermediate"]["truncated_key_id"]);
            assert_eq!(opened.pcs_keys[0].short_id().to_vec(), truncated);
            for k in record["record_keys"].as_array().unwrap() {
                let prefix = h(&k["pcs_key_prefix"]);
                assert!(ring.get(&prefix).is_none(), "{name}: own key is not a zone key");
            }
            own
        } else {
            ring.require(&h(&record["pcs_key"])).unwrap();
            ring.clone()
        };
        for field in record["fields"].as_array().unwrap() {
            let (aad, what) = (s(&field["aad"]), s(&field["field"]));
            assert_eq!(aad, format!("{}-{name}-{what}", s(&field["zone"])));
            let ciphertext = h(&field["ciphertext"]);
            let plaintext = keys.decrypt(&ciphertext, aad).unwrap();
            assert_eq!(plaintext, h(&field["plaintext"]), "{name}.{what}");
            let key = keys.get(&h(&field["key_id_prefix"])).unwrap();
            let iv: [u8; 12] = h(&field["iv"]).try_into().unwrap();
            let again = key.encrypt(&plaintext, aad.as_bytes(), iv);
            assert_eq!(again, ciphertext, "{name}.{what}: re-encryption");
        }
    }
}

fn check_service(chain: &Value) -> EcKey {
    let svc = &chain["service"];
    let key = service_key(chain);
    let compact = key.compact_private();
    assert_eq!(compact[..32], h(&svc["public_x"]));
    assert_eq!(compact[32..], h(&svc["private_scalar"]));
    assert_eq!(key.public_x(), compact[..32]);
    let sec1 = EcPublicKey::from_sec1(&h(&svc["public_sec1_uncompressed"])).unwrap();
    assert_eq!(key.public_key(), &sec1);
    assert_eq!(key.public_key(), &EcPublicKey::from_compact(&compact[..32]).unwrap());
    assert_eq!(svc["keychain_item"]["v_Data"], svc["pcs_private_key_der"]);
    assert_eq!(compact_key(svc).compact_private(), compact);
    key
}

fn check_chain(name: &str) -> (Value, KeyRing) {
    let v = keychain();
    let c = chain(&v, name).clone();
    let service = check_service(&c);
    let im = Some(&c["intermediate"]);
    let ring = check_zone(&c["zone"], &c["expected"], im, &service);
    check_records(&c, &ring);
    (c, ring)
}

#[test]
fn field_vectors_decrypt_derive_and_reencrypt() {
    let v = load("pcs-field-vectors.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let key = PcsKey::from_slice(&h(&case["raw_key"])).unwrap();
        assert_eq!(key.key_id().to_vec(), h(&case["key_id"]));
        assert_eq!(kdf_ctr_hmac(key.raw(), b"encryption key key m", 16), h(&case["enc_key"]));
        let aad = s(&case["aad_context"]);
        let ciphertext = h(&case["ciphertext"]);
        assert_eq!(KeyRing::new([key.clone()]).decrypt(&ciphertext, aad).unwrap(), h(&case["plaintext"]));
        let iv: [u8; 12] = h(&case["iv"]).try_into().unwrap();
        assert_eq!(key.encrypt(&h(&case["plaintext"]), aad.as_bytes(), iv), ciphertext);
    }
}

#[test]
fn every_chain_has_a_test() {
    let v = keychain();
    let names: BTreeSet<&str> = v["chains"].as_array().unwrap().iter().map(|c| s(&c["name"])).collect();
    let tested =
        BTreeSet::from(["fresh-messageManateeZone", "fresh-chatManateeZone", "rolled-share-attachmentManateeZone", "record-protection-messageManateeZone"]);
    assert_eq!(names, tested);
}

#[test]
fn chain_fresh_message_zone() {
    check_chain("fresh-messageManateeZone");
}

#[test]
fn chain_fresh_chat_zone() {
    check_chain("fresh-chatManateeZone");
}

#[test]
fn chain_record_with_its_own_protection_info() {
    let (c, _) = check_chain("record-protection-messageManateeZone");
    assert!(c["records"].as_array().unwrap().iter().any(|r| r["protection_info"].is_string()));
}

#[test]
fn chain_rolled_share_zone_and_its_previous_and_invited_openers() {
    let (c, ring) = check_chain("rolled-share-attachmentManateeZone");
    let service = service_key(&c);
    // Version 4 with the share KDF: master key != rm_master_key.
    let im = &c["intermediate"]["zone_protection"];
    assert_ne!(im["master_key"], im["rm_master_key"]);
    // The previous zone (before the roll) opens with the same service key; its record key is
    // the rolled zone's symmetric record key.
    let previous = check_zone(&c["previous_zone"], &c["previous_expected"], None, &service);
    for prefix in c["previous_expected"]["record_keys"].as_array().unwrap() {
        assert!(ring.get(&h(&prefix["pcs_key_prefix"])).is_some());
        assert!(previous.get(&h(&prefix["pcs_key_prefix"])).is_some());
    }
    // The invited key opens the readonly entry when the owner's key checks the outer signature.
    let opener = &c["invited_opener"];
    let invited = compact_key(&c["invited_key"]);
    let owner = EcPublicKey::from_compact(&h(&opener["custom_signing_key_x"])).unwrap();
    assert_eq!(owner, *service.public_key());
    let opened = open_protection_signed_by(&h(&c["zone"]["protection_info"]), &[invited], &owner).unwrap();
    assert_ec_keys(&opened.ec_keys, &opener["zone_keys"], "invited opener");
    let expected: Vec<Vec<u8>> = opener["zone_pcs_keys"].as_array().unwrap().iter().map(h).collect();
    assert_eq!(raw_keys(&opened.pcs_keys), expected);
    // A ring extended by another merges both kinds of keys.
    let mut merged = KeyRing::default();
    merged.extend_from(&previous);
    merged.extend_from(&ring);
    merged.extend_from(&ring);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged.zone_ec_keys().len(), 2);
}

/// The failure of `KeyRing::open_zone` for a negative case's input with the chain's service key.
fn open_zone_failure(case: &Value, service: &EcKey) -> (&'static str, ProtectionFailure) {
    let input = &case["input"];
    match KeyRing::open_zone(service, &h(&input["protection_info"]), &h(&input["record_protection_info"])) {
        Err(Error::Protection { layer, failure }) => (layer, failure),
        other => panic!("{}: expected a protection failure, got {other:?}", s(&case["name"])),
    }
}

fn chain_service(v: &Value, case: &Value) -> EcKey {
    service_key(chain(v, s(&case["chain"])))
}

#[test]
fn every_negative_case_has_a_test() {
    let v = keychain();
    let names: BTreeSet<&str> = v["negative"].as_array().unwrap().iter().map(|c| s(&c["name"])).collect();
    let tested = BTreeSet::from([
        "zone-protectionInfo-hmac-flipped",
        "zone-protectionInfo-meta-flipped",
        "zone-protectionInfo-self-signature-flipped",
        "zone-recordProtectionInfo-hmac-flipped",
        "zone-recordProtectionInfo-meta-flipped",
        "wrong-service-key-in-keychain",
        "wrong-service-key-to-decode",
        "service-key-wrong-scalar",
        "record-pcsKey-not-in-zone",
        "invited-key-without-owner-signing-key",
    ]);
    assert_eq!(names, tested);
}

/// A tampered blob of the chain, opened with the chain's own service key, fails at the layer
/// the fixture names with `failure`.
fn assert_tampered(name: &str, failure: ProtectionFailure) {
    let v = keychain();
    let case = negative(&v, name);
    let (layer, got) = open_zone_failure(case, &chain_service(&v, case));
    assert_eq!(layer, s(&case["layer"]), "{name}");
    assert_eq!(got, failure, "{name}");
}

const OUTER_SIGNATURE_INVALID: ProtectionFailure = ProtectionFailure::OuterSignature { reason: SignatureFailure::Invalid };

#[test]
fn negative_zone_hmac_flipped_is_a_mac_failure() {
    assert_tampered("zone-protectionInfo-hmac-flipped", ProtectionFailure::Mac);
}

#[test]
fn negative_zone_meta_flipped_fails_the_outer_signature() {
    assert_tampered("zone-protectionInfo-meta-flipped", OUTER_SIGNATURE_INVALID);
}

#[test]
fn negative_zone_self_signature_flipped() {
    assert_tampered("zone-protectionInfo-self-signature-flipped", ProtectionFailure::SelfSignature);
}

#[test]
fn negative_record_protection_hmac_flipped_is_a_mac_failure() {
    assert_tampered("zone-recordProtectionInfo-hmac-flipped", ProtectionFailure::Mac);
}

#[test]
fn negative_record_protection_meta_flipped_fails_the_outer_signature() {
    assert_tampered("zone-recordProtectionInfo-meta-flipped", OUTER_SIGNATURE_INVALID);
}

#[test]
fn negative_wrong_service_key_in_keychain_names_the_zones_key() {
    let v = keychain();
    let case = negative(&v, "wrong-service-key-in-keychain");
    let other = EcKey::from_keychain_der(&h(&case["input"]["service"]["pcs_private_key_der"])).unwrap();
    assert_eq!(other.public_x().to_vec(), h(&case["input"]["service"]["public_x"]));
    let wanted = s(&chain(&v, s(&case["chain"]))["expected"]["zone_protection_opened_by"]).to_string();
    assert!(s(&case["rustpush"]["message"]).contains(&wanted));
    let (layer, failure) = open_zone_failure(case, &other);
    assert_eq!((layer, failure), ("zone.protectionInfo", ProtectionFailure::DecodeKeyNotFound { x: wanted }));
}

#[test]
fn negative_wrong_service_key_to_decode() {
    let v = keychain();
    let case = negative(&v, "wrong-service-key-to-decode");
    let wanted = s(&chain(&v, s(&case["chain"]))["service"]["public_x"]).to_string();
    let failure = open_protection(&h(&case["input"]["protection_info"]), &[compact_key(&case["input"]["decode_key"])]).unwrap_err();
    assert_eq!(failure, ProtectionFailure::DecodeKeyNotFound { x: wanted });
}

/// rustpush loads this item and fails the key unwrap at zone.protectionInfo; this crate refuses
/// the item itself, because x is not d·G. (The unwrap failure rustpush reports is reproduced with
/// such a key in `pcs::protection`'s unit test `claimed_x_with_wrong_scalar_fails_key_unwrap`.)
#[test]
fn negative_service_key_with_wrong_scalar_is_refused_at_load() {
    let v = keychain();
    let case = negative(&v, "service-key-wrong-scalar");
    let x = s(&chain(&v, s(&case["chain"]))["service"]["public_x"]).to_string();
    match EcKey::from_keychain_der(&h(&case["input"]["service_v_Data"])) {
        Err(Error::Protection { layer: "service identity", failure: ProtectionFailure::PrivateKeyMismatch { x: named } }) => assert_eq!(named, x),
        other => panic!("expected the service identity to be refused, got {other:?}"),
    }
}

#[test]
fn negative_record_pcs_key_not_in_zone() {
    let v = keychain();
    let case = negative(&v, "record-pcsKey-not-in-zone");
    let c = chain(&v, s(&case["chain"]));
    let ring = KeyRing::open_zone(&service_key(c), &h(&c["zone"]["protection_info"]), &h(&c["zone"]["record_protection_info"])).unwrap();
    let pcs_key = h(&case["input"]["pcs_key"]);
    assert!(ring.get(&pcs_key).is_none());
    match ring.require(&pcs_key) {
        Err(Error::PcsKeyMissing(id)) => assert_eq!(id, s(&case["input"]["pcs_key"])),
        other => panic!("expected PcsKeyMissing, got {other:?}"),
    }
}

#[test]
fn negative_invited_key_without_owner_signing_key() {
    let v = keychain();
    let case = negative(&v, "invited-key-without-owner-signing-key");
    let c = chain(&v, s(&case["chain"]));
    let owner_x = s(&c["invited_opener"]["custom_signing_key_x"]).to_string();
    let invited = compact_key(&case["input"]["decode_key"]);
    let failure = open_protection(&h(&case["input"]["protection_info"]), std::slice::from_ref(&invited)).unwrap_err();
    let reason = SignatureFailure::KeyMismatch { keyid: owner_x, key: s(&case["input"]["decode_key"]["public_x"]).to_string() };
    assert_eq!(failure, ProtectionFailure::OuterSignature { reason });
}

/// rustpush's rasn also opens these; this crate reads strict DER and refuses them.
#[test]
fn non_canonical_der_that_rustpush_accepts_is_refused() {
    let v = keychain();
    let cases = v["accepted_by_rustpush"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let service = chain_service(&v, case);
        let (layer, failure) = open_zone_failure(case, &service);
        assert_eq!(layer, "zone.protectionInfo", "{}", s(&case["name"]));
        assert!(matches!(failure, ProtectionFailure::Der(_)), "{}: {failure:?}", s(&case["name"]));
        // Its recordProtectionInfo is the canonical one of the chain.
        let c = chain(&v, s(&case["chain"]));
        assert_eq!(case["input"]["record_protection_info"], c["zone"]["record_protection_info"]);
    }
}

#[test]
fn errors_name_their_layer() {
    let v = keychain();
    let case = negative(&v, "zone-recordProtectionInfo-hmac-flipped");
    let input = &case["input"];
    let err = KeyRing::open_zone(&chain_service(&v, case), &h(&input["protection_info"]), &h(&input["record_protection_info"])).unwrap_err();
    assert_eq!(err.to_string(), "cannot open zone.recordProtectionInfo: HMAC does not match");
    let c = chain(&v, "record-protection-messageManateeZone");
    let ring = KeyRing::new([]);
    let record = c["records"].as_array().unwrap().iter().find(|r| r["protection_info"].is_string()).unwrap();
    match ring.for_record_protection(&h(&record["protection_info"])) {
        Err(Error::Protection { layer: "record.protectionInfo", failure: ProtectionFailure::DecodeKeyNotFound { .. } }) => {}
        other => panic!("expected record.protectionInfo failure, got {other:?}"),
    }
}
