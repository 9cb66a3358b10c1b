//! `guarantee = "exactly_once"` against librdkafka's mock cluster, with the transactional faults
//! librdkafka documents: retriable errors on EndTxn and AddOffsetsToTxn, a transaction
//! coordinator that moves mid-transaction, an abortable TxnOffsetCommit error, a fenced
//! producer (the process exits non-zero instead of looping), and the checkpoint on revoke.
//!
//! The mock speaks the transactional protocol (InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn, epochs and fencing) but keeps no transaction state
//! on its data path: it writes no commit/abort markers and stores no transactional offsets. So
//! here every test compares the published KPIs with the replay and, where nothing aborts, checks
//! that nothing was published twice; what a `read_committed` reader sees after aborts and
//! crashes is checked against a real broker in `crash.rs`.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engauge::config::{Config, Guarantee};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::{
    Cluster, INPUT, Running, SNAPSHOTS, assert_same, caught_up, config, history, last_by_instance,
    metric, produce, published, read_topic, reference,
};

fn exactly_once(bootstrap: &str, group: &str) -> Config {
    let mut config = config(bootstrap, group);
    config.guarantee = Guarantee::ExactlyOnce;
    config.checkpoint_interval = 300;
    config
}

fn input_partitions(n: i32) -> Vec<(String, i32)> {
    (0..n).map(|p| (INPUT.to_owned(), p)).collect()
}

/// Coordinator hiccups on the calls that end a transaction: librdkafka retries what it calls
/// retriable, every transaction still commits, and every instance is published once.
#[test]
fn retriable_end_txn_and_add_offsets_errors_publish_every_instance_once() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(2);
    let config = exactly_once(&cluster.bootstrap, "eos-retriable");
    let cfg = history(10_000, 10, 11);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let running = Running::start(config);
    running.wait_for("a first commit", Duration::from_secs(60), |t| {
        metric(t, "engauge_transactions_committed_total") >= 1.0
    });
    for error in [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
    ] {
        cluster.request_errors(RDKafkaApiKey::EndTxn, error, 3);
    }
    for error in [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
    ] {
        cluster.request_errors(RDKafkaApiKey::AddOffsetsToTxn, error, 3);
    }
    running.wait_for("all events", Duration::from_secs(120), caught_up(total));
    let committed = metric(&running.telemetry, "engauge_transactions_committed_total");
    let aborted = metric(
        &running.telemetry,
        "engauge_transactions_aborted_total{reason=\"abortable_error\"}",
    ) + metric(
        &running.telemetry,
        "engauge_transactions_aborted_total{reason=\"uncertain_commit\"}",
    );
    running.stop();
    assert!(committed >= 2.0, "{committed} transactions committed");
    assert_eq!(aborted, 0.0, "retriable errors abort nothing");
    // `by_instance` (inside `published`) fails on any instance published twice.
    assert_same(&published(&cluster.bootstrap, last_end), &expected);
}

/// The transaction coordinator moves to other brokers while transactions are open: the
/// producer finds the new coordinator and carries on.
#[test]
fn transaction_coordinator_switch_mid_transaction() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::with_brokers(3, 4);
    let config = exactly_once(&cluster.bootstrap, "eos-coordinator");
    let id = config.kafka.transactional_id(&input_partitions(4));
    let cfg = history(20_000, 20, 12);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let running = Running::start(config);
    let mut moves = 0;
    for (share, broker) in [(4, 2), (2, 3), (1, 1)] {
        running.wait_for("progress", Duration::from_secs(60), |t| {
            t.view().0 >= total / share
        });
        let before = metric(&running.telemetry, "engauge_transactions_committed_total");
        cluster.txn_coordinator(&id, broker);
        moves += 1;
        // The producer finds the new coordinator: a transaction commits through it.
        running.wait_for("a commit after the move", Duration::from_secs(60), |t| {
            metric(t, "engauge_transactions_committed_total") > before
        });
    }
    running.wait_for("all events", Duration::from_secs(120), caught_up(total));
    let committed = metric(&running.telemetry, "engauge_transactions_committed_total");
    running.stop();
    assert_eq!(moves, 3);
    assert!(committed >= 3.0, "{committed} transactions committed");
    assert_same(&published(&cluster.bootstrap, last_end), &expected);
}

/// An abortable TxnOffsetCommit error (the group refused the offsets): the transaction is
/// aborted, state and positions rewind to the last commit, and the work is redone, so the
/// final snapshot of every instance still equals the replay. (The mock shows aborted records to
/// every reader and keeps no transactional offsets, so repeats are expected here; a real broker
/// hides them, see `crash.rs`.)
#[test]
fn abortable_txn_offset_commit_error_rewinds_and_loses_nothing() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(2);
    let config = exactly_once(&cluster.bootstrap, "eos-abortable");
    let cfg = history(10_000, 10, 13);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let running = Running::start(config);
    running.wait_for("a first commit", Duration::from_secs(60), |t| {
        metric(t, "engauge_transactions_committed_total") >= 1.0
    });
    cluster.request_errors(
        RDKafkaApiKey::TxnOffsetCommit,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
        1,
    );
    running.wait_for("the abort", Duration::from_secs(60), |t| {
        metric(
            t,
            "engauge_transactions_aborted_total{reason=\"abortable_error\"}",
        ) >= 1.0
    });
    running.wait_for("all events", Duration::from_secs(120), caught_up(total));
    let after = metric(&running.telemetry, "engauge_transactions_committed_total");
    running.stop();
    assert!(after >= 2.0, "transactions commit again after the abort");
    let (last, _) = last_by_instance(
        read_topic(&cluster.bootstrap, SNAPSHOTS, Duration::from_secs(2))
            .into_iter()
            .map(|r| r.payload),
    );
    let last = last.into_iter().filter(|(k, _)| k.1 <= last_end).collect();
    assert_same(&last, &expected);
}

/// The transaction coordinator says the producer is fenced (a newer owner of the same
/// partitions took its transactional id): the process exits non-zero with a clear message, at
/// once, and does not retry in a loop.
#[test]
fn fenced_producer_exits_non_zero() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(2);
    let config = exactly_once(&cluster.bootstrap, "eos-fenced");
    produce(&cluster.bootstrap, &history(20_000, 20, 14));
    let dir = std::env::temp_dir().join(format!("engauge-fenced-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("engauge.toml");
    std::fs::write(&file, support::config_toml(&config)).expect("config file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_engauge"))
        .args(["run", "--config"])
        .arg(&file)
        .env("ENGAUGE__HTTP__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engauge starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Let it own the partitions and commit a transaction or two.
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "engauge stopped before it was fenced"
    );
    // The coordinator answers that a newer producer holds the id (what a broker says to a
    // zombie once the next owner called init_transactions; the mock does not fence by itself).
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
        1,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = reader.join().expect("stderr reader");
            panic!("a fenced engauge kept running for 60 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = reader.join().expect("stderr reader");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success(), "exit status {status}");
    assert!(
        text.contains("fenced"),
        "the message says it was fenced: {text}"
    );
    assert!(
        text.matches("fatal Kafka transaction error").count() == 1,
        "one fatal error, no retry loop: {text}"
    );
}

/// A rebalance takes partitions away: the member checkpoints on revoke (state, checkpoint
/// records and offsets in one last transaction, accepted while the rebalance is in progress)
/// instead of aborting, so the next owner does not redo the interval.
#[test]
fn revoke_commits_a_checkpoint_instead_of_aborting() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(4);
    let mut config = exactly_once(&cluster.bootstrap, "eos-revoke");
    // No periodic checkpoint after the first: a commit after that is the one on revoke.
    config.checkpoint_interval = 3_600_000;
    let cfg = history(10_000, 10, 17);
    let total = produce(&cluster.bootstrap, &cfg);
    let first = Running::start(config.clone());
    first.wait_for("the backfill", Duration::from_secs(120), caught_up(total));
    let before = metric(&first.telemetry, "engauge_transactions_committed_total");
    let second = Running::start(config);
    first.wait_for("the checkpoint on revoke", Duration::from_secs(60), |t| {
        metric(t, "engauge_transactions_committed_total") > before
    });
    let revoked_aborts = metric(
        &first.telemetry,
        "engauge_transactions_aborted_total{reason=\"revoked\"}",
    );
    second.stop();
    first.stop();
    assert_eq!(
        revoked_aborts, 0.0,
        "the revoke committed, it did not abort"
    );
}
