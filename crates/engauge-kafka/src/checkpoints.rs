//! Reading the checkpoint topic back: the records of each wanted key, oldest first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::KafkaSettings;

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
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set(
            "group.id",
            format!("{}.checkpoint-reader", settings.group_id),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
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
    let consumer: BaseConsumer = config.create()?;
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(left.min(Duration::from_millis(100))) {
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
