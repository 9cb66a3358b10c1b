//! The windowed KPI engine: ingest events, advance the watermark, collect closed instances.
//!
//! Flow of one event: dedup → too-late check → segment and feature ids → either buffered in the
//! pending pane of its base pane (the normal case), or, when its base pane is already sealed,
//! applied at once (a late event). Advancing the watermark seals base panes in time order: their
//! events are applied sorted by event time (so sessions see an in-order stream), session timers
//! fire, and every window whose slide divides the boundary closes an instance.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::HashMap;

use crate::calendar::{BOUNDARY_GRAIN, Calendar, CalendarPeriod};
use crate::distinct::{LastSeenCounts, LevelShape, TrackedRange, base_pane};
use crate::pane::{Contribution, Mark, PaneRing, WindowSeg};
use crate::partial::{LifecycleCounts, NBackSketches, PartSketches, Parts};
use crate::segment::{CappedValues, Segmenter};
use crate::session::{self, OpenSession, SessionKey, SessionStep, Timer, Timers};
use crate::sketch::{DistinctSketch, UserHash};
use crate::sketched::{
    ACTIVE, CalendarSketch, HllRing, Keys, SketchLifecycle, SlidingUnion, ThetaBlocks,
};
use crate::time::{DAY, HOUR};
use crate::users::{Interner, SegUser, UserState};
use crate::{
    ConfigError, DistinctMode, EngineConfig, Event, EventKind, FeatureName, Millis, Snapshot,
    Survey, WindowSpec, dedup::Dedup,
};

/// What happened to an ingested event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Counted; its event time is at or after the watermark.
    Accepted,
    /// Counted, but older than the watermark: it updated only the instances still open.
    Late,
    /// Same `id` seen within `dedup_horizon`: not counted again.
    Duplicate,
    /// Older than every open instance: not counted; belongs on the dead-letter topic.
    TooLate,
}

/// Counters the pipeline exposes as health metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub accepted: u64,
    pub late: u64,
    pub duplicates: u64,
    pub too_late: u64,
    /// Events whose value was mapped to `__other__`, per dimension (`segments.dimensions` order).
    pub dimension_overflow: Vec<(String, u64)>,
    /// Feature events whose name was mapped to `__other__`.
    pub feature_overflow: u64,
    pub users: u64,
    pub segments: u64,
    pub open_sessions: u64,
    pub pending_events: u64,
    pub dedup_ids: u64,
}

const NO_FEATURE: u16 = u16::MAX;
/// Reserved feature ids whose distinct users are KPIs of their own: users with a purchase, and
/// users who cancelled. Real feature ids stay below 10 000 (`features.max_values`).
const PAYING: u16 = u16::MAX - 1;
const CANCELLED: u16 = u16::MAX - 2;
/// Whether feature id `f` is a real feature, not active users or a reserved id.
fn named_feature(f: u16) -> bool {
    !matches!(f, PAYING | CANCELLED | ACTIVE)
}

const NO_PANE: u32 = u32::MAX;
const NO_SESSION: Millis = i64::MIN;
const THIRTY_DAYS: Millis = 30 * DAY;

/// An accepted event waiting for its base pane to seal.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Pending {
    ts: Millis,
    user: u32,
    /// Index of its segment ids in the buffer's `segs`.
    segs_at: u32,
    feature: u16,
    activity: bool,
    mark: Mark,
    /// Hash of `session_id`, 0 when absent.
    sid: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct PaneBuffer {
    events: Vec<Pending>,
    /// Segment ids, `set_count` per event in arrival order (`segs_at` points in).
    segs: Vec<u32>,
    /// With sketch windows: the user hash of each event in arrival order (index
    /// `segs_at / set_count`), kept out of `Pending` so exact mode sorts smaller entries.
    #[serde(skip)]
    hashes: Vec<UserHash>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct WindowState {
    name: String,
    length: Millis,
    slide: Millis,
    /// Index into `levels` of the ring with granularity `slide`.
    level: usize,
    /// End of the last closed instance; the running sums cover `[e_last − length, e_last)`.
    e_last: Option<Millis>,
    running: Vec<WindowSeg>,
    /// Tracked range of `[end − 1d, end)` for stickiness, on 30-day windows.
    stickiness: Option<usize>,
    /// Tracked range of `[end − 2·length, end)` (the previous and current periods), with
    /// lifecycle KPIs on.
    double: Option<usize>,
    /// Per segment: retained and new users of future instances (lifecycle KPIs on).
    life: Vec<LifeSeg>,
    /// Distinct users from sketches (`distinct = "sketch"`).
    sketch: bool,
}

/// A calendar window: tumbling instances over local days, weeks or months.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CalendarState {
    name: String,
    /// Resolved from the configuration again on restore.
    #[serde(skip, default = "Calendar::utc_day")]
    calendar: Calendar,
    /// Index into `levels` of the quarter-hour ring.
    level: usize,
    cur: Option<CalInstance>,
    /// Last quarter hour processed: running sums and ranges cover `[cur.start, e_last)`.
    e_last: Option<Millis>,
    running: Vec<WindowSeg>,
    /// Tracked ranges `[cur.start, e_last)` and, with lifecycle KPIs, `[cur.prev_start, e_last)`.
    range: usize,
    double: Option<usize>,
    /// Per segment: (retained, new) users of the current instance.
    life: Vec<(u64, u64)>,
    /// `n` of n-day retention (day windows only).
    n_days: Vec<u32>,
    /// Per `n`: users of the all-users segment first seen `n` days before, active today.
    n_day_returned: Vec<u64>,
    /// Closed instances, newest last: (start, new users of the all-users segment).
    history: std::collections::VecDeque<(Millis, u64)>,
    /// Distinct users from sketches (`distinct = "sketch"`).
    sketch: bool,
}

/// The current instance of a calendar window and the start of the one before.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct CalInstance {
    prev_start: Millis,
    start: Millis,
    end: Millis,
}

impl CalendarState {
    fn instance_at(&self, t: Millis) -> CalInstance {
        let start = self.calendar.start_of(t);
        CalInstance {
            prev_start: self.calendar.start_of(start - 1),
            start,
            end: self.calendar.next_start(start),
        }
    }

    /// A user's first activity moved from `old` (if any) to `new`: the closed days holding
    /// them lose and gain a member of their n-day cohort.
    fn move_first_seen(&mut self, old: Option<Millis>, new: Millis) {
        if self.n_days.is_empty() {
            return;
        }
        let Some(cur) = self.cur else { return };
        let mut end = cur.start;
        for entry in self.history.iter_mut().rev() {
            let start = entry.0;
            if old.is_some_and(|o| o >= start && o < end) {
                entry.1 = entry.1.saturating_sub(1);
            }
            if new >= start && new < end {
                entry.1 += 1;
            }
            end = start;
        }
    }

    /// Days back from the current instance to the one holding `t` (1 = the previous day), if
    /// it is in the history.
    fn days_back(&self, t: Millis) -> Option<u32> {
        let cur = self.cur?;
        let mut end = cur.start;
        for (back, &(start, _)) in self.history.iter().rev().enumerate() {
            if t >= start && t < end {
                return Some(back as u32 + 1);
            }
            end = start;
        }
        None
    }
}

/// Counts that events add to a range of future instances of one window, read as each instance
/// closes: a difference array over instance indices (`end / slide`) in a ring.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FutureCounts {
    slots: Vec<i64>,
    running: i64,
}

impl FutureCounts {
    /// A ring of at least `len` slots (a power of two: indices are masked, not divided).
    fn new(len: usize) -> Self {
        FutureCounts {
            slots: vec![0; len.next_power_of_two()],
            running: 0,
        }
    }

    /// Adds `delta` to instances `from..to` (indices); `closed` is the last closed index. The
    /// ring is long enough for every range the engine adds (at most two window lengths ahead).
    fn add(&mut self, closed: i64, from: i64, to: i64, delta: i64) {
        let n = self.slots.len() as i64;
        let from = from.max(closed + 1);
        let to = to.min(closed + n);
        if from >= to {
            return;
        }
        let mask = n - 1;
        self.slots[(from & mask) as usize] += delta;
        self.slots[(to & mask) as usize] -= delta;
    }

    /// Instance `k` closes: its count.
    fn close(&mut self, k: i64) -> u64 {
        let mask = self.slots.len() as i64 - 1;
        let slot = &mut self.slots[(k & mask) as usize];
        self.running += *slot;
        *slot = 0;
        self.running.max(0) as u64
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = 0);
        self.running = 0;
    }
}

/// Lifecycle counts of one (window, segment) that last-seen counts cannot give.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LifeSeg {
    /// Users whose activity crosses from the previous period into the current one.
    retained: FutureCounts,
    /// Users first seen in the current period.
    new: FutureCounts,
}

/// A user's open sessions of one session id, per segment.
type SegSessions = smallvec::SmallVec<[(u32, OpenSession); 3]>;

/// The sketch side of sketch windows (see [`crate::sketched`]).
#[derive(Debug)]
struct Sketches {
    /// Snapshots carry the HLL image of their active users.
    images: bool,
    keys: Keys,
    /// Per level: pane HLLs, when a sketch window uses the level.
    rings: Vec<Option<HllRing>>,
    /// Per sliding window: its unions, when it is a sketch window.
    windows: Vec<Option<SketchWindow>>,
    /// Per lifecycle grain: Theta blocks (lifecycle KPIs on).
    blocks: Vec<ThetaBlocks>,
    /// Per calendar window: its sketches, when it is a sketch window.
    calendars: Vec<Option<CalendarSketch>>,
}

#[derive(Debug)]
struct SketchWindow {
    level: usize,
    main: SlidingUnion,
    /// The one-day range of stickiness, on 30-day windows.
    stick: Option<SlidingUnion>,
    /// Index into `blocks` of the window's lifecycle grain.
    blocks: Option<usize>,
}

impl Sketches {
    fn new(
        config: &EngineConfig,
        levels: &[PaneRing],
        windows: &[WindowState],
        calendars: &[CalendarState],
    ) -> Self {
        let lg_k = config.sketch.lg_k;
        let mut panes = vec![0i64; levels.len()];
        for w in windows.iter().filter(|w| w.sketch) {
            panes[w.level] = panes[w.level].max(w.length / w.slide + 2);
        }
        let rings = levels
            .iter()
            .zip(&panes)
            .map(|(ring, &n)| (n > 0).then(|| HllRing::new(ring.granularity, n as usize, lg_k)))
            .collect();
        // Lifecycle grain: instances ending on it get lifecycle KPIs.
        let grain = |w: &WindowState| {
            if DAY % w.slide == 0 {
                gcd(w.length, DAY)
            } else {
                w.length
            }
        };
        // Per grain: (grain, span its ring covers, periods of "seen before" kept).
        let mut grains: Vec<(Millis, Millis, i64)> = Vec::new();
        if config.lifecycle {
            for w in windows.iter().filter(|w| w.sketch) {
                let g = grain(w);
                match grains.iter_mut().find(|(gg, _, _)| *gg == g) {
                    Some((_, span, periods)) => {
                        *span = (*span).max(2 * w.length);
                        *periods = (*periods).max(w.length / g);
                    }
                    None => grains.push((g, 2 * w.length, w.length / g)),
                }
            }
        }
        grains.sort_unstable_by_key(|&(g, _, _)| g);
        // A grain that is a multiple of a finer one is built from it: the finer ring covers it.
        let derived: Vec<Option<usize>> = (0..grains.len())
            .map(|i| (0..i).rev().find(|&j| grains[i].0 % grains[j].0 == 0))
            .collect();
        for (i, d) in derived.iter().enumerate() {
            if let Some(j) = *d {
                grains[j].1 = grains[j].1.max(grains[i].0);
            }
        }
        // Calendar days take their users from blocks of an hour or a divisor of it, when their
        // boundaries fall on them (the blocks then cover a 27-hour day).
        let day_blocks = grains
            .iter()
            .rposition(|&(g, _, _)| HOUR % g == 0)
            .filter(|_| {
                calendars
                    .iter()
                    .any(|c| c.sketch && c.calendar.period() == CalendarPeriod::Day)
            });
        if let Some(j) = day_blocks {
            grains[j].1 = grains[j].1.max(CalendarPeriod::Day.max_length() + HOUR);
        }
        let sketch_windows = windows
            .iter()
            .map(|w| {
                w.sketch.then(|| SketchWindow {
                    level: w.level,
                    main: SlidingUnion::new(w.length / w.slide, lg_k, false),
                    stick: w
                        .stickiness
                        .map(|_| SlidingUnion::new(DAY / w.slide, lg_k, true)),
                    blocks: grains.iter().position(|&(g, _, _)| g == grain(w)),
                })
            })
            .collect();
        Sketches {
            images: config.sketch.include_in_snapshots,
            keys: Keys::default(),
            rings,
            windows: sketch_windows,
            blocks: grains
                .iter()
                .zip(derived)
                .map(|(&(g, span, periods), derived_from)| {
                    let mut blocks = ThetaBlocks::new(g, span, periods as usize, lg_k);
                    blocks.derived_from = derived_from;
                    blocks
                })
                .collect(),
            calendars: calendars
                .iter()
                .map(|c| {
                    c.sketch.then(|| {
                        let blocks = day_blocks
                            .filter(|_| c.calendar.period() == CalendarPeriod::Day)
                            .map(|j| (j, grains[j].0));
                        CalendarSketch::new(
                            lg_k,
                            c.n_days.iter().copied().max().unwrap_or(0) as usize,
                            blocks,
                            config.partials,
                        )
                    })
                })
                .collect(),
        }
    }

    /// Counts a sealed event of segment `seg` (`late`: windows may have summed its pane).
    fn apply(
        &mut self,
        calendars: &[CalendarState],
        seg: u32,
        e: &Pending,
        uh: &UserHash,
        late: bool,
    ) {
        let active = e.activity.then_some(ACTIVE);
        let feature = (e.feature != NO_FEATURE).then_some(e.feature);
        for feature in active.into_iter().chain(feature) {
            let key = self.keys.id(seg, feature);
            for (level, ring) in self.rings.iter_mut().enumerate() {
                let Some(ring) = ring else { continue };
                let pane = ring.update(e.ts, key, uh);
                if late {
                    for w in self.windows.iter_mut().flatten() {
                        if w.level == level {
                            w.main.late(pane, key, uh, &self.keys);
                            if let Some(stick) = &mut w.stick {
                                stick.late(pane, key, uh, &self.keys);
                            }
                        }
                    }
                }
            }
            for (cal, cs) in calendars.iter().zip(&mut self.calendars) {
                if let (Some(cs), Some(cur)) = (cs, cal.cur) {
                    if e.ts >= cur.start && e.ts < cur.end {
                        cs.update(key, seg, feature == ACTIVE, uh);
                    } else if e.ts < cur.start && feature == ACTIVE {
                        cs.seen_late(seg, e.ts, cur.prev_start, uh);
                    }
                }
            }
        }
        if e.activity {
            for blocks in &mut self.blocks {
                // A derived grain is built from the finer one; only late events reach it.
                if late || blocks.derived_from.is_none() {
                    blocks.update(e.ts, seg, uh);
                }
            }
        }
    }
}

/// The engine. See ARCHITECTURE.md for how panes, last-seen counts and sessions fit together.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    /// Base pane length: the gcd of all slides.
    base: Millis,
    /// Least common multiple of all slides: boundaries where every window closes.
    lcm: Millis,
    /// How far back per-user state matters: the longest window, twice with lifecycle KPIs.
    horizon: Millis,
    /// One pane ring per distinct slide, finest first.
    levels: Vec<PaneRing>,
    /// Whether every coarser level's panes are unions of finest-level panes; then events write
    /// only the finest ring and each completed finest pane is merged upwards once.
    roll_up: bool,
    /// End of the last finest pane merged upwards: contributions before it go to every level.
    rolled_until: Millis,
    shape: Vec<LevelShape>,
    /// Distinct-count ranges: one per window (same index), then the stickiness ranges.
    ranges: Vec<TrackedRange>,
    windows: Vec<WindowState>,
    calendars: Vec<CalendarState>,
    segmenter: Segmenter,
    features: CappedValues,
    users: Interner,
    user_state: Vec<UserState>,
    seg_counts: Vec<LastSeenCounts>,
    feature_keys: HashMap<(u32, u16), u32>,
    feature_counts: Vec<LastSeenCounts>,
    /// Per feature key, its feature id.
    feature_of_key: Vec<u16>,
    /// Per segment, its feature keys, in feature name order.
    seg_features: Vec<Vec<u32>>,
    /// Per window (same index), what [`lifecycle_moved`] divides by, computed once.
    life_geometry: Vec<LifeGeometry>,
    /// Open sessions that do not live in per-user state: those with a `session_id`, and without
    /// per-user state (every window a sketch window) the gap-based ones too. Keyed by (user,
    /// session id hash), with one entry per segment inside: one map probe per event.
    keyed_sessions: HashMap<(u64, u64), SegSessions>,
    open_sessions: u64,
    timers: Timers,
    /// Scratch for the timers due at a boundary (kept for its capacity).
    due_timers: Vec<Timer>,
    dedup: Dedup,
    pending: BTreeMap<u32, PaneBuffer>,
    /// Emptied pane buffers kept for reuse, so sealing does not churn the allocator.
    spare_buffers: Vec<PaneBuffer>,
    pending_events: u64,
    watermark: Option<Millis>,
    /// Every base pane before it is sealed.
    frontier: Option<Millis>,
    last_sweep: Millis,
    stats: EngineStats,
    session_hasher: foldhash::quality::FixedState,
    scratch_segs: Vec<u32>,
    /// Whether any window counts exactly (and so per-user state is kept).
    per_user: bool,
    sketches: Option<Box<Sketches>>,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        let sliding: Vec<WindowSpec> = config
            .windows
            .iter()
            .filter(|w| w.calendar.is_none())
            .cloned()
            .collect();
        // (slide, longest instance) of every window; calendar windows close on quarter hours.
        let sized: Vec<(Millis, Millis)> = config
            .windows
            .iter()
            .map(|w| match &w.calendar {
                Some(c) => (BOUNDARY_GRAIN, c.period.max_length()),
                None => (w.slide, w.length),
            })
            .collect();
        let base = sized.iter().fold(0, |g, &(slide, _)| gcd(g, slide));
        let lcm = sized
            .iter()
            .fold(1, |l, &(slide, _)| l / gcd(l, slide) * slide);
        let mut slides: Vec<Millis> = sized.iter().map(|&(slide, _)| slide).collect();
        slides.sort_unstable();
        slides.dedup();
        let levels: Vec<PaneRing> = slides
            .iter()
            .map(|&g| {
                let longest = sized
                    .iter()
                    .filter(|&&(slide, _)| slide == g)
                    .map(|&(_, length)| length)
                    .max()
                    .unwrap_or(g);
                // A session split by `session_max` closes at `last + gap`, up to one gap past
                // the sealed frontier: the ring keeps that much headroom beyond the longest
                // window so such a write never reuses a slot a window still has to subtract.
                let headroom = (config.session_gap + g - 1) / g + 1;
                PaneRing::new(g, (longest / g + headroom) as usize + 1)
            })
            .collect();
        // Last-seen counts cover the previous period too when lifecycle KPIs are on.
        let periods = if config.lifecycle { 2 } else { 1 };
        let mut shape: Vec<LevelShape> = levels
            .iter()
            .map(|r| LevelShape {
                ranges: Vec::new(),
                ratio: (r.granularity / base) as u32,
                panes: (sized
                    .iter()
                    .filter(|&&(slide, _)| slide == r.granularity)
                    .map(|&(_, length)| periods * length)
                    .max()
                    .unwrap_or(r.granularity)
                    / r.granularity) as usize
                    + 1,
            })
            .collect();
        let mut ranges: Vec<TrackedRange> = sliding
            .iter()
            .map(|w| TrackedRange {
                level: slides
                    .iter()
                    .position(|&g| g == w.slide)
                    .expect("every slide has a level"),
                len: (w.length / w.slide) as u32,
                to: None,
            })
            .collect();
        let windows: Vec<WindowState> = sliding
            .iter()
            .enumerate()
            .map(|(i, w)| WindowState {
                name: w.name.clone(),
                length: w.length,
                slide: w.slide,
                level: slides
                    .iter()
                    .position(|&g| g == w.slide)
                    .expect("every slide has a level"),
                e_last: None,
                running: Vec::new(),
                stickiness: (w.length == THIRTY_DAYS && DAY % w.slide == 0).then(|| {
                    ranges.push(TrackedRange {
                        level: ranges[i].level,
                        len: (DAY / w.slide) as u32,
                        to: None,
                    });
                    ranges.len() - 1
                }),
                double: config.lifecycle.then(|| {
                    ranges.push(TrackedRange {
                        level: ranges[i].level,
                        len: (2 * w.length / w.slide) as u32,
                        to: None,
                    });
                    ranges.len() - 1
                }),
                life: Vec::new(),
                sketch: w.distinct.unwrap_or(config.distinct) == DistinctMode::Sketch,
            })
            .collect();
        let life_geometry = windows.iter().map(|w| LifeGeometry::new(w, base)).collect();
        let cal_level = slides
            .iter()
            .position(|&g| g == BOUNDARY_GRAIN)
            .unwrap_or(0);
        let mut calendars = Vec::new();
        for w in &config.windows {
            let Some(spec) = &w.calendar else { continue };
            let calendar = Calendar::new(spec).map_err(|e| ConfigError::new("windows", e))?;
            let len = (spec.period.max_length() / BOUNDARY_GRAIN) as u32;
            ranges.push(TrackedRange {
                level: cal_level,
                len: 0,
                to: None,
            });
            let range = ranges.len() - 1;
            let double = config.lifecycle.then(|| {
                ranges.push(TrackedRange {
                    level: cal_level,
                    len: 0,
                    to: None,
                });
                ranges.len() - 1
            });
            debug_assert!(len > 0);
            calendars.push(CalendarState {
                name: w.name.clone(),
                n_days: if spec.period == CalendarPeriod::Day {
                    config.n_day_retention.clone()
                } else {
                    Vec::new()
                },
                calendar,
                level: cal_level,
                cur: None,
                e_last: None,
                running: Vec::new(),
                range,
                double,
                life: Vec::new(),
                n_day_returned: Vec::new(),
                history: std::collections::VecDeque::new(),
                sketch: w.distinct.unwrap_or(config.distinct) == DistinctMode::Sketch,
            });
        }
        // Last-seen counts track the ranges of exact windows only (sketch windows count with
        // sketches, even when other windows keep per-user state).
        let mut of_sketch = vec![false; ranges.len()];
        for (wi, w) in windows.iter().enumerate().filter(|(_, w)| w.sketch) {
            for r in std::iter::once(wi).chain(w.stickiness).chain(w.double) {
                of_sketch[r] = true;
            }
        }
        for c in calendars.iter().filter(|c| c.sketch) {
            for r in std::iter::once(c.range).chain(c.double) {
                of_sketch[r] = true;
            }
        }
        for (i, r) in ranges.iter().enumerate() {
            if !of_sketch[i] {
                shape[r.level].ranges.push(i);
            }
        }
        let max_length = sized.iter().map(|&(_, length)| length).max().unwrap_or(0);
        let horizon = periods * max_length;
        let roll_up = slides.iter().all(|g| g % slides[0] == 0);
        let per_user = windows.iter().any(|w| !w.sketch) || calendars.iter().any(|c| !c.sketch);
        let any_sketch = windows.iter().any(|w| w.sketch) || calendars.iter().any(|c| c.sketch);
        let sketches =
            any_sketch.then(|| Box::new(Sketches::new(&config, &levels, &windows, &calendars)));
        Ok(Engine {
            per_user,
            sketches,
            roll_up,
            rolled_until: i64::MIN,
            base,
            lcm,
            horizon,
            levels,
            shape,
            ranges,
            windows,
            calendars,
            segmenter: Segmenter::new(&config.segments),
            features: CappedValues::new(
                config.features.max_values,
                config.features.allowlist.clone(),
            ),
            users: Interner::default(),
            user_state: Vec::new(),
            seg_counts: Vec::new(),
            feature_keys: HashMap::new(),
            feature_counts: Vec::new(),
            feature_of_key: Vec::new(),
            seg_features: Vec::new(),
            life_geometry,
            keyed_sessions: HashMap::new(),
            open_sessions: 0,
            timers: Timers::default(),
            due_timers: Vec::new(),
            dedup: Dedup::new(config.dedup_horizon),
            pending: BTreeMap::new(),
            spare_buffers: Vec::new(),
            pending_events: 0,
            watermark: None,
            frontier: None,
            last_sweep: i64::MIN,
            stats: EngineStats::default(),
            session_hasher: foldhash::quality::FixedState::with_seed(0x7365_7373_696f_6e21),
            scratch_segs: Vec::new(),
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// How far before the watermark a rebuild must start re-reading events so that every open
    /// instance, its previous period (lifecycle KPIs) and n-day cohorts are complete again;
    /// sessions, lateness and dedup add their own margins on top (the pipeline's concern).
    pub fn rebuild_horizon(&self) -> Millis {
        let n_days = self
            .calendars
            .iter()
            .filter_map(|c| c.n_days.iter().max())
            .max()
            .map_or(0, |&n| i64::from(n) * CalendarPeriod::Day.max_length());
        self.horizon.max(n_days) + self.lcm
    }

    /// The watermark last passed to [`Engine::advance`].
    pub fn watermark(&self) -> Option<Millis> {
        self.watermark
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            dimension_overflow: self.segmenter.overflow(),
            feature_overflow: self.features.overflow,
            users: self.users.len() as u64,
            segments: self.segmenter.len() as u64,
            open_sessions: self.open_sessions,
            pending_events: self.pending_events,
            dedup_ids: self.dedup.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Whether no open instance of any window can contain event time `t`.
    fn is_too_late(&self, t: Millis) -> bool {
        self.frontier.is_some()
            && self.windows.iter().all(|w| match w.e_last {
                Some(e) => t < e + w.slide - w.length,
                None => false,
            })
            && self
                .calendars
                .iter()
                .all(|c| c.cur.is_some_and(|cur| t < cur.start))
    }

    /// Adds one validated event. Never panics on any event the codec accepts.
    pub fn ingest(&mut self, event: &Event<'_>) -> Ingested {
        let id_hash = self.dedup.hash(&event.id);
        let ts = event.ts;
        // A duplicate is a duplicate even when it is too late; otherwise one probe of the id set
        // both checks and records the id.
        if self.is_too_late(ts) {
            if self.dedup.contains(id_hash) {
                self.stats.duplicates += 1;
                return Ingested::Duplicate;
            }
            self.stats.too_late += 1;
            return Ingested::TooLate;
        }
        if !self
            .dedup
            .insert(id_hash, self.watermark.map_or(ts, |w| w.max(ts)))
        {
            self.stats.duplicates += 1;
            return Ingested::Duplicate;
        }
        let late = self.watermark.is_some_and(|w| ts < w);

        let user = if self.per_user {
            let (user, new_user) = self.users.intern(&event.user_id);
            if new_user {
                self.user_state.push(UserState::default());
            }
            user
        } else {
            0
        };
        let uh = self.sketches.is_some().then(|| {
            UserHash::of(
                &event.user_id,
                self.session_hasher.hash_one(event.user_id.as_bytes()),
            )
        });
        let feature = match &event.kind {
            EventKind::FeatureUsed { feature } => self.features.id(feature),
            EventKind::Purchase { .. } => PAYING,
            EventKind::SubscriptionCancelled => CANCELLED,
            _ => NO_FEATURE,
        };
        let pending = Pending {
            ts,
            user,
            segs_at: 0,
            feature,
            activity: !self
                .config
                .non_activity_types
                .iter()
                .any(|t| *t == event.event_type),
            mark: self.mark(&event.kind),
            sid: match &event.session_id {
                // 0 means "no session id"; a real hash of 0 is moved to 1.
                Some(sid) => self.session_hasher.hash_one(sid.as_ref()).max(1),
                None => 0,
            },
        };
        self.stats.accepted += 1;
        if late {
            self.stats.late += 1;
        }
        if self.frontier.is_some_and(|f| ts < f) {
            // Its base pane is sealed: apply now; it reaches only instances still open.
            let mut segs = std::mem::take(&mut self.scratch_segs);
            segs.clear();
            self.segmenter.map(event, &mut segs);
            self.apply(&pending, &segs, uh.as_ref(), true);
            self.scratch_segs = segs;
        } else {
            let spare = &mut self.spare_buffers;
            let buffer = self
                .pending
                .entry(base_pane(ts, self.base))
                .or_insert_with(|| spare.pop().unwrap_or_default());
            let segs_at = buffer.segs.len() as u32;
            self.segmenter.map(event, &mut buffer.segs);
            if let Some(uh) = uh {
                buffer.hashes.push(uh);
            }
            buffer.events.push(Pending { segs_at, ..pending });
            self.pending_events += 1;
        }
        if late {
            Ingested::Late
        } else {
            Ingested::Accepted
        }
    }

    fn mark(&self, kind: &EventKind<'_>) -> Mark {
        let s = &self.config.surveys;
        match *kind {
            EventKind::SurveyResponse { survey, score } => match survey {
                Survey::Nps => Mark::Nps {
                    promoter: score >= s.nps_promoter_min,
                    detractor: score <= s.nps_detractor_max,
                },
                Survey::Csat => Mark::Csat {
                    satisfied: score >= s.csat_satisfied_min,
                },
                Survey::Ces => Mark::Ces { score },
            },
            EventKind::Purchase { amount } => Mark::Purchase {
                micros: to_micros(amount),
            },
            EventKind::Refund { amount } => Mark::Refund {
                micros: to_micros(amount),
            },
            EventKind::SubscriptionCancelled => Mark::Cancellation,
            EventKind::SupportTicket => Mark::SupportTicket,
            EventKind::SelfServiceResolved => Mark::SelfService,
            _ => Mark::None,
        }
    }

    /// Applies a sealed event to panes, last-seen counts, sketches and (unless late) sessions.
    fn apply(&mut self, e: &Pending, segs: &[u32], uh: Option<&UserHash>, late: bool) {
        let bp = base_pane(e.ts, self.base);
        let mut closed: smallvec::SmallVec<[(u32, OpenSession); 2]> = smallvec::SmallVec::new();
        for &seg in segs {
            self.contribute(seg, e.ts, Contribution::Event(e.mark), late);
            if self.per_user {
                self.track_user(e, seg, bp);
            }
            if e.activity && !late {
                self.session_event(e, seg, uh, &mut closed);
            }
            if let (Some(sk), Some(uh)) = (self.sketches.as_deref_mut(), uh) {
                sk.apply(&self.calendars, seg, e, uh, late);
            }
        }
        for (seg, s) in closed {
            self.close_session(seg, s);
        }
    }

    /// Per-user state of exact windows: first and last active panes, feature last-seen panes.
    fn track_user(&mut self, e: &Pending, seg: u32, bp: u32) {
        let seg_idx = seg as usize;
        if self.seg_counts.len() <= seg_idx {
            self.seg_counts.resize_with(seg_idx + 1, || {
                LastSeenCounts::new(&self.shape, &self.ranges)
            });
            self.seg_features.resize_with(seg_idx + 1, Vec::new);
        }
        if e.activity {
            let state = &mut self.user_state[e.user as usize];
            if state.first_seen == 0 || bp < state.first_seen - 1 {
                let old_first = (state.first_seen != 0).then(|| state.first_seen - 1);
                state.first_seen = bp + 1;
                if !self.calendars.is_empty() {
                    // A first activity sealed after its day closed (a late event another
                    // window still accepted) joins that day's n-day cohort.
                    let base = self.base;
                    for cal in self.calendars.iter_mut().filter(|c| !c.sketch) {
                        cal.move_first_seen(
                            old_first.map(|o| i64::from(o) * base),
                            i64::from(bp) * base,
                        );
                    }
                }
            }
            let first = state.first_seen - 1;
            let pos = match state.segs.iter().position(|s| s.seg == seg) {
                Some(p) => p,
                None => {
                    state.segs.push(SegUser {
                        seg,
                        last_pane: NO_PANE,
                        sess_start: NO_SESSION,
                        sess_last: NO_SESSION,
                    });
                    state.segs.len() - 1
                }
            };
            let su = &mut state.segs[pos];
            if su.last_pane == NO_PANE || bp > su.last_pane {
                let old = (su.last_pane != NO_PANE).then_some(su.last_pane);
                self.seg_counts[seg_idx].moved(&self.shape, &self.ranges, old, bp);
                su.last_pane = bp;
                if self.config.lifecycle {
                    lifecycle_moved(
                        &mut self.windows,
                        &mut self.life_geometry,
                        seg_idx,
                        old,
                        bp,
                        first,
                    );
                }
                if !self.calendars.is_empty() {
                    calendar_moved(
                        &mut self.calendars,
                        self.base,
                        seg_idx,
                        old,
                        bp,
                        first,
                        self.config.lifecycle,
                    );
                }
            }
        }
        if e.feature != NO_FEATURE {
            let key = self.feature_key(seg, e.feature);
            let state = &mut self.user_state[e.user as usize];
            match state.features.iter_mut().find(|(k, _)| *k == key) {
                Some((_, last)) => {
                    if bp > *last {
                        self.feature_counts[key as usize].moved(
                            &self.shape,
                            &self.ranges,
                            Some(*last),
                            bp,
                        );
                        *last = bp;
                    }
                }
                None => {
                    state.features.push((key, bp));
                    self.feature_counts[key as usize].moved(&self.shape, &self.ranges, None, bp);
                }
            }
        }
    }

    /// An in-order activity event of segment `seg` continues or starts a session. Gap-based
    /// sessions live in the user's state when there is one, keyed by user hash otherwise.
    fn session_event(
        &mut self,
        e: &Pending,
        seg: u32,
        uh: Option<&UserHash>,
        closed: &mut smallvec::SmallVec<[(u32, OpenSession); 2]>,
    ) {
        let gap = self.config.session_gap;
        let max = self.config.session_max;
        if self.per_user && e.sid == 0 {
            let Some(su) = self.user_state[e.user as usize]
                .segs
                .iter_mut()
                .find(|s| s.seg == seg)
            else {
                return;
            };
            let mut open = (su.sess_start != NO_SESSION).then_some(OpenSession {
                start: su.sess_start,
                last: su.sess_last,
            });
            let step = session::step(&mut open, e.ts, gap, max);
            let now = open.expect("step leaves a session open");
            su.sess_start = now.start;
            su.sess_last = now.last;
            if let SessionStep::Started { closed: prev } = step {
                self.on_session_started(u64::from(e.user), seg, 0, e.ts, prev, closed);
            }
        } else {
            let user = match (uh, self.per_user) {
                (Some(uh), false) => uh.key,
                _ => u64::from(e.user),
            };
            let sessions = self.keyed_sessions.entry((user, e.sid)).or_default();
            let pos = sessions.iter().position(|(s, _)| *s == seg);
            let mut open = pos.map(|p| sessions[p].1);
            let step = session::step(&mut open, e.ts, gap, max);
            let now = open.expect("step leaves a session open");
            match pos {
                Some(p) => sessions[p].1 = now,
                None => sessions.push((seg, now)),
            }
            if let SessionStep::Started { closed: prev } = step {
                self.on_session_started(user, seg, e.sid, e.ts, prev, closed);
            }
        }
    }

    fn on_session_started(
        &mut self,
        user: u64,
        seg: u32,
        sid: u64,
        t: Millis,
        prev: Option<OpenSession>,
        closed: &mut smallvec::SmallVec<[(u32, OpenSession); 2]>,
    ) {
        match prev {
            Some(s) => closed.push((seg, s)),
            None => self.open_sessions += 1,
        }
        let close_at = t + self.config.session_gap;
        self.timers.set(
            base_pane(close_at, self.base),
            Timer {
                key: SessionKey { user, seg, sid },
                start: t,
            },
        );
    }

    fn close_session(&mut self, seg: u32, s: OpenSession) {
        let at = s.last + self.config.session_gap;
        let duration_ms = (s.last - s.start) as u64;
        self.contribute(seg, at, Contribution::Session { duration_ms }, true);
    }

    fn feature_key(&mut self, seg: u32, feature: u16) -> u32 {
        if let Some(&k) = self.feature_keys.get(&(seg, feature)) {
            return k;
        }
        let k = self.feature_counts.len() as u32;
        self.feature_counts
            .push(LastSeenCounts::new(&self.shape, &self.ranges));
        self.feature_of_key.push(feature);
        self.feature_keys.insert((seg, feature), k);
        // Kept in name order, so building a snapshot's feature list finds it sorted already
        // (state restored from an older checkpoint may not be: the list is still sorted).
        let features = &self.features;
        let name = |f: u16| named_feature(f).then(|| features.name(f));
        let keys = &mut self.seg_features[seg as usize];
        let at = keys
            .partition_point(|&other| name(self.feature_of_key[other as usize]) <= name(feature));
        keys.insert(at, k);
        k
    }

    /// Adds a contribution at time `t` to every pane ring, and — when it may fall inside a range
    /// windows already summed (`in_past`) — to those running sums too.
    fn contribute(&mut self, seg: u32, t: Millis, c: Contribution, in_past: bool) {
        if self.roll_up && t >= self.rolled_until {
            self.levels[0].apply(t, seg, c);
        } else {
            for ring in &mut self.levels {
                ring.apply(t, seg, c);
            }
        }
        if in_past {
            for w in &mut self.windows {
                if let Some(e) = w.e_last
                    && t >= e - w.length
                    && t < e
                {
                    let seg = seg as usize;
                    if w.running.len() <= seg {
                        w.running.resize_with(seg + 1, WindowSeg::default);
                    }
                    w.running[seg].apply(c);
                }
            }
            for cal in &mut self.calendars {
                if let (Some(e), Some(cur)) = (cal.e_last, cal.cur)
                    && t >= cur.start
                    && t < e
                {
                    let seg = seg as usize;
                    if cal.running.len() <= seg {
                        cal.running.resize_with(seg + 1, WindowSeg::default);
                    }
                    cal.running[seg].apply(c);
                }
            }
        }
    }

    /// Moves the watermark to `watermark` (never backwards) and appends a snapshot for every
    /// (instance, segment) that closed, in order of end, then window name, then key.
    pub fn advance(&mut self, watermark: Millis, out: &mut Vec<Snapshot>) {
        if self.watermark.is_some_and(|w| watermark <= w) {
            return;
        }
        self.watermark = Some(watermark);
        let frontier = match self.frontier {
            Some(f) => f,
            None => {
                // Instances ending at or before the first watermark are closed from now on; the
                // walk starts early enough to emit those that hold events already received.
                let at_watermark = watermark.div_euclid(self.base) * self.base;
                let start = self.pending.keys().next().map_or(at_watermark, |&p| {
                    (i64::from(p) * self.base).min(at_watermark)
                });
                for w in &mut self.windows {
                    w.e_last = Some(start.div_euclid(w.slide) * w.slide);
                }
                self.rolled_until =
                    start.div_euclid(self.levels[0].granularity) * self.levels[0].granularity;
                self.restart_ranges(start);
                start
            }
        };
        let mut f = frontier;
        while f + self.base <= watermark {
            if let Some(target) = self.quiet_jump_target(f, watermark) {
                f = target;
                for w in &mut self.windows {
                    w.e_last = Some(target);
                    w.running.iter_mut().for_each(|r| *r = WindowSeg::default());
                }
                self.rolled_until = target;
                self.restart_ranges(target);
                continue;
            }
            let b = f + self.base;
            self.process_boundary(b, watermark, out);
            f = b;
        }
        self.frontier = Some(f);
        self.dedup.evict(watermark);
        if f.saturating_sub(self.last_sweep) >= DAY {
            self.sweep(f);
            self.last_sweep = f;
        }
    }

    /// Points every tracked range at its window's last end, with empty running counts (valid at
    /// the start and after a quiet jump: no user's last pane lies in any range then).
    fn restart_ranges(&mut self, at: Millis) {
        for (wi, w) in self.windows.iter().enumerate() {
            let to = Some((w.e_last.expect("set before restart") / w.slide) as u32);
            self.ranges[wi].to = to;
            if let Some(r) = w.stickiness {
                self.ranges[r].to = to;
            }
            if let Some(r) = w.double {
                self.ranges[r].to = to;
            }
        }
        for w in &mut self.windows {
            for life in &mut w.life {
                life.retained.clear();
                life.new.clear();
            }
        }
        if let Some(sk) = self.sketches.as_deref_mut() {
            for (w, sw) in self.windows.iter().zip(&mut sk.windows) {
                if let Some(sw) = sw {
                    let end = w.e_last.expect("set before restart") / w.slide;
                    sw.main.restart(end);
                    if let Some(stick) = &mut sw.stick {
                        stick.restart(end);
                    }
                }
            }
        }
        let at = at.div_euclid(BOUNDARY_GRAIN) * BOUNDARY_GRAIN;
        for (ci, cal) in self.calendars.iter_mut().enumerate() {
            let cur = cal.instance_at(at);
            if let Some(cs) = self
                .sketches
                .as_deref_mut()
                .and_then(|sk| sk.calendars[ci].as_mut())
            {
                let mut skipped = Vec::new();
                if let Some(old) = cal.cur {
                    let mut start = old.start;
                    while start < cur.start {
                        skipped.push(start);
                        start = cal.calendar.next_start(start);
                    }
                }
                cs.skip(&skipped);
                cs.begin(cur.start, cur.end);
            }
            // After a quiet stretch, the periods jumped over had no new users: n-day retention
            // still finds the cohorts before them.
            let keep = cal.n_days.iter().copied().max().unwrap_or(0) as usize;
            if let Some(old) = cal.cur {
                let mut start = old.start;
                while start < cur.start && keep > 0 {
                    let new = if start == old.start {
                        cal.life.first().map_or(0, |&(_, new)| new)
                    } else {
                        0
                    };
                    cal.history.push_back((start, new));
                    while cal.history.len() > keep {
                        cal.history.pop_front();
                    }
                    start = cal.calendar.next_start(start);
                }
            }
            cal.cur = Some(cur);
            cal.e_last = Some(at);
            cal.running
                .iter_mut()
                .for_each(|r| *r = WindowSeg::default());
            cal.life.clear();
            cal.n_day_returned = vec![0; cal.n_days.len()];
            let to = Some((at / BOUNDARY_GRAIN) as u32);
            let range = &mut self.ranges[cal.range];
            range.to = to;
            range.len = ((at - cur.start) / BOUNDARY_GRAIN) as u32;
            if let Some(r) = cal.double {
                let range = &mut self.ranges[r];
                range.to = to;
                range.len = ((at - cur.prev_start) / BOUNDARY_GRAIN) as u32;
            }
        }
        for r in 0..self.ranges.len() {
            for c in self.seg_counts.iter_mut().chain(&mut self.feature_counts) {
                c.reset(r);
            }
        }
    }

    /// When nothing is open or in range, the next boundary that can matter, if it is far ahead.
    fn quiet_jump_target(&mut self, f: Millis, watermark: Millis) -> Option<Millis> {
        // Scale-out partials: an empty stretch may still hold users of a previous period.
        if f.rem_euclid(self.lcm) != 0 || self.open_sessions != 0 || self.config.partials {
            return None;
        }
        let all_empty = self.windows.iter().all(|w| {
            w.e_last == Some(f)
                && w.running
                    .iter()
                    .all(|r| r.agg.events == 0 && r.agg.sessions == 0)
        });
        let calendars_empty = self.calendars.iter().all(|c| {
            c.running
                .iter()
                .all(|r| r.agg.events == 0 && r.agg.sessions == 0)
        });
        if !all_empty || !calendars_empty {
            return None;
        }
        let next_data = self
            .pending
            .keys()
            .next()
            .map_or(Millis::MAX, |&p| i64::from(p) * self.base);
        let target = next_data.min(watermark).div_euclid(self.lcm) * self.lcm;
        // Jumping pays off only past the horizon; short stretches are walked.
        (target > f + self.horizon).then(|| {
            self.timers = Timers::default();
            target
        })
    }

    fn process_boundary(&mut self, b: Millis, watermark: Millis, out: &mut Vec<Snapshot>) {
        let sealed = base_pane(b - self.base, self.base);
        if let Some(mut buffer) = self.pending.remove(&sealed) {
            self.pending_events -= buffer.events.len() as u64;
            // Equal times may apply in any order: no rule depends on it. The buffer is a few
            // runs already in order (one per partition read into it), which the stable sort
            // finds and merges; the unstable one sorts from scratch.
            buffer.events.sort_by_key(|e| e.ts);
            let n_sets = self.segmenter.set_count();
            for e in &buffer.events {
                let at = e.segs_at as usize;
                let uh = buffer.hashes.get(at / n_sets.max(1));
                self.apply(e, &buffer.segs[at..at + n_sets], uh, false);
            }
            buffer.events.clear();
            buffer.segs.clear();
            buffer.hashes.clear();
            if self.spare_buffers.len() < 64 {
                self.spare_buffers.push(buffer);
            }
        }
        let mut due = std::mem::take(&mut self.due_timers);
        self.timers.take_through(sealed, &mut due);
        for timer in due.drain(..) {
            self.fire(timer, b);
        }
        self.due_timers = due;
        let finest = self.levels[0].granularity;
        if self.roll_up && b.rem_euclid(finest) == 0 {
            let (done, coarser) = self.levels.split_first_mut().expect("at least one level");
            if let Some(segs) = done.pane(done.pane_of(b - finest)) {
                for ring in coarser {
                    ring.merge_at(b - finest, segs);
                }
            }
            self.rolled_until = b;
        }
        if let Some(sk) = self.sketches.as_deref_mut() {
            // Finer grains first: a derived block is built from complete finer ones.
            for i in 0..sk.blocks.len() {
                if b.rem_euclid(sk.blocks[i].grain) != 0 {
                    continue;
                }
                let (finer, rest) = sk.blocks.split_at_mut(i);
                let blocks = &mut rest[0];
                if let Some(j) = blocks.derived_from {
                    blocks.build(b, &finer[j]);
                }
                blocks.completed(b);
            }
        }
        let first = out.len();
        for wi in 0..self.windows.len() {
            if b.rem_euclid(self.windows[wi].slide) == 0 {
                self.close_instance(wi, b, watermark, out);
            }
        }
        if b.rem_euclid(BOUNDARY_GRAIN) == 0 {
            for ci in 0..self.calendars.len() {
                self.step_calendar(ci, b, watermark, out);
            }
        }
        out[first..].sort_by(|a, b| {
            (a.window.cmp(&b.window)).then_with(|| a.key_bytes().cmp(b.key_bytes()))
        });
    }

    /// A session timer is due at boundary `b`: close the session, or re-arm if it was extended.
    fn fire(&mut self, timer: Timer, b: Millis) {
        let gap = self.config.session_gap;
        let key = timer.key;
        let in_state = self.per_user && key.sid == 0;
        let session = if !in_state {
            self.keyed_sessions
                .get(&(key.user, key.sid))
                .and_then(|list| {
                    list.iter()
                        .find(|(seg, s)| *seg == key.seg && s.start == timer.start)
                        .map(|(_, s)| *s)
                })
        } else {
            self.user_state[key.user as usize]
                .segs
                .iter()
                .find(|s| s.seg == key.seg && s.sess_start == timer.start)
                .map(|s| OpenSession {
                    start: s.sess_start,
                    last: s.sess_last,
                })
        };
        let Some(s) = session else {
            return; // Replaced by a newer session, which has its own timer.
        };
        let close_at = s.last + gap;
        if close_at >= b {
            self.timers.set(base_pane(close_at, self.base), timer);
            return;
        }
        if !in_state {
            if let hashbrown::hash_map::Entry::Occupied(mut list) =
                self.keyed_sessions.entry((key.user, key.sid))
            {
                list.get_mut().retain(|(seg, _)| *seg != key.seg);
                if list.get().is_empty() {
                    list.remove();
                }
            }
        } else if let Some(su) = self.user_state[key.user as usize]
            .segs
            .iter_mut()
            .find(|s| s.seg == key.seg)
        {
            su.sess_start = NO_SESSION;
            su.sess_last = NO_SESSION;
        }
        self.open_sessions -= 1;
        self.close_session(key.seg, s);
    }

    fn close_instance(
        &mut self,
        wi: usize,
        end: Millis,
        watermark: Millis,
        out: &mut Vec<Snapshot>,
    ) {
        let w = &mut self.windows[wi];
        let ring = &self.levels[w.level];
        let g = ring.granularity;
        let n_segs = self.segmenter.len();
        if w.running.len() < n_segs {
            w.running.resize_with(n_segs, WindowSeg::default);
        }
        if let Some(entering) = ring.pane(end / g - 1) {
            for (r, p) in w.running.iter_mut().zip(entering) {
                r.merge(p, 1);
            }
        }
        if let Some(leaving) = ring.pane((end - w.length) / g - 1) {
            for (r, p) in w.running.iter_mut().zip(leaving) {
                r.merge(p, -1);
            }
        }
        w.e_last = Some(end);
        let exact = !w.sketch;
        for r in std::iter::once(wi).chain(w.stickiness).chain(w.double) {
            let range = &mut self.ranges[r];
            let old_to = range.to.expect("ranges start with the windows");
            if exact {
                for c in self.seg_counts.iter_mut().chain(&mut self.feature_counts) {
                    c.slide(r, range, old_to);
                }
            }
            range.to = Some((end / g) as u32);
        }
        // Every instance reads its lifecycle counts, published or not, to keep them in step.
        let k = end / w.slide;
        let mut life: Vec<(u64, u64)> = Vec::with_capacity(w.life.len());
        for l in &mut w.life {
            life.push((l.retained.close(k), l.new.close(k)));
        }
        if self.windows[wi].sketch
            && let Some(sk) = self.sketches.as_deref_mut()
            && let Some(sw) = sk.windows[wi].as_mut()
            && let Some(ring) = sk.rings[sw.level].as_ref()
        {
            sw.main.advance(end / g, ring, &sk.keys);
            if let Some(stick) = &mut sw.stick {
                stick.advance(end / g, ring, &sk.keys);
            }
        }
        let w = &self.windows[wi];
        let clv_window = w.length == self.config.clv.period;
        let partials = self.config.partials;
        for (seg, running) in w.running.iter().enumerate() {
            // A partial also carries a segment whose users were active only in the previous
            // period: other partitions may have events, and its churned users count then.
            let churn_only = partials
                && if w.sketch {
                    running.agg.events <= 0 && self.sketch_previous_users(wi, seg, end)
                } else {
                    w.double
                        .is_some_and(|r| self.seg_counts.get(seg).is_some_and(|c| c.count(r) > 0))
                };
            // Sessions count by close time, which can fall in a range without events.
            if running.agg.events <= 0 && !(churn_only || partials && running.agg.sessions != 0) {
                continue;
            }
            let (mut parts, extra) = if w.sketch {
                self.sketch_window_parts(wi, seg, running, end)
            } else {
                let mut parts = self.parts_of(running, seg, wi, w.double, life.get(seg).copied());
                parts.day_active = w.stickiness.map(|r| self.seg_counts[seg].count(r));
                (parts, SketchExtra::default())
            };
            parts.clv = clv_window;
            let (mut kpis, features) = self.snapshot_kpis(&mut parts, running);
            kpis.lifecycle_skipped = extra.lifecycle_skipped;
            let info = self.segmenter.info(seg as u32);
            out.push(Snapshot {
                window: w.name.clone(),
                start: end - w.length,
                end,
                segment: info.labels.clone(),
                kpis,
                features,
                watermark,
                utc_offsets: None,
                approximate: w.sketch,
                active_users_sketch: extra.image,
                parts: partials.then(|| Box::new(parts)),
                complete: None,
            });
        }
    }

    /// Whether sketch window `wi` has users of segment `seg` in the period before the instance
    /// ending at `end` (when that instance has lifecycle KPIs): its partial then carries them.
    fn sketch_previous_users(&self, wi: usize, seg: usize, end: Millis) -> bool {
        let Some(sk) = self.sketches.as_deref() else {
            return false;
        };
        let Some(sw) = sk.windows[wi].as_ref() else {
            return false;
        };
        let length = self.windows[wi].length;
        match sw.blocks.map(|b| &sk.blocks[b]) {
            Some(blocks) if end % blocks.grain == 0 => !blocks
                .union(end - 2 * length, end - length, seg as u32)
                .is_empty(),
            _ => false,
        }
    }

    /// [`parts_of`](Self::parts_of) of a sketch window's instance ending at `end`, with the
    /// stickiness numerator.
    fn sketch_window_parts(
        &self,
        wi: usize,
        seg: usize,
        running: &WindowSeg,
        end: Millis,
    ) -> (Parts, SketchExtra) {
        let sk = self
            .sketches
            .as_deref()
            .expect("sketch windows have sketches");
        let sw = sk.windows[wi].as_ref().expect("a sketch window");
        let w = &self.windows[wi];
        let seg32 = seg as u32;
        let est = |feature: u16| {
            sk.keys
                .get(seg32, feature)
                .map_or(0, |k| sw.main.estimate(k).round() as u64)
        };
        let active = est(ACTIVE);
        let day_active = sw.stick.as_ref().map(|stick| {
            sk.keys
                .get(seg32, ACTIVE)
                .map_or(0.0, |k| stick.estimate(k))
                .round() as u64
        });
        let mut extra = SketchExtra::default();
        let lifecycle = match sw.blocks.map(|b| &sk.blocks[b]) {
            Some(blocks) if end % blocks.grain == 0 => Some(LifecycleCounts::from(
                blocks.lifecycle(end, w.length, seg32),
            )),
            Some(_) => {
                extra.lifecycle_skipped = true;
                None
            }
            None => None,
        };
        let features = self.feature_list(
            sk.keys
                .of_seg
                .get(seg)
                .into_iter()
                .flatten()
                .filter(|&&k| named_feature(sk.keys.of[k as usize].1))
                .map(|&k| (sk.keys.of[k as usize].1, sw.main.estimate(k).round() as u64)),
        );
        // Partials: the sketches themselves, for the merger's unions.
        let sketches = self.config.partials.then(|| {
            let image = |feature: u16| {
                sk.keys
                    .get(seg32, feature)
                    .map_or_else(Vec::new, |k| sw.main.sketch(k).serialize_compact())
            };
            let features = self.feature_images(sk, seg, |k| sw.main.sketch(k).serialize_compact());
            let lifecycle = match sw.blocks.map(|b| &sk.blocks[b]) {
                Some(blocks) if end % blocks.grain == 0 => Some([
                    blocks
                        .union(end - 2 * w.length, end - w.length, seg32)
                        .serialize(),
                    blocks.union(end - w.length, end, seg32).serialize(),
                    blocks.seen_before(end - w.length).serialize(),
                ]),
                _ => None,
            };
            Box::new(PartSketches {
                lg_k: self.config.sketch.lg_k,
                active: image(ACTIVE),
                paying: image(PAYING),
                cancelled: image(CANCELLED),
                day_active: sw.stick.as_ref().map(|stick| {
                    sk.keys
                        .get(seg32, ACTIVE)
                        .map_or_else(Vec::new, |k| stick.sketch(k).serialize_compact())
                }),
                features,
                lifecycle,
                n_back: None,
                lifecycle_skipped: extra.lifecycle_skipped,
            })
        });
        let parts = Parts {
            active,
            paying: est(PAYING),
            cancelled: est(CANCELLED),
            lifecycle,
            day_active,
            features,
            sketches,
            ..Parts::of_running(running, self.config.partials)
        };
        if sk.images {
            extra.image = Some(
                sk.keys
                    .get(seg32, ACTIVE)
                    .map_or_else(
                        || DistinctSketch::new(self.config.sketch.lg_k).expect("valid lg_k"),
                        |k| sw.main.sketch(k),
                    )
                    .serialize(),
            );
        }
        (parts, extra)
    }

    /// The KPIs and features of `parts`, built from `running`. Without partials the parts
    /// carry no duration histogram ([`Parts`] copies it only for partials): the quantiles are
    /// read from `running`'s own.
    ///
    /// Unless the parts travel on (partials), their feature names move into the snapshot.
    fn snapshot_kpis(
        &self,
        parts: &mut Parts,
        running: &WindowSeg,
    ) -> (crate::Kpis, Vec<(FeatureName, crate::FeatureKpis)>) {
        let (mut kpis, features) = if self.config.partials {
            parts.kpis(&self.config.clv)
        } else {
            parts.take_kpis(&self.config.clv)
        };
        if !self.config.partials {
            let quantiles = running.durations.quantiles([0.5, 0.9, 0.99]);
            kpis.session_duration = crate::partial::duration_stats(quantiles, &running.agg);
        }
        (kpis, features)
    }

    /// Per named feature of segment `seg` among the sketch keys: its name and `image` of its
    /// key (a serialized sketch of its users), sorted by name.
    fn feature_images(
        &self,
        sk: &Sketches,
        seg: usize,
        image: impl Fn(u32) -> Vec<u8>,
    ) -> Vec<(String, Vec<u8>)> {
        let mut features: Vec<(String, Vec<u8>)> = sk
            .keys
            .of_seg
            .get(seg)
            .into_iter()
            .flatten()
            .filter(|&&k| named_feature(sk.keys.of[k as usize].1))
            .map(|&k| {
                let name = self.features.name(sk.keys.of[k as usize].1);
                (name.to_owned(), image(k))
            })
            .collect();
        features.sort_by(|a, b| a.0.cmp(&b.0));
        features
    }

    /// Named features with users, sorted by name (the reserved ids and active users excluded).
    fn feature_list(&self, users: impl Iterator<Item = (u16, u64)>) -> Vec<(FeatureName, u64)> {
        let mut features: Vec<(FeatureName, u64)> = users
            .filter(|&(f, users)| named_feature(f) && users > 0)
            .map(|(f, users)| (self.features.shared_name(f), users))
            .collect();
        // Segments keep their feature keys in name order (see `feature_key`).
        if !features.is_sorted_by(|a, b| a.0 <= b.0) {
            features.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        features
    }

    /// The parts of segment `seg` over tracked range `range`: its running sums and distinct-user
    /// counts, and with lifecycle KPIs (`double`: the range over the previous and current
    /// period) also churned users and the (retained, new) counts `life` kept for the instance.
    fn parts_of(
        &self,
        running: &WindowSeg,
        seg: usize,
        range: usize,
        double: Option<usize>,
        life: Option<(u64, u64)>,
    ) -> Parts {
        let counts = &self.seg_counts[seg];
        let active = counts.count(range);
        let distinct = |feature: u16| {
            self.feature_keys
                .get(&(seg as u32, feature))
                .map_or(0, |&k| self.feature_counts[k as usize].count(range))
        };
        let lifecycle = double.map(|r| {
            let (retained, new) = life.unwrap_or((0, 0));
            LifecycleCounts {
                churned: counts.count(r).saturating_sub(active),
                retained,
                new,
            }
        });
        Parts {
            active,
            paying: distinct(PAYING),
            cancelled: distinct(CANCELLED),
            lifecycle,
            features: self.features_of(seg, range),
            ..Parts::of_running(running, self.config.partials)
        }
    }

    /// Per feature used in segment `seg` within tracked range `range`, its users (the reserved
    /// paying/cancelled ids are KPIs of their own, not features), sorted by name.
    fn features_of(&self, seg: usize, range: usize) -> Vec<(FeatureName, u64)> {
        self.feature_list(self.seg_features[seg].iter().map(|&k| {
            (
                self.feature_of_key[k as usize],
                self.feature_counts[k as usize].count(range),
            )
        }))
    }

    /// Quarter-hour boundary `b` of calendar window `ci`: the quarter hour before it joins the
    /// current instance, which closes when `b` is its end.
    fn step_calendar(&mut self, ci: usize, b: Millis, watermark: Millis, out: &mut Vec<Snapshot>) {
        let cal = &mut self.calendars[ci];
        let (Some(cur), Some(e_last)) = (cal.cur, cal.e_last) else {
            return;
        };
        if b <= e_last {
            return;
        }
        let g = BOUNDARY_GRAIN;
        let n_segs = self.segmenter.len();
        if cal.running.len() < n_segs {
            cal.running.resize_with(n_segs, WindowSeg::default);
        }
        if let Some(entering) = self.levels[cal.level].pane(b / g - 1) {
            for (r, p) in cal.running.iter_mut().zip(entering) {
                r.merge(p, 1);
            }
        }
        for r in std::iter::once(cal.range).chain(cal.double) {
            let range = &mut self.ranges[r];
            let old_to = range.to.expect("calendar ranges start at restart");
            if !cal.sketch {
                for c in self.seg_counts.iter_mut().chain(&mut self.feature_counts) {
                    c.grow(r, range, old_to);
                }
            }
            range.to = Some(old_to + 1);
            range.len += 1;
        }
        cal.e_last = Some(b);
        if b < cur.end {
            return;
        }
        // The instance closes.
        let cal = &self.calendars[ci];
        let all_users_new = cal.life.first().map_or(0, |&(_, new)| new);
        let sketch = cal
            .sketch
            .then_some(self.sketches.as_deref())
            .flatten()
            .and_then(|sk| Some((sk, sk.calendars[ci].as_ref()?)));
        let seen = sketch.map(|(_, cs)| cs.seen_before());
        let currents =
            sketch.map(|(sk, cs)| cs.current(&sk.blocks, cur.start, cur.end, cal.running.len()));
        let partials = self.config.partials;
        // Exact day windows: per `n`, the all-users cohort first seen `n` days before.
        let cohorts: Vec<(u32, u64, u64)> = cal
            .n_days
            .iter()
            .zip(&cal.n_day_returned)
            .map(|(&n, &returned)| {
                let cohort = cal
                    .history
                    .len()
                    .checked_sub(n as usize)
                    .and_then(|i| cal.history.get(i))
                    .map_or(0, |&(_, new)| new);
                (n, returned, cohort)
            })
            .collect();
        for (seg, running) in cal.running.iter().enumerate() {
            // A partial also carries a segment with users only in the previous period, or the
            // all-users cohorts: other partitions may have events this period.
            let users_only = partials
                && match sketch {
                    None => {
                        cal.double.is_some_and(|r| {
                            self.seg_counts.get(seg).is_some_and(|c| c.count(r) > 0)
                        }) || (seg == 0 && cohorts.iter().any(|&(_, _, c)| c > 0))
                    }
                    Some((_, cs)) => {
                        running.agg.events <= 0
                            && (self.config.lifecycle && !cs.previous(seg).is_empty()
                                || seg == 0
                                    && cal.n_days.iter().any(|&n| {
                                        cs.cohort_parts(n)
                                            .is_some_and(|(users, _)| !users.is_empty())
                                    }))
                    }
                };
            if running.agg.events <= 0 && !(users_only || partials && running.agg.sessions != 0) {
                continue;
            }
            let seg32 = seg as u32;
            let (parts, kpis, features, image) =
                if let (Some((sk, cs)), Some(seen), Some(current)) = (sketch, &seen, &currents) {
                    let est = |f: u16| cs.estimate(sk.keys.get(seg32, f)).round() as u64;
                    let features = self.feature_list(
                        sk.keys
                            .of_seg
                            .get(seg)
                            .into_iter()
                            .flatten()
                            .map(|&k| sk.keys.of[k as usize].1)
                            .filter(|&f| named_feature(f))
                            .map(|f| (f, est(f))),
                    );
                    // Partials: the sketches themselves, for the merger's unions.
                    let sketches = partials.then(|| {
                        let image = |f: u16| {
                            sk.keys
                                .get(seg32, f)
                                .map_or_else(Vec::new, |k| cs.sketch(Some(k)).serialize_compact())
                        };
                        let features = self
                            .feature_images(sk, seg, |k| cs.sketch(Some(k)).serialize_compact());
                        Box::new(PartSketches {
                            lg_k: self.config.sketch.lg_k,
                            active: image(ACTIVE),
                            paying: image(PAYING),
                            cancelled: image(CANCELLED),
                            day_active: None,
                            features,
                            lifecycle: self.config.lifecycle.then(|| {
                                [
                                    cs.previous(seg).serialize(),
                                    current[seg].serialize(),
                                    seen.serialize(),
                                ]
                            }),
                            n_back: (seg == 0 && !cal.n_days.is_empty()).then(|| NBackSketches {
                                current: current[0].serialize(),
                                cohorts: cal
                                    .n_days
                                    .iter()
                                    .map(|&n| {
                                        let parts = cs.cohort_parts(n).map(|(users, seen)| {
                                            [users.serialize(), seen.serialize()]
                                        });
                                        (n, parts)
                                    })
                                    .collect(),
                            }),
                            lifecycle_skipped: false,
                        })
                    });
                    let mut parts = Parts {
                        active: est(ACTIVE),
                        paying: est(PAYING),
                        cancelled: est(CANCELLED),
                        lifecycle: self
                            .config
                            .lifecycle
                            .then(|| LifecycleCounts::from(cs.lifecycle(seg, &current[seg], seen))),
                        features,
                        sketches,
                        ..Parts::of_running(running, self.config.partials)
                    };
                    let (mut kpis, features) = self.snapshot_kpis(&mut parts, running);
                    if seg == 0 {
                        // Sketches give the ratio itself.
                        kpis.n_day_retention = cal
                            .n_days
                            .iter()
                            .map(|&n| (n, cs.n_back_retention(n, &current[0])))
                            .collect();
                    }
                    let image = sk
                        .images
                        .then(|| cs.sketch(sk.keys.get(seg32, ACTIVE)).serialize());
                    (parts, kpis, features, image)
                } else {
                    let mut parts = self.parts_of(
                        running,
                        seg,
                        cal.range,
                        cal.double,
                        cal.life.get(seg).copied(),
                    );
                    if seg == 0 {
                        parts.n_day = cohorts.clone();
                    }
                    let (kpis, features) = self.snapshot_kpis(&mut parts, running);
                    (parts, kpis, features, None)
                };
            out.push(Snapshot {
                window: cal.name.clone(),
                start: cur.start,
                end: cur.end,
                segment: self.segmenter.info(seg32).labels.clone(),
                kpis,
                features,
                watermark,
                utc_offsets: Some((
                    cal.calendar.offset_seconds(cur.start),
                    cal.calendar.offset_seconds(cur.end),
                )),
                approximate: sketch.is_some(),
                active_users_sketch: image,
                parts: partials.then(|| Box::new(parts)),
                complete: None,
            });
        }
        let next_end = self.calendars[ci].calendar.next_start(cur.end);
        if let (Some(seen), Some(current), Some(sk)) =
            (seen, currents, self.sketches.as_deref_mut())
            && let Some(cs) = sk.calendars[ci].as_mut()
        {
            cs.close(cur.start, current, &seen);
            cs.begin(cur.end, next_end);
        }
        // The next instance starts empty; the double range drops the period before this one.
        let cal = &mut self.calendars[ci];
        let keep = cal.n_days.iter().copied().max().unwrap_or(0) as usize;
        if keep > 0 {
            cal.history.push_back((cur.start, all_users_new));
            while cal.history.len() > keep {
                cal.history.pop_front();
            }
        }
        let next = CalInstance {
            prev_start: cur.start,
            start: cur.end,
            end: cal.calendar.next_start(cur.end),
        };
        cal.cur = Some(next);
        cal.running
            .iter_mut()
            .for_each(|r| *r = WindowSeg::default());
        cal.life.iter_mut().for_each(|l| *l = (0, 0));
        cal.n_day_returned.iter_mut().for_each(|n| *n = 0);
        // The lifecycle range becomes [previous start, b): exactly the current range that just
        // closed, so it takes over its counts (no ring reads: a 27-hour day is fine too).
        let (range, double) = (cal.range, cal.double);
        if !cal.sketch {
            for c in self.seg_counts.iter_mut().chain(&mut self.feature_counts) {
                if let Some(r) = double {
                    c.copy_running(range, r);
                }
                c.reset(range);
            }
        }
        self.ranges[range].len = 0;
        if let Some(r) = double {
            self.ranges[r].len = ((b - cur.start) / g) as u32;
        }
    }

    /// Drops per-user state that no window can see any more.
    fn sweep(&mut self, frontier: Millis) {
        let keep_from = base_pane((frontier - self.horizon - self.lcm).max(0), self.base);
        for state in &mut self.user_state {
            state
                .segs
                .retain(|s| s.sess_start != NO_SESSION || s.last_pane >= keep_from);
            state.features.retain(|&(_, last)| last >= keep_from);
        }
    }
}

/// A user's last active pane in segment `seg` moved from `old` to `new` (`first`: the
/// user's first active pane). Adds the instances this makes them retained or new in.
fn lifecycle_moved(
    windows: &mut [WindowState],
    geometry: &mut [LifeGeometry],
    seg: usize,
    old: Option<u32>,
    new: u32,
    first: u32,
) {
    // In base panes: an instance k ends at k·sp panes; "ends after pane x" is k ≥ x / sp + 1.
    let (n, f) = (i64::from(new), i64::from(first));
    for (w, g) in windows.iter_mut().zip(geometry).filter(|(w, _)| !w.sketch) {
        let closed = g.closed(w);
        let (lp, sp, div) = (g.length_panes, g.slide_panes, g.slide_div);
        let idx = |x: i64| div.div(x) + 1;
        if w.life.len() <= seg {
            let slots = (2 * lp / sp + 4) as usize;
            w.life.resize_with(seg + 1, || LifeSeg {
                retained: FutureCounts::new(slots),
                new: FutureCounts::new(slots),
            });
        }
        let life = &mut w.life[seg];
        match old {
            // Retained in the instances whose previous period holds `old` and whose
            // current period holds `new`: ends in (old + L, old + 2L] ∩ (new, new + L].
            Some(old) => {
                let o = i64::from(old);
                life.retained.add(
                    closed,
                    idx((o + lp).max(n)),
                    idx((o + 2 * lp).min(n + lp)),
                    1,
                );
            }
            // First activity in this segment: new in the instances whose current period
            // holds both it and the user's first activity: ends in (new, first + L].
            None => life.new.add(closed, idx(n.max(f)), idx(f + lp), 1),
        }
    }
}

/// A window's length and slide in base panes, for [`lifecycle_moved`], which runs for every
/// user whose last active pane moves and would otherwise divide five times per window.
#[derive(Debug, Clone, Copy)]
struct LifeGeometry {
    length_panes: i64,
    slide_panes: i64,
    slide_div: Divisor,
    /// `e_last` and the index of the instance ending there (`e_last / slide`), when known.
    /// Cached: dividing per window on every move cost 20 M more instructions over a 300 000-event
    /// replay than comparing `e_last` (callgrind).
    closed: Option<(Millis, i64)>,
}

impl LifeGeometry {
    fn new(w: &WindowState, base: Millis) -> Self {
        let slide_panes = w.slide / base;
        LifeGeometry {
            length_panes: w.length / base,
            slide_panes,
            slide_div: Divisor::new(slide_panes),
            closed: None,
        }
    }

    /// Index of the last closed instance of `w` (far in the past before the first close).
    fn closed(&mut self, w: &WindowState) -> i64 {
        match (w.e_last, self.closed) {
            (None, _) => i64::MIN / 2,
            (Some(e), Some((at, k))) if at == e => k,
            (Some(e), _) => {
                let k = e / w.slide;
                self.closed = Some((e, k));
                k
            }
        }
    }
}

/// Division of non-negative numbers by a fixed positive divisor: by one multiplication when
/// both fit 32 bits (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019:
/// `⌊n / d⌋ = ⌊M·n / 2⁶⁴⌋` with `M = ⌊(2⁶⁴ − 1) / d⌋ + 1`, exact for every 32-bit `n` and `d`),
/// by a division otherwise. Equal to `n / d` for every `n ≥ 0`.
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: i64,
    /// `M`, or 0 when the divisor is 1 or does not fit 32 bits.
    m: u64,
}

impl Divisor {
    fn new(d: i64) -> Self {
        assert!(d > 0, "divisor must be positive");
        let m = match u32::try_from(d) {
            Ok(d32) if d32 > 1 => u64::MAX / u64::from(d32) + 1,
            _ => 0,
        };
        Divisor { d, m }
    }

    fn div(self, n: i64) -> i64 {
        if self.d == 1 {
            return n;
        }
        match u32::try_from(n) {
            Ok(n32) if self.m != 0 => ((u128::from(self.m) * u128::from(n32)) >> 64) as i64,
            _ => n / self.d,
        }
    }
}

/// [`lifecycle_moved`] for calendar windows: a user is retained when their activity moves
/// from the previous instance into the current one, new when their first activity ever and
/// their first in the segment fall in the current one; and, on day windows, for the all-users
/// segment, "returned after n days" when their first activity today follows a first activity
/// ever `n` days ago.
fn calendar_moved(
    calendars: &mut [CalendarState],
    base: Millis,
    seg: usize,
    old: Option<u32>,
    new: u32,
    first: u32,
    lifecycle: bool,
) {
    let n = i64::from(new) * base;
    let o = old.map(|o| i64::from(o) * base);
    let f = i64::from(first) * base;
    for cal in calendars.iter_mut().filter(|c| !c.sketch) {
        let Some(cur) = cal.cur else { continue };
        if n < cur.start || n >= cur.end {
            continue;
        }
        // Counted whatever `lifecycle` says: n-day retention needs the new users of each day.
        if lifecycle || seg == 0 {
            if cal.life.len() <= seg {
                cal.life.resize(seg + 1, (0, 0));
            }
            match o {
                Some(o) if o >= cur.prev_start && o < cur.start => cal.life[seg].0 += 1,
                None if f >= cur.start => cal.life[seg].1 += 1,
                _ => {}
            }
        }
        let first_today = o.is_none_or(|o| o < cur.start);
        if seg == 0
            && first_today
            && !cal.n_days.is_empty()
            && let Some(back) = cal.days_back(f)
        {
            for (i, &days) in cal.n_days.iter().enumerate() {
                if days == back {
                    cal.n_day_returned[i] += 1;
                }
            }
        }
    }
}

impl From<SketchLifecycle> for LifecycleCounts {
    fn from(l: SketchLifecycle) -> Self {
        LifecycleCounts {
            retained: l.retained,
            churned: l.churned,
            new: l.new,
        }
    }
}

/// What a sketch window adds to a snapshot.
#[derive(Debug, Default)]
struct SketchExtra {
    lifecycle_skipped: bool,
    image: Option<Vec<u8>>,
}

/// An amount in micro-units (amounts are validated finite and bounded by the codec; `as`
/// saturates anything else rather than wrapping).
fn to_micros(amount: f64) -> i64 {
    (amount * 1e6).round() as i64
}

mod state;

pub use state::StateError;

#[cfg(test)]
mod tests;
