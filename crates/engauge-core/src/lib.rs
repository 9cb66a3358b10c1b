//! engauge-core: the pure engagement-KPI engine.
//!
//! Events go in with [`Engine::ingest`], time goes in with [`Engine::advance`] (a watermark), and
//! closed window instances come out as [`Snapshot`]s. Nothing here does I/O, reads a clock, or knows
//! about Kafka; that keeps the engine deterministic and testable without a broker. serde is used
//! for one thing: the engine's state as bytes ([`Engine::save_state`], [`Engine::restore`]).

pub mod calendar;
mod config;
mod dedup;
mod distinct;
mod engine;
mod event;
mod kpi;
mod pane;
pub mod partial;
pub mod quantile;
mod replay;
mod segment;
mod session;
pub mod sketch;
mod sketched;
mod snapshot;
pub mod time;
mod users;
mod watermark;

pub use calendar::{CalendarPeriod, CalendarSpec};
pub use config::{
    ClvConfig, ConfigError, DistinctMode, EngineConfig, FeaturesConfig, SegmentsConfig,
    SketchConfig, SurveyScales, WindowSpec,
};
pub use engine::{Engine, EngineStats, Ingested, StateError};
pub use event::{Event, EventKind, Survey};
pub use kpi::{DurationStats, Kpis, SurveyCounts};
pub use partial::{LifecycleCounts, Parts};
pub use replay::Replay;
pub use segment::{NONE_VALUE, OTHER_VALUE};
pub use snapshot::{FeatureKpis, FeatureName, Snapshot};
pub use time::Millis;
pub use watermark::WatermarkTracker;
