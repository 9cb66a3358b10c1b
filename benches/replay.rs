//! Replay throughput, memory per user and the cost of a 30-day close (issue: core engine).
//!
//! Run pinned to one core: `taskset -c 1 cargo bench -p engauge-benches --bench replay`.
//! Environment: `EVENTS` (default 10 000 000), `USERS` (1 000 000), `DAYS` (35), `CLOSE_USERS`
//! (1 000 000). Prints a Markdown table for BENCHMARKS.md.

#![allow(clippy::print_stdout)] // A harness reports on stdout.

use std::io::{BufRead, BufReader};
use std::time::Instant;

use engauge_benches::{dataset, peak_rss_bytes, rss_bytes, thread_cpu_seconds};
use engauge_codec::{DecodeContext, decode_event};
use engauge_core::time::{DAY, HOUR, MINUTE};
use engauge_core::{Engine, EngineConfig, Event, EventKind, Ingested, Replay};

fn main() -> std::io::Result<()> {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let events = engauge_benches::env_or::<u64>("EVENTS", 10_000_000);
    let users = engauge_benches::env_or::<u64>("USERS", 1_000_000);
    let days = engauge_benches::env_or::<u64>("DAYS", 35) as u32;
    let path = dataset(events, users, days, 7)?;
    eprintln!("dataset: {}", path.display());
    let now = engauge_core::time::DAY * 40_000; // far after the data: nothing is "in the future"

    // 1. Decode + engine, streaming from the file (snapshots built, not encoded).
    let baseline_rss = rss_bytes();
    // The generator pays in USD, EUR and GBP.
    let ctx = DecodeContext {
        currencies: std::sync::Arc::new(
            engauge_codec::CurrencyRates::new(
                "USD",
                &[("EUR".to_owned(), 1.08), ("GBP".to_owned(), 1.27)],
            )
            .expect("rates"),
        ),
        ..DecodeContext::new(now)
    };
    let mut replay = Replay::new(Engine::new(EngineConfig::default()).expect("defaults"));
    let mut snapshots = Vec::new();
    let mut produced = 0u64;
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let mut line = Vec::with_capacity(4096);
    let (cpu0, wall0) = (thread_cpu_seconds(), Instant::now());
    let mut lines = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        lines += 1;
        if let Ok(event) = decode_event(line.strip_suffix(b"\n").unwrap_or(&line), &ctx) {
            replay.push(&event, &mut snapshots);
        }
        produced += snapshots.len() as u64;
        snapshots.clear();
    }
    replay.finish(&mut snapshots);
    produced += snapshots.len() as u64;
    let (decode_cpu, decode_wall) = (thread_cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let stats = replay.engine().stats();
    let peak = peak_rss_bytes();
    let engine_bytes = peak.saturating_sub(baseline_rss);
    drop(replay);

    // 2. Engine alone on pre-decoded events, in chunks of 1 M (decoding is not timed).
    let mut replay = Replay::new(Engine::new(EngineConfig::default()).expect("defaults"));
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let mut engine_cpu = 0.0;
    let mut chunk: Vec<Event<'static>> = Vec::with_capacity(1_000_000);
    loop {
        chunk.clear();
        while chunk.len() < 1_000_000 {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if let Ok(event) = decode_event(line.strip_suffix(b"\n").unwrap_or(&line), &ctx) {
                chunk.push(event.into_owned());
            }
        }
        if chunk.is_empty() {
            break;
        }
        let cpu0 = thread_cpu_seconds();
        for event in &chunk {
            replay.push(event, &mut snapshots);
            snapshots.clear();
        }
        engine_cpu += thread_cpu_seconds() - cpu0;
    }
    replay.finish(&mut snapshots);
    drop(replay);

    // 3. Closing a 30d instance with CLOSE_USERS active users.
    let close_users = engauge_benches::env_or::<u64>("CLOSE_USERS", 1_000_000);
    let (close_ms, close_active) = close_cost(close_users);

    println!("| measure | value |");
    println!("|---|---|");
    println!("| input | {lines} lines, {events} events requested, {users} users, {days} days |");
    println!(
        "| distinct users seen | {} ({} accepted, {} duplicates) |",
        stats.users, stats.accepted, stats.duplicates
    );
    println!("| snapshots built | {produced} |");
    println!(
        "| decode + engine | {:.0} events/CPU-s ({decode_cpu:.2} CPU-s, {decode_wall:.2} s wall) |",
        lines as f64 / decode_cpu
    );
    println!(
        "| engine alone (pre-decoded) | {:.0} events/CPU-s ({engine_cpu:.2} CPU-s) |",
        lines as f64 / engine_cpu
    );
    println!(
        "| peak RSS above start | {:.1} MiB = {:.0} bytes per distinct user |",
        engine_bytes as f64 / (1 << 20) as f64,
        engine_bytes as f64 / stats.users.max(1) as f64
    );
    println!(
        "| close of one 30d instance ({close_active} active users), whole hourly boundary | {close_ms:.3} ms |"
    );
    Ok(())
}

/// Builds an engine where `users` users were each active once in the last 30 days, then times
/// the `advance` across one hour boundary, which closes the 1h, 1d, 7d and 30d instances.
fn close_cost(users: u64) -> (f64, u64) {
    let mut engine = Engine::new(EngineConfig::default()).expect("defaults");
    let start = 1_767_225_600_000; // 2026-01-01, a multiple of every default slide
    let span = 30 * DAY - 2 * HOUR;
    let mut out = Vec::new();
    let plans = ["free", "pro", "team", "enterprise"];
    let regions = ["eu", "us", "apac", "latam", "mea"];
    for u in 0..users {
        let ts = start + (u as i64) * span / users as i64;
        let user = format!("user-{u}");
        let id = format!("e{u}");
        let event = Event {
            id: id.as_str().into(),
            event_type: "page_view".into(),
            user_id: user.as_str().into(),
            ts,
            session_id: None,
            attrs: [
                ("plan".into(), plans[(u % 4) as usize].into()),
                ("region".into(), regions[(u % 5) as usize].into()),
            ]
            .into_iter()
            .collect(),
            kind: EventKind::Plain,
        };
        let r = engine.ingest(&event);
        assert!(matches!(r, Ingested::Accepted | Ingested::Late));
        if u % 10_000 == 0 {
            engine.advance(ts - 10 * MINUTE, &mut out);
            out.clear();
        }
    }
    let boundary = start + 30 * DAY;
    engine.advance(boundary - MINUTE, &mut out);
    out.clear();
    let t0 = Instant::now();
    engine.advance(boundary, &mut out);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let active = out
        .iter()
        .find(|s| s.window == "30d" && s.segment.is_empty())
        .map_or(0, |s| s.kpis.active_users);
    (ms, active)
}
