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
    #[serde(deserialize_with = "ordered")]
    pub segment: Vec<(String, String)>,
    pub kpis: KpisRecord,
    #[serde(deserialize_with = "ordered")]
    pub features: Vec<(String, FeatureRecord)>,
    #[serde(deserialize_with = "ordered")]
    pub samples: Vec<(String, u64)>,
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
        let record: SnapshotRecord = serde_json::from_slice(bytes)?;
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
            },
            features: self
                .features
                .iter()
                .map(|(name, f)| {
                    (
                        name.clone(),
                        FeatureKpis {
                            users: f.users,
                            adoption_ratio: f.adoption_ratio,
                        },
                    )
                })
                .collect(),
            watermark: self.watermark,
        }
    }

    /// The sample size recorded for `kpi`, if any.
    pub fn sample(&self, kpi: &str) -> Option<u64> {
        self.samples.iter().find(|(k, _)| k == kpi).map(|(_, n)| *n)
    }
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
