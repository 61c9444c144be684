//! Fuzz targets for the crypto-bearing parsers: PCS `protectionInfo` (the DER share protections
//! of a zone and of a record), the PCS field cipher, and MMCS's FORD chunks and V2 data chunks.
//! Seeds are the known-answer vectors of `shared/fixtures/`; FORD chunks are sealed here with
//! the `aes-siv` and `hkdf` crates (not with the code under test).
//!
//! Properties beyond "no panic, an error or a value": tampering never yields *other* keys or
//! plaintext — a mutated protection that still opens hands out exactly the chain's keys, a
//! mutated field ciphertext that still decrypts is the original, and a data chunk that opens
//! matches its id. See FUZZING.md for how to run them longer.

mod common;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use cloudkit::mmcs::{open_ford, open_v2_chunk};
use cloudkit::pcs::{EcKey, KeyRing, PcsKey};
use cloudkit::proto::mmcs::{FordChunk, FordChunkItem, FordItem};
use common::{hex_of, keychain_vectors};
use fuzzkit::{measure, mutated, Input};
use proptest::prelude::*;
use prost::Message;
use serde_json::Value;

#[global_allocator]
static METER: fuzzkit::Meter = fuzzkit::Meter;

fn raw_keys(ring: &KeyRing, ids: &[Vec<u8>]) -> Vec<Option<[u8; 16]>> {
    ids.iter().map(|id| ring.get(id).map(|k| *k.raw())).collect()
}

fn key_ids(chain: &Value) -> Vec<Vec<u8>> {
    chain["expected"]["record_keys"].as_array().unwrap().iter().map(|k| hex_of(&k["pcs_key_prefix"])).collect()
}

#[test]
fn fuzz_zone_protection_info() {
    let v = keychain_vectors();
    let chains: Vec<&Value> = v["chains"].as_array().unwrap().iter().collect();
    // Seeds: each chain's zone and record protections, tagged by chain and layer.
    let mut seeds = Vec::new();
    for (i, c) in chains.iter().enumerate() {
        for (layer, field) in [(0u8, "protection_info"), (1u8, "record_protection_info")] {
            let mut seed = vec![i as u8, layer];
            seed.extend(hex_of(&c["zone"][field]));
            seeds.push(seed);
        }
    }
    let services: Vec<EcKey> = chains.iter().map(|c| EcKey::from_keychain_der(&hex_of(&c["service"]["pcs_private_key_der"])).unwrap()).collect();
    let opened: Vec<KeyRing> = chains
        .iter()
        .zip(&services)
        .map(|(c, s)| KeyRing::open_zone(s, &hex_of(&c["zone"]["protection_info"]), &hex_of(&c["zone"]["record_protection_info"])).unwrap())
        .collect();
    fuzzkit::run("pcs/protection-info", mutated(seeds), |input: Input| {
        let (Some(&i), Some(&layer)) = (input.first(), input.get(1)) else { return Ok(()) };
        let i = i as usize % chains.len();
        let c = chains[i];
        let der = &input[2..];
        let (zone_pi, record_pi) = match layer % 2 {
            0 => (der.to_vec(), hex_of(&c["zone"]["record_protection_info"])),
            _ => (hex_of(&c["zone"]["protection_info"]), der.to_vec()),
        };
        let (ring, peak) = measure(|| KeyRing::open_zone(&services[i], &zone_pi, &record_pi));
        prop_assert!(peak <= 64 * der.len() + (256 << 10), "{peak} bytes held for {} bytes of DER", der.len());
        if let Ok(ring) = ring {
            let ids = key_ids(c);
            prop_assert_eq!(raw_keys(&ring, &ids), raw_keys(&opened[i], &ids), "a tampered protection opened to other keys");
        }
        // The same bytes as a record's own protectionInfo, opened with the zone's EC keys.
        let (own, _) = measure(|| opened[i].for_record_protection(der));
        if let Ok(own) = own {
            prop_assert!(own.len() <= 64, "{} keys from one protection", own.len());
        }
        Ok(())
    });
}

#[test]
fn fuzz_field_cipher() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(format!("{}pcs-field-vectors.json", common::FIXTURES)).unwrap()).unwrap();
    let cases: Vec<(Vec<u8>, String, Vec<u8>)> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (hex_of(&c["ciphertext"]), c["aad_context"].as_str().unwrap().to_string(), hex_of(&c["plaintext"])))
        .collect();
    let ring = KeyRing::new(v["cases"].as_array().unwrap().iter().map(|c| PcsKey::from_slice(&hex_of(&c["raw_key"])).unwrap()));
    let seeds: Vec<Vec<u8>> = cases.iter().map(|(ct, _, _)| ct.clone()).collect();
    fuzzkit::run("pcs/field-cipher", mutated(seeds), |input: Input| {
        for (ct, context, plain) in &cases {
            let (out, peak) = measure(|| ring.decrypt(&input, context));
            prop_assert!(peak <= 2 * input.len() + 4096, "{peak} bytes held");
            match out {
                // GCM covers header, nonce, tag and body: only the original opens, to its plaintext.
                Ok(out) => prop_assert!(&input.0 == ct && &out == plain, "a tampered ciphertext decrypted"),
                Err(e) => prop_assert!(
                    matches!(
                        e,
                        cloudkit::Error::PcsAuth(_) | cloudkit::Error::PcsKeyMissing(_) | cloudkit::Error::PcsTruncated(_) | cloudkit::Error::PcsVersion(_)
                    ),
                    "{e}"
                ),
            }
        }
        Ok(())
    });
}

const FORD_KEY: [u8; 32] = [0x42; 32];

/// Seals a FORD plaintext as MMCS does: `0x04 ‖ iv ‖ AES-256-SIV(HKDF-SHA256("PCSMMCS2", key))`
/// with the iv and the version byte as associated data.
fn seal_ford(plain: &[u8], iv: [u8; 16]) -> Vec<u8> {
    let mut okm = [0u8; 64];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"PCSMMCS2"), &FORD_KEY).expand(&[], &mut okm).unwrap();
    let sealed = Aes256Siv::new_from_slice(&okm).unwrap().encrypt([&iv[..], &[0x04][..]], plain).unwrap();
    [&[0x04][..], &iv, &sealed].concat()
}

fn ford_plain(chunks: usize) -> Vec<u8> {
    let items =
        (0..chunks).map(|i| FordChunkItem { key: [&[0x04][..], &[i as u8; 32]].concat(), chunk_len: (1000u32 + i as u32).to_le_bytes().to_vec() }).collect();
    FordChunk { item: Some(FordItem { chunks: items, ..Default::default() }) }.encode_to_vec()
}

#[test]
fn fuzz_ford_chunks() {
    let plains = vec![ford_plain(1), ford_plain(3), ford_plain(40)];
    let sealed: Vec<Vec<u8>> = plains.iter().map(|p| seal_ford(p, [9; 16])).collect();
    // Half the cases mutate the sealed chunk (nothing but the original may open), half mutate the
    // plaintext and seal it properly (the FordChunk parser behind the cipher).
    let strategy = prop_oneof![mutated(sealed.clone()).prop_map(|i| (true, i)), mutated(plains).prop_map(|i| (false, i))];
    fuzzkit::run("mmcs/ford", strategy, |(is_sealed, input): (bool, Input)| {
        let chunk = if is_sealed { input.0.clone() } else { seal_ford(&input, [3; 16]) };
        let (opened, peak) = measure(|| open_ford(&chunk, &FORD_KEY));
        prop_assert!(peak <= 8 * chunk.len() + 4096, "{peak} bytes held for {}", chunk.len());
        match opened {
            Ok(ford) => {
                if is_sealed {
                    prop_assert!(sealed.contains(&input.0), "a tampered FORD chunk opened");
                } else {
                    prop_assert_eq!(ford, FordChunk::decode(&input[..]).unwrap());
                }
            }
            Err(cloudkit::Error::Mmcs { step: "ford", .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("not a FORD error: {e}"))),
        }
        Ok(())
    });
}

/// Inputs for the V2 chunk opener, `id (21) ‖ key (33) ‖ FORD length (4, LE) ‖ ciphertext`, in
/// the shapes MMCS uses. The cipher is not reproduced here (the known answers are in the unit
/// tests): the properties are bounded memory, chunk errors, and an opened chunk of its length.
fn v2_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for n in [0usize, 1, 64, 1000] {
        let mut s = vec![0x01];
        s.extend([0xab; 20]);
        s.push(0x04);
        s.extend([n as u8; 32]);
        s.extend((n as u32).to_le_bytes());
        s.extend(vec![0x5c; n]);
        seeds.push(s);
    }
    seeds
}

#[test]
fn fuzz_v2_chunks() {
    fuzzkit::run("mmcs/v2-chunk", mutated(v2_seeds()), |input: Input| {
        if input.len() < 21 + 33 + 4 {
            return Ok(());
        }
        let (id, rest) = input.split_at(21);
        let (key, rest) = rest.split_at(33);
        let (len, ct) = rest.split_at(4);
        // The FORD lengths reach this opener only after `plan` capped them at the file limit;
        // keep them within a test-sized one.
        let len = u32::from_le_bytes(len.try_into().unwrap()) % (1 << 20);
        let (opened, peak) = measure(|| open_v2_chunk(id, key, len, ct));
        prop_assert!(peak <= 2 * (len as usize).max(ct.len()) + 4096, "{peak} bytes held");
        match opened {
            Ok(plain) => prop_assert_eq!(plain.len(), len as usize),
            Err(cloudkit::Error::Mmcs { step: "chunk", .. }) => {}
            Err(e) => return Err(TestCaseError::fail(format!("not a chunk error: {e}"))),
        }
        Ok(())
    });
}
