//! A producer whose records are counted until delivered: the caller can wait until every effect
//! so far is safe before committing input offsets. librdkafka's idempotent producer retries
//! transient failures itself (for `message.timeout.ms`); a record it finally gives up on makes
//! the outbox *failed*, and the caller must not commit past it (it stops, and the at-least-once
//! restart re-reads and republishes).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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

#[derive(Default)]
struct OutboxContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    /// The last delivery error, for the caller's message.
    last_error: Mutex<Option<KafkaError>>,
    errors: crate::log::ErrorLog,
}

impl ClientContext for OutboxContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors
            .report(format!("kafka producer error: {error}: {reason}"));
    }
}

impl ProducerContext for OutboxContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Counting producer. One pipeline thread owns it and polls it.
pub struct Outbox {
    producer: BaseProducer<OutboxContext>,
    sent: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("inflight", &self.inflight())
            .finish_non_exhaustive()
    }
}

/// A record librdkafka gave up on: effects after it are not safe to commit.
#[derive(Debug, thiserror::Error)]
#[error("a record could not be delivered ({failed} in all): {last}")]
pub struct DeliveryFailed {
    pub failed: u64,
    pub last: String,
}

impl Outbox {
    pub fn new(settings: &KafkaSettings) -> Result<Outbox, OutboxError> {
        let producer = settings
            .producer_config()?
            .create_with_context(OutboxContext::default())?;
        Ok(Outbox { producer, sent: 0 })
    }

    /// Queues a record; when librdkafka's queue is full, polls until there is room
    /// (backpressure instead of an unbounded buffer).
    pub fn send(&mut self, record: &OutRecord) {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut r: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(&record.topic)
                .payload(&record.payload[..])
                .headers(headers);
            if let Some(key) = &record.key {
                r = r.key(&key[..]);
            }
            match self.producer.send(r) {
                Ok(()) => {
                    self.sent += 1;
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => {
                    // Refused at enqueue (e.g. larger than message.max.bytes): a failed effect.
                    let ctx = self.producer.context();
                    *ctx.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    ctx.failed.fetch_add(1, Ordering::Relaxed);
                    self.sent += 1;
                    return;
                }
            }
        }
    }

    /// Serves delivery reports.
    pub fn poll(&mut self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    fn done(&self) -> (u64, u64) {
        let ctx = self.producer.context();
        (
            ctx.delivered.load(Ordering::Relaxed),
            ctx.failed.load(Ordering::Relaxed),
        )
    }

    /// Records sent and not yet reported.
    pub fn inflight(&self) -> u64 {
        let (delivered, failed) = self.done();
        self.sent - delivered - failed
    }

    /// Waits until every record sent so far is reported: `Ok(true)` when all were delivered,
    /// `Ok(false)` on timeout, `Err` once any record failed for good.
    pub fn settle(&mut self, timeout: Duration) -> Result<bool, DeliveryFailed> {
        let deadline = Instant::now() + timeout;
        loop {
            self.producer.poll(Duration::ZERO);
            let (_, failed) = self.done();
            if failed > 0 {
                let last = self
                    .producer
                    .context()
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string);
                return Err(DeliveryFailed { failed, last });
            }
            if self.inflight() == 0 {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.producer.poll(left.min(Duration::from_millis(10)));
        }
    }

    pub fn delivered(&self) -> u64 {
        self.done().0
    }

    /// Flushes librdkafka's queue (on shutdown); `true` when everything was delivered.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        let ok = self.producer.flush(timeout).is_ok();
        ok && self.inflight() == 0 && self.done().1 == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}
