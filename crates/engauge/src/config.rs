//! Configuration: defaults, then a TOML file, then `ENGAUGE__SECTION__KEY` environment overrides,
//! parsed once into validated types. Errors name the offending key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use engauge_codec::CurrencyRates;
use engauge_core::time::parse_duration;
use engauge_core::{
    CalendarPeriod, CalendarSpec, ClvConfig, DistinctMode, EngineConfig, FeaturesConfig, Millis,
    SegmentsConfig, SketchConfig, SurveyScales, WindowSpec,
};
use serde::Deserialize;

/// A duration written as `"30s"`, `"10m"`, `"7d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub Millis);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Duration).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: expected a whole number and a unit (ms, s, m, h, d, w), e.g. \"30s\""
            ))
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    name: String,
    /// `sliding` (default) or `calendar`.
    kind: Option<String>,
    length: Option<Duration>,
    slide: Option<Duration>,
    /// Calendar windows: `day`, `week` or `month`, an IANA zone and the first day of a week.
    period: Option<String>,
    timezone: Option<String>,
    week_start: Option<String>,
    /// `exact` or `sketch`; the top-level `distinct` when absent.
    distinct: Option<String>,
}

fn distinct_mode(key: &str, mode: &str) -> anyhow::Result<DistinctMode> {
    match mode {
        "exact" => Ok(DistinctMode::Exact),
        "sketch" => Ok(DistinctMode::Sketch),
        other => bail!("{key}: {other:?} is not exact or sketch"),
    }
}

impl RawWindow {
    fn spec(self, index: usize) -> anyhow::Result<WindowSpec> {
        let key = format!("windows[{index}]");
        let distinct = self
            .distinct
            .as_deref()
            .map(|m| distinct_mode(&format!("{key}.distinct"), m))
            .transpose()?;
        let mut spec = self.spec_of_kind(&key)?;
        spec.distinct = distinct;
        Ok(spec)
    }

    fn spec_of_kind(self, key: &str) -> anyhow::Result<WindowSpec> {
        match self.kind.as_deref().unwrap_or("sliding") {
            "sliding" => {
                let (Some(length), Some(slide)) = (self.length, self.slide) else {
                    bail!("{key}: a sliding window needs length and slide");
                };
                if self.period.is_some() || self.timezone.is_some() || self.week_start.is_some() {
                    bail!("{key}: period, timezone and week_start are for kind = \"calendar\"");
                }
                Ok(WindowSpec::new(self.name, length.0, slide.0))
            }
            "calendar" => {
                if self.length.is_some() || self.slide.is_some() {
                    bail!("{key}: a calendar window has a period, not length and slide");
                }
                let period = self.period.as_deref().unwrap_or("day");
                let period = CalendarPeriod::parse(period).ok_or_else(|| {
                    anyhow::anyhow!("{key}.period: {period:?} is not day, week or month")
                })?;
                let mut spec = CalendarSpec::new(period, self.timezone.unwrap_or("UTC".into()));
                if let Some(day) = self.week_start {
                    spec.week_start = [
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                    ]
                    .iter()
                    .position(|d| d.eq_ignore_ascii_case(&day))
                    .ok_or_else(|| anyhow::anyhow!("{key}.week_start: {day:?} is not a weekday"))?
                        as u8;
                }
                Ok(WindowSpec::calendar(self.name, spec))
            }
            other => bail!("{key}.kind: {other:?} is not sliding or calendar"),
        }
    }
}

/// `[sketch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSketch {
    lg_k: u8,
}

/// `[snapshot]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnapshot {
    #[serde(default)]
    include_sketches: bool,
}

/// `[retention]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    n_days: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSessions {
    gap: Duration,
    max: Duration,
}

impl Default for RawSessions {
    fn default() -> Self {
        let d = EngineConfig::default();
        RawSessions {
            gap: Duration(d.session_gap),
            max: Duration(d.session_max),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSegments {
    dimensions: Vec<String>,
    sets: Vec<Vec<String>>,
    max_values: usize,
}

impl Default for RawSegments {
    fn default() -> Self {
        let d = SegmentsConfig::default();
        RawSegments {
            dimensions: d.dimensions,
            sets: d.sets,
            max_values: d.max_values,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeatures {
    max_values: usize,
    allowlist: Option<Vec<String>>,
}

impl Default for RawFeatures {
    fn default() -> Self {
        let d = FeaturesConfig::default();
        RawFeatures {
            max_values: d.max_values,
            allowlist: d.allowlist,
        }
    }
}

/// `[currencies]`: the base currency and static rates into it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurrencies {
    #[serde(default = "default_base_currency")]
    base: String,
    #[serde(default)]
    rates: BTreeMap<String, f64>,
}

fn default_base_currency() -> String {
    "USD".to_owned()
}

impl Default for RawCurrencies {
    fn default() -> Self {
        RawCurrencies {
            base: default_base_currency(),
            rates: BTreeMap::new(),
        }
    }
}

/// `[lifecycle]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    enabled: bool,
}

/// `[clv]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClv {
    period: Option<Duration>,
    gross_margin: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActivity {
    exclude_types: Vec<String>,
}

/// `[surveys.*]`: every key defaults to the standard scale, so a partial table is fine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNps {
    min: i32,
    max: i32,
    promoter_min: i32,
    detractor_max: i32,
}

impl Default for RawNps {
    fn default() -> Self {
        let s = SurveyScales::default();
        RawNps {
            min: s.nps_min,
            max: s.nps_max,
            promoter_min: s.nps_promoter_min,
            detractor_max: s.nps_detractor_max,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCsat {
    min: i32,
    max: i32,
    satisfied_min: i32,
}

impl Default for RawCsat {
    fn default() -> Self {
        let s = SurveyScales::default();
        RawCsat {
            min: s.csat_min,
            max: s.csat_max,
            satisfied_min: s.csat_satisfied_min,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCes {
    min: i32,
    max: i32,
}

impl Default for RawCes {
    fn default() -> Self {
        let s = SurveyScales::default();
        RawCes {
            min: s.ces_min,
            max: s.ces_max,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSurveys {
    nps: RawNps,
    csat: RawCsat,
    ces: RawCes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawInput {
    max_future_skew: Duration,
    max_event_bytes: usize,
    idle_timeout: Duration,
    ordered_reads: bool,
}

impl Default for RawInput {
    fn default() -> Self {
        RawInput {
            max_future_skew: Duration(engauge_core::time::DAY),
            max_event_bytes: 64 * 1024,
            idle_timeout: Duration(30 * engauge_core::time::SECOND),
            ordered_reads: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawKafka {
    brokers: String,
    group_id: String,
    input_topics: Vec<String>,
    snapshot_topic: String,
    dead_letter_topic: String,
    checkpoint_topic: String,
    state_topic: String,
    commit_interval: Duration,
    max_pending_events: u64,
    stall_timeout: Duration,
    consumer: BTreeMap<String, toml::Value>,
    producer: BTreeMap<String, toml::Value>,
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka {
            brokers: "localhost:9092".into(),
            group_id: "engauge".into(),
            input_topics: vec!["events".into()],
            snapshot_topic: "engauge.snapshots".into(),
            dead_letter_topic: "engauge.dead-letter".into(),
            checkpoint_topic: "engauge.checkpoints".into(),
            state_topic: "engauge.state".into(),
            commit_interval: Duration(engauge_core::time::SECOND),
            max_pending_events: 2_000_000,
            stall_timeout: Duration(60 * engauge_core::time::SECOND),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawScaleOut {
    enabled: bool,
    partials_topic: String,
    coordination_topic: String,
    completeness_timeout: Duration,
}

impl Default for RawScaleOut {
    fn default() -> Self {
        RawScaleOut {
            enabled: false,
            partials_topic: "engauge.partials".into(),
            coordination_topic: "engauge.merger".into(),
            completeness_timeout: Duration(60 * engauge_core::time::SECOND),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:9898".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// `exact` (default) or `sketch`, for windows that do not set their own.
    distinct: Option<String>,
    /// `at_least_once` (default) or `exactly_once`.
    guarantee: Option<String>,
    /// Exactly-once: one Kafka transaction per interval.
    checkpoint_interval: Option<Duration>,
    sketch: Option<RawSketch>,
    #[serde(default)]
    snapshot: RawSnapshot,
    allowed_lateness: Option<Duration>,
    dedup_horizon: Option<Duration>,
    windows: Option<Vec<RawWindow>>,
    #[serde(default)]
    sessions: RawSessions,
    #[serde(default)]
    segments: RawSegments,
    #[serde(default)]
    features: RawFeatures,
    activity: Option<RawActivity>,
    lifecycle: Option<RawLifecycle>,
    retention: Option<RawRetention>,
    #[serde(default)]
    currencies: RawCurrencies,
    clv: Option<RawClv>,
    #[serde(default)]
    surveys: RawSurveys,
    #[serde(default)]
    input: RawInput,
    #[serde(default)]
    kafka: RawKafka,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    scale_out: RawScaleOut,
}

/// The validated configuration of the whole program.
#[derive(Debug, Clone)]
pub struct Config {
    pub engine: EngineConfig,
    /// Base currency and conversion rates applied when decoding purchases and refunds.
    pub currencies: Arc<CurrencyRates>,
    /// Events further ahead of the wall clock are rejected.
    pub max_future_skew: Millis,
    /// Larger messages are rejected as oversize.
    pub max_event_bytes: usize,
    /// A caught-up partition quiet this long no longer holds the watermark back.
    pub idle_timeout: Millis,
    /// Each assigned partition is read from a queue of its own, the one furthest behind in
    /// event time first (else in the order librdkafka fetched them).
    pub ordered_reads: bool,
    pub kafka: engauge_kafka::KafkaSettings,
    /// Offsets are committed (after every effect is confirmed) this often.
    pub commit_interval: Millis,
    /// Above this many events waiting for the watermark, partitions ahead of it are paused.
    pub max_pending_events: u64,
    /// No message for this long while messages wait on unpaused partitions is a stall: the
    /// consumer is recreated.
    pub stall_timeout: Millis,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub http_listen: SocketAddr,
    /// What a reader of the snapshot topic can rely on.
    pub guarantee: Guarantee,
    /// Exactly-once: snapshots, dead letters and input offsets commit in one Kafka transaction
    /// this often.
    pub checkpoint_interval: Millis,
    /// `[scale_out] enabled`: several instances, one global answer (see docs/scale-out.md).
    pub scale_out: Option<ScaleOut>,
}

/// Scale-out settings: every instance publishes per-partition partials; the one elected merger
/// publishes the global snapshots and KPI gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleOut {
    /// Internal topic of partials, keyed by input topic and partition.
    pub partials_topic: String,
    /// Single-partition topic whose consumer group elects the merger (and holds its
    /// checkpoints).
    pub coordination_topic: String,
    /// A window instance still missing partials this long after its first one is published
    /// with `"complete": false`.
    pub completeness_timeout: Millis,
}

/// Delivery guarantee of snapshots and dead letters (`guarantee = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Guarantee {
    /// Idempotent producer, offsets committed once effects are confirmed; a crash can publish
    /// an instance again (readers dedup by key). The default.
    #[default]
    AtLeastOnce,
    /// Kafka transactions: a `read_committed` reader sees every (window instance, segment)
    /// exactly once.
    ExactlyOnce,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_table(toml::Table::new()).expect("defaults are valid")
    }
}

impl Config {
    /// Loads `path` (or only defaults when `None`), applies `ENGAUGE__…` overrides from `env`,
    /// and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("config file {} is not valid TOML", p.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let source = path.map_or("defaults".to_owned(), |p| p.display().to_string());
        Config::from_table(table).with_context(|| format!("invalid configuration ({source})"))
    }

    fn from_table(table: toml::Table) -> anyhow::Result<Config> {
        let raw: RawConfig = RawConfig::deserialize(table)?;
        let defaults = EngineConfig::default();
        let (nps, csat, ces) = (&raw.surveys.nps, &raw.surveys.csat, &raw.surveys.ces);
        let surveys = SurveyScales {
            nps_min: nps.min,
            nps_max: nps.max,
            nps_promoter_min: nps.promoter_min,
            nps_detractor_max: nps.detractor_max,
            csat_min: csat.min,
            csat_max: csat.max,
            csat_satisfied_min: csat.satisfied_min,
            ces_min: ces.min,
            ces_max: ces.max,
        };
        let engine = EngineConfig {
            windows: match raw.windows {
                Some(ws) => ws
                    .into_iter()
                    .enumerate()
                    .map(|(i, w)| w.spec(i))
                    .collect::<anyhow::Result<_>>()?,
                None => defaults.windows,
            },
            allowed_lateness: raw
                .allowed_lateness
                .map_or(defaults.allowed_lateness, |d| d.0),
            dedup_horizon: raw.dedup_horizon.map_or(defaults.dedup_horizon, |d| d.0),
            session_gap: raw.sessions.gap.0,
            session_max: raw.sessions.max.0,
            segments: SegmentsConfig {
                dimensions: raw.segments.dimensions,
                sets: raw.segments.sets,
                max_values: raw.segments.max_values,
            },
            features: FeaturesConfig {
                max_values: raw.features.max_values,
                allowlist: raw.features.allowlist,
            },
            surveys,
            non_activity_types: raw
                .activity
                .map_or(defaults.non_activity_types, |a| a.exclude_types),
            lifecycle: raw.lifecycle.map_or(defaults.lifecycle, |l| l.enabled),
            distinct: match raw.distinct.as_deref() {
                Some(mode) => distinct_mode("distinct", mode)?,
                None => defaults.distinct,
            },
            sketch: SketchConfig {
                lg_k: raw.sketch.map_or(defaults.sketch.lg_k, |s| s.lg_k),
                include_in_snapshots: raw.snapshot.include_sketches,
            },
            n_day_retention: raw.retention.map_or(defaults.n_day_retention, |r| r.n_days),
            clv: ClvConfig {
                period: raw
                    .clv
                    .as_ref()
                    .and_then(|c| c.period)
                    .map_or(defaults.clv.period, |d| d.0),
                gross_margin: raw
                    .clv
                    .as_ref()
                    .and_then(|c| c.gross_margin)
                    .unwrap_or(defaults.clv.gross_margin),
            },
            partials: raw.scale_out.enabled,
        };
        let scale_out = raw.scale_out.enabled.then(|| ScaleOut {
            partials_topic: raw.scale_out.partials_topic.clone(),
            coordination_topic: raw.scale_out.coordination_topic.clone(),
            completeness_timeout: raw.scale_out.completeness_timeout.0,
        });
        if scale_out.is_some() {
            if raw.scale_out.completeness_timeout.0 <= 0 {
                bail!("scale_out.completeness_timeout: must be positive");
            }
            if raw.kafka.input_topics.len() > 1 {
                bail!(
                    "scale_out.enabled: one input topic only (a user's events in two topics \
                     would live in two partitions' engines and count twice)"
                );
            }
            let s = &raw.scale_out;
            if s.partials_topic.is_empty() || s.coordination_topic.is_empty() {
                bail!("scale_out: topic names must not be empty");
            }
        }
        let rates: Vec<(String, f64)> = raw.currencies.rates.into_iter().collect();
        let currencies = CurrencyRates::new(&raw.currencies.base, &rates)
            .map_err(|e| anyhow::anyhow!("currencies: {e}"))?;
        engine.validate()?;
        if raw.input.max_event_bytes < 256 || raw.input.max_event_bytes > 16 * 1024 * 1024 {
            bail!("input.max_event_bytes: must be within 256..=16777216");
        }
        if raw.input.max_future_skew.0 < 0 {
            bail!("input.max_future_skew: must not be negative");
        }
        let k = raw.kafka;
        if k.input_topics.is_empty() || k.input_topics.iter().any(String::is_empty) {
            bail!("kafka.input_topics: at least one non-empty topic name is required");
        }
        if k.commit_interval.0 <= 0 {
            bail!("kafka.commit_interval: must be positive");
        }
        if k.stall_timeout.0 < engauge_core::time::SECOND {
            bail!("kafka.stall_timeout: must be at least 1s");
        }
        if raw.input.idle_timeout.0 <= 0 {
            bail!("input.idle_timeout: must be positive");
        }
        let http_listen: SocketAddr = raw.http.listen.parse().map_err(|_| {
            anyhow::anyhow!(
                "http.listen: {:?} is not an address such as 127.0.0.1:9898",
                raw.http.listen
            )
        })?;
        let passthrough = |table: &str, map: BTreeMap<String, toml::Value>| {
            map.into_iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) => Ok((k, s)),
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                        Ok((k, v.to_string()))
                    }
                    _ => Err(anyhow::anyhow!(
                        "kafka.{table}.{k}: librdkafka properties are strings, numbers or booleans"
                    )),
                })
                .collect::<anyhow::Result<BTreeMap<String, String>>>()
        };
        let guarantee = match raw.guarantee.as_deref() {
            None | Some("at_least_once") => Guarantee::AtLeastOnce,
            Some("exactly_once") => Guarantee::ExactlyOnce,
            Some(other) => {
                bail!("guarantee: {other:?} is neither \"at_least_once\" nor \"exactly_once\"")
            }
        };
        let checkpoint_interval = raw
            .checkpoint_interval
            .map_or(10 * engauge_core::time::SECOND, |d| d.0);
        if checkpoint_interval < 100 {
            bail!("checkpoint_interval: must be at least 100ms");
        }
        let kafka = engauge_kafka::KafkaSettings {
            brokers: k.brokers,
            group_id: k.group_id,
            input_topics: k.input_topics,
            snapshot_topic: k.snapshot_topic,
            dead_letter_topic: k.dead_letter_topic,
            checkpoint_topic: k.checkpoint_topic,
            state_topic: k.state_topic,
            consumer: passthrough("consumer", k.consumer)?,
            producer: passthrough("producer", k.producer)?,
        };
        kafka.consumer_config()?;
        kafka.producer_config()?;
        Ok(Config {
            engine,
            currencies: Arc::new(currencies),
            max_future_skew: raw.input.max_future_skew.0,
            max_event_bytes: raw.input.max_event_bytes,
            idle_timeout: raw.input.idle_timeout.0,
            ordered_reads: raw.input.ordered_reads,
            kafka,
            commit_interval: k.commit_interval.0,
            max_pending_events: k.max_pending_events,
            stall_timeout: k.stall_timeout.0,
            http_listen,
            guarantee,
            checkpoint_interval,
            scale_out,
        })
    }
}

/// Applies `ENGAUGE__A__B=value` as `a.b = value`. The value is read as a TOML value when it is
/// one (`42`, `true`, `["a","b"]`), otherwise as a plain string (`30s`).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("ENGAUGE__"))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let path: Vec<String> = name["ENGAUGE__".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            bail!("environment variable {name}: empty key segment");
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        let (last, parents) = path.split_last().expect("path is non-empty");
        let mut cursor = &mut *table;
        for key in parents {
            let entry = cursor
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cursor = match entry {
                toml::Value::Table(t) => t,
                _ => bail!("environment variable {name}: `{key}` is not a table"),
            };
        }
        cursor.insert(last.clone(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml")
    }

    #[test]
    fn guarantee_and_checkpoint_interval_parse() {
        let config = Config::load(
            None,
            [
                ("ENGAUGE__GUARANTEE".to_owned(), "exactly_once".to_owned()),
                ("ENGAUGE__CHECKPOINT_INTERVAL".to_owned(), "2s".to_owned()),
            ],
        )
        .expect("valid");
        assert_eq!(config.guarantee, Guarantee::ExactlyOnce);
        assert_eq!(config.checkpoint_interval, 2_000);
        assert_eq!(Config::default().guarantee, Guarantee::AtLeastOnce);
        assert_eq!(Config::default().checkpoint_interval, 10_000);
        for (key, value) in [
            ("ENGAUGE__GUARANTEE", "once"),
            ("ENGAUGE__CHECKPOINT_INTERVAL", "10ms"),
        ] {
            assert!(
                Config::load(None, [(key.to_owned(), value.to_owned())]).is_err(),
                "{key}={value} is refused"
            );
        }
    }

    #[test]
    fn example_config_loads_and_equals_the_defaults() {
        let example = Config::load(Some(&example_path()), []).expect("example loads");
        let defaults = Config::default();
        assert_eq!(example.engine, defaults.engine);
        assert_eq!(example.max_future_skew, defaults.max_future_skew);
        assert_eq!(example.max_event_bytes, defaults.max_event_bytes);
        assert_eq!(example.idle_timeout, defaults.idle_timeout);
        assert_eq!(example.kafka, defaults.kafka);
        assert_eq!(example.commit_interval, defaults.commit_interval);
        assert_eq!(example.max_pending_events, defaults.max_pending_events);
        assert_eq!(example.http_listen, defaults.http_listen);
        assert_eq!(example.guarantee, defaults.guarantee);
        assert_eq!(example.checkpoint_interval, defaults.checkpoint_interval);
        assert_eq!(example.scale_out, defaults.scale_out);
    }

    #[test]
    fn scale_out_parses_and_refuses_several_input_topics() {
        let table: toml::Table = toml::from_str(
            "[scale_out]\nenabled = true\ncoordination_topic = \"m\"\ncompleteness_timeout = \"5s\"",
        )
        .expect("toml");
        let config = Config::from_table(table).expect("valid");
        assert!(config.engine.partials);
        assert_eq!(
            config.scale_out,
            Some(ScaleOut {
                partials_topic: "engauge.partials".into(),
                coordination_topic: "m".into(),
                completeness_timeout: 5_000,
            })
        );
        assert!(!Config::default().engine.partials);
        // Sketch windows merge too (their partials carry the sketches).
        let table: toml::Table =
            toml::from_str("distinct = \"sketch\"\n[scale_out]\nenabled = true").expect("toml");
        assert!(Config::from_table(table).expect("valid").engine.partials);
        let table: toml::Table =
            toml::from_str("[scale_out]\nenabled = true\n[kafka]\ninput_topics = [\"a\", \"b\"]")
                .expect("toml");
        let err = Config::from_table(table)
            .expect_err("one input topic")
            .to_string();
        assert!(err.contains("one input topic"), "{err}");
    }

    #[test]
    fn env_overrides() {
        let env = [
            ("ENGAUGE__ALLOWED_LATENESS".to_owned(), "5m".to_owned()),
            ("ENGAUGE__SEGMENTS__MAX_VALUES".to_owned(), "7".to_owned()),
            (
                "ENGAUGE__SEGMENTS__SETS".to_owned(),
                r#"[[], ["region"]]"#.to_owned(),
            ),
            (
                "ENGAUGE__KAFKA__CONSUMER__FETCH.WAIT.MAX.MS".to_owned(),
                "10".to_owned(),
            ),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let cfg = Config::load(None, env).expect("valid");
        assert_eq!(cfg.engine.allowed_lateness, 5 * 60_000);
        assert_eq!(cfg.engine.segments.max_values, 7);
        assert_eq!(cfg.kafka.consumer["fetch.wait.max.ms"], "10");
        assert_eq!(
            cfg.engine.segments.sets,
            vec![vec![], vec!["region".to_owned()]]
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = |toml: &str| {
            let table: toml::Table = toml.parse().expect("toml");
            format!("{:#}", Config::from_table(table).expect_err("invalid"))
        };
        assert!(err("allowed_lateness = \"ten\"").contains("allowed_lateness"));
        assert!(err("[sessions]\ngap = \"5x\"").contains("gap"));
        assert!(err("bogus = 1").contains("bogus"));
        assert!(err("[surveys.nps]\npromoter_min = 3").contains("surveys.nps"));
        let e = err("[[windows]]\nname = \"w\"\nlength = \"61m\"\nslide = \"2m\"");
        assert!(e.contains("windows[0].length"), "{e}");
        assert!(err("[segments]\nsets = [[\"device\"]]").contains("segments.sets[0]"));
        assert!(err("[input]\nmax_event_bytes = 1").contains("input.max_event_bytes"));
        assert!(err("[http]\nlisten = \"nowhere\"").contains("http.listen"));
        let e = err("[kafka.consumer]\n\"enable.auto.commit\" = \"true\"");
        assert!(e.contains("kafka.consumer.enable.auto.commit"), "{e}");
        let e = err("[currencies]\nrates = { EUR = 0.0 }");
        assert!(e.contains("currencies") && e.contains("EUR"), "{e}");
        assert!(err("[currencies]\nbase = \"usd\"").contains("currencies"));
        assert!(err("[clv]\ngross_margin = -1.0").contains("clv.gross_margin"));
        assert!(err("[lifecycle]\nenabled = 1").contains("enabled"));
    }

    #[test]
    fn calendar_windows() {
        let table: toml::Table = concat!(
            "[[windows]]\nname = \"1h\"\nlength = \"1h\"\nslide = \"1m\"\n",
            "[[windows]]\nname = \"day\"\nkind = \"calendar\"\nperiod = \"day\"\n",
            "timezone = \"Europe/Berlin\"\n",
            "[[windows]]\nname = \"week\"\nkind = \"calendar\"\nperiod = \"week\"\n",
            "timezone = \"America/New_York\"\nweek_start = \"Sunday\"\n",
            "[retention]\nn_days = [1, 14]\n",
        )
        .parse()
        .expect("toml");
        let config = Config::from_table(table).expect("valid");
        let w = &config.engine.windows;
        assert_eq!(w[0], WindowSpec::new("1h", 3_600_000, 60_000));
        let mut week = CalendarSpec::new(CalendarPeriod::Week, "America/New_York");
        week.week_start = 6;
        assert_eq!(
            w[1],
            WindowSpec::calendar(
                "day",
                CalendarSpec::new(CalendarPeriod::Day, "Europe/Berlin")
            )
        );
        assert_eq!(w[2], WindowSpec::calendar("week", week));
        assert_eq!(config.engine.n_day_retention, vec![1, 14]);
        let err = |toml: &str| {
            let table: toml::Table = toml.parse().expect("toml");
            format!("{:#}", Config::from_table(table).expect_err("invalid"))
        };
        let e = err("[[windows]]\nname = \"d\"\nkind = \"calendar\"\ntimezone = \"Nowhere/X\"");
        assert!(
            e.contains("windows[0].timezone") && e.contains("Nowhere/X"),
            "{e}"
        );
        let e = err("[[windows]]\nname = \"d\"\nkind = \"calendar\"\nperiod = \"year\"");
        assert!(e.contains("windows[0].period"), "{e}");
        let e = err("[[windows]]\nname = \"d\"\nkind = \"calendar\"\nlength = \"1d\"");
        assert!(e.contains("windows[0]"), "{e}");
        let e = err("[[windows]]\nname = \"d\"\nlength = \"1d\"");
        assert!(e.contains("windows[0]") && e.contains("slide"), "{e}");
        assert!(err("[retention]\nn_days = [0]").contains("retention.n_days"));
    }

    #[test]
    fn currencies_lifecycle_and_clv() {
        let table: toml::Table = concat!(
            "[currencies]\nbase = \"EUR\"\nrates = { USD = 0.9 }\n",
            "[lifecycle]\nenabled = false\n",
            "[clv]\nperiod = \"7d\"\ngross_margin = 0.7\n",
        )
        .parse()
        .expect("toml");
        let config = Config::from_table(table).expect("valid");
        assert_eq!(config.currencies.base(), "EUR");
        let usd = engauge_codec::Currency::parse("USD").expect("code");
        assert_eq!(config.currencies.rate(usd), Some(0.9));
        assert!(!config.engine.lifecycle);
        assert_eq!(config.engine.clv.period, 7 * engauge_core::time::DAY);
        assert_eq!(config.engine.clv.gross_margin, 0.7);
    }

    #[test]
    fn distinct_mode_globally_and_per_window() {
        use engauge_core::DistinctMode;
        let err = |toml: &str| {
            let table: toml::Table = toml.parse().expect("toml");
            format!("{:#}", Config::from_table(table).expect_err("invalid"))
        };
        let table: toml::Table = concat!(
            "distinct = \"sketch\"\n[sketch]\nlg_k = 13\n[snapshot]\ninclude_sketches = true\n",
            "[[windows]]\nname = \"1h\"\nlength = \"1h\"\nslide = \"1m\"\ndistinct = \"exact\"\n",
            "[[windows]]\nname = \"30d\"\nlength = \"30d\"\nslide = \"1h\"\n",
        )
        .parse()
        .expect("toml");
        let config = Config::from_table(table).expect("valid");
        assert_eq!(config.engine.distinct, DistinctMode::Sketch);
        assert_eq!(config.engine.sketch.lg_k, 13);
        assert!(config.engine.sketch.include_in_snapshots);
        assert_eq!(config.engine.windows[0].distinct, Some(DistinctMode::Exact));
        assert_eq!(config.engine.windows[1].distinct, None);
        assert_eq!(Config::default().engine.distinct, DistinctMode::Exact);
        assert!(err("distinct = \"approximate\"").contains("exact or sketch"));
        assert!(err("[sketch]\nlg_k = 30").contains("sketch.lg_k"));
        let e = err("[[windows]]\nname = \"d\"\nlength = \"1d\"\nslide = \"1h\"\ndistinct = \"x\"");
        assert!(e.contains("windows[0].distinct"), "{e}");
    }
}
