//! Scale-out metrics: partials every instance publishes, and what the elected merger does.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::MetricsError;

/// Declared on every instance (zero until scale-out is on), so dashboards and alerts can read
/// them without knowing which instance merges.
#[derive(Debug)]
pub struct ScaleOutMetrics {
    partials_published: IntCounter,
    partial_bytes: IntCounter,
    merger_leader: IntGauge,
    merged_instances: IntCounterVec,
    merger_pending: IntGauge,
    late_partials: IntCounter,
    unkeyed_users: IntGauge,
}

impl ScaleOutMetrics {
    pub fn register(registry: &Registry) -> Result<ScaleOutMetrics, MetricsError> {
        let m = ScaleOutMetrics {
            partials_published: IntCounter::new(
                "engauge_partials_published_total",
                "Scale-out: per-partition partials of closed window instances published to the partials topic.",
            )?,
            partial_bytes: IntCounter::new(
                "engauge_partial_bytes_total",
                "Scale-out: bytes of those partials.",
            )?,
            merger_leader: IntGauge::new(
                "engauge_merger_leader",
                "Scale-out: 1 on the instance elected to merge partials (it serves the global engauge_kpi_* gauges), else 0.",
            )?,
            merged_instances: IntCounterVec::new(
                Opts::new(
                    "engauge_merged_instances_total",
                    "Scale-out: window instances the merger published, by whether every input partition's partial was in (complete=\"false\": published after completeness_timeout).",
                ),
                &["complete"],
            )?,
            merger_pending: IntGauge::new(
                "engauge_merger_pending_instances",
                "Scale-out: window instances waiting for partials of some input partitions.",
            )?,
            late_partials: IntCounter::new(
                "engauge_merger_late_partials_total",
                "Scale-out: partials that arrived after their instance was published (incomplete) and were dropped.",
            )?,
            unkeyed_users: IntGauge::new(
                "engauge_merger_unkeyed_users",
                "Scale-out: sampled users seen on more than one input partition; above 0 the input is not keyed by user_id and exact distinct counts are overcounted.",
            )?,
        };
        registry.register(Box::new(m.partials_published.clone()))?;
        registry.register(Box::new(m.partial_bytes.clone()))?;
        registry.register(Box::new(m.merger_leader.clone()))?;
        registry.register(Box::new(m.merged_instances.clone()))?;
        registry.register(Box::new(m.merger_pending.clone()))?;
        registry.register(Box::new(m.late_partials.clone()))?;
        registry.register(Box::new(m.unkeyed_users.clone()))?;
        for complete in ["true", "false"] {
            m.merged_instances.with_label_values(&[complete]);
        }
        Ok(m)
    }

    pub fn add_partial(&self, bytes: usize) {
        self.partials_published.inc();
        self.partial_bytes.inc_by(bytes as u64);
    }

    pub fn set_leader(&self, leader: bool) {
        self.merger_leader.set(i64::from(leader));
    }

    pub fn add_merged(&self, complete: bool) {
        let label = if complete { "true" } else { "false" };
        self.merged_instances.with_label_values(&[label]).inc();
    }

    pub fn set_pending(&self, n: usize) {
        self.merger_pending.set(n as i64);
    }

    pub fn add_late_partial(&self) {
        self.late_partials.inc();
    }

    pub fn set_unkeyed_users(&self, n: usize) {
        self.unkeyed_users.set(n as i64);
    }
}
