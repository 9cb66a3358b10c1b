//! The stream itself. Three parts, each O(1) or O(log k) per line:
//!
//! * arrivals: new sessions as a Poisson process shaped by the diurnal curve (`diurnal.rs`),
//!   each for a Zipf-drawn user, with a geometric number of events;
//! * a min-heap of active sessions keyed by their next event time, which yields events in
//!   event-time order;
//! * a reorder stage: a share of events is held back by up to `max_disorder`, duplicates are
//!   scheduled shortly after their original, and lines leave in order of emission time.
//!
//! Memory is proportional to concurrent sessions plus lines in flight within the disorder horizon,
//! never to the stream length.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use engauge_core::Survey;
use engauge_core::time::{DAY, MINUTE, Millis, SECOND};

use crate::config::GenConfig;
use crate::diurnal::{self, Arrivals};
use crate::event::{Currency, EventBody, GenEvent};
use crate::malformed::{BadKind, BadLine};
use crate::population::user_profile;
use crate::rng::{Rng, mix64};
use crate::zipf::Zipf;

/// Longest pause between two events of one session; well below the default 30 min session gap.
const MAX_EVENT_GAP: Millis = 25 * MINUTE;
/// Latest a duplicate follows its original.
const MAX_DUPLICATE_DELAY: Millis = 30 * SECOND;
/// Upper bound on a session's length, whatever the mean.
const MAX_SESSION_EVENTS: u32 = 100_000;

/// Counts of what has been emitted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Lines emitted.
    pub lines: u64,
    /// Well-formed original events (not duplicates, not malformed).
    pub events: u64,
    /// Byte-identical re-emissions.
    pub duplicates: u64,
    /// Original events emitted later than their event time.
    pub delayed: u64,
    /// Malformed lines, by [`BadKind::index`].
    pub bad: [u64; BadKind::COUNT],
    /// Sessions started.
    pub sessions: u64,
    /// Most sessions active at once.
    pub peak_active_sessions: u64,
}

impl GenStats {
    /// All malformed lines.
    pub fn bad_total(&self) -> u64 {
        self.bad.iter().sum()
    }
}

#[derive(Debug, Clone)]
struct ActiveSession {
    next_ts: Millis,
    seq: u64,
    user: u64,
    session_id: Option<u64>,
    remaining: u32,
}

impl PartialEq for ActiveSession {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ActiveSession {}
impl PartialOrd for ActiveSession {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ActiveSession {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.next_ts, self.seq).cmp(&(other.next_ts, other.seq))
    }
}

/// A line held back: emitted when the stream reaches `event.emit`.
#[derive(Debug, Clone)]
struct Pending {
    seq: u64,
    event: GenEvent,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.event.emit, self.seq).cmp(&(other.event.emit, other.seq))
    }
}

/// Per-event type thresholds for events after a session's first (which is always a view).
#[derive(Debug, Clone)]
struct TypeMix {
    /// Cumulative probabilities of feature, survey, purchase, refund, cancellation, ticket,
    /// self-service; the remainder is views and actions.
    cumulative: [f64; 7],
}

impl TypeMix {
    fn new(cfg: &GenConfig) -> TypeMix {
        let shares = [
            cfg.feature_ratio,
            cfg.survey_ratio,
            cfg.purchase_ratio,
            cfg.refund_ratio,
            cfg.cancellation_ratio,
            cfg.support_ticket_ratio,
            cfg.self_service_ratio,
        ];
        // Shares are of all events; first events are views, so the rest carry them all.
        let m = cfg.session_mean_events;
        let sum: f64 = shares.iter().sum();
        let mut scale = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
        if sum > 0.0 {
            scale = scale.min(1.0 / sum);
        }
        let mut cumulative = [0.0; 7];
        let mut acc = 0.0;
        for (slot, share) in cumulative.iter_mut().zip(shares) {
            acc += share * scale;
            *slot = acc;
        }
        TypeMix { cumulative }
    }
}

// Score distributions, in thousandths.
const NPS_WEIGHTS: [u32; 11] = [15, 10, 15, 25, 30, 60, 95, 140, 160, 200, 250];
const CSAT_WEIGHTS: [u32; 5] = [40, 60, 100, 380, 420];
const CES_WEIGHTS: [u32; 7] = [20, 30, 50, 100, 200, 300, 300];
const SURVEY_WEIGHTS: [u32; 3] = [50, 30, 20];
const COMMENT_RATIO: f64 = 0.15;
const POSITIVE: [&str; 5] = [
    "Love it, I use it every day",
    "The new \"export\" button saves me hours",
    "Great support team!",
    "Très pratique 👍",
    "Exactly what our team needed",
];
const NEUTRAL: [&str; 4] = [
    "Does the job",
    "Good, but the mobile app is slow",
    "OK overall; search could be better",
    "Pricing is a bit steep",
];
const NEGATIVE: [&str; 5] = [
    "Too expensive for what it does",
    "Sync keeps failing 😞",
    "Support never answered my ticket",
    "Confusing UI — I can't find the settings",
    "Crashes on startup since the last update",
];
const PRICES_CENTS: [u64; 7] = [999, 1900, 2900, 4900, 9900, 19900, 49900];
const PRICE_WEIGHTS: [u32; 7] = [30, 20, 15, 15, 10, 6, 4];

/// A deterministic synthetic event stream; see the crate docs.
#[derive(Debug, Clone)]
pub struct Generator {
    cfg: GenConfig,
    rng: Rng,
    users: Zipf,
    features: Zipf,
    types: TypeMix,
    arrivals: Arrivals,
    next_arrival: Millis,
    sessions: BinaryHeap<Reverse<ActiveSession>>,
    pending: BinaryHeap<Reverse<Pending>>,
    pending_seq: u64,
    /// The next in-order line, already decided not to be held back.
    staged: GenEvent,
    event_seq: u64,
    session_seq: u64,
    id_key: u64,
    session_key: u64,
    stats: GenStats,
}

impl Generator {
    /// A generator for `cfg`; settings out of range are clamped to the nearest valid value
    /// (call [`GenConfig::validate`] first to report them instead).
    pub fn new(cfg: GenConfig) -> Generator {
        let cfg = cfg.sanitized();
        let mut rng = Rng::new(cfg.seed);
        let mean_lines = cfg.session_mean_events * (1.0 + cfg.duplicate_ratio);
        let base_rate = match cfg.events_per_day {
            Some(per_day) => per_day / mean_lines / (DAY as f64 * diurnal::weekly_mean()),
            None => {
                let end = cfg.start + i64::from(cfg.days) * DAY;
                cfg.events as f64 / mean_lines / diurnal::integral(cfg.start, end)
            }
        };
        let mut arrivals = Arrivals::new(cfg.start, base_rate);
        let next_arrival = arrivals.next(&mut rng);
        let shift = cfg.zipf_shift.unwrap_or(cfg.users as f64 / 1000.0);
        let placeholder = GenEvent {
            id: 0,
            ts: cfg.start,
            emit: cfg.start,
            user: 0,
            session: None,
            body: EventBody::Action,
            duplicate: false,
            bad: None,
        };
        let mut generator = Generator {
            users: Zipf::new(cfg.users, cfg.zipf_exponent, shift),
            features: Zipf::new(u64::from(cfg.features), 1.0, 0.0),
            types: TypeMix::new(&cfg),
            id_key: mix64(cfg.seed ^ 0x6964_6b65_795f_6576),
            session_key: mix64(cfg.seed ^ 0x7365_7373_696f_6e73),
            cfg,
            rng,
            arrivals,
            next_arrival,
            sessions: BinaryHeap::new(),
            pending: BinaryHeap::new(),
            pending_seq: 0,
            staged: placeholder,
            event_seq: 0,
            session_seq: 0,
            stats: GenStats::default(),
        };
        generator.stage();
        generator
    }

    /// The (sanitised) configuration in use.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// What has been emitted so far.
    pub fn stats(&self) -> &GenStats {
        &self.stats
    }

    /// Emission time of the next line, `None` when the stream is exhausted. Non-decreasing; a
    /// real-time producer waits until the wall clock reaches it (it is never before the line's
    /// event time, so no line is from the future).
    pub fn peek_time(&self) -> Option<Millis> {
        if self.stats.lines >= self.cfg.events {
            return None;
        }
        let staged = self.staged.emit;
        let next = match self.pending.peek() {
            Some(Reverse(p)) => p.event.emit.min(staged),
            None => staged,
        };
        self.cfg.end.is_none_or(|end| next < end).then_some(next)
    }

    /// The next line in structured form.
    pub fn next_event(&mut self) -> Option<GenEvent> {
        // Also the end of the stream (`events` lines, or the `end` time).
        self.peek_time()?;
        let from_pending = self
            .pending
            .peek()
            .is_some_and(|Reverse(p)| p.event.emit < self.staged.emit);
        let event = match from_pending.then(|| self.pending.pop()).flatten() {
            Some(Reverse(p)) => p.event,
            None => {
                let event = self.staged;
                self.stage();
                event
            }
        };
        self.record(&event);
        Some(event)
    }

    /// Appends the next line to `buf` **without** a trailing newline (a Kafka message value as
    /// is; [`crate::write_ndjson`] adds the newlines) and returns its event time.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Option<Millis> {
        let event = self.next_event()?;
        event.encode_into(buf);
        Some(event.ts)
    }

    fn record(&mut self, event: &GenEvent) {
        let s = &mut self.stats;
        s.lines += 1;
        if let Some(kind) = event.bad_kind() {
            s.bad[kind.index()] += 1;
        } else if event.duplicate {
            s.duplicates += 1;
        } else {
            s.events += 1;
            s.delayed += u64::from(event.emit > event.ts);
        }
    }

    /// Decides the next in-order line, holding back delayed events and scheduling duplicates.
    fn stage(&mut self) {
        let cfg = &self.cfg;
        let (bad_ratio, dup_ratio, ooo_ratio) =
            (cfg.bad_ratio, cfg.duplicate_ratio, cfg.out_of_order_ratio);
        let (max_disorder, oversize) = (cfg.max_disorder, cfg.oversize_bytes);
        loop {
            let mut event = self.raw_next();
            if bad_ratio > 0.0 && self.rng.chance(bad_ratio) {
                event.bad = Some(BadLine::pick(&mut self.rng, oversize));
                self.staged = event;
                return;
            }
            let delayed = max_disorder > 0 && ooo_ratio > 0.0 && self.rng.chance(ooo_ratio);
            if delayed {
                event.emit = event.ts + 1 + self.rng.below(max_disorder as u64) as Millis;
                self.hold(event);
            }
            if dup_ratio > 0.0 && self.rng.chance(dup_ratio) {
                let window = max_disorder.min(MAX_DUPLICATE_DELAY);
                let delay = if window > 0 {
                    1 + self.rng.below(window as u64) as Millis
                } else {
                    0
                };
                // Never further behind the newest event time than `max_disorder`; ties with the
                // original resolve in its favour (held lines by sequence, staged lines first).
                let emit = (event.emit + delay).min(event.ts + max_disorder);
                self.hold(GenEvent {
                    emit: emit.max(event.emit),
                    duplicate: true,
                    ..event
                });
            }
            if !delayed {
                self.staged = event;
                return;
            }
        }
    }

    fn hold(&mut self, event: GenEvent) {
        self.pending_seq += 1;
        self.pending.push(Reverse(Pending {
            seq: self.pending_seq,
            event,
        }));
    }

    /// The next event in event-time order: from the earliest active session, or a new session.
    fn raw_next(&mut self) -> GenEvent {
        let next_arrival = self.next_arrival;
        let due = self
            .sessions
            .peek()
            .is_some_and(|Reverse(s)| s.next_ts <= next_arrival);
        let continued = if due {
            self.sessions.peek_mut().map(|mut top| {
                let session = &mut top.0;
                let next = (session.next_ts, session.user, session.session_id);
                session.remaining -= 1;
                if session.remaining == 0 {
                    PeekMut::pop(top);
                } else {
                    session.next_ts += event_gap(&mut self.rng);
                }
                next
            })
        } else {
            None
        };
        if let Some((ts, user, session_id)) = continued {
            return self.make_event(ts, user, session_id, false);
        }
        let ts = next_arrival;
        self.next_arrival = self.arrivals.next(&mut self.rng);
        let user = self.users.sample(&mut self.rng) - 1;
        let length = session_length(&mut self.rng, self.cfg.session_mean_events);
        self.session_seq += 1;
        self.stats.sessions += 1;
        let session_id = self
            .rng
            .chance(self.cfg.session_id_ratio)
            .then(|| mix64(self.session_seq.wrapping_add(self.session_key)));
        if length > 1 {
            let next_ts = ts + event_gap(&mut self.rng);
            self.sessions.push(Reverse(ActiveSession {
                next_ts,
                seq: self.session_seq,
                user,
                session_id,
                remaining: length - 1,
            }));
            self.stats.peak_active_sessions = self
                .stats
                .peak_active_sessions
                .max(self.sessions.len() as u64);
        }
        self.make_event(ts, user, session_id, true)
    }

    fn make_event(&mut self, ts: Millis, user: u64, session: Option<u64>, first: bool) -> GenEvent {
        let id = mix64(self.event_seq.wrapping_add(self.id_key));
        self.event_seq += 1;
        let body = if first {
            view(user)
        } else {
            self.draw_body(user)
        };
        GenEvent {
            id,
            ts,
            emit: ts,
            user,
            session,
            body,
            duplicate: false,
            bad: None,
        }
    }

    fn draw_body(&mut self, user: u64) -> EventBody {
        let u = self.rng.f64();
        let kind = self.types.cumulative.iter().position(|&c| u < c);
        let rng = &mut self.rng;
        match kind {
            Some(0) => EventBody::FeatureUsed {
                feature: (self.features.sample(rng) - 1) as u32,
            },
            Some(1) => survey_response(rng),
            Some(2) => EventBody::Purchase {
                cents: price(rng),
                currency: currency(rng, user),
            },
            Some(3) => EventBody::Refund {
                cents: price(rng),
                currency: currency(rng, user),
            },
            Some(4) => EventBody::SubscriptionCancelled,
            Some(5) => EventBody::SupportTicket,
            Some(6) => EventBody::SelfServiceResolved,
            _ => {
                if rng.chance(0.55) {
                    view(user)
                } else {
                    EventBody::Action
                }
            }
        }
    }
}

impl Iterator for Generator {
    type Item = GenEvent;

    fn next(&mut self) -> Option<GenEvent> {
        self.next_event()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.cfg.events == u64::MAX {
            return (usize::MAX, None);
        }
        let left = self.cfg.events.saturating_sub(self.stats.lines);
        match usize::try_from(left) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

fn view(user: u64) -> EventBody {
    if user_profile(user).platform == "web" {
        EventBody::PageView
    } else {
        EventBody::ScreenView
    }
}

/// Pause before a session's next event: mostly seconds, sometimes minutes.
fn event_gap(rng: &mut Rng) -> Millis {
    let mean = if rng.chance(0.75) {
        15_000.0
    } else {
        120_000.0
    };
    (500.0 + rng.exp(mean)).min(MAX_EVENT_GAP as f64) as Millis
}

/// Geometric on `1, 2, …` with the given mean.
fn session_length(rng: &mut Rng, mean: f64) -> u32 {
    if mean <= 1.0 {
        return 1;
    }
    let keep_going = 1.0 - 1.0 / mean;
    let extra = (rng.f64_nonzero().ln() / keep_going.ln()).floor();
    (1.0 + extra).min(f64::from(MAX_SESSION_EVENTS)) as u32
}

fn survey_response(rng: &mut Rng) -> EventBody {
    let survey = Survey::ALL[rng.weighted(&SURVEY_WEIGHTS)];
    let (score, sentiment) = match survey {
        Survey::Nps => {
            let s = rng.weighted(&NPS_WEIGHTS) as i32;
            (
                s,
                if s >= 9 {
                    2
                } else if s >= 7 {
                    1
                } else {
                    0
                },
            )
        }
        Survey::Csat => {
            let s = rng.weighted(&CSAT_WEIGHTS) as i32 + 1;
            (
                s,
                if s >= 4 {
                    2
                } else if s == 3 {
                    1
                } else {
                    0
                },
            )
        }
        Survey::Ces => {
            let s = rng.weighted(&CES_WEIGHTS) as i32 + 1;
            (
                s,
                if s >= 6 {
                    2
                } else if s >= 4 {
                    1
                } else {
                    0
                },
            )
        }
    };
    let comment = rng.chance(COMMENT_RATIO).then(|| {
        let pool: &[&'static str] = match sentiment {
            2 => &POSITIVE,
            1 => &NEUTRAL,
            _ => &NEGATIVE,
        };
        pool[rng.below(pool.len() as u64) as usize]
    });
    EventBody::SurveyResponse {
        survey,
        score,
        comment,
    }
}

fn price(rng: &mut Rng) -> u64 {
    PRICES_CENTS[rng.weighted(&PRICE_WEIGHTS)]
}

/// Euro or pound in the EU region, dollars elsewhere; one in ten omits the field.
fn currency(rng: &mut Rng, user: u64) -> Option<Currency> {
    if rng.chance(0.1) {
        return None;
    }
    Some(match user_profile(user).region {
        "eu" if rng.chance(0.25) => Currency::Gbp,
        "eu" => Currency::Eur,
        _ => Currency::Usd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_end_cuts_the_stream() {
        let cfg = GenConfig {
            events: 50_000,
            days: 10,
            ..GenConfig::default()
        };
        let end = cfg.start + 2 * DAY;
        let mut g = Generator::new(GenConfig {
            end: Some(end),
            ..cfg
        });
        let mut lines = 0;
        while let Some(e) = g.next_event() {
            assert!(e.emit < end && e.ts < end, "{e:?}");
            lines += 1;
        }
        assert!(lines > 5_000 && lines < 20_000, "{lines}");
        assert_eq!(g.peek_time(), None);
    }

    #[test]
    fn session_lengths_are_geometric_with_the_mean() {
        let mut rng = Rng::new(11);
        let n = 200_000;
        let (mut sum, mut ones) = (0u64, 0u64);
        for _ in 0..n {
            let len = session_length(&mut rng, 8.0);
            assert!(len >= 1);
            sum += u64::from(len);
            ones += u64::from(len == 1);
        }
        assert!((sum as f64 / n as f64 - 8.0).abs() < 0.1);
        assert!((ones as f64 / n as f64 - 0.125).abs() < 0.005);
        assert_eq!(session_length(&mut rng, 1.0), 1);
    }

    #[test]
    fn gaps_stay_inside_a_session() {
        let mut rng = Rng::new(12);
        for _ in 0..100_000 {
            let gap = event_gap(&mut rng);
            assert!((500..=MAX_EVENT_GAP).contains(&gap));
        }
    }

    #[test]
    fn survey_scores_follow_the_promised_shape() {
        let mut rng = Rng::new(13);
        let (mut nps, mut promoters, mut detractors) = (0u32, 0u32, 0u32);
        let (mut csat, mut satisfied) = (0u32, 0u32);
        let (mut ces, mut ces_sum) = (0u32, 0i64);
        for _ in 0..200_000 {
            if let EventBody::SurveyResponse { survey, score, .. } = survey_response(&mut rng) {
                match survey {
                    Survey::Nps => {
                        assert!((0..=10).contains(&score));
                        nps += 1;
                        promoters += u32::from(score >= 9);
                        detractors += u32::from(score <= 6);
                    }
                    Survey::Csat => {
                        assert!((1..=5).contains(&score));
                        csat += 1;
                        satisfied += u32::from(score >= 4);
                    }
                    Survey::Ces => {
                        assert!((1..=7).contains(&score));
                        ces += 1;
                        ces_sum += i64::from(score);
                    }
                }
            }
        }
        let share = |a: u32, b: u32| f64::from(a) / f64::from(b);
        assert!((share(promoters, nps) - 0.45).abs() < 0.01);
        assert!((share(detractors, nps) - 0.25).abs() < 0.01);
        assert!((share(satisfied, csat) - 0.80).abs() < 0.01);
        assert!((ces_sum as f64 / f64::from(ces) - 5.53).abs() < 0.05);
    }
}
