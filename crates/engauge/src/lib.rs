//! engauge as a library: configuration, the Kafka pipeline (`run`), the demo, replay and the
//! generator-to-Kafka producer. The `engauge` binary is a thin command line over these.

pub mod config;
pub mod demo;
pub mod merger;
pub mod partials;
pub mod pipeline;
pub mod produce;
mod reader;
pub mod replay;
pub mod saved;
pub mod telemetry;
pub mod watchdog;
