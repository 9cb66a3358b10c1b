//! Scale-out on a real broker (tansu, pinned to core 0): throughput of one and of two
//! `engauge run` instances with `[scale_out]` on the same 4-partition topic, the merge cost per
//! window instance, and the partials-topic bytes per window instance and input partition.
//!
//! One instance runs on core 1. Two instances run on core 1 and core 0 (the second shares its
//! core with the broker: this machine has two cores). Throughput is events per CPU-second of
//! the engauge processes (summed) and events per wall second until every event is consumed.
//! The merge cost is measured in-process: every partial of the one-instance run, read back from
//! its partials topic, fed to the merger's `Merge` (the code the elected merger runs), timed on
//! this thread's CPU clock and divided by the instances it publishes.
//!
//! Prerequisites: `scripts/setup-test-deps` (tansu) and `cargo build --release -p engauge`.
//! Run: `cargo bench -p engauge-benches --bench scale_out`
//! Environment: `EVENTS` (default 1 500 000), `USERS` (default 100 000), `DAYS` (default 35).

#![allow(clippy::print_stdout)] // A harness reports on stdout.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engauge::merger::Merge;
use engauge::partials::{Read, Reassembly, Record};
use engauge_benches::process::{
    Proc, binaries, cpu_seconds, free_port, gen_history, http_get, metric, start_tansu,
};
use engauge_benches::{env_or, thread_cpu_seconds};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Every record of `topic` (all partitions) as (partition, offset, payload).
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, i64, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "scale-out-bench-reader")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    // tansu's high watermark can lag a batch behind: a partition may report its end more than
    // once. Done when every partition is at its end and nothing more comes for 3 s.
    let mut at_end = std::collections::BTreeSet::new();
    loop {
        let wait = if at_end.len() == partitions as usize {
            3
        } else {
            10
        };
        match consumer.poll(Duration::from_secs(wait)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push((
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => break,
        }
    }
    out
}

fn main() {
    let (events, users, days) = (
        env_or::<u64>("EVENTS", 1_500_000),
        env_or::<u64>("USERS", 100_000),
        env_or::<i64>("DAYS", 35),
    );
    // DISTINCT=sketch: every window a sketch window (partials carry the sketches).
    let distinct = std::env::var("DISTINCT").unwrap_or_else(|_| "exact".into());
    let (tansu, engauge) = binaries();
    let runs = [1usize, 2];
    let mut topics: Vec<(String, u32)> =
        vec![("events".into(), 4), ("engauge.dead-letter".into(), 1)];
    for n in runs {
        topics.push((format!("snapshots-{n}"), 1));
        topics.push((format!("partials-{n}"), 2));
        topics.push((format!("merger-{n}"), 1));
    }
    let refs: Vec<(&str, u32)> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    let (_broker, bootstrap) = start_tansu(&tansu, &refs);
    gen_history(&engauge, &bootstrap, events, users, days);
    let dir = std::env::temp_dir().join(format!("engauge-scale-out-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    println!(
        "{events} events, {users} users, {days} days, 4 input partitions, default windows, \
         distinct = {distinct}"
    );
    for n in runs {
        let config = dir.join(format!("engauge-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "distinct = \"{distinct}\"\n[input]\nidle_timeout = \"1s\"\n\
                 [kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"scale-out-{n}\"\n\
                 snapshot_topic = \"snapshots-{n}\"\n\
                 [kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n\
                 [scale_out]\nenabled = true\npartials_topic = \"partials-{n}\"\n\
                 coordination_topic = \"merger-{n}\"\n"
            ),
        )
        .expect("config");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let procs: Vec<Proc> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let core = if i == 0 { "1" } else { "0" };
                Proc(
                    Command::new("taskset")
                        .args(["-c", core])
                        .arg(&engauge)
                        .args(["run", "--config"])
                        .arg(&config)
                        .env("ENGAUGE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
                        .stdout(Stdio::null())
                        .stderr(
                            std::fs::File::create(dir.join(format!("engauge-{n}-{i}.log")))
                                .expect("log"),
                        )
                        .spawn()
                        .expect("engauge"),
                )
            })
            .collect();
        let started = Instant::now();
        let sum = |name: &str| -> f64 {
            ports
                .iter()
                .filter_map(|&p| metric(&http_get(p, "/metrics")?, name))
                .sum()
        };
        while sum("engauge_events_consumed_total") < events as f64 {
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "run {n} timed out"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu: f64 = procs
            .iter()
            .map(|p| cpu_seconds(&p.0.id().to_string()))
            .sum();
        // Then every instance merged: nothing pending for a few seconds in a row.
        let mut quiet = 0;
        let mut last = -1.0;
        while quiet < 30 {
            let merged = sum("engauge_merged_instances_total{complete=\"true\"}")
                + sum("engauge_merged_instances_total{complete=\"false\"}");
            let pending = sum("engauge_merger_pending_instances");
            quiet = if merged == last && pending == 0.0 {
                quiet + 1
            } else {
                0
            };
            last = merged;
            std::thread::sleep(Duration::from_millis(100));
        }
        let incomplete = sum("engauge_merged_instances_total{complete=\"false\"}");
        let partials = sum("engauge_partials_published_total");
        let bytes = sum("engauge_partial_bytes_total");
        println!(
            "{n} instance(s): {wall:.1} s wall to consume, {cpu:.1} CPU s (engauge processes) = \
             {:.0} events per CPU-second, {:.0} events per wall second; {last} instances merged \
             ({incomplete} incomplete); {partials} partials, {bytes} bytes",
            events as f64 / cpu,
            events as f64 / wall
        );
        drop(procs);
    }

    // Partials of the one-instance run: bytes per window instance and partition, and the merge.
    let records = read_all(&bootstrap, "partials-1", 2);
    let mut per_window: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut progress = (0u64, 0u64);
    let mut decoded = Vec::with_capacity(records.len());
    // Chunked records (over 900 KiB) are put together as the merger does.
    let mut chunks: BTreeMap<i32, (Reassembly, u64)> = BTreeMap::new();
    let mut chunked = 0u64;
    for (pp, offset, payload) in &records {
        let (reassembly, bytes) = chunks.entry(*pp).or_default();
        *bytes += payload.len() as u64;
        let (record, at) = match reassembly.read(payload, *offset) {
            Read::Record(record, at) => (record, at),
            Read::Partial => continue,
            Read::Error(e) => panic!("partial at {pp}/{offset}: {e}"),
        };
        if at != *offset {
            chunked += 1;
        }
        let size = std::mem::take(bytes);
        match record {
            Record::Instance(p) => {
                let e = per_window.entry(p.window.clone()).or_default();
                e.0 += 1;
                e.1 += size;
                decoded.push((*pp, at, Record::Instance(p)));
            }
            Record::Progress(p) => {
                progress.0 += 1;
                progress.1 += size;
                decoded.push((*pp, at, Record::Progress(p)));
            }
        }
    }
    println!("partials sent in chunks: {chunked}");
    for (window, (count, bytes)) in &per_window {
        println!(
            "partials of window {window}: {count} records, {:.0} bytes per window instance per partition",
            *bytes as f64 / *count as f64
        );
    }
    println!(
        "progress records: {}, {:.0} bytes each",
        progress.0,
        progress.1 as f64 / progress.0.max(1) as f64
    );
    let inputs: Vec<(String, i32)> = (0..4).map(|p| ("events".to_owned(), p)).collect();
    let mut merge = Merge::new(
        inputs,
        Duration::from_secs(3600),
        engauge_core::ClvConfig::default(),
    )
    .with_images(false);
    let now = Instant::now();
    let cpu = thread_cpu_seconds();
    let clock = Instant::now();
    let mut merged = 0usize;
    let mut snapshots = 0usize;
    // As the merger does: a batch of records, then whatever became ready.
    let total = decoded.len();
    for (i, (pp, offset, record)) in decoded.into_iter().enumerate() {
        match record {
            Record::Instance(p) => merge.partial(p, pp, offset, now),
            Record::Progress(p) => merge.progress(p, now),
        }
        if i % 1000 == 999 || i + 1 == total {
            for m in merge.ready(now) {
                merged += 1;
                snapshots += m.snapshots.len();
            }
        }
    }
    let cpu = thread_cpu_seconds() - cpu;
    let wall = clock.elapsed().as_secs_f64();
    println!(
        "merge: {merged} window instances ({snapshots} snapshots) from {} partials in {cpu:.2} CPU s \
         ({wall:.2} s wall) = {:.1} µs per window instance",
        records.len(),
        wall * 1e6 / merged.max(1) as f64
    );
}
