//! The naive model: every KPI recomputed by brute force from the deduplicated event list, written
//! from SPEC §1–4 and docs/semantics.md only (no code shared with the engine).
//!
//! Scope: replay-style input where no event is late (every event's `ts` is at or after the
//! watermark in force when it arrives) and every duplicate arrives within `dedup_horizon` of its
//! original. [`run`] panics if its input breaks the first assumption.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use engauge_core::{
    DurationStats, EngineConfig, Event, EventKind, FeatureKpis, Ingested, Kpis, Millis, NONE_VALUE,
    OTHER_VALUE, Snapshot, Survey, SurveyCounts,
};

pub const DAY: Millis = 86_400_000;

/// A segment: (dimension, value) pairs sorted by dimension; empty for all users.
pub type Segment = Vec<(String, String)>;

/// What the model expects from a replay of `arrivals`.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Snapshots in output order (end, window name, key).
    pub snapshots: Vec<Snapshot>,
    /// What `ingest` must answer for each arrival.
    pub ingested: Vec<Ingested>,
    /// Every watermark passed to `advance`, in order (one per arrival, then the final one).
    pub watermarks: Vec<Millis>,
}

/// One accepted event with everything the KPIs need, resolved once.
#[derive(Debug)]
struct Accepted<'a> {
    user: &'a str,
    ts: Millis,
    session: Option<&'a str>,
    activity: bool,
    /// The mapped feature name of a `feature_used` event.
    feature: Option<String>,
    survey: Option<(Survey, i32)>,
    /// A purchase's amount in micro-units of the base currency.
    purchase: Option<i128>,
    /// A refund's amount in micro-units of the base currency.
    refund: Option<i128>,
    cancellation: bool,
    ticket: bool,
    self_service: bool,
    /// The segment of this event for each normalised set (same index as `sets`).
    segments: Vec<Segment>,
}

/// An amount in micro-units: the precision revenue is kept at.
pub fn micros(amount: f64) -> i128 {
    (amount * 1e6).round() as i128
}

/// A session: (first event time, last event time).
pub type Session = (Millis, Millis);

/// Splits one stream's sorted event times into sessions (semantics.md, Sessions): an event
/// continues the current session when `ts - last < gap` and `ts - start <= max`.
pub fn split_sessions(sorted_ts: &[Millis], gap: Millis, max: Millis) -> Vec<Session> {
    let mut sessions: Vec<Session> = Vec::new();
    for &ts in sorted_ts {
        match sessions.last_mut() {
            Some((start, last)) if ts - *last < gap && ts - *start <= max => *last = ts,
            _ => sessions.push((ts, ts)),
        }
    }
    sessions
}

/// Nearest-rank quantile: the ⌈q·n⌉-th smallest of `sorted`, with q = `num / den`, in integers.
pub fn nearest_rank(sorted: &[f64], num: usize, den: usize) -> f64 {
    let n = sorted.len();
    let rank = (num * n).div_ceil(den).clamp(1, n);
    sorted[rank - 1]
}

/// The first `cap` distinct values of `seen` (in order) are kept; the rest are overflow.
#[derive(Debug, Default)]
struct Registry {
    kept: Vec<String>,
}

impl Registry {
    fn register(&mut self, value: &str, cap: usize) {
        if !self.kept.iter().any(|v| v == value) && self.kept.len() < cap {
            self.kept.push(value.to_owned());
        }
    }

    fn map(&self, value: &str) -> String {
        if self.kept.iter().any(|v| v == value) {
            value.to_owned()
        } else {
            OTHER_VALUE.to_owned()
        }
    }
}

/// The group-bys actually computed: all-users first, each set sorted, no repeats.
pub fn normalised_sets(cfg: &EngineConfig) -> Vec<Vec<String>> {
    let mut sets: Vec<Vec<String>> = vec![vec![]];
    for set in &cfg.segments.sets {
        let mut set = set.clone();
        set.sort();
        if !sets.contains(&set) {
            sets.push(set);
        }
    }
    sets
}

/// Computes what a replay of `arrivals` (in arrival order) must output.
pub fn run(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> Expected {
    // Watermarks exactly as `engauge replay` passes them.
    let mut watermarks = Vec::with_capacity(arrivals.len() + 1);
    let mut max_ts = Millis::MIN;
    for ev in arrivals {
        max_ts = max_ts.max(ev.ts);
        watermarks.push(max_ts - cfg.allowed_lateness);
    }
    if !arrivals.is_empty() {
        watermarks.push(max_ts);
    }

    // Dedup: the first copy of an id wins; no event may be late.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut ingested = Vec::with_capacity(arrivals.len());
    let mut kept: Vec<&Event<'_>> = Vec::new();
    for (i, ev) in arrivals.iter().enumerate() {
        if i > 0 {
            assert!(
                ev.ts >= watermarks[i - 1],
                "naive model: event {} is late (ts {} < watermark {})",
                ev.id,
                ev.ts,
                watermarks[i - 1]
            );
        }
        if seen.insert(ev.id.as_ref()) {
            ingested.push(Ingested::Accepted);
            kept.push(ev);
        } else {
            ingested.push(Ingested::Duplicate);
        }
    }

    // Cardinality caps, in arrival order of accepted events.
    let mut dims: BTreeMap<&str, Registry> = BTreeMap::new();
    let mut features = Registry::default();
    for ev in &kept {
        for dim in &cfg.segments.dimensions {
            let reg = dims.entry(dim.as_str()).or_default();
            if let Some(v) = ev.attr(dim) {
                reg.register(v, cfg.segments.max_values);
            }
        }
        if let EventKind::FeatureUsed { feature } = &ev.kind {
            let allowed = cfg
                .features
                .allowlist
                .as_ref()
                .is_none_or(|list| list.iter().any(|f| f == feature));
            if allowed {
                features.register(feature, cfg.features.max_values);
            }
        }
    }

    let sets = normalised_sets(cfg);
    let accepted: Vec<Accepted<'_>> = kept
        .iter()
        .map(|ev| Accepted {
            user: ev.user_id.as_ref(),
            ts: ev.ts,
            session: ev.session_id.as_deref(),
            activity: !cfg.non_activity_types.iter().any(|t| t == &ev.event_type),
            feature: match &ev.kind {
                EventKind::FeatureUsed { feature } => Some(features.map(feature)),
                _ => None,
            },
            survey: match ev.kind {
                EventKind::SurveyResponse { survey, score } => Some((survey, score)),
                _ => None,
            },
            purchase: match ev.kind {
                EventKind::Purchase { amount } => Some(micros(amount)),
                _ => None,
            },
            refund: match ev.kind {
                EventKind::Refund { amount } => Some(micros(amount)),
                _ => None,
            },
            cancellation: matches!(ev.kind, EventKind::SubscriptionCancelled),
            ticket: matches!(ev.kind, EventKind::SupportTicket),
            self_service: matches!(ev.kind, EventKind::SelfServiceResolved),
            segments: sets
                .iter()
                .map(|set| {
                    set.iter()
                        .map(|dim| {
                            let value = match ev.attr(dim) {
                                None => NONE_VALUE.to_owned(),
                                Some(v) => dims[dim.as_str()].map(v),
                            };
                            (dim.clone(), value)
                        })
                        .collect()
                })
                .collect(),
        })
        .collect();

    // The first activity of each user, over every event of every segment.
    let mut first_seen: BTreeMap<&str, Millis> = BTreeMap::new();
    for a in accepted.iter().filter(|a| a.activity) {
        let first = first_seen.entry(a.user).or_insert(a.ts);
        *first = (*first).min(a.ts);
    }

    // Sessions per (set, segment, user, session_id), from activity events only.
    type StreamKey<'k> = (usize, Segment, &'k str, Option<&'k str>);
    let mut streams: BTreeMap<StreamKey<'_>, Vec<Millis>> = BTreeMap::new();
    for a in accepted.iter().filter(|a| a.activity) {
        for (si, seg) in a.segments.iter().enumerate() {
            streams
                .entry((si, seg.clone(), a.user, a.session))
                .or_default()
                .push(a.ts);
        }
    }
    let mut sessions: BTreeMap<(usize, Segment), Vec<Session>> = BTreeMap::new();
    for ((si, seg, _, _), mut times) in streams {
        times.sort_unstable();
        sessions
            .entry((si, seg))
            .or_default()
            .extend(split_sessions(&times, cfg.session_gap, cfg.session_max));
    }

    // Every (window, end, set, segment) with at least one event in range and end <= max_ts.
    let mut candidates: BTreeSet<(usize, Millis, usize, Segment)> = BTreeSet::new();
    for a in &accepted {
        for (wi, w) in cfg.windows.iter().enumerate() {
            let mut end = a.ts.div_euclid(w.slide) * w.slide + w.slide;
            while end <= a.ts + w.length && end <= max_ts {
                for (si, seg) in a.segments.iter().enumerate() {
                    candidates.insert((wi, end, si, seg.clone()));
                }
                end += w.slide;
            }
        }
    }

    let mut snapshots: Vec<Snapshot> = candidates
        .into_iter()
        .map(|(wi, end, si, seg)| {
            let w = &cfg.windows[wi];
            let start = end - w.length;
            let no_sessions = Vec::new();
            let segment_sessions = sessions.get(&(si, seg.clone())).unwrap_or(&no_sessions);
            let kpis_and_features = compute(
                cfg,
                &accepted,
                &first_seen,
                segment_sessions,
                si,
                &seg,
                end,
                w.length,
            );
            let watermark = *watermarks
                .iter()
                .find(|&&wm| wm >= end)
                .expect("end <= max_ts, the last watermark");
            Snapshot {
                window: w.name.clone(),
                start,
                end,
                segment: seg,
                kpis: kpis_and_features.0,
                features: kpis_and_features
                    .1
                    .into_iter()
                    .map(|(name, f)| (name.into(), f))
                    .collect(),
                watermark,
                // Sliding windows only (the model has no calendar windows): times are UTC.
                utc_offsets: None,
                approximate: false,
                active_users_sketch: None,
                parts: None,
                complete: None,
            }
        })
        .collect();
    snapshots.sort_by(|a, b| (a.end, &a.window, a.key()).cmp(&(b.end, &b.window, b.key())));

    Expected {
        snapshots,
        ingested,
        watermarks,
    }
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    if den == 0.0 { None } else { Some(num / den) }
}

/// Users of segment `seg` (of set `si`) with an activity event in `[from, to)`.
fn active_between<'a>(
    accepted: &[Accepted<'a>],
    si: usize,
    seg: &Segment,
    from: Millis,
    to: Millis,
) -> BTreeSet<&'a str> {
    accepted
        .iter()
        .filter(|a| &a.segments[si] == seg && a.activity && a.ts >= from && a.ts < to)
        .map(|a| a.user)
        .collect()
}

/// The KPIs of one (instance, segment) of the window `length` long ending at `end`, by scanning
/// every accepted event.
#[allow(clippy::too_many_arguments)]
fn compute(
    cfg: &EngineConfig,
    accepted: &[Accepted<'_>],
    first_seen: &BTreeMap<&str, Millis>,
    segment_sessions: &[Session],
    si: usize,
    seg: &Segment,
    end: Millis,
    length: Millis,
) -> (Kpis, Vec<(String, FeatureKpis)>) {
    let start = end - length;
    let in_seg = |a: &&Accepted<'_>| &a.segments[si] == seg;
    let in_range: Vec<&Accepted<'_>> = accepted
        .iter()
        .filter(in_seg)
        .filter(|a| a.ts >= start && a.ts < end)
        .collect();

    let active = active_between(accepted, si, seg, start, end);
    let active_users = active.len() as u64;

    let stickiness_ratio = if length == 30 * DAY {
        let last_day: BTreeSet<&str> = in_range
            .iter()
            .filter(|a| a.activity && a.ts >= end - DAY)
            .map(|a| a.user)
            .collect();
        ratio(last_day.len() as f64, active_users as f64)
    } else {
        None
    };

    let mut durations: Vec<f64> = segment_sessions
        .iter()
        .filter(|(_, last)| {
            let close = last + cfg.session_gap;
            close >= start && close < end
        })
        .map(|(first, last)| (last - first) as f64 / 1000.0)
        .collect();
    durations.sort_by(f64::total_cmp);
    let sessions = durations.len() as u64;
    let session_duration = (!durations.is_empty()).then(|| {
        let total_ms: i64 = segment_sessions
            .iter()
            .filter(|(_, last)| {
                let close = last + cfg.session_gap;
                close >= start && close < end
            })
            .map(|(first, last)| last - first)
            .sum();
        DurationStats {
            p50: nearest_rank(&durations, 50, 100),
            p90: nearest_rank(&durations, 90, 100),
            p99: nearest_rank(&durations, 99, 100),
            mean: total_ms as f64 / 1000.0 / durations.len() as f64,
        }
    });

    let mut feature_users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in &in_range {
        if let Some(f) = &a.feature {
            feature_users.entry(f.as_str()).or_default().insert(a.user);
        }
    }
    let features = feature_users
        .into_iter()
        .map(|(name, users)| {
            let users = users.len() as u64;
            (
                name.to_owned(),
                FeatureKpis {
                    users,
                    adoption_ratio: ratio(users as f64, active_users as f64),
                },
            )
        })
        .collect();

    let s = &cfg.surveys;
    let mut counts = SurveyCounts::default();
    let (mut promoters, mut detractors, mut satisfied, mut ces_sum) = (0u64, 0u64, 0u64, 0i64);
    for (survey, score) in in_range.iter().filter_map(|a| a.survey) {
        match survey {
            Survey::Nps => {
                counts.nps += 1;
                promoters += u64::from(score >= s.nps_promoter_min);
                detractors += u64::from(score <= s.nps_detractor_max);
            }
            Survey::Csat => {
                counts.csat += 1;
                satisfied += u64::from(score >= s.csat_satisfied_min);
            }
            Survey::Ces => {
                counts.ces += 1;
                ces_sum += i64::from(score);
            }
        }
    }
    let (nps, nps_margin) = if counts.nps == 0 {
        (None, None)
    } else {
        let n = counts.nps as f64;
        let (p, d) = (promoters as f64 / n, detractors as f64 / n);
        let score = 100.0 * (promoters as f64 - detractors as f64) / n;
        let var = (p + d - (p - d).powi(2)).max(0.0);
        (Some(score), Some(196.0 * (var / n).sqrt()))
    };
    let (csat_ratio, csat_margin) = if counts.csat == 0 {
        (None, None)
    } else {
        let n = counts.csat as f64;
        let c = satisfied as f64 / n;
        (Some(c), Some(1.96 * (c * (1.0 - c) / n).sqrt()))
    };
    let ces_score = ratio(ces_sum as f64, counts.ces as f64);

    // Lifecycle: the previous period P = [start - length, start) against C = [start, end).
    let previous = active_between(accepted, si, seg, start - length, start);
    let first = |u: &&str| first_seen[*u];
    let (retained_users, churned_users, new_users, resurrected_users) = if cfg.lifecycle {
        (
            active.intersection(&previous).count() as u64,
            previous.difference(&active).count() as u64,
            active
                .iter()
                .filter(|u| (start..end).contains(&first(u)))
                .count() as u64,
            active
                .difference(&previous)
                .filter(|u| first(u) < start)
                .count() as u64,
        )
    } else {
        (0, 0, 0, 0)
    };
    let (retention_ratio, churn_ratio) = if cfg.lifecycle {
        let p = previous.len() as f64;
        (
            ratio(retained_users as f64, p),
            ratio(churned_users as f64, p),
        )
    } else {
        (None, None)
    };

    // Revenue, summed in micro-units.
    let gross: i128 = in_range.iter().filter_map(|a| a.purchase).sum();
    let refunded: i128 = in_range.iter().filter_map(|a| a.refund).sum();
    let orders = in_range.iter().filter(|a| a.purchase.is_some()).count() as u64;
    let paying_users = in_range
        .iter()
        .filter(|a| a.purchase.is_some())
        .map(|a| a.user)
        .collect::<BTreeSet<&str>>()
        .len() as u64;
    let revenue = (gross - refunded) as f64 / 1e6;
    let arpu = ratio(revenue, active_users as f64);
    let clv_estimate = match (arpu, churn_ratio) {
        (Some(arpu), Some(churn)) if length == cfg.clv.period && churn > 0.0 => {
            Some(arpu * cfg.clv.gross_margin / churn)
        }
        _ => None,
    };
    let cancelled: Vec<&str> = in_range
        .iter()
        .filter(|a| a.cancellation)
        .map(|a| a.user)
        .collect();
    let support_tickets = in_range.iter().filter(|a| a.ticket).count() as u64;
    let self_service_resolutions = in_range.iter().filter(|a| a.self_service).count() as u64;

    let kpis = Kpis {
        active_users,
        events: in_range.len() as u64,
        stickiness_ratio,
        sessions,
        sessions_per_user: ratio(sessions as f64, active_users as f64),
        session_duration,
        survey_responses: counts,
        nps,
        nps_margin,
        csat_ratio,
        csat_margin,
        ces_score,
        retained_users,
        churned_users,
        new_users,
        resurrected_users,
        retention_ratio,
        churn_ratio,
        revenue,
        orders,
        aov: ratio(gross as f64 / 1e6, orders as f64),
        paying_users,
        arpu,
        arppu: ratio(revenue, paying_users as f64),
        conversion_ratio: ratio(paying_users as f64, active_users as f64),
        clv_estimate,
        cancellations: cancelled.len() as u64,
        cancelled_users: cancelled.iter().collect::<BTreeSet<_>>().len() as u64,
        support_tickets,
        self_service_resolutions,
        self_service_ratio: ratio(
            self_service_resolutions as f64,
            (self_service_resolutions + support_tickets) as f64,
        ),
        // Only calendar `day` windows carry N-day retention; the model has none.
        n_day_retention: Vec::new(),
        lifecycle_skipped: false,
    };
    (kpis, features)
}
