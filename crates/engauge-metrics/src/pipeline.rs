//! Pipeline health metrics: every `engauge_*` metric that is not a KPI, declared here once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use engauge_core::{EngineStats, Millis};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge as GaugeValue, Metric, MetricFamily, MetricType};
use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::{Health, MetricsError};

/// The `reason` the engine's too-late refusals are counted under in
/// `engauge_events_rejected_total` (the codec's `RejectReason::TooLate` label).
pub const TOO_LATE_REASON: &str = "too_late";

/// Why an exactly-once transaction was aborted (the `reason` label values).
pub const TRANSACTION_ABORT_REASONS: [&str; 3] = ["revoked", "abortable_error", "uncertain_commit"];

/// The pipeline's own metrics, registered in one registry.
///
/// Counters the engine keeps as running totals ([`EngineStats`]) are fed with
/// [`PipelineMetrics::observe_engine`], which adds what changed since the last call; everything
/// else has a setter or an `add_*` method called where the event happens.
#[derive(Debug)]
pub struct PipelineMetrics {
    events_consumed: IntCounter,
    consumer_stalls: IntCounter,
    events_decoded: IntCounter,
    events_rejected: IntCounterVec,
    events_late: IntCounter,
    events_duplicate: IntCounter,
    watermark: Gauge,
    consumer_lag: IntGaugeVec,
    snapshots_published: IntCounter,
    transactions_committed: IntCounter,
    transactions_aborted: IntCounterVec,
    restore_seconds: Gauge,
    state_bytes: IntGauge,
    checkpoint_seconds: Gauge,
    window_last_close: GaugeVec,
    segment_overflow: IntCounterVec,
    feature_overflow: IntCounter,
    dead_letters: IntCounterVec,
    engine_users: IntGauge,
    engine_segments: IntGauge,
    engine_open_sessions: IntGauge,
    engine_pending_events: IntGauge,
    engine_dedup_ids: IntGauge,
    /// The engine totals already added to the counters.
    engine_seen: Mutex<EngineSeen>,
}

#[derive(Debug, Default)]
struct EngineSeen {
    late: u64,
    duplicates: u64,
    too_late: u64,
    feature_overflow: u64,
    dimension_overflow: HashMap<String, u64>,
}

impl PipelineMetrics {
    /// Declares and registers every pipeline metric in `registry`.
    ///
    /// `reasons` are the reject reasons known up front (the codec's `RejectReason::ALL` labels):
    /// `engauge_events_rejected_total` and `engauge_dead_letters_total` carry a series for each
    /// at 0, so alerts and `rate()` work before the first rejection. `version` becomes the label
    /// of `engauge_build_info`; `health` is read at scrape time for `engauge_ready`, so the gauge
    /// and `/readyz` always agree.
    pub fn register(
        registry: &Registry,
        reasons: &[&str],
        version: &str,
        health: Arc<Health>,
    ) -> Result<PipelineMetrics, MetricsError> {
        let metrics = PipelineMetrics {
            events_consumed: IntCounter::new(
                "engauge_events_consumed_total",
                "Messages read from the input topics.",
            )?,
            consumer_stalls: IntCounter::new(
                "engauge_consumer_stalls_total",
                "Times consumption stopped making progress while messages waited (the consumer was recreated).",
            )?,
            events_decoded: IntCounter::new(
                "engauge_events_decoded_total",
                "Messages decoded and validated into events.",
            )?,
            events_rejected: IntCounterVec::new(
                Opts::new(
                    "engauge_events_rejected_total",
                    "Messages refused, by reason (decoding, validation, too_late).",
                ),
                &["reason"],
            )?,
            events_late: IntCounter::new(
                "engauge_events_late_total",
                "Events older than the watermark that still reached an open window instance.",
            )?,
            events_duplicate: IntCounter::new(
                "engauge_events_duplicate_total",
                "Events dropped because their id was already accepted within the dedup horizon.",
            )?,
            watermark: Gauge::new(
                "engauge_watermark_timestamp_seconds",
                "Pipeline watermark (event time) as Unix seconds.",
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "engauge_consumer_lag",
                    "Messages between the consumer position and the high watermark, per partition.",
                ),
                &["topic", "partition"],
            )?,
            snapshots_published: IntCounter::new(
                "engauge_snapshots_published_total",
                "KPI snapshots published to the snapshot topic.",
            )?,
            restore_seconds: Gauge::new(
                "engauge_restore_seconds",
                "Seconds the latest assignment took to get its state back: restored from the saved state (exactly-once) or rebuilt by re-reading the input up to where the previous owner stopped.",
            )?,
            state_bytes: IntGauge::new(
                "engauge_checkpoint_state_bytes",
                "Exactly-once: size of the engine state saved with the latest checkpoint (0 when none could be saved).",
            )?,
            checkpoint_seconds: Gauge::new(
                "engauge_checkpoint_seconds",
                "Exactly-once: how long the latest checkpoint took (saving the state, writing it, committing the transaction).",
            )?,
            transactions_committed: IntCounter::new(
                "engauge_transactions_committed_total",
                "Exactly-once: Kafka transactions committed (snapshots, dead letters, saved state, checkpoint records and input offsets).",
            )?,
            transactions_aborted: IntCounterVec::new(
                Opts::new(
                    "engauge_transactions_aborted_total",
                    "Exactly-once: Kafka transactions aborted, by reason (the work is redone from the last commit).",
                ),
                &["reason"],
            )?,
            window_last_close: GaugeVec::new(
                Opts::new(
                    "engauge_window_last_close_timestamp_seconds",
                    "Wall-clock time, as Unix seconds, at which an instance of the window last closed.",
                ),
                &["window"],
            )?,
            segment_overflow: IntCounterVec::new(
                Opts::new(
                    "engauge_segment_overflow_total",
                    "Events whose dimension value was mapped to __other__ (max_values reached).",
                ),
                &["dimension"],
            )?,
            feature_overflow: IntCounter::new(
                "engauge_feature_overflow_total",
                "Feature events whose feature name was mapped to __other__.",
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "engauge_dead_letters_total",
                    "Messages written to the dead-letter topic, by reason.",
                ),
                &["reason"],
            )?,
            engine_users: IntGauge::new(
                "engauge_engine_users",
                "Distinct users the engine holds state for.",
            )?,
            engine_segments: IntGauge::new(
                "engauge_engine_segments",
                "Segments the engine holds state for.",
            )?,
            engine_open_sessions: IntGauge::new(
                "engauge_engine_open_sessions",
                "Sessions not closed yet.",
            )?,
            engine_pending_events: IntGauge::new(
                "engauge_engine_pending_events",
                "Accepted events waiting for their pane to seal.",
            )?,
            engine_dedup_ids: IntGauge::new(
                "engauge_engine_dedup_ids",
                "Event ids remembered for deduplication.",
            )?,
            engine_seen: Mutex::new(EngineSeen::default()),
        };
        for reason in TRANSACTION_ABORT_REASONS {
            metrics.transactions_aborted.with_label_values(&[reason]);
        }
        for reason in reasons {
            metrics.events_rejected.with_label_values(&[*reason]);
            metrics.dead_letters.with_label_values(&[*reason]);
        }

        let build_info = IntGaugeVec::new(
            Opts::new(
                "engauge_build_info",
                "Always 1; the version of the running engauge as a label.",
            ),
            &["version"],
        )?;
        build_info.with_label_values(&[version]).set(1);

        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(metrics.events_consumed.clone()),
            Box::new(metrics.events_decoded.clone()),
            Box::new(metrics.consumer_stalls.clone()),
            Box::new(metrics.events_rejected.clone()),
            Box::new(metrics.events_late.clone()),
            Box::new(metrics.events_duplicate.clone()),
            Box::new(metrics.watermark.clone()),
            Box::new(metrics.consumer_lag.clone()),
            Box::new(metrics.snapshots_published.clone()),
            Box::new(metrics.transactions_committed.clone()),
            Box::new(metrics.restore_seconds.clone()),
            Box::new(metrics.state_bytes.clone()),
            Box::new(metrics.checkpoint_seconds.clone()),
            Box::new(metrics.transactions_aborted.clone()),
            Box::new(metrics.window_last_close.clone()),
            Box::new(metrics.segment_overflow.clone()),
            Box::new(metrics.feature_overflow.clone()),
            Box::new(metrics.dead_letters.clone()),
            Box::new(metrics.engine_users.clone()),
            Box::new(metrics.engine_segments.clone()),
            Box::new(metrics.engine_open_sessions.clone()),
            Box::new(metrics.engine_pending_events.clone()),
            Box::new(metrics.engine_dedup_ids.clone()),
            Box::new(build_info),
            Box::new(ReadyGauge::new(health)?),
        ];
        for collector in collectors {
            registry.register(collector)?;
        }
        Ok(metrics)
    }

    /// Adds `n` messages read from Kafka.
    pub fn add_consumed(&self, n: u64) {
        self.events_consumed.inc_by(n);
    }

    /// Adds `n` messages decoded into events.
    pub fn add_decoded(&self, n: u64) {
        self.events_decoded.inc_by(n);
    }

    /// Counts one message refused for `reason` by the decoder. The engine's `too_late`
    /// refusals are counted by [`PipelineMetrics::observe_engine`]; do not add them here too.
    pub fn add_rejected(&self, reason: &str) {
        self.events_rejected.with_label_values(&[reason]).inc();
    }

    /// Counts one message written to the dead-letter topic for `reason`.
    pub fn add_dead_letter(&self, reason: &str) {
        self.dead_letters.with_label_values(&[reason]).inc();
    }

    /// Adds `n` snapshots published to the snapshot topic.
    pub fn add_consumer_stall(&self) {
        self.consumer_stalls.inc();
    }

    /// Sets how long the latest state rebuild took.
    pub fn set_restore_seconds(&self, seconds: f64) {
        self.restore_seconds.set(seconds);
    }

    /// Exactly-once: the latest checkpoint's saved state size and duration.
    pub fn set_checkpoint(&self, state_bytes: u64, seconds: f64) {
        self.state_bytes.set(state_bytes as i64);
        self.checkpoint_seconds.set(seconds);
    }

    pub fn add_transaction_committed(&self) {
        self.transactions_committed.inc();
    }

    /// Counts an aborted transaction; `reason` is one of [`TRANSACTION_ABORT_REASONS`].
    pub fn add_transaction_aborted(&self, reason: &str) {
        self.transactions_aborted.with_label_values(&[reason]).inc();
    }

    pub fn add_snapshots_published(&self, n: u64) {
        self.snapshots_published.inc_by(n);
    }

    /// Sets the pipeline watermark (event time, epoch milliseconds).
    pub fn set_watermark(&self, watermark: Millis) {
        self.watermark.set(watermark as f64 / 1000.0);
    }

    /// Sets the lag of one assigned partition.
    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        let partition = partition.to_string();
        self.consumer_lag
            .with_label_values(&[topic, partition.as_str()])
            .set(lag);
    }

    /// Removes the lag series of a partition that was revoked, so it does not linger.
    pub fn remove_consumer_lag(&self, topic: &str, partition: i32) {
        let partition = partition.to_string();
        // Absent already (never set) is fine: there is nothing to remove.
        let _ = self
            .consumer_lag
            .remove_label_values(&[topic, partition.as_str()]);
    }

    /// Records that an instance of `window` closed at wall-clock time `at` (epoch ms).
    pub fn set_window_closed(&self, window: &str, at: Millis) {
        self.window_last_close
            .with_label_values(&[window])
            .set(at as f64 / 1000.0);
    }

    /// Brings the engine-derived counters and gauges up to `stats`.
    ///
    /// The engine keeps running totals; each counter rises by the growth since the previous call.
    /// When a total is lower than before (a new engine after a rebalance or restart counts from
    /// zero), everything it counted so far is added, so the counters stay monotonic and lose
    /// nothing.
    pub fn observe_engine(&self, stats: &EngineStats) {
        let mut seen = self
            .engine_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        advance(&self.events_late, &mut seen.late, stats.late);
        advance(
            &self.events_duplicate,
            &mut seen.duplicates,
            stats.duplicates,
        );
        advance(
            &self.events_rejected.with_label_values(&[TOO_LATE_REASON]),
            &mut seen.too_late,
            stats.too_late,
        );
        advance(
            &self.feature_overflow,
            &mut seen.feature_overflow,
            stats.feature_overflow,
        );
        for (dimension, total) in &stats.dimension_overflow {
            let last = seen
                .dimension_overflow
                .entry(dimension.clone())
                .or_insert(0);
            advance(
                &self
                    .segment_overflow
                    .with_label_values(&[dimension.as_str()]),
                last,
                *total,
            );
        }
        drop(seen);

        let gauges = [
            (&self.engine_users, stats.users),
            (&self.engine_segments, stats.segments),
            (&self.engine_open_sessions, stats.open_sessions),
            (&self.engine_pending_events, stats.pending_events),
            (&self.engine_dedup_ids, stats.dedup_ids),
        ];
        for (gauge, value) in gauges {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }
}

/// Adds to `counter` what `total` grew by since `last`, treating a drop as a restart from zero.
fn advance(counter: &IntCounter, last: &mut u64, total: u64) {
    let delta = total.checked_sub(*last).unwrap_or(total);
    counter.inc_by(delta);
    *last = total;
}

/// `engauge_ready`: 1 when [`Health`] says ready, read at scrape time.
#[derive(Debug)]
struct ReadyGauge {
    desc: Desc,
    health: Arc<Health>,
}

const READY_NAME: &str = "engauge_ready";
const READY_HELP: &str =
    "1 when the service is assigned partitions and consuming (as /readyz), else 0.";

impl ReadyGauge {
    fn new(health: Arc<Health>) -> Result<ReadyGauge, MetricsError> {
        let desc = Desc::new(
            READY_NAME.to_owned(),
            READY_HELP.to_owned(),
            Vec::new(),
            HashMap::new(),
        )?;
        Ok(ReadyGauge { desc, health })
    }
}

impl Collector for ReadyGauge {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut gauge = GaugeValue::default();
        gauge.set_value(if self.health.is_ready() { 1.0 } else { 0.0 });
        let mut family = MetricFamily::default();
        family.set_name(READY_NAME.to_owned());
        family.set_help(READY_HELP.to_owned());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(vec![Metric::from_gauge(gauge)]);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(reasons: &[&str]) -> (Registry, PipelineMetrics, Arc<Health>) {
        let registry = Registry::new();
        let health = Arc::new(Health::new());
        let metrics =
            PipelineMetrics::register(&registry, reasons, "0.1.0", health.clone()).unwrap();
        (registry, metrics, health)
    }

    fn lines(registry: &Registry) -> Vec<String> {
        crate::render(registry)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn has(registry: &Registry, line: &str) -> bool {
        let lines = lines(registry);
        lines.iter().any(|l| l == line)
    }

    #[test]
    fn reasons_exist_at_zero_and_static_series_render() {
        let (registry, _metrics, _) = setup(&["not_json", "too_late"]);
        for line in [
            r#"engauge_events_rejected_total{reason="not_json"} 0"#,
            r#"engauge_events_rejected_total{reason="too_late"} 0"#,
            r#"engauge_dead_letters_total{reason="not_json"} 0"#,
            "engauge_events_consumed_total 0",
            "engauge_events_late_total 0",
            "engauge_feature_overflow_total 0",
            r#"engauge_build_info{version="0.1.0"} 1"#,
            "engauge_ready 0",
        ] {
            assert!(
                has(&registry, line),
                "missing {line}:\n{:#?}",
                lines(&registry)
            );
        }
    }

    #[test]
    fn setters_and_adders() {
        let (registry, metrics, health) = setup(&[]);
        metrics.add_consumed(10);
        metrics.add_consumed(5);
        metrics.add_decoded(12);
        metrics.add_rejected("not_json");
        metrics.add_dead_letter("not_json");
        metrics.add_snapshots_published(44);
        metrics.set_watermark(1_795_348_800_500);
        metrics.set_consumer_lag("events", 3, 1200);
        metrics.set_consumer_lag("events", 4, 7);
        metrics.remove_consumer_lag("events", 4);
        metrics.remove_consumer_lag("events", 99);
        metrics.set_window_closed("1h", 1_795_348_801_000);
        health.set_ready();
        for line in [
            "engauge_events_consumed_total 15",
            "engauge_events_decoded_total 12",
            r#"engauge_events_rejected_total{reason="not_json"} 1"#,
            r#"engauge_dead_letters_total{reason="not_json"} 1"#,
            "engauge_snapshots_published_total 44",
            "engauge_watermark_timestamp_seconds 1795348800.5",
            r#"engauge_consumer_lag{partition="3",topic="events"} 1200"#,
            r#"engauge_window_last_close_timestamp_seconds{window="1h"} 1795348801"#,
            "engauge_ready 1",
        ] {
            assert!(
                has(&registry, line),
                "missing {line}:\n{:#?}",
                lines(&registry)
            );
        }
        assert!(
            !lines(&registry)
                .iter()
                .any(|l| l.contains(r#"partition="4""#))
        );
    }

    #[test]
    fn engine_totals_become_monotonic_counters() {
        let (registry, metrics, _) = setup(&["too_late"]);
        let mut stats = EngineStats {
            late: 5,
            duplicates: 2,
            too_late: 1,
            dimension_overflow: vec![("plan".into(), 3), ("region".into(), 0)],
            feature_overflow: 4,
            users: 100,
            ..EngineStats::default()
        };
        metrics.observe_engine(&stats);
        metrics.observe_engine(&stats);
        assert!(has(&registry, "engauge_events_late_total 5"));
        assert!(has(&registry, "engauge_events_duplicate_total 2"));
        assert!(has(
            &registry,
            r#"engauge_events_rejected_total{reason="too_late"} 1"#
        ));
        assert!(has(
            &registry,
            r#"engauge_segment_overflow_total{dimension="plan"} 3"#
        ));
        assert!(has(
            &registry,
            r#"engauge_segment_overflow_total{dimension="region"} 0"#
        ));
        assert!(has(&registry, "engauge_feature_overflow_total 4"));
        assert!(has(&registry, "engauge_engine_users 100"));

        stats.late = 8;
        stats.dimension_overflow[0].1 = 10;
        metrics.observe_engine(&stats);
        assert!(has(&registry, "engauge_events_late_total 8"));
        assert!(has(
            &registry,
            r#"engauge_segment_overflow_total{dimension="plan"} 10"#
        ));

        // A new engine counts from zero again: its totals are added, nothing goes down.
        stats.late = 3;
        stats.dimension_overflow[0].1 = 1;
        stats.users = 7;
        metrics.observe_engine(&stats);
        assert!(has(&registry, "engauge_events_late_total 11"));
        assert!(has(
            &registry,
            r#"engauge_segment_overflow_total{dimension="plan"} 11"#
        ));
        assert!(has(&registry, "engauge_engine_users 7"));
        stats.late = 4;
        metrics.observe_engine(&stats);
        assert!(has(&registry, "engauge_events_late_total 12"));
    }

    #[test]
    fn registering_twice_in_one_registry_fails() {
        let registry = Registry::new();
        let health = Arc::new(Health::new());
        PipelineMetrics::register(&registry, &[], "1", health.clone()).unwrap();
        assert!(PipelineMetrics::register(&registry, &[], "1", health).is_err());
    }
}
