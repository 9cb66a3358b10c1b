//! Restore after a restart, exactly-once, on a real broker (tansu): how long a restarted
//! `engauge run` takes from owning its partitions to publishing its first snapshot, with state
//! for about a million users, and how large the saved state is.
//!
//! Steps: load a history for `USERS` users and 30 s of live traffic; run engauge (default
//! windows, `guarantee = "exactly_once"`, `allowed_lateness = "1m"` so that the wait below is
//! short) through it and stop it gracefully (the last transaction commits the state and the
//! checkpoints); wait until a one-minute instance is due; start it again and time
//! assignment → state restored → first snapshot sent → its transaction committed (visible to
//! `read_committed`). `REBUILD=1` makes the restarted run rebuild from history instead (the
//! engine configuration changes, so the saved state does not apply), for comparison.
//!
//! Prerequisites: `scripts/setup-test-deps` (tansu) and `cargo build --release -p engauge`.
//! Run: `taskset -c 1 cargo bench -p engauge-benches --bench restore`
//! Environment: `EVENTS` (default 3 000 000), `USERS` (default 1 000 000), `DAYS` (default 35),
//! `CHECKPOINT_INTERVAL` (default `10s`), `REBUILD`, `KEEP` (keep logs), `PROGRESS`.

#![allow(clippy::print_stdout)] // A harness reports on stdout.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engauge_benches::env_or;
use engauge_benches::process::{
    Proc, binaries, free_port, gen_history, http_get, metric, start_tansu,
};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn start(engauge: &std::path::Path, config: &std::path::Path, port: u16) -> Proc {
    Proc(
        Command::new("taskset")
            .args(["-c", "1"])
            .arg(engauge)
            .args(["run", "--config"])
            .arg(config)
            .env("ENGAUGE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(config.with_file_name(format!("engauge-{port}.log")))
                    .expect("log file"),
            )
            .spawn()
            .expect("engauge"),
    )
}

fn wait_metrics(port: u16, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    let mut shown = Instant::now();
    loop {
        if std::env::var_os("PROGRESS").is_some() && shown.elapsed() > Duration::from_secs(5) {
            shown = Instant::now();
            if let Some(body) = http_get(port, "/metrics") {
                let keep: Vec<&str> = body
                    .lines()
                    .filter(|l| {
                        [
                            "engauge_watermark",
                            "engauge_engine_pending",
                            "engauge_transactions_committed",
                            "engauge_events_consumed",
                        ]
                        .iter()
                        .any(|m| l.starts_with(m))
                    })
                    .collect();
                eprintln!("{what}: {keep:?}");
            }
        }
        if let Some(body) = http_get(port, "/metrics")
            && done(&body)
        {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let (events, users, days) = (
        env_or::<i64>("EVENTS", 3_000_000),
        env_or::<u64>("USERS", 1_000_000),
        env_or("DAYS", 35),
    );
    let (tansu, engauge) = binaries();
    let (_broker, bootstrap) = start_tansu(
        &tansu,
        &[
            ("events", 4),
            ("engauge.snapshots", 1),
            ("engauge.dead-letter", 1),
            ("engauge.checkpoints", 1),
            ("engauge.state", 1),
        ],
    );
    let minute = engauge_core::time::MINUTE;
    gen_history(&engauge, &bootstrap, events as u64, users, days);
    // Then 30 s of live traffic (event time now): one-minute instances of the 1h window hold
    // events when the restart happens.
    const LIVE: i64 = 3_000;
    let status = Command::new(&engauge)
        .args(["gen", "--brokers", &bootstrap, "--topic", "events"])
        .args(["--users", &users.to_string(), "--events", &LIVE.to_string()])
        .args(["--rate", "100"])
        .stderr(Stdio::null())
        .status()
        .expect("engauge gen");
    assert!(status.success());

    let dir = std::env::temp_dir().join(format!("engauge-restore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("engauge.toml");
    let interval = std::env::var("CHECKPOINT_INTERVAL").unwrap_or_else(|_| "10s".into());
    let write_config = |dedup: &str| {
        std::fs::write(
            &config,
            format!(
                "guarantee = \"exactly_once\"\ncheckpoint_interval = \"{interval}\"\n\
                 allowed_lateness = \"1m\"\n\
                 dedup_horizon = \"{dedup}\"\n[input]\nidle_timeout = \"1s\"\n\
                 [kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"restore\"\n\
                 [kafka.consumer]\n\"fetch.wait.max.ms\" = \"10\"\n\"session.timeout.ms\" = \"6000\"\n"
            ),
        )
        .expect("config");
    };
    write_config("1h");

    // The first run reads the whole history, then stops gracefully.
    let port = free_port();
    let mut run = start(&engauge, &config, port);
    let target = (now_millis() - 2 * minute) as f64 / 1000.0;
    let body = wait_metrics(port, "the first run", Duration::from_secs(900), |b| {
        metric(b, "engauge_events_consumed_total") == Some((events + LIVE) as f64)
            && metric(b, "engauge_watermark_timestamp_seconds").is_some_and(|w| w >= target)
            && metric(b, "engauge_transactions_committed_total").is_some_and(|t| t >= 1.0)
    });
    let state_users = metric(&body, "engauge_engine_users").unwrap_or(0.0);
    let checkpoint_seconds = metric(&body, "engauge_checkpoint_seconds").unwrap_or(0.0);
    let _ = Command::new("kill")
        .args(["-TERM", &run.0.id().to_string()])
        .status();
    let _ = run.0.wait();
    let stopped = Instant::now();

    // Checkpoint records: every record written, and the newest per key.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "restore-reader")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("engauge.checkpoints", 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut newest = std::collections::BTreeMap::new();
    let mut records = 0;
    while let Some(Ok(m)) = consumer.poll(Duration::from_secs(5)) {
        records += 1;
        newest.insert(
            m.key().unwrap_or_default().to_vec(),
            (
                m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len),
                m.payload().unwrap_or_default().to_vec(),
            ),
        );
    }
    let checkpoint_bytes: usize = newest.values().map(|(len, _)| len).sum();
    let saved = newest
        .values()
        .find_map(|(_, value)| engauge_kafka::Checkpoint::decode(value).ok()?.state);

    if let Some(saved) = saved {
        println!(
            "saved state: {} bytes in {} chunks = {:.0} MB per million users in state ({state_users} users)",
            saved.len,
            saved.chunks,
            saved.len as f64 / state_users.max(1.0)
        );
    }
    // Wait until a one-minute instance falls due while engauge is down (the watermark trails
    // the wall clock by allowed_lateness, here 1 min): the restarted run publishes it as soon as
    // its state is back.
    let due = (now_millis() - minute).div_euclid(minute) * minute + minute;
    let wait = due + minute + 1_000 - now_millis();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let _ = stopped;
    let rebuild = std::env::var_os("REBUILD").is_some();
    if rebuild {
        // Another engine configuration: the saved state does not apply.
        write_config("61m");
    }
    let port = free_port();
    let t0 = Instant::now();
    let mut run = start(&engauge, &config, port);
    wait_metrics(port, "an assignment", Duration::from_secs(120), |b| {
        metric(b, "engauge_ready") == Some(1.0)
    });
    let assigned = t0.elapsed();
    let body = wait_metrics(port, "the restore", Duration::from_secs(600), |b| {
        metric(b, "engauge_restore_seconds").is_some_and(|s| s > 0.0)
    });
    let rebuilt = metric(&body, "engauge_restore_seconds").unwrap_or(0.0);
    wait_metrics(port, "the first snapshot", Duration::from_secs(300), |b| {
        metric(b, "engauge_snapshots_published_total").is_some_and(|n| n >= 1.0)
    });
    let first_snapshot = t0.elapsed();
    wait_metrics(port, "its transaction", Duration::from_secs(60), |b| {
        metric(b, "engauge_transactions_committed_total").is_some_and(|n| n >= 1.0)
    });
    let visible = t0.elapsed();
    let _ = run.0.kill();
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    println!("restore: {events} events, {state_users} users in state");
    println!(
        "  first run: the latest checkpoint (save state, write it, commit) took {checkpoint_seconds:.2} s"
    );
    println!(
        "  start → partitions assigned (group join, checkpoint read): {:.2} s",
        assigned.as_secs_f64()
    );
    let how = if rebuild {
        "rebuilt from the input"
    } else {
        "restored from the saved state"
    };
    println!("  assignment start → state {how} (engauge_restore_seconds): {rebuilt:.2} s");
    println!(
        "  assigned → first snapshot sent (an instance that fell due while it was down): {:.2} s",
        (first_snapshot - assigned).as_secs_f64()
    );
    println!(
        "  assigned → its transaction committed: {:.2} s",
        (visible - assigned).as_secs_f64()
    );
    println!(
        "  start → first snapshot sent: {:.2} s; → committed (visible): {:.2} s",
        first_snapshot.as_secs_f64(),
        visible.as_secs_f64()
    );
    println!(
        "  checkpoint records: {} keys, {checkpoint_bytes} bytes newest (key + value); {records} records written over the run",
        newest.len()
    );
}
