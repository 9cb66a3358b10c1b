//! Validated engine configuration. Parsing (TOML, env, duration strings) happens in the binary;
//! this is the typed, checked form the engine runs on.

use crate::calendar::{Calendar, CalendarSpec};
use crate::time::{DAY, HOUR, MINUTE, format_duration};
use crate::{Millis, Survey};

/// A window. Sliding (the default): instances end at multiples of `slide` and cover
/// `[end - length, end)`. Calendar (`calendar` set): instances are the local days, weeks or
/// months of a time zone; `length` and `slide` are then unused (0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub name: String,
    pub length: Millis,
    pub slide: Millis,
    pub calendar: Option<CalendarSpec>,
    /// How this window counts distinct users; `None` follows [`EngineConfig::distinct`].
    pub distinct: Option<DistinctMode>,
}

/// How distinct users (active users, feature users, lifecycle) are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DistinctMode {
    /// Exactly, with per-user state (memory grows with the users seen in the longest lookback).
    #[default]
    Exact,
    /// With mergeable sketches per (pane, segment): memory bounded whatever the number of users,
    /// estimates within a documented error (see `docs/semantics.md`, sketch mode).
    Sketch,
}

/// Sketch-mode settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SketchConfig {
    /// `k = 2^lg_k` of every sketch (HLL registers, Theta nominal entries).
    pub lg_k: u8,
    /// Snapshots of sketch windows carry the HLL image of their active users.
    pub include_in_snapshots: bool,
}

impl Default for SketchConfig {
    fn default() -> Self {
        SketchConfig {
            lg_k: crate::sketch::DEFAULT_LG_K,
            include_in_snapshots: false,
        }
    }
}

impl WindowSpec {
    pub fn new(name: impl Into<String>, length: Millis, slide: Millis) -> Self {
        WindowSpec {
            name: name.into(),
            length,
            slide,
            calendar: None,
            distinct: None,
        }
    }

    /// A calendar window.
    pub fn calendar(name: impl Into<String>, spec: CalendarSpec) -> Self {
        WindowSpec {
            name: name.into(),
            length: 0,
            slide: 0,
            calendar: Some(spec),
            distinct: None,
        }
    }

    /// The default set: `1h`/`1m`, `1d`/`5m`, `7d`/`1h`, `30d`/`1h`.
    pub fn defaults() -> Vec<WindowSpec> {
        vec![
            WindowSpec::new("1h", HOUR, MINUTE),
            WindowSpec::new("1d", DAY, 5 * MINUTE),
            WindowSpec::new("7d", 7 * DAY, HOUR),
            WindowSpec::new("30d", 30 * DAY, HOUR),
        ]
    }
}

/// Which `attrs` may become labels, which group-bys to compute, and the cardinality cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentsConfig {
    /// Allowlisted attribute keys.
    pub dimensions: Vec<String>,
    /// Group-bys; the empty set (all users) is always computed, first.
    pub sets: Vec<Vec<String>>,
    /// Distinct values kept per dimension before `__other__`.
    pub max_values: usize,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        SegmentsConfig {
            dimensions: vec!["plan".into(), "region".into(), "platform".into()],
            sets: vec![vec![], vec!["plan".into()], vec!["region".into()]],
            max_values: 20,
        }
    }
}

/// Feature-name cap and optional allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeaturesConfig {
    pub max_values: usize,
    /// When set, only these features are tracked by name; others map to `__other__`.
    pub allowlist: Option<Vec<String>>,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            max_values: 50,
            allowlist: None,
        }
    }
}

/// Survey score scales and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurveyScales {
    pub nps_min: i32,
    pub nps_max: i32,
    /// Scores at or above this are promoters.
    pub nps_promoter_min: i32,
    /// Scores at or below this are detractors.
    pub nps_detractor_max: i32,
    pub csat_min: i32,
    pub csat_max: i32,
    /// Scores at or above this are satisfied.
    pub csat_satisfied_min: i32,
    pub ces_min: i32,
    pub ces_max: i32,
}

impl Default for SurveyScales {
    fn default() -> Self {
        SurveyScales {
            nps_min: 0,
            nps_max: 10,
            nps_promoter_min: 9,
            nps_detractor_max: 6,
            csat_min: 1,
            csat_max: 5,
            csat_satisfied_min: 4,
            ces_min: 1,
            ces_max: 7,
        }
    }
}

impl SurveyScales {
    /// The inclusive score range of a survey.
    pub fn range(&self, survey: Survey) -> (i32, i32) {
        match survey {
            Survey::Nps => (self.nps_min, self.nps_max),
            Survey::Csat => (self.csat_min, self.csat_max),
            Survey::Ces => (self.ces_min, self.ces_max),
        }
    }
}

/// Everything the engine needs to know, validated by [`EngineConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub windows: Vec<WindowSpec>,
    pub allowed_lateness: Millis,
    pub dedup_horizon: Millis,
    pub session_gap: Millis,
    pub session_max: Millis,
    pub segments: SegmentsConfig,
    pub features: FeaturesConfig,
    pub surveys: SurveyScales,
    /// Event types that do not count as activity (default: `survey_response`).
    pub non_activity_types: Vec<String>,
    /// Retention, churn and lifecycle KPIs (each window also tracks the period before it, so
    /// per-user state is kept for twice the longest window).
    pub lifecycle: bool,
    pub clv: ClvConfig,
    /// `n` of `n_day_retention_ratio` on calendar `day` windows (default 1, 7, 30).
    pub n_day_retention: Vec<u32>,
    /// Default distinct-count mode of windows that do not set their own.
    pub distinct: DistinctMode,
    pub sketch: SketchConfig,
    /// Scale-out: snapshots carry their mergeable [`Parts`](crate::Parts), segments with users
    /// only in the previous period (or in a retention cohort) are emitted too, and quiet
    /// stretches are walked rather than jumped (a partition's empty instances may still hold
    /// churned users that other partitions' events make visible).
    pub partials: bool,
}

/// The customer-lifetime-value estimate: `arpu × gross_margin / churn_ratio` on the window
/// whose length is `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvConfig {
    pub period: Millis,
    pub gross_margin: f64,
}

impl Default for ClvConfig {
    fn default() -> Self {
        ClvConfig {
            period: 30 * DAY,
            gross_margin: 1.0,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            windows: WindowSpec::defaults(),
            allowed_lateness: 10 * MINUTE,
            dedup_horizon: HOUR,
            session_gap: 30 * MINUTE,
            session_max: DAY,
            segments: SegmentsConfig::default(),
            features: FeaturesConfig::default(),
            surveys: SurveyScales::default(),
            non_activity_types: vec!["survey_response".into()],
            lifecycle: true,
            clv: ClvConfig::default(),
            n_day_retention: vec![1, 7, 30],
            distinct: DistinctMode::Exact,
            sketch: SketchConfig::default(),
            partials: false,
        }
    }
}

/// A configuration that cannot run, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Dimensions one segment set may combine (segment keys pack them into 128 bits).
pub const MAX_SET_DIMENSIONS: usize = 7;

/// The longest lookback any window may need, which bounds pane rings: one year.
pub(crate) const MAX_WINDOW_LENGTH: Millis = 366 * DAY;

impl EngineConfig {
    /// Checks every invariant the engine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.windows.is_empty() {
            return Err(ConfigError::new(
                "windows",
                "at least one window is required",
            ));
        }
        for (i, w) in self.windows.iter().enumerate() {
            let key = format!("windows[{i}]");
            if w.name.is_empty() || w.name.contains(['|', '"', '\\', '\n']) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    "must be non-empty and free of | \" \\ and newlines",
                ));
            }
            if self.windows[..i].iter().any(|o| o.name == w.name) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("duplicate window name {:?}", w.name),
                ));
            }
            if let Some(spec) = &w.calendar {
                Calendar::new(spec).map_err(|e| ConfigError::new(format!("{key}.timezone"), e))?;
                continue;
            }
            if w.slide < 1_000 || w.slide % 1_000 != 0 {
                return Err(ConfigError::new(
                    format!("{key}.slide"),
                    "must be a positive whole number of seconds",
                ));
            }
            if w.length < w.slide || w.length % w.slide != 0 {
                return Err(ConfigError::new(
                    format!("{key}.length"),
                    format!(
                        "must be a positive multiple of slide {}",
                        format_duration(w.slide)
                    ),
                ));
            }
            if w.length > MAX_WINDOW_LENGTH {
                return Err(ConfigError::new(
                    format!("{key}.length"),
                    "must be at most 366d",
                ));
            }
        }
        if self.allowed_lateness < 0 {
            return Err(ConfigError::new("allowed_lateness", "must not be negative"));
        }
        if self.dedup_horizon <= 0 {
            return Err(ConfigError::new("dedup_horizon", "must be positive"));
        }
        if self.session_gap <= 0 {
            return Err(ConfigError::new("sessions.gap", "must be positive"));
        }
        if self.session_max < self.session_gap {
            return Err(ConfigError::new(
                "sessions.max",
                "must be at least sessions.gap",
            ));
        }
        if self.session_max > 7 * DAY {
            return Err(ConfigError::new("sessions.max", "must be at most 7d"));
        }
        if !(self.clv.gross_margin.is_finite() && self.clv.gross_margin >= 0.0) {
            return Err(ConfigError::new(
                "clv.gross_margin",
                "must be a finite number >= 0",
            ));
        }
        if let Some((i, _)) = self
            .n_day_retention
            .iter()
            .enumerate()
            .find(|&(i, n)| self.n_day_retention[..i].contains(n))
        {
            return Err(ConfigError::new(
                format!("retention.n_days[{i}]"),
                "duplicate n",
            ));
        }
        if self.n_day_retention.iter().any(|&n| n == 0 || n > 366) {
            return Err(ConfigError::new(
                "retention.n_days",
                "each n must be within 1..=366",
            ));
        }
        if self.clv.period <= 0 {
            return Err(ConfigError::new("clv.period", "must be positive"));
        }
        if !(crate::sketch::MIN_LG_K..=crate::sketch::MAX_LG_K).contains(&self.sketch.lg_k) {
            return Err(ConfigError::new(
                "sketch.lg_k",
                format!(
                    "must be within {}..={}",
                    crate::sketch::MIN_LG_K,
                    crate::sketch::MAX_LG_K
                ),
            ));
        }
        let seg = &self.segments;
        for (i, set) in seg.sets.iter().enumerate() {
            for dim in set {
                if !seg.dimensions.contains(dim) {
                    return Err(ConfigError::new(
                        format!("segments.sets[{i}]"),
                        format!("dimension {dim:?} is not in segments.dimensions"),
                    ));
                }
            }
            if set.len() > MAX_SET_DIMENSIONS {
                return Err(ConfigError::new(
                    format!("segments.sets[{i}]"),
                    format!("at most {MAX_SET_DIMENSIONS} dimensions per set"),
                ));
            }
            let mut sorted = set.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != set.len() {
                return Err(ConfigError::new(
                    format!("segments.sets[{i}]"),
                    "names a dimension twice",
                ));
            }
        }
        for dim in &seg.dimensions {
            if matches!(
                dim.as_str(),
                "window" | "feature" | "survey" | "quantile" | "n"
            ) || !is_label_name(dim)
            {
                return Err(ConfigError::new(
                    "segments.dimensions",
                    format!("{dim:?} cannot be a Prometheus label name"),
                ));
            }
        }
        if seg.max_values == 0 || seg.max_values > 10_000 {
            return Err(ConfigError::new(
                "segments.max_values",
                "must be within 1..=10000",
            ));
        }
        if self.features.max_values == 0 || self.features.max_values > 10_000 {
            return Err(ConfigError::new(
                "features.max_values",
                "must be within 1..=10000",
            ));
        }
        let s = &self.surveys;
        for (name, lo, hi) in [
            ("surveys.nps", s.nps_min, s.nps_max),
            ("surveys.csat", s.csat_min, s.csat_max),
            ("surveys.ces", s.ces_min, s.ces_max),
        ] {
            if lo > hi {
                return Err(ConfigError::new(name, "min must not exceed max"));
            }
        }
        if s.nps_detractor_max >= s.nps_promoter_min {
            return Err(ConfigError::new(
                "surveys.nps",
                "detractor_max must be below promoter_min",
            ));
        }
        Ok(())
    }
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        EngineConfig::default()
            .validate()
            .expect("defaults validate");
    }

    #[test]
    fn errors_name_the_key() {
        let mut cfg = EngineConfig::default();
        cfg.windows[1].length = cfg.windows[1].slide * 3 + 1;
        assert_eq!(cfg.validate().unwrap_err().key, "windows[1].length");
        let mut cfg = EngineConfig::default();
        cfg.segments.sets.push(vec!["device".into()]);
        assert_eq!(cfg.validate().unwrap_err().key, "segments.sets[3]");
        let mut cfg = EngineConfig::default();
        cfg.segments.dimensions.push("window".into());
        assert_eq!(cfg.validate().unwrap_err().key, "segments.dimensions");
    }
}
