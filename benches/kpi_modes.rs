//! Memory and throughput with many distinct users (issue: retention, revenue, calendar windows,
//! sketch mode).
//!
//! Run pinned to one core: `MODE=sketch taskset -c 1 cargo bench -p engauge-benches --bench
//! kpi_modes`. Environment: `MODE` (`exact`, default, or `sketch`: `distinct` of every window),
//! `USERS` (distinct-user population, default 10 000 000), `EVENTS` (default 3 × USERS), `DAYS`
//! (35). Events are built in memory (no JSON) with users drawn uniformly, so nearly every user
//! of the population appears: this measures the engine, not the decoder. Windows: the defaults
//! plus a calendar `day` window (UTC); segment sets `[[], [plan], [region]]`; lifecycle KPIs on.
//!
//! After the run (and after reading peak memory), the same event stream is generated again to
//! compute the true active users and retention ratio of the last day-aligned instance of each
//! window (all users), with bitsets, and the error of the engine's figures against them.
//! Prints Markdown tables for BENCHMARKS.md.

#![allow(clippy::print_stdout)] // A harness reports on stdout.

use std::borrow::Cow;
use std::time::Instant;

use engauge_benches::{peak_rss_bytes, rss_bytes, thread_cpu_seconds};
use std::collections::BTreeMap;

use engauge_core::time::{DAY, HOUR, MINUTE};
use engauge_core::{
    CalendarPeriod, CalendarSpec, DistinctMode, Engine, EngineConfig, Event, EventKind, Replay,
    Snapshot, WindowSpec,
};

/// SplitMix64: a fixed, fast stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const PLANS: [&str; 3] = ["free", "pro", "team"];
const REGIONS: [&str; 5] = ["eu", "us", "apac", "latam", "mea"];
const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
/// Instances per window whose error is measured.
const INSTANCES: usize = 7;

/// The `i`-th event of the stream: (user, event time, kind draw), from the stream's RNG.
fn draw(rng: &mut Rng, i: u64, users: u64, events: u64, span: i64) -> (u64, i64, u64) {
    let u = rng.next() % users;
    // Event time advances steadily with a little disorder (within allowed lateness).
    let jitter = (rng.next() % (2 * MINUTE as u64)) as i64;
    let ts = START + (i as i64) * span / events as i64 + jitter;
    (u, ts, rng.next() % 1000)
}

/// Users active in `[from, to)`, one bit each.
struct Period {
    from: i64,
    to: i64,
    bits: Vec<u64>,
}

impl Period {
    fn new(from: i64, to: i64, users: u64) -> Self {
        Period {
            from,
            to,
            bits: vec![0; users.div_ceil(64) as usize],
        }
    }

    fn add(&mut self, ts: i64, u: u64) {
        if ts >= self.from && ts < self.to {
            self.bits[(u / 64) as usize] |= 1 << (u % 64);
        }
    }

    fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn common(&self, other: &Period) -> u64 {
        self.bits
            .iter()
            .zip(&other.bits)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }
}

fn main() {
    let users = engauge_benches::env_or::<u64>("USERS", 10_000_000);
    let events = engauge_benches::env_or::<u64>("EVENTS", 3 * users);
    let days = engauge_benches::env_or::<u64>("DAYS", 35) as i64;
    let mode = match std::env::var("MODE").as_deref() {
        Ok("sketch") => DistinctMode::Sketch,
        _ => DistinctMode::Exact,
    };
    let span = days * DAY;

    let mut windows = WindowSpec::defaults();
    windows.push(WindowSpec::calendar(
        "day",
        CalendarSpec::new(CalendarPeriod::Day, "UTC"),
    ));
    let mut config = EngineConfig {
        windows,
        distinct: mode,
        ..EngineConfig::default()
    };
    config.sketch.lg_k =
        engauge_benches::env_or::<u64>("LG_K", u64::from(config.sketch.lg_k)) as u8;

    let baseline = rss_bytes();
    let mut replay = Replay::new(Engine::new(config).expect("valid config"));
    let mut out = Vec::new();
    let mut rng = Rng(7);
    let mut snapshots = 0u64;
    // Per window: the last all-users snapshots with lifecycle KPIs on a day boundary (every
    // sixth hour for `1h`).
    let mut last: BTreeMap<String, Vec<Snapshot>> = BTreeMap::new();
    let mut keep = |out: &mut Vec<Snapshot>| {
        for s in out.drain(..) {
            let aligned = s.end % DAY == 0 || (s.window == "1h" && s.end % (6 * HOUR) == 0);
            if s.segment.is_empty() && !s.kpis.lifecycle_skipped && aligned {
                let kept = last.entry(s.window.clone()).or_default();
                kept.push(s);
                if kept.len() > INSTANCES {
                    kept.remove(0);
                }
            }
        }
    };
    let mut id = String::with_capacity(24);
    let mut user = String::with_capacity(24);
    let (cpu0, wall0) = (thread_cpu_seconds(), Instant::now());
    for i in 0..events {
        use std::fmt::Write;
        let (u, ts, kind) = draw(&mut rng, i, users, events, span);
        id.clear();
        let _ = write!(id, "e{i}");
        user.clear();
        let _ = write!(user, "user-{u}");
        let kind = match kind {
            0..=2 => EventKind::Purchase { amount: 19.99 },
            3 => EventKind::SubscriptionCancelled,
            _ => EventKind::Plain,
        };
        let event = Event {
            id: Cow::Borrowed(&id),
            event_type: Cow::Borrowed(match kind {
                EventKind::Purchase { .. } => "purchase",
                EventKind::SubscriptionCancelled => "subscription_cancelled",
                _ => "page_view",
            }),
            user_id: Cow::Borrowed(&user),
            ts,
            session_id: None,
            attrs: [
                (
                    Cow::Borrowed("plan"),
                    Cow::Borrowed(PLANS[(u % 3) as usize]),
                ),
                (
                    Cow::Borrowed("region"),
                    Cow::Borrowed(REGIONS[(u % 5) as usize]),
                ),
            ]
            .into_iter()
            .collect(),
            kind,
        };
        replay.push(&event, &mut out);
        snapshots += out.len() as u64;
        keep(&mut out);
    }
    replay.finish(&mut out);
    snapshots += out.len() as u64;
    keep(&mut out);
    let (cpu, wall) = (thread_cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let stats = replay.engine().stats();
    let peak = peak_rss_bytes().saturating_sub(baseline);

    // The truth, from the same stream generated again.
    let mut truth: Vec<(&Snapshot, Period, Period)> = last
        .values()
        .flatten()
        .map(|s| {
            let length = s.end - s.start;
            (
                s,
                Period::new(s.start - length, s.start, users),
                Period::new(s.start, s.end, users),
            )
        })
        .collect();
    let mut rng = Rng(7);
    for i in 0..events {
        let (u, ts, _) = draw(&mut rng, i, users, events, span);
        for (_, p, c) in &mut truth {
            p.add(ts, u);
            c.add(ts, u);
        }
    }

    let mode_name = match mode {
        DistinctMode::Exact => "exact",
        DistinctMode::Sketch => "sketch",
    };
    println!(
        "| window (all users, last {INSTANCES} instances) | true active users | active users error: mean abs / max abs | true retention | retention error, points: mean abs / max abs (relative) |"
    );
    println!("|---|---|---|---|---|");
    for (window, snaps) in &last {
        let rows: Vec<_> = truth
            .iter()
            .filter(|(s, _, _)| &s.window == window)
            .collect();
        let mut active_err = Vec::new();
        let mut retention_err = Vec::new();
        let mut retention_rel = Vec::new();
        let (mut active_sum, mut retention_sum) = (0.0, 0.0);
        for (s, p, c) in &rows {
            let active = c.count() as f64;
            let retention = c.common(p) as f64 / p.count().max(1) as f64;
            active_sum += active;
            if p.count() > 0 {
                retention_sum += retention;
            }
            active_err.push((s.kpis.active_users as f64 / active - 1.0).abs() * 100.0);
            // The first instances have no previous period.
            if let Some(got) = s.kpis.retention_ratio.filter(|_| p.count() > 0) {
                retention_err.push((got - retention).abs() * 100.0);
                retention_rel.push((got / retention - 1.0).abs() * 100.0);
            }
        }
        let n = snaps.len() as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!(
            "| {window} | {:.0} | {:.2} % / {:.2} % | {:.4} | {:.2} / {:.2} ({:.1} % / {:.1} %) |",
            active_sum / n,
            mean(&active_err),
            max(&active_err),
            retention_sum / retention_err.len().max(1) as f64,
            mean(&retention_err),
            max(&retention_err),
            mean(&retention_rel),
            max(&retention_rel),
        );
    }
    println!();
    println!("| measure | {mode_name} mode |");
    println!("|---|---|");
    println!("| events, distinct users | {events}, {} |", stats.users);
    println!(
        "| throughput (events built in memory, one core) | {:.0} events/CPU-s ({cpu:.1} CPU-s, {wall:.1} s wall) |",
        events as f64 / cpu
    );
    println!(
        "| peak memory above start | {:.0} MiB = {:.0} bytes per distinct user |",
        peak as f64 / (1024.0 * 1024.0),
        peak as f64 / stats.users.max(1) as f64
    );
    println!("| snapshots | {snapshots} |");
}
