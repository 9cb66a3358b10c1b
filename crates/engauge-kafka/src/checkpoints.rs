//! Reading the checkpoint topic back (the records of each wanted key, oldest first), and the
//! engine state on the state topic: written in chunks, found again through a [`StateRef`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{KafkaSettings, StateRef};

/// Reads every partition of the checkpoint topic from the beginning to its end (with
/// `read_committed`, the end is the last stable offset: records of aborted transactions are
/// skipped) and returns the values of each key in `keys`, in log order. The caller picks the one
/// that matches the committed offsets: a broker that does not hide aborted transactions (or an
/// uncompacted topic) shows older and aborted records too. An empty topic gives an empty map; a
/// missing topic is an error.
pub fn read_checkpoints(
    settings: &KafkaSettings,
    keys: &[String],
    timeout: Duration,
) -> Result<HashMap<String, Vec<Vec<u8>>>, KafkaError> {
    read_keys(settings, keys, timeout, "read_committed")
}

/// The transactional ids that claimed these input partitions (exactly-once), newest last per
/// key of [`owner_key`]. Read uncommitted: claims are written outside transactions, and an
/// open transaction of a dead owner on the checkpoint topic would hide them from a
/// `read_committed` reader, which is just when they are needed.
pub fn read_owners(
    settings: &KafkaSettings,
    keys: &[String],
    timeout: Duration,
) -> Result<HashMap<String, Vec<Vec<u8>>>, KafkaError> {
    read_keys(settings, keys, timeout, "read_uncommitted")
}

fn read_keys(
    settings: &KafkaSettings,
    keys: &[String],
    timeout: Duration,
    isolation: &str,
) -> Result<HashMap<String, Vec<Vec<u8>>>, KafkaError> {
    let consumer = reader(settings, "checkpoint-reader", isolation)?;
    let topic = settings.checkpoint_topic.as_str();
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    let mut tpl = TopicPartitionList::new();
    let mut open = Vec::new();
    for &p in &partitions {
        // A partition with nothing in it sends no end-of-partition event: skip it.
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            open.push(p);
        }
    }
    let mut latest = HashMap::new();
    if open.is_empty() {
        return Ok(latest);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    while !open.is_empty() {
        match poll_until(&consumer, deadline)? {
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                if keys.iter().any(|k| k == key) {
                    latest
                        .entry(key.to_owned())
                        .or_insert_with(Vec::new)
                        .push(m.payload().unwrap_or(&[]).to_vec());
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|&o| o != p),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(latest)
}

/// A `read_committed` reader of one topic without group membership: the scale-out merger reads
/// the partials topic with it from positions it keeps itself, and its checkpoint records.
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl TopicReader {
    pub fn new(settings: &KafkaSettings, what: &str, topic: &str) -> Result<Self, KafkaError> {
        Ok(TopicReader {
            consumer: reader(settings, what, "read_committed")?,
            topic: topic.to_owned(),
        })
    }

    /// The topic's partition ids.
    pub fn partitions(&self, timeout: Duration) -> Result<Vec<i32>, KafkaError> {
        let metadata = self.consumer.fetch_metadata(Some(&self.topic), timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        Ok(partitions)
    }

    /// Reads these partitions from these offsets (`None`: from the beginning).
    pub fn assign(&self, from: &[(i32, Option<i64>)]) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for &(p, offset) in from {
            let offset = offset.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(&self.topic, p, offset)?;
        }
        self.consumer.assign(&tpl)
    }

    /// The next message, end-of-partition notice (`Err(PartitionEOF)`) or error.
    pub fn poll(
        &self,
        timeout: Duration,
    ) -> Option<Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>> {
        self.consumer.poll(timeout)
    }

    /// The payload of the record at `offset` of `partition` (`None` if it is not there any
    /// more); an error if it cannot be read before `timeout`.
    pub fn read_at(
        &self,
        partition: i32,
        offset: i64,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, KafkaError> {
        self.assign(&[(partition, Some(offset))])?;
        let deadline = Instant::now() + timeout;
        loop {
            match poll_until(&self.consumer, deadline) {
                Ok(Some(Ok(m))) if m.offset() == offset => {
                    return Ok(Some(m.payload().unwrap_or(&[]).to_vec()));
                }
                // Past it (compacted or an aborted record skipped), or at the end: not there.
                Ok(Some(Ok(m))) if m.offset() > offset => return Ok(None),
                Ok(Some(Err(KafkaError::PartitionEOF(_)))) => return Ok(None),
                Ok(Some(Err(e))) => return Err(e),
                Ok(_) => {}
                // Not readable in time: an error, not "gone" (the caller must not start over).
                Err(e) => return Err(e),
            }
        }
    }
}

/// The next message or event, waiting at most until `deadline` (an error once it has passed).
fn poll_until(
    consumer: &BaseConsumer,
    deadline: Instant,
) -> Result<Option<Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>>, KafkaError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(KafkaError::MessageConsumption(
            rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
        ));
    }
    Ok(consumer.poll(left.min(Duration::from_millis(100))))
}

/// A `read_committed` consumer with no group membership, for reading back what engauge wrote.
fn reader(
    settings: &KafkaSettings,
    what: &str,
    isolation: &str,
) -> Result<BaseConsumer, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", format!("{}.{what}", settings.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .set("client.id", "engauge-checkpoints");
    // Connection and security settings apply to this reader too.
    for (k, v) in &settings.consumer {
        if k.starts_with("security.")
            || k.starts_with("sasl.")
            || k.starts_with("ssl.")
            || k == "fetch.wait.max.ms"
        {
            config.set(k, v);
        }
    }
    config.create()
}

/// Largest chunk of a saved state: well under Kafka's default `message.max.bytes` (1 MB).
pub const STATE_CHUNK: usize = 900 * 1024;
const CHUNK_MAGIC: &[u8; 4] = b"EGSC";
/// A saved state larger than this is refused as corrupt (64 GiB).
const MAX_STATE: u64 = 64 << 30;

/// 64-bit FNV-1a, the integrity check of a reassembled state.
pub fn state_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The values of the records that carry `state` (saved as `id`) on the state topic: `EGSC`,
/// `id u64`, chunk index `u32`, chunk count `u32` (little-endian), then up to [`STATE_CHUNK`]
/// bytes of the state.
#[derive(Debug)]
pub struct StateChunks<'a> {
    id: u64,
    state: &'a [u8],
    index: u32,
    count: u32,
}

pub fn state_chunks(id: u64, state: &[u8]) -> StateChunks<'_> {
    StateChunks {
        id,
        state,
        index: 0,
        count: state.len().div_ceil(STATE_CHUNK).max(1) as u32,
    }
}

impl StateChunks<'_> {
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Writes the next chunk's value into `out` (cleared first); `false` when all were written.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> bool {
        if self.index == self.count {
            return false;
        }
        let from = self.index as usize * STATE_CHUNK;
        let to = (from + STATE_CHUNK).min(self.state.len());
        out.clear();
        out.extend_from_slice(CHUNK_MAGIC);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.state[from..to]);
        self.index += 1;
        true
    }
}

/// Reassembles the state `r` points to: reads its partition of the state topic from `r.from`
/// until every chunk of state `r.id` is in (other records, of other states or members, are
/// skipped). `Ok(None)` when the partition ends first or the bytes do not check out (e.g. the
/// chunks were compacted or deleted): the caller then rebuilds from history.
pub fn read_state(
    settings: &KafkaSettings,
    r: &StateRef,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, KafkaError> {
    // The reference is not covered by the state's hash: check that it is self-consistent
    // before allocating what it says.
    if r.len > MAX_STATE || u64::from(r.chunks) != r.len.div_ceil(STATE_CHUNK as u64).max(1) {
        return Ok(None);
    }
    let consumer = reader(settings, "state-reader", "read_committed")?;
    let topic = settings.state_topic.as_str();
    let (_, high) = consumer.fetch_watermarks(topic, r.partition, timeout)?;
    if high <= r.from {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, r.partition, Offset::Offset(r.from))?;
    consumer.assign(&tpl)?;
    let mut state = vec![0u8; r.len as usize];
    let mut have = vec![false; r.chunks as usize];
    let mut missing = r.chunks as usize;
    let deadline = Instant::now() + timeout;
    while missing > 0 {
        match poll_until(&consumer, deadline)? {
            Some(Ok(m)) => {
                let value = m.payload().unwrap_or(&[]);
                let Some(rest) = value.strip_prefix(CHUNK_MAGIC) else {
                    continue;
                };
                if rest.len() < 16 || rest[..8] != r.id.to_le_bytes() {
                    continue;
                }
                let index = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
                let count = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]);
                let bytes = &rest[16..];
                let from = index * STATE_CHUNK;
                if count != r.chunks || index >= have.len() || from + bytes.len() > state.len() {
                    return Ok(None);
                }
                if !have[index] {
                    have[index] = true;
                    missing -= 1;
                    state[from..from + bytes.len()].copy_from_slice(bytes);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok((state_hash(&state) == r.hash).then_some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_state_in_order() {
        for len in [0, 1, STATE_CHUNK, STATE_CHUNK + 1, 3 * STATE_CHUNK - 7] {
            let state: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut chunks = state_chunks(42, &state);
            let count = chunks.count();
            assert_eq!(count as usize, len.div_ceil(STATE_CHUNK).max(1));
            let (mut value, mut joined, mut n) = (Vec::new(), Vec::new(), 0u32);
            while chunks.next_into(&mut value) {
                assert_eq!(&value[..4], b"EGSC");
                assert_eq!(value[4..12], 42u64.to_le_bytes());
                assert_eq!(value[12..16], n.to_le_bytes());
                assert_eq!(value[16..20], count.to_le_bytes());
                assert!(value.len() <= 20 + STATE_CHUNK);
                joined.extend_from_slice(&value[20..]);
                n += 1;
            }
            assert_eq!((n, joined), (count, state));
        }
    }
}
