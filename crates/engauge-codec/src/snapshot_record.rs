//! Reading snapshot JSON back: an owned [`SnapshotRecord`] for tests and tools that compare
//! snapshots read from the sink topic or from `engauge replay` output.
//!
//! Object members keep their order (as `Vec`s of pairs) so a comparison also checks the order
//! the encoder promises. Unknown keys are ignored: later KPIs join `kpis` under new names.

use std::fmt;
use std::marker::PhantomData;

use engauge_core::{DurationStats, FeatureKpis, Kpis, Millis, Snapshot, SurveyCounts};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::rfc3339::parse_rfc3339;
use crate::snapshot_json::SNAPSHOT_SCHEMA;

/// One decoded `engauge.snapshot.v1` object.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SnapshotRecord {
    pub schema: String,
    pub window: String,
    #[serde(deserialize_with = "timestamp")]
    pub start: Millis,
    #[serde(deserialize_with = "timestamp")]
    pub end: Millis,
    /// The UTC offsets written with `start` and `end` (calendar windows), in seconds; `None`
    /// when they are in UTC with `Z`.
    #[serde(skip)]
    pub utc_offsets: Option<(i32, i32)>,
    #[serde(deserialize_with = "ordered")]
    pub segment: Vec<(String, String)>,
    /// `"sketch"` when distinct-user counts are sketch estimates; absent when exact.
    #[serde(default)]
    pub distinct: Option<String>,
    pub kpis: KpisRecord,
    #[serde(deserialize_with = "ordered")]
    pub features: Vec<(String, FeatureRecord)>,
    /// Base64 sketch images (`snapshot.include_sketches`).
    #[serde(default)]
    pub sketches: Option<SketchesRecord>,
    #[serde(deserialize_with = "ordered")]
    pub samples: Vec<(String, u64)>,
    /// Scale-out merged snapshots: whether every input partition was in the merge.
    #[serde(default)]
    pub complete: Option<bool>,
    #[serde(deserialize_with = "timestamp")]
    pub watermark: Millis,
    #[serde(deserialize_with = "timestamp")]
    pub emitted_at: Millis,
}

/// The `kpis` object; absent ratios, means, quantiles and margins are `None`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct KpisRecord {
    pub active_users: u64,
    pub events: u64,
    #[serde(default)]
    pub stickiness_ratio: Option<f64>,
    pub sessions: u64,
    #[serde(default)]
    pub sessions_per_user: Option<f64>,
    #[serde(default)]
    pub session_duration_seconds: Option<DurationRecord>,
    pub survey_responses: SurveyCountsRecord,
    #[serde(default)]
    pub nps: Option<f64>,
    #[serde(default)]
    pub nps_margin: Option<f64>,
    #[serde(default)]
    pub csat_ratio: Option<f64>,
    #[serde(default)]
    pub csat_margin: Option<f64>,
    #[serde(default)]
    pub ces_score: Option<f64>,
    // Lifecycle, revenue and support: absent in snapshots of engauge versions before them.
    #[serde(default)]
    pub retained_users: u64,
    /// Absent (with the other lifecycle counts) when the instance has no lifecycle KPIs.
    #[serde(default)]
    pub returning_users: Option<u64>,
    #[serde(default)]
    pub churned_users: u64,
    #[serde(default)]
    pub dormant_users: u64,
    #[serde(default)]
    pub new_users: u64,
    #[serde(default)]
    pub resurrected_users: u64,
    #[serde(default)]
    pub retention_ratio: Option<f64>,
    #[serde(default)]
    pub churn_ratio: Option<f64>,
    #[serde(default)]
    pub revenue: f64,
    #[serde(default)]
    pub orders: u64,
    #[serde(default)]
    pub aov: Option<f64>,
    #[serde(default)]
    pub paying_users: u64,
    #[serde(default)]
    pub arpu: Option<f64>,
    #[serde(default)]
    pub arppu: Option<f64>,
    #[serde(default)]
    pub conversion_ratio: Option<f64>,
    #[serde(default)]
    pub clv_estimate: Option<f64>,
    #[serde(default)]
    pub cancellations: u64,
    #[serde(default)]
    pub cancelled_users: u64,
    #[serde(default)]
    pub support_tickets: u64,
    #[serde(default)]
    pub self_service_resolutions: u64,
    #[serde(default)]
    pub self_service_ratio: Option<f64>,
    /// `n` → ratio, for the `n` whose ratio is present.
    #[serde(default, deserialize_with = "ordered")]
    pub n_day_retention_ratio: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SketchesRecord {
    /// DataSketches HLL image of the active users, base64 (standard alphabet, padded).
    pub active_users: String,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct DurationRecord {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct SurveyCountsRecord {
    pub nps: u64,
    pub csat: u64,
    pub ces: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct FeatureRecord {
    pub users: u64,
    #[serde(default)]
    pub adoption_ratio: Option<f64>,
}

/// A snapshot line that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotDecodeError {
    #[error("invalid snapshot json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown snapshot schema {0:?}, expected {SNAPSHOT_SCHEMA:?}")]
    UnknownSchema(String),
}

impl SnapshotRecord {
    /// Decodes one snapshot JSON object and checks its `schema`.
    pub fn from_json(bytes: &[u8]) -> Result<SnapshotRecord, SnapshotDecodeError> {
        let mut record: SnapshotRecord = serde_json::from_slice(bytes)?;
        record.utc_offsets = local_offsets(bytes);
        if record.schema != SNAPSHOT_SCHEMA {
            return Err(SnapshotDecodeError::UnknownSchema(record.schema));
        }
        Ok(record)
    }

    /// The core snapshot this record encodes (`emitted_at` and `samples` are not part of it).
    pub fn to_snapshot(&self) -> Snapshot {
        let k = &self.kpis;
        Snapshot {
            window: self.window.clone(),
            start: self.start,
            end: self.end,
            segment: self.segment.clone(),
            kpis: Kpis {
                active_users: k.active_users,
                events: k.events,
                stickiness_ratio: k.stickiness_ratio,
                sessions: k.sessions,
                sessions_per_user: k.sessions_per_user,
                session_duration: k.session_duration_seconds.map(|d| DurationStats {
                    p50: d.p50,
                    p90: d.p90,
                    p99: d.p99,
                    mean: d.mean,
                }),
                survey_responses: SurveyCounts {
                    nps: k.survey_responses.nps,
                    csat: k.survey_responses.csat,
                    ces: k.survey_responses.ces,
                },
                nps: k.nps,
                nps_margin: k.nps_margin,
                csat_ratio: k.csat_ratio,
                csat_margin: k.csat_margin,
                ces_score: k.ces_score,
                retained_users: k.retained_users,
                churned_users: k.churned_users,
                new_users: k.new_users,
                resurrected_users: k.resurrected_users,
                retention_ratio: k.retention_ratio,
                churn_ratio: k.churn_ratio,
                revenue: k.revenue,
                orders: k.orders,
                aov: k.aov,
                paying_users: k.paying_users,
                arpu: k.arpu,
                arppu: k.arppu,
                conversion_ratio: k.conversion_ratio,
                clv_estimate: k.clv_estimate,
                cancellations: k.cancellations,
                cancelled_users: k.cancelled_users,
                support_tickets: k.support_tickets,
                self_service_resolutions: k.self_service_resolutions,
                self_service_ratio: k.self_service_ratio,
                n_day_retention: k
                    .n_day_retention_ratio
                    .iter()
                    .filter_map(|(n, r)| Some((n.parse().ok()?, Some(*r))))
                    .collect(),
                lifecycle_skipped: k.returning_users.is_none(),
            },
            features: self
                .features
                .iter()
                .map(|(name, f)| {
                    (
                        name.as_str().into(),
                        FeatureKpis {
                            users: f.users,
                            adoption_ratio: f.adoption_ratio,
                        },
                    )
                })
                .collect(),
            watermark: self.watermark,
            utc_offsets: self.utc_offsets,
            approximate: self.distinct.as_deref() == Some("sketch"),
            active_users_sketch: self.sketches.as_ref().and_then(|s| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(&s.active_users)
                    .ok()
            }),
            parts: None,
            complete: self.complete,
        }
    }

    /// The sample size recorded for `kpi`, if any.
    pub fn sample(&self, kpi: &str) -> Option<u64> {
        self.samples.iter().find(|(k, _)| k == kpi).map(|(_, n)| *n)
    }
}

/// The offsets of `start` and `end` when both are written with a numeric offset.
fn local_offsets(bytes: &[u8]) -> Option<(i32, i32)> {
    #[derive(serde::Deserialize)]
    struct Times<'a> {
        #[serde(borrow)]
        start: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        end: std::borrow::Cow<'a, str>,
    }
    let times: Times<'_> = serde_json::from_slice(bytes).ok()?;
    Some((offset_of(&times.start)?, offset_of(&times.end)?))
}

/// `+HH:MM` / `-HH:MM` at the end of an RFC 3339 time, in seconds (`None` for `Z`).
fn offset_of(text: &str) -> Option<i32> {
    let tail = text.get(text.len().checked_sub(6)?..)?.as_bytes();
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| i32::from(b - b'0'));
    let (h, m) = (
        digit(tail[1])? * 10 + digit(tail[2])?,
        digit(tail[4])? * 10 + digit(tail[5])?,
    );
    (tail[3] == b':').then_some(sign * (h * 3600 + m * 60))
}

fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Millis, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_rfc3339(&text).ok_or_else(|| de::Error::custom("expected an rfc 3339 timestamp"))
}

/// A JSON object as its members in order.
fn ordered<'de, D, V>(deserializer: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Members<V>(PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for Members<V> {
        type Value = Vec<(String, V)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some(member) = map.next_entry()? {
                members.push(member);
            }
            Ok(members)
        }
    }

    deserializer.deserialize_map(Members(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_snapshot;

    const END: Millis = 1_795_348_800_000;

    fn sample_snapshot() -> Snapshot {
        Snapshot {
            window: "7d".into(),
            start: END - 7 * engauge_core::time::DAY,
            end: END,
            segment: vec![
                ("plan".into(), "pro".into()),
                ("region".into(), "e\"u".into()),
            ],
            kpis: Kpis {
                active_users: 10,
                events: 200,
                stickiness_ratio: None,
                sessions: 30,
                sessions_per_user: Some(3.0),
                session_duration: Some(DurationStats {
                    p50: 0.0,
                    p90: 120.25,
                    p99: 1e-7,
                    mean: 1.0 / 3.0,
                }),
                survey_responses: SurveyCounts {
                    nps: 7,
                    csat: 0,
                    ces: 1,
                },
                nps: Some(-100.0 / 7.0),
                nps_margin: Some(0.1 + 0.2),
                csat_ratio: None,
                csat_margin: None,
                ces_score: Some(7.0),
                ..Kpis::default()
            },
            features: vec![
                (
                    "b".into(),
                    FeatureKpis {
                        users: 2,
                        adoption_ratio: Some(0.2),
                    },
                ),
                (
                    "a".into(),
                    FeatureKpis {
                        users: 0,
                        adoption_ratio: None,
                    },
                ),
            ],
            watermark: END + 1,
            utc_offsets: None,
            approximate: false,
            active_users_sketch: None,
            parts: None,
            complete: None,
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let snap = sample_snapshot();
        let mut out = Vec::new();
        encode_snapshot(&snap, END + 2_500, &mut out);
        let record = SnapshotRecord::from_json(&out).expect("decodes");
        assert_eq!(record.to_snapshot(), snap);
        assert_eq!(record.schema, SNAPSHOT_SCHEMA);
        assert_eq!(record.emitted_at, END + 2_500);
        assert_eq!(record.sample("nps"), Some(7));
        assert_eq!(record.sample("session_duration_seconds"), Some(30));
        assert_eq!(record.sample("csat_ratio"), None);
        assert_eq!(
            record
                .samples
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            [
                "sessions_per_user",
                "session_duration_seconds",
                "nps",
                "nps_margin",
                "ces_score"
            ]
        );
    }

    #[test]
    fn refuses_other_schemas() {
        let mut out = Vec::new();
        encode_snapshot(&sample_snapshot(), END, &mut out);
        let text = String::from_utf8(out)
            .expect("utf-8")
            .replace("engauge.snapshot.v1", "engauge.snapshot.v9");
        assert!(matches!(
            SnapshotRecord::from_json(text.as_bytes()),
            Err(SnapshotDecodeError::UnknownSchema(s)) if s == "engauge.snapshot.v9"
        ));
        assert!(matches!(
            SnapshotRecord::from_json(b"{}"),
            Err(SnapshotDecodeError::Json(_))
        ));
    }
}
