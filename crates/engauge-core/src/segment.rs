//! Segments: allowlisted dimensions, group-by sets, and the per-dimension value cap.
//!
//! Each dimension gives the first `max_values` distinct values it sees an id of their own; later
//! values share `__other__`. Each (set, value combination) gets a dense segment id; id 0 is the
//! all-users segment.

use hashbrown::HashMap;

use crate::{Event, SegmentsConfig};

/// The value a dimension takes once it has `max_values` distinct values.
pub const OTHER_VALUE: &str = "__other__";
/// The value of a dimension the event does not carry.
pub const NONE_VALUE: &str = "__none__";

const NONE_ID: u16 = 0;
const OTHER_ID: u16 = 1;

/// Interns strings up to a cap; the rest map to `__other__`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CappedValues {
    ids: HashMap<Box<str>, u16>,
    /// Index = id; 0 and 1 are `__none__` and `__other__`.
    names: Vec<std::sync::Arc<str>>,
    max_values: usize,
    allowlist: Option<Vec<String>>,
    pub overflow: u64,
}

impl CappedValues {
    pub fn new(max_values: usize, allowlist: Option<Vec<String>>) -> Self {
        CappedValues {
            ids: HashMap::new(),
            names: vec![NONE_VALUE.into(), OTHER_VALUE.into()],
            max_values,
            allowlist,
            overflow: 0,
        }
    }

    /// The id of `value`, registering it while there is room.
    pub fn id(&mut self, value: &str) -> u16 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let allowed = self
            .allowlist
            .as_ref()
            .is_none_or(|list| list.iter().any(|v| v == value));
        if !allowed || self.ids.len() >= self.max_values {
            self.overflow += 1;
            return OTHER_ID;
        }
        let id = self.names.len() as u16;
        self.names.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    pub fn name(&self, id: u16) -> &str {
        &self.names[usize::from(id)]
    }

    /// [`CappedValues::name`], shared.
    pub fn shared_name(&self, id: u16) -> std::sync::Arc<str> {
        self.names[usize::from(id)].clone()
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Dimension {
    name: String,
    values: CappedValues,
    /// Whether any set uses it (others are never mapped).
    used: bool,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SegmentInfo {
    /// `(dimension, value)` sorted by dimension; empty for all users.
    pub labels: Vec<(String, String)>,
}

/// Maps an event to one segment id per configured set.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Segmenter {
    dims: Vec<Dimension>,
    /// Per set, indices into `dims` in set order.
    sets: Vec<Vec<usize>>,
    /// (set, value ids) packed as `set << 112 | v0 << 96 | v1 << 80 | …` → segment id.
    ids: HashMap<u128, u32>,
    segments: Vec<SegmentInfo>,
    /// Scratch: value id per dimension for the current event.
    scratch: Vec<u16>,
    /// Per set, the segment ids of value combinations seen so far, indexed densely by the
    /// set's value ids: one load per event and set instead of hashing the packed key. Derived
    /// from `ids`, so not part of a saved state: built on the first event, refilled as events
    /// come.
    #[serde(skip)]
    direct: DirectTables,
}

/// Most entries of a set's direct table (16 KiB): two dimensions at the default cap of 20 need
/// 484; three need 10 648 and keep to the packed-key map.
const MAX_DIRECT: usize = 4_096;
const NO_SEGMENT: u32 = u32::MAX;

/// The segmenter's direct tables (see `Segmenter::direct`).
#[derive(Debug, Default)]
struct DirectTables {
    /// Value ids per dimension are below this (`max_values + 2`, with `__none__` and
    /// `__other__`): the base of a table's index.
    radix: usize,
    /// Per set; `None` for a set whose combinations need more than [`MAX_DIRECT`] entries.
    /// Empty until built.
    tables: Vec<Option<Vec<u32>>>,
}

impl Segmenter {
    pub fn new(config: &SegmentsConfig) -> Self {
        let mut dims: Vec<Dimension> = config
            .dimensions
            .iter()
            .map(|name| Dimension {
                name: name.clone(),
                values: CappedValues::new(config.max_values, None),
                used: false,
            })
            .collect();
        let mut sets: Vec<Vec<usize>> = vec![vec![]];
        for set in &config.sets {
            if set.is_empty() {
                continue;
            }
            let idx: Vec<usize> = set
                .iter()
                .map(|d| {
                    config
                        .dimensions
                        .iter()
                        .position(|x| x == d)
                        .expect("validated: set dimensions are allowlisted")
                })
                .collect();
            for &i in &idx {
                dims[i].used = true;
            }
            if !sets.contains(&idx) {
                sets.push(idx);
            }
        }
        let mut seg = Segmenter {
            scratch: vec![NONE_ID; dims.len()],
            dims,
            sets,
            ids: HashMap::new(),
            segments: Vec::new(),
            direct: DirectTables::default(),
        };
        // Segment 0 is all users.
        seg.segment_id(0);
        seg
    }

    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// Writes the segment id of each set for `event` into `out` (length [`Self::set_count`]).
    pub fn map(&mut self, event: &Event<'_>, out: &mut Vec<u32>) {
        for (i, dim) in self.dims.iter_mut().enumerate() {
            if dim.used {
                self.scratch[i] = match event.attr(&dim.name) {
                    Some(v) => dim.values.id(v),
                    None => NONE_ID,
                };
            }
        }
        if self.direct.tables.is_empty() {
            self.build_direct_tables();
        }
        out.push(0);
        for set in 1..self.sets.len() {
            out.push(self.direct_segment_id(set));
        }
    }

    fn build_direct_tables(&mut self) {
        let radix = self.dims.first().map_or(0, |d| d.values.max_values + 2);
        let tables = self
            .sets
            .iter()
            .map(|dims| {
                let entries = u32::try_from(dims.len())
                    .ok()
                    .and_then(|n| radix.checked_pow(n))
                    .filter(|&n| n <= MAX_DIRECT)?;
                Some(vec![NO_SEGMENT; entries])
            })
            .collect();
        self.direct = DirectTables { radix, tables };
    }

    /// [`Self::segment_id`] through the set's direct table where it has one.
    fn direct_segment_id(&mut self, set: usize) -> u32 {
        let radix = self.direct.radix;
        let index = self.sets[set]
            .iter()
            .fold(0, |i, &d| i * radix + usize::from(self.scratch[d]));
        match self.direct.tables[set].as_ref().map(|table| table[index]) {
            Some(NO_SEGMENT) => {
                let id = self.segment_id(set);
                if let Some(table) = self.direct.tables[set].as_mut() {
                    table[index] = id;
                }
                id
            }
            Some(id) => id,
            None => self.segment_id(set),
        }
    }

    fn segment_id(&mut self, set: usize) -> u32 {
        let key = self.sets[set]
            .iter()
            .enumerate()
            .fold((set as u128) << 112, |k, (i, &d)| {
                k | (u128::from(self.scratch[d]) << (96 - 16 * i))
            });
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.segments.len() as u32;
        let mut labels: Vec<(String, String)> = self.sets[set]
            .iter()
            .map(|&d| {
                let dim = &self.dims[d];
                (
                    dim.name.clone(),
                    dim.values.name(self.scratch[d]).to_owned(),
                )
            })
            .collect();
        labels.sort();
        self.segments.push(SegmentInfo { labels });
        self.ids.insert(key, id);
        id
    }

    pub fn info(&self, segment: u32) -> &SegmentInfo {
        &self.segments[segment as usize]
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn overflow(&self) -> Vec<(String, u64)> {
        self.dims
            .iter()
            .map(|d| (d.name.clone(), d.values.overflow))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::EventKind;

    fn event(attrs: &[(&'static str, &'static str)]) -> Event<'static> {
        Event {
            id: "e".into(),
            event_type: "action".into(),
            user_id: "u".into(),
            ts: 0,
            session_id: None,
            attrs: attrs
                .iter()
                .map(|&(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
                .collect(),
            kind: EventKind::Plain,
        }
    }

    #[test]
    fn cap_maps_late_values_to_other_and_missing_to_none() {
        let cfg = SegmentsConfig {
            dimensions: vec!["plan".into(), "region".into()],
            sets: vec![
                vec![],
                vec!["plan".into()],
                vec!["region".into(), "plan".into()],
            ],
            max_values: 2,
        };
        let mut s = Segmenter::new(&cfg);
        assert_eq!(s.set_count(), 3);
        let mut keys = |attrs: &[(&'static str, &'static str)]| {
            let mut out = Vec::new();
            s.map(&event(attrs), &mut out);
            out.iter()
                .map(|&id| {
                    let labels = &s.info(id).labels;
                    labels
                        .iter()
                        .map(|(d, v)| format!("{d}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&[("plan", "free")]),
            ["", "plan=free", "plan=free,region=__none__"]
        );
        assert_eq!(
            keys(&[("plan", "pro"), ("region", "eu")])[2],
            "plan=pro,region=eu"
        );
        // A third plan overflows.
        assert_eq!(keys(&[("plan", "team")])[1], "plan=__other__");
        assert_eq!(keys(&[("plan", "free")])[1], "plan=free");
        assert_eq!(s.overflow(), vec![("plan".into(), 1), ("region".into(), 0)]);
    }

    /// Sets with a direct table and sets too wide for one (three dimensions of 40 values) give
    /// the ids the packed-key map gives, in first-seen order, and a restored segmenter (whose
    /// tables start empty) goes on with the same ids.
    #[test]
    fn direct_tables_agree_with_the_key_map() {
        let cfg = SegmentsConfig {
            dimensions: vec!["a".into(), "b".into(), "c".into()],
            sets: vec![
                vec!["a".into()],
                vec!["a".into(), "b".into()],
                vec!["a".into(), "b".into(), "c".into()],
            ],
            max_values: 40,
        };
        const VALUES: [&str; 7] = ["v0", "v1", "v2", "v3", "v4", "v5", "v6"];
        let events: Vec<Event<'static>> = (0..400)
            .map(|k: usize| {
                let pick = |salt: usize| VALUES[(k * 7 + salt * 13 + k / 5) % VALUES.len()];
                let mut attrs = vec![("a", pick(1)), ("b", pick(2)), ("c", pick(3))];
                attrs.truncate(3 - k % 3); // some events lack `c`, or `b` and `c`
                event(&attrs)
            })
            .collect();
        let mut direct = Segmenter::new(&cfg);
        let mut out = Vec::new();
        for e in &events[..200] {
            direct.map(e, &mut out);
        }
        let saved = bincode::serialize(&direct).expect("encodes");
        let mut restored: Segmenter = bincode::deserialize(&saved).expect("decodes");
        for e in &events[200..] {
            restored.map(e, &mut out);
        }
        let sizes: Vec<Option<usize>> = (direct.direct.tables.iter())
            .map(|t| t.as_ref().map(Vec::len))
            .collect();
        assert_eq!(
            sizes,
            [Some(1), Some(42), Some(42 * 42), None],
            "42^3 entries: the key map only"
        );

        // The same events through the packed-key map alone.
        let mut keyed = Segmenter::new(&cfg);
        let mut expected = Vec::new();
        for e in &events {
            for (i, dim) in keyed.dims.iter_mut().enumerate() {
                keyed.scratch[i] = e.attr(&dim.name).map_or(NONE_ID, |v| dim.values.id(v));
            }
            expected.push(0);
            for set in 1..keyed.sets.len() {
                expected.push(keyed.segment_id(set));
            }
        }
        assert_eq!(out, expected);
        assert_eq!(restored.len(), keyed.len());
    }

    #[test]
    fn feature_allowlist() {
        let mut f = CappedValues::new(10, Some(vec!["export".into()]));
        let export = f.id("export");
        assert_eq!(f.name(export), "export");
        let other = f.id("other_thing");
        assert_eq!(f.name(other), OTHER_VALUE);
        assert_eq!(f.overflow, 1);
    }
}
