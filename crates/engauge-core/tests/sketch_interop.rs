//! engauge's sketch images are read by the Python `datasketches` package (Apache DataSketches,
//! C++ core), which computes the same estimates; sketching the same user ids in Python gives the
//! same sketches, and Rust reads Python's images back.
//!
//! Runs `tests/e2e/sketch_interop.py` with the project venv's interpreter, which
//! `scripts/setup-test-deps` creates and fills; a missing venv or package fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use engauge_core::sketch::{self, CompactSet, DEFAULT_LG_K, DistinctSketch, SetSketch, SetUnion};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = root().join(".cache/test-deps/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-deps",
        python.display()
    );
    python
}

/// Sends `request` to the script and returns its JSON report, failing on any error.
fn run_script(request: &Value) -> Value {
    let mut child = Command::new(python())
        .arg(root().join("tests/e2e/sketch_interop.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("request written");
    let out = child.wait_with_output().expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "python datasketches package missing: run scripts/setup-test-deps\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "script output is not JSON ({err}), status {}: {}\n{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
    });
    for row in report["results"].as_array().expect("results") {
        assert_eq!(
            row["ok"],
            json!(true),
            "Python disagrees with Rust on {}: {row}",
            row["name"]
        );
    }
    assert!(out.status.success(), "script failed: {report}\n{stderr}");
    report
}

fn users(start: u64, end: u64) -> Value {
    json!({ "prefix": "user-", "start": start, "end": end })
}

fn ids(start: u64, end: u64) -> impl Iterator<Item = String> {
    (start..end).map(|i| format!("user-{i}"))
}

fn hll(parts: &[(u64, u64)]) -> DistinctSketch {
    let sketches: Vec<DistinctSketch> = parts
        .iter()
        .map(|&(start, end)| {
            let mut s = DistinctSketch::default();
            ids(start, end).for_each(|u| s.update(&u));
            s
        })
        .collect();
    match sketches.as_slice() {
        [one] => one.clone(),
        many => DistinctSketch::union_of(DEFAULT_LG_K, many).expect("lg_k"),
    }
}

fn theta(parts: &[(u64, u64)]) -> CompactSet {
    let sketches: Vec<SetSketch> = parts
        .iter()
        .map(|&(start, end)| {
            let mut s = SetSketch::default();
            ids(start, end).for_each(|u| s.update(&u));
            s
        })
        .collect();
    match sketches.as_slice() {
        [one] => one.compact(),
        many => {
            let mut union = SetUnion::default();
            many.iter().for_each(|s| union.add(s));
            union.result()
        }
    }
}

fn spec(name: &str, kind: &str, bytes: &[u8], estimate: f64, parts: &[(u64, u64)]) -> Value {
    let rebuild: Vec<Value> = parts.iter().map(|&(s, e)| users(s, e)).collect();
    json!({
        "name": name,
        "kind": kind,
        "base64": STANDARD.encode(bytes),
        "estimate": estimate,
        "lg_k": DEFAULT_LG_K,
        "rebuild": rebuild,
    })
}

#[test]
fn python_datasketches_reads_engauge_sketches() {
    // (name, parts): one stream in id order (HLL: HIP estimator), or a union of parts.
    let cases: &[(&str, &[(u64, u64)])] = &[
        ("empty", &[(0, 0)]),
        ("tiny", &[(0, 7)]),            // HLL list mode, Theta exact
        ("sparse", &[(0, 300)]),        // HLL set mode
        ("stream_50k", &[(0, 50_000)]), // HLL dense, Theta sampling
        (
            "merged",
            &[(0, 30_000), (20_000, 60_000), (100_000, 101_000)],
        ),
    ];
    let mut sketches = Vec::new();
    let mut rust_hll = Vec::new();
    let mut rust_theta = Vec::new();
    for &(name, parts) in cases {
        let h = hll(parts);
        sketches.push(spec(
            &format!("hll_{name}"),
            "hll",
            &h.serialize(),
            h.estimate(),
            parts,
        ));
        rust_hll.push(h.estimate());
        let t = theta(parts);
        sketches.push(spec(
            &format!("theta_{name}"),
            "theta",
            &t.serialize(),
            t.estimate(),
            parts,
        ));
        rust_theta.push(t.estimate());
    }
    let report = run_script(&json!({ "sketches": sketches }));
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 2 * cases.len());

    // Python's own sketches of the same ids, read back in Rust, give the same estimates.
    for (i, row) in results.iter().enumerate() {
        let image = STANDARD
            .decode(row["rebuilt_base64"].as_str().expect("rebuilt image"))
            .expect("base64");
        let (kind, rust) = if i % 2 == 0 {
            (
                "hll",
                DistinctSketch::deserialize(&image).unwrap().estimate(),
            )
        } else {
            ("theta", CompactSet::deserialize(&image).unwrap().estimate())
        };
        let expected = if i % 2 == 0 {
            rust_hll[i / 2]
        } else {
            rust_theta[i / 2]
        };
        assert_eq!(
            rust, expected,
            "{kind} image of {} from Python",
            row["name"]
        );
    }
    // The large cases really are in estimation mode, so the comparison is not trivially exact.
    assert_ne!(rust_hll[3], 50_000.0);
    assert_ne!(rust_theta[3], 50_000.0);
}

#[test]
fn python_datasketches_agrees_on_set_operations() {
    // P = users 0..50 000, C = users 30 000..80 000: 20 000 retained (40 % of P).
    let p = theta(&[(0, 50_000)]);
    let c = theta(&[(30_000, 80_000)]);
    let mut union = SetUnion::default();
    union.add(&p);
    union.add(&c);
    let o = sketch::overlap(&p, &c);
    assert_eq!(o.retained, sketch::intersection_estimate(&p, &c));
    assert_eq!(o.churned, sketch::a_not_b_estimate(&p, &c));

    let image = |name: &str, s: &CompactSet, compressed: bool| {
        let bytes = if compressed {
            s.serialize_compressed()
        } else {
            s.serialize()
        };
        json!({ "name": name, "kind": "theta", "base64": STANDARD.encode(bytes),
                "estimate": s.estimate() })
    };
    let request = json!({
        "sketches": [
            image("p", &p, false),
            image("c", &c, false),
            image("p_v4", &p, true),
            image("c_v4", &c, true),
            image("retained", &sketch::intersection(&p, &c), false),
            image("churned", &sketch::a_not_b(&p, &c), true),
        ],
        "set_ops": [
            { "name": "retained (python)", "op": "intersection", "inputs": ["p", "c"],
              "estimate": o.retained },
            { "name": "churned (python)", "op": "a_not_b", "inputs": ["p_v4", "c_v4"],
              "estimate": o.churned },
            { "name": "union (python)", "op": "union", "inputs": ["p", "c"],
              "estimate": union.result().estimate(), "lg_k": DEFAULT_LG_K },
            { "name": "new (python)", "op": "a_not_b", "inputs": ["c", "p"],
              "estimate": sketch::a_not_b_estimate(&c, &p) },
        ],
    });
    let report = run_script(&request);
    assert_eq!(report["results"].as_array().expect("results").len(), 10);
    assert!((o.retained / 20_000.0 - 1.0).abs() < 0.1, "{o:?}");
}

#[test]
fn script_command_line_checks_one_image() {
    let h = hll(&[(0, 1000)]);
    let out = Command::new(python())
        .arg(root().join("tests/e2e/sketch_interop.py"))
        .args([
            "hll",
            &STANDARD.encode(h.serialize()),
            &h.estimate().to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "run scripts/setup-test-deps if datasketches is missing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(printed, h.estimate());
    // And it notices a wrong expectation.
    let out = Command::new(python())
        .arg(root().join("tests/e2e/sketch_interop.py"))
        .args(["hll", &STANDARD.encode(h.serialize()), "1.0"])
        .output()
        .expect("python runs");
    assert_eq!(out.status.code(), Some(1));
}

/// Sketch-mode snapshots with `sketch.include_in_snapshots` carry the HLL image of their active
/// users: Python reads it and gets the estimate behind the snapshot's `active_users`, and a
/// union of the images of two segments counts their users once.
#[test]
fn python_datasketches_reads_the_images_in_sketch_mode_snapshots() {
    use std::borrow::Cow;

    use engauge_core::time::{DAY, HOUR};
    use engauge_core::{
        DistinctMode, Engine, EngineConfig, Event, EventKind, Replay, SegmentsConfig, WindowSpec,
    };

    let mut config = EngineConfig {
        windows: vec![WindowSpec::new("1d", DAY, DAY)],
        distinct: DistinctMode::Sketch,
        segments: SegmentsConfig {
            dimensions: vec!["plan".into()],
            sets: vec![vec![], vec!["plan".into()]],
            max_values: 20,
        },
        ..EngineConfig::default()
    };
    config.sketch.include_in_snapshots = true;
    let mut replay = Replay::new(Engine::new(config).expect("valid config"));
    let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut out = Vec::new();
    for i in 0..40_000u64 {
        let (id, user) = (format!("e{i}"), format!("user-{}", i % 30_000));
        let plan = if i % 2 == 0 { "free" } else { "pro" };
        let event = Event {
            id: Cow::Borrowed(&id),
            event_type: Cow::Borrowed("page_view"),
            user_id: Cow::Borrowed(&user),
            ts: start + (i as i64) * (DAY - HOUR) / 40_000,
            session_id: None,
            attrs: [(Cow::Borrowed("plan"), Cow::Borrowed(plan))]
                .into_iter()
                .collect(),
            kind: EventKind::Plain,
        };
        replay.push(&event, &mut out);
    }
    replay.advance_to(start + 2 * DAY, &mut out);
    assert_eq!(out.len(), 3, "{out:?}");
    let mut sketches = Vec::new();
    for s in &out {
        let image = s.active_users_sketch.as_ref().expect("an image");
        let sketch = DistinctSketch::deserialize(image).unwrap();
        assert_eq!(
            sketch.composite_estimate().round() as u64,
            s.kpis.active_users
        );
        let estimate = sketch.estimate();
        sketches.push(json!({
            "name": s.key(),
            "kind": "hll",
            "base64": STANDARD.encode(image),
            "estimate": estimate,
            "lg_k": DEFAULT_LG_K,
        }));
    }
    // Every user is in both plans (user-k has events with even and odd i): the union of the two
    // plan images is the all-users count, not their sum.
    let all = out[0].kpis.active_users as f64;
    assert!((all / 30_000.0 - 1.0).abs() < 3.0 * sketch::hll_rse(DEFAULT_LG_K));
    let image = |i: usize| {
        DistinctSketch::deserialize(out[i].active_users_sketch.as_ref().expect("an image"))
            .expect("valid image")
    };
    let union = DistinctSketch::union_of(DEFAULT_LG_K, [&image(1), &image(2)])
        .expect("lg_k")
        .estimate();
    let report = run_script(&json!({
        "sketches": sketches,
        "set_ops": [{
            "name": "plans_union",
            "op": "hll_union",
            "inputs": ["1d|plan=free", "1d|plan=pro"],
            "estimate": union,
        }],
    }));
    assert_eq!(report["results"].as_array().expect("results").len(), 4);
}
