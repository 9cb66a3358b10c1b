//! A producer whose records are tracked until delivered: the caller can wait until every effect
//! so far is safe before committing input offsets. Failed deliveries are sent again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use crate::{KafkaSettings, SettingsError};

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

struct OutboxContext {
    /// (sequence, error) of deliveries completed since the last drain.
    done: Mutex<Vec<(u64, Option<KafkaError>)>>,
}

impl ClientContext for OutboxContext {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("engauge: kafka producer error: {error}: {reason}");
    }
}

impl ProducerContext for OutboxContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((*seq, error));
    }
}

/// Tracked producer. Not `Sync`: one pipeline thread owns it and polls it.
pub struct Outbox {
    producer: BaseProducer<OutboxContext>,
    inflight: HashMap<u64, OutRecord>,
    next_seq: u64,
    delivered: u64,
    failures: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(settings: &KafkaSettings) -> Result<Outbox, OutboxError> {
        let producer = settings
            .producer_config()?
            .create_with_context(OutboxContext {
                done: Mutex::new(Vec::new()),
            })?;
        Ok(Outbox {
            producer,
            inflight: HashMap::new(),
            next_seq: 0,
            delivered: 0,
            failures: 0,
        })
    }

    /// Queues a record; when librdkafka's queue is full, polls until there is room
    /// (backpressure instead of an unbounded buffer).
    pub fn send(&mut self, record: OutRecord) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.enqueue(seq, &record);
        self.inflight.insert(seq, record);
    }

    fn enqueue(&mut self, seq: u64, record: &OutRecord) {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut r: BaseRecord<'_, [u8], [u8], Box<u64>> =
                BaseRecord::with_opaque_to(&record.topic, Box::new(seq))
                    .payload(&record.payload[..])
                    .headers(headers);
            if let Some(key) = &record.key {
                r = r.key(&key[..]);
            }
            match self.producer.send(r) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.poll(Duration::from_millis(20));
                }
                Err((e, _)) => {
                    // Not retriable at enqueue (e.g. message too large): count it and keep the
                    // record in flight so the caller never commits past it silently.
                    self.failures += 1;
                    eprintln!("engauge: cannot produce to {}: {e}", record.topic);
                    self.poll(Duration::from_millis(200));
                    return;
                }
            }
        }
    }

    /// Serves delivery reports; failed records are sent again.
    pub fn poll(&mut self, timeout: Duration) {
        self.producer.poll(timeout);
        let done = std::mem::take(
            &mut *self
                .producer
                .context()
                .done
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (seq, error) in done {
            match error {
                None => {
                    self.inflight.remove(&seq);
                    self.delivered += 1;
                }
                Some(e) => {
                    self.failures += 1;
                    eprintln!("engauge: delivery failed, sending again: {e}");
                    if let Some(record) = self.inflight.remove(&seq) {
                        self.send(record);
                    }
                }
            }
        }
    }

    /// Waits until every record sent so far is delivered; `false` on timeout.
    pub fn settle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll(Duration::ZERO);
            if self.inflight.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.poll(left.min(Duration::from_millis(10)));
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Flushes librdkafka's own queue (on shutdown).
    pub fn flush(&mut self, timeout: Duration) -> bool {
        let ok = self.producer.flush(timeout).is_ok();
        self.poll(Duration::ZERO);
        ok && self.inflight.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}
