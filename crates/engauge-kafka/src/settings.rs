//! Connection settings and the librdkafka properties engauge sets, with user pass-through.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

/// Where to read and write, and librdkafka properties passed through verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub input_topics: Vec<String>,
    pub snapshot_topic: String,
    pub dead_letter_topic: String,
    /// Exactly-once: per-partition checkpoint records (compacted topic), written in the same
    /// transaction as the snapshots and the input offsets.
    pub checkpoint_topic: String,
    /// Exactly-once: the engine state, in chunks, written in the same transaction and found
    /// through the checkpoint records (see [`crate::state_chunks`]).
    pub state_topic: String,
    /// Extra consumer properties (`[kafka.consumer]`), applied last: they win.
    pub consumer: BTreeMap<String, String>,
    /// Extra producer properties (`[kafka.producer]`), applied last: they win.
    pub producer: BTreeMap<String, String>,
}

/// A property engauge relies on was overridden to a value it cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kafka.{table}.{key} = {value:?} is not supported: {why}")]
pub struct SettingsError {
    pub table: &'static str,
    pub key: String,
    pub value: String,
    pub why: &'static str,
}

impl KafkaSettings {
    /// Consumer properties: ours (throughput-minded, manual offset control), then the user's.
    pub fn consumer_config(&self) -> Result<ClientConfig, SettingsError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.queue.backoff.ms", "50")
            // Bounded read-ahead (librdkafka's defaults keep up to 100 000 messages and 64 MiB
            // per partition once partitions have queues of their own). A CPU-bound consumer
            // gains nothing from more; a backfill then held the whole topic in fresh memory and
            // over a third of the fetch thread's time went on faulting pages in (BENCHMARKS.md).
            .set("queued.min.messages", "10000")
            .set("queued.max.messages.kbytes", "16384")
            .set("max.partition.fetch.bytes", "262144")
            .set("fetch.max.bytes", "1048576")
            .set("statistics.interval.ms", "1000")
            .set("client.id", "engauge");
        for (k, v) in &self.consumer {
            let unsupported = match k.as_str() {
                "enable.auto.commit" | "enable.auto.offset.store" => (v != "false")
                    .then_some("engauge commits offsets itself once their effects are safe"),
                "enable.partition.eof" => (v != "true")
                    .then_some("engauge needs end-of-partition events to tell idle partitions"),
                _ => None,
            };
            if let Some(why) = unsupported {
                return Err(SettingsError {
                    table: "consumer",
                    key: k.clone(),
                    value: v.clone(),
                    why,
                });
            }
            c.set(k, v);
        }
        Ok(c)
    }

    /// Producer properties: idempotent, batched, compressed; then the user's. LZ4 pays for
    /// itself even on loopback: a backfill publishing snapshots uncompressed spent more of the
    /// core sending the bytes than LZ4 took to shrink them (BENCHMARKS.md). A 20 ms linger
    /// lets a backfill's snapshots fill batches near `batch.size` (1 MB): the producer thread
    /// then costs a third less than with 5 ms, for at most 20 ms more before a snapshot is
    /// visible (the goal is 250 ms at p99).
    pub fn producer_config(&self) -> Result<ClientConfig, SettingsError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            .set("client.id", "engauge");
        for (k, v) in &self.producer {
            let unsupported = match k.as_str() {
                "enable.idempotence" => (v != "true")
                    .then_some("snapshots and dead letters rely on the idempotent producer"),
                "transactional.id" => Some(
                    "engauge derives transactional ids from the group and the assigned partitions \
                     (set guarantee = \"exactly_once\")",
                ),
                _ => None,
            };
            if let Some(why) = unsupported {
                return Err(SettingsError {
                    table: "producer",
                    key: k.clone(),
                    value: v.clone(),
                    why,
                });
            }
            c.set(k, v);
        }
        Ok(c)
    }

    /// Producer properties for exactly-once: the idempotent producer's, plus `transactional.id`.
    pub fn transactional_producer_config(
        &self,
        transactional_id: &str,
    ) -> Result<ClientConfig, SettingsError> {
        let mut c = self.producer_config()?;
        c.set("transactional.id", transactional_id);
        Ok(c)
    }

    /// The `transactional.id` of a member owning `partitions`: deterministic per group and
    /// partition set, so the next owner of the same set fences a zombie predecessor
    /// (`init_transactions` aborts its open transaction). A member whose set differs is fenced
    /// by the group generation carried with its transactional offset commits (KIP-447).
    pub fn transactional_id(&self, partitions: &[(String, i32)]) -> String {
        let mut sorted: Vec<&(String, i32)> = partitions.iter().collect();
        sorted.sort();
        // FNV-1a: stable across versions and platforms (unlike the std hasher).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (topic, partition) in sorted {
            for b in topic.bytes().chain([0]).chain(partition.to_le_bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("engauge-{}-{}-{h:016x}", self.group_id, partitions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> KafkaSettings {
        KafkaSettings {
            brokers: "localhost:9092".into(),
            group_id: "g".into(),
            input_topics: vec!["events".into()],
            snapshot_topic: "s".into(),
            dead_letter_topic: "d".into(),
            checkpoint_topic: "c".into(),
            state_topic: "s".into(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }

    #[test]
    fn transactional_id_depends_on_the_partition_set_only() {
        let s = settings();
        let a = s.transactional_id(&[("events".into(), 0), ("events".into(), 1)]);
        let b = s.transactional_id(&[("events".into(), 1), ("events".into(), 0)]);
        assert_eq!(a, b, "order does not matter");
        assert_eq!(a, "engauge-g-2-".to_owned() + &a[12..]);
        assert_ne!(a, s.transactional_id(&[("events".into(), 0)]));
        assert_ne!(
            a,
            s.transactional_id(&[("events".into(), 0), ("events".into(), 2)])
        );
        // Stable across releases: a new engauge must fence the old one's producer.
        // (FNV-1a of "events", 0, partition 0 as little-endian i32.)
        assert_eq!(
            s.transactional_id(&[("events".into(), 0)]),
            "engauge-g-1-5c3d4ccf0481008c"
        );
    }

    #[test]
    fn read_ahead_is_bounded_and_the_user_still_wins() {
        let mut s = settings();
        let c = s.consumer_config().expect("defaults are valid");
        assert_eq!(c.get("queued.min.messages"), Some("10000"));
        assert_eq!(c.get("fetch.max.bytes"), Some("1048576"));
        s.consumer
            .insert("fetch.max.bytes".into(), "52428800".into());
        let c = s.consumer_config().expect("an override is valid");
        assert_eq!(c.get("fetch.max.bytes"), Some("52428800"));
    }

    #[test]
    fn producer_lingers_and_the_user_still_wins() {
        let mut s = settings();
        let p = s.producer_config().expect("defaults are valid");
        assert_eq!(p.get("linger.ms"), Some("20"));
        assert_eq!(p.get("compression.type"), Some("lz4"));
        s.producer.insert("linger.ms".into(), "0".into());
        let p = s.producer_config().expect("an override is valid");
        assert_eq!(p.get("linger.ms"), Some("0"));
    }

    #[test]
    fn refuses_a_transactional_id_of_its_own() {
        let mut s = settings();
        s.producer.insert("transactional.id".into(), "mine".into());
        assert!(s.producer_config().is_err());
    }
}
