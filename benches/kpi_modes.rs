//! Memory and throughput with many distinct users (issue: retention, revenue, calendar windows,
//! sketch mode).
//!
//! Run pinned to one core: `taskset -c 1 cargo bench -p engauge-benches --bench kpi_modes`.
//! Environment: `USERS` (distinct-user population, default 10 000 000), `EVENTS` (default
//! 3 × USERS), `DAYS` (35). Events are built in memory (no JSON) with users drawn uniformly, so
//! nearly every user of the population appears: this measures the engine, not the decoder.
//! Windows: the defaults plus a calendar `day` window (UTC); segment sets `[[], [plan], [region]]`;
//! lifecycle KPIs on. Prints a Markdown table for BENCHMARKS.md.

#![allow(clippy::print_stdout)] // A harness reports on stdout.

use std::borrow::Cow;
use std::time::Instant;

use engauge_benches::{peak_rss_bytes, rss_bytes, thread_cpu_seconds};
use engauge_core::time::{DAY, MINUTE};
use engauge_core::{
    CalendarPeriod, CalendarSpec, Engine, EngineConfig, Event, EventKind, Replay, WindowSpec,
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

fn main() {
    let users = env_u64("USERS", 10_000_000);
    let events = env_u64("EVENTS", 3 * users);
    let days = env_u64("DAYS", 35) as i64;
    let start: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let span = days * DAY;

    let mut windows = WindowSpec::defaults();
    windows.push(WindowSpec::calendar(
        "day",
        CalendarSpec::new(CalendarPeriod::Day, "UTC"),
    ));
    let config = EngineConfig {
        windows,
        ..EngineConfig::default()
    };

    let baseline = rss_bytes();
    let mut replay = Replay::new(Engine::new(config).expect("valid config"));
    let mut out = Vec::new();
    let mut rng = Rng(7);
    let mut snapshots = 0u64;
    let mut id = String::with_capacity(24);
    let mut user = String::with_capacity(24);
    let (cpu0, wall0) = (thread_cpu_seconds(), Instant::now());
    for i in 0..events {
        use std::fmt::Write;
        let u = rng.next() % users;
        // Event time advances steadily with a little disorder (within allowed lateness).
        let jitter = (rng.next() % (2 * MINUTE as u64)) as i64;
        let ts = start + (i as i64) * span / events as i64 + jitter;
        id.clear();
        let _ = write!(id, "e{i}");
        user.clear();
        let _ = write!(user, "user-{u}");
        let kind = match rng.next() % 1000 {
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
        out.clear();
    }
    replay.finish(&mut out);
    snapshots += out.len() as u64;
    let (cpu, wall) = (thread_cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let stats = replay.engine().stats();
    let peak = peak_rss_bytes().saturating_sub(baseline);

    println!("| measure | exact mode |");
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
