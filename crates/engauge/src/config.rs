//! Configuration: defaults, then a TOML file, then `ENGAUGE__SECTION__KEY` environment overrides,
//! parsed once into validated types. Errors name the offending key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use engauge_core::time::parse_duration;
use engauge_core::{
    EngineConfig, FeaturesConfig, Millis, SegmentsConfig, SurveyScales, WindowSpec,
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
    length: Duration,
    slide: Duration,
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
}

impl Default for RawInput {
    fn default() -> Self {
        RawInput {
            max_future_skew: Duration(engauge_core::time::DAY),
            max_event_bytes: 64 * 1024,
            idle_timeout: Duration(30 * engauge_core::time::SECOND),
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
    commit_interval: Duration,
    max_pending_events: u64,
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
            commit_interval: Duration(engauge_core::time::SECOND),
            max_pending_events: 2_000_000,
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
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
    #[serde(default)]
    surveys: RawSurveys,
    #[serde(default)]
    input: RawInput,
    #[serde(default)]
    kafka: RawKafka,
    #[serde(default)]
    http: RawHttp,
}

/// The validated configuration of the whole program.
#[derive(Debug, Clone)]
pub struct Config {
    pub engine: EngineConfig,
    /// Events further ahead of the wall clock are rejected.
    pub max_future_skew: Millis,
    /// Larger messages are rejected as oversize.
    pub max_event_bytes: usize,
    /// A caught-up partition quiet this long no longer holds the watermark back.
    pub idle_timeout: Millis,
    pub kafka: engauge_kafka::KafkaSettings,
    /// Offsets are committed (after every effect is confirmed) this often.
    pub commit_interval: Millis,
    /// Above this many events waiting for the watermark, partitions ahead of it are paused.
    pub max_pending_events: u64,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub http_listen: SocketAddr,
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
                    .map(|w| WindowSpec::new(w.name, w.length.0, w.slide.0))
                    .collect(),
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
        };
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
        let kafka = engauge_kafka::KafkaSettings {
            brokers: k.brokers,
            group_id: k.group_id,
            input_topics: k.input_topics,
            snapshot_topic: k.snapshot_topic,
            dead_letter_topic: k.dead_letter_topic,
            consumer: passthrough("consumer", k.consumer)?,
            producer: passthrough("producer", k.producer)?,
        };
        kafka.consumer_config()?;
        kafka.producer_config()?;
        Ok(Config {
            engine,
            max_future_skew: raw.input.max_future_skew.0,
            max_event_bytes: raw.input.max_event_bytes,
            idle_timeout: raw.input.idle_timeout.0,
            kafka,
            commit_interval: k.commit_interval.0,
            max_pending_events: k.max_pending_events,
            http_listen,
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
    }
}
