//! Scale-out records on the partials topic (internal; see docs/scale-out.md).
//!
//! Each instance runs one engine per input partition and publishes, keyed by
//! `<input topic>|<partition>` (so one partition's records stay in order):
//!
//! * an [`InstancePartial`] when a window instance closes on the partition: the mergeable
//!   [`Parts`] of every segment that has any;
//! * a [`Progress`] record after each batch of those and at least every second while the
//!   partition's watermark moves: every instance ending at or before `watermark` has been
//!   reported (one without a partial had nothing on this partition). It also carries a small
//!   sample of the partition's user hashes, from which the merger detects input not keyed by
//!   `user_id`.
//!
//! ```text
//! "EGPR"  u16 version  bincode(Record)
//! ```

use engauge_core::{Millis, Parts};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"EGPR";
/// Version 2: parts carry the sketches of sketch windows. Instances of one group must run
/// builds with the same version (a merger refuses other versions and counts them as late).
const VERSION: u16 = 2;

/// How many of the smallest user hashes a partition's sample keeps.
pub const SAMPLE: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Instance(InstancePartial),
    Progress(Progress),
}

/// One window instance closed on one input partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstancePartial {
    pub topic: String,
    pub partition: i32,
    pub window: String,
    pub start: Millis,
    pub end: Millis,
    pub watermark: Millis,
    pub utc_offsets: Option<(i32, i32)>,
    /// (segment labels, parts) of each segment with anything in it.
    pub segments: Vec<(Vec<(String, String)>, Parts)>,
}

/// A partition's watermark and user sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub topic: String,
    pub partition: i32,
    pub watermark: Millis,
    /// The smallest user hashes seen on the partition (at most [`SAMPLE`], ascending).
    pub sample: Vec<u64>,
}

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

pub fn encode(record: &Record, out: &mut Vec<u8>) {
    use bincode::Options;
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    // Plain data: serializing into a vector cannot fail.
    let _ = options().serialize_into(out, record);
}

pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    use bincode::Options;
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not an engauge partial record")?;
    let (version, body) = rest.split_at_checked(2).ok_or("truncated partial record")?;
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version != VERSION {
        return Err(format!(
            "partial record version {version} (this build reads {VERSION})"
        ));
    }
    options()
        .deserialize(body)
        .map_err(|e| format!("corrupt partial record: {e}"))
}

/// The partials-topic key of an input partition.
pub fn key(topic: &str, partition: i32) -> Vec<u8> {
    format!("{topic}|{partition}").into_bytes()
}

/// A stable 64-bit hash of a user id (FNV-1a with a final mix), the same in every process.
pub fn user_hash(user: &str) -> u64 {
    let mut h = user.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // splitmix64 finaliser: FNV's low bits are weak for short keys.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The [`SAMPLE`] smallest distinct user hashes seen (a bottom-k sample). With input keyed by
/// user, two partitions never share a user, so their samples never share a hash; with input
/// spread otherwise, the smallest hashes of all users show up in several partitions' samples.
#[derive(Debug, Clone, Default)]
pub struct UserSample {
    /// Ascending.
    hashes: Vec<u64>,
}

impl UserSample {
    pub fn add(&mut self, hash: u64) {
        if self.hashes.len() == SAMPLE && self.hashes.last().is_some_and(|&max| hash >= max) {
            return;
        }
        if let Err(at) = self.hashes.binary_search(&hash) {
            self.hashes.insert(at, hash);
            self.hashes.truncate(SAMPLE);
        }
    }

    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_bytes_are_refused() {
        let record = Record::Progress(Progress {
            topic: "events".into(),
            partition: 3,
            watermark: 1_700_000_000_000,
            sample: vec![1, 5, 9],
        });
        let mut out = Vec::new();
        encode(&record, &mut out);
        assert_eq!(decode(&out), Ok(record));
        assert!(decode(b"nope").is_err());
        assert!(decode(&out[..out.len() - 1]).is_err());
        let mut newer = out.clone();
        newer[4] = 9;
        assert!(decode(&newer).unwrap_err().contains("version"));
    }

    #[test]
    fn sample_keeps_the_smallest_distinct_hashes() {
        let mut s = UserSample::default();
        for h in (0..1000u64).rev().chain(0..10) {
            s.add(h * 7);
        }
        let want: Vec<u64> = (0..SAMPLE as u64).map(|h| h * 7).collect();
        assert_eq!(s.hashes(), &want[..]);
    }

    #[test]
    fn user_hash_is_stable() {
        // Pinned: partitions hashed by different builds must agree.
        assert_eq!(user_hash("u1"), 8_169_491_770_928_374_175);
        assert_ne!(user_hash("u1"), user_hash("u2"));
    }
}
