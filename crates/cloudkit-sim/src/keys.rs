//! The account's key material, as Apple's chain has it: the Messages service identity (P-256);
//! per zone an EC zone key, handed to the service identity in the zone's `protectionInfo`; the
//! zone's record keys in its `recordProtectionInfo`, created by the zone key; and for some
//! records a `protectionInfo` of their own, also created by the zone key.
//!
//! Which record key a record uses models what a real account goes through:
//! - the message zone's keys were rolled once: its first half of history is under the previous
//!   key, which stays in `recordProtectionInfo` as a symmetric key beside the current one;
//! - `pcs_late`: keys that join `recordProtectionInfo` only on the second `zone/retrieve` after a
//!   record using them was served (a device rolled keys and the zone caught up later);
//! - `pcs_lost`: keys that never appear;
//! - one message in 1001 carries its own `protectionInfo` (no `pcsKey`); those come
//!   from a small pool, since creating one costs two ECDSA signatures.
//!
//! Every key is derived from the seed, so a restarted simulator serves the same bytes.

use std::sync::OnceLock;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::pcs::{record_protection, zone_protection, PcsError, Protection, RecordKey, SimEcKey};

pub const LATE_KEYS: u64 = 4;
pub const LOST_KEYS: u64 = 2;
/// Records with their own protectionInfo: one message in this many.
pub const OWN_PROTECTION_EVERY: u64 = 1001;
const OWN_PROTECTION_POOL: u64 = 16;

/// Which key encrypts a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// The zone's current record key.
    Current,
    /// The key before the roll (message zone only).
    Previous,
    Late(u64),
    Lost(u64),
    /// The record's own protectionInfo, entry `i` of the pool.
    Own(u64),
}

pub fn digest(seed: u64, label: &str) -> [u8; 32] {
    Sha256::new().chain_update(seed.to_be_bytes()).chain_update(label.as_bytes()).finalize().into()
}

fn rng(seed: u64, label: &str) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(digest(seed, label))
}

fn record_key(seed: u64, label: &str) -> RecordKey {
    let d = digest(seed, label);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    RecordKey::new(k)
}

/// One zone's keys.
pub struct ZoneKeys {
    pub zone: &'static str,
    zone_key: SimEcKey,
    current: RecordKey,
    previous: Option<RecordKey>,
    late: Vec<RecordKey>,
    lost: Vec<RecordKey>,
    seed: u64,
    own: OnceLock<Result<Vec<(RecordKey, Protection)>, PcsError>>,
}

impl ZoneKeys {
    fn new(seed: u64, zone: &'static str, rolled: bool) -> Self {
        ZoneKeys {
            zone,
            zone_key: SimEcKey::generate(&mut rng(seed, &format!("{zone}/zone key"))),
            current: record_key(seed, &format!("{zone}/record key/current")),
            previous: rolled.then(|| record_key(seed, &format!("{zone}/record key/previous"))),
            late: (0..LATE_KEYS).map(|i| record_key(seed, &format!("{zone}/record key/late/{i}"))).collect(),
            lost: (0..LOST_KEYS).map(|i| record_key(seed, &format!("{zone}/record key/lost/{i}"))).collect(),
            seed,
            own: OnceLock::new(),
        }
    }

    /// The record key of a choice, and for [`KeyChoice::Own`] the record's protectionInfo.
    pub fn key(&self, choice: KeyChoice) -> Result<(&RecordKey, Option<&Protection>), PcsError> {
        Ok(match choice {
            KeyChoice::Current => (&self.current, None),
            KeyChoice::Previous => (self.previous.as_ref().unwrap_or(&self.current), None),
            KeyChoice::Late(i) => (&self.late[(i % LATE_KEYS) as usize], None),
            KeyChoice::Lost(i) => (&self.lost[(i % LOST_KEYS) as usize], None),
            KeyChoice::Own(i) => {
                let pool = self.own_pool()?;
                let (key, protection) = &pool[(i % OWN_PROTECTION_POOL) as usize];
                (key, Some(protection))
            }
        })
    }

    fn own_pool(&self) -> Result<&[(RecordKey, Protection)], PcsError> {
        let pool = self.own.get_or_init(|| {
            (0..OWN_PROTECTION_POOL)
                .map(|i| {
                    let key = record_key(self.seed, &format!("{}/own record key/{i}", self.zone));
                    let mut rnd = rng(self.seed, &format!("{}/own protection/{i}", self.zone));
                    let protection = record_protection(&self.zone_key, std::slice::from_ref(&key), None, &mut rnd)?;
                    Ok((key, protection))
                })
                .collect()
        });
        pool.as_deref().map_err(Clone::clone)
    }

    /// The zone's `protectionInfo` (for the service identity) and `recordProtectionInfo` with the
    /// record keys published now: the current key first, then the previous one and the late keys
    /// given. `refresh` varies the randomness, as a re-created protection would.
    pub fn protections(&self, service: &SimEcKey, late: &[u64], refresh: u64) -> Result<(Protection, Protection), PcsError> {
        let mut rnd = rng(self.seed, &format!("{}/protection/{refresh}", self.zone));
        let zone = zone_protection(service, std::slice::from_ref(&self.zone_key), &mut rnd)?;
        let mut keys = vec![self.current.clone()];
        keys.extend(self.previous.iter().cloned());
        keys.extend(late.iter().map(|&i| self.late[(i % LATE_KEYS) as usize].clone()));
        let records = record_protection(&self.zone_key, &keys, None, &mut rnd)?;
        Ok((zone, records))
    }
}

/// The whole account's keys.
pub struct KeyMaterial {
    /// The account's MasterKey: it signs the service identity and never leaves the simulator.
    pub master: SimEcKey,
    pub service: SimEcKey,
    pub zones: Vec<ZoneKeys>,
}

impl KeyMaterial {
    /// `rolled` names the zones whose record keys were rolled once.
    pub fn new(seed: u64, zones: &[&'static str], rolled: &[&str]) -> Self {
        KeyMaterial {
            master: SimEcKey::generate(&mut rng(seed, "master key")),
            service: SimEcKey::generate(&mut rng(seed, "service identity")),
            zones: zones.iter().map(|&z| ZoneKeys::new(seed, z, rolled.contains(&z))).collect(),
        }
    }

    pub fn zone(&self, zone: &str) -> Option<&ZoneKeys> {
        self.zones.iter().find(|z| z.zone == zone)
    }
}
