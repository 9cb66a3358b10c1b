//! Scale-out on a real broker (tansu): 1, 2 and 3 instances in one group, sketch windows, a
//! merger killed mid-run (at least once and exactly once), and input not keyed by user; on the
//! mock cluster, instances joining and leaving every few seconds. The merged snapshots must
//! equal `engauge replay` of the same events (one engine, one process): so they are identical
//! however many instances ran.

mod support;

use std::time::{Duration, Instant};

use engauge::config::{Config, Guarantee, ScaleOut};
use engauge_codec::SnapshotRecord;
use engauge_core::{CalendarPeriod, CalendarSpec, DistinctMode, WindowSpec};
use engauge_gen::GenConfig;
use support::{
    CHECKPOINTS, DEAD_LETTERS, Instances, Proc, Running, STATE, Tansu, assert_same, deps,
    free_port, http_get, last_by_instance, read_out, read_topic, reference, start_reader,
    wait_until,
};

const EVENTS: u64 = 30_000;
const PARTITIONS: u32 = 4;

/// Topics of run `name`: its own input, snapshot, partials and coordination topics.
fn topics(name: &str) -> [(String, u32); 4] {
    [
        (format!("snapshots-{name}"), 1),
        (format!("partials-{name}"), 2),
        (format!("merger-{name}"), 1),
        (format!("events-{name}"), PARTITIONS),
    ]
}

fn scale_out_config(bootstrap: &str, name: &str) -> Config {
    let mut config = support::config(bootstrap, &format!("group-{name}"));
    let [(snapshots, _), (partials, _), (merger, _), (input, _)] = topics(name);
    config.kafka.snapshot_topic = snapshots;
    config.kafka.input_topics = vec![input];
    config.engine.partials = true;
    config.scale_out = Some(ScaleOut {
        partials_topic: partials,
        coordination_topic: merger,
        // Longer than a handover takes on tansu (session timeout, its rebalance delay, the
        // rebuild); a partial that never comes still shows as "complete": false, not a hang.
        completeness_timeout: 90_000,
    });
    config
}

fn start_tansu(runs: &[&str], input: &[(&str, u32)]) -> Tansu {
    let mut all: Vec<(String, u32)> = input.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect();
    all.push((DEAD_LETTERS.to_owned(), 1));
    for run in runs {
        all.extend(topics(run));
    }
    let refs: Vec<(&str, u32)> = all.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    Tansu::start(&deps(), &refs)
}

fn history() -> GenConfig {
    support::history(EVENTS, 40, 0x5ca1e)
}

/// The merged snapshots on `topic` (the latest of each instance: at least once may repeat
/// one, always with the same value), each of which must say it is complete.
fn merged(bootstrap: &str, topic: &str, last_end: i64) -> Instances {
    let records = read_topic(bootstrap, topic, Duration::from_secs(2));
    merged_from(records.into_iter().map(|r| r.payload).collect(), last_end).0
}

/// [`merged`] of these payloads, and how many of them repeated an instance.
fn merged_from(payloads: Vec<Vec<u8>>, last_end: i64) -> (Instances, usize) {
    let (all, repeated) = last_by_instance(payloads);
    let instances = all
        .into_iter()
        .filter(|(k, _)| k.1 <= last_end)
        .map(|(k, mut r): (_, SnapshotRecord)| {
            assert_eq!(r.complete, Some(true), "{k:?} published incomplete");
            r.complete = None;
            (k, r)
        })
        .collect();
    (instances, repeated)
}

/// Waits until `topic` holds every expected instance, then compares.
fn wait_and_compare(bootstrap: &str, topic: &str, expected: &Instances, last_end: i64) {
    wait_and_compare_with(bootstrap, topic, expected, last_end, |r| r);
}

/// [`wait_and_compare`] of the snapshots as `canonical` maps them.
fn wait_and_compare_with(
    bootstrap: &str,
    topic: &str,
    expected: &Instances,
    last_end: i64,
    canonical: impl Fn(SnapshotRecord) -> SnapshotRecord,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got: Instances = merged(bootstrap, topic, last_end)
            .into_iter()
            .map(|(k, r)| (k, canonical(r)))
            .collect();
        if got.len() >= expected.len() || Instant::now() > deadline {
            for (k, v) in expected.iter().filter(|(k, _)| !got.contains_key(*k)) {
                eprintln!(
                    "missing {k:?}: {:?} {:?}",
                    v.kpis.events, v.kpis.active_users
                );
            }
            assert_same(&got, expected);
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn one_two_and_three_instances_publish_the_replay() {
    let _guard = support::exclusive();
    let runs = ["one", "two", "three"];
    let tansu = start_tansu(&runs, &[]);
    let cfg = history();
    let base = scale_out_config(&tansu.bootstrap, "one");
    let (expected, _rejected, last_end) = reference(&base, &cfg);
    let lines = ndjson(&cfg);
    // All input is in before the instances start: a partition read to its end while its input
    // is still being produced could turn idle (its watermark then jumps to wall clock).
    for run in runs {
        let config = scale_out_config(&tansu.bootstrap, run);
        produce_lines(
            &tansu.bootstrap,
            &config.kafka.input_topics[0],
            &lines.lines(),
        );
    }
    for (n, run) in runs.iter().enumerate() {
        let config = scale_out_config(&tansu.bootstrap, run);
        let topic = config.kafka.snapshot_topic.clone();
        let instances: Vec<Running> = (0..=n).map(|_| Running::start(config.clone())).collect();
        wait_and_compare(&tansu.bootstrap, &topic, &expected, last_end);
        // Exactly one of them merges; every one publishes partials of its own partitions.
        let leaders: f64 = instances
            .iter()
            .map(|r| support::metric(&r.telemetry, "engauge_merger_leader "))
            .sum();
        assert_eq!(leaders, 1.0, "{} instance(s): one merger", n + 1);
        for r in &instances {
            assert!(support::metric(&r.telemetry, "engauge_partials_published_total ") > 0.0);
            assert_eq!(
                support::metric(&r.telemetry, "engauge_merger_unkeyed_users "),
                0.0,
                "input keyed by user is not reported as unkeyed"
            );
        }
        for r in instances {
            r.stop();
        }
    }
}

/// Instances join and leave every few seconds while the run goes on. On librdkafka's mock
/// cluster: on tansu a member that joins a stable group is not given partitions (the same with
/// scale-out off), so churn there tests tansu rather than engauge (see docs/scale-out.md).
/// Sketch windows (`distinct = "sketch"`, plus a calendar day window with n-day retention,
/// sketch images in the snapshots): two instances publish the single engine's estimates,
/// merged from the sketches in their partials.
#[test]
fn sketch_windows_merge_to_the_replay() {
    let _guard = support::exclusive();
    let tansu = start_tansu(&["sketch"], &[]);
    let cfg = history();
    let mut config = scale_out_config(&tansu.bootstrap, "sketch");
    config.engine.distinct = DistinctMode::Sketch;
    config.engine.sketch.include_in_snapshots = true;
    config.engine.windows.push(WindowSpec::calendar(
        "day",
        CalendarSpec::new(CalendarPeriod::Day, "Europe/Berlin"),
    ));
    let (expected, _rejected, last_end) = reference(&config, &cfg);
    // Every snapshot carries an image; a union in list mode orders the same coupons
    // differently, so the images are compared by presence here (their content by the
    // engine's sketch tests) and the estimates through the KPIs.
    let canonical = |mut r: SnapshotRecord| {
        assert!(r.sketches.is_some(), "a sketch snapshot carries its image");
        r.sketches = None;
        r
    };
    let expected: Instances = expected
        .into_iter()
        .map(|(k, r)| (k, canonical(r)))
        .collect();
    assert!(
        expected.values().any(|r| r
            .to_snapshot()
            .kpis
            .n_day_retention
            .iter()
            .any(|(_, v)| v.is_some())),
        "n-day retention is exercised"
    );
    let lines = ndjson(&cfg);
    produce_lines(
        &tansu.bootstrap,
        &config.kafka.input_topics[0],
        &lines.lines(),
    );
    let topic = config.kafka.snapshot_topic.clone();
    let instances: Vec<Running> = (0..2).map(|_| Running::start(config.clone())).collect();
    wait_and_compare_with(&tansu.bootstrap, &topic, &expected, last_end, canonical);
    for r in instances {
        r.stop();
    }
}

#[test]
fn rebalance_churn_changes_nothing() {
    let _guard = support::exclusive();
    let extra = topics("churn")
        .into_iter()
        .map(|(t, n)| (t, n as i32))
        .collect();
    let cluster = support::Cluster::with_topics(1, PARTITIONS as i32, extra);
    let cfg = history();
    let config = scale_out_config(&cluster.bootstrap, "churn");
    let (expected, _rejected, last_end) = reference(&config, &cfg);
    let input = config.kafka.input_topics[0].clone();
    produce_lines(&cluster.bootstrap, &input, &ndjson(&cfg).lines());
    let topic = config.kafka.snapshot_topic.clone();
    let mut running: Vec<Running> = vec![Running::start(config.clone())];
    // Join, join, leave (the first: the merger then), join, leave, join.
    let mut leaders = Vec::new();
    for step in 0..6 {
        std::thread::sleep(Duration::from_secs(3));
        if step == 2 || step == 4 {
            running.remove(0).stop();
        } else {
            running.push(Running::start(config.clone()));
        }
        leaders.push(
            running
                .iter()
                .map(|r| support::metric(&r.telemetry, "engauge_merger_leader "))
                .sum::<f64>(),
        );
    }
    eprintln!("mergers after each step: {leaders:?}");
    wait_and_compare(&cluster.bootstrap, &topic, &expected, last_end);
    for r in running {
        r.stop();
    }
}

/// The generator's stream as NDJSON.
struct Ndjson(Vec<u8>);

impl Ndjson {
    fn lines(&self) -> Vec<&[u8]> {
        self.0
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect()
    }
}

fn ndjson(cfg: &GenConfig) -> Ndjson {
    let mut out = Vec::new();
    engauge_gen::write_ndjson(cfg.clone(), &mut out).expect("generate");
    Ndjson(out)
}

/// Produces `lines` (generator NDJSON) to `topic` keyed by user id, as `engauge gen` does.
fn produce_lines(bootstrap: &str, topic: &str, lines: &[&[u8]]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for line in lines {
        let user = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["user_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let record = BaseRecord::to(topic).payload(*line).key(user.as_bytes());
        producer.send(record).expect("queued");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
}

/// `engauge run` processes; the merger is SIGKILLed mid-run (half the input is in) and the
/// other instance takes over its partitions and the merging. At least once: the final
/// snapshots equal the replay.
#[test]
fn killing_the_merger_hands_over() {
    kill_the_merger("kill", Guarantee::AtLeastOnce);
}

/// The same with `guarantee = "exactly_once"`, read by a `read_committed` reader: every
/// instance once, none repeated. The killed instance dies inside open transactions of its own
/// transactional id (its partition set); the survivor owns another set, so it finds that id in
/// the partitions' ownership claims and fences it, or tansu (no transaction timeouts) would
/// keep every `read_committed` reader stalled behind them.
#[test]
fn killing_the_merger_hands_over_exactly_once() {
    kill_the_merger("kill-eos", Guarantee::ExactlyOnce);
}

fn kill_the_merger(name: &str, guarantee: Guarantee) {
    let _guard = support::exclusive();
    let exactly_once = guarantee == Guarantee::ExactlyOnce;
    let tansu = start_tansu(&[name], &[(CHECKPOINTS, 1), (STATE, 1)]);
    let cfg = history();
    let mut config = scale_out_config(&tansu.bootstrap, name);
    config.guarantee = guarantee;
    config.checkpoint_interval = 1_000;
    // Partitions must not turn idle while the second half waits to be produced.
    config.idle_timeout = 20_000;
    let (expected, _rejected, last_end) = reference(&config, &cfg);
    let all = ndjson(&cfg);
    let lines = all.lines();
    let (first, second) = lines.split_at(lines.len() / 2);
    let input_topic = config.kafka.input_topics[0].clone();
    let tmp = std::env::temp_dir().join(format!("engauge-scale-out-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let file = tmp.join("engauge.toml");
    std::fs::write(&file, support::config_toml(&config)).expect("config file");
    let topic = config.kafka.snapshot_topic.clone();
    let start = |port: u16| support::start_engauge(&file, &tmp, port);
    let leader = |port: u16| {
        http_get(port, "/metrics")
            .is_some_and(|(_, body)| body.lines().any(|l| l == "engauge_merger_leader 1"))
    };
    let ports = [free_port(), free_port()];
    let mut procs: Vec<Option<Proc>> = ports.iter().map(|&p| Some(start(p))).collect();
    let mut merger = None;
    wait_until("a merger to be elected", Duration::from_secs(60), || {
        merger = ports.iter().position(|&p| leader(p));
        merger.is_some()
    });
    let merger = merger.expect("elected");
    // Input once both own partitions (see the 1-2-3 test on rebalances mid-run on tansu).
    wait_until(
        "both instances to own partitions",
        Duration::from_secs(60),
        || {
            ports
                .iter()
                .all(|&p| http_get(p, "/readyz").is_some_and(|r| r.0 == 200))
        },
    );
    // Exactly once: a reader that applies tansu's transaction markers (tansu lists no aborted
    // transactions to clients, so librdkafka's read_committed shows aborted records too).
    let stop = tmp.join("stop");
    let out = tmp.join("snapshots.jsonl");
    let _reader =
        exactly_once.then(|| start_reader(&deps(), &tansu.bootstrap, &topic, &out, &stop));
    let read = || -> Vec<Vec<u8>> {
        if exactly_once {
            read_out(&out).into_iter().map(|r| r.0).collect()
        } else {
            read_topic(&tansu.bootstrap, &topic, Duration::from_secs(2))
                .into_iter()
                .map(|r| r.payload)
                .collect()
        }
    };
    produce_lines(&tansu.bootstrap, &input_topic, first);
    wait_until("merged snapshots", Duration::from_secs(120), || {
        !read().is_empty()
    });
    // The kill lands while the second half is being produced and consumed: inside open
    // transactions of the killed instance. The second half goes in ten slices a quarter of a
    // second apart, so the kill lands mid-run however fast the pipeline is.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for slice in second.chunks(second.len().div_ceil(10).max(1)) {
                produce_lines(&tansu.bootstrap, &input_topic, slice);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        std::thread::sleep(Duration::from_millis(700));
        if let Some(mut p) = procs[merger].take() {
            p.0.kill().expect("SIGKILL");
            let _ = p.0.wait();
        }
        let before = merged_from(read(), last_end).0.len();
        assert!(
            before < expected.len(),
            "the kill must land mid-run ({before} of {} instances were out)",
            expected.len()
        );
    });
    let survivor = ports[1 - merger];
    wait_until(
        "the other instance to take over",
        Duration::from_secs(90),
        || leader(survivor),
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let (got, repeated) = loop {
        let (got, repeated) = merged_from(read(), last_end);
        if got.len() >= expected.len() || Instant::now() > deadline {
            break (got, repeated);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_same(&got, &expected);
    if exactly_once {
        assert_eq!(repeated, 0, "read_committed saw {repeated} snapshots twice");
    }
    std::fs::write(&stop, b"").expect("stop file");
    drop(procs);
}

/// Input spread over partitions without the user id as key: exact distinct counts would be
/// overcounted; the merger reports it (metric and log) and still publishes.
#[test]
fn unkeyed_input_is_detected_and_reported() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let _guard = support::exclusive();
    let tansu = start_tansu(&["unkeyed"], &[("unkeyed-events", PARTITIONS)]);
    let mut lines = Vec::new();
    engauge_gen::write_ndjson(support::history(5_000, 10, 7), &mut lines).expect("generate");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &tansu.bootstrap)
        .create()
        .expect("producer");
    for (i, line) in lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        // Round robin: every user's events land on every partition.
        let record = BaseRecord::<(), [u8]>::to("unkeyed-events")
            .payload(line)
            .partition((i % PARTITIONS as usize) as i32);
        producer.send(record).expect("queued");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
    let mut config = scale_out_config(&tansu.bootstrap, "unkeyed");
    config.kafka.input_topics = vec!["unkeyed-events".into()];
    let running = Running::start(config);
    running.wait_for("the unkeyed input report", Duration::from_secs(120), |t| {
        let text = engauge_metrics::render(&t.registry).expect("render");
        text.lines()
            .find_map(|l| l.strip_prefix("engauge_merger_unkeyed_users "))
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
    });
    running.stop();
}
