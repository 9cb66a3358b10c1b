//! What to generate: sizes, seed, stream start, and the share of every event kind and every
//! injected imperfection. [`GenConfig::validate`] reports nonsense; [`crate::Generator::new`]
//! clamps it instead, so a generator always starts.

use engauge_core::time::{DAY, EPOCH_2000, MINUTE, Millis};

use crate::population::MAX_USERS;

/// 2026-01-01T00:00:00Z, the default stream start: fixed, so output never depends on the clock.
pub const DEFAULT_START: Millis = 1_767_225_600_000;

/// Smallest `oversize_bytes`: below it an "oversize" line would be an ordinary one.
const MIN_OVERSIZE_BYTES: u32 = 1024;

/// Largest `out_of_order_ratio`: late lines are late relative to in-order ones, so some must be.
const MAX_OUT_OF_ORDER_RATIO: f64 = 0.9;

/// Parameters of a synthetic stream. Build with struct update syntax over `Default`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Lines to emit in total: well-formed events, duplicates and malformed lines together.
    /// `u64::MAX` makes an endless stream (then set `events_per_day`).
    pub events: u64,
    /// Size of the user population; activity over it is Zipf–Mandelbrot distributed, so fewer
    /// distinct users appear.
    pub users: u64,
    /// Days the stream spans from `start` (the arrival rate is calibrated to put `events` there).
    pub days: u32,
    pub seed: u64,
    /// Event time of the stream start. A live producer sets it to the wall clock.
    pub start: Millis,
    /// Mean lines per day; `None` means `events / days`. Needed for endless streams.
    pub events_per_day: Option<f64>,
    /// When set, the stream stops before the first line emitted at or after this time (the
    /// arrival rate is calibrated statistically, so a stream of `events` lines over `days` can
    /// end a few hours early or late; a hard end keeps a history out of the future).
    pub end: Option<Millis>,
    /// Probability that an event is re-emitted once more, byte-identical, up to 30 s later.
    pub duplicate_ratio: f64,
    /// Probability that an event is emitted late by a uniform delay in `(0, max_disorder]`
    /// (at most 0.9).
    pub out_of_order_ratio: f64,
    /// Largest delay of a late line or a duplicate behind the newest event time emitted. Keep it
    /// below the consumer's allowed lateness (10 min by default) or late lines become too late.
    pub max_disorder: Millis,
    /// Probability that a line is malformed instead of well-formed (kinds in [`crate::BadKind`]).
    pub bad_ratio: f64,
    /// Size a [`crate::BadKind::Oversize`] line reaches at least. The default, 64 KiB + 1, is
    /// just above the codec's default `max_event_bytes` and well below Kafka's 1 MB message cap.
    pub oversize_bytes: u32,
    /// Number of distinct features, Zipf-popular (s = 1).
    pub features: u32,
    /// Share of sessions whose events carry an explicit `session_id`.
    pub session_id_ratio: f64,
    /// Mean events per session (geometric).
    pub session_mean_events: f64,
    /// Zipf exponent `s` of user activity.
    pub zipf_exponent: f64,
    /// Zipf–Mandelbrot shift `q`: the user of rank `k` is drawn with weight `(k + q)^-s`.
    /// `None` means `users / 1000`, which keeps the heaviest users at a few sessions a day;
    /// pure Zipf (`q = 0`) at s = 1.1 hands a single user 12 % of all traffic.
    pub zipf_shift: Option<f64>,
    /// Shares of all events by type; the rest are page/screen views and actions.
    pub feature_ratio: f64,
    pub survey_ratio: f64,
    pub purchase_ratio: f64,
    pub refund_ratio: f64,
    pub cancellation_ratio: f64,
    pub support_ticket_ratio: f64,
    pub self_service_ratio: f64,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            events: 100_000,
            users: 10_000,
            days: 7,
            seed: 1,
            start: DEFAULT_START,
            events_per_day: None,
            end: None,
            duplicate_ratio: 0.02,
            out_of_order_ratio: 0.03,
            max_disorder: 5 * MINUTE,
            bad_ratio: 0.0,
            oversize_bytes: 65_537,
            features: 20,
            session_id_ratio: 0.3,
            session_mean_events: 8.0,
            zipf_exponent: 1.1,
            zipf_shift: None,
            feature_ratio: 0.10,
            survey_ratio: 0.01,
            purchase_ratio: 0.003,
            refund_ratio: 0.0003,
            cancellation_ratio: 0.0005,
            support_ticket_ratio: 0.002,
            self_service_ratio: 0.004,
        }
    }
}

/// A configuration value that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid generator setting {field}: {reason}")]
pub struct GenConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

fn err(field: &'static str, reason: &'static str) -> Result<(), GenConfigError> {
    Err(GenConfigError { field, reason })
}

impl GenConfig {
    /// An endless stream starting at `start` (e.g. the wall clock) at a mean of
    /// `events_per_day`; the caller paces it with [`crate::Generator::peek_time`].
    pub fn live(start: Millis, events_per_day: f64) -> GenConfig {
        GenConfig {
            events: u64::MAX,
            start,
            events_per_day: Some(events_per_day),
            ..GenConfig::default()
        }
    }

    fn ratios(&self) -> [(&'static str, f64); 11] {
        [
            ("duplicate_ratio", self.duplicate_ratio),
            ("out_of_order_ratio", self.out_of_order_ratio),
            ("bad_ratio", self.bad_ratio),
            ("session_id_ratio", self.session_id_ratio),
            ("feature_ratio", self.feature_ratio),
            ("survey_ratio", self.survey_ratio),
            ("purchase_ratio", self.purchase_ratio),
            ("refund_ratio", self.refund_ratio),
            ("cancellation_ratio", self.cancellation_ratio),
            ("support_ticket_ratio", self.support_ticket_ratio),
            ("self_service_ratio", self.self_service_ratio),
        ]
    }

    /// Sum of the per-type event shares.
    pub(crate) fn type_ratio_sum(&self) -> f64 {
        self.feature_ratio
            + self.survey_ratio
            + self.purchase_ratio
            + self.refund_ratio
            + self.cancellation_ratio
            + self.support_ticket_ratio
            + self.self_service_ratio
    }

    /// Checks every setting; the CLI reports the error, the generator would clamp it.
    pub fn validate(&self) -> Result<(), GenConfigError> {
        if self.users == 0 || self.users > MAX_USERS {
            return err("users", "must be between 1 and 2^40");
        }
        if self.days == 0 {
            return err("days", "must be at least 1");
        }
        if self.start < EPOCH_2000 {
            return err("start", "must not be before 2000-01-01");
        }
        if self.events == u64::MAX && self.events_per_day.is_none() {
            return err("events_per_day", "is required for an endless stream");
        }
        if self
            .events_per_day
            .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
        {
            return err("events_per_day", "must be a positive number");
        }
        for (field, value) in self.ratios() {
            if !(0.0..=1.0).contains(&value) {
                return err(field, "must be between 0 and 1");
            }
        }
        if self.out_of_order_ratio > MAX_OUT_OF_ORDER_RATIO {
            return err("out_of_order_ratio", "must be at most 0.9");
        }
        if self.type_ratio_sum() > 1.0 {
            return err("*_ratio", "event type ratios must sum to at most 1");
        }
        if !(0..=DAY).contains(&self.max_disorder) {
            return err("max_disorder", "must be between 0 and 1 day");
        }
        if self.oversize_bytes < MIN_OVERSIZE_BYTES {
            return err("oversize_bytes", "must be at least 1024");
        }
        if self.features == 0 {
            return err("features", "must be at least 1");
        }
        if !(self.session_mean_events >= 1.0 && self.session_mean_events <= 10_000.0) {
            return err("session_mean_events", "must be between 1 and 10000");
        }
        if !(self.zipf_exponent > 0.0 && self.zipf_exponent <= 10.0) {
            return err("zipf_exponent", "must be above 0 and at most 10");
        }
        if self
            .zipf_shift
            .is_some_and(|shift| !(shift.is_finite() && shift >= 0.0))
        {
            return err("zipf_shift", "must be a non-negative number");
        }
        Ok(())
    }

    /// The nearest valid configuration.
    pub(crate) fn sanitized(&self) -> GenConfig {
        let unit = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let mut c = self.clone();
        c.users = c.users.clamp(1, MAX_USERS);
        c.days = c.days.max(1);
        c.start = c.start.max(EPOCH_2000);
        c.events_per_day = c
            .events_per_day
            .filter(|r| r.is_finite() && *r > 0.0)
            .or((c.events == u64::MAX).then_some(1_000_000.0));
        c.duplicate_ratio = unit(c.duplicate_ratio);
        c.out_of_order_ratio = unit(c.out_of_order_ratio).min(MAX_OUT_OF_ORDER_RATIO);
        c.bad_ratio = unit(c.bad_ratio);
        c.session_id_ratio = unit(c.session_id_ratio);
        for r in [
            &mut c.feature_ratio,
            &mut c.survey_ratio,
            &mut c.purchase_ratio,
            &mut c.refund_ratio,
            &mut c.cancellation_ratio,
            &mut c.support_ticket_ratio,
            &mut c.self_service_ratio,
        ] {
            *r = unit(*r);
        }
        let sum = c.type_ratio_sum();
        if sum > 1.0 {
            for r in [
                &mut c.feature_ratio,
                &mut c.survey_ratio,
                &mut c.purchase_ratio,
                &mut c.refund_ratio,
                &mut c.cancellation_ratio,
                &mut c.support_ticket_ratio,
                &mut c.self_service_ratio,
            ] {
                *r /= sum;
            }
        }
        c.max_disorder = c.max_disorder.clamp(0, DAY);
        c.features = c.features.max(1);
        c.session_mean_events = if c.session_mean_events.is_nan() {
            8.0
        } else {
            c.session_mean_events.clamp(1.0, 10_000.0)
        };
        c.zipf_exponent = if c.zipf_exponent.is_nan() {
            1.1
        } else {
            c.zipf_exponent.clamp(0.01, 10.0)
        };
        c.zipf_shift = c.zipf_shift.filter(|q| q.is_finite() && *q >= 0.0);
        c.oversize_bytes = c.oversize_bytes.max(MIN_OVERSIZE_BYTES);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engauge_core::time::days_from_civil;

    #[test]
    fn default_start_is_new_year_2026() {
        assert_eq!(DEFAULT_START, days_from_civil(2026, 1, 1) * DAY);
    }

    #[test]
    fn defaults_validate_and_nonsense_does_not() {
        assert_eq!(GenConfig::default().validate(), Ok(()));
        assert_eq!(GenConfig::live(DEFAULT_START, 1e6).validate(), Ok(()));
        let bad = GenConfig {
            duplicate_ratio: 1.5,
            ..GenConfig::default()
        };
        assert_eq!(bad.validate().map_err(|e| e.field), Err("duplicate_ratio"));
        assert_eq!(bad.sanitized().duplicate_ratio, 1.0);
        let endless = GenConfig {
            events: u64::MAX,
            ..GenConfig::default()
        };
        assert!(endless.validate().is_err());
        assert!(endless.sanitized().validate().is_ok());
        let heavy = GenConfig {
            feature_ratio: 0.9,
            survey_ratio: 0.9,
            ..GenConfig::default()
        };
        assert!(heavy.validate().is_err());
        assert!(heavy.sanitized().validate().is_ok());
    }
}
