//! `engauge demo`: the whole pipeline on an in-process Kafka (librdkafka's mock cluster), fed by
//! the generator: 60 days of history at full speed (so every window closes within a minute),
//! then live traffic, with a compact live view in the terminal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use engauge_core::time::{DAY, format_rfc3339};
use engauge_gen::GenConfig;
use engauge_kafka::MockCluster;

use crate::config::Config;
use crate::pipeline::{self, now_millis};
use crate::produce::produce;
use crate::telemetry::Telemetry;

const INPUT_TOPIC: &str = "events";
const PARTITIONS: i32 = 4;

/// Runs the demo until `shutdown` is set.
pub fn demo(mut config: Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    // The mock cluster is not `Send`: it lives on its own thread until the demo ends.
    let (tx, rx) = mpsc::channel();
    let stop_cluster = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&stop_cluster);
    let snapshot_topic = config.kafka.snapshot_topic.clone();
    let dead_letter_topic = config.kafka.dead_letter_topic.clone();
    let checkpoint_topic = config.kafka.checkpoint_topic.clone();
    let state_topic = config.kafka.state_topic.clone();
    let cluster = thread::spawn(move || {
        let started = (|| -> anyhow::Result<(MockCluster<'static, _>, String)> {
            let cluster = MockCluster::new(1)?;
            cluster.create_topic(INPUT_TOPIC, PARTITIONS, 1)?;
            cluster.create_topic(&snapshot_topic, 1, 1)?;
            cluster.create_topic(&dead_letter_topic, 1, 1)?;
            cluster.create_topic(&checkpoint_topic, 1, 1)?;
            cluster.create_topic(&state_topic, 1, 1)?;
            let bootstrap = cluster.bootstrap_servers();
            Ok((cluster, bootstrap))
        })();
        match started {
            Ok((cluster, bootstrap)) => {
                let _ = tx.send(Ok(bootstrap));
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(100));
                }
                drop(cluster);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    let bootstrap = rx.recv().context("the mock cluster thread ended")??;
    config.kafka.brokers = bootstrap.clone();
    config.kafka.input_topics = vec![INPUT_TOPIC.to_owned()];
    config.kafka.group_id = "engauge-demo".to_owned();
    if *config.currencies == engauge_codec::CurrencyRates::default() {
        // The generator pays in USD, EUR and GBP: illustrative rates, unless configured.
        config.currencies = Arc::new(
            engauge_codec::CurrencyRates::new(
                "USD",
                &[("EUR".to_owned(), 1.08), ("GBP".to_owned(), 1.27)],
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        );
    }

    let telemetry = Arc::new(Telemetry::new()?);
    let server = engauge_metrics::MetricsServer::start(
        config.http_listen,
        telemetry.registry.clone(),
        Arc::clone(&telemetry.health),
    )
    .with_context(|| format!("cannot listen on {} (set http.listen)", config.http_listen))?;
    let metrics_addr = server.local_addr();

    // Producer: 60 days of history as fast as possible, then a live stream.
    let producer_stop = Arc::clone(&shutdown);
    let brokers = bootstrap.clone();
    let producer = thread::spawn(move || -> anyhow::Result<()> {
        let now = now_millis();
        let history = GenConfig {
            events: 600_000,
            users: 50_000,
            days: 60,
            seed: 42,
            // The generator's span is calibrated statistically (it can end hours early or
            // late): start 60 days back and cut the history a minute before now, so no event
            // lies ahead of the wall clock and the live stream takes over from there.
            start: now - 60 * DAY,
            end: Some(now - engauge_core::time::MINUTE),
            bad_ratio: 0.001,
            ..GenConfig::default()
        };
        produce(&brokers, INPUT_TOPIC, history, false, &producer_stop)?;
        let live = GenConfig {
            users: 50_000,
            seed: 43,
            bad_ratio: 0.001,
            ..GenConfig::live(now_millis(), 20.0 * DAY as f64 / 1000.0)
        };
        produce(&brokers, INPUT_TOPIC, live, true, &producer_stop)?;
        Ok(())
    });

    let view_stop = Arc::clone(&shutdown);
    let view_telemetry = Arc::clone(&telemetry);
    let view =
        thread::spawn(move || live_view(&view_telemetry, &bootstrap, metrics_addr, &view_stop));

    let result = pipeline::run(&config, Arc::clone(&shutdown), &telemetry);
    shutdown.store(true, Ordering::Relaxed);
    let _ = view.join();
    if let Ok(Err(e)) = producer.join() {
        eprintln!("engauge demo: producer stopped: {e:#}");
    }
    server.shutdown();
    stop_cluster.store(true, Ordering::Relaxed);
    let _ = cluster.join();
    result
}

/// Prints a compact status block every two seconds.
#[allow(clippy::print_stdout)] // The live view is the demo's terminal output.
fn live_view(
    telemetry: &Telemetry,
    bootstrap: &str,
    metrics: std::net::SocketAddr,
    stop: &AtomicBool,
) {
    println!("engauge demo: Kafka (in-process mock cluster) at {bootstrap}");
    println!(
        "  topics: {INPUT_TOPIC} (input), engauge.snapshots, engauge.dead-letter; metrics: http://{metrics}/metrics"
    );
    let mut last = 0u64;
    let mut ticks = 0u64;
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(250));
        ticks += 1;
        if !ticks.is_multiple_of(8) {
            continue;
        }
        let (consumed, rejected, watermark, latest) = telemetry.view();
        let rate = (consumed - last) / 2;
        last = consumed;
        let wm = watermark.map_or_else(|| "-".to_owned(), format_rfc3339);
        println!(
            "\nevents/s {rate:>8}   consumed {consumed:>9}   rejected {rejected:>6}   watermark {wm}"
        );
        println!(
            "  window   active  stickiness     nps    csat   sessions/user  retention     revenue"
        );
        let fmt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
        };
        for (window, s) in &latest {
            let k = &s.kpis;
            println!(
                "  {window:<6} {:>8} {:>11} {:>7} {:>7} {:>15} {:>10} {:>11.2}",
                k.active_users,
                fmt(k.stickiness_ratio, 3),
                fmt(k.nps, 1),
                fmt(k.csat_ratio, 3),
                fmt(k.sessions_per_user, 2),
                fmt(k.retention_ratio, 3),
                k.revenue,
            );
        }
    }
}
