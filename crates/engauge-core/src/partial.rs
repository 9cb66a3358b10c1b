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
use crate::sketch::{CompactSet, DistinctSketch, SetUnion, a_not_b, a_not_b_estimate, overlap};
use crate::{ClvConfig, FeatureKpis, FeatureName};

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
    pub features: Vec<(FeatureName, u64)>,
    /// Calendar `day` windows, all-users segment: per `n`, (users returned, users in the cohort).
    pub n_day: Vec<(u32, u64, u64)>,
    /// The window is the CLV period.
    pub clv: bool,
    /// Sketch windows in partials mode: the sketches behind the distinct counts above, whose
    /// unions give the merged counts (see [`PartSketches`]). With them, the counts above are
    /// the publishing engine's own; [`merge`](Self::merge) unions only the sketches (estimating
    /// once, in [`kpis`](Self::kpis), not at every merge), so read merged counts through `kpis`.
    pub sketches: Option<Box<PartSketches>>,
}

/// The sketches of one (window instance, segment) of a sketch window, as images: HLL for the
/// distinct-user counts, Theta compact sets for lifecycle and n-day retention. Merging unions
/// them (an HLL union keeps the larger register, a Theta union the smallest hashes), which is
/// what one engine's own unions over all panes do; the merged counts are the same estimates
/// from the same registers and hashes, whatever the split of users over partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartSketches {
    pub lg_k: u8,
    /// HLL images of active, paying and cancelled users (empty: none).
    pub active: Vec<u8>,
    pub paying: Vec<u8>,
    pub cancelled: Vec<u8>,
    /// HLL image of the active users over the last day (the stickiness numerator).
    pub day_active: Option<Vec<u8>>,
    /// HLL image of each named feature's users, sorted by name.
    pub features: Vec<(String, Vec<u8>)>,
    /// Theta images: users of the previous period, of the current one, and everyone seen
    /// before the current one (with lifecycle KPIs).
    pub lifecycle: Option<[Vec<u8>; 3]>,
    /// Calendar windows, all-users segment: what n-day retention is computed from.
    pub n_back: Option<NBackSketches>,
    /// The instance does not end on the window's lifecycle grain: no lifecycle KPIs.
    pub lifecycle_skipped: bool,
}

/// Theta images behind the n-day retention of a calendar window's instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NBackSketches {
    /// Users of the current instance.
    pub current: Vec<u8>,
    /// Per `n`: the users of the instance `n` before and everyone seen before that one, whose
    /// difference is the cohort (`None`: no such instance yet).
    pub cohorts: Vec<(u32, Option<[Vec<u8>; 2]>)>,
}

fn hll_of(image: &[u8]) -> Option<DistinctSketch> {
    (!image.is_empty())
        .then(|| DistinctSketch::deserialize(image).ok())
        .flatten()
}

fn set_of(image: &[u8]) -> CompactSet {
    CompactSet::deserialize(image).unwrap_or_default()
}

/// The image of the union of two HLL images (an empty image is no users).
fn hll_union(lg_k: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    match (hll_of(a), hll_of(b)) {
        (Some(a), Some(b)) => DistinctSketch::union_of(lg_k, [&a, &b])
            .map_or_else(|_| a.serialize(), |u| u.serialize()),
        (Some(_), None) => a.to_vec(),
        (None, Some(_)) => b.to_vec(),
        (None, None) => Vec::new(),
    }
}

/// The image of the union of two Theta images (an empty image is no users).
pub fn set_union(lg_k: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let Ok(mut union) = SetUnion::new(lg_k) else {
        return a.to_vec();
    };
    union.add(&set_of(a));
    union.add(&set_of(b));
    union.result().serialize()
}

/// The estimate an engine publishes for an HLL image (composite estimator, rounded).
fn hll_count(image: &[u8]) -> u64 {
    hll_of(image).map_or(0, |s| s.composite_estimate().round() as u64)
}

impl PartSketches {
    fn merge(&mut self, other: &PartSketches) {
        let k = self.lg_k.min(other.lg_k);
        self.active = hll_union(k, &self.active, &other.active);
        self.paying = hll_union(k, &self.paying, &other.paying);
        self.cancelled = hll_union(k, &self.cancelled, &other.cancelled);
        self.day_active = match (self.day_active.take(), &other.day_active) {
            (Some(a), Some(b)) => Some(hll_union(k, &a, b)),
            (a, b) => a.or_else(|| b.clone()),
        };
        for (name, image) in &other.features {
            match self
                .features
                .binary_search_by(|(mine, _)| mine.as_str().cmp(name))
            {
                Ok(i) => self.features[i].1 = hll_union(k, &self.features[i].1, image),
                Err(i) => self.features.insert(i, (name.clone(), image.clone())),
            }
        }
        self.lifecycle = match (self.lifecycle.take(), &other.lifecycle) {
            (Some(a), Some(b)) => Some([
                set_union(k, &a[0], &b[0]),
                set_union(k, &a[1], &b[1]),
                set_union(k, &a[2], &b[2]),
            ]),
            (a, b) => a.or_else(|| b.clone()),
        };
        self.n_back = match (self.n_back.take(), &other.n_back) {
            (Some(mut mine), Some(theirs)) => {
                for (n, image) in &theirs.cohorts {
                    match mine.cohorts.iter_mut().find(|(m, _)| m == n) {
                        Some((_, mine)) => {
                            *mine = match (mine.take(), image) {
                                (Some(a), Some(b)) => {
                                    Some([set_union(k, &a[0], &b[0]), set_union(k, &a[1], &b[1])])
                                }
                                (a, b) => a.or_else(|| b.clone()),
                            }
                        }
                        None => mine.cohorts.push((*n, image.clone())),
                    }
                }
                mine.current = set_union(k, &mine.current, &theirs.current);
                Some(mine)
            }
            (a, b) => a.or_else(|| b.clone()),
        };
        self.lifecycle_skipped |= other.lifecycle_skipped;
        self.lg_k = k;
    }

    /// The counts these sketches give, written into `parts` (as the engine computes them).
    fn count_into(&self, parts: &mut Parts) {
        parts.active = hll_count(&self.active);
        parts.paying = hll_count(&self.paying);
        parts.cancelled = hll_count(&self.cancelled);
        parts.day_active = self.day_active.as_deref().map(hll_count);
        parts.features = self
            .features
            .iter()
            .map(|(name, image)| (FeatureName::from(name.as_str()), hll_count(image)))
            .filter(|&(_, users)| users > 0)
            .collect();
        if let Some([previous, current, seen]) = &self.lifecycle {
            let (previous, current) = (set_of(previous), set_of(current));
            let o = overlap(&previous, &current);
            parts.lifecycle = Some(LifecycleCounts {
                retained: o.retained.round() as u64,
                churned: o.churned.round() as u64,
                new: a_not_b_estimate(&current, &set_of(seen)).round() as u64,
            });
        }
    }

    /// Sketch images of the n-day retention: per `n`, the share of its cohort active now.
    fn n_day_retention(&self) -> Option<Vec<(u32, Option<f64>)>> {
        let n_back = self.n_back.as_ref()?;
        let current = set_of(&n_back.current);
        Some(
            n_back
                .cohorts
                .iter()
                .map(|(n, cohort)| {
                    let ratio = cohort.as_ref().and_then(|[users, seen]| {
                        let cohort = a_not_b(&set_of(users), &set_of(seen));
                        overlap(&cohort, &current).retention_ratio()
                    });
                    (*n, ratio)
                })
                .collect(),
        )
    }
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
            && self.sketches.is_none()
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
            let found = self.features.binary_search_by(|(mine, _)| mine.cmp(name));
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
        // Sketch windows: the distinct counts are estimates of the unions, not sums; `kpis`
        // takes them from the sketches (once, not at every merge).
        if let Some(theirs) = &other.sketches {
            match &mut self.sketches {
                Some(mine) => mine.merge(theirs),
                None => self.sketches = Some(theirs.clone()),
            }
        }
    }

    /// Sketch windows with lifecycle KPIs: takes out the image of everyone seen before the
    /// instance, the same for every segment of an instance, so that a partial carries it once
    /// (see [`set_seen`](Self::set_seen)). Returns it with the sketches' `lg_k`.
    pub fn take_seen(&mut self) -> Option<(u8, Vec<u8>)> {
        let s = self.sketches.as_mut()?;
        let [_, _, seen] = s.lifecycle.as_mut()?;
        Some((s.lg_k, std::mem::take(seen)))
    }

    /// Puts back the image taken by [`take_seen`](Self::take_seen) (the union over the
    /// partitions, for merged parts).
    pub fn set_seen(&mut self, image: &[u8]) {
        if let Some([_, _, seen]) = self.sketches.as_mut().and_then(|s| s.lifecycle.as_mut()) {
            *seen = image.to_vec();
        }
    }

    /// The HLL image of the active users (sketch windows in partials mode).
    pub fn active_users_image(&self) -> Option<Vec<u8>> {
        let s = self.sketches.as_ref()?;
        Some(if s.active.is_empty() {
            DistinctSketch::new(s.lg_k).ok()?.serialize()
        } else {
            s.active.clone()
        })
    }

    /// The KPIs and feature adoption these parts give. With sketches, the distinct counts are
    /// their estimates (the counts above hold a single engine's, not a merge's).
    pub fn kpis(&self, clv: &ClvConfig) -> (Kpis, Vec<(FeatureName, FeatureKpis)>) {
        let Some(s) = &self.sketches else {
            return self.kpis_of_counts(clv);
        };
        let mut counted = Parts {
            agg: self.agg.clone(),
            durations: self.durations.clone(),
            n_day: self.n_day.clone(),
            clv: self.clv,
            ..Parts::default()
        };
        s.count_into(&mut counted);
        let (mut k, features) = counted.kpis_of_counts(clv);
        k.lifecycle_skipped = s.lifecycle_skipped;
        if let Some(n_day) = s.n_day_retention() {
            // Sketches give the ratio itself.
            k.n_day_retention = n_day;
        }
        (k, features)
    }

    /// [`Parts::kpis`] for parts that go no further: the feature names move into the result
    /// instead of being copied. With sketches the features come from the sketches, and
    /// nothing moves.
    pub(crate) fn take_kpis(&mut self, clv: &ClvConfig) -> (Kpis, Vec<(FeatureName, FeatureKpis)>) {
        if self.sketches.is_some() {
            return self.kpis(clv);
        }
        let names = std::mem::take(&mut self.features);
        let (k, _) = self.kpis_of_counts(clv);
        let features = adoption(names, k.active_users);
        (k, features)
    }

    fn kpis_of_counts(&self, clv: &ClvConfig) -> (Kpis, Vec<(FeatureName, FeatureKpis)>) {
        let active = self.active;
        let a = &self.agg;
        let sessions = a.sessions.max(0) as u64;
        let (nps, nps_margin) = kpi::nps(
            a.nps_promoters as u64,
            a.nps_detractors as u64,
            a.nps_n as u64,
        );
        let (csat_ratio, csat_margin) = kpi::csat(a.csat_satisfied as u64, a.csat_n as u64);
        let session_duration = duration_stats(self.durations.quantiles([0.5, 0.9, 0.99]), a);
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
        (k, adoption(self.features.iter().cloned(), active))
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

    /// The sums of `r`, and with `durations` its session-duration histogram (partials need
    /// it; one engine's own snapshot reads the quantiles from `r` itself, see
    /// [`duration_stats`], rather than copying every bucket per snapshot).
    pub(crate) fn of_running(r: &WindowSeg, durations: bool) -> Parts {
        Parts {
            agg: r.agg.clone(),
            durations: if durations {
                SparseHistogram::from_sorted(r.durations.nonzero())
            } else {
                SparseHistogram::default()
            },
            ..Parts::default()
        }
    }
}

/// Session-duration statistics (seconds) from the (p50, p90, p99) in milliseconds of a
/// duration histogram and the sums `a`; `None` without sessions.
pub(crate) fn duration_stats(quantiles: Option<[f64; 3]>, a: &Agg) -> Option<DurationStats> {
    let sessions = a.sessions.max(0) as u64;
    quantiles
        .filter(|_| sessions > 0)
        .map(|[p50, p90, p99]| DurationStats {
            p50: p50 / 1000.0,
            p90: p90 / 1000.0,
            p99: p99 / 1000.0,
            mean: a.session_ms as f64 / sessions as f64 / 1000.0,
        })
}

/// Two name-sorted lists with counts summed per name.
fn merge_sorted(a: Vec<(FeatureName, u64)>, b: &[(FeatureName, u64)]) -> Vec<(FeatureName, u64)> {
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

/// Adoption of each feature, given its distinct users, among `active` users.
fn adoption(
    features: impl IntoIterator<Item = (FeatureName, u64)>,
    active: u64,
) -> Vec<(FeatureName, FeatureKpis)> {
    features
        .into_iter()
        .map(|(name, users)| {
            let adoption_ratio = kpi::ratio(users as f64, active as f64);
            (
                name,
                FeatureKpis {
                    users,
                    adoption_ratio,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_merge_by_name() {
        let a = vec![("a".into(), 1), ("c".into(), 2)];
        let b = [("b".into(), 5), ("c".into(), 3)];
        assert_eq!(
            merge_sorted(a, &b),
            vec![("a".into(), 1), ("b".into(), 5), ("c".into(), 5)]
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
            ..Parts::of_running(&running, true)
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
