//! `engauge replay` on a checked-in event file must print exactly the checked-in snapshots.
//! `emitted_at` is wall-clock time, so it is compared only for presence and form.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test replay_golden`
//! and review the diff by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/replay")
        .join(name)
}

/// Replaces the wall-clock `emitted_at` of a snapshot line with a placeholder, keeping every
/// other byte (key order and number formatting are part of the contract).
fn normalise(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("snapshot line is JSON");
    let emitted = value
        .get("emitted_at")
        .and_then(|v| v.as_str())
        .expect("emitted_at present");
    assert!(emitted.ends_with('Z') && emitted.len() >= 20, "{emitted}");
    let field = format!("\"emitted_at\":\"{emitted}\"");
    assert_eq!(line.matches(&field).count(), 1);
    line.replace(&field, "\"emitted_at\":\"EMITTED_AT\"")
}

#[test]
fn replay_matches_golden_output() {
    let output = Command::new(env!("CARGO_BIN_EXE_engauge"))
        .args(["replay", "--config"])
        .arg(data("config.toml"))
        .arg("--input")
        .arg(data("events.ndjson"))
        .output()
        .expect("engauge runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let actual: Vec<String> = stdout.lines().map(normalise).collect();
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    let golden = data("expected.ndjson");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, actual.join("\n") + "\n").expect("write golden");
        std::fs::write(data("expected.stderr"), &stderr).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file");
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(actual.len(), expected.len(), "number of snapshots");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "snapshot line {}", i + 1);
    }
    let expected_stderr = std::fs::read_to_string(data("expected.stderr")).expect("golden");
    assert_eq!(stderr, expected_stderr);
}

#[test]
fn replay_reads_stdin_and_rejects_bad_config_with_the_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_engauge"))
        .args(["replay"])
        .env("ENGAUGE__SEGMENTS__MAX_VALUES", "0")
        .output()
        .expect("engauge runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("segments.max_values"), "{stderr}");
}
