//! The simulator's Messages3 service identity is signed as Apple's is (by the MasterKey), so an
//! opener that follows rustpush (which refuses an unsigned identity) loads it.
//!
//! Three readers check it: the client crate's verification (`cloudkit::pcs`), the identities of
//! `shared/fixtures/pcs-keychain-vectors.json` for the shape, and an outside oracle — a Python
//! script on OpenSSL (`cryptography`) that rebuilds the signed bytes as rustpush's
//! `PCSPublicKey::data_for_signing` does (the DER without `[1]`) and verifies the ECDSA
//! signature. The oracle is first run on the vectors' identities, so a misreading in it fails
//! there before it can bless the simulator.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use cloudkit::pcs::{hex, identity_keyid, EcKey, EcPublicKey, IdentitySignature, ProtectionFailure, SignatureFailure};
use cloudkit_sim::pcs::identity::{keyid, BUILD};
use cloudkit_sim::pcs::service_public_identity_der;
use cloudkit_sim::{AccountSpec, Faults, Sim};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/");

fn vectors() -> Value {
    let path = format!("{FIXTURES}pcs-keychain-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex_of(v: &Value) -> Vec<u8> {
    unhex(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
}

fn sim() -> Sim {
    Sim::new(AccountSpec { seed: 5, chats: 2, messages: 10, big_chat: 0, later: 0 }, Faults::default())
}

/// The session's service identity (`v_Data`) and the MasterKey that signed it.
fn sim_identity(sim: &Sim) -> (Vec<u8>, [u8; 32]) {
    let der = base64::engine::general_purpose::STANDARD.decode(&sim.session.service_identity).expect("base64");
    (der, sim.master_key_x())
}

#[test]
fn client_verifies_the_simulators_identity() {
    let sim = sim();
    let (der, master_x) = sim_identity(&sim);
    let master = EcPublicKey::from_compact(&master_x).expect("compact master key");
    let (key, signature) = EcKey::from_keychain_der_checked(&der, &[master]).expect("verifies");
    assert_eq!(signature, IdentitySignature::Verified { signer: hex(&identity_keyid(&master_x)), self_signed: false });
    assert_eq!(identity_keyid(&master_x), keyid(&master_x), "both sides name the signer alike");
    // The session's load path (no MasterKey known) names the signer and loads the key.
    let (loaded, signature) = EcKey::from_keychain_der_checked(&der, &[]).expect("loads");
    assert_eq!(signature, IdentitySignature::Unverified { signer: hex(&keyid(&master_x)) });
    assert_eq!(loaded.public_x(), key.public_x());
    assert_eq!(EcKey::from_keychain_der(&der).expect("session path").public_x(), key.public_x());

    // A tampered signature is refused by name.
    let mut tampered = der.clone();
    *tampered.last_mut().unwrap() ^= 0x01;
    let refused = EcKey::from_keychain_der_checked(&tampered, &[EcPublicKey::from_compact(&master_x).unwrap()]);
    let failure = match refused {
        Err(cloudkit::Error::Protection { layer: "service identity", failure }) => failure,
        other => panic!("expected the service identity to be refused, got {other:?}"),
    };
    assert_eq!(failure, ProtectionFailure::IdentitySignature { reason: SignatureFailure::Invalid });

    // A self-signed identity (keyid = its own atyp) is checked with its own key, signer or not.
    let own = (1u8..).find_map(|b| cloudkit_sim::pcs::SimEcKey::from_scalar(&[b; 32]).ok()).unwrap();
    let (_, signature) = EcKey::from_keychain_der_checked(&own.keychain_der(&own), &[]).expect("self-signed");
    assert_eq!(signature, IdentitySignature::Verified { signer: hex(&keyid(&own.public_x())), self_signed: true });
}

#[test]
fn identity_has_the_shape_of_the_vectors() {
    let sim = sim();
    let (der, _) = sim_identity(&sim);
    let v = vectors();
    let theirs = hex_of(&v["chains"][0]["service"]["pcs_public_identity_der"]);
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    // Attribute 3 = SEQUENCE { INTEGER 0 }, as the vectors' service key carries it.
    let flags = unhex("300a020103040530030201 00".replace(' ', "").as_str());
    assert!(contains(&theirs, &flags) && contains(&der, &flags));
    // Attribute 1's [0] UTF8String build.
    let mut build = vec![0xa0, BUILD.len() as u8 + 2, 0x0c, BUILD.len() as u8];
    build.extend_from_slice(BUILD.as_bytes());
    assert!(contains(&theirs, &build) && contains(&der, &build));
    // The keychain item ends with its public identity, as the vectors' does.
    let seed_key = |b: u8| (b..).find_map(|b| cloudkit_sim::pcs::SimEcKey::from_scalar(&[b; 32]).ok()).unwrap();
    let (service, master) = (seed_key(7), seed_key(40));
    let public = service_public_identity_der(&service, &master).expect("public identity");
    assert_eq!(public[0], 0x61, "[APPLICATION 1]");
    assert!(service.keychain_der(&master).ends_with(&public));
    let vector_item = hex_of(&v["chains"][0]["service"]["pcs_private_key_der"]);
    assert!(vector_item.ends_with(&theirs));
}

/// The venv's python with `cryptography` importable (scripts/install-test-python.sh).
fn oracle_python() -> PathBuf {
    let venv = std::env::var_os("IMB_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv")));
    let python = venv.join("bin/python");
    let ok = Command::new(&python).args(["-c", "import cryptography"]).status().is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import cryptography: run scripts/install-test-python.sh", python.display());
    python
}

/// Reads each `v_data` (PCSPrivateKey V1) with a generic DER walker, rebuilds the PCSPublicKey
/// without `[1]` as rustpush's `data_for_signing` does, checks keyid = SHA-256(signer x)[0..20],
/// digest 1, pub_key = the key's x = d·G, and verifies the ECDSA P-256/SHA-256 signature with
/// OpenSSL. Prints one boolean per case.
const ORACLE: &str = r#"
import hashlib, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff
B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b

def tlv(buf, i):
    tag = buf[i]; n = buf[i + 1]; i += 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(buf[i:i + k], 'big'); i += k
    return tag, buf[i:i + n], i + n

def children(value):
    out, i = [], 0
    while i < len(value):
        tag, v, j = tlv(value, i)
        out.append((tag, v, value[i:j])); i = j
    return out

def wrap(tag, body):
    n = len(body)
    head = bytes([n]) if n < 128 else (bytes([0x81, n]) if n < 256 else bytes([0x82]) + n.to_bytes(2, 'big'))
    return bytes([tag]) + head + body

def compact_point(x):
    xi = int.from_bytes(x, 'big')
    y2 = (pow(xi, 3, P) - 3 * xi + B) % P
    y = pow(y2, (P + 1) // 4, P)
    assert y * y % P == y2, 'x not on P-256'
    if 2 * y >= P:
        y = P - y
    return ec.EllipticCurvePublicNumbers(xi, y, ec.SECP256R1()).public_key()

def check(v_data, signer_x):
    tag, seq, end = tlv(v_data, 0)
    assert tag == 0x30 and end == len(v_data)
    (ktag, key, _), (ptag, pval, _) = children(seq)
    assert ktag == 0x04 and len(key) == 64 and ptag == 0x61
    (stag, sval, _), = children(pval)
    assert stag == 0x30
    fields = children(sval)
    assert [f[0] for f in fields] in ([0x02, 0x02, 0x04, 0xa0, 0xa1], [0x02, 0x02, 0x04, 0xa1]), [hex(f[0]) for f in fields]
    assert fields[2][1] == key[:32], 'pub_key is not the key x'
    d = int.from_bytes(key[32:], 'big')
    assert ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers().x == int.from_bytes(key[:32], 'big')
    signed = wrap(0x61, wrap(0x30, b''.join(f[2] for f in fields[:-1])))
    (sigtag, sig, _), = children(fields[-1][1])
    keyid, digest, der_sig = [c[1] for c in children(sig)]
    assert sigtag == 0x30 and digest == b'\x01'
    assert keyid == hashlib.sha256(signer_x).digest()[:20], 'keyid does not name the signer'
    try:
        compact_point(signer_x).verify(der_sig, signed, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False

cases = json.load(sys.stdin)
print(json.dumps([check(bytes.fromhex(c['v_data']), bytes.fromhex(c['signer_x'])) for c in cases]))
"#;

#[test]
fn outside_oracle_verifies_the_simulators_identity() {
    let python = oracle_python();
    let v = vectors();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for chain in v["chains"].as_array().expect("chains") {
        cases.push(json!({"v_data": chain["service"]["pcs_private_key_der"], "signer_x": chain["master_key"]["public_x"]}));
        cases.push(json!({"v_data": chain["master_key"]["pcs_private_key_der"], "signer_x": chain["master_key"]["self_signature_signer"]["public_x"]}));
        expected.extend([true, true]);
    }
    for seed in [5u64, 6, 7] {
        let sim = Sim::new(AccountSpec { seed, chats: 1, messages: 1, big_chat: 0, later: 0 }, Faults::default());
        let (der, master_x) = sim_identity(&sim);
        let mut tampered = der.clone();
        *tampered.last_mut().unwrap() ^= 0x01;
        cases.push(json!({"v_data": hex(&der), "signer_x": hex(&master_x)}));
        cases.push(json!({"v_data": hex(&tampered), "signer_x": hex(&master_x)}));
        expected.extend([true, false]);
    }
    let mut child =
        Command::new(&python).args(["-c", ORACLE]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting python");
    child.stdin.take().unwrap().write_all(serde_json::to_string(&cases).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<bool> = serde_json::from_slice(&out.stdout).expect("oracle output");
    assert_eq!(verdicts, expected);
}
