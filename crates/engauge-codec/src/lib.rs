//! engauge-codec: bytes to core events and core snapshots to bytes.
//!
//! * [`decode_event`] turns one native JSON message into a validated [`engauge_core::Event`] that
//!   borrows from the message, or a [`Reject`] naming why (the reason labels are a stable
//!   contract shared with metrics and the dead-letter topic). A single-pass scanner decodes
//!   events of the common shape; everything else, every reject included, goes through serde.
//! * [`encode_snapshot`] writes one [`engauge_core::Snapshot`] as the `engauge.snapshot.v1` JSON
//!   object, and [`SnapshotRecord`] reads it back.
//! * [`parse_rfc3339`] is the timestamp parser both use.
//!
//! Architecture Invariant: the codec knows nothing about Kafka and never reads a clock; the wall
//! clock enters as [`DecodeContext::now`] and as `emitted_at`.

mod event_json;
mod event_scan;
mod raw_event;
mod reject;
mod rfc3339;
mod snapshot_json;
mod snapshot_record;

pub use event_json::{
    Currency, CurrencyRates, DecodeContext, MAX_AMOUNT, MAX_ATTRS, decode_event, decode_event_into,
};
pub use event_scan::empty_event;
pub use reject::{Reject, RejectReason};
pub use rfc3339::parse_rfc3339;
pub use snapshot_json::{SNAPSHOT_SCHEMA, encode_snapshot, snapshot_key};
pub use snapshot_record::{
    DurationRecord, FeatureRecord, KpisRecord, SnapshotDecodeError, SnapshotRecord,
    SurveyCountsRecord,
};
