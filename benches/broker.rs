//! Pipeline throughput against a real broker (tansu), per CPU-second, with the measured process
//! pinned to core 1 and the broker to core 0; window close → snapshot visible latency; `/metrics`
//! render time on a live pipeline.
//!
//! Prerequisites: `scripts/setup-test-deps` (tansu) and `cargo build --release -p engauge`.
//! Run: `taskset -c 1 cargo bench -p engauge-benches --bench broker`
//! Environment: `EVENTS` (default 1 500 000), `DAYS` of event time they span (default 35), `RUNS`
//! (default 1): rounds in which the floor, then engauge (then the `ALT_BIN`/`ALT_ENV`
//! alternative) each process the topic — compared as medians and round by round —,
//! `PARTITIONS` of the input topic (default 4).

#![allow(clippy::print_stdout)] // A harness reports on stdout.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engauge_benches::process::{
    Proc, binaries, cpu_seconds, cpu_seconds_by_thread, free_port, http_get, metric, start_tansu,
};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The KPI fields a consumer of this data must read: what the floor parses.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Parsed<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    user_id: &'a str,
    ts: serde_json::Value,
    session_id: Option<&'a str>,
    attrs: Option<std::collections::BTreeMap<&'a str, &'a str>>,
    feature: Option<&'a str>,
    survey: Option<&'a str>,
    score: Option<i64>,
    amount: Option<f64>,
}

/// Set (to the bootstrap address) when this binary runs as the snapshot reader.
const READER_ENV: &str = "ENGAUGE_BENCH_SNAPSHOT_READER";

fn main() {
    if let Ok(bootstrap) = std::env::var(READER_ENV) {
        follow_snapshots(&bootstrap);
        return;
    }
    let events: u64 = engauge_benches::env_or("EVENTS", 1_500_000);
    let days: i64 = engauge_benches::env_or("DAYS", 35);
    let partitions: u32 = engauge_benches::env_or("PARTITIONS", 4);
    let (tansu, engauge) = binaries();

    let (_broker, bootstrap) = start_tansu(
        &tansu,
        &[
            ("events", partitions),
            ("engauge.snapshots", 1),
            ("engauge.dead-letter", 1),
        ],
    );

    // Load: generated events, event time ending now, produced by engauge gen.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let start = engauge_core::time::format_rfc3339(now - days * engauge_core::time::DAY);
    let t0 = Instant::now();
    let status = Command::new(&engauge)
        .args([
            "gen",
            "--brokers",
            &bootstrap,
            "--topic",
            "events",
            "--users",
            "200000",
        ])
        .args(["--days", &days.to_string()])
        .args(["--events", &events.to_string(), "--start", &start])
        .stderr(Stdio::null())
        .status()
        .expect("engauge gen");
    assert!(status.success());
    eprintln!(
        "loaded {events} events in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let runs: usize = engauge_benches::env_or("RUNS", 1).max(1);
    let mut floors = Vec::new();
    let mut parsed = 0u64;

    // Close → visible: a reader follows the snapshot topic while engauge runs and compares the
    // time it sees each snapshot with the snapshot's `emitted_at` (stamped when the instance
    // closed). It is a downstream consumer, not part of the measured process: it runs as a
    // process of its own on the broker's core, so it does not take engauge's.
    let mut reader = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe().expect("own path"))
        .env(READER_ENV, &bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("reader");

    // engauge run from the beginning, default configuration, pinned to core 1, `RUNS` times
    // (a fresh group each time).
    // For A/B comparisons on this noisy machine: `ALT_BIN` (another engauge binary) and/or
    // `ALT_ENV` (`NAME=value,…`, values without commas, added to its environment) make every
    // second run the alternative, reported on its own line.
    let alt_bin = std::env::var("ALT_BIN").ok().map(std::path::PathBuf::from);
    let alt_env: Vec<(String, String)> = std::env::var("ALT_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let with_alt = alt_bin.is_some() || !alt_env.is_empty();
    let mut runs_seen = Vec::new();
    let mut alt_seen = Vec::new();
    let (mut runs_threads, mut alt_threads) = (Vec::new(), Vec::new());
    let mut renders = Vec::new();
    let mut snapshots = 0.0;
    // Rounds: the floor (a plain rdkafka consumer draining and parsing the topic), then engauge,
    // then the alternative. This machine's speed drifts by a quarter from one minute to the
    // next; a ratio of runs taken minutes apart in the same round (`per round` below) is
    // steadier than one of all the floors against all the engauge runs. The snapshot reader
    // idles on the broker's core during the floors (nothing is published then).
    for round in 0..runs {
        let (cpu, wall, ok) = floor_drain(&bootstrap, &format!("floor-{round}"), events);
        parsed = ok;
        floors.push((cpu, wall));
        for alt in [false, true].into_iter().take(if with_alt { 2 } else { 1 }) {
            let run = if with_alt {
                2 * round + usize::from(alt)
            } else {
                round
            };
            let bin = if alt {
                alt_bin.as_ref().unwrap_or(&engauge)
            } else {
                &engauge
            };
            let env: &[(String, String)] = if alt { &alt_env } else { &[] };
            let r = engauge_run(bin, env, &bootstrap, &format!("bench-{run}"), events);
            if alt {
                alt_seen.push((r.cpu, r.wall));
                alt_threads.push(r.threads);
            } else {
                runs_threads.push(r.threads);
                snapshots = r.snapshots;
                renders = r.renders;
                runs_seen.push((r.cpu, r.wall));
            }
        }
    }

    std::thread::sleep(Duration::from_secs(3));
    drop(reader.stdin.take()); // Closing its stdin stops the reader.
    let out = reader.wait_with_output().expect("reader");
    let mut delays: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    delays.sort_by(f64::total_cmp);
    let pct = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| events in a {partitions}-partition tansu topic | {events} over {days} days ({parsed} parsed by the floor) |"
    );
    println!("| snapshots published while processing them | {snapshots} |");
    let rates =
        |v: &[(f64, f64)]| -> Vec<f64> { v.iter().map(|(cpu, _)| events as f64 / cpu).collect() };
    let (floor_rates, engauge_rates) = (rates(&floors), rates(&runs_seen));
    let list = |v: &[(f64, f64)]| -> String {
        v.iter()
            .map(|(cpu, wall)| {
                format!(
                    "{:.0} ({cpu:.2} CPU-s, {wall:.1} s wall)",
                    events as f64 / cpu
                )
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "| floor: plain rdkafka drain + serde_json parse, events/CPU-s | {} |",
        list(&floors)
    );
    println!(
        "| engauge run, default config, from the beginning, events/CPU-s | {} |",
        list(&runs_seen)
    );
    // Each run's rate over its own round's floor; the median of those.
    let per_round = |seen: &[(f64, f64)]| -> String {
        let ratios: Vec<f64> = rates(seen)
            .iter()
            .zip(&floor_rates)
            .map(|(r, f)| r / f)
            .collect();
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        format!("{:.2} ({})", median(&ratios), each.join(" / "))
    };
    println!(
        "| engauge / floor (medians) | {:.2} |",
        median(&engauge_rates) / median(&floor_rates)
    );
    println!(
        "| engauge / floor, per round (median, then each) | {} |",
        per_round(&runs_seen)
    );
    // Per thread, the median of each part: the pipeline thread and librdkafka's threads move
    // independently, so a change to one shows here before it shows in the whole.
    let by_thread = |seen: &[[f64; 4]]| -> String {
        let part = |i: usize| median(&seen.iter().map(|t| t[i]).collect::<Vec<_>>());
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            part(0),
            part(1),
            part(2),
            part(3)
        )
    };
    println!(
        "| engauge run, CPU-s by thread (medians): pipeline / librdkafka broker threads / metrics endpoint / other | {} |",
        by_thread(&runs_threads)
    );
    if with_alt {
        println!(
            "| alternative (ALT_BIN / ALT_ENV), events/CPU-s | {} |",
            list(&alt_seen)
        );
        println!(
            "| alternative, CPU-s by thread (medians) | {} |",
            by_thread(&alt_threads)
        );
        println!(
            "| alternative / floor (medians) | {:.2} |",
            median(&rates(&alt_seen)) / median(&floor_rates)
        );
        println!(
            "| alternative / floor, per round (median, then each) | {} |",
            per_round(&alt_seen)
        );
    }
    println!(
        "| /metrics over HTTP (p50 / p99 of 50) | {:.2} ms / {:.2} ms |",
        pct(&renders, 0.5),
        pct(&renders, 0.99)
    );
    println!(
        "| window close → snapshot visible to a consumer ({} snapshots, every run's) | p50 {:.0} ms, p99 {:.0} ms |",
        delays.len(),
        pct(&delays, 0.5),
        pct(&delays, 0.99)
    );
}

/// Drains the whole topic with a plain `BaseConsumer`, parsing every payload; returns the CPU
/// seconds and wall seconds it took and how many payloads parsed.
fn floor_drain(bootstrap: &str, group: &str, events: u64) -> (f64, f64, u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..engauge_benches::env_or::<i32>("PARTITIONS", 4) {
        tpl.add_partition_offset("events", p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let (cpu0, wall0) = (cpu_seconds("self"), Instant::now());
    let (mut n, mut parsed) = (0u64, 0u64);
    while n < events {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            n += 1;
            if serde_json::from_slice::<Parsed<'_>>(m.payload().unwrap_or(&[])).is_ok() {
                parsed += 1;
            }
        }
        assert!(
            wall0.elapsed() < Duration::from_secs(600),
            "floor drain stalled at {n}"
        );
    }
    (
        cpu_seconds("self") - cpu0,
        wall0.elapsed().as_secs_f64(),
        parsed,
    )
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One `engauge run` over the whole topic: CPU and wall seconds for all of it (measured between
/// two scrapes, scaled by the events consumed in between), the snapshots it published and `/metrics` round trips measured afterwards.
struct RunFigures {
    cpu: f64,
    /// The same CPU time by thread (see [`cpu_seconds_by_thread`]).
    threads: [f64; 4],
    wall: f64,
    snapshots: f64,
    renders: Vec<f64>,
}

fn engauge_run(
    engauge: &std::path::Path,
    env: &[(String, String)],
    bootstrap: &str,
    group: &str,
    events: u64,
) -> RunFigures {
    let hport = free_port();
    let mut child = Proc(
        Command::new("taskset")
            .args(["-c", "1"])
            .arg(engauge)
            .arg("run")
            .env("ENGAUGE__KAFKA__BROKERS", bootstrap)
            .env("ENGAUGE__KAFKA__GROUP_ID", group)
            .env("ENGAUGE__KAFKA__CONSUMER__FETCH.WAIT.MAX.MS", "10")
            .env("ENGAUGE__HTTP__LISTEN", format!("127.0.0.1:{hport}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("engauge run"),
    );
    let pid = child.0.id().to_string();
    let wall0 = Instant::now();
    let mut first: Option<(f64, [f64; 4], Instant, u64)> = None;
    let consumed;
    let (mut max_dedup, mut max_pending) = (0.0f64, 0.0f64);
    loop {
        assert!(
            child.0.try_wait().ok().flatten().is_none(),
            "engauge exited"
        );
        assert!(
            wall0.elapsed() < Duration::from_secs(900),
            "engauge did not finish"
        );
        let scrape = http_get(hport, "/metrics").unwrap_or_default();
        let now_consumed = metric(&scrape, "engauge_events_consumed_total").unwrap_or(0.0) as u64;
        for (max, name) in [
            (&mut max_dedup, "engauge_engine_dedup_ids"),
            (&mut max_pending, "engauge_engine_pending_events"),
        ] {
            *max = max.max(metric(&scrape, name).unwrap_or(0.0));
        }
        if now_consumed > 0 && first.is_none() {
            first = Some((
                cpu_seconds(&pid),
                cpu_seconds_by_thread(&pid),
                Instant::now(),
                now_consumed,
            ));
        }
        if now_consumed >= events {
            consumed = now_consumed;
            break;
        }
        // Scraping is work for the pipeline too: a few times a second, not more (Prometheus
        // itself scrapes every 15–60 s).
        std::thread::sleep(Duration::from_millis(250));
    }
    // CPU and wall time between the first scrape that saw events consumed and the one that saw
    // them all, scaled to the whole topic by the events consumed in between.
    let (cpu_first, threads_first, wall_first, consumed_first) = first.expect("started");
    assert!(
        consumed - consumed_first >= events / 2,
        "engauge consumed {consumed_first} of {events} events before the first reading: \
         too few left to measure (use more EVENTS)"
    );
    let scale = events as f64 / (consumed - consumed_first) as f64;
    let cpu = (cpu_seconds(&pid) - cpu_first) * scale;
    let threads_last = cpu_seconds_by_thread(&pid);
    let threads = std::array::from_fn(|i| (threads_last[i] - threads_first[i]) * scale);
    let wall = wall_first.elapsed().as_secs_f64() * scale;
    let snapshots = http_get(hport, "/metrics")
        .and_then(|t| metric(&t, "engauge_snapshots_published_total"))
        .unwrap_or(0.0);

    // /metrics render time on the live pipeline.
    let mut renders: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let _ = http_get(hport, "/metrics");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    renders.sort_by(f64::total_cmp);
    eprintln!("run {group}: at most {max_dedup} ids remembered, {max_pending} events pending");
    RunFigures {
        cpu,
        threads,
        wall,
        snapshots,
        renders,
    }
}

/// The snapshot reader: prints, one per line, how long after its `emitted_at` each snapshot
/// became visible, once its stdin closes.
fn follow_snapshots(bootstrap: &str) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "latency")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("engauge.snapshots", 0, Offset::Beginning)
        .expect("tpl");
    reader.assign(&tpl).expect("assign");
    let mut delays = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(50)) {
            let seen = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            if let Ok(r) = engauge_codec::SnapshotRecord::from_json(m.payload().unwrap_or(&[])) {
                delays.push(seen - r.emitted_at);
            }
        }
    }
    for d in delays {
        println!("{d}");
    }
}
