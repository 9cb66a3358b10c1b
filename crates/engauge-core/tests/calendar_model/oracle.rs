//! The naive oracle for calendar windows: every expected number recomputed by brute force from
//! the event list, written from docs/semantics.md ("Calendar windows", "Lifecycle") only.
//!
//! It shares no code with the engine's calendar: local period boundaries come from jiff's
//! instant → local-time mapping alone (the first whole minute whose local date is the period's
//! first date, found by bisection), never from jiff's local → instant disambiguation or from
//! `engauge_core::calendar`.
//!
//! Scope: replay-style input where no event is late (every event's `ts` is at or after the
//! watermark in force when it arrives) and ids are unique; [`expected`] panics otherwise.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use engauge_core::{CalendarPeriod, EngineConfig, Event, EventKind, Millis, Snapshot, Survey};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

pub const MINUTE: Millis = 60_000;

/// The fields of one calendar snapshot this test compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub window: String,
    /// The sink key, `<window>|<dim>=<value>`.
    pub key: String,
    pub start: Millis,
    pub end: Millis,
    pub utc_offsets: Option<(i32, i32)>,
    pub watermark: Millis,
    pub events: u64,
    pub active_users: u64,
    pub retained_users: u64,
    pub churned_users: u64,
    pub new_users: u64,
    pub resurrected_users: u64,
    pub retention_ratio: Option<f64>,
    pub churn_ratio: Option<f64>,
    pub revenue: f64,
    pub orders: u64,
    pub paying_users: u64,
    pub aov: Option<f64>,
    pub arpu: Option<f64>,
    pub arppu: Option<f64>,
    pub conversion_ratio: Option<f64>,
    pub nps_responses: u64,
    pub sessions: u64,
    /// Mean session duration in seconds (exact in the engine too).
    pub session_mean: Option<f64>,
    /// Distinct users per feature.
    pub features: Vec<(String, u64)>,
    pub n_day_retention: Vec<(u32, Option<f64>)>,
}

impl Row {
    /// The compared fields of an engine snapshot.
    pub fn of(s: &Snapshot) -> Row {
        let k = &s.kpis;
        Row {
            window: s.window.clone(),
            key: s.key(),
            start: s.start,
            end: s.end,
            utc_offsets: s.utc_offsets,
            watermark: s.watermark,
            events: k.events,
            active_users: k.active_users,
            retained_users: k.retained_users,
            churned_users: k.churned_users,
            new_users: k.new_users,
            resurrected_users: k.resurrected_users,
            retention_ratio: k.retention_ratio,
            churn_ratio: k.churn_ratio,
            revenue: k.revenue,
            orders: k.orders,
            paying_users: k.paying_users,
            aov: k.aov,
            arpu: k.arpu,
            arppu: k.arppu,
            conversion_ratio: k.conversion_ratio,
            nps_responses: k.survey_responses.nps,
            sessions: k.sessions,
            session_mean: k.session_duration.map(|d| d.mean),
            features: s
                .features
                .iter()
                .map(|(name, f)| (name.to_string(), f.users))
                .collect(),
            n_day_retention: k.n_day_retention.clone(),
        }
    }
}

/// Local periods of one zone, computed from instant → local date only.
pub struct Cal {
    tz: TimeZone,
    period: CalendarPeriod,
    /// 0 = Monday … 6 = Sunday.
    week_start: i64,
    /// First instant of each local date asked for.
    midnights: RefCell<BTreeMap<Date, Millis>>,
}

fn timestamp(t: Millis) -> Timestamp {
    Timestamp::from_millisecond(t).expect("test instants are in range")
}

/// Milliseconds of 00:00 UTC of `d`.
fn utc_midnight(d: Date) -> Millis {
    d.to_zoned(TimeZone::UTC)
        .expect("UTC has no gaps")
        .timestamp()
        .as_millisecond()
}

impl Cal {
    pub fn new(zone: &str, period: CalendarPeriod, week_start: u8) -> Cal {
        Cal {
            tz: TimeZone::get(zone).expect("test zones exist"),
            period,
            week_start: i64::from(week_start),
            midnights: RefCell::new(BTreeMap::new()),
        }
    }

    pub fn local_date(&self, t: Millis) -> Date {
        self.tz.to_datetime(timestamp(t)).date()
    }

    /// The zone's UTC offset at `t` in seconds: local wall clock minus UTC.
    pub fn offset_seconds(&self, t: Millis) -> i32 {
        let wall = self
            .tz
            .to_datetime(timestamp(t))
            .to_zoned(TimeZone::UTC)
            .expect("UTC has no gaps")
            .timestamp()
            .as_millisecond();
        i32::try_from((wall - t) / 1000).expect("offsets are small")
    }

    /// The first instant whose local date is `d` or later: the start of local day `d` (its
    /// midnight, or the first instant after a gap that swallows midnight). Whole minutes suffice
    /// for every zone used here; the local date never goes backwards in them.
    pub fn first_instant(&self, d: Date) -> Millis {
        if let Some(&t) = self.midnights.borrow().get(&d) {
            return t;
        }
        let guess = utc_midnight(d) / MINUTE;
        let (mut lo, mut hi) = (guess - 26 * 60, guess + 26 * 60);
        assert!(self.local_date(lo * MINUTE) < d && self.local_date(hi * MINUTE) >= d);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.local_date(mid * MINUTE) >= d {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let t = hi * MINUTE;
        self.midnights.borrow_mut().insert(d, t);
        t
    }

    /// The first local date of the period holding local date `d`.
    pub fn key_of_date(&self, d: Date) -> Date {
        match self.period {
            CalendarPeriod::Day => d,
            CalendarPeriod::Week => {
                let back = (i64::from(d.weekday().to_monday_zero_offset()) - self.week_start)
                    .rem_euclid(7);
                d.checked_sub(back.days()).expect("in range")
            }
            CalendarPeriod::Month => d.first_of_month(),
        }
    }

    pub fn key_of(&self, t: Millis) -> Date {
        self.key_of_date(self.local_date(t))
    }

    pub fn next_key(&self, key: Date) -> Date {
        match self.period {
            CalendarPeriod::Day => key.checked_add(1.day()),
            CalendarPeriod::Week => key.checked_add(7.days()),
            CalendarPeriod::Month => key.checked_add(1.month()),
        }
        .expect("in range")
    }

    pub fn prev_key(&self, key: Date) -> Date {
        match self.period {
            CalendarPeriod::Day => key.checked_sub(1.day()),
            CalendarPeriod::Week => key.checked_sub(7.days()),
            CalendarPeriod::Month => key.checked_sub(1.month()),
        }
        .expect("in range")
    }

    /// `[start, end)` of the period whose first local date is `key`.
    pub fn bounds(&self, key: Date) -> (Millis, Millis) {
        (
            self.first_instant(key),
            self.first_instant(self.next_key(key)),
        )
    }
}

/// A segment: (dimension, value) pairs sorted by dimension; empty for all users.
type Segment = Vec<(String, String)>;

/// One accepted event, resolved once.
struct Ev<'a> {
    user: &'a str,
    ts: Millis,
    activity: bool,
    purchase: Option<i64>,
    refund: Option<i64>,
    nps: bool,
    feature: Option<&'a str>,
    /// Per segment set (same index as the normalised sets).
    segments: Vec<Segment>,
}

fn micros(amount: f64) -> i64 {
    (amount * 1e6).round() as i64
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

fn money_ratio(num: f64, den: u64) -> Option<f64> {
    (den != 0).then(|| num / den as f64)
}

/// The snapshots a replay of `arrivals` must emit for the calendar windows of `cfg`, in output
/// order (end, window name, key).
pub fn expected(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> Vec<Row> {
    if arrivals.is_empty() {
        return Vec::new();
    }
    // The replay watermarks; no event may be late, ids are unique.
    let mut watermarks = Vec::with_capacity(arrivals.len() + 1);
    let mut max_ts = Millis::MIN;
    let mut ids = BTreeSet::new();
    for (i, ev) in arrivals.iter().enumerate() {
        if i > 0 {
            assert!(
                ev.ts >= watermarks[i - 1],
                "oracle: event {} is late (ts {} < watermark {})",
                ev.id,
                ev.ts,
                watermarks[i - 1]
            );
        }
        assert!(ids.insert(ev.id.as_ref()), "oracle: duplicate id {}", ev.id);
        max_ts = max_ts.max(ev.ts);
        watermarks.push(max_ts - cfg.allowed_lateness);
    }
    watermarks.push(max_ts);

    // Segment sets: all users first, each set sorted, no repeats.
    let mut sets: Vec<Vec<String>> = vec![vec![]];
    for set in &cfg.segments.sets {
        let mut set = set.clone();
        set.sort();
        if !sets.contains(&set) {
            sets.push(set);
        }
    }
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for ev in arrivals {
        for (k, v) in &ev.attrs {
            values.entry(k.as_ref()).or_default().insert(v.as_ref());
        }
    }
    assert!(
        values.values().all(|v| v.len() <= cfg.segments.max_values),
        "oracle: no dimension may overflow"
    );

    let evs: Vec<Ev<'_>> = arrivals
        .iter()
        .map(|ev| Ev {
            user: ev.user_id.as_ref(),
            ts: ev.ts,
            activity: !cfg.non_activity_types.iter().any(|t| t == &ev.event_type),
            purchase: match ev.kind {
                EventKind::Purchase { amount } => Some(micros(amount)),
                _ => None,
            },
            refund: match ev.kind {
                EventKind::Refund { amount } => Some(micros(amount)),
                _ => None,
            },
            nps: matches!(
                ev.kind,
                EventKind::SurveyResponse {
                    survey: Survey::Nps,
                    ..
                }
            ),
            feature: match &ev.kind {
                EventKind::FeatureUsed { feature } => Some(feature.as_ref()),
                _ => None,
            },
            segments: sets
                .iter()
                .map(|set| {
                    set.iter()
                        .map(|dim| {
                            let v = ev.attr(dim).unwrap_or(engauge_core::NONE_VALUE);
                            (dim.clone(), v.to_owned())
                        })
                        .collect()
                })
                .collect(),
        })
        .collect();

    // Each user's first activity ever, in any segment.
    let mut first_seen: BTreeMap<&str, Millis> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.activity) {
        let f = first_seen.entry(e.user).or_insert(e.ts);
        *f = (*f).min(e.ts);
    }

    // Sessions per (set, segment, user) from activity events: an event continues the current
    // session when `ts - last < gap` and `ts - start <= max`. Kept as (start, last).
    let mut streams: BTreeMap<(usize, &Segment, &str), Vec<Millis>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.activity) {
        for (si, seg) in e.segments.iter().enumerate() {
            streams.entry((si, seg, e.user)).or_default().push(e.ts);
        }
    }
    let mut sessions: BTreeMap<(usize, &Segment), Vec<(Millis, Millis)>> = BTreeMap::new();
    for ((si, seg, _), mut times) in streams {
        times.sort_unstable();
        let list = sessions.entry((si, seg)).or_default();
        let mut open: Option<(Millis, Millis)> = None;
        for ts in times {
            match &mut open {
                Some((start, last))
                    if ts - *last < cfg.session_gap && ts - *start <= cfg.session_max =>
                {
                    *last = ts;
                }
                _ => {
                    list.extend(open.take());
                    open = Some((ts, ts));
                }
            }
        }
        list.extend(open);
    }

    let mut rows = Vec::new();
    for w in &cfg.windows {
        let Some(spec) = &w.calendar else { continue };
        let cal = Cal::new(&spec.timezone, spec.period, spec.week_start);
        let mut candidates: BTreeSet<(Date, usize, Segment)> = BTreeSet::new();
        for e in &evs {
            let key = cal.key_of(e.ts);
            for (si, seg) in e.segments.iter().enumerate() {
                candidates.insert((key, si, seg.clone()));
            }
        }
        for (key, si, seg) in candidates {
            let (start, end) = cal.bounds(key);
            if end > max_ts {
                continue; // never closed
            }
            let prev_start = cal.first_instant(cal.prev_key(key));
            let in_seg = |e: &&Ev<'_>| e.segments[si] == seg;
            let active_in = |from: Millis, to: Millis| -> BTreeSet<&str> {
                evs.iter()
                    .filter(in_seg)
                    .filter(|e| e.activity && e.ts >= from && e.ts < to)
                    .map(|e| e.user)
                    .collect()
            };
            let in_range: Vec<&Ev<'_>> = evs
                .iter()
                .filter(in_seg)
                .filter(|e| e.ts >= start && e.ts < end)
                .collect();
            assert!(!in_range.is_empty());
            let active = active_in(start, end);
            let previous = active_in(prev_start, start);
            let retained = active.intersection(&previous).count() as u64;
            let churned = previous.difference(&active).count() as u64;
            let new = active
                .iter()
                .filter(|u| (start..end).contains(&first_seen[*u]))
                .count() as u64;
            let resurrected = active
                .difference(&previous)
                .filter(|u| first_seen[*u] < start)
                .count() as u64;
            let gross: i64 = in_range.iter().filter_map(|e| e.purchase).sum();
            let refunded: i64 = in_range.iter().filter_map(|e| e.refund).sum();
            let revenue = (gross - refunded) as f64 / 1e6;
            let orders = in_range.iter().filter(|e| e.purchase.is_some()).count() as u64;
            let paying = in_range
                .iter()
                .filter(|e| e.purchase.is_some())
                .map(|e| e.user)
                .collect::<BTreeSet<_>>()
                .len() as u64;
            let n_active = active.len() as u64;
            // Sessions count where they close: last event + gap.
            let closing: Vec<Millis> = sessions
                .get(&(si, &seg))
                .map(|list| {
                    list.iter()
                        .filter(|&&(_, last)| (start..end).contains(&(last + cfg.session_gap)))
                        .map(|&(first, last)| last - first)
                        .collect()
                })
                .unwrap_or_default();
            let mut feature_users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for e in &in_range {
                if let Some(f) = e.feature {
                    feature_users.entry(f).or_default().insert(e.user);
                }
            }
            // N-day retention: day windows, all-users segment. The cohort of day D − n is every
            // user whose first activity ever falls on that local day.
            let n_day_retention = if spec.period == CalendarPeriod::Day && si == 0 {
                cfg.n_day_retention
                    .iter()
                    .map(|&n| {
                        let day = key.checked_sub(i64::from(n).days()).expect("in range");
                        let cohort: Vec<&str> = first_seen
                            .iter()
                            .filter(|&(_, &f)| cal.local_date(f) == day)
                            .map(|(&u, _)| u)
                            .collect();
                        let returned = cohort.iter().filter(|u| active.contains(*u)).count();
                        (n, ratio(returned as u64, cohort.len() as u64))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let mut key_text = format!("{}|", w.name);
            for (i, (d, v)) in seg.iter().enumerate() {
                if i > 0 {
                    key_text.push(',');
                }
                key_text.push_str(&format!("{d}={v}"));
            }
            rows.push(Row {
                window: w.name.clone(),
                key: key_text,
                start,
                end,
                utc_offsets: Some((cal.offset_seconds(start), cal.offset_seconds(end))),
                watermark: *watermarks
                    .iter()
                    .find(|&&wm| wm >= end)
                    .expect("end <= max ts, the last watermark"),
                events: in_range.len() as u64,
                active_users: n_active,
                retained_users: retained,
                churned_users: churned,
                new_users: new,
                resurrected_users: resurrected,
                retention_ratio: ratio(retained, previous.len() as u64),
                churn_ratio: ratio(churned, previous.len() as u64),
                revenue,
                orders,
                paying_users: paying,
                aov: money_ratio(gross as f64 / 1e6, orders),
                arpu: money_ratio(revenue, n_active),
                arppu: money_ratio(revenue, paying),
                conversion_ratio: ratio(paying, n_active),
                nps_responses: in_range.iter().filter(|e| e.nps).count() as u64,
                sessions: closing.len() as u64,
                session_mean: (!closing.is_empty())
                    .then(|| closing.iter().sum::<Millis>() as f64 / closing.len() as f64 / 1000.0),
                features: feature_users
                    .into_iter()
                    .map(|(f, users)| (f.to_owned(), users.len() as u64))
                    .collect(),
                n_day_retention,
            });
        }
    }
    rows.sort_by(|a, b| (a.end, &a.window, &a.key).cmp(&(b.end, &b.window, &b.key)));
    rows
}
