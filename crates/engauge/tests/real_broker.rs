//! End to end against real parts: a tansu broker process (Kafka protocol), `engauge run` as a
//! child process, kafka-python (an independent Kafka client) producing the input and reading the
//! snapshot and dead-letter topics back, and a real Prometheus scraping the pipeline.
//! `scripts/setup-test-deps` installs tansu, kafka-python and Prometheus.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use engauge::pipeline::now_millis;
use engauge_codec::{DecodeContext, decode_event};
use engauge_core::time::{DAY, MINUTE};
use support::{Proc, Tansu, by_instance, deps, free_port, http_get, root, unhex, wait_until};

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn python(deps: &Path, args: &[&str]) -> String {
    let out = Command::new(deps.join("venv/bin/python"))
        .arg(root().join("tests/e2e/kafka_client.py"))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "kafka_client {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

struct Consumed {
    key: Option<String>,
    value: Vec<u8>,
    headers: serde_json::Map<String, serde_json::Value>,
}

fn consume(deps: &Path, bootstrap: &str, topic: &str) -> Vec<Consumed> {
    python(deps, &["consume", bootstrap, topic, "3"])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            Consumed {
                key: v["key"].as_str().map(str::to_owned),
                value: unhex(v["value"].as_str().expect("value")),
                headers: v["headers"].as_object().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

#[test]
fn real_broker_kafka_python_and_prometheus_end_to_end() {
    let deps = deps();
    let tmp = std::env::temp_dir().join(format!(
        "engauge-e2e-{}-{}",
        std::process::id(),
        now_millis()
    ));
    std::fs::create_dir_all(&tmp).expect("temp dir");

    // The broker.
    let tansu = Tansu::start(
        &deps,
        &[
            ("events", 4),
            ("engauge.snapshots", 1),
            ("engauge.dead-letter", 1),
        ],
    );
    let bootstrap = tansu.bootstrap.clone();

    // The input, produced by the independent client, and the reference replay.
    let cfg = engauge_gen::GenConfig {
        events: 20_000,
        users: 2_000,
        days: 35,
        seed: 11,
        // Ends a day back (the generator's span is calibrated statistically: within hours of `days`): every instance the replay
        // closes is also closed by the live watermark (now − lateness).
        start: now_millis() - 35 * DAY - DAY,
        bad_ratio: 0.01,
        ..engauge_gen::GenConfig::default()
    };
    let events_file = tmp.join("events.ndjson");
    let mut input = Vec::new();
    engauge_gen::write_ndjson(cfg, &mut input).expect("generate");
    std::fs::write(&events_file, &input).expect("write events");
    let sent: u64 = python(
        &deps,
        &[
            "produce",
            &bootstrap,
            "events",
            events_file.to_str().expect("path"),
        ],
    )
    .trim()
    .parse()
    .expect("count");
    assert_eq!(sent, 20_000);

    let hport = free_port();
    let config_file = tmp.join("engauge.toml");
    std::fs::write(
        &config_file,
        format!(
            r#"
[[windows]]
name = "1d"
length = "1d"
slide = "6h"
[[windows]]
name = "7d"
length = "7d"
slide = "1d"
[[windows]]
name = "30d"
length = "30d"
slide = "1d"
[segments]
sets = [[], ["plan"]]
[input]
idle_timeout = "2s"
[kafka]
brokers = "{bootstrap}"
group_id = "e2e"
commit_interval = "500ms"
[kafka.consumer]
"fetch.wait.max.ms" = "10"
[http]
listen = "127.0.0.1:{hport}"
"#
        ),
    )
    .expect("write config");
    let config = engauge::config::Config::load(Some(&config_file), []).expect("config loads");
    let mut reference_out = Vec::new();
    let summary = engauge::replay::replay(&config, &input[..], &mut reference_out, now_millis)
        .expect("replay");
    let expected = by_instance(
        reference_out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec),
    );
    // Some generated events can lie ahead of the wall clock (a small stream's span varies by about
    // a day): the live pipeline closes instances only up to now − lateness, so compare those.
    let closable = now_millis() - config.engine.allowed_lateness - MINUTE;
    let expected: std::collections::BTreeMap<_, _> = expected
        .into_iter()
        .filter(|(k, _)| k.1 <= closable)
        .collect();
    let last_end = expected.keys().map(|k| k.1).max().expect("snapshots");
    let rejected: u64 = summary.rejected.values().sum();

    // The pipeline, and Prometheus scraping it.
    let mut engauge = Proc(
        Command::new(env!("CARGO_BIN_EXE_engauge"))
            .args(["run", "--config"])
            .arg(&config_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("engauge starts"),
    );
    let pport = free_port();
    std::fs::write(
        tmp.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: engauge\n    static_configs:\n      - targets: ['127.0.0.1:{hport}']\n"
        ),
    )
    .expect("prometheus config");
    let _prometheus = Proc(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                tmp.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/setup-test-deps)"),
    );

    let target_wm = (now_millis() - 11 * MINUTE) as f64 / 1000.0;
    let mut scrape = String::new();
    wait_until(
        "engauge to consume everything",
        Duration::from_secs(240),
        || {
            assert!(
                engauge.0.try_wait().expect("status").is_none(),
                "engauge exited early"
            );
            match http_get(hport, "/metrics") {
                Some((200, body)) => {
                    let done = metric(&body, "engauge_events_consumed_total") == Some(20_000.0)
                        && metric(&body, "engauge_watermark_timestamp_seconds")
                            .is_some_and(|w| w >= target_wm);
                    scrape = body;
                    done
                }
                _ => false,
            }
        },
    );
    assert_eq!(http_get(hport, "/readyz").map(|r| r.0), Some(200));
    assert_eq!(http_get(hport, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(metric(&scrape, "engauge_events_late_total"), Some(0.0));

    // promtool lints the real scrape.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/setup-test-deps)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("write");
    let lint = promtool.wait_with_output().expect("promtool");
    assert!(
        lint.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // Snapshots read back by kafka-python equal the replay.
    let snapshots = consume(&deps, &bootstrap, "engauge.snapshots");
    for s in &snapshots {
        assert!(s.key.as_deref().is_some_and(|k| k.contains('|')));
    }
    let latest_mau = snapshots
        .iter()
        .filter(|s| s.key.as_deref() == Some("30d|"))
        .filter_map(|s| engauge_codec::SnapshotRecord::from_json(&s.value).ok())
        .max_by_key(|r| r.end)
        .map(|r| r.kpis.active_users)
        .expect("a 30d snapshot");
    let actual: std::collections::BTreeMap<_, _> =
        by_instance(snapshots.into_iter().map(|s| s.value))
            .into_iter()
            .filter(|(k, _)| k.1 <= last_end)
            .collect();
    assert_eq!(actual.len(), expected.len(), "number of snapshots");
    for (key, want) in &expected {
        assert_eq!(actual.get(key), Some(want), "snapshot {key:?}");
    }

    // Dead letters: one per bad line, with the SPEC headers.
    // Read again while some are missing: tansu's reported end offset can lag a batch behind
    // (TESTING.md), which hides the last records from a reader for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let dead = consume(&deps, &bootstrap, "engauge.dead-letter");
        if dead.len() as u64 >= rejected || std::time::Instant::now() > deadline {
            break dead;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(dead.len() as u64, rejected);
    let ctx = DecodeContext::new(now_millis());
    for d in &dead {
        let reason = decode_event(&d.value, &ctx).expect_err("bad").reason;
        assert_eq!(d.headers["engauge.error.reason"], reason.as_str());
        assert_eq!(d.headers["engauge.source.topic"], "events");
        for h in [
            "engauge.error.message",
            "engauge.source.partition",
            "engauge.source.offset",
        ] {
            assert!(d.headers.contains_key(h), "missing header {h}");
        }
    }

    // Prometheus, through its HTTP API, reports the pipeline's MAU.
    let query =
        "/api/v1/query?query=engauge_kpi_active_users%7Bwindow%3D%2230d%22%2Cplan%3D%22%22%7D";
    let mut last_answer = String::new();
    wait_until("Prometheus to report MAU", Duration::from_secs(60), || {
        let Some((200, body)) = http_get(pport, query) else {
            return false;
        };
        last_answer = body.clone();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"][0]["value"][1].as_str() == Some(latest_mau.to_string().as_str())
    });

    // SIGTERM: a graceful stop within 25 s, exit status 0.
    let exit = support::stop_gracefully(&mut engauge.0, Duration::from_secs(25));
    assert!(exit.success(), "engauge exited with {exit}");
    let _ = std::fs::remove_dir_all(&tmp);
}
