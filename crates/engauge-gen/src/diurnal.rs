//! The shape of traffic over time and the session arrival process that follows it.
//!
//! Intensity is `weekday factor × (1 + A·cos(2π(hour − 15)/24))` in UTC: a peak at 15:00, a
//! trough at 03:00 (about a third of the peak), and weekends at 70 % of weekdays. Sessions arrive
//! as a non-homogeneous Poisson process with rate proportional to it, drawn by thinning: O(1) per
//! arrival, no table.

use engauge_core::time::{DAY, HOUR, Millis};

use crate::rng::Rng;

/// Relative swing of the daily cycle.
const AMPLITUDE: f64 = 0.55;
/// Hour of day (UTC) with the most traffic.
const PEAK_HOUR: f64 = 15.0;
/// Weekend traffic relative to a weekday.
const WEEKEND_FACTOR: f64 = 0.7;
/// The largest value [`intensity`] takes.
const MAX_INTENSITY: f64 = 1.0 + AMPLITUDE;
const OMEGA: f64 = std::f64::consts::TAU / 24.0;

/// Monday = 0 … Sunday = 6 for a day count since 1970-01-01 (a Thursday).
fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

fn day_factor(day: i64) -> f64 {
    if weekday(day) >= 5 {
        WEEKEND_FACTOR
    } else {
        1.0
    }
}

/// Relative traffic intensity at `t` (mean 1 over a weekday).
pub(crate) fn intensity(t: Millis) -> f64 {
    let hour = t.rem_euclid(DAY) as f64 / HOUR as f64;
    day_factor(t.div_euclid(DAY)) * (1.0 + AMPLITUDE * (OMEGA * (hour - PEAK_HOUR)).cos())
}

/// `∫ intensity dt` over `[from, to)`, in intensity × milliseconds, exactly (one step per day).
pub(crate) fn integral(from: Millis, to: Millis) -> f64 {
    let mut total = 0.0;
    let mut t = from;
    while t < to {
        let day = t.div_euclid(DAY);
        let day_end = ((day + 1) * DAY).min(to);
        let h0 = (t - day * DAY) as f64 / HOUR as f64;
        let h1 = (day_end - day * DAY) as f64 / HOUR as f64;
        let hours = (h1 - h0)
            + AMPLITUDE / OMEGA
                * ((OMEGA * (h1 - PEAK_HOUR)).sin() - (OMEGA * (h0 - PEAK_HOUR)).sin());
        total += day_factor(day) * hours * HOUR as f64;
        t = day_end;
    }
    total
}

/// Mean intensity over a whole week.
pub(crate) fn weekly_mean() -> f64 {
    (5.0 + 2.0 * WEEKEND_FACTOR) / 7.0
}

/// Session start times: a Poisson process with rate `base_rate × intensity(t)` per millisecond.
#[derive(Debug, Clone)]
pub(crate) struct Arrivals {
    /// Fractional clock so that rounding to milliseconds never biases the rate.
    clock: f64,
    /// Mean gap between candidate arrivals at the peak rate, in milliseconds.
    candidate_gap: f64,
}

impl Arrivals {
    /// `base_rate` in arrivals per millisecond at intensity 1.
    pub(crate) fn new(start: Millis, base_rate: f64) -> Arrivals {
        let peak = (base_rate * MAX_INTENSITY).max(f64::MIN_POSITIVE);
        Arrivals {
            clock: start as f64,
            candidate_gap: 1.0 / peak,
        }
    }

    /// The next arrival time (non-decreasing).
    pub(crate) fn next(&mut self, rng: &mut Rng) -> Millis {
        loop {
            self.clock += rng.exp(self.candidate_gap);
            let t = self.clock.min(i64::MAX as f64 / 2.0) as Millis;
            if rng.f64() * MAX_INTENSITY < intensity(t) {
                return t;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_1_2026: Millis = 1_767_225_600_000;

    #[test]
    fn peak_afternoon_trough_night_quiet_weekend() {
        let thursday = JAN_1_2026;
        assert!(intensity(thursday + 15 * HOUR) > 1.5);
        assert!(intensity(thursday + 3 * HOUR) < 0.5);
        let saturday = thursday + 2 * DAY;
        assert!(intensity(saturday + 15 * HOUR) < intensity(thursday + 15 * HOUR));
    }

    #[test]
    fn integral_matches_numeric_sum() {
        let from = JAN_1_2026 + 5 * HOUR + 123;
        let to = from + 9 * DAY + 7 * HOUR;
        let step = 1000;
        let mut numeric = 0.0;
        let mut t = from;
        while t < to {
            numeric += intensity(t) * step as f64;
            t += step;
        }
        let exact = integral(from, to);
        assert!(
            (exact - numeric).abs() / exact < 1e-4,
            "{exact} vs {numeric}"
        );
        // A whole week averages to the weekly mean.
        let week = integral(JAN_1_2026, JAN_1_2026 + 7 * DAY) / (7 * DAY) as f64;
        assert!((week - weekly_mean()).abs() < 1e-9);
    }

    #[test]
    fn arrival_count_follows_the_integral() {
        let mut rng = Rng::new(5);
        let rate = 1.0 / 1000.0; // one per second at intensity 1
        let mut arrivals = Arrivals::new(JAN_1_2026, rate);
        let end = JAN_1_2026 + 7 * DAY;
        let mut n = 0u32;
        let mut last = JAN_1_2026;
        loop {
            let t = arrivals.next(&mut rng);
            assert!(t >= last);
            last = t;
            if t >= end {
                break;
            }
            n += 1;
        }
        let expected = integral(JAN_1_2026, end) * rate;
        assert!(
            (f64::from(n) - expected).abs() < 4.0 * expected.sqrt(),
            "{n} vs {expected}"
        );
    }
}
