//! What the engine emits when a window instance closes: one [`Snapshot`] per segment.

use crate::partial::Parts;
use crate::{Kpis, Millis};

/// The KPIs of one (window instance, segment).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The window's configured name, e.g. `30d`.
    pub window: String,
    /// Inclusive start of the covered event-time range.
    pub start: Millis,
    /// Exclusive end; the instance's identity.
    pub end: Millis,
    /// Segment dimensions and values, sorted by dimension; empty for all users.
    pub segment: Vec<(String, String)>,
    pub kpis: Kpis,
    /// Per feature with at least one user in the range, sorted by name.
    pub features: Vec<(FeatureName, FeatureKpis)>,
    /// The watermark that closed the instance.
    pub watermark: Millis,
    /// UTC offsets (seconds) of the time zone at `start` and at `end`, for calendar windows
    /// (outputs then show local times with their offsets); `None` for sliding windows (UTC).
    pub utc_offsets: Option<(i32, i32)>,
    /// Distinct-user counts are sketch estimates (`distinct = "sketch"`).
    pub approximate: bool,
    /// With `sketch.include_in_snapshots`: the DataSketches HLL image of the active users, for
    /// downstream merges.
    pub active_users_sketch: Option<Vec<u8>>,
    /// With `EngineConfig::partials` (scale-out): the mergeable parts behind the KPIs.
    pub parts: Option<Box<Parts>>,
    /// Scale-out, merged snapshots: whether every input partition's partial was in the merge
    /// (`false` after `completeness_timeout`); `None` (not written) on single-instance output.
    pub complete: Option<bool>,
}

/// A feature's name: shared by every snapshot and gauge that names the feature (one allocation
/// per feature, not one per snapshot).
pub type FeatureName = std::sync::Arc<str>;

/// Adoption of one feature within a snapshot's segment.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureKpis {
    /// Distinct users with `feature_used` of this feature.
    pub users: u64,
    /// `users / active_users`; absent when there are no active users.
    pub adoption_ratio: Option<f64>,
}

impl Snapshot {
    /// The sink-topic key: `<window>|<dim>=<value>,...`, dimensions sorted.
    pub fn key(&self) -> String {
        let mut key = Vec::with_capacity(self.window.len() + 1 + 16 * self.segment.len());
        self.write_key(&mut key);
        String::from_utf8(key).expect("built from strings")
    }

    /// Appends the sink-topic key (see [`Snapshot::key`]) to `out`.
    pub fn write_key(&self, out: &mut Vec<u8>) {
        out.extend(self.key_bytes());
    }

    /// The bytes of the sink-topic key, without building it: for comparisons in sort order.
    pub fn key_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let segment = self
            .segment
            .iter()
            .enumerate()
            .flat_map(|(i, (dim, value))| {
                let comma = (i > 0).then_some(b',');
                comma
                    .into_iter()
                    .chain(dim.bytes())
                    .chain(std::iter::once(b'='))
                    .chain(value.bytes())
            });
        self.window
            .bytes()
            .chain(std::iter::once(b'|'))
            .chain(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_format() {
        let mut snap = Snapshot {
            window: "30d".into(),
            start: 0,
            end: 1,
            segment: vec![],
            kpis: Kpis::default(),
            features: vec![],
            watermark: 1,
            utc_offsets: None,
            approximate: false,
            active_users_sketch: None,
            parts: None,
            complete: None,
        };
        assert_eq!(snap.key(), "30d|");
        snap.segment = vec![
            ("plan".into(), "pro".into()),
            ("platform".into(), "ios".into()),
        ];
        assert_eq!(snap.key(), "30d|plan=pro,platform=ios");
    }
}
