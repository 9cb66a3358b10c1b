//! The consumer-group member: polling, rebalance hand-off, commits with metadata, lag, health.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, TopicPartitionList as Tpl};

use crate::{CommitPoint, KafkaSettings, SettingsError};

/// A change of assignment, handed to the caller on its next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// State the librdkafka callbacks share with the owner of the consumer.
#[derive(Default)]
struct Shared {
    rebalances: Vec<Rebalance>,
    /// Offsets the caller declared safe: committed synchronously when partitions are revoked.
    safe: Option<TopicPartitionList>,
    /// Consumer lag per (topic, partition) from the latest statistics.
    lag: HashMap<(String, i32), i64>,
    /// When the client last reported that no broker answers.
    brokers_down_at: Option<Instant>,
    /// The group generation the revoked partitions were owned under (from the revoke until the
    /// next assignment): a checkpoint on revoke commits with it, so the group refuses it once
    /// another member may own them.
    revoked_under: Option<rdkafka::consumer::ConsumerGroupMetadata>,
}

struct SourceContext {
    shared: Mutex<Shared>,
    /// Set after a rebalance is queued in `shared`: the run loop asks after every message, and
    /// a flag costs less than the lock.
    rebalanced: std::sync::atomic::AtomicBool,
    errors: crate::log::ErrorLog,
}

impl SourceContext {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A poisoned lock only means a callback panicked; the data is plain and still usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Commit points as offsets with their metadata: the rebuild start (at least once), or the
/// processed position (`next`, exactly once: the checkpoint record committed with it says where
/// to rebuild from).
pub(crate) fn offsets_tpl(
    points: &[((String, i32), CommitPoint)],
    processed: bool,
) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = Tpl::new();
    for ((t, p), point) in points {
        let offset = if processed {
            point.next
        } else {
            point.rebuild_from
        };
        tpl.add_partition_offset(t, *p, Offset::Offset(offset))?;
        if let Some(mut e) = tpl.find_partition(t, *p) {
            e.set_metadata(point.metadata());
        }
    }
    Ok(tpl)
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let mut shared = self.shared();
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // `consumer_lag` counts from the committed offset, which here is the rebuild
                // start; the lag that matters is from the application's position.
                if partition >= 0 && p.app_offset >= 0 && p.hi_offset >= 0 {
                    let lag = (p.hi_offset - p.app_offset).max(0);
                    shared.lag.insert((topic.clone(), partition), lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            return; // End of partition is information (handled on poll), not an error.
        }
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        ) {
            self.shared().brokers_down_at = Some(Instant::now());
        }
        // The reason names brokers and error codes only, never payloads.
        self.errors
            .report(format!("kafka consumer error: {error}: {reason}"));
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            self.shared().revoked_under = consumer.group_metadata();
            let safe = self.shared().safe.take();
            if let Some(safe) = safe {
                // Hand over: the next owner starts from what we know is safe.
                if let Err(e) = consumer.commit(&safe, CommitMode::Sync) {
                    eprintln!("engauge: commit on revoke failed: {e}");
                }
            }
            self.shared()
                .rebalances
                .push(Rebalance::Revoked(partitions(tpl)));
            self.rebalanced
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = rebalance {
            let mut shared = self.shared();
            shared.revoked_under = None;
            shared.rebalances.push(Rebalance::Assigned(partitions(tpl)));
            drop(shared);
            self.rebalanced
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// One assigned partition read from a queue of its own ([`Source::split`]).
pub struct PartitionReader {
    topic: String,
    partition: i32,
    queue: PartitionQueue<SourceContext>,
}

impl std::fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionReader")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl PartitionReader {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The partition's next message, end-of-partition notice (`Err(PartitionEOF)`) or error,
    /// without waiting.
    pub fn poll(&self) -> Option<Result<BorrowedMessage<'_>, KafkaError>> {
        self.queue.poll(Duration::ZERO)
    }
}

/// A consumer-group member subscribed to the input topics.
pub struct Source {
    consumer: Arc<BaseConsumer<SourceContext>>,
    /// `auto.offset.reset` points at the end (where a partition without a commit starts).
    reset_to_end: bool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").finish_non_exhaustive()
    }
}

impl Source {
    pub fn new(settings: &KafkaSettings) -> Result<Source, SourceError> {
        let consumer: BaseConsumer<SourceContext> = settings
            .consumer_config()?
            .create_with_context(SourceContext {
                shared: Mutex::new(Shared::default()),
                rebalanced: std::sync::atomic::AtomicBool::new(false),
                errors: crate::log::ErrorLog::default(),
            })?;
        let topics: Vec<&str> = settings.input_topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let reset_to_end = settings
            .consumer
            .get("auto.offset.reset")
            .is_some_and(|v| matches!(v.as_str(), "latest" | "largest" | "end"));
        Ok(Source {
            consumer: Arc::new(consumer),
            reset_to_end,
        })
    }

    /// The group generation to send with transactional offset commits (`None` outside a group).
    /// The first call after a revoke (before the next assignment) gets the generation the
    /// revoked partitions were owned under, not whatever the rejoin has reached meanwhile.
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        let revoked = self.consumer.context().shared().revoked_under.take();
        revoked.or_else(|| self.consumer.group_metadata())
    }

    /// Moves the fetch position of an assigned partition: to `offset`, or where a partition
    /// without a commit starts (`auto.offset.reset`) when `None`. Messages fetched before are
    /// discarded by librdkafka.
    pub fn seek(
        &self,
        topic: &str,
        partition: i32,
        offset: Option<i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let offset = match offset {
            Some(o) => Offset::Offset(o),
            None if self.reset_to_end => Offset::End,
            None => Offset::Beginning,
        };
        self.consumer.seek(topic, partition, offset, timeout)
    }

    /// The next message, end-of-partition notice (`Err(PartitionEOF)`) or error.
    pub fn poll(&self, timeout: Duration) -> Option<Result<BorrowedMessage<'_>, KafkaError>> {
        self.consumer.poll(timeout)
    }

    /// Reads each of `partitions` from a queue of its own (librdkafka's partition queues)
    /// instead of the consumer's one queue, so that the caller chooses which partition to read
    /// next. `wake` is unparked whenever one of these queues gets a message while empty.
    ///
    /// A partition is `None` where librdkafka has no queue for it; its messages keep arriving
    /// through [`Source::poll`]. Once split, a partition stays split in this consumer
    /// (librdkafka keeps an application's queue forwarding across assignments): split every
    /// assignment again, or its messages wait unread. Messages fetched before the split may
    /// still wait in the consumer's queue: seek the split partitions afterwards (a seek
    /// discards what was fetched before it). Consumer events (rebalances, errors, statistics)
    /// still arrive only through [`Source::poll`], which must be called regularly.
    pub fn split(
        &self,
        partitions: &[(String, i32)],
        wake: &std::thread::Thread,
    ) -> Vec<Option<PartitionReader>> {
        partitions
            .iter()
            .map(|(topic, partition)| {
                let mut queue = self.consumer.split_partition_queue(topic, *partition)?;
                let wake = wake.clone();
                queue.set_nonempty_callback(move || wake.unpark());
                Some(PartitionReader {
                    topic: topic.clone(),
                    partition: *partition,
                    queue,
                })
            })
            .collect()
    }

    /// Whether a revoke happened during earlier polls and was not taken yet.
    pub fn revoke_pending(&self) -> bool {
        self.consumer
            .context()
            .shared()
            .rebalances
            .iter()
            .any(|r| matches!(r, Rebalance::Revoked(_)))
    }

    /// Rebalances that happened during earlier polls, oldest first.
    pub fn take_rebalances(&self) -> Vec<Rebalance> {
        let context = self.consumer.context();
        if !context
            .rebalanced
            .swap(false, std::sync::atomic::Ordering::Acquire)
        {
            return Vec::new();
        }
        std::mem::take(&mut context.shared().rebalances)
    }

    /// Commit points of `partitions` as stored in the group (`None` where none is engauge's).
    pub fn committed(
        &self,
        partitions: &[(String, i32)],
        timeout: Duration,
    ) -> Result<Vec<Option<CommitPoint>>, KafkaError> {
        Ok(self
            .committed_offsets(partitions, timeout)?
            .into_iter()
            .map(|c| c.and_then(|(offset, metadata)| CommitPoint::parse(offset, &metadata)))
            .collect())
    }

    /// Committed offsets of `partitions` with their metadata strings, as the group stores them.
    pub fn committed_offsets(
        &self,
        partitions: &[(String, i32)],
        timeout: Duration,
    ) -> Result<Vec<Option<(i64, String)>>, KafkaError> {
        let mut tpl = Tpl::new();
        for (t, p) in partitions {
            tpl.add_partition(t, *p);
        }
        let committed = self.consumer.committed_offsets(tpl, timeout)?;
        Ok(partitions
            .iter()
            .map(|(t, p)| {
                let e = committed.find_partition(t, *p)?;
                match e.offset() {
                    Offset::Offset(o) => Some((o, e.metadata().to_owned())),
                    _ => None,
                }
            })
            .collect())
    }

    /// Commits these points, and remembers them as what to hand over on a revoke.
    pub fn commit(
        &self,
        points: &[((String, i32), CommitPoint)],
        mode: CommitMode,
    ) -> Result<(), KafkaError> {
        if points.is_empty() {
            return Ok(());
        }
        let tpl = offsets_tpl(points, false)?;
        self.consumer.context().shared().safe = Some(tpl.clone());
        self.consumer.commit(&tpl, mode)
    }

    /// Stops fetching these partitions (backpressure) or starts again.
    pub fn pause(&self, partitions: &[(String, i32)], pause: bool) -> Result<(), KafkaError> {
        let mut tpl = Tpl::new();
        for (t, p) in partitions {
            tpl.add_partition(t, *p);
        }
        if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        }
    }

    /// Messages between the application's position and the high watermark, per partition, from
    /// the latest statistics (partitions not fetched yet are absent).
    pub fn lag(&self) -> Vec<((String, i32), i64)> {
        let shared = self.consumer.context().shared();
        shared.lag.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// How many partitions `topic` has (a metadata round trip).
    pub fn partition_count(&self, topic: &str, timeout: Duration) -> Result<i32, KafkaError> {
        let metadata = self.consumer.fetch_metadata(Some(topic), timeout)?;
        let count = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .sum();
        if count == 0 {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        Ok(count)
    }

    /// (low, high) watermarks of a partition, asked from its leader (a blocking round trip:
    /// for the liveness check, not for every tick).
    pub fn watermarks(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<(i64, i64), KafkaError> {
        self.consumer.fetch_watermarks(topic, partition, timeout)
    }

    /// When the client last reported that no broker answers.
    pub fn brokers_down_at(&self) -> Option<Instant> {
        self.consumer.context().shared().brokers_down_at
    }

    /// Leaves the group (revoke callbacks run, handing over the safe offsets).
    pub fn close(self) {
        self.consumer.unsubscribe();
        // Poll briefly so the revoke callback runs and the leave is sent.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
                break;
            }
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
    }
}
