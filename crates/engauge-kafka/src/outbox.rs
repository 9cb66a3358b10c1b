//! A producer whose records are counted until delivered: the caller can wait until every effect
//! so far is safe before committing input offsets. librdkafka's idempotent producer retries
//! transient failures itself (for `message.timeout.ms`); a record it finally gives up on makes
//! the outbox *failed*, and the caller must not commit past it (it stops, and the at-least-once
//! restart re-reads and republishes).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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
    delivered: AtomicU64,
    failed: AtomicU64,
    /// Smallest offset of the tracked records delivered since the last reset (`i64::MAX`: none).
    tracked_first: AtomicI64,
    /// The last delivery error, for the caller's message.
    last_error: Mutex<Option<KafkaError>>,
    errors: crate::log::ErrorLog,
}

impl Default for OutboxContext {
    fn default() -> Self {
        OutboxContext {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tracked_first: AtomicI64::new(i64::MAX),
            last_error: Mutex::new(None),
            errors: crate::log::ErrorLog::default(),
        }
    }
}

impl ClientContext for OutboxContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors
            .report(format!("kafka producer error: {error}: {reason}"));
    }
}

impl ProducerContext for OutboxContext {
    /// 1 for a tracked record (see [`Outbox::send_tracked`]), else 0.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tracked: Self::DeliveryOpaque) {
        match result {
            Ok(m) => {
                if tracked == 1 {
                    self.tracked_first
                        .fetch_min(rdkafka::Message::offset(m), Ordering::Relaxed);
                }
                self.delivered.fetch_add(1, Ordering::Relaxed)
            }
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
    /// The transactional id when the producer is transactional (exactly-once).
    transactional_id: Option<String>,
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
        Ok(Outbox {
            producer,
            sent: 0,
            transactional_id: None,
        })
    }

    /// A transactional producer (exactly-once): `init_transactions` (which fences a previous
    /// producer with the same id and aborts its open transaction), then a transaction begins.
    /// Blocks up to `timeout`; callers run on a plain thread, never an async runtime.
    pub fn transactional(
        settings: &KafkaSettings,
        transactional_id: &str,
        timeout: Duration,
    ) -> Result<Outbox, OutboxError> {
        let producer: BaseProducer<OutboxContext> = settings
            .transactional_producer_config(transactional_id)?
            .create_with_context(OutboxContext::default())?;
        producer.init_transactions(timeout)?;
        producer.begin_transaction()?;
        Ok(Outbox {
            producer,
            sent: 0,
            transactional_id: Some(transactional_id.to_owned()),
        })
    }

    /// Fences `transactional_id`: initialises a producer with that id, which makes the broker
    /// abort the id's open transaction and refuse its older producer from then on, and drops
    /// it. Blocks up to `timeout`.
    pub fn fence(
        settings: &KafkaSettings,
        transactional_id: &str,
        timeout: Duration,
    ) -> Result<(), OutboxError> {
        let producer: BaseProducer<OutboxContext> = settings
            .transactional_producer_config(transactional_id)?
            .create_with_context(OutboxContext::default())?;
        producer.init_transactions(timeout)?;
        Ok(())
    }

    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// Commits the open transaction with `points` as the group's offsets (each partition's
    /// processed position `next`; through the transaction, `source`'s group metadata fencing a
    /// zombie), then begins the next one. `token`, a (topic, partition, offset) committed for the
    /// group alongside, identifies the transaction to a later reader (see `StateRef`).
    ///
    /// librdkafka's error classes are handled as it documents them: a retriable error retries
    /// the same call (until `timeout`); an abortable one aborts the transaction; a fatal one is
    /// returned. Whatever is not known to have committed or aborted is [`TxnEnd::Uncertain`]:
    /// the caller drops this producer and reads the group's committed offsets to learn the
    /// outcome (a new producer with the same id completes or aborts it).
    pub fn commit_transaction(
        &mut self,
        source: &crate::Source,
        points: &[((String, i32), crate::CommitPoint)],
        token: Option<(&str, i32, i64)>,
        timeout: Duration,
    ) -> Result<TxnEnd, TxnFatal> {
        let deadline = Instant::now() + timeout;
        if !points.is_empty() || token.is_some() {
            let Some(group) = source.group_metadata() else {
                self.abort(deadline);
                return Ok(TxnEnd::Aborted(
                    "the consumer has no group generation".into(),
                ));
            };
            let mut offsets =
                crate::source::offsets_tpl(points, true).map_err(TxnFatal::from_error)?;
            if let Some((topic, partition, offset)) = token {
                offsets
                    .add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
                    .map_err(TxnFatal::from_error)?;
            }
            if let Some(end) = self.retrying(deadline, |p, left| {
                p.send_offsets_to_transaction(&offsets, &group, left)
            })? {
                return Ok(end);
            }
        }
        // Retrying the same call continues the same commit (librdkafka keeps the transaction's
        // state); past the deadline the outcome is uncertain.
        if let Some(end) = self.retrying(deadline, |p, left| p.commit_transaction(left))? {
            return Ok(end);
        }
        self.producer.poll(Duration::ZERO);
        match self.producer.begin_transaction() {
            Ok(()) => Ok(TxnEnd::Committed),
            Err(e) if TxnErrorClass::of(&e) == TxnErrorClass::Fatal => Err(TxnFatal::from_error(e)),
            Err(e) => Ok(TxnEnd::Uncertain(e.to_string())),
        }
    }

    /// Runs a transactional call until it succeeds (`None`), retrying what librdkafka calls
    /// retriable until `deadline`; an abortable error aborts the transaction.
    fn retrying(
        &mut self,
        deadline: Instant,
        call: impl Fn(&BaseProducer<OutboxContext>, Duration) -> Result<(), KafkaError>,
    ) -> Result<Option<TxnEnd>, TxnFatal> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Err(e) = call(&self.producer, left) else {
                return Ok(None);
            };
            match TxnErrorClass::of(&e) {
                TxnErrorClass::Fatal => return Err(TxnFatal::from_error(e)),
                TxnErrorClass::Abortable => {
                    self.abort(deadline);
                    return Ok(Some(TxnEnd::Aborted(e.to_string())));
                }
                TxnErrorClass::Retriable if !left.is_zero() => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => return Ok(Some(TxnEnd::Uncertain(e.to_string()))),
            }
        }
    }

    /// Aborts the open transaction (its records are never seen by `read_committed` readers).
    /// Errors are not returned: the caller drops this producer afterwards, and the next
    /// producer with the same id aborts whatever is still open.
    pub fn abort(&mut self, deadline: Instant) {
        for _ in 0..5 {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            match self.producer.abort_transaction(left) {
                Ok(()) => return,
                Err(e) if TxnErrorClass::of(&e) == TxnErrorClass::Retriable => continue,
                Err(_) => return,
            }
        }
    }

    /// Queues a record; when librdkafka's queue is full, polls until there is room
    /// (backpressure instead of an unbounded buffer).
    pub fn send(&mut self, record: &OutRecord) {
        self.send_with(record, None, 0);
    }

    /// [`send`](Self::send) to partition `partition` of the record's topic, remembering where
    /// it lands: [`tracked_first`](Self::tracked_first) gives the smallest offset.
    pub fn send_tracked(&mut self, record: &OutRecord, partition: i32) {
        self.send_with(record, Some(partition), 1);
    }

    /// Forgets the offsets of tracked records delivered so far (late reports of an earlier
    /// batch that timed out).
    pub fn reset_tracked(&mut self) {
        self.producer
            .context()
            .tracked_first
            .store(i64::MAX, Ordering::Relaxed);
    }

    /// Waits (up to `timeout`) until everything sent is delivered, then returns the smallest
    /// offset of the records sent with [`send_tracked`](Self::send_tracked) since the last call
    /// (`None` if there were none or not all were delivered).
    pub fn tracked_first(&mut self, timeout: Duration) -> Option<i64> {
        let settled = matches!(self.settle(timeout), Ok(true));
        let first = self
            .producer
            .context()
            .tracked_first
            .swap(i64::MAX, Ordering::Relaxed);
        (settled && first != i64::MAX).then_some(first)
    }

    fn send_with(&mut self, record: &OutRecord, partition: Option<i32>, tracked: usize) {
        loop {
            let mut r: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&record.topic, tracked).payload(&record.payload[..]);
            // Snapshots carry no headers: no header list to allocate and free per record.
            if !record.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (k, v) in &record.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v),
                    });
                }
                r = r.headers(headers);
            }
            if let Some(key) = &record.key {
                r = r.key(&key[..]);
            }
            if let Some(partition) = partition {
                r = r.partition(partition);
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

/// How a transaction ended, when it did not end in a fatal error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnEnd {
    /// Committed; the next transaction is open.
    Committed,
    /// Aborted (an abortable error): rewind to the committed offsets.
    Aborted(String),
    /// Not known to have committed or aborted: drop the producer, then rewind to what the group
    /// says is committed.
    Uncertain(String),
}

/// A fatal transactional error (fenced by a newer producer with the same id, or refused by the
/// broker for good): the process must stop.
#[derive(Debug, thiserror::Error)]
#[error("fatal Kafka transaction error: {message}{hint}")]
pub struct TxnFatal {
    pub message: String,
    hint: &'static str,
}

impl TxnFatal {
    pub fn from_error(e: KafkaError) -> TxnFatal {
        let fenced = matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        );
        TxnFatal {
            message: e.to_string(),
            hint: if fenced {
                " (fenced: another engauge process took over these partitions with the same \
                 transactional id; this one stops)"
            } else {
                ""
            },
        }
    }
}

/// librdkafka's classes of transactional errors, as its documentation tells callers to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorClass {
    /// Retry the same call.
    Retriable,
    /// Abort the transaction, then carry on.
    Abortable,
    /// The producer is unusable: stop.
    Fatal,
    /// Neither of the above (not a transactional error, or no flag set).
    Other,
}

impl TxnErrorClass {
    pub fn of(e: &KafkaError) -> TxnErrorClass {
        match e {
            KafkaError::Transaction(r) if r.is_fatal() => TxnErrorClass::Fatal,
            KafkaError::Transaction(r) if r.txn_requires_abort() => TxnErrorClass::Abortable,
            KafkaError::Transaction(r) if r.is_retriable() => TxnErrorClass::Retriable,
            // rdkafka flushes before committing: a flush that timed out committed nothing yet.
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => TxnErrorClass::Retriable,
            _ => TxnErrorClass::Other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}
