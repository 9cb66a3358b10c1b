//! engauge-kafka: the Kafka edges of the pipeline, knowing nothing of event schemas.
//!
//! * [`Source`]: a consumer-group member. Rebalances are handed to the caller as events; on a
//!   revoke it synchronously commits the last offsets the caller declared safe.
//! * [`Outbox`]: a producer that counts records until the broker confirms them, so the caller can
//!   tell when all effects of the input so far are safe (and stops if one failed for good).
//!   Exactly-once: [`Outbox::transactional`] and [`Outbox::commit_transaction`], which follow
//!   librdkafka's error classes ([`TxnErrorClass`]) to an outcome ([`TxnEnd`] or [`TxnFatal`]).
//! * [`CommitPoint`]: what a committed offset means here (rebuild start, processed position,
//!   published watermark), encoded in the commit's metadata string (at least once) or in a
//!   [`Checkpoint`] record committed in the same transaction (exactly once), read back with
//!   [`read_checkpoints`]; the engine state those records point to travels in chunks on the
//!   state topic ([`state_chunks`], [`read_state`]).

mod checkpoints;
mod commit;
mod log;
mod outbox;
mod settings;
mod source;

pub use checkpoints::{
    StateChunks, TopicReader, read_checkpoints, read_owners, read_state, state_chunks, state_hash,
};
pub use commit::{Checkpoint, CheckpointError, CommitPoint, StateRef, checkpoint_key, owner_key};
pub use outbox::{DeliveryFailed, OutRecord, Outbox, OutboxError, TxnEnd, TxnErrorClass, TxnFatal};
pub use settings::{KafkaSettings, SettingsError};
pub use source::{PartitionReader, Rebalance, Source, SourceError};

pub use rdkafka::consumer::CommitMode;
pub use rdkafka::error::KafkaError;
pub use rdkafka::message::{BorrowedMessage, Headers, Message};
pub use rdkafka::mocking::MockCluster;
