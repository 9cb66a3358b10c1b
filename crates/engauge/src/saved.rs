//! Exactly-once restore without re-reading: the state of a whole assignment as one blob (the
//! engine's own state, `Engine::save_state`, plus what the pipeline keeps per partition), written
//! to the state topic in every checkpoint transaction and found again through the checkpoint
//! records (`engauge_kafka::StateRef`).
//!
//! ```text
//! "EGAS"  u16 version  u32 n  n bytes: partitions (bincode)  engine state (to the end)
//! ```

use engauge_core::Millis;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"EGAS";
const VERSION: u16 = 1;

/// What the pipeline keeps per partition besides the engine: the position the state covers
/// (it must equal the committed offset to be restored), where this owner's reading started,
/// event-time progress (for the rebuild start of later commits) and the greatest event time
/// (the watermark tracker's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPartition {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
    pub started_at: i64,
    pub max_ts: Option<Millis>,
    pub progress: Vec<(i64, i64)>,
}

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

pub fn encode(partitions: &[SavedPartition], engine: &[u8]) -> Vec<u8> {
    use bincode::Options;
    let parts = options()
        .serialize(partitions)
        .unwrap_or_else(|_| Vec::new());
    let mut out = Vec::with_capacity(10 + parts.len() + engine.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    out.extend_from_slice(&parts);
    out.extend_from_slice(engine);
    out
}

/// The partitions and the engine state's bytes, or why the blob is not usable.
pub fn decode(bytes: &[u8]) -> Result<(Vec<SavedPartition>, &[u8]), String> {
    use bincode::Options;
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not an engauge assignment state")?;
    if rest.len() < 6 {
        return Err("truncated assignment state".into());
    }
    let version = u16::from_le_bytes([rest[0], rest[1]]);
    if version != VERSION {
        return Err(format!(
            "assignment state version {version} is not {VERSION}"
        ));
    }
    let n = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
    let rest = &rest[6..];
    if rest.len() < n {
        return Err("truncated assignment state".into());
    }
    let partitions = options()
        .deserialize(&rest[..n])
        .map_err(|e| format!("assignment state: {e}"))?;
    Ok((partitions, &rest[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let parts = vec![SavedPartition {
            topic: "events".into(),
            partition: 3,
            next: 5_000,
            started_at: 17,
            max_ts: Some(1_767_225_600_000),
            progress: vec![(490_896, 17), (490_897, 4_000)],
        }];
        let bytes = encode(&parts, b"engine");
        assert_eq!(decode(&bytes), Ok((parts, &b"engine"[..])));
        for cut in 0..bytes.len() - 6 {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut newer = bytes.clone();
        newer[4] = 9;
        assert!(decode(&newer).is_err());
    }
}
