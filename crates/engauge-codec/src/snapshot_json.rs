//! Snapshot encoding: one [`engauge_core::Snapshot`] as the `engauge.snapshot.v1` JSON object of
//! SPEC §5, the value of a sink-topic message and of one `engauge replay` output line.
//!
//! The writer is hand-rolled (rather than `#[derive(Serialize)]` on mirror structs) because the
//! key order is part of the format and absent values must vanish rather than become `null`.
//! A non-finite float is treated as absent: JSON cannot carry it and the spec forbids NaN/inf.

use engauge_core::time::format_rfc3339;
use engauge_core::{Millis, Snapshot};
use serde::Serialize;

/// The value of the `schema` key.
pub const SNAPSHOT_SCHEMA: &str = "engauge.snapshot.v1";

/// The sink-topic key of a snapshot: `<window>|<dim>=<value>,...`.
pub fn snapshot_key(snap: &Snapshot) -> String {
    snap.key()
}

/// Appends the JSON encoding of `snap` to `out` (no trailing newline). `emitted_at` is the wall
/// clock at publication, passed in because the codec never reads a clock.
pub fn encode_snapshot(snap: &Snapshot, emitted_at: Millis, out: &mut Vec<u8>) {
    let k = &snap.kpis;
    let mut top = Object::open(out);
    top.str("schema", SNAPSHOT_SCHEMA);
    top.str("window", &snap.window);
    top.str("start", &format_rfc3339(snap.start));
    top.str("end", &format_rfc3339(snap.end));
    {
        let mut segment = top.object("segment");
        for (dim, value) in &snap.segment {
            segment.str(dim, value);
        }
        segment.close();
    }

    let stickiness = finite(k.stickiness_ratio);
    let sessions_per_user = finite(k.sessions_per_user);
    let duration = k.session_duration.map(|d| {
        [
            ("p50", finite(Some(d.p50))),
            ("p90", finite(Some(d.p90))),
            ("p99", finite(Some(d.p99))),
            ("mean", finite(Some(d.mean))),
        ]
    });
    let duration = duration.filter(|fields| fields.iter().any(|(_, v)| v.is_some()));
    let nps = finite(k.nps);
    let nps_margin = finite(k.nps_margin);
    let csat_ratio = finite(k.csat_ratio);
    let csat_margin = finite(k.csat_margin);
    let ces_score = finite(k.ces_score);
    {
        let mut kpis = top.object("kpis");
        kpis.uint("active_users", k.active_users);
        kpis.uint("events", k.events);
        kpis.opt_float("stickiness_ratio", stickiness);
        kpis.uint("sessions", k.sessions);
        kpis.opt_float("sessions_per_user", sessions_per_user);
        if let Some(fields) = &duration {
            let mut d = kpis.object("session_duration_seconds");
            for (name, value) in fields {
                d.opt_float(name, *value);
            }
            d.close();
        }
        {
            let mut surveys = kpis.object("survey_responses");
            surveys.uint("nps", k.survey_responses.nps);
            surveys.uint("csat", k.survey_responses.csat);
            surveys.uint("ces", k.survey_responses.ces);
            surveys.close();
        }
        kpis.opt_float("nps", nps);
        kpis.opt_float("nps_margin", nps_margin);
        kpis.opt_float("csat_ratio", csat_ratio);
        kpis.opt_float("csat_margin", csat_margin);
        kpis.opt_float("ces_score", ces_score);
        kpis.close();
    }
    {
        let mut features = top.object("features");
        for (name, f) in &snap.features {
            let mut feature = features.object(name);
            feature.uint("users", f.users);
            feature.opt_float("adoption_ratio", finite(f.adoption_ratio));
            feature.close();
        }
        features.close();
    }
    {
        // The sample size behind each derived KPI that is present, in `kpis` order.
        let mut samples = top.object("samples");
        let surveys = k.survey_responses;
        for (name, present, n) in [
            ("stickiness_ratio", stickiness.is_some(), k.active_users),
            (
                "sessions_per_user",
                sessions_per_user.is_some(),
                k.active_users,
            ),
            ("session_duration_seconds", duration.is_some(), k.sessions),
            ("nps", nps.is_some(), surveys.nps),
            ("nps_margin", nps_margin.is_some(), surveys.nps),
            ("csat_ratio", csat_ratio.is_some(), surveys.csat),
            ("csat_margin", csat_margin.is_some(), surveys.csat),
            ("ces_score", ces_score.is_some(), surveys.ces),
        ] {
            if present {
                samples.uint(name, n);
            }
        }
        samples.close();
    }
    top.str("watermark", &format_rfc3339(snap.watermark));
    top.str("emitted_at", &format_rfc3339(emitted_at));
    top.close();
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

/// Writes one JSON object's members, comma-separated, into a byte buffer.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        scalar(self.out, key);
        self.out.push(b':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        scalar(self.out, value);
    }

    fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        scalar(self.out, &value);
    }

    /// Writes the member only when the value is present (callers pass finite values only).
    fn opt_float(&mut self, key: &str, value: Option<f64>) {
        if let Some(value) = value {
            self.key(key);
            scalar(self.out, &value);
        }
    }

    /// Starts a nested object; close it before writing to `self` again.
    fn object(&mut self, key: &str) -> Object<'_> {
        self.key(key);
        Object::open(self.out)
    }
}

/// serde_json escapes strings per RFC 8259 and prints floats in shortest round-trip form.
fn scalar<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value)
        .expect("a string, integer or finite float always serializes into a Vec");
}

#[cfg(test)]
mod tests {
    use super::*;
    use engauge_core::{DurationStats, FeatureKpis, Kpis, SurveyCounts};

    fn encode(snap: &Snapshot, emitted_at: Millis) -> String {
        let mut out = Vec::new();
        encode_snapshot(snap, emitted_at, &mut out);
        String::from_utf8(out).expect("json is utf-8")
    }

    const END: Millis = 1_795_348_800_000; // 2026-11-22T12:00:00Z
    const DAY: Millis = engauge_core::time::DAY;

    /// The example of SPEC §5.
    fn spec_example() -> Snapshot {
        Snapshot {
            window: "30d".into(),
            start: END - 30 * DAY,
            end: END,
            segment: vec![("plan".into(), "pro".into())],
            kpis: Kpis {
                active_users: 1520,
                events: 98211,
                stickiness_ratio: Some(0.21),
                sessions: 8800,
                sessions_per_user: Some(5.79),
                session_duration: Some(DurationStats {
                    p50: 312.0,
                    p90: 1500.5,
                    p99: 5400.0,
                    mean: 601.2,
                }),
                survey_responses: SurveyCounts {
                    nps: 210,
                    csat: 95,
                    ces: 40,
                },
                nps: Some(41.5),
                nps_margin: Some(6.2),
                csat_ratio: Some(0.84),
                csat_margin: Some(0.07),
                ces_score: Some(5.6),
            },
            features: vec![(
                "export_pdf".into(),
                FeatureKpis {
                    users: 312,
                    adoption_ratio: Some(0.205),
                },
            )],
            watermark: END + 3_000,
        }
    }

    #[test]
    fn golden_spec_example() {
        let expected = concat!(
            r#"{"schema":"engauge.snapshot.v1","window":"30d","#,
            r#""start":"2026-10-23T12:00:00Z","end":"2026-11-22T12:00:00Z","#,
            r#""segment":{"plan":"pro"},"#,
            r#""kpis":{"active_users":1520,"events":98211,"stickiness_ratio":0.21,"#,
            r#""sessions":8800,"sessions_per_user":5.79,"#,
            r#""session_duration_seconds":{"p50":312.0,"p90":1500.5,"p99":5400.0,"mean":601.2},"#,
            r#""survey_responses":{"nps":210,"csat":95,"ces":40},"#,
            r#""nps":41.5,"nps_margin":6.2,"csat_ratio":0.84,"csat_margin":0.07,"ces_score":5.6},"#,
            r#""features":{"export_pdf":{"users":312,"adoption_ratio":0.205}},"#,
            r#""samples":{"stickiness_ratio":1520,"sessions_per_user":1520,"#,
            r#""session_duration_seconds":8800,"nps":210,"nps_margin":210,"#,
            r#""csat_ratio":95,"csat_margin":95,"ces_score":40},"#,
            r#""watermark":"2026-11-22T12:00:03Z","emitted_at":"2026-11-22T12:00:03.120Z"}"#,
        );
        assert_eq!(encode(&spec_example(), END + 3_120), expected);
    }

    #[test]
    fn absent_values_are_omitted() {
        let snap = Snapshot {
            window: "1h".into(),
            start: END - 3_600_000,
            end: END,
            segment: vec![],
            kpis: Kpis {
                events: 3,
                survey_responses: SurveyCounts {
                    nps: 0,
                    csat: 2,
                    ces: 0,
                },
                csat_ratio: Some(1.0),
                csat_margin: Some(0.0),
                ..Kpis::default()
            },
            features: vec![(
                "f".into(),
                FeatureKpis {
                    users: 1,
                    adoption_ratio: None,
                },
            )],
            watermark: END,
        };
        let expected = concat!(
            r#"{"schema":"engauge.snapshot.v1","window":"1h","#,
            r#""start":"2026-11-22T11:00:00Z","end":"2026-11-22T12:00:00Z","segment":{},"#,
            r#""kpis":{"active_users":0,"events":3,"sessions":0,"#,
            r#""survey_responses":{"nps":0,"csat":2,"ces":0},"csat_ratio":1.0,"csat_margin":0.0},"#,
            r#""features":{"f":{"users":1}},"samples":{"csat_ratio":2,"csat_margin":2},"#,
            r#""watermark":"2026-11-22T12:00:00Z","emitted_at":"2026-11-22T12:00:00Z"}"#,
        );
        assert_eq!(encode(&snap, END), expected);
    }

    #[test]
    fn non_finite_floats_are_absent() {
        let mut snap = spec_example();
        snap.kpis.nps = Some(f64::NAN);
        snap.kpis.ces_score = Some(f64::INFINITY);
        snap.kpis.session_duration = Some(DurationStats {
            p50: f64::NAN,
            p90: f64::NAN,
            p99: f64::NEG_INFINITY,
            mean: f64::NAN,
        });
        snap.features[0].1.adoption_ratio = Some(f64::NAN);
        let text = encode(&snap, END);
        for gone in [
            "\"nps\":41",
            "ces_score",
            "session_duration_seconds",
            "adoption_ratio",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(!text.contains("null") && !text.contains("NaN") && !text.contains("inf"));
        assert!(text.contains("\"nps_margin\":6.2"));
        assert!(text.contains(
            "\"samples\":{\"stickiness_ratio\":1520,\"sessions_per_user\":1520,\"nps_margin\":210,"
        ));
        serde_json::from_str::<serde_json::Value>(&text).expect("valid json");
    }

    #[test]
    fn strings_are_escaped() {
        let mut snap = spec_example();
        snap.window = "w\"1".into();
        snap.segment = vec![("plan".into(), "a\\b\n\u{1}é".into())];
        snap.features[0].0 = "quote\"d".into();
        let text = encode(&snap, END);
        assert!(text.contains(r#""window":"w\"1""#));
        assert!(text.contains(r#""segment":{"plan":"a\\b\n\u0001é"}"#));
        assert!(text.contains(r#""features":{"quote\"d":"#));
        serde_json::from_str::<serde_json::Value>(&text).expect("valid json");
    }

    #[test]
    fn appends_to_the_buffer() {
        let mut out = b"x".to_vec();
        encode_snapshot(&spec_example(), END, &mut out);
        assert!(out.starts_with(b"x{\"schema\""));
        assert!(out.ends_with(b"Z\"}"));
    }

    #[test]
    fn key_is_the_core_key() {
        assert_eq!(snapshot_key(&spec_example()), "30d|plan=pro");
    }
}
