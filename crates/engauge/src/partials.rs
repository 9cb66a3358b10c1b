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
    /// Sketch windows with lifecycle KPIs: (lg_k, Theta image of everyone seen before the
    /// instance), taken out of the segments' parts ([`Parts::take_seen`]): one copy per
    /// partial instead of one per segment.
    pub seen: Option<(u8, Vec<u8>)>,
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

/// Largest partial record: a record over this goes out in chunks ([`chunks`]), well under
/// Kafka's default `message.max.bytes` (1 MB). Sketch windows make large partials (a sketch per
/// segment, KPI and feature).
pub const CHUNK: usize = 900 * 1024;
const CHUNK_MAGIC: &[u8; 4] = b"EGPC";

/// `record` (an encoded partial record) as chunk records when it is larger than [`CHUNK`]:
/// `"EGPC"  u16 version  u32 index  u32 count`, then that part of the record. They go out in
/// order under the record's key, so they follow each other in one partials partition
/// (a [`Reassembly`] puts them together again). `None`: small enough to go out whole.
pub fn chunks(record: &[u8]) -> Option<Vec<Vec<u8>>> {
    if record.len() <= CHUNK {
        return None;
    }
    let count = record.len().div_ceil(CHUNK) as u32;
    Some(
        record
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, part)| {
                let mut out = Vec::with_capacity(14 + part.len());
                out.extend_from_slice(CHUNK_MAGIC);
                out.extend_from_slice(&VERSION.to_le_bytes());
                out.extend_from_slice(&(i as u32).to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(part);
                out
            })
            .collect(),
    )
}

/// Puts chunked partial records of one partials partition together again.
#[derive(Debug, Default)]
pub struct Reassembly {
    /// (offset of chunk 0, chunk count, next index, bytes so far).
    open: Option<(i64, u32, u32, Vec<u8>)>,
}

/// What one message of the partials topic gives.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// A record, with the offset it starts at (its first chunk's, when chunked).
    Record(Record, i64),
    /// A chunk of a record not complete yet.
    Partial,
    /// Not readable (logged by the caller; the rest of the topic still counts).
    Error(String),
}

impl Reassembly {
    /// The message at `offset`.
    pub fn read(&mut self, bytes: &[u8], offset: i64) -> Read {
        let Some(rest) = bytes.strip_prefix(CHUNK_MAGIC) else {
            // A chunked record still open was cut short (its writer stopped mid-way; the next
            // owner of the input partition sends the instance again): dropped.
            self.open = None;
            return match decode(bytes) {
                Ok(r) => Read::Record(r, offset),
                Err(e) => Read::Error(e),
            };
        };
        let header = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?))
        };
        let version = rest.get(..2).map(|v| u16::from_le_bytes([v[0], v[1]]));
        let (Some(index), Some(count)) = (header(2), header(6)) else {
            self.open = None;
            return Read::Error("truncated chunk header".into());
        };
        if version != Some(VERSION) {
            self.open = None;
            return Read::Error(format!(
                "partial chunk version {version:?} (this build reads {VERSION})"
            ));
        }
        let part = &rest[10..];
        if index == 0 {
            self.open = Some((offset, count, 0, Vec::with_capacity(count as usize * CHUNK)));
        }
        match self.open.as_mut() {
            Some((_, n, next, buf)) if *n == count && *next == index => {
                buf.extend_from_slice(part);
                *next += 1;
            }
            _ => {
                self.open = None;
                return Read::Error(format!("chunk {index} of {count} out of sequence"));
            }
        }
        match self.open.take() {
            Some((first, n, next, buf)) if next == n => match decode(&buf) {
                Ok(r) => Read::Record(r, first),
                Err(e) => Read::Error(e),
            },
            open => {
                self.open = open;
                Read::Partial
            }
        }
    }

    /// The offset of the first chunk of a record still being put together: a checkpoint's
    /// position must not pass it.
    pub fn open_at(&self) -> Option<i64> {
        self.open.as_ref().map(|o| o.0)
    }
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
    fn large_records_go_out_in_chunks_and_come_back_whole() {
        let big = Record::Progress(Progress {
            topic: "events".into(),
            partition: 1,
            watermark: 7,
            sample: (0..300_000u64).map(|i| i * 0x9e37_79b9).collect(),
        });
        let mut bytes = Vec::new();
        encode(&big, &mut bytes);
        assert!(bytes.len() > 2 * CHUNK);
        let chunks = chunks(&bytes).expect("chunked");
        assert_eq!(chunks.len(), bytes.len().div_ceil(CHUNK));
        assert!(chunks.iter().all(|c| c.len() <= CHUNK + 14));
        let mut small = Vec::new();
        encode(
            &Record::Progress(Progress {
                topic: "events".into(),
                partition: 1,
                watermark: 8,
                sample: vec![],
            }),
            &mut small,
        );
        assert!(super::chunks(&small).is_none());

        // In order: whole at the first chunk's offset; the position stays there meanwhile.
        let mut r = Reassembly::default();
        for (i, c) in chunks.iter().enumerate() {
            let got = r.read(c, 100 + i as i64);
            if i + 1 < chunks.len() {
                assert_eq!(got, Read::Partial);
                assert_eq!(r.open_at(), Some(100));
            } else {
                assert_eq!(got, Read::Record(big.clone(), 100));
                assert_eq!(r.open_at(), None);
            }
        }
        // Cut short by a whole record (a new owner): the rest is dropped, the record read.
        let mut r = Reassembly::default();
        assert_eq!(r.read(&chunks[0], 5), Read::Partial);
        assert!(matches!(r.read(&small, 6), Read::Record(_, 6)));
        assert_eq!(r.open_at(), None);
        assert!(matches!(r.read(&chunks[1], 7), Read::Error(_)));
        // A repeat from chunk 0 starts over; garbage is an error, never a panic.
        let mut r = Reassembly::default();
        assert_eq!(r.read(&chunks[0], 1), Read::Partial);
        assert_eq!(r.read(&chunks[0], 2), Read::Partial);
        assert_eq!(r.open_at(), Some(2));
        for junk in [&b"EGPC"[..], b"EGPC\x02\x00\x01", b"", b"EGPR"] {
            assert!(matches!(r.read(junk, 3), Read::Error(_)));
        }
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
