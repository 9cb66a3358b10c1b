//! The pipeline against librdkafka's in-process mock cluster (real Kafka protocol): end-to-end
//! KPIs equal `engauge replay` of the same events, dead letters carry the SPEC headers, a restart
//! loses nothing and publishes no instance twice, and a broker outage shows on readiness.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use engauge::pipeline::now_millis;
use engauge_codec::{DecodeContext, SnapshotRecord, decode_event};
use engauge_core::time::DAY;
use engauge_gen::GenConfig;
use support::{
    Cluster, DEAD_LETTERS, INPUT, Running, SNAPSHOTS, assert_same, by_instance, caught_up, config,
    history, metric, produce, published, read_topic, reference,
};

/// A fresh group reads 40 days of history on 4 partitions from the beginning: the KPIs equal the
/// replay's, nothing is late, and every bad line is on the dead-letter topic with its reason.
#[test]
fn backfill_matches_replay_and_dead_letters_carry_headers() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(4);
    let config = config(&cluster.bootstrap, "backfill");
    let cfg = history(30_000, 40, 1);
    let (expected, rejected, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let running = Running::start(config);
    running.wait_for("the backfill", Duration::from_secs(120), caught_up(total));
    let late = metric(&running.telemetry, "engauge_events_late_total");
    let decoded = metric(&running.telemetry, "engauge_events_decoded_total");
    running.stop();
    assert_eq!(
        late, 0.0,
        "a backfill read in blocks must produce no late event"
    );
    assert_eq!(
        decoded as u64 + rejected,
        total,
        "every good event is decoded"
    );
    assert_same(&published(&cluster.bootstrap, last_end), &expected);

    let dead = read_topic(&cluster.bootstrap, DEAD_LETTERS, Duration::from_secs(2));
    assert_eq!(
        dead.len() as u64,
        rejected,
        "one dead letter per rejected line"
    );
    let ctx = DecodeContext::new(now_millis());
    for d in &dead {
        let reason = decode_event(&d.payload, &ctx)
            .expect_err("dead letters are bad")
            .reason;
        assert_eq!(d.headers["engauge.error.reason"], reason.as_str());
        assert!(!d.headers["engauge.error.message"].is_empty());
        assert_eq!(d.headers["engauge.source.topic"], INPUT);
        let partition: i32 = d.headers["engauge.source.partition"]
            .parse()
            .expect("number");
        assert!((0..4).contains(&partition));
        let _offset: i64 = d.headers["engauge.source.offset"].parse().expect("number");
    }
}

/// Backpressure with a pending-event limit far below what a fetch brings: partitions ahead of
/// the watermark pause and resume many times, and the backfill still finishes and equals the
/// replay. (A partition paused while ahead now resumes as soon as it holds the watermark back,
/// not only once the backlog halves: the 12 M-event restore benchmark on tansu stalled on that.)
#[test]
fn backpressure_with_a_tiny_pending_limit_matches_replay() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(4);
    let mut config = config(&cluster.bootstrap, "backpressure");
    config.max_pending_events = 200;
    let cfg = history(30_000, 3, 3);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let running = Running::start(config);
    running.wait_for("the backfill", Duration::from_secs(180), caught_up(total));
    let late = metric(&running.telemetry, "engauge_events_late_total");
    running.stop();
    assert_eq!(late, 0.0, "pausing reorders no event past the watermark");
    assert_same(&published(&cluster.bootstrap, last_end), &expected);
}

/// Sketch mode end to end: the published snapshots equal the replay's (published estimates do
/// not depend on how the partitions interleave), say `"distinct": "sketch"` and carry the HLL
/// image of their active users.
#[test]
fn sketch_mode_snapshots_match_replay_and_carry_images() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(4);
    let mut config = config(&cluster.bootstrap, "sketch");
    config.engine.distinct = engauge_core::DistinctMode::Sketch;
    config.engine.sketch.include_in_snapshots = true;
    let cfg = history(20_000, 35, 5);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let running = Running::start(config);
    running.wait_for("the backfill", Duration::from_secs(120), caught_up(total));
    running.stop();
    let published = published(&cluster.bootstrap, last_end);
    assert_same(&published, &expected);
    assert!(published.len() > 100);
    for r in published.values() {
        assert_eq!(r.distinct.as_deref(), Some("sketch"));
        let image = r.to_snapshot().active_users_sketch.expect("an image");
        let sketch = engauge_core::sketch::DistinctSketch::deserialize(&image).expect("HLL");
        assert_eq!(
            sketch.composite_estimate().round() as u64,
            r.kpis.active_users
        );
    }
}

/// A slow broker (every response delayed by 5 s): `/metrics` and `/readyz` keep answering well
/// within one broker round trip (they never wait on Kafka), and once the delay goes away the
/// published KPIs equal the replay.
#[test]
fn high_broker_latency_keeps_metrics_responsive_and_loses_nothing() {
    let _one_at_a_time = support::exclusive();
    use std::io::{Read, Write};
    let cluster = Cluster::start(2);
    let config = config(&cluster.bootstrap, "latency");
    let cfg = history(5_000, 10, 11);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    cluster.round_trip_time(Duration::from_secs(5));
    let running = Running::start(config);
    let server = engauge_metrics::MetricsServer::start(
        "127.0.0.1:0".parse().expect("address"),
        running.telemetry.registry.clone(),
        Arc::clone(&running.telemetry.health),
    )
    .expect("metrics server");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(server.local_addr()).expect("connect");
        // Shorter than one broker round trip: an answer that waited on Kafka would time out.
        s.set_read_timeout(Some(Duration::from_secs(4)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{path} did not answer within 4 s: {e}"));
        text
    };
    for _ in 0..20 {
        let metrics = get("/metrics");
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("engauge_events_consumed_total"));
        let ready = get("/readyz");
        assert!(ready.starts_with("HTTP/1.1 "), "{ready}");
        std::thread::sleep(Duration::from_millis(250));
    }
    cluster.round_trip_time(Duration::ZERO);
    running.wait_for("all events", Duration::from_secs(180), caught_up(total));
    running.stop();
    server.shutdown();
    assert_same(&published(&cluster.bootstrap, last_end), &expected);
}

/// Stop the pipeline mid-stream (under load, within the 25 s shutdown budget) and start another
/// in the same group: the union of what both published equals the replay, and no instance is
/// published twice.
#[test]
fn restart_mid_stream_loses_nothing_and_publishes_nothing_twice() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(4);
    let config = config(&cluster.bootstrap, "restart");
    let cfg = history(20_000, 35, 2);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    let first = Running::start(config.clone());
    first.wait_for("half the input", Duration::from_secs(60), |t| {
        t.view().0 >= total / 2
    });
    // SIGTERM/SIGINT under load: the stop (flush, commit, leave the group) meets its 25 s
    // budget.
    let stopping = std::time::Instant::now();
    first.stop();
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(25),
        "graceful stop took {took:?}"
    );
    let second = Running::start(config);
    second.wait_for("the rest", Duration::from_secs(120), caught_up(0));
    second.stop();
    // `by_instance` fails on any instance published twice.
    assert_same(&published(&cluster.bootstrap, last_end), &expected);
}

/// Retriable errors on Produce (snapshots, dead letters) and on Fetch: librdkafka retries, the
/// idempotent producer writes each snapshot once, and the published KPIs equal the replay.
#[test]
fn produce_and_fetch_errors_lose_nothing_and_duplicate_nothing() {
    let _one_at_a_time = support::exclusive();
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = Cluster::start(2);
    let config = config(&cluster.bootstrap, "faults");
    let cfg = history(10_000, 10, 7);
    let (expected, _, last_end) = reference(&config, &cfg);
    let total = produce(&cluster.bootstrap, &cfg);
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        25,
    );
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        25,
    );
    let running = Running::start(config);
    running.wait_for("all events", Duration::from_secs(120), caught_up(total));
    running.stop();
    // `by_instance` fails on any instance published twice.
    assert_same(&published(&cluster.bootstrap, last_end), &expected);
}

/// All brokers down (for `down_for` after readiness dropped): `/readyz` reports it; back up:
/// events produced afterwards are consumed without a restart.
fn outage_then_recovery(group: &str, down_for: Duration, seed: u64) {
    let cluster = Cluster::start(2);
    let config = config(&cluster.bootstrap, group);
    let total = produce(&cluster.bootstrap, &history(2_000, 3, seed));
    let running = Running::start(config);
    running.wait_for("the first events", Duration::from_secs(60), |t| {
        t.view().0 >= total && t.health.is_ready()
    });
    cluster.broker_down();
    running.wait_for("readiness to drop", Duration::from_secs(60), |t| {
        !t.health.is_ready()
    });
    std::thread::sleep(down_for);
    assert!(!running.telemetry.health.is_ready(), "still down");
    cluster.broker_up();
    let more = produce(&cluster.bootstrap, &history(2_000, 3, seed + 1));
    running.wait_for("recovery", Duration::from_secs(120), |t| {
        t.view().0 >= total + more && t.health.is_ready()
    });
    running.stop();
}

/// A short outage.
#[test]
fn broker_outage_shows_on_readiness_and_recovers() {
    let _one_at_a_time = support::exclusive();
    outage_then_recovery("outage", Duration::ZERO, 3);
}

/// A full minute without brokers (longer than librdkafka's reconnect backoff and many commit
/// intervals).
#[test]
fn a_minute_without_brokers_then_consumption_resumes() {
    let _one_at_a_time = support::exclusive();
    outage_then_recovery("minute", Duration::from_secs(60), 8);
}

/// Consumption that stops while messages wait (every Fetch fails, everything else works) is
/// counted, shown on `/readyz`, and recovered from without a restart once fetching works again.
#[test]
fn stalled_consumption_is_reported_and_recovered() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(1);
    let mut config = config(&cluster.bootstrap, "stall");
    config.stall_timeout = 3_000;
    let total = produce(&cluster.bootstrap, &history(2_000, 3, 5));
    let running = Running::start(config);
    running.wait_for("the first events", Duration::from_secs(60), |t| {
        t.view().0 >= total && t.health.is_ready()
    });
    cluster.fetch_errors(true);
    let more = produce(&cluster.bootstrap, &history(2_000, 3, 6));
    running.wait_for("the stall to be reported", Duration::from_secs(60), |t| {
        metric(t, "engauge_consumer_stalls_total") >= 1.0 && !t.health.is_ready()
    });
    assert!(
        running.telemetry.view().0 < total + more,
        "nothing was fetched"
    );
    cluster.fetch_errors(false);
    running.wait_for("recovery", Duration::from_secs(90), |t| {
        t.view().0 >= total + more && t.health.is_ready()
    });
    running.stop();
}

/// 10 000 distinct attribute values stay within the caps, and no user id reaches a label.
#[test]
fn metrics_stay_within_caps_and_carry_no_user_id() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(1);
    let config = config(&cluster.bootstrap, "caps");
    let start = now_millis() - 3 * DAY;
    let mut lines = Vec::new();
    for i in 0..10_000i64 {
        lines.push(format!(
            r#"{{"id":"c{i}","type":"feature_used","user_id":"secret-user-{i}","ts":{},"attrs":{{"plan":"plan-{i}","region":"r{i}"}},"feature":"feature-{i}"}}"#,
            start + i * 20_000
        ));
    }
    let total = lines.len() as u64;
    let settings = engauge_kafka::KafkaSettings {
        brokers: cluster.bootstrap.clone(),
        ..config.kafka.clone()
    };
    let mut outbox = engauge_kafka::Outbox::new(&settings).expect("producer");
    for line in lines {
        outbox.send(&engauge_kafka::OutRecord {
            topic: INPUT.into(),
            key: None,
            payload: line.into_bytes(),
            headers: vec![],
        });
    }
    assert!(outbox.flush(Duration::from_secs(30)));
    let running = Running::start(config.clone());
    running.wait_for("all events", Duration::from_secs(90), caught_up(total));
    let text = engauge_metrics::render(&running.telemetry.registry).expect("render");
    running.stop();
    assert!(
        !text.contains("secret-user"),
        "a user id reached the metrics"
    );
    let plans: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("engauge_kpi_active_users{"))
        .filter_map(|l| l.split("plan=\"").nth(1)?.split('"').next())
        .collect();
    let cap = config.engine.segments.max_values;
    assert!(
        plans.len() <= cap + 2,
        "{} plan values exported",
        plans.len()
    );
    assert!(plans.contains("__other__"));
    let features = text
        .lines()
        .filter(|l| l.starts_with("engauge_kpi_feature_users{"))
        .filter_map(|l| l.split("feature=\"").nth(1)?.split('"').next())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(features.len() <= config.engine.features.max_values + 1);
}

/// Waits until a member has a watermark and it stopped moving for two seconds.
fn settled(running: &Running) {
    running.wait_for("a watermark", Duration::from_secs(120), |t| {
        t.view().2.is_some()
    });
    let mut last = running.telemetry.view().2;
    let mut stable = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while stable < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watermark never settled"
        );
        std::thread::sleep(Duration::from_millis(500));
        let now = running.telemetry.view().2;
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
}

/// A second member joins the group after the first has published everything it could: the
/// rebalance republishes nothing, and for every instance closed afterwards the two members'
/// partial snapshots add up exactly to the replay of all events (input is keyed by user, so even
/// distinct users add up): nothing lost, nothing counted twice.
#[test]
fn second_member_joining_loses_nothing_and_counts_nothing_twice() {
    let _one_at_a_time = support::exclusive();
    let cluster = Cluster::start(4);
    let mut config = config(&cluster.bootstrap, "join");
    // The watermark must follow event time here, not jump to the wall clock while idle.
    config.idle_timeout = 600_000;
    let now = now_millis();
    let old = GenConfig {
        start: now - 40 * DAY,
        ..history(12_000, 29, 5)
    };
    let new = GenConfig {
        start: now - 10 * DAY,
        ..history(8_000, 9, 6)
    };
    let first_total = produce(&cluster.bootstrap, &old);
    let a = Running::start(config.clone());
    a.wait_for(
        "the first member to consume",
        Duration::from_secs(120),
        |t| t.view().0 >= first_total,
    );
    settled(&a);
    std::thread::sleep(Duration::from_millis(3 * config.commit_interval as u64));
    let published_before = read_topic(&cluster.bootstrap, SNAPSHOTS, Duration::from_secs(2)).len();
    let b = Running::start(config.clone());
    b.wait_for(
        "the second member's assignment",
        Duration::from_secs(60),
        |t| t.health.is_ready(),
    );
    a.wait_for(
        "the first member's new assignment",
        Duration::from_secs(60),
        |t| t.health.is_ready(),
    );
    let second_total = produce(&cluster.bootstrap, &new);
    let (ta, tb) = (Arc::clone(&a.telemetry), Arc::clone(&b.telemetry));
    a.wait_for(
        "both members to consume the new events",
        Duration::from_secs(120),
        |_| ta.view().0 + tb.view().0 >= first_total + second_total,
    );
    settled(&a);
    settled(&b);
    // Only instances both members have closed can be compared: under load one member may still
    // be re-reading a lagging partition when the other has finished.
    let closed_by_both = a
        .telemetry
        .view()
        .2
        .min(b.telemetry.view().2)
        .expect("watermarks");
    let consumed = a.telemetry.view().0 + b.telemetry.view().0;
    a.stop();
    b.stop();
    assert!(
        consumed >= first_total + second_total,
        "every message consumed"
    );

    // The reference: replay of everything, old then new.
    let mut input = Vec::new();
    engauge_gen::write_ndjson(old.clone(), &mut input).expect("generate");
    engauge_gen::write_ndjson(new.clone(), &mut input).expect("generate");
    let mut output = Vec::new();
    engauge::replay::replay(&config, &input[..], &mut output, now_millis).expect("replay");
    let expected = by_instance(
        output
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec),
    );

    let records = read_topic(&cluster.bootstrap, SNAPSHOTS, Duration::from_secs(2));
    let (before, after) = records.split_at(published_before);
    let mut seen = std::collections::BTreeSet::new();
    for r in before {
        let s = SnapshotRecord::from_json(&r.payload)
            .expect("snapshot")
            .to_snapshot();
        seen.insert((s.window.clone(), s.end, s.key()));
    }
    // After the join: per instance at most one partial per member, summing to the reference.
    let mut partials: BTreeMap<(String, i64, String), BTreeMap<String, SnapshotRecord>> =
        BTreeMap::new();
    for r in after {
        let rec = SnapshotRecord::from_json(&r.payload).expect("snapshot");
        let s = rec.to_snapshot();
        let key = (s.window.clone(), s.end, s.key());
        assert!(
            !seen.contains(&key),
            "{key:?} published again after the rebalance"
        );
        let member = r
            .headers
            .get("engauge.member")
            .cloned()
            .expect("member header");
        let previous = partials.entry(key.clone()).or_default().insert(member, rec);
        assert!(previous.is_none(), "{key:?} published twice by one member");
    }
    let (mut checked, mut both) = (0, 0);
    for (key, by_member) in partials.iter().filter(|(k, _)| k.1 <= closed_by_both) {
        let Some(want) = expected.get(key) else {
            continue; // Beyond the replay's last event: closed by the later watermark only.
        };
        let sum = |f: fn(&SnapshotRecord) -> u64| by_member.values().map(f).sum::<u64>();
        assert_eq!(
            sum(|r| r.kpis.events),
            want.kpis.events,
            "events of {key:?}"
        );
        assert_eq!(
            sum(|r| r.kpis.active_users),
            want.kpis.active_users,
            "users of {key:?}"
        );
        // A member publishes a segment's partial only when it has an event of that segment in
        // the range (SPEC §2), so a session closing there after its last event fell before the
        // range is absent from that member's partials: compare sessions where both published.
        if by_member.len() == 2 {
            assert_eq!(
                sum(|r| r.kpis.sessions),
                want.kpis.sessions,
                "sessions of {key:?}"
            );
            both += 1;
        }
        checked += 1;
    }
    assert!(checked > 20, "instances closed after the join: {checked}");
    assert!(both > 10, "instances both members published: {both}");
    assert!(
        partials.values().any(|m| m.len() == 2),
        "both members published after the join"
    );
}
