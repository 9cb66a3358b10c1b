//! Sketch mode (`distinct = "sketch"`): the distinct-user counts of sketch windows come from
//! mergeable sketches ([`crate::sketch`]) instead of per-user state, so memory is bounded
//! whatever the number of users.
//!
//! * Active, feature, paying and cancelled users: an HLL sketch per (pane, segment, feature) in
//!   a ring per slide ([`HllRing`]); each window unions its panes with the two-stacks method
//!   ([`SlidingUnion`]): one pane added and one union per close, plus a rebuild of the suffix
//!   unions once every `length / slide` closes — O(1) merges per close, amortized.
//! * Lifecycle (retained, churned, new users): a Theta sketch per (block, segment), where a block
//!   is the window's *lifecycle grain* (`gcd(length, 1d)`, or the length when the slide does not
//!   divide a day) ([`ThetaBlocks`]). Instances ending on a grain boundary union the blocks of
//!   the previous and current periods and intersect them; new users are the current period minus
//!   everyone seen before it (a running union of completed blocks).
//! * Calendar windows are tumbling: one running sketch per (segment, feature) and per segment
//!   for the current instance, the previous instance's set, and the first-seen sets of the last
//!   days for n-day retention ([`CalendarSketch`]).

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::Millis;
use crate::sketch::{
    CompactSet, DistinctSketch, DistinctUnion, Overlap, SetSketch, SetUnion, UserHash, a_not_b,
    a_not_b_estimate, overlap,
};

/// The feature id of "active users" among sketch keys.
pub(crate) const ACTIVE: u16 = u16::MAX;

fn hll(lg_k: u8) -> DistinctSketch {
    DistinctSketch::new(lg_k).expect("lg_k validated with the config")
}

fn hll_union(lg_k: u8) -> DistinctUnion {
    DistinctUnion::new(lg_k).expect("lg_k validated with the config")
}

fn theta(lg_k: u8) -> SetSketch {
    SetSketch::new(lg_k).expect("lg_k validated with the config")
}

fn theta_union(lg_k: u8) -> SetUnion {
    SetUnion::new(lg_k).expect("lg_k validated with the config")
}

/// Entry `i` of `v`, created by `make` when absent.
fn entry<T>(v: &mut Vec<Option<T>>, i: usize, make: impl FnOnce() -> T) -> &mut T {
    if v.len() <= i {
        v.resize_with(i + 1, || None);
    }
    v[i].get_or_insert_with(make)
}

/// Distinct-count keys: (segment, feature), the feature [`ACTIVE`] meaning active users.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    ids: HashMap<(u32, u16), u32>,
    /// Per key, its (segment, feature).
    pub of: Vec<(u32, u16)>,
    /// Per segment, its keys.
    pub of_seg: Vec<Vec<u32>>,
    /// Per segment, its active-users key (`u32::MAX`: none yet): the key of nearly every event.
    active: Vec<u32>,
}

impl Keys {
    pub fn id(&mut self, seg: u32, feature: u16) -> u32 {
        if feature == ACTIVE
            && let Some(&k) = self.active.get(seg as usize)
            && k != u32::MAX
        {
            return k;
        }
        if let Some(&k) = self.ids.get(&(seg, feature)) {
            return k;
        }
        let k = self.of.len() as u32;
        self.of.push((seg, feature));
        self.ids.insert((seg, feature), k);
        if self.of_seg.len() <= seg as usize {
            self.of_seg.resize_with(seg as usize + 1, Vec::new);
        }
        self.of_seg[seg as usize].push(k);
        if feature == ACTIVE {
            if self.active.len() <= seg as usize {
                self.active.resize(seg as usize + 1, u32::MAX);
            }
            self.active[seg as usize] = k;
        }
        k
    }

    pub fn get(&self, seg: u32, feature: u16) -> Option<u32> {
        self.ids.get(&(seg, feature)).copied()
    }

    pub fn len(&self) -> usize {
        self.of.len()
    }
}

#[derive(Debug)]
struct HllSlot {
    pane: i64,
    keys: Vec<Option<DistinctSketch>>,
}

/// Pane HLL sketches of one granularity, per key, in a ring just long enough for the longest
/// sketch window using it. Slots are reused lazily, like [`crate::pane::PaneRing`]'s.
#[derive(Debug)]
pub(crate) struct HllRing {
    pub granularity: Millis,
    lg_k: u8,
    slots: Vec<HllSlot>,
}

impl HllRing {
    pub fn new(granularity: Millis, panes: usize, lg_k: u8) -> Self {
        HllRing {
            granularity,
            lg_k,
            slots: (0..panes)
                .map(|_| HllSlot {
                    pane: i64::MIN,
                    keys: Vec::new(),
                })
                .collect(),
        }
    }

    /// Counts `user` under `key` in the pane holding time `t`; returns the pane.
    pub fn update(&mut self, t: Millis, key: u32, user: &UserHash) -> i64 {
        let pane = t.div_euclid(self.granularity);
        let n = self.slots.len() as i64;
        let slot = &mut self.slots[pane.rem_euclid(n) as usize];
        if slot.pane < pane {
            slot.pane = pane;
            slot.keys.iter_mut().for_each(|k| *k = None);
        } else if slot.pane > pane {
            return pane; // Older than anything a window can still see.
        }
        let k = key as usize;
        let lg_k = self.lg_k;
        entry(&mut slot.keys, k, || hll(lg_k)).update_hash(user);
        pane
    }

    /// The sketches of pane `pane`, per key (`None`: no user).
    fn pane(&self, pane: i64) -> &[Option<DistinctSketch>] {
        let n = self.slots.len() as i64;
        let slot = &self.slots[pane.rem_euclid(n) as usize];
        if slot.pane == pane { &slot.keys } else { &[] }
    }
}

/// The union, per key, of the last `n` panes of an [`HllRing`] (a window instance), kept with
/// the two-stacks method: panes `[front_start, mid)` have their suffix unions precomputed,
/// panes `[mid, end)` are summed in one running union, and a window `[end − n, end)` is one
/// suffix union plus the running union.
#[derive(Debug)]
pub(crate) struct SlidingUnion {
    n: i64,
    lg_k: u8,
    /// Only the active-user keys (stickiness's one-day range needs nothing else).
    only_active: bool,
    front_start: i64,
    mid: i64,
    end: i64,
    /// Per key: for each pane `i` in `[front_start, mid)`, the union of panes `[i, mid)`.
    front: Vec<Vec<Option<DistinctSketch>>>,
    /// Per key: the union of panes `[mid, end)`.
    back: Vec<Option<DistinctUnion>>,
}

impl SlidingUnion {
    pub fn new(n: i64, lg_k: u8, only_active: bool) -> Self {
        SlidingUnion {
            n,
            lg_k,
            only_active,
            front_start: 0,
            mid: 0,
            end: 0,
            front: Vec::new(),
            back: Vec::new(),
        }
    }

    /// Forgets the sums: the next [`advance`](Self::advance) past `end` re-reads every pane
    /// of its instance from the ring (at the start, and after a quiet stretch).
    pub fn restart(&mut self, end: i64) {
        self.reset(end - self.n);
    }

    fn reset(&mut self, at: i64) {
        self.front_start = at;
        self.mid = at;
        self.end = at;
        self.front.clear();
        self.back.clear();
    }

    fn wants(&self, keys: &Keys, key: usize) -> bool {
        !self.only_active || keys.of[key].1 == ACTIVE
    }

    /// Panes before `end` are complete: the instance is `[end − n, end)`.
    pub fn advance(&mut self, end: i64, ring: &HllRing, keys: &Keys) {
        if end - self.end >= self.n || end < self.end {
            self.reset(end - self.n);
        }
        let start = end - self.n;
        if start < self.mid {
            // The front still covers the instance's start: the new panes join the back.
            for p in self.end..end {
                for (k, sketch) in ring.pane(p).iter().enumerate() {
                    let Some(sketch) = sketch else { continue };
                    if self.wants(keys, k) {
                        let lg_k = self.lg_k;
                        entry(&mut self.back, k, || hll_union(lg_k)).add(sketch);
                    }
                }
            }
            self.end = end;
            return;
        }
        // The front is used up: rebuild it over the instance's panes (the back's included).
        self.front.clear();
        self.front.resize_with(keys.len(), Vec::new);
        for (k, suffixes) in self.front.iter_mut().enumerate() {
            if self.only_active && keys.of[k].1 != ACTIVE {
                continue;
            }
            // Suffix unions from the newest pane back; none before the key's newest pane.
            let mut union: Option<DistinctUnion> = None;
            for p in (start..end).rev() {
                if let Some(Some(sketch)) = ring.pane(p).get(k) {
                    union
                        .get_or_insert_with(|| hll_union(self.lg_k))
                        .add(sketch);
                }
                if let Some(u) = &union {
                    if suffixes.is_empty() {
                        suffixes.resize_with(self.n as usize, || None);
                    }
                    suffixes[(p - start) as usize] = Some(u.to_sketch());
                }
            }
        }
        self.front_start = start;
        self.mid = end;
        self.end = end;
        self.back.clear();
    }

    /// A late user in pane `pane`, already summed into this union.
    pub fn late(&mut self, pane: i64, key: u32, user: &UserHash, keys: &Keys) {
        let k = key as usize;
        if pane >= self.end || pane < self.front_start || !self.wants(keys, k) {
            return;
        }
        let lg_k = self.lg_k;
        if pane >= self.mid {
            entry(&mut self.back, k, || hll_union(lg_k)).add_hash(user);
        } else {
            if self.front.len() <= k {
                self.front.resize_with(k + 1, Vec::new);
            }
            let suffixes = &mut self.front[k];
            suffixes.resize_with((self.mid - self.front_start) as usize, || None);
            for s in &mut suffixes[..=(pane - self.front_start) as usize] {
                s.get_or_insert_with(|| hll(lg_k)).update_hash(user);
            }
        }
    }

    fn parts(&self, key: u32) -> (Option<&DistinctSketch>, Option<&DistinctUnion>) {
        let k = key as usize;
        let start = self.end - self.n;
        let front = (start < self.mid && start >= self.front_start)
            .then(|| self.front.get(k))
            .flatten()
            .and_then(|s| s.get((start - self.front_start) as usize))
            .and_then(Option::as_ref);
        let back = self.back.get(k).and_then(Option::as_ref);
        (front, back)
    }

    /// Estimated distinct users of `key` in the instance.
    pub fn estimate(&self, key: u32) -> f64 {
        match self.parts(key) {
            (None, None) => 0.0,
            (Some(f), None) => f.composite_estimate(),
            (None, Some(b)) => b.composite_estimate(),
            (Some(f), Some(b)) => {
                let mut u = b.clone();
                u.add(f);
                u.composite_estimate()
            }
        }
    }

    /// The instance's sketch of `key` (for snapshots that carry it).
    pub fn sketch(&self, key: u32) -> DistinctSketch {
        match self.parts(key) {
            (None, None) => hll(self.lg_k),
            (Some(f), None) => f.clone(),
            (None, Some(b)) => b.to_sketch(),
            (Some(f), Some(b)) => {
                let mut u = b.clone();
                u.add(f);
                u.to_sketch()
            }
        }
    }
}

#[derive(Debug)]
struct ThetaSlot {
    block: i64,
    /// Per segment: users added one by one (every event, or only late ones in a derived grain).
    segs: Vec<Option<SetSketch>>,
    /// Per segment, in a derived grain: the union of the finer blocks, built on completion.
    built: Vec<Option<CompactSet>>,
}

/// Theta sketches of active users per (block, segment) for one lifecycle grain, and the users
/// seen before each recent block boundary.
///
/// A grain that is a multiple of a finer one in use is *derived*: its blocks are built from the
/// finer blocks when they complete (one union per segment), so an event updates one Theta
/// sketch per segment, not one per grain. Late events update both.
#[derive(Debug)]
pub(crate) struct ThetaBlocks {
    pub grain: Millis,
    lg_k: u8,
    slots: Vec<ThetaSlot>,
    /// Index of the finer grain this one is built from.
    pub derived_from: Option<usize>,
    /// All users (segment 0) of every completed block.
    ever: SetUnion,
    /// `(boundary, users seen before it)`, newest last.
    ever_before: VecDeque<(Millis, CompactSet)>,
    keep: usize,
    /// Blocks completed so far, and the end of the last one.
    completions: u64,
    completed_until: Millis,
    /// Users of late events in blocks already completed: `(block end, completions when the set
    /// was started, users)`. Snapshots in `ever_before` taken before they arrived lack them.
    late: Vec<(Millis, u64, SetSketch)>,
}

impl ThetaBlocks {
    /// Blocks of `grain` covering `span` (the ring), with "seen before" kept for `periods`
    /// boundaries back.
    pub fn new(grain: Millis, span: Millis, periods: usize, lg_k: u8) -> Self {
        ThetaBlocks {
            grain,
            lg_k,
            slots: (0..(span / grain) as usize + 2)
                .map(|_| ThetaSlot {
                    block: i64::MIN,
                    segs: Vec::new(),
                    built: Vec::new(),
                })
                .collect(),
            derived_from: None,
            ever: theta_union(lg_k),
            ever_before: VecDeque::new(),
            keep: periods + 1,
            completions: 0,
            completed_until: Millis::MIN,
            late: Vec::new(),
        }
    }

    fn slot_mut(&mut self, block: i64) -> Option<&mut ThetaSlot> {
        let n = self.slots.len() as i64;
        let slot = &mut self.slots[block.rem_euclid(n) as usize];
        if slot.block < block {
            slot.block = block;
            slot.segs.iter_mut().for_each(|s| *s = None);
            slot.built.iter_mut().for_each(|s| *s = None);
        } else if slot.block > block {
            return None; // Older than anything a window can still see.
        }
        Some(slot)
    }

    pub fn update(&mut self, t: Millis, seg: u32, user: &UserHash) {
        let block = t.div_euclid(self.grain);
        let lg_k = self.lg_k;
        let Some(slot) = self.slot_mut(block) else {
            return;
        };
        let s = seg as usize;
        entry(&mut slot.segs, s, || theta(lg_k)).update_hash(user);
        let end = (block + 1) * self.grain;
        if seg == 0 && end <= self.completed_until {
            // Too late for the "seen before" snapshots already taken.
            let at = self.completions;
            let pos = match self.late.iter().position(|(e, a, _)| *e == end && *a == at) {
                Some(p) => p,
                None => {
                    self.late.push((end, at, theta(lg_k)));
                    self.late.len() - 1
                }
            };
            self.late[pos].2.update_hash(user);
        }
    }

    /// Adds the users of `seg` in block `block` to `union`.
    fn add_block(&self, block: i64, seg: u32, union: &mut SetUnion) {
        let slot = &self.slots[block.rem_euclid(self.slots.len() as i64) as usize];
        if slot.block != block {
            return;
        }
        let s = seg as usize;
        if let Some(Some(sketch)) = slot.segs.get(s) {
            union.add(sketch);
        }
        if let Some(Some(built)) = slot.built.get(s) {
            union.add(built);
        }
    }

    /// Users of `seg` in `[from, to)` (block boundaries).
    pub fn union(&self, from: Millis, to: Millis, seg: u32) -> CompactSet {
        let mut union = theta_union(self.lg_k);
        for block in from.div_euclid(self.grain)..to.div_euclid(self.grain) {
            self.add_block(block, seg, &mut union);
        }
        union.result()
    }

    /// How many segments have a block in `[from, to)` (segment ids below it).
    fn segments(&self, from: Millis, to: Millis) -> usize {
        (from.div_euclid(self.grain)..to.div_euclid(self.grain))
            .map(|block| {
                let slot = &self.slots[block.rem_euclid(self.slots.len() as i64) as usize];
                if slot.block == block {
                    slot.segs.len().max(slot.built.len())
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0)
    }

    /// A derived grain: builds the block ending at `b` from the finer blocks of `finer`.
    pub fn build(&mut self, b: Millis, finer: &ThetaBlocks) {
        let from = b - self.grain;
        let built: Vec<Option<CompactSet>> = (0..finer.segments(from, b))
            .map(|seg| {
                let u = finer.union(from, b, seg as u32);
                (!u.is_empty()).then_some(u)
            })
            .collect();
        if let Some(slot) = self.slot_mut(b.div_euclid(self.grain) - 1) {
            slot.built = built;
        }
    }

    /// The block ending at `b` is complete (and built): its users join "seen before".
    pub fn completed(&mut self, b: Millis) {
        let mut union = std::mem::replace(&mut self.ever, theta_union(self.lg_k));
        self.add_block(b.div_euclid(self.grain) - 1, 0, &mut union);
        for (_, _, users) in &self.late {
            union.add(users);
        }
        self.ever = union;
        self.completions += 1;
        self.completed_until = self.completed_until.max(b);
        let (done, keep) = (self.completions, self.keep as u64);
        self.late.retain(|&(_, at, _)| done - at <= keep);
        self.ever_before.push_back((b, self.ever.result()));
        while self.ever_before.len() > self.keep {
            self.ever_before.pop_front();
        }
    }

    /// Users seen before `t` (as of the latest boundary at or before it); empty before any.
    pub fn seen_before(&self, t: Millis) -> CompactSet {
        let base = self
            .ever_before
            .iter()
            .rev()
            .find(|(b, _)| *b <= t)
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let mut late = self.late.iter().filter(|(end, _, _)| *end <= t).peekable();
        if late.peek().is_none() {
            return base;
        }
        let mut union = theta_union(self.lg_k);
        union.add(&base);
        for (_, _, users) in late {
            union.add(users);
        }
        union.result()
    }

    /// Lifecycle of segment `seg` for the instance `[end − length, end)`.
    pub fn lifecycle(&self, end: Millis, length: Millis, seg: u32) -> SketchLifecycle {
        let current = self.union(end - length, end, seg);
        let previous = self.union(end - 2 * length, end - length, seg);
        let new = a_not_b_estimate(&current, &self.seen_before(end - length));
        SketchLifecycle::of(overlap(&previous, &current), new)
    }
}

/// Lifecycle estimates of one (instance, segment).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SketchLifecycle {
    pub retained: u64,
    pub churned: u64,
    pub new: u64,
}

impl SketchLifecycle {
    fn of(o: Overlap, new: f64) -> Self {
        SketchLifecycle {
            retained: o.retained.round() as u64,
            churned: o.churned.round() as u64,
            new: new.round() as u64,
        }
    }
}

/// Sketches of the current instance of a calendar window.
#[derive(Debug)]
pub(crate) struct CalendarSketch {
    lg_k: u8,
    /// Theta blocks (index, grain) whose union gives an instance's active users when its
    /// boundaries fall on block boundaries (then no Theta sketch of its own is updated).
    pub blocks: Option<(usize, Millis)>,
    /// Whether the current instance takes its active users from `blocks`.
    from_blocks: bool,
    /// Per key: users of the current instance.
    pub cur_hll: Vec<Option<DistinctSketch>>,
    /// Per segment: active users of the current instance (unless `from_blocks`) and of the
    /// previous one.
    cur: Vec<Option<SetSketch>>,
    prev: Vec<Option<CompactSet>>,
    /// Per segment: users of late events in the previous instance, after it closed.
    prev_late: Vec<Option<SetSketch>>,
    /// All users of the closed instances.
    ever: SetUnion,
    /// Per closed instance (newest last): its start and the users first seen in it.
    first: VecDeque<(Millis, CompactSet)>,
    /// Partials mode, beside `first`: the instance's users and everyone seen before it, whose
    /// difference `first` is. A merger unions them over partitions before taking the
    /// difference, as one engine does; the differences of partitions sampled at their own θ
    /// would not add up to the same sample.
    first_parts: Option<VecDeque<(CompactSet, CompactSet)>>,
    keep: usize,
}

impl CalendarSketch {
    pub fn new(lg_k: u8, keep: usize, blocks: Option<(usize, Millis)>, partials: bool) -> Self {
        CalendarSketch {
            first_parts: partials.then(VecDeque::new),
            lg_k,
            blocks,
            from_blocks: false,
            cur_hll: Vec::new(),
            cur: Vec::new(),
            prev: Vec::new(),
            prev_late: Vec::new(),
            ever: theta_union(lg_k),
            first: VecDeque::new(),
            keep,
        }
    }

    /// A new instance `[start, end)` begins.
    pub fn begin(&mut self, start: Millis, end: Millis) {
        self.from_blocks = self
            .blocks
            .is_some_and(|(_, g)| start.rem_euclid(g) == 0 && end.rem_euclid(g) == 0);
    }

    pub fn update(&mut self, key: u32, seg: u32, active: bool, user: &UserHash) {
        let lg_k = self.lg_k;
        let k = key as usize;
        entry(&mut self.cur_hll, k, || hll(lg_k)).update_hash(user);
        if active && !self.from_blocks {
            let s = seg as usize;
            entry(&mut self.cur, s, || theta(lg_k)).update_hash(user);
        }
    }

    fn hll_of(&self, key: Option<u32>) -> Option<&DistinctSketch> {
        key.and_then(|k| self.cur_hll.get(k as usize))
            .and_then(Option::as_ref)
    }

    pub fn estimate(&self, key: Option<u32>) -> f64 {
        self.hll_of(key)
            .map_or(0.0, DistinctSketch::composite_estimate)
    }

    pub fn sketch(&self, key: Option<u32>) -> DistinctSketch {
        self.hll_of(key).cloned().unwrap_or_else(|| hll(self.lg_k))
    }

    /// Per segment (`segments` of them): the active users of the instance `[start, end)`.
    pub fn current(
        &self,
        blocks: &[ThetaBlocks],
        start: Millis,
        end: Millis,
        segments: usize,
    ) -> Vec<CompactSet> {
        (0..segments)
            .map(|seg| match self.blocks {
                Some((b, _)) if self.from_blocks => blocks[b].union(start, end, seg as u32),
                _ => self
                    .cur
                    .get(seg)
                    .and_then(Option::as_ref)
                    .map(SetSketch::compact)
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// An activity event of segment `seg` at `t`, in an instance already closed (the previous
    /// one starts at `prev_start`): it joins the previous period of lifecycle KPIs, "seen
    /// before", and — when the user had not been seen — the n-day cohort of its day.
    pub fn seen_late(&mut self, seg: u32, t: Millis, prev_start: Millis, user: &UserHash) {
        let lg_k = self.lg_k;
        if t >= prev_start {
            let s = seg as usize;
            entry(&mut self.prev_late, s, || theta(lg_k)).update_hash(user);
        }
        if seg != 0 {
            return;
        }
        let mut one = theta(lg_k);
        one.update_hash(user);
        if let Some(pos) = self.first.iter().rposition(|(start, _)| *start <= t)
            && a_not_b_estimate(&one, &self.ever.result()) > 0.0
        {
            let mut union = theta_union(lg_k);
            union.add(&self.first[pos].1);
            union.add(&one);
            self.first[pos].1 = union.result();
            if let Some((users, _)) = self.first_parts.as_mut().and_then(|f| f.get_mut(pos)) {
                let mut union = theta_union(lg_k);
                union.add(users);
                union.add(&one);
                *users = union.result();
            }
        }
        self.ever.add(&one);
    }

    /// Users seen in closed instances (before the current one).
    pub fn seen_before(&self) -> CompactSet {
        self.ever.result()
    }

    /// Lifecycle of segment `seg`, whose active users are `current` (`seen`:
    /// [`seen_before`](Self::seen_before)).
    pub fn lifecycle(
        &self,
        seg: usize,
        current: &CompactSet,
        seen: &CompactSet,
    ) -> SketchLifecycle {
        let new = a_not_b_estimate(current, seen);
        SketchLifecycle::of(overlap(&self.previous(seg), current), new)
    }

    /// Users of segment `seg` in the previous instance (late ones included).
    pub fn previous(&self, seg: usize) -> CompactSet {
        let previous = self
            .prev
            .get(seg)
            .and_then(Option::as_ref)
            .cloned()
            .unwrap_or_default();
        match self.prev_late.get(seg) {
            Some(Some(late)) => {
                let mut union = theta_union(self.lg_k);
                union.add(&previous);
                union.add(late);
                union.result()
            }
            _ => previous,
        }
    }

    /// The users first seen `n` instances before the current one.
    pub fn cohort(&self, n: u32) -> Option<&CompactSet> {
        let cohort = self.first.len().checked_sub(n as usize)?;
        Some(&self.first[cohort].1)
    }

    /// Partials mode: the users of the instance `n` before the current one, and everyone seen
    /// before it (their difference is [`cohort`](Self::cohort)).
    pub fn cohort_parts(&self, n: u32) -> Option<&(CompactSet, CompactSet)> {
        let parts = self.first_parts.as_ref()?;
        parts.get(parts.len().checked_sub(n as usize)?)
    }

    /// Of the users first seen `n` instances before the current one (whose users are `all`),
    /// the share active in it.
    pub fn n_back_retention(&self, n: u32, all: &CompactSet) -> Option<f64> {
        overlap(self.cohort(n)?, all).retention_ratio()
    }

    /// The current instance closed (`current`: its users per segment; `seen`: users seen
    /// before it); the next one starts empty.
    pub fn close(&mut self, start: Millis, current: Vec<CompactSet>, seen: &CompactSet) {
        if let Some(all) = current.first() {
            if self.keep > 0 {
                self.first.push_back((start, a_not_b(all, seen)));
                if let Some(parts) = &mut self.first_parts {
                    parts.push_back((all.clone(), seen.clone()));
                }
                self.trim_first();
            }
            self.ever.add(all);
        }
        self.prev = current
            .into_iter()
            .map(|s| (!s.is_empty()).then_some(s))
            .collect();
        self.prev_late.clear();
        self.cur.clear();
        self.cur_hll.clear();
    }

    /// Instances went by with no event (a quiet stretch): those starting at `skipped`, then
    /// the new one.
    pub fn skip(&mut self, skipped: &[Millis]) {
        if skipped.is_empty() {
            return;
        }
        self.cur.clear();
        self.cur_hll.clear();
        self.prev.clear();
        self.prev_late.clear();
        for &start in skipped {
            self.first.push_back((start, CompactSet::default()));
            if let Some(parts) = &mut self.first_parts {
                parts.push_back((CompactSet::default(), CompactSet::default()));
            }
        }
        self.trim_first();
    }

    fn trim_first(&mut self) {
        while self.first.len() > self.keep {
            self.first.pop_front();
            if let Some(parts) = &mut self.first_parts {
                parts.pop_front();
            }
        }
    }
}
