//! Crash test: `engauge run` with `guarantee = "exactly_once"` as a child process on a real
//! broker (tansu, which implements Kafka transactions), SIGKILLed at random points at least ten
//! times during a one-million-event run and restarted each time (once more it is stopped
//! gracefully under load, which must take under 25 s). A `read_committed` reader
//! running the whole time must see every (window instance, segment) snapshot and every dead
//! letter exactly once, and the final snapshots must equal the replay of the same events (what
//! an uninterrupted run publishes).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use engauge::config::Guarantee;
use engauge::pipeline::now_millis;
use engauge_core::time::DAY;
use support::{
    CHECKPOINTS, DEAD_LETTERS, INPUT, SNAPSHOTS, STATE, Tansu, assert_same, deps, free_port,
    http_get, last_by_instance, produce, read_out, reference, start_reader, stop_gracefully,
    wait_until,
};

const EVENTS: u64 = 1_000_000;
const KILLS: usize = 11;

#[test]
fn sigkilled_ten_times_read_committed_sees_every_instance_once() {
    let deps = deps();
    let tmp = std::env::temp_dir().join(format!(
        "engauge-crash-{}-{}",
        std::process::id(),
        now_millis()
    ));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let tansu = Tansu::start(
        &deps,
        &[
            (INPUT, 4),
            (SNAPSHOTS, 1),
            (DEAD_LETTERS, 1),
            (CHECKPOINTS, 1),
            (STATE, 1),
        ],
    );
    let mut config = support::config(&tansu.bootstrap, "crash");
    config.guarantee = Guarantee::ExactlyOnce;
    config.checkpoint_interval = 1_000;
    config.idle_timeout = 2_000;
    for (k, v) in [
        ("fetch.wait.max.ms", "10"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "1000"),
    ] {
        config.kafka.consumer.insert(k.into(), v.into());
    }
    let cfg = engauge_gen::GenConfig {
        events: EVENTS,
        users: 20_000,
        days: 38,
        seed: 21,
        start: now_millis() - 38 * DAY - DAY,
        bad_ratio: 0.001,
        ..engauge_gen::GenConfig::default()
    };
    let (expected, rejected, last_end) = reference(&config, &cfg);
    assert_eq!(produce(&tansu.bootstrap, &cfg), EVENTS);
    let file = tmp.join("engauge.toml");
    std::fs::write(&file, support::config_toml(&config)).expect("config file");

    let stop = tmp.join("stop");
    let (snapshots_out, dead_out) = (tmp.join("snapshots.jsonl"), tmp.join("dead.jsonl"));
    let _snapshot_reader = start_reader(&deps, &tansu.bootstrap, SNAPSHOTS, &snapshots_out, &stop);
    let mut dead_reader = start_reader(&deps, &tansu.bootstrap, DEAD_LETTERS, &dead_out, &stop);
    // Instances of the input (the idle watermark closes later, empty ones too).
    let distinct = || {
        last_by_instance(read_out(&snapshots_out).into_iter().map(|r| r.0))
            .0
            .keys()
            .filter(|k| k.1 <= last_end)
            .count()
    };
    let logs = tmp.clone();
    let start = |port: u16| support::start_engauge(&file, &logs, port);

    // Kill at a random point after each start: while it rebuilds, mid-transaction, or while it
    // publishes. (A fixed seed: the schedule is the same on every run.)
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut schedule = Vec::new();
    for kill in 0..KILLS {
        let port = free_port();
        let mut child = start(port);
        wait_until(
            "engauge to own its partitions",
            Duration::from_secs(120),
            || {
                assert!(
                    child.0.try_wait().expect("status").is_none(),
                    "engauge exited on its own (start {kill})"
                );
                http_get(port, "/readyz").is_some_and(|r| r.0 == 200)
            },
        );
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Restarts restore saved state in well under a second: kill soon enough that every
        // kill lands while work remains (with delays up to 3.3 s a fast run had published
        // every instance before the last kills).
        let after = Duration::from_millis(300 + (rng >> 33) % 2_000);
        std::thread::sleep(after);
        if kill == KILLS / 2 {
            // Once, a graceful stop under load instead: within 25 s, exit status 0 (the final
            // checks below cover that it lost and duplicated nothing).
            let exit = stop_gracefully(&mut child.0, Duration::from_secs(25));
            assert!(exit.success(), "engauge stopped with {exit}");
        } else {
            child.0.kill().expect("SIGKILL");
            let _ = child.0.wait();
        }
        schedule.push((after, distinct()));
    }
    let before_last = distinct();
    eprintln!("kills (delay after ready, instances seen): {schedule:?}");
    assert!(
        before_last < expected.len(),
        "the kills must land during the run ({before_last} of {} instances were out)",
        expected.len()
    );

    // The last run finishes the job and stops gracefully.
    let port = free_port();
    let mut last = start(port);
    let deadline = Instant::now() + Duration::from_secs(600);
    while distinct() < expected.len() {
        assert!(
            last.0.try_wait().expect("status").is_none(),
            "engauge exited on its own"
        );
        if Instant::now() > deadline {
            let health =
                ["/readyz", "/metrics"].map(|path| http_get(port, path).unwrap_or_default().1);
            let pipeline: Vec<&str> = health[1]
                .lines()
                .filter(|l| {
                    [
                        "engauge_watermark",
                        "engauge_events_consumed",
                        "engauge_transactions",
                    ]
                    .iter()
                    .any(|m| l.starts_with(m))
                })
                .collect();
            panic!(
                "timed out: {} of {} instances committed; readyz {:?}; {pipeline:?}; logs in {}",
                distinct(),
                expected.len(),
                health[0],
                tmp.display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let exit = stop_gracefully(&mut last.0, Duration::from_secs(25));
    assert!(exit.success(), "engauge exited with {exit}");
    std::fs::write(&stop, "").expect("stop file");
    wait_until("the readers to finish", Duration::from_secs(60), || {
        dead_reader.0.try_wait().expect("status").is_some()
    });
    std::thread::sleep(Duration::from_secs(3));
    let (snapshots, repeated) = last_by_instance(read_out(&snapshots_out).into_iter().map(|r| r.0));
    assert_eq!(
        repeated, 0,
        "a read_committed reader saw {repeated} snapshots twice"
    );
    let snapshots: BTreeMap<_, _> = snapshots
        .into_iter()
        .filter(|(k, _)| k.1 <= last_end)
        .collect();
    assert_same(&snapshots, &expected);
    // Restarts after the first checkpoint restore saved state instead of re-reading history
    // (a kill before it leaves nothing to restore). The equality above covers both paths.
    let logs: Vec<String> = std::fs::read_dir(&tmp)
        .expect("temp dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("engauge-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let restored = logs
        .iter()
        .filter(|l| l.contains("restored from the checkpoint"))
        .count();
    eprintln!("{restored} of {} runs restored saved state", logs.len());
    assert!(
        restored >= 1,
        "no restart restored saved state; logs in {}",
        tmp.display()
    );
    let all_dead: Vec<(String, String)> = read_out(&dead_out)
        .into_iter()
        .map(|(_, h)| {
            let header = |name: &str| {
                h.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                header("engauge.source.partition"),
                header("engauge.source.offset"),
            )
        })
        .collect();
    let mut dead = all_dead.clone();
    dead.sort();
    let twice: Vec<_> = dead
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].clone())
        .collect();
    assert!(
        twice.is_empty(),
        "dead letters seen twice (source partition, offset): {twice:?}; see {}",
        tmp.display()
    );
    dead.dedup();
    assert_eq!(dead.len() as u64, rejected, "one dead letter per bad line");
    let _ = std::fs::remove_dir_all(&tmp);
}
