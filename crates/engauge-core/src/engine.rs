//! The windowed KPI engine: ingest events, advance the watermark, collect closed instances.

use crate::{ConfigError, EngineConfig, Event, Millis, Snapshot};

/// What happened to an ingested event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Counted; its event time is at or after the watermark.
    Accepted,
    /// Counted, but older than the watermark: it updated only the instances still open.
    Late,
    /// Same `id` seen within `dedup_horizon`: not counted again.
    Duplicate,
    /// Older than every open instance: not counted; belongs on the dead-letter topic.
    TooLate,
}

/// Counters the pipeline exposes as health metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub accepted: u64,
    pub late: u64,
    pub duplicates: u64,
    pub too_late: u64,
    /// Values mapped to `__other__`, per dimension (in `segments.dimensions` order).
    pub dimension_overflow: Vec<(String, u64)>,
    /// Feature names mapped to `__other__`.
    pub feature_overflow: u64,
    pub users: u64,
    pub open_sessions: u64,
    pub pending_events: u64,
}

/// The engine. See ARCHITECTURE.md for how panes, last-seen counts and sessions fit together.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine { config })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Adds one validated event. Never panics on any event the codec accepts.
    pub fn ingest(&mut self, _event: &Event<'_>) -> Ingested {
        unimplemented!()
    }

    /// Moves the watermark to `watermark` (never backwards) and appends a snapshot for every
    /// (instance, segment) that closed, in order of end, then window name, then key.
    pub fn advance(&mut self, _watermark: Millis, _out: &mut Vec<Snapshot>) {
        unimplemented!()
    }

    /// The watermark last passed to [`Engine::advance`].
    pub fn watermark(&self) -> Option<Millis> {
        unimplemented!()
    }

    pub fn stats(&self) -> EngineStats {
        unimplemented!()
    }
}
