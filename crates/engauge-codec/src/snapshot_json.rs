//! Snapshot encoding: one [`engauge_core::Snapshot`] as the `engauge.snapshot.v1` JSON object of
//! SPEC §5, the value of a sink-topic message and of one `engauge replay` output line.
//!
//! The writer is hand-rolled (rather than `#[derive(Serialize)]` on mirror structs) because the
//! key order is part of the format and absent values must vanish rather than become `null`.
//! A non-finite float is treated as absent: JSON cannot carry it and the spec forbids NaN/inf.

use engauge_core::time::rfc3339_bytes;
use engauge_core::{Millis, Snapshot};

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
    match snap.utc_offsets {
        Some((at_start, at_end)) => {
            top.local_time("start", snap.start, at_start);
            top.local_time("end", snap.end, at_end);
        }
        None => {
            top.time("start", snap.start);
            top.time("end", snap.end);
        }
    }
    {
        let mut segment = top.object("segment");
        for (dim, value) in &snap.segment {
            segment.data_key(dim);
            string(segment.out, value);
        }
        segment.close();
    }
    if snap.approximate {
        top.str("distinct", "sketch");
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
    let retention_ratio = finite(k.retention_ratio);
    let churn_ratio = finite(k.churn_ratio);
    let aov = finite(k.aov);
    let arpu = finite(k.arpu);
    let arppu = finite(k.arppu);
    let conversion_ratio = finite(k.conversion_ratio);
    let clv_estimate = finite(k.clv_estimate);
    let self_service_ratio = finite(k.self_service_ratio);
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
        if !k.lifecycle_skipped {
            kpis.uint("retained_users", k.retained_users);
            kpis.uint("returning_users", k.retained_users);
            kpis.uint("churned_users", k.churned_users);
            kpis.uint("dormant_users", k.churned_users);
            kpis.uint("new_users", k.new_users);
            kpis.uint("resurrected_users", k.resurrected_users);
        }
        kpis.opt_float("retention_ratio", retention_ratio);
        kpis.opt_float("churn_ratio", churn_ratio);
        kpis.opt_float("revenue", finite(Some(k.revenue)));
        kpis.uint("orders", k.orders);
        kpis.opt_float("aov", aov);
        kpis.uint("paying_users", k.paying_users);
        kpis.opt_float("arpu", arpu);
        kpis.opt_float("arppu", arppu);
        kpis.opt_float("conversion_ratio", conversion_ratio);
        kpis.opt_float("clv_estimate", clv_estimate);
        kpis.uint("cancellations", k.cancellations);
        kpis.uint("cancelled_users", k.cancelled_users);
        kpis.uint("support_tickets", k.support_tickets);
        kpis.uint("self_service_resolutions", k.self_service_resolutions);
        kpis.opt_float("self_service_ratio", self_service_ratio);
        let n_day: Vec<(u32, f64)> = k
            .n_day_retention
            .iter()
            .filter_map(|&(n, r)| Some((n, finite(r)?)))
            .collect();
        if !n_day.is_empty() {
            let mut o = kpis.object("n_day_retention_ratio");
            for (n, r) in n_day {
                o.data_key(&n.to_string());
                serde_json::to_writer(&mut *o.out, &r).expect("a finite float serializes");
            }
            o.close();
        }
        kpis.close();
    }
    {
        let mut features = top.object("features");
        for (name, f) in &snap.features {
            features.data_key(name);
            let mut feature = Object::open(features.out);
            feature.uint("users", f.users);
            feature.opt_float("adoption_ratio", finite(f.adoption_ratio));
            feature.close();
        }
        features.close();
    }
    if let Some(image) = &snap.active_users_sketch {
        use base64::Engine as _;
        let mut sketches = top.object("sketches");
        sketches.str(
            "active_users",
            &base64::engine::general_purpose::STANDARD.encode(image),
        );
        sketches.close();
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
            (
                "retention_ratio",
                retention_ratio.is_some(),
                k.retained_users + k.churned_users,
            ),
            (
                "churn_ratio",
                churn_ratio.is_some(),
                k.retained_users + k.churned_users,
            ),
            ("aov", aov.is_some(), k.orders),
            ("arpu", arpu.is_some(), k.active_users),
            ("arppu", arppu.is_some(), k.paying_users),
            (
                "conversion_ratio",
                conversion_ratio.is_some(),
                k.active_users,
            ),
            ("clv_estimate", clv_estimate.is_some(), k.active_users),
            (
                "self_service_ratio",
                self_service_ratio.is_some(),
                k.support_tickets + k.self_service_resolutions,
            ),
        ] {
            if present {
                samples.uint(name, n);
            }
        }
        samples.close();
    }
    if let Some(complete) = snap.complete {
        top.key("complete");
        top.out
            .extend_from_slice(if complete { b"true" } else { b"false" });
    }
    top.time("watermark", snap.watermark);
    top.time("emitted_at", emitted_at);
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

    /// Keys are this module's own ASCII names, which need no escaping, or data, which goes
    /// through [`Object::data_key`].
    fn key(&mut self, key: &str) {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A key that comes from data (a dimension or feature name): escaped as needed.
    fn data_key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        string(self.out, key);
        self.out.push(b':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    fn time(&mut self, key: &str, value: Millis) {
        self.key(key);
        let mut buf = [0u8; 24];
        let n = rfc3339_bytes(value, &mut buf);
        self.out.push(b'"');
        self.out.extend_from_slice(&buf[..n]);
        self.out.push(b'"');
    }

    /// Local time at UTC offset `offset` (seconds) with the offset, e.g.
    /// `2026-03-29T00:00:00+01:00`.
    fn local_time(&mut self, key: &str, value: Millis, offset: i32) {
        // Every zone offset in use since 2000 is whole minutes.
        debug_assert_eq!(offset % 60, 0);
        self.key(key);
        let mut buf = [0u8; 24];
        let n = rfc3339_bytes(value + i64::from(offset) * 1000, &mut buf);
        self.out.push(b'"');
        self.out.extend_from_slice(&buf[..n - 1]); // without the `Z`
        let abs = offset.unsigned_abs() / 60;
        let (h, m) = ((abs / 60) as u8, (abs % 60) as u8);
        self.out.push(if offset < 0 { b'-' } else { b'+' });
        self.out.extend_from_slice(&[
            b'0' + h / 10,
            b'0' + h % 10,
            b':',
            b'0' + m / 10,
            b'0' + m % 10,
        ]);
        self.out.push(b'"');
    }

    fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        let mut v = value;
        loop {
            at -= 1;
            buf[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&buf[at..]);
    }

    /// Writes the member only when the value is present (callers pass finite values only).
    fn opt_float(&mut self, key: &str, value: Option<f64>) {
        if let Some(value) = value {
            self.key(key);
            // serde_json prints floats in shortest round-trip form.
            serde_json::to_writer(&mut *self.out, &value)
                .expect("a finite float always serializes into a Vec");
        }
    }

    /// Starts a nested object; close it before writing to `self` again.
    fn object(&mut self, key: &str) -> Object<'_> {
        self.key(key);
        Object::open(self.out)
    }
}

const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A JSON string. Most strings need no escaping and are copied as they are; the others are
/// escaped per RFC 8259 by serde_json.
fn string(out: &mut Vec<u8>, value: &str) {
    if !value.bytes().any(needs_escape) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, value).expect("a string always serializes into a Vec");
    }
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
                ..Kpis::default()
            },
            features: vec![(
                "export_pdf".into(),
                FeatureKpis {
                    users: 312,
                    adoption_ratio: Some(0.205),
                },
            )],
            watermark: END + 3_000,
            utc_offsets: None,
            approximate: false,
            active_users_sketch: None,
            parts: None,
            complete: None,
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
            r#""nps":41.5,"nps_margin":6.2,"csat_ratio":0.84,"csat_margin":0.07,"ces_score":5.6,"#,
            r#""retained_users":0,"returning_users":0,"churned_users":0,"dormant_users":0,"#,
            r#""new_users":0,"resurrected_users":0,"revenue":0.0,"orders":0,"paying_users":0,"#,
            r#""cancellations":0,"cancelled_users":0,"support_tickets":0,"#,
            r#""self_service_resolutions":0},"#,
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
            utc_offsets: None,
            approximate: false,
            active_users_sketch: None,
            parts: None,
            complete: None,
        };
        let expected = concat!(
            r#"{"schema":"engauge.snapshot.v1","window":"1h","#,
            r#""start":"2026-11-22T11:00:00Z","end":"2026-11-22T12:00:00Z","segment":{},"#,
            r#""kpis":{"active_users":0,"events":3,"sessions":0,"#,
            r#""survey_responses":{"nps":0,"csat":2,"ces":0},"csat_ratio":1.0,"csat_margin":0.0,"#,
            r#""retained_users":0,"returning_users":0,"churned_users":0,"dormant_users":0,"#,
            r#""new_users":0,"resurrected_users":0,"revenue":0.0,"orders":0,"paying_users":0,"#,
            r#""cancellations":0,"cancelled_users":0,"support_tickets":0,"#,
            r#""self_service_resolutions":0},"#,
            r#""features":{"f":{"users":1}},"samples":{"csat_ratio":2,"csat_margin":2},"#,
            r#""watermark":"2026-11-22T12:00:00Z","emitted_at":"2026-11-22T12:00:00Z"}"#,
        );
        assert_eq!(encode(&snap, END), expected);
    }

    #[test]
    fn lifecycle_revenue_and_support() {
        let mut snap = spec_example();
        snap.kpis = Kpis {
            active_users: 10,
            events: 40,
            retained_users: 4,
            churned_users: 1,
            new_users: 3,
            resurrected_users: 3,
            retention_ratio: Some(0.8),
            churn_ratio: Some(0.2),
            revenue: -2.5,
            orders: 2,
            aov: Some(5.0),
            paying_users: 2,
            arpu: Some(-0.25),
            arppu: Some(-1.25),
            conversion_ratio: Some(0.2),
            clv_estimate: Some(-1.25),
            cancellations: 3,
            cancelled_users: 2,
            support_tickets: 1,
            self_service_resolutions: 3,
            self_service_ratio: Some(0.75),
            ..Kpis::default()
        };
        let text = encode(&snap, END);
        assert!(
            text.contains(concat!(
                r#""survey_responses":{"nps":0,"csat":0,"ces":0},"#,
                r#""retained_users":4,"returning_users":4,"churned_users":1,"dormant_users":1,"#,
                r#""new_users":3,"resurrected_users":3,"retention_ratio":0.8,"churn_ratio":0.2,"#,
                r#""revenue":-2.5,"orders":2,"aov":5.0,"paying_users":2,"arpu":-0.25,"#,
                r#""arppu":-1.25,"conversion_ratio":0.2,"clv_estimate":-1.25,"#,
                r#""cancellations":3,"cancelled_users":2,"support_tickets":1,"#,
                r#""self_service_resolutions":3,"self_service_ratio":0.75},"#,
            )),
            "{text}"
        );
        assert!(
            text.contains(concat!(
                r#""retention_ratio":5,"churn_ratio":5,"aov":2,"arpu":10,"arppu":2,"#,
                r#""conversion_ratio":10,"clv_estimate":10,"self_service_ratio":4}"#,
            )),
            "{text}"
        );
        let back = crate::SnapshotRecord::from_json(text.as_bytes()).expect("reads back");
        assert_eq!(back.to_snapshot().kpis, snap.kpis);
        assert_eq!(back.kpis.returning_users, Some(4));
        assert_eq!(back.kpis.dormant_users, 1);
    }

    #[test]
    fn calendar_instances_show_local_times_with_offsets() {
        let mut snap = spec_example();
        snap.start = 1_774_652_400_000 + 86_400_000; // 2026-03-28T23:00:00Z
        snap.end = snap.start + 23 * 3_600_000;
        snap.utc_offsets = Some((3600, 7200));
        let text = encode(&snap, END);
        assert!(
            text.contains(
                r#""start":"2026-03-29T00:00:00+01:00","end":"2026-03-30T00:00:00+02:00""#
            ),
            "{text}"
        );
        let back = crate::SnapshotRecord::from_json(text.as_bytes()).expect("reads back");
        assert_eq!(back.start, snap.start);
        assert_eq!(back.to_snapshot().utc_offsets, Some((3600, 7200)));
        snap.utc_offsets = Some((-34_200, 0)); // -09:30 and UTC
        let text = encode(&snap, END);
        assert!(
            text.contains(r#""start":"2026-03-28T13:30:00-09:30""#),
            "{text}"
        );
        assert!(
            text.contains(r#""end":"2026-03-29T22:00:00+00:00""#),
            "{text}"
        );
        let back = crate::SnapshotRecord::from_json(text.as_bytes()).expect("reads back");
        assert_eq!(back.to_snapshot().utc_offsets, Some((-34_200, 0)));
        assert_eq!(back.end, snap.end);
    }

    #[test]
    fn sketch_mode_snapshots_say_so_and_can_carry_the_image() {
        let mut snap = spec_example();
        snap.approximate = true;
        snap.kpis.lifecycle_skipped = true;
        snap.active_users_sketch = Some(vec![2, 1, 7, 12, 0, 255]);
        let text = encode(&snap, END);
        assert!(text.contains(r#"},"distinct":"sketch","kpis":{"#), "{text}");
        assert!(
            text.contains(r#"},"sketches":{"active_users":"AgEHDAD/"},"samples":"#),
            "{text}"
        );
        for absent in [
            "retained_users",
            "returning_users",
            "churned_users",
            "new_users",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        let back = crate::SnapshotRecord::from_json(text.as_bytes()).expect("reads back");
        let again = back.to_snapshot();
        assert!(again.approximate && again.kpis.lifecycle_skipped);
        assert_eq!(again.active_users_sketch, snap.active_users_sketch);
        // Exact snapshots carry neither.
        let text = encode(&spec_example(), END);
        assert!(
            !text.contains("distinct") && !text.contains("sketches"),
            "{text}"
        );
        let again = crate::SnapshotRecord::from_json(text.as_bytes())
            .expect("reads back")
            .to_snapshot();
        assert!(!again.approximate && !again.kpis.lifecycle_skipped);
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

    proptest::proptest! {
        /// Whatever the strings, the output is JSON that reads back to the same strings and
        /// timestamps (the fast path copies strings that need no escaping).
        #[test]
        fn any_strings_round_trip(
            window in "\\PC{0,12}",
            dim in "\\PC{0,8}",
            value in proptest::string::string_regex("[\\x00-\\x7f\"\\\\é]{0,12}").expect("regex"),
            feature in "\\PC{0,10}",
            end in 946_684_800_000i64..4_102_444_800_000,
        ) {
            let mut snap = spec_example();
            snap.window = window.clone();
            snap.end = end;
            snap.segment = vec![(dim.clone(), value.clone())];
            snap.features[0].0 = feature.as_str().into();
            let text = encode(&snap, end + 1);
            let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
            proptest::prop_assert_eq!(v["window"].as_str(), Some(window.as_str()));
            proptest::prop_assert_eq!(v["segment"][&dim].as_str(), Some(value.as_str()));
            proptest::prop_assert!(v["features"].get(&feature).is_some());
            proptest::prop_assert_eq!(
                v["end"].as_str().map(crate::parse_rfc3339),
                Some(Some(end))
            );
            proptest::prop_assert_eq!(
                v["emitted_at"].as_str().map(crate::parse_rfc3339),
                Some(Some(end + 1))
            );
        }
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
