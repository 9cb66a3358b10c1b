//! The `engauge_kpi_*` families: the KPIs of the latest closed instance of each window.
//!
//! Naming (SPEC §5): `engauge_kpi_<kpi>` with the unit suffix where one applies. Labels are
//! `window`, then the segment's dimensions (none for all users, so
//! `engauge_kpi_active_users{window="30d"}` is MAU), then `feature`, `survey` or `quantile`.
//! Within one family the label names differ between segment sets; the text format allows that
//! and Prometheus stores each label set as its own series.
//!
//! In PromQL a selector also matches series that carry labels it does not name, so
//! `engauge_kpi_active_users{window="30d"}` returns every segment of the window. The all-users
//! series is the one without dimension labels; select it by naming the configured dimensions
//! empty, e.g. `engauge_kpi_active_users{window="30d",plan="",region="",platform=""}`.
//!
//! Session duration is a summary, `engauge_kpi_session_duration_seconds`: samples with
//! `quantile="0.5"|"0.9"|"0.99"`, `_sum` (total seconds of those sessions) and `_count` (the
//! sessions). The mean is `_sum / _count`. A summary rather than a gauge because Prometheus
//! reserves the `quantile` label for summaries (`promtool check metrics` rejects it on a gauge).
//! Unlike a usual summary, `_sum` and `_count` describe one window instance and go down as well
//! as up: divide them, never `rate()` them.
//!
//! Absent KPIs (a ratio, mean, quantile or margin without samples) have no sample at all, never
//! NaN. Counts are always exported, 0 included.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use engauge_core::{FeatureKpis, FeatureName, Kpis, Millis, Snapshot};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary};

use crate::MetricsError;

/// Every family this collector renders, in one table: name, type and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    ActiveUsers,
    Events,
    StickinessRatio,
    Sessions,
    SessionsPerUser,
    SessionDuration,
    FeatureUsers,
    FeatureAdoptionRatio,
    SurveyResponses,
    Nps,
    NpsMargin,
    CsatRatio,
    CsatMargin,
    CesScore,
    RetainedUsers,
    ReturningUsers,
    ChurnedUsers,
    DormantUsers,
    NewUsers,
    ResurrectedUsers,
    RetentionRatio,
    ChurnRatio,
    Revenue,
    Orders,
    Aov,
    PayingUsers,
    Arpu,
    Arppu,
    ConversionRatio,
    ClvEstimate,
    Cancellations,
    CancelledUsers,
    SupportTickets,
    SelfServiceResolutions,
    SelfServiceRatio,
    NDayRetentionRatio,
    WindowEnd,
}

impl Family {
    const ALL: [Family; 37] = [
        Family::ActiveUsers,
        Family::Events,
        Family::StickinessRatio,
        Family::Sessions,
        Family::SessionsPerUser,
        Family::SessionDuration,
        Family::FeatureUsers,
        Family::FeatureAdoptionRatio,
        Family::SurveyResponses,
        Family::Nps,
        Family::NpsMargin,
        Family::CsatRatio,
        Family::CsatMargin,
        Family::CesScore,
        Family::RetainedUsers,
        Family::ReturningUsers,
        Family::ChurnedUsers,
        Family::DormantUsers,
        Family::NewUsers,
        Family::ResurrectedUsers,
        Family::RetentionRatio,
        Family::ChurnRatio,
        Family::Revenue,
        Family::Orders,
        Family::Aov,
        Family::PayingUsers,
        Family::Arpu,
        Family::Arppu,
        Family::ConversionRatio,
        Family::ClvEstimate,
        Family::Cancellations,
        Family::CancelledUsers,
        Family::SupportTickets,
        Family::SelfServiceResolutions,
        Family::SelfServiceRatio,
        Family::NDayRetentionRatio,
        Family::WindowEnd,
    ];
    const COUNT: usize = Family::ALL.len();

    fn name(self) -> &'static str {
        match self {
            Family::ActiveUsers => "engauge_kpi_active_users",
            Family::Events => "engauge_kpi_events",
            Family::StickinessRatio => "engauge_kpi_stickiness_ratio",
            Family::Sessions => "engauge_kpi_sessions",
            Family::SessionsPerUser => "engauge_kpi_sessions_per_user",
            Family::SessionDuration => "engauge_kpi_session_duration_seconds",
            Family::FeatureUsers => "engauge_kpi_feature_users",
            Family::FeatureAdoptionRatio => "engauge_kpi_feature_adoption_ratio",
            Family::SurveyResponses => "engauge_kpi_survey_responses",
            Family::Nps => "engauge_kpi_nps",
            Family::NpsMargin => "engauge_kpi_nps_margin",
            Family::CsatRatio => "engauge_kpi_csat_ratio",
            Family::CsatMargin => "engauge_kpi_csat_margin",
            Family::CesScore => "engauge_kpi_ces_score",
            Family::RetainedUsers => "engauge_kpi_retained_users",
            Family::ReturningUsers => "engauge_kpi_returning_users",
            Family::ChurnedUsers => "engauge_kpi_churned_users",
            Family::DormantUsers => "engauge_kpi_dormant_users",
            Family::NewUsers => "engauge_kpi_new_users",
            Family::ResurrectedUsers => "engauge_kpi_resurrected_users",
            Family::RetentionRatio => "engauge_kpi_retention_ratio",
            Family::ChurnRatio => "engauge_kpi_churn_ratio",
            Family::Revenue => "engauge_kpi_revenue",
            Family::Orders => "engauge_kpi_orders",
            Family::Aov => "engauge_kpi_aov",
            Family::PayingUsers => "engauge_kpi_paying_users",
            Family::Arpu => "engauge_kpi_arpu",
            Family::Arppu => "engauge_kpi_arppu",
            Family::ConversionRatio => "engauge_kpi_conversion_ratio",
            Family::ClvEstimate => "engauge_kpi_clv_estimate",
            Family::Cancellations => "engauge_kpi_cancellations",
            Family::CancelledUsers => "engauge_kpi_cancelled_users",
            Family::SupportTickets => "engauge_kpi_support_tickets",
            Family::SelfServiceResolutions => "engauge_kpi_self_service_resolutions",
            Family::SelfServiceRatio => "engauge_kpi_self_service_ratio",
            Family::NDayRetentionRatio => "engauge_kpi_n_day_retention_ratio",

            Family::WindowEnd => "engauge_kpi_window_end_timestamp_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::ActiveUsers => {
                "Distinct users with an activity event in the window instance (DAU/WAU/MAU on 1d/7d/30d)."
            }
            Family::Events => "Accepted events in the window instance.",
            Family::StickinessRatio => {
                "Active users over the last day divided by active users over the last 30 days."
            }
            Family::Sessions => "Sessions whose close time falls in the window instance.",
            Family::SessionsPerUser => "Sessions divided by active users.",
            Family::SessionDuration => {
                "Duration of the sessions of the window instance; _sum/_count is the mean (not a running total)."
            }
            Family::FeatureUsers => "Distinct users of the feature in the window instance.",
            Family::FeatureAdoptionRatio => "Users of the feature divided by active users.",
            Family::SurveyResponses => "Survey responses in the window instance.",
            Family::Nps => "Net promoter score, -100 to 100.",
            Family::NpsMargin => "95% half-width of the net promoter score.",
            Family::CsatRatio => "Share of CSAT responses scoring 4 or 5.",
            Family::CsatMargin => "95% half-width of the CSAT ratio.",
            Family::CesScore => "Mean customer effort score.",
            Family::RetainedUsers => "Users active in the previous period and in this one.",
            Family::ReturningUsers => {
                "Users active in the previous period and in this one (same as retained)."
            }
            Family::ChurnedUsers => "Users active in the previous period but not in this one.",
            Family::DormantUsers => {
                "Users active in the previous period but not in this one (same as churned)."
            }
            Family::NewUsers => "Active users whose first activity ever seen falls in this period.",
            Family::ResurrectedUsers => {
                "Active users not active in the previous period and first seen before this one."
            }
            Family::RetentionRatio => {
                "Retained users divided by the users active in the previous period."
            }
            Family::ChurnRatio => {
                "Churned users divided by the users active in the previous period."
            }
            Family::Revenue => "Purchases minus refunds, in the configured base currency.",
            Family::Orders => "Purchases in the window instance.",
            Family::Aov => {
                "Average order value: gross purchase amount divided by orders (base currency)."
            }
            Family::PayingUsers => "Distinct users with a purchase.",
            Family::Arpu => "Revenue divided by active users (base currency).",
            Family::Arppu => "Revenue divided by paying users (base currency).",
            Family::ConversionRatio => "Paying users divided by active users.",
            Family::ClvEstimate => {
                "ARPU times gross margin divided by churn ratio, on the clv.period window (base currency)."
            }
            Family::Cancellations => "subscription_cancelled events in the window instance.",
            Family::CancelledUsers => "Distinct users who cancelled a subscription.",
            Family::SupportTickets => "Support tickets opened in the window instance.",
            Family::SelfServiceResolutions => {
                "Issues resolved by self-service in the window instance."
            }
            Family::SelfServiceRatio => {
                "Self-service resolutions divided by self-service resolutions plus tickets."
            }
            Family::NDayRetentionRatio => {
                "Calendar day windows: share of the users first seen n local days before who are active this day."
            }

            Family::WindowEnd => {
                "Exclusive end (event time) of the window instance the KPI gauges come from."
            }
        }
    }

    fn kind(self) -> MetricType {
        match self {
            Family::SessionDuration => MetricType::SUMMARY,
            _ => MetricType::GAUGE,
        }
    }
}

/// The label names KPI families use themselves; a dimension may not take one of them.
const RESERVED_LABELS: [&str; 6] = ["window", "feature", "survey", "quantile", "le", "n"];

/// The Prometheus label name a segment dimension is exported under.
///
/// A name that is already a valid label name and not reserved is used as it is (`plan` stays
/// `plan`). Otherwise characters outside `[A-Za-z0-9_]` become `_`, a leading digit gets a `_`
/// in front, and a name that is one of the labels the KPI families use (`window`, `feature`,
/// `survey`, `quantile`, `le`, `n`) or starts with `__` (reserved by Prometheus) gets an `attr_`
/// prefix: `app-version` → `app_version`, `window` → `attr_window`.
pub fn dimension_label_name(dimension: &str) -> String {
    let mut name: String = dimension
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if name.starts_with("__") || RESERVED_LABELS.contains(&name.as_str()) {
        name.insert_str(0, "attr_");
    }
    name
}

/// One segment's KPIs with its labels (`window` and dimensions) prepared once, at replacement.
#[derive(Debug)]
struct SegmentSeries {
    labels: Vec<LabelPair>,
    kpis: Kpis,
    features: Vec<(FeatureName, FeatureKpis)>,
}

/// What a window currently exports: the segments of its latest closed instance.
#[derive(Debug)]
struct WindowSeries {
    window_label: LabelPair,
    end: Millis,
    segments: Vec<SegmentSeries>,
}

#[derive(Debug)]
struct Shared {
    windows: RwLock<BTreeMap<String, Arc<WindowSeries>>>,
    descs: Vec<Desc>,
}

/// KPI gauges of the latest closed instance of every window.
///
/// Cloning gives another handle to the same gauges: register one clone with a [`Registry`]
/// (see [`KpiGauges::register`]) and keep another where window instances close.
///
/// [`Registry`]: prometheus::Registry
#[derive(Debug, Clone)]
pub struct KpiGauges {
    shared: Arc<Shared>,
}

impl KpiGauges {
    pub fn new() -> Result<KpiGauges, MetricsError> {
        let descs = Family::ALL
            .iter()
            .map(|family| {
                // Label names vary with the segment set, so the descriptors declare none.
                Desc::new(
                    family.name().to_owned(),
                    family.help().to_owned(),
                    Vec::new(),
                    HashMap::new(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KpiGauges {
            shared: Arc::new(Shared {
                windows: RwLock::new(BTreeMap::new()),
                descs,
            }),
        })
    }

    /// Creates the gauges and registers them with `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<KpiGauges, MetricsError> {
        let gauges = KpiGauges::new()?;
        registry.register(Box::new(gauges.clone()))?;
        Ok(gauges)
    }

    /// Replaces everything `window` exports with `snapshots`, atomically for scrapes: a segment
    /// absent from `snapshots` stops being exported.
    ///
    /// Meant to be called with the snapshots of one closed instance. When `snapshots` spans
    /// several instances (a watermark jump closes many at once) only those of the latest end
    /// are kept, and when a segment appears twice the later snapshot wins, so the exposition
    /// never carries one series twice. An empty slice removes the window. The `window` field of
    /// the snapshots is not consulted: `window` is the label.
    pub fn replace_window(&self, window: &str, snapshots: &[Snapshot]) {
        let Some(end) = snapshots.iter().map(|s| s.end).max() else {
            self.write_windows().remove(window);
            return;
        };
        let window_label = label("window", window);
        let mut windows = self.write_windows();
        let previous = windows.get(window).cloned();
        let mut by_labels: BTreeMap<Vec<(String, String)>, SegmentSeries> = BTreeMap::new();
        for snapshot in snapshots.iter().filter(|s| s.end == end) {
            let labels = segment_labels(&window_label, &snapshot.segment);
            let mut kpis = snapshot.kpis.clone();
            if kpis.lifecycle_skipped
                && let Some(last) = previous
                    .as_ref()
                    .and_then(|p| p.segments.iter().find(|s| s.labels == labels))
            {
                // Sketch mode computes lifecycle KPIs on some instances only: their gauges
                // keep the last computed values meanwhile.
                let l = &last.kpis;
                if !l.lifecycle_skipped {
                    kpis.retained_users = l.retained_users;
                    kpis.churned_users = l.churned_users;
                    kpis.new_users = l.new_users;
                    kpis.resurrected_users = l.resurrected_users;
                    kpis.retention_ratio = l.retention_ratio;
                    kpis.churn_ratio = l.churn_ratio;
                    kpis.clv_estimate = l.clv_estimate;
                    kpis.lifecycle_skipped = false;
                }
            }
            let key = labels
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            by_labels.insert(
                key,
                SegmentSeries {
                    labels,
                    kpis,
                    features: snapshot.features.clone(),
                },
            );
        }
        let series = Arc::new(WindowSeries {
            window_label,
            end,
            segments: by_labels.into_values().collect(),
        });
        windows.insert(window.to_owned(), series);
    }

    /// Names of the windows currently exported, sorted.
    pub fn windows(&self) -> Vec<String> {
        self.shared
            .windows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn write_windows(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<WindowSeries>>> {
        // Every write replaces whole entries, so the map is consistent even after a panic.
        self.shared
            .windows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn families(&self) -> Vec<MetricFamily> {
        // Copy the window handles and render without the lock: a slow scrape never delays
        // `replace_window`.
        let windows: Vec<Arc<WindowSeries>> = self
            .shared
            .windows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut metrics: [Vec<Metric>; Family::COUNT] = std::array::from_fn(|_| Vec::new());
        for window in &windows {
            push_gauge(
                &mut metrics,
                Family::WindowEnd,
                std::slice::from_ref(&window.window_label),
                None,
                window.end as f64 / 1000.0,
            );
            for segment in &window.segments {
                push_segment(&mut metrics, segment);
            }
        }
        Family::ALL
            .iter()
            .zip(metrics)
            .filter(|(_, metrics)| !metrics.is_empty())
            .map(|(family, metrics)| {
                let mut mf = MetricFamily::default();
                mf.set_name(family.name().to_owned());
                mf.set_help(family.help().to_owned());
                mf.set_field_type(family.kind());
                mf.set_metric(metrics);
                mf
            })
            .collect()
    }
}

impl Collector for KpiGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.shared.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families()
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// `window` followed by the dimensions' labels, each name unique.
fn segment_labels(window_label: &LabelPair, segment: &[(String, String)]) -> Vec<LabelPair> {
    let mut labels = Vec::with_capacity(1 + segment.len());
    labels.push(window_label.clone());
    for (dimension, value) in segment {
        let mut name = dimension_label_name(dimension);
        // Two dimensions that differ only in characters a label cannot hold (`a-b`, `a.b`)
        // would otherwise share a name; the later one in sorted order gets underscores added.
        while labels.iter().any(|l| l.name() == name) {
            name.push('_');
        }
        let mut pair = LabelPair::default();
        pair.set_name(name);
        pair.set_value(value.clone());
        labels.push(pair);
    }
    labels
}

fn push_segment(metrics: &mut [Vec<Metric>; Family::COUNT], segment: &SegmentSeries) {
    let labels = segment.labels.as_slice();
    let kpis = &segment.kpis;
    let mut gauge = |family: Family, value: f64| push_gauge(metrics, family, labels, None, value);
    gauge(Family::ActiveUsers, kpis.active_users as f64);
    gauge(Family::Events, kpis.events as f64);
    gauge(Family::Sessions, kpis.sessions as f64);
    if !kpis.lifecycle_skipped {
        for (family, value) in [
            (Family::RetainedUsers, kpis.retained_users),
            (Family::ReturningUsers, kpis.retained_users),
            (Family::ChurnedUsers, kpis.churned_users),
            (Family::DormantUsers, kpis.churned_users),
            (Family::NewUsers, kpis.new_users),
            (Family::ResurrectedUsers, kpis.resurrected_users),
        ] {
            gauge(family, value as f64);
        }
    }
    let counts = [
        (Family::Orders, kpis.orders),
        (Family::PayingUsers, kpis.paying_users),
        (Family::Cancellations, kpis.cancellations),
        (Family::CancelledUsers, kpis.cancelled_users),
        (Family::SupportTickets, kpis.support_tickets),
        (
            Family::SelfServiceResolutions,
            kpis.self_service_resolutions,
        ),
    ];
    for (family, value) in counts {
        gauge(family, value as f64);
    }
    gauge(Family::Revenue, kpis.revenue);
    let optional = [
        (Family::StickinessRatio, kpis.stickiness_ratio),
        (Family::SessionsPerUser, kpis.sessions_per_user),
        (Family::Nps, kpis.nps),
        (Family::NpsMargin, kpis.nps_margin),
        (Family::CsatRatio, kpis.csat_ratio),
        (Family::CsatMargin, kpis.csat_margin),
        (Family::CesScore, kpis.ces_score),
        (Family::RetentionRatio, kpis.retention_ratio),
        (Family::ChurnRatio, kpis.churn_ratio),
        (Family::Aov, kpis.aov),
        (Family::Arpu, kpis.arpu),
        (Family::Arppu, kpis.arppu),
        (Family::ConversionRatio, kpis.conversion_ratio),
        (Family::ClvEstimate, kpis.clv_estimate),
        (Family::SelfServiceRatio, kpis.self_service_ratio),
    ];
    for (family, value) in optional {
        if let Some(value) = value {
            gauge(family, value);
        }
    }

    for &(n, ratio) in &kpis.n_day_retention {
        if let Some(ratio) = ratio {
            push_gauge(
                metrics,
                Family::NDayRetentionRatio,
                labels,
                Some(("n", &n.to_string())),
                ratio,
            );
        }
    }

    let surveys = kpis.survey_responses;
    for (survey, responses) in [
        ("nps", surveys.nps),
        ("csat", surveys.csat),
        ("ces", surveys.ces),
    ] {
        push_gauge(
            metrics,
            Family::SurveyResponses,
            labels,
            Some(("survey", survey)),
            responses as f64,
        );
    }

    for (feature, adoption) in &segment.features {
        push_gauge(
            metrics,
            Family::FeatureUsers,
            labels,
            Some(("feature", feature)),
            adoption.users as f64,
        );
        if let Some(ratio) = adoption.adoption_ratio {
            push_gauge(
                metrics,
                Family::FeatureAdoptionRatio,
                labels,
                Some(("feature", feature)),
                ratio,
            );
        }
    }

    if let Some(duration) = kpis.session_duration {
        let quantiles = [
            (0.5, duration.p50),
            (0.9, duration.p90),
            (0.99, duration.p99),
        ];
        let sum = duration.mean * kpis.sessions as f64;
        if quantiles.iter().all(|(_, v)| v.is_finite()) && sum.is_finite() {
            let mut summary = Summary::default();
            summary.set_sample_count(kpis.sessions);
            summary.set_sample_sum(sum);
            summary.set_quantile(
                quantiles
                    .iter()
                    .map(|&(q, value)| {
                        let mut quantile = Quantile::default();
                        quantile.set_quantile(q);
                        quantile.set_value(value);
                        quantile
                    })
                    .collect(),
            );
            let mut metric = Metric::default();
            metric.set_label(labels.to_vec());
            metric.set_summary(summary);
            metrics[Family::SessionDuration as usize].push(metric);
        }
    }
}

/// Appends one gauge sample; a non-finite value is skipped (the exposition never carries NaN).
fn push_gauge(
    metrics: &mut [Vec<Metric>; Family::COUNT],
    family: Family,
    labels: &[LabelPair],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    if !value.is_finite() {
        return;
    }
    let mut pairs = Vec::with_capacity(labels.len() + usize::from(extra.is_some()));
    pairs.extend_from_slice(labels);
    if let Some((name, value)) = extra {
        pairs.push(label(name, value));
    }
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::from_gauge(gauge);
    metric.set_label(pairs);
    metrics[family as usize].push(metric);
}

#[cfg(test)]
mod tests {
    use super::*;
    use engauge_core::{DurationStats, SurveyCounts};
    use prometheus::Registry;

    fn snapshot(window: &str, end: Millis, segment: &[(&str, &str)], active: u64) -> Snapshot {
        Snapshot {
            window: window.to_owned(),
            start: end - 1000,
            end,
            segment: segment
                .iter()
                .map(|&(d, v)| (d.to_owned(), v.to_owned()))
                .collect(),
            kpis: Kpis {
                active_users: active,
                events: 10 * active,
                ..Kpis::default()
            },
            features: Vec::new(),
            watermark: end,
            utc_offsets: None,
            approximate: false,
            active_users_sketch: None,
            parts: None,
            complete: None,
        }
    }

    fn render(gauges: &KpiGauges) -> String {
        let registry = Registry::new();
        registry
            .register(Box::new(gauges.clone()))
            .expect("register");
        crate::render(&registry).expect("render")
    }

    /// The sample lines (no comments) of the rendered text.
    fn samples(gauges: &KpiGauges) -> Vec<String> {
        render(gauges)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn has(lines: &[String], line: &str) -> bool {
        lines.iter().any(|l| l == line)
    }

    #[test]
    fn all_users_segment_has_only_the_window_label() {
        let gauges = KpiGauges::new().unwrap();
        gauges.replace_window(
            "30d",
            &[
                snapshot("30d", 86_400_000, &[], 1520),
                snapshot("30d", 86_400_000, &[("plan", "pro")], 300),
            ],
        );
        let lines = samples(&gauges);
        assert!(has(
            &lines,
            r#"engauge_kpi_active_users{window="30d"} 1520"#
        ));
        assert!(has(
            &lines,
            r#"engauge_kpi_active_users{window="30d",plan="pro"} 300"#
        ));
        assert!(has(&lines, r#"engauge_kpi_events{window="30d"} 15200"#));
        assert!(has(&lines, r#"engauge_kpi_sessions{window="30d"} 0"#));
        assert!(has(
            &lines,
            r#"engauge_kpi_window_end_timestamp_seconds{window="30d"} 86400"#
        ));
        assert!(has(
            &lines,
            r#"engauge_kpi_survey_responses{window="30d",survey="nps"} 0"#
        ));
    }

    #[test]
    fn one_help_and_type_per_family_across_label_sets() {
        let gauges = KpiGauges::new().unwrap();
        gauges.replace_window(
            "1d",
            &[
                snapshot("1d", 1000, &[], 5),
                snapshot("1d", 1000, &[("plan", "pro")], 3),
                snapshot("1d", 1000, &[("plan", "pro"), ("platform", "ios")], 2),
            ],
        );
        gauges.replace_window("7d", &[snapshot("7d", 1000, &[("region", "eu")], 4)]);
        let text = render(&gauges);
        assert_eq!(
            text.matches("# TYPE engauge_kpi_active_users gauge")
                .count(),
            1
        );
        assert_eq!(text.matches("# HELP engauge_kpi_active_users ").count(), 1);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("engauge_kpi_active_users{"))
                .count(),
            4
        );
    }

    #[test]
    fn skipped_lifecycle_kpis_keep_their_last_value() {
        let gauges = KpiGauges::new().unwrap();
        // A skipped instance before any computed one exports no lifecycle series.
        let mut first = snapshot("7d", 3_600_000, &[], 100);
        first.kpis.lifecycle_skipped = true;
        gauges.replace_window("7d", &[first]);
        let text = render(&gauges);
        assert!(!text.contains("engauge_kpi_retained_users{"), "{text}");
        let mut computed = snapshot("7d", 86_400_000, &[], 120);
        computed.kpis.retained_users = 40;
        computed.kpis.churned_users = 10;
        computed.kpis.retention_ratio = Some(0.8);
        gauges.replace_window("7d", &[computed]);
        let mut skipped = snapshot("7d", 90_000_000, &[], 130);
        skipped.kpis.lifecycle_skipped = true;
        gauges.replace_window("7d", &[skipped]);
        let lines = samples(&gauges);
        assert!(has(&lines, r#"engauge_kpi_active_users{window="7d"} 130"#));
        assert!(has(&lines, r#"engauge_kpi_retained_users{window="7d"} 40"#));
        assert!(has(&lines, r#"engauge_kpi_churned_users{window="7d"} 10"#));
        assert!(has(
            &lines,
            r#"engauge_kpi_retention_ratio{window="7d"} 0.8"#
        ));
    }

    #[test]
    fn absent_values_are_not_exported() {
        let gauges = KpiGauges::new().unwrap();
        gauges.replace_window("1h", &[snapshot("1h", 1000, &[], 0)]);
        let text = render(&gauges);
        for absent in [
            "engauge_kpi_stickiness_ratio",
            "engauge_kpi_sessions_per_user",
            "engauge_kpi_session_duration_seconds",
            "engauge_kpi_nps",
            "engauge_kpi_csat_ratio",
            "engauge_kpi_csat_margin",
            "engauge_kpi_ces_score",
            "engauge_kpi_feature_",
        ] {
            assert!(
                !text.lines().any(|l| l.starts_with(absent)),
                "{absent} exported:\n{text}"
            );
        }
        assert!(!text.contains("NaN"));
        assert!(text.contains(r#"engauge_kpi_active_users{window="1h"} 0"#));
    }

    #[test]
    fn every_kpi_is_named_with_its_labels() {
        let gauges = KpiGauges::new().unwrap();
        let mut snap = snapshot("30d", 2_000_000, &[("plan", "pro")], 200);
        snap.kpis = Kpis {
            active_users: 200,
            events: 9000,
            stickiness_ratio: Some(0.25),
            sessions: 400,
            sessions_per_user: Some(2.0),
            session_duration: Some(DurationStats {
                p50: 30.0,
                p90: 90.5,
                p99: 600.0,
                mean: 45.25,
            }),
            survey_responses: SurveyCounts {
                nps: 20,
                csat: 8,
                ces: 4,
            },
            nps: Some(41.5),
            nps_margin: Some(6.25),
            csat_ratio: Some(0.75),
            csat_margin: Some(0.125),
            ces_score: Some(5.5),
            retained_users: 120,
            churned_users: 40,
            new_users: 30,
            resurrected_users: 50,
            retention_ratio: Some(0.75),
            churn_ratio: Some(0.25),
            revenue: 1234.5,
            orders: 11,
            aov: Some(120.5),
            paying_users: 10,
            arpu: Some(6.1725),
            arppu: Some(123.45),
            conversion_ratio: Some(0.05),
            clv_estimate: Some(24.69),
            cancellations: 3,
            cancelled_users: 2,
            support_tickets: 6,
            self_service_resolutions: 2,
            self_service_ratio: Some(0.25),
            n_day_retention: vec![(1, Some(0.5)), (7, None)],
            lifecycle_skipped: false,
        };
        snap.features = vec![
            (
                "export_pdf".into(),
                FeatureKpis {
                    users: 50,
                    adoption_ratio: Some(0.25),
                },
            ),
            (
                "share".into(),
                FeatureKpis {
                    users: 0,
                    adoption_ratio: None,
                },
            ),
        ];
        gauges.replace_window("30d", &[snap]);
        let lines = samples(&gauges);
        let l = r#"window="30d",plan="pro""#;
        for expected in [
            format!("engauge_kpi_active_users{{{l}}} 200"),
            format!("engauge_kpi_events{{{l}}} 9000"),
            format!("engauge_kpi_stickiness_ratio{{{l}}} 0.25"),
            format!("engauge_kpi_sessions{{{l}}} 400"),
            format!("engauge_kpi_sessions_per_user{{{l}}} 2"),
            format!(r#"engauge_kpi_session_duration_seconds{{{l},quantile="0.5"}} 30"#),
            format!(r#"engauge_kpi_session_duration_seconds{{{l},quantile="0.9"}} 90.5"#),
            format!(r#"engauge_kpi_session_duration_seconds{{{l},quantile="0.99"}} 600"#),
            format!("engauge_kpi_session_duration_seconds_sum{{{l}}} 18100"),
            format!("engauge_kpi_session_duration_seconds_count{{{l}}} 400"),
            format!(r#"engauge_kpi_feature_users{{{l},feature="export_pdf"}} 50"#),
            format!(r#"engauge_kpi_feature_users{{{l},feature="share"}} 0"#),
            format!(r#"engauge_kpi_feature_adoption_ratio{{{l},feature="export_pdf"}} 0.25"#),
            format!(r#"engauge_kpi_survey_responses{{{l},survey="nps"}} 20"#),
            format!(r#"engauge_kpi_survey_responses{{{l},survey="csat"}} 8"#),
            format!(r#"engauge_kpi_survey_responses{{{l},survey="ces"}} 4"#),
            format!("engauge_kpi_nps{{{l}}} 41.5"),
            format!("engauge_kpi_nps_margin{{{l}}} 6.25"),
            format!("engauge_kpi_csat_ratio{{{l}}} 0.75"),
            format!("engauge_kpi_csat_margin{{{l}}} 0.125"),
            format!("engauge_kpi_ces_score{{{l}}} 5.5"),
            format!("engauge_kpi_retained_users{{{l}}} 120"),
            format!("engauge_kpi_returning_users{{{l}}} 120"),
            format!("engauge_kpi_churned_users{{{l}}} 40"),
            format!("engauge_kpi_dormant_users{{{l}}} 40"),
            format!("engauge_kpi_new_users{{{l}}} 30"),
            format!("engauge_kpi_resurrected_users{{{l}}} 50"),
            format!("engauge_kpi_retention_ratio{{{l}}} 0.75"),
            format!("engauge_kpi_churn_ratio{{{l}}} 0.25"),
            format!("engauge_kpi_revenue{{{l}}} 1234.5"),
            format!("engauge_kpi_orders{{{l}}} 11"),
            format!("engauge_kpi_aov{{{l}}} 120.5"),
            format!("engauge_kpi_paying_users{{{l}}} 10"),
            format!("engauge_kpi_arpu{{{l}}} 6.1725"),
            format!("engauge_kpi_arppu{{{l}}} 123.45"),
            format!("engauge_kpi_conversion_ratio{{{l}}} 0.05"),
            format!("engauge_kpi_clv_estimate{{{l}}} 24.69"),
            format!("engauge_kpi_cancellations{{{l}}} 3"),
            format!("engauge_kpi_cancelled_users{{{l}}} 2"),
            format!("engauge_kpi_support_tickets{{{l}}} 6"),
            format!("engauge_kpi_self_service_resolutions{{{l}}} 2"),
            format!("engauge_kpi_self_service_ratio{{{l}}} 0.25"),
            format!(r#"engauge_kpi_n_day_retention_ratio{{{l},n="1"}} 0.5"#),
            r#"engauge_kpi_window_end_timestamp_seconds{window="30d"} 2000"#.to_owned(),
        ] {
            assert!(has(&lines, &expected), "missing {expected}:\n{lines:#?}");
        }
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(r#"adoption_ratio{window="30d",plan="pro",feature="share"}"#))
        );
        assert_eq!(lines.len(), 44, "{lines:#?}");
        let text = render(&gauges);
        assert!(text.contains("# TYPE engauge_kpi_session_duration_seconds summary"));
    }

    #[test]
    fn replacing_a_window_drops_segments_that_are_gone() {
        let gauges = KpiGauges::new().unwrap();
        gauges.replace_window(
            "1d",
            &[
                snapshot("1d", 1000, &[], 5),
                snapshot("1d", 1000, &[("plan", "free")], 5),
            ],
        );
        gauges.replace_window("7d", &[snapshot("7d", 1000, &[("plan", "free")], 9)]);
        gauges.replace_window("1d", &[snapshot("1d", 2000, &[("plan", "pro")], 2)]);
        let lines = samples(&gauges);
        assert!(has(
            &lines,
            r#"engauge_kpi_active_users{window="1d",plan="pro"} 2"#
        ));
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(r#"window="1d",plan="free""#))
        );
        assert!(!has(&lines, r#"engauge_kpi_active_users{window="1d"} 5"#));
        // Other windows are untouched.
        assert!(has(
            &lines,
            r#"engauge_kpi_active_users{window="7d",plan="free"} 9"#
        ));
        assert!(has(
            &lines,
            r#"engauge_kpi_window_end_timestamp_seconds{window="1d"} 2"#
        ));

        gauges.replace_window("1d", &[]);
        assert_eq!(gauges.windows(), vec!["7d".to_owned()]);
        assert!(
            !samples(&gauges)
                .iter()
                .any(|l| l.contains(r#"window="1d""#))
        );
    }

    #[test]
    fn several_instances_keep_the_latest_and_duplicates_collapse() {
        let gauges = KpiGauges::new().unwrap();
        gauges.replace_window(
            "1h",
            &[
                snapshot("1h", 3000, &[], 30),
                snapshot("1h", 1000, &[], 10),
                snapshot("1h", 1000, &[("plan", "old")], 10),
                snapshot("1h", 3000, &[], 31),
            ],
        );
        let lines = samples(&gauges);
        let active: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("engauge_kpi_active_users"))
            .collect();
        assert_eq!(active, [r#"engauge_kpi_active_users{window="1h"} 31"#]);
    }

    #[test]
    fn label_values_are_escaped_and_names_sanitised() {
        let gauges = KpiGauges::new().unwrap();
        let mut snap = snapshot(
            "1d",
            1000,
            &[("app-version", "2.\"x\"\\\n"), ("window", "w")],
            1,
        );
        snap.features = vec![(
            "a\"b".into(),
            FeatureKpis {
                users: 1,
                adoption_ratio: Some(1.0),
            },
        )];
        gauges.replace_window("1d", &[snap]);
        let lines = samples(&gauges);
        assert!(
            has(
                &lines,
                r#"engauge_kpi_active_users{window="1d",app_version="2.\"x\"\\\n",attr_window="w"} 1"#
            ),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.contains(r#"feature="a\"b""#)));
    }

    #[test]
    fn dimension_label_names() {
        assert_eq!(dimension_label_name("plan"), "plan");
        assert_eq!(dimension_label_name("app.version"), "app_version");
        assert_eq!(dimension_label_name("9lives"), "_9lives");
        assert_eq!(dimension_label_name(""), "_");
        assert_eq!(dimension_label_name("quantile"), "attr_quantile");
        assert_eq!(dimension_label_name("__name__"), "attr___name__");
        assert_eq!(dimension_label_name("région"), "r_gion");
        let labels = segment_labels(
            &label("window", "1d"),
            &[("a-b".into(), "1".into()), ("a.b".into(), "2".into())],
        );
        let names: Vec<&str> = labels.iter().map(|l| l.name()).collect();
        assert_eq!(names, ["window", "a_b", "a_b_"]);
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let gauges = KpiGauges::new().unwrap();
        let mut snap = snapshot("1d", 1000, &[], 1);
        snap.kpis.nps = Some(f64::NAN);
        snap.kpis.ces_score = Some(f64::INFINITY);
        gauges.replace_window("1d", &[snap]);
        let text = render(&gauges);
        assert!(!text.contains("engauge_kpi_nps{"));
        assert!(!text.contains("engauge_kpi_ces_score{"));
        assert!(!text.to_lowercase().contains("nan"));
        assert!(!text.contains("inf"));
    }
}
