//! The pipeline's view onto Prometheus metrics and health, plus the latest all-users snapshot of
//! each window for the demo's terminal view. Every metric itself is declared in engauge-metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use engauge_codec::RejectReason;
use engauge_core::{EngineStats, Millis, Snapshot};
use engauge_kafka::KafkaError;
use engauge_metrics::{Health, KpiGauges, PipelineMetrics, ScaleOutMetrics};
use prometheus::Registry;

/// Shared between the pipeline thread, the HTTP server and the demo view.
#[derive(Debug)]
pub struct Telemetry {
    pub registry: Registry,
    pub health: Arc<Health>,
    kpis: KpiGauges,
    pipeline: PipelineMetrics,
    pub scale_out: ScaleOutMetrics,
    /// Latest all-users snapshot per window.
    latest: Mutex<BTreeMap<String, Snapshot>>,
    consumed: AtomicU64,
    rejected: AtomicU64,
    watermark: Mutex<Option<Millis>>,
    /// Whether readiness is currently withheld because brokers are unreachable.
    brokers_down: Mutex<bool>,
}

impl Telemetry {
    pub fn new() -> anyhow::Result<Telemetry> {
        let registry = Registry::new();
        let health = Arc::new(Health::new());
        let reasons: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        let pipeline = PipelineMetrics::register(
            &registry,
            &reasons,
            env!("CARGO_PKG_VERSION"),
            Arc::clone(&health),
        )?;
        let kpis = KpiGauges::register(&registry)?;
        let scale_out = ScaleOutMetrics::register(&registry)?;
        engauge_metrics::register_process_metrics(&registry)?;
        Ok(Telemetry {
            registry,
            health,
            kpis,
            pipeline,
            scale_out,
            latest: Mutex::new(BTreeMap::new()),
            consumed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            watermark: Mutex::new(None),
            brokers_down: Mutex::new(false),
        })
    }

    pub fn consumed(&self, n: u64) {
        self.pipeline.add_consumed(n);
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn decoded(&self, n: u64) {
        self.pipeline.add_decoded(n);
    }

    /// A decode rejection (too-late events are counted from the engine's statistics).
    pub fn rejected(&self, reason: &str) {
        if reason != RejectReason::TooLate.as_str() {
            self.pipeline.add_rejected(reason);
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_lettered(&self, reason: &str) {
        self.pipeline.add_dead_letter(reason);
    }

    /// Scale-out: a partial of `bytes` bytes went to the partials topic.
    pub fn partial_published(&self, bytes: usize) {
        self.scale_out.add_partial(bytes);
    }

    pub fn snapshot_published(&self) {
        self.pipeline.add_snapshots_published(1);
    }

    /// An instance of `window` closed at `end`: its snapshots replace the window's gauges.
    pub fn window_closed(&self, window: &str, snapshots: &[Snapshot], end: Millis) {
        self.kpis.replace_window(window, snapshots);
        self.pipeline.set_window_closed(window, end);
        if let Some(all) = snapshots.iter().find(|s| s.segment.is_empty()) {
            self.latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(window.to_owned(), all.clone());
        }
    }

    /// Scale-out: this instance stopped merging; the global KPI gauges move to the new merger.
    pub fn clear_kpis(&self) {
        for window in self.kpis.windows() {
            self.kpis.replace_window(&window, &[]);
        }
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub fn engine(
        &self,
        stats: &EngineStats,
        watermark: Option<Millis>,
        lag: &[((String, i32), i64)],
    ) {
        self.pipeline.observe_engine(stats);
        if let Some(wm) = watermark {
            self.pipeline.set_watermark(wm);
        }
        *self
            .watermark
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = watermark;
        for ((topic, partition), l) in lag {
            self.pipeline.set_consumer_lag(topic, *partition, *l);
        }
    }

    /// Readiness follows broker reachability: a transport failure within the last 10 s means not
    /// ready; it recovers by itself once brokers answer again.
    pub fn kafka_health(&self, brokers_down_at: Option<Instant>) {
        let down = brokers_down_at.is_some_and(|t| t.elapsed().as_secs() < 10);
        let mut was = self
            .brokers_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down && !*was {
            self.health.set_not_ready("Kafka brokers are unreachable");
        } else if !down && *was {
            self.health.set_ready();
        }
        *was = down;
    }

    /// Revoked partitions stop exporting a lag series (another member reports them now).
    pub fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        for (topic, partition) in partitions {
            self.pipeline.remove_consumer_lag(topic, *partition);
        }
    }

    pub fn kafka_error(&self, error: &KafkaError) {
        eprintln!("engauge: kafka: {error}");
    }

    /// Consumption stalled for `stuck` while messages waited: counted, reported on `/readyz`.
    pub fn consumer_stalled(&self, stuck: std::time::Duration) {
        self.pipeline.add_consumer_stall();
        let reason = format!(
            "consumption stalled for {} s while messages wait; recreating the consumer",
            stuck.as_secs()
        );
        eprintln!("engauge: {reason}");
        self.health.set_not_ready(&reason);
    }

    /// The state of a new assignment is ready: restored from the checkpoint, or rebuilt by
    /// re-reading the input up to where the previous owner stopped.
    pub fn restored(&self, partitions: usize, from_checkpoint: bool, took: std::time::Duration) {
        self.pipeline.set_restore_seconds(took.as_secs_f64());
        let how = if from_checkpoint {
            "restored from the checkpoint"
        } else {
            "rebuilt from history"
        };
        eprintln!(
            "engauge: state of {partitions} partition(s) {how} in {:.2} s",
            took.as_secs_f64()
        );
    }

    /// Exactly-once: a transaction committed.
    pub fn transaction_committed(&self, state_bytes: u64, took: std::time::Duration) {
        self.pipeline.add_transaction_committed();
        self.pipeline
            .set_checkpoint(state_bytes, took.as_secs_f64());
    }

    /// Exactly-once: a transaction aborted for `reason` (`revoked`, `abortable_error`,
    /// `uncertain_commit`).
    pub fn transaction_aborted(&self, reason: &str) {
        self.pipeline.add_transaction_aborted(reason);
    }

    pub fn set_ready(&self) {
        self.health.set_ready();
    }

    pub fn set_not_ready(&self, reason: &str) {
        self.health.set_not_ready(reason);
    }

    /// (events consumed, events rejected, watermark, latest all-users snapshot per window).
    pub fn view(&self) -> (u64, u64, Option<Millis>, BTreeMap<String, Snapshot>) {
        (
            self.consumed.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            *self
                .watermark
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            self.latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}
