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

    // Lifecycle, for the current period C = [start, end) and the previous period P of the same
    // length just before it (see docs/semantics.md). `returning_users` = retained and
    // `dormant_users` = churned are output names of the same counts.
    /// Active in P and in C.
    pub retained_users: u64,
    /// Active in P, not in C.
    pub churned_users: u64,
    /// Active in C, first activity ever seen falls in C.
    pub new_users: u64,
    /// Active in C, not in P, first seen before C.
    pub resurrected_users: u64,
    /// `retained / |active(P)|`, absent when nobody was active in P.
    pub retention_ratio: Option<f64>,
    /// `churned / |active(P)|`, absent when nobody was active in P.
    pub churn_ratio: Option<f64>,

    // Revenue, in the base currency.
    /// Purchases minus refunds.
    pub revenue: f64,
    /// Number of purchases.
    pub orders: u64,
    /// Gross purchase amount / orders.
    pub aov: Option<f64>,
    /// Distinct users with a purchase.
    pub paying_users: u64,
    /// `revenue / active_users`.
    pub arpu: Option<f64>,
    /// `revenue / paying_users`.
    pub arppu: Option<f64>,
    /// `paying_users / active_users`.
    pub conversion_ratio: Option<f64>,
    /// `arpu × gross_margin / churn_ratio`, on the window whose length is `clv.period` only;
    /// absent when churn is zero or unknown.
    pub clv_estimate: Option<f64>,
    /// `subscription_cancelled` events, and distinct users who sent one.
    pub cancellations: u64,
    pub cancelled_users: u64,

    // Support.
    pub support_tickets: u64,
    pub self_service_resolutions: u64,
    /// `self_service / (self_service + tickets)`.
    pub self_service_ratio: Option<f64>,
    /// On calendar `day` windows, all-users segment: per configured `n`, the share of the
    /// users first seen on the local day `n` days before who are active this day.
    pub n_day_retention: Vec<(u32, Option<f64>)>,
    /// Lifecycle KPIs (retained, churned, new, resurrected users and their ratios) were not
    /// computed for this instance: sketch mode computes them on lifecycle-grain boundaries only.
    /// Outputs then omit them (gauges keep their last value).
    pub lifecycle_skipped: bool,
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

/// `arpu × gross_margin / churn_ratio`; absent without ARPU or when churn is zero or unknown.
pub fn clv(arpu: Option<f64>, gross_margin: f64, churn_ratio: Option<f64>) -> Option<f64> {
    let churn = churn_ratio.filter(|c| *c > 0.0)?;
    Some(arpu? * gross_margin / churn)
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
