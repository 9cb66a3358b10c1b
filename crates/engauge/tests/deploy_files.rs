//! The files users deploy with are checked statically (no Docker engine runs here): Prometheus
//! rules and every Grafana query pass promtool, and docker-compose.yml refers to files that exist
//! and configures engauge with settings it accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn promtool_check_rules(path: &Path) {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(path)
        .output()
        .expect("promtool is installed (scripts/setup-test-deps)");
    assert!(
        out.status.success(),
        "promtool check rules {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_rules_pass_promtool() {
    promtool_check_rules(&root().join("deploy/prometheus/rules.yml"));
}

#[test]
fn every_grafana_query_is_valid_promql() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/dashboards/engauge.json"))
        .expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard:q{n}\n        expr: {}\n",
                serde_json::to_string(expr).expect("quote")
            ));
        }
    }
    assert!(n >= 8, "the dashboard has queries");
    let path = std::env::temp_dir().join(format!(
        "engauge-dashboard-rules-{}.yml",
        std::process::id()
    ));
    std::fs::write(&path, rules).expect("write");
    promtool_check_rules(&path);
    let _ = std::fs::remove_file(path);
}

#[test]
fn compose_file_is_consistent() {
    let python = root().join(".cache/test-deps/venv/bin/python");
    assert!(python.exists(), "run scripts/setup-test-deps");
    let out = Command::new(python)
        .arg(root().join("tests/e2e/compose_facts.py"))
        .arg(root().join("docker-compose.yml"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for name in ["kafka", "engauge", "prometheus", "grafana"] {
        assert!(services.get(name).is_some(), "service {name} missing");
    }
    for (name, svc) in services.as_object().expect("services") {
        for mount in svc["mounts"].as_array().expect("mounts") {
            let path = root().join(mount.as_str().expect("path"));
            assert!(
                path.exists(),
                "{name} mounts {} which does not exist",
                path.display()
            );
        }
        if svc["build"].is_string() {
            assert!(root().join("Dockerfile").exists());
        }
    }
    // The environment given to engauge must load as a valid configuration.
    let env: Vec<(String, String)> = services["engauge"]["environment"]
        .as_object()
        .expect("environment")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
        .collect();
    let config = engauge::config::Config::load(Some(&root().join("config.example.toml")), env)
        .expect("compose environment is a valid engauge configuration");
    assert_eq!(config.kafka.brokers, "kafka:9092");
    assert_eq!(config.http_listen.port(), 9898);
}
