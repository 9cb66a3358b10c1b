//! The endpoint as its clients see it: plain HTTP over a TcpStream, `promtool check metrics` on a
//! real scrape, and a real Prometheus server scraping and answering a PromQL query.
//!
//! `promtool` and `prometheus` come from the Debian package `prometheus`; these tests fail (they
//! do not skip) when the binaries are missing, naming the package to install.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engauge_core::{DurationStats, FeatureKpis, Kpis, Snapshot, SurveyCounts};
use engauge_metrics::{
    Health, KpiGauges, MetricsServer, PipelineMetrics, Registry, TEXT_CONTENT_TYPE,
    register_process_metrics,
};

const END: i64 = 1_795_348_800_000;

fn snapshot(window: &str, segment: &[(&str, &str)], active_users: u64) -> Snapshot {
    Snapshot {
        window: window.to_owned(),
        start: END - 30 * 86_400_000,
        end: END,
        segment: segment
            .iter()
            .map(|&(d, v)| (d.to_owned(), v.to_owned()))
            .collect(),
        kpis: Kpis {
            active_users,
            events: active_users * 64,
            stickiness_ratio: (window == "30d").then_some(0.21),
            sessions: active_users * 5,
            sessions_per_user: Some(5.0),
            session_duration: Some(DurationStats {
                p50: 312.0,
                p90: 1500.5,
                p99: 5400.0,
                mean: 601.25,
            }),
            survey_responses: SurveyCounts {
                nps: 210,
                csat: 95,
                ces: 0,
            },
            nps: Some(41.5),
            nps_margin: Some(6.2),
            csat_ratio: Some(0.84),
            csat_margin: Some(0.07),
            ces_score: None,
            ..Kpis::default()
        },
        features: vec![
            (
                "export_pdf".into(),
                FeatureKpis {
                    users: 312,
                    adoption_ratio: Some(0.205),
                },
            ),
            (
                "share \"link\"".into(),
                FeatureKpis {
                    users: 3,
                    adoption_ratio: Some(0.002),
                },
            ),
        ],
        watermark: END + 3000,
        utc_offsets: None,
        approximate: false,
        active_users_sketch: None,
        parts: None,
        complete: None,
    }
}

/// A registry shaped like production: KPI families with differing label sets per segment,
/// every pipeline metric, and the process metrics.
fn populated_registry(health: Arc<Health>) -> Registry {
    let registry = Registry::new();
    let gauges = KpiGauges::register(&registry).expect("fresh registry");
    let pipeline = PipelineMetrics::register(
        &registry,
        &["not_json", "missing_field", "too_late"],
        "0.1.0",
        health,
    )
    .expect("fresh registry");
    register_process_metrics(&registry).expect("fresh registry");
    for window in ["1d", "30d"] {
        gauges.replace_window(
            window,
            &[
                snapshot(window, &[], 1520),
                snapshot(window, &[("plan", "pro")], 300),
                snapshot(window, &[("plan", "__other__")], 7),
                snapshot(window, &[("plan", "pro"), ("platform", "ios")], 120),
                snapshot(window, &[("app.version", "2.1")], 50),
            ],
        );
    }
    pipeline.add_consumed(1000);
    pipeline.add_decoded(990);
    pipeline.add_rejected("not_json");
    pipeline.add_dead_letter("not_json");
    pipeline.set_watermark(END);
    pipeline.set_consumer_lag("events", 0, 12);
    pipeline.add_snapshots_published(10);
    pipeline.set_window_closed("30d", END + 3000);
    pipeline.observe_engine(&engauge_core::EngineStats {
        late: 4,
        duplicates: 2,
        dimension_overflow: vec![("plan".to_owned(), 9)],
        ..Default::default()
    });
    registry
}

fn start_server(health: Arc<Health>) -> MetricsServer {
    let registry = populated_registry(health.clone());
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    MetricsServer::start(loopback, registry, health).expect("binding 127.0.0.1:0")
}

/// A response as read off the wire.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` verbatim and reads until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a timeout on a connected socket");
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("sending the request to {addr}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the response from {addr}: {e}"));
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {raw:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    // HTTP/1.0 keeps servers from answering chunked (Prometheus is a Go server).
    exchange(
        addr,
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: engauge-test\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn serves_metrics_health_and_readiness() {
    let health = Arc::new(Health::new());
    let server = start_server(health.clone());
    let addr = server.local_addr();

    let metrics = exchange(
        addr,
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes(),
    );
    assert_eq!(metrics.status, 200, "{}", metrics.head);
    assert!(
        metrics
            .head
            .contains(&format!("Content-Type: {TEXT_CONTENT_TYPE}\r\n")),
        "{}",
        metrics.head
    );
    assert!(metrics.head.contains("Connection: close"));
    assert!(
        metrics
            .head
            .contains(&format!("Content-Length: {}", metrics.body.len()))
    );
    assert!(
        metrics
            .body
            .contains("\nengauge_kpi_active_users{window=\"30d\"} 1520\n")
    );
    assert!(metrics.body.contains("\nengauge_ready 0\n"));

    let healthz = get(addr, "/healthz");
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok"));
    let readyz = get(addr, "/readyz");
    assert_eq!(
        (readyz.status, readyz.body.as_str()),
        (503, "not ready: starting")
    );
    health.set_ready();
    let readyz = get(addr, "/readyz?verbose");
    assert_eq!((readyz.status, readyz.body.as_str()), (200, "ready"));
    assert!(get(addr, "/metrics").body.contains("\nengauge_ready 1\n"));
    health.set_live(false);
    assert_eq!(get(addr, "/healthz").status, 503);

    assert_eq!(get(addr, "/").status, 404);
    assert_eq!(get(addr, "/metrics/extra").status, 404);
    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"));
    assert_eq!(exchange(addr, b"garbage\r\n\r\n").status, 400);
    assert_eq!(exchange(addr, b"GET /metrics HTTP/3\r\n\r\n").status, 505);
    let mut oversize = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    oversize.resize(64 * 1024, b'a');
    assert_eq!(exchange(addr, &oversize).status, 431);
    // A client that connects and leaves without a word is no trouble either.
    drop(TcpStream::connect(addr).unwrap());

    // Still serving after all that.
    assert_eq!(get(addr, "/metrics").status, 200);

    server.shutdown();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn scrape_passes_promtool_check_metrics() {
    let server = start_server(Arc::new(Health::new()));
    let scrape = get(server.local_addr(), "/metrics");
    assert_eq!(scrape.status, 200);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `promtool` ({e}): it comes with the Debian package `prometheus` \
                 (`apt-get install -y prometheus`)"
            )
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.body.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool check metrics failed ({}):\n{complaints}\n--- scrape ---\n{}",
        output.status,
        scrape.body
    );
}

/// Removes a directory tree when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "engauge-metrics-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child (by its pid, through its handle) and reaps it when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// Percent-encodes a PromQL expression for a query string.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the series a PromQL instant query returns whose labels, apart from `__name__`,
/// `job` and `instance`, are exactly `labels`; `None` while it has not been scraped yet.
fn query_value(prometheus: SocketAddr, expr: &str, labels: &[(&str, &str)]) -> Option<String> {
    let reply = get(
        prometheus,
        &format!("/api/v1/query?query={}", url_encode(expr)),
    );
    if reply.status != 200 {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
    json["data"]["result"]
        .as_array()?
        .iter()
        .find_map(|series| {
            let metric = series["metric"].as_object()?;
            let own: Vec<(&str, &str)> = metric
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "__name__" | "job" | "instance"))
                .map(|(name, value)| Some((name.as_str(), value.as_str()?)))
                .collect::<Option<_>>()?;
            let mut want = labels.to_vec();
            want.sort_unstable();
            let mut own = own;
            own.sort_unstable();
            (own == want).then(|| series["value"][1].as_str().map(str::to_owned))?
        })
}

/// A PromQL selector, the exact labels of the series wanted among its results, and its value.
type Expectation = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn real_prometheus_scrapes_the_kpis() {
    let server = start_server(Arc::new(Health::new()));
    let dir = TempDir::new("prometheus");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: engauge\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: ['{}']\n",
            server.local_addr()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `prometheus` ({e}): it comes with the Debian package `prometheus` \
                 (`apt-get install -y prometheus`)"
            )
        });
    let mut prometheus = Running(child);

    // The selector `{window="30d"}` matches every segment of the window; the all-users series
    // (MAU) is the one without dimension labels.
    let expectations: [Expectation; 4] = [
        (
            r#"engauge_kpi_active_users{window="30d"}"#,
            &[("window", "30d")],
            "1520",
        ),
        (
            r#"engauge_kpi_active_users{plan="pro"}"#,
            &[("window", "30d"), ("plan", "pro")],
            "300",
        ),
        (
            r#"engauge_kpi_session_duration_seconds{quantile="0.9"}"#,
            &[
                ("window", "1d"),
                ("plan", "pro"),
                ("platform", "ios"),
                ("quantile", "0.9"),
            ],
            "1500.5",
        ),
        (
            r#"engauge_kpi_feature_users{feature="share \"link\""}"#,
            &[
                ("window", "1d"),
                ("app_version", "2.1"),
                ("feature", "share \"link\""),
            ],
            "3",
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Vec<_> = expectations.to_vec();
    while !pending.is_empty() {
        if let Some(status) = prometheus.0.try_wait().unwrap() {
            panic!(
                "prometheus exited early ({status}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "prometheus at {web} did not return {pending:?} within 30 s; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        // Prometheus answers queries only once it listens; connection errors mean "not yet".
        if TcpStream::connect_timeout(&web, Duration::from_millis(200)).is_ok() {
            pending.retain(|(expr, labels, want)| {
                query_value(web, expr, labels).as_deref() != Some(*want)
            });
        }
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(prometheus);
    drop(dir);
}
