//! The meaning of a committed offset in engauge, carried in the commit's metadata string.
//!
//! The committed offset is the **rebuild start**: the first offset whose partition event-time
//! progress reached the oldest time any open window instance still needs. A new owner of the
//! partition (after a restart or a rebalance) starts there and rebuilds state by re-reading.
//! The metadata says how far the previous owner had processed (`next`: messages before it are
//! replay, neither counted again nor dead-lettered again) and up to which watermark it had
//! published snapshots (`published`: instances ending at or before it are not published again).

/// One partition's commit point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    /// Where a new owner starts reading (the committed offset).
    pub rebuild_from: i64,
    /// First offset not yet processed.
    pub next: i64,
    /// Watermark up to which snapshots were published, milliseconds; `None` if none yet.
    pub published: Option<i64>,
}

const VERSION: &str = "engauge1";

impl CommitPoint {
    /// The metadata string: `engauge1;next=<offset>;published=<millis|->`.
    pub fn metadata(&self) -> String {
        let published = self
            .published
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        format!("{VERSION};next={};published={published}", self.next)
    }

    /// Reads a committed offset and its metadata; `None` if the metadata is not engauge's.
    pub fn parse(offset: i64, metadata: &str) -> Option<CommitPoint> {
        let mut parts = metadata.split(';');
        if parts.next()? != VERSION {
            return None;
        }
        let next = parts.next()?.strip_prefix("next=")?.parse().ok()?;
        let published = match parts.next()?.strip_prefix("published=")? {
            "-" => None,
            p => Some(p.parse().ok()?),
        };
        Some(CommitPoint {
            rebuild_from: offset,
            next,
            published,
        })
    }
}

/// A checkpoint record (exactly-once): one per input partition, keyed by [`checkpoint_key`],
/// written to the checkpoint topic in the same transaction as the snapshots it covers and the
/// input offsets. It repeats the commit point (some brokers keep no offset metadata) and says
/// where the engine state of the whole assignment was saved in that transaction, if it was
/// ([`StateRef`]; the state itself is on the state topic, see [`crate::state_chunks`]).
///
/// Format (all integers little-endian): `EGCK`, version `u8`, `rebuild_from i64`, `next i64`,
/// published flag `u8` and `i64`, then a length `u32` and that many bytes: in version 1 always
/// empty; in version 2 empty (no state saved) or a [`StateRef`] (40 bytes). A newer engauge reads
/// every older version; an unknown newer version is refused (ignored, with a message, by the
/// caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub point: CommitPoint,
    pub state: Option<StateRef>,
}

/// Where a saved state is: the chunks of state `id`, on partition `partition` of the state
/// topic, at or after offset `from`; `len` bytes in all, FNV-1a hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRef {
    pub id: u64,
    pub partition: i32,
    pub from: i64,
    pub chunks: u32,
    pub len: u64,
    pub hash: u64,
}

const CHECKPOINT_MAGIC: &[u8; 4] = b"EGCK";
const CHECKPOINT_VERSION: u8 = 2;
const STATE_REF_LEN: usize = 8 + 4 + 8 + 4 + 8 + 8;

/// Why a checkpoint record was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not an engauge checkpoint record")]
    NotACheckpoint,
    #[error(
        "checkpoint format version {0} is newer than this engauge reads ({CHECKPOINT_VERSION})"
    )]
    NewerVersion(u8),
    #[error("truncated checkpoint record")]
    Truncated,
}

/// The checkpoint topic key of a group's input partition.
pub fn checkpoint_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// The key of an input partition's ownership claims on the checkpoint topic (exactly-once):
/// each new owner writes its transactional id there, after fencing the ids found there, and
/// before its first transaction. A member that takes over a partition therefore knows every
/// transactional id that may still hold an open transaction over it, even when its own id
/// differs (another partition set), and a broker without transaction timeouts does not leave
/// `read_committed` readers stalled behind a dead owner's transaction.
pub fn owner_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}/owner")
}

impl Checkpoint {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.push(CHECKPOINT_VERSION);
        out.extend_from_slice(&self.point.rebuild_from.to_le_bytes());
        out.extend_from_slice(&self.point.next.to_le_bytes());
        out.push(u8::from(self.point.published.is_some()));
        out.extend_from_slice(&self.point.published.unwrap_or(0).to_le_bytes());
        match &self.state {
            None => out.extend_from_slice(&0u32.to_le_bytes()),
            Some(r) => {
                out.extend_from_slice(&(STATE_REF_LEN as u32).to_le_bytes());
                out.extend_from_slice(&r.id.to_le_bytes());
                out.extend_from_slice(&r.partition.to_le_bytes());
                out.extend_from_slice(&r.from.to_le_bytes());
                out.extend_from_slice(&r.chunks.to_le_bytes());
                out.extend_from_slice(&r.len.to_le_bytes());
                out.extend_from_slice(&r.hash.to_le_bytes());
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let rest = bytes
            .strip_prefix(CHECKPOINT_MAGIC)
            .ok_or(CheckpointError::NotACheckpoint)?;
        let (&version, mut rest) = rest.split_first().ok_or(CheckpointError::Truncated)?;
        if version > CHECKPOINT_VERSION {
            return Err(CheckpointError::NewerVersion(version));
        }
        if version == 0 {
            return Err(CheckpointError::NotACheckpoint);
        }
        let mut take = |n: usize| -> Result<&[u8], CheckpointError> {
            if rest.len() < n {
                return Err(CheckpointError::Truncated);
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let i64_at = |b: &[u8]| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let rebuild_from = i64_at(take(8)?);
        let next = i64_at(take(8)?);
        let has_published = take(1)?[0] == 1;
        let published = i64_at(take(8)?);
        let len = u32::from_le_bytes(take(4)?.try_into().unwrap_or([0; 4])) as usize;
        let state = take(len)?;
        let state = match (version, len) {
            (_, 0) => None,
            (2, STATE_REF_LEN) => {
                let at = |from: usize, n: usize| &state[from..from + n];
                let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
                Some(StateRef {
                    id: i64_at(at(0, 8)) as u64,
                    partition: u32_at(at(8, 4)) as i32,
                    from: i64_at(at(12, 8)),
                    chunks: u32_at(at(20, 4)),
                    len: i64_at(at(24, 8)) as u64,
                    hash: i64_at(at(32, 8)) as u64,
                })
            }
            // Version 1 carried no state; anything else is not ours.
            _ => return Err(CheckpointError::NotACheckpoint),
        };
        Ok(Checkpoint {
            point: CommitPoint {
                rebuild_from,
                next,
                published: has_published.then_some(published),
            },
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record written by engauge's first checkpoint format (checked in): every later version
    /// must still read it.
    #[test]
    fn reads_the_version_1_fixture() {
        let bytes = include_bytes!("../../../tests/data/checkpoint-v1.bin");
        assert_eq!(
            Checkpoint::decode(bytes),
            Ok(Checkpoint {
                point: CommitPoint {
                    rebuild_from: 1234,
                    next: 98_765,
                    published: Some(1_767_225_600_000),
                },
                state: None,
            })
        );
    }

    #[test]
    fn round_trip() {
        for p in [
            CommitPoint {
                rebuild_from: 5,
                next: 90,
                published: Some(1_767_225_600_000),
            },
            CommitPoint {
                rebuild_from: 0,
                next: 0,
                published: None,
            },
        ] {
            assert_eq!(CommitPoint::parse(p.rebuild_from, &p.metadata()), Some(p));
        }
        assert_eq!(CommitPoint::parse(3, ""), None);
        for p in [
            CommitPoint {
                rebuild_from: 5,
                next: 90,
                published: Some(-3),
            },
            CommitPoint {
                rebuild_from: 0,
                next: 0,
                published: None,
            },
        ] {
            let c = Checkpoint {
                point: p,
                state: Some(StateRef {
                    id: u64::MAX - 5,
                    partition: 2,
                    from: 77,
                    chunks: 300,
                    len: 150_000_000,
                    hash: 0xdead_beef_0bad_f00d,
                }),
            };
            let mut bytes = Vec::new();
            c.encode(&mut bytes);
            assert_eq!(Checkpoint::decode(&bytes), Ok(c));
            for cut in 0..bytes.len() {
                assert!(Checkpoint::decode(&bytes[..cut]).is_err());
            }
            bytes[4] = 3;
            assert_eq!(
                Checkpoint::decode(&bytes),
                Err(CheckpointError::NewerVersion(3))
            );
            bytes[4] = 1;
            assert_eq!(
                Checkpoint::decode(&bytes),
                Err(CheckpointError::NotACheckpoint),
                "version 1 carries no state"
            );
        }
        assert_eq!(CommitPoint::parse(3, "engauge1;next=x;published=-"), None);
    }
}
