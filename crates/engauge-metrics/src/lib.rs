//! engauge-metrics: everything engauge shows to Prometheus, and the HTTP endpoints it is scraped on.
//!
//! * [`KpiGauges`] holds the KPIs of the latest closed instance of every window and renders them
//!   as the `engauge_kpi_*` families (SPEC §5); the pipeline calls
//!   [`KpiGauges::replace_window`] whenever an instance closes.
//! * [`PipelineMetrics`] declares every pipeline-health metric (`engauge_events_*`, watermark,
//!   consumer lag, ...) in one place and updates them from [`engauge_core::EngineStats`] and
//!   simple setters.
//! * [`MetricsServer`] answers `GET /metrics`, `/healthz` and `/readyz` over plain HTTP/1.1 from a
//!   background thread, with liveness and readiness taken from a shared [`Health`].
//!
//! Architecture Invariant: this crate computes no KPI. It only renders numbers the engine
//! produced, so a value on `/metrics` is always one the snapshot topic also carries.
//!
//! Architecture Invariant: nothing here blocks the pipeline. Updates are atomic increments or a
//! short lock to swap a window's prepared series; scrapes build their output from a copy.

mod health;
mod http;
mod kpi_gauges;
mod pipeline;
mod scale_out;
mod server;

pub use health::Health;
pub use kpi_gauges::{KpiGauges, dimension_label_name};
pub use pipeline::{PipelineMetrics, TOO_LATE_REASON};
pub use prometheus::Registry;
pub use scale_out::ScaleOutMetrics;
pub use server::MetricsServer;

use prometheus::TextEncoder;

/// The `Content-Type` of `/metrics`: the Prometheus text exposition format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What can go wrong while declaring or rendering metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The prometheus crate refused a declaration (invalid name, duplicate registration) or
    /// failed to encode.
    #[error("prometheus: {0}")]
    Prometheus(#[from] prometheus::Error),
}

/// Renders every metric of `registry` in the text exposition format.
pub fn render(registry: &Registry) -> Result<String, MetricsError> {
    let families = registry.gather();
    let encoder = TextEncoder::new();
    // Roughly 80 bytes a sample; saves the repeated doublings of a large scrape.
    let samples: usize = families.iter().map(|f| f.get_metric().len()).sum();
    let mut text = String::with_capacity(samples * 80 + families.len() * 120);
    encoder.encode_utf8(&families, &mut text)?;
    Ok(text)
}

/// Adds the standard `process_*` metrics (CPU, memory, file descriptors, threads, start time) of
/// this process to `registry`. On platforms other than Linux it adds nothing.
pub fn register_process_metrics(registry: &Registry) -> Result<(), MetricsError> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
    Ok(())
}
