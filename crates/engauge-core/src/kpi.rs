//! KPI formulas (SPEC §4) over aggregated counts. A ratio with a zero denominator is `None`.

/// The KPIs of SPEC §4 for one (window instance, segment).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpis {
    pub active_users: u64,
    pub events: u64,
    /// `active_users(1d) / active_users(30d)` at the same end; only on windows 30 days long.
    pub stickiness_ratio: Option<f64>,
    pub sessions: u64,
    pub sessions_per_user: Option<f64>,
    pub session_duration: Option<DurationStats>,
    pub survey_responses: SurveyCounts,
    pub nps: Option<f64>,
    pub nps_margin: Option<f64>,
    pub csat_ratio: Option<f64>,
    pub csat_margin: Option<f64>,
    pub ces_score: Option<f64>,
}

/// Session-duration quantiles and mean, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationStats {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
}

/// Survey responses per survey.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SurveyCounts {
    pub nps: u64,
    pub csat: u64,
    pub ces: u64,
}

/// `num / den`, or `None` when `den` is zero.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

/// NPS and its 95 % half-width (normal approximation), from promoter/detractor counts.
pub fn nps(promoters: u64, detractors: u64, responses: u64) -> (Option<f64>, Option<f64>) {
    if responses == 0 {
        return (None, None);
    }
    let n = responses as f64;
    let (p, d) = (promoters as f64 / n, detractors as f64 / n);
    let score = 100.0 * (p - d);
    let variance = (p + d - (p - d) * (p - d)).max(0.0);
    (Some(score), Some(196.0 * (variance / n).sqrt()))
}

/// CSAT ratio (share of satisfied responses) and its 95 % half-width.
pub fn csat(satisfied: u64, responses: u64) -> (Option<f64>, Option<f64>) {
    if responses == 0 {
        return (None, None);
    }
    let n = responses as f64;
    let c = satisfied as f64 / n;
    (Some(c), Some(1.96 * (c * (1.0 - c) / n).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nps_examples() {
        assert_eq!(nps(0, 0, 0), (None, None));
        // One promoter: NPS 100, variance p+d-(p-d)^2 = 1-1 = 0.
        assert_eq!(nps(1, 0, 1), (Some(100.0), Some(0.0)));
        let (score, margin) = nps(5, 3, 10);
        assert!((score.expect("responses") - 20.0).abs() < 1e-9);
        let expected = 196.0 * ((0.5 + 0.3 - 0.04f64) / 10.0).sqrt();
        assert!((margin.expect("responses") - expected).abs() < 1e-9);
    }

    #[test]
    fn csat_examples() {
        assert_eq!(csat(0, 0), (None, None));
        let (c, m) = csat(3, 4);
        assert_eq!(c, Some(0.75));
        assert!((m.expect("responses") - 1.96 * (0.75f64 * 0.25 / 4.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn ratio_zero_denominator_is_absent() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(0.0, 0.0), None);
        assert_eq!(ratio(1.0, 4.0), Some(0.25));
    }
}
