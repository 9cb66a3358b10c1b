//! Mergeable parts of one (window instance, segment)'s KPIs: what a scale-out instance publishes
//! per input partition, and what the merger adds up into the global snapshot.
//!
//! Every KPI is a function of these parts ([`Parts::kpis`]), and the engine computes its own
//! snapshots through that same function, so a merge of per-partition parts gives exactly the
//! single-engine answer whenever the parts add up: counts and sums always do; distinct-user counts
//! do when no user appears in two partitions (input keyed by `user_id`).

use crate::kpi::{self, DurationStats, Kpis, SurveyCounts};
use crate::pane::{Agg, WindowSeg};
use crate::quantile::SparseHistogram;
use crate::{ClvConfig, FeatureKpis};

/// Lifecycle counts of one (instance, segment): retained, churned and new users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecycleCounts {
    pub retained: u64,
    pub churned: u64,
    pub new: u64,
}

/// The additive parts behind one (window instance, segment)'s KPIs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parts {
    pub(crate) agg: Agg,
    /// Non-zero buckets only: a partial holds few sessions.
    pub(crate) durations: SparseHistogram,
    /// Distinct users: active, with a purchase, who cancelled.
    pub active: u64,
    pub paying: u64,
    pub cancelled: u64,
    /// With lifecycle KPIs.
    pub lifecycle: Option<LifecycleCounts>,
    /// Active users over the last day at the same end: the stickiness numerator (30-day windows).
    pub day_active: Option<u64>,
    /// Distinct users per named feature (users > 0), sorted by name.
    pub features: Vec<(String, u64)>,
    /// Calendar `day` windows, all-users segment: per `n`, (users returned, users in the cohort).
    pub n_day: Vec<(u32, u64, u64)>,
    /// The window is the CLV period.
    pub clv: bool,
}

impl Parts {
    /// Events counted in the range.
    pub fn events(&self) -> u64 {
        self.agg.events.max(0) as u64
    }

    /// Whether the parts add nothing to a merge (no events and no users in either period).
    pub fn is_empty(&self) -> bool {
        self.agg == Agg::default()
            && self.durations.iter().all(|(_, c)| c == 0)
            && self.active == 0
            && self.paying == 0
            && self.cancelled == 0
            && self
                .lifecycle
                .is_none_or(|l| l == LifecycleCounts::default())
            && self.day_active.is_none_or(|d| d == 0)
            && self.features.is_empty()
            && self.n_day.iter().all(|&(_, r, c)| r == 0 && c == 0)
    }

    /// Adds `other` in.
    pub fn merge(&mut self, other: &Parts) {
        self.agg.merge(&other.agg, 1);
        self.durations.merge(&other.durations);
        self.active += other.active;
        self.paying += other.paying;
        self.cancelled += other.cancelled;
        self.lifecycle = match (self.lifecycle, other.lifecycle) {
            (Some(a), Some(b)) => Some(LifecycleCounts {
                retained: a.retained + b.retained,
                churned: a.churned + b.churned,
                new: a.new + b.new,
            }),
            (a, b) => a.or(b),
        };
        self.day_active = match (self.day_active, other.day_active) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        // Usually every feature of `other` is here already: add in place, allocating nothing.
        let mut at = Vec::with_capacity(other.features.len());
        let all_here = other.features.iter().all(|(name, _)| {
            let found = self
                .features
                .binary_search_by(|(mine, _)| mine.as_str().cmp(name));
            at.extend(found.ok());
            found.is_ok()
        });
        if all_here {
            for (i, (_, users)) in at.into_iter().zip(&other.features) {
                self.features[i].1 += users;
            }
        } else {
            let mine = std::mem::take(&mut self.features);
            self.features = merge_sorted(mine, &other.features);
        }
        for &(n, returned, cohort) in &other.n_day {
            match self.n_day.iter_mut().find(|(m, _, _)| *m == n) {
                Some((_, r, c)) => {
                    *r += returned;
                    *c += cohort;
                }
                None => self.n_day.push((n, returned, cohort)),
            }
        }
        self.n_day.sort_unstable_by_key(|&(n, _, _)| n);
        self.clv |= other.clv;
    }

    /// The KPIs and feature adoption these parts give.
    pub fn kpis(&self, clv: &ClvConfig) -> (Kpis, Vec<(String, FeatureKpis)>) {
        let active = self.active;
        let a = &self.agg;
        let sessions = a.sessions.max(0) as u64;
        let (nps, nps_margin) = kpi::nps(
            a.nps_promoters as u64,
            a.nps_detractors as u64,
            a.nps_n as u64,
        );
        let (csat_ratio, csat_margin) = kpi::csat(a.csat_satisfied as u64, a.csat_n as u64);
        let session_duration = self
            .durations
            .quantiles([0.5, 0.9, 0.99])
            .filter(|_| sessions > 0)
            .map(|[p50, p90, p99]| DurationStats {
                p50: p50 / 1000.0,
                p90: p90 / 1000.0,
                p99: p99 / 1000.0,
                mean: a.session_ms as f64 / sessions as f64 / 1000.0,
            });
        let revenue = a.revenue_micros as f64 / 1e6;
        let orders = a.orders.max(0) as u64;
        let arpu = kpi::ratio(revenue, active as f64);
        let tickets = a.support_tickets.max(0) as u64;
        let self_service = a.self_service.max(0) as u64;
        let mut k = Kpis {
            active_users: active,
            events: a.events.max(0) as u64,
            // A sketch estimate of the day can exceed the month's: a ratio stays at most 1.
            stickiness_ratio: self
                .day_active
                .and_then(|d| kpi::ratio(d as f64, active as f64))
                .map(|r| r.min(1.0)),
            sessions,
            sessions_per_user: kpi::ratio(sessions as f64, active as f64),
            session_duration,
            survey_responses: SurveyCounts {
                nps: a.nps_n as u64,
                csat: a.csat_n as u64,
                ces: a.ces_n as u64,
            },
            nps,
            nps_margin,
            csat_ratio,
            csat_margin,
            ces_score: kpi::ratio(a.ces_sum as f64, a.ces_n as f64),
            revenue,
            orders,
            aov: kpi::ratio(a.gross_micros as f64 / 1e6, orders as f64),
            paying_users: self.paying,
            arpu,
            arppu: kpi::ratio(revenue, self.paying as f64),
            conversion_ratio: kpi::ratio(self.paying as f64, active as f64),
            cancellations: a.cancellations.max(0) as u64,
            cancelled_users: self.cancelled,
            support_tickets: tickets,
            self_service_resolutions: self_service,
            self_service_ratio: kpi::ratio(self_service as f64, (self_service + tickets) as f64),
            n_day_retention: self
                .n_day
                .iter()
                .map(|&(n, returned, cohort)| (n, kpi::ratio(returned as f64, cohort as f64)))
                .collect(),
            ..Kpis::default()
        };
        if let Some(l) = self.lifecycle {
            let previous = l.retained + l.churned;
            k.retained_users = l.retained;
            k.churned_users = l.churned;
            k.new_users = l.new;
            k.resurrected_users = active.saturating_sub(l.new + l.retained);
            k.retention_ratio = kpi::ratio(l.retained as f64, previous as f64);
            k.churn_ratio = kpi::ratio(l.churned as f64, previous as f64);
        }
        if self.clv {
            k.clv_estimate = kpi::clv(k.arpu, clv.gross_margin, k.churn_ratio);
        }
        let features = self
            .features
            .iter()
            .map(|(name, users)| {
                (
                    name.clone(),
                    FeatureKpis {
                        users: *users,
                        adoption_ratio: kpi::ratio(*users as f64, active as f64),
                    },
                )
            })
            .collect();
        (k, features)
    }

    /// Parts with `events` events of which `active` distinct users (for tests of merging).
    #[doc(hidden)]
    pub fn with_events(events: u64, active: u64) -> Parts {
        debug_assert!(events >= active, "every active user has an event");
        let mut parts = Parts {
            active,
            ..Parts::default()
        };
        parts.agg.events = events as i64;
        parts
    }

    pub(crate) fn of_running(r: &WindowSeg) -> Parts {
        Parts {
            agg: r.agg.clone(),
            durations: SparseHistogram::from_sorted(r.durations.nonzero()),
            ..Parts::default()
        }
    }
}

/// Two name-sorted lists with counts summed per name.
fn merge_sorted(a: Vec<(String, u64)>, b: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let mut a = a.into_iter().peekable();
    let mut b = b.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => out.push(a.next().expect("peeked")),
                std::cmp::Ordering::Greater => out.push(b.next().expect("peeked").clone()),
                std::cmp::Ordering::Equal => {
                    let (name, n) = a.next().expect("peeked");
                    let m = b.next().expect("peeked").1;
                    out.push((name, n + m));
                }
            },
            (Some(_), None) => out.push(a.next().expect("peeked")),
            (None, Some(_)) => out.push(b.next().expect("peeked").clone()),
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_merge_by_name() {
        let a = vec![("a".to_owned(), 1), ("c".to_owned(), 2)];
        let b = [("b".to_owned(), 5), ("c".to_owned(), 3)];
        assert_eq!(
            merge_sorted(a, &b),
            vec![
                ("a".to_owned(), 1),
                ("b".to_owned(), 5),
                ("c".to_owned(), 5)
            ]
        );
    }

    #[test]
    fn parts_round_trip_with_sparse_durations() {
        use crate::pane::Contribution;
        let mut running = WindowSeg::default();
        for ms in [0, 1_500, 1_500, 90_000, 86_400_000] {
            running.apply(Contribution::Session { duration_ms: ms });
        }
        let parts = Parts {
            active: 3,
            features: vec![("export".into(), 2)],
            ..Parts::of_running(&running)
        };
        let bytes = bincode::serialize(&parts).expect("serializes");
        // Five sessions in four buckets, not a dense vector of every bucket up to a day.
        assert!(bytes.len() < 300, "{} bytes", bytes.len());
        let back: Parts = bincode::deserialize(&bytes).expect("deserializes");
        assert_eq!(
            back.kpis(&ClvConfig::default()),
            parts.kpis(&ClvConfig::default())
        );
        assert_eq!(back.durations, parts.durations);
        assert_eq!(
            back.durations.quantiles([0.5, 0.9, 0.99]),
            running.durations.quantiles([0.5, 0.9, 0.99])
        );
    }

    #[test]
    fn empty_parts_are_empty_and_merge_to_nothing() {
        let mut p = Parts::default();
        assert!(p.is_empty());
        p.merge(&Parts {
            active: 2,
            ..Parts::default()
        });
        assert!(!p.is_empty());
        assert_eq!(p.kpis(&ClvConfig::default()).0.active_users, 2);
    }
}
