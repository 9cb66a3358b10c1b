//! Duplicate detection by event `id` within `dedup_horizon`, in memory bounded by the ids seen in
//! one horizon of event time.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use crate::Millis;

/// The ids are already 64-bit hashes: hash them as themselves.
#[derive(Debug, Default, Clone, Copy)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Remembers 64-bit hashes of ids, bucketed by minute of event time, and forgets a bucket once the
/// watermark is more than the horizon past it.
#[derive(Debug)]
pub(crate) struct Dedup {
    horizon: Millis,
    seen: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    buckets: BTreeMap<Millis, Vec<u64>>,
    /// Emptied buckets, kept for reuse: a bucket filled from empty reallocates a dozen times.
    spare: Vec<Vec<u64>>,
    hasher: foldhash::quality::FixedState,
}

const BUCKET: Millis = 60_000;
/// Emptied buckets kept for reuse.
const SPARE_BUCKETS: usize = 8;

impl Dedup {
    pub fn new(horizon: Millis) -> Self {
        Dedup {
            horizon,
            seen: HashSet::default(),
            buckets: BTreeMap::new(),
            spare: Vec::new(),
            hasher: foldhash::quality::FixedState::with_seed(0x656e_6761_7567_6521),
        }
    }

    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.seen.contains(&hash)
    }

    /// Records an id; `at` is the later of its event time and the watermark, so late events are
    /// remembered for a full horizon too. Returns `false` when the id was already known.
    pub fn insert(&mut self, hash: u64, at: Millis) -> bool {
        if !self.seen.insert(hash) {
            return false;
        }
        let bucket = at.div_euclid(BUCKET);
        // Most ids land in the newest bucket: skip the tree walk for it.
        match self.buckets.last_entry() {
            Some(mut last) if *last.key() == bucket => last.get_mut().push(hash),
            _ => {
                let spare = &mut self.spare;
                self.buckets
                    .entry(bucket)
                    .or_insert_with(|| spare.pop().unwrap_or_default())
                    .push(hash);
            }
        }
        true
    }

    /// Forgets ids whose bucket ended more than `horizon` before `watermark`.
    pub fn evict(&mut self, watermark: Millis) {
        let limit = (watermark - self.horizon).div_euclid(BUCKET);
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() >= limit {
                break;
            }
            let mut hashes = entry.remove();
            for hash in hashes.drain(..) {
                self.seen.remove(&hash);
            }
            if self.spare.len() < SPARE_BUCKETS {
                self.spare.push(hashes);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Checkpoint encoding: the horizon and the buckets; the set is rebuilt from them.
impl serde::Serialize for Dedup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&(self.horizon, &self.buckets), s)
    }
}

impl<'de> serde::Deserialize<'de> for Dedup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (horizon, buckets): (Millis, BTreeMap<Millis, Vec<u64>>) =
            serde::Deserialize::deserialize(d)?;
        let mut dedup = Dedup::new(horizon);
        dedup.seen.reserve(buckets.values().map(Vec::len).sum());
        for hash in buckets.values().flatten() {
            dedup.seen.insert(*hash);
        }
        dedup.buckets = buckets;
        Ok(dedup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_horizon_and_forgets_after() {
        let mut d = Dedup::new(3_600_000);
        let h = d.hash("evt-1");
        assert!(!d.contains(h));
        d.insert(h, 10_000_000);
        assert!(d.contains(h));
        d.evict(10_000_000 + 3_600_000);
        assert!(d.contains(h), "still within the horizon");
        d.evict(10_000_000 + 3_600_000 + 2 * BUCKET);
        assert!(!d.contains(h));
        assert_eq!(d.len(), 0);
        assert_ne!(d.hash("a"), d.hash("b"));
    }

    #[test]
    fn survives_encoding() {
        let mut d = Dedup::new(3_600_000);
        for (n, at) in [(1u64, 0), (2, 70_000), (3, 200_000)] {
            d.insert(n, at);
        }
        let bytes = bincode::serialize(&d).expect("encodes");
        let mut back: Dedup = bincode::deserialize(&bytes).expect("decodes");
        assert!((1..=3).all(|n| back.contains(n)) && !back.contains(4));
        back.evict(3_600_000 + 120_000);
        assert!(!back.contains(1) && !back.contains(2) && back.contains(3));
    }
}
