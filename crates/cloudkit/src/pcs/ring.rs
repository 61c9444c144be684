//! The keys of one zone (or of one record's own protection), and the walk down Apple's key
//! chain that finds them (see the parent module's docs).
//!
//! Why a file of its own: the walk uses the protections ([`super::protection`]), which use the
//! field cipher of the parent module; kept here, the cipher imports nothing of the walk.

use std::collections::HashMap;

use super::{hex, parse, protection, EcKey, PcsKey};
use crate::error::{Error, Result};

/// The record keys of one zone (or of one record's own protection), looked up by their 4-byte
/// key-id prefix, plus the zone EC keys that open records' own `protectionInfo`.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: HashMap<[u8; 4], PcsKey>,
    ec_keys: Vec<EcKey>,
}

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = PcsKey>) -> Self {
        let mut ring = KeyRing::default();
        ring.extend(keys);
        ring
    }

    /// A zone's keys: the service identity opens `protection_info` (the zone's
    /// `protectionInfo`), giving the zone EC keys; those open `record_protection_info` (its
    /// `recordProtectionInfo`), giving the record keys (master key, then symmetric keys).
    /// A failure names its layer: `"zone.protectionInfo"` or `"zone.recordProtectionInfo"`.
    pub fn open_zone(service: &EcKey, protection_info: &[u8], record_protection_info: &[u8]) -> Result<KeyRing> {
        let zone = protection::open_at("zone.protectionInfo", protection_info, std::slice::from_ref(service))?;
        let records = protection::open_at("zone.recordProtectionInfo", record_protection_info, &zone.ec_keys)?;
        let mut ring = KeyRing::new(records.pcs_keys);
        ring.ec_keys = zone.ec_keys;
        Ok(ring)
    }

    /// The keys of a record that carries its own `protectionInfo`, opened with this ring's zone
    /// EC keys (layer `"record.protectionInfo"`). The returned ring's EC keys are the ones that
    /// protection hands out (usually none).
    pub fn for_record_protection(&self, protection_info: &[u8]) -> Result<KeyRing> {
        let opened = protection::open_at("record.protectionInfo", protection_info, &self.ec_keys)?;
        let mut ring = KeyRing::new(opened.pcs_keys);
        ring.ec_keys = opened.ec_keys;
        Ok(ring)
    }

    /// The zone EC keys (from the zone's `protectionInfo`).
    pub fn zone_ec_keys(&self) -> &[EcKey] {
        &self.ec_keys
    }

    pub fn extend(&mut self, keys: impl IntoIterator<Item = PcsKey>) {
        for k in keys {
            self.keys.insert(k.short_id(), k);
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds every record key and every EC key (once per public key) of another ring.
    pub fn extend_from(&mut self, other: &KeyRing) {
        self.extend(other.keys.values().cloned());
        for ec in &other.ec_keys {
            if !self.ec_keys.iter().any(|k| k.public_x() == ec.public_x()) {
                self.ec_keys.push(ec.clone());
            }
        }
    }

    /// Key for a key-id prefix: four bytes as Apple writes them; shorter prefixes match the
    /// beginning of a key id.
    pub fn get(&self, prefix: &[u8]) -> Option<&PcsKey> {
        match <[u8; 4]>::try_from(prefix) {
            Ok(p4) => self.keys.get(&p4),
            Err(_) if !prefix.is_empty() && prefix.len() < 4 => self.keys.values().find(|k| k.short_id().starts_with(prefix)),
            Err(_) => None,
        }
    }

    /// [`get`](Self::get) for a record's `pcsKey`: an unknown key is [`Error::PcsKeyMissing`].
    pub fn require(&self, pcs_key: &[u8]) -> Result<&PcsKey> {
        self.get(pcs_key).ok_or_else(|| Error::PcsKeyMissing(hex(pcs_key)))
    }
    /// Decrypts a field value: the key is chosen by the ciphertext's key-id prefix and must match
    /// it; `context` is `"{zone}-{record}-{field}"`.
    pub fn decrypt(&self, ct: &[u8], context: &str) -> Result<Vec<u8>> {
        let parsed = parse(ct)?;
        let key = match parsed.key_prefix4() {
            Some(p4) => self.keys.get(&p4),
            None => self.get(&parsed.key_prefix()),
        };
        let key = key.ok_or_else(|| Error::PcsKeyMissing(hex(&parsed.key_prefix())))?;
        key.decrypt_parsed(&parsed, context.as_bytes(), context)
    }
}
