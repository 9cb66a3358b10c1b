//! Mergeable sketches for `distinct = "sketch"`: bounded memory instead of exact user sets.
//!
//! Thin wrappers over the Apache DataSketches Rust port (`datasketches` crate), so that the binary
//! images are the standard DataSketches formats that the Java, C++ and Python (`datasketches` on
//! PyPI) libraries read and merge:
//!
//! * [`DistinctSketch`]: a HyperLogLog sketch (HLL_8 registers) for distinct counts such as
//!   `active_users`. Mergeable, so pane sketches add up to window sketches.
//! * [`SetSketch`] (updatable) and [`CompactSet`] (immutable, what set operations return): Theta
//!   sketches for counts that need intersections and differences: retention, churn, lifecycle.
//!   [`SetUnion`] merges them; [`intersection`], [`a_not_b`] and [`overlap`] combine them.
//!
//! # Hashing
//!
//! A user id is hashed as the raw UTF-8 bytes of the string with MurmurHash3 (x64, 128) and the
//! DataSketches default seed 9001, exactly like `update(str)` in the Java, C++ and Python
//! libraries: a downstream service that sketches the same ids gets the same sketch. As in those
//! libraries, the empty string is ignored.
//!
//! # Memory and error, per sketch (so per (pane, segment))
//!
//! `k = 2^lg_k`; the default `lg_k` is [`DEFAULT_LG_K`] = 12, `k = 4096`. The relative standard
//! error (RSE) is the standard deviation of `estimate / true − 1`; the true count lies within
//! ±3 RSE of the estimate with ≈ 99.7 % probability (±2 RSE: 95 %).
//!
//! | sketch, lg_k = 12                          | heap bytes, at most         | RSE                 | 3 RSE |
//! |--------------------------------------------|-----------------------------|---------------------|-------|
//! | [`DistinctSketch`], fed by one stream      | 4 KiB (`2^lg_k` registers)  | 0.833/√k = 1.30 %   | 3.9 % |
//! | [`DistinctSketch`] after a merge           | 4 KiB                       | 1.04/√k = 1.62 %    | 4.9 % |
//! | [`SetSketch`], [`SetUnion`] (updatable)    | 64 KiB (`2^(lg_k+1)` × 8 B) | ≤ 1/√(k−1) = 1.56 % | 4.7 % |
//! | [`CompactSet`]: union, trimmed, set op     | 32 KiB (`k` × 8 B)          | ≤ 1.56 %            | 4.7 % |
//! | [`CompactSet`] from [`SetSketch::compact`] | 60 KiB (`15/8·k` × 8 B)     | ≤ 1.56 %            | 4.7 % |
//!
//! Plus the struct itself (≤ 88 bytes). Small sketches stay small: an HLL sketch keeps 4-byte
//! coupons until about `k/8` distinct users (≤ 2 KiB), a Theta table starts at 128 slots (1 KiB)
//! and grows 8× at a time, and below `k` distinct users a Theta sketch is exact. Images: HLL
//! 4136 bytes once dense; compact Theta `8·retained + 24` bytes ([`CompactSet::serialize`]),
//! about 25 % less with [`CompactSet::serialize_compressed`]. [`hll_max_bytes`],
//! [`set_sketch_max_bytes`], [`compact_set_max_bytes`], [`hll_rse`], [`hll_hip_rse`] and
//! [`theta_rse`] give the numbers for any `lg_k`; each sketch's `memory_bytes()` is its current
//! size.
//!
//! Set operations are less accurate than single estimates because they work on a sample: with
//! `θ = min(θ_A, θ_B) ≈ k / max(|A|, |B|)`, `|A ∩ B|` is estimated from about `θ·|A ∩ B|` sampled
//! users, so its RSE is about `√(max(|A|, |B|) / (k·|A ∩ B|))` (2.5 % at 40 % overlap of two
//! equal sets, lg_k = 12); likewise for `A \ B`. The retention ratio `|P ∩ C| / |P|` from
//! [`overlap`] is a binomial proportion over the `m ≈ k·|P|/max(|P|, |C|)` sampled users of `P`:
//! standard error `√(r(1 − r)/m)` (absolute; 0.77 points at r = 0.4, lg_k = 12), which
//! [`Overlap::retention_ratio_std_err`] reports from the actual sample.
//!
//! Everything here is pure: no I/O, no clock, no randomness beyond the fixed hash seed.

use std::mem::size_of;

use datasketches::common::NumStdDev;
use datasketches::hash::value::raw_bytes;
use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};
use datasketches::theta::{
    CompactThetaSketch, ThetaANotB, ThetaIntersection, ThetaSketch, ThetaSketchBuilder,
    ThetaSketchView, ThetaUnion, ThetaUnionBuilder,
};

/// Default `lg_k` for both sketch kinds: `k = 4096`.
pub const DEFAULT_LG_K: u8 = 12;
/// Smallest `lg_k` accepted by both sketch kinds (Theta's minimum; HLL allows 4).
pub const MIN_LG_K: u8 = 5;
/// Largest `lg_k` accepted by both sketch kinds (HLL's maximum; Theta allows 26).
pub const MAX_LG_K: u8 = 21;

/// Why a sketch could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    #[error("lg_k must be in {MIN_LG_K}..={MAX_LG_K}, got {0}")]
    LgK(u8),
    #[error("invalid {kind} sketch image: {message}")]
    Image { kind: &'static str, message: String },
}

fn check_lg_k(lg_k: u8) -> Result<(), SketchError> {
    if (MIN_LG_K..=MAX_LG_K).contains(&lg_k) {
        Ok(())
    } else {
        Err(SketchError::LgK(lg_k))
    }
}

/// The library only fails on arguments this module has already validated (an `lg_k` in range,
/// the default seed, a well-formed Theta sketch): every sketch here is built with the default seed
/// or checked when deserialized, so an error is a bug in this module, not bad input.
fn validated<T>(result: Result<T, datasketches::error::Error>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => unreachable!("datasketches rejected a validated argument: {err}"),
    }
}

fn num_std_dev(sigmas: u8) -> NumStdDev {
    match sigmas {
        0 | 1 => NumStdDev::One,
        2 => NumStdDev::Two,
        _ => NumStdDev::Three,
    }
}

/// The error and memory helpers below take an `lg_k` in [`MIN_LG_K`]`..=`[`MAX_LG_K`].
///
/// HLL relative standard error of a merged (or deserialized out-of-order) sketch:
/// `1.04/√k` (`√(3 ln 2 − 1)`, the DataSketches non-HIP factor).
pub fn hll_rse(lg_k: u8) -> f64 {
    1.038_96 / f64::from(lg_k).exp2().sqrt()
}

/// HLL relative standard error of a sketch fed by one stream (the HIP estimator): `0.833/√k`.
pub fn hll_hip_rse(lg_k: u8) -> f64 {
    0.832_554_6 / f64::from(lg_k).exp2().sqrt()
}

/// Theta relative standard error (upper bound, reached once the sketch samples): `1/√(k − 1)`.
pub fn theta_rse(lg_k: u8) -> f64 {
    1.0 / (f64::from(lg_k).exp2() - 1.0).sqrt()
}

/// Most bytes a [`DistinctSketch`] holds on the heap: its `2^lg_k` one-byte registers.
pub fn hll_max_bytes(lg_k: u8) -> usize {
    1usize << lg_k
}

/// Most bytes a [`SetSketch`] (or a [`SetUnion`]) holds on the heap: a table of `2^(lg_k+1)`
/// 8-byte slots.
pub fn set_sketch_max_bytes(lg_k: u8) -> usize {
    (2usize << lg_k) * 8
}

/// Most bytes a [`CompactSet`] from a [`SetUnion`], [`SetSketch::into_compact`] or a set
/// operation on those holds on the heap: `k` 8-byte hashes. ([`SetSketch::compact`] keeps every
/// retained hash of the table: up to `15/8·k`.)
pub fn compact_set_max_bytes(lg_k: u8) -> usize {
    (1usize << lg_k) * 8
}

/// A user id hashed once for every sketch it goes into (the engine updates several per event).
///
/// `coupon` is the HLL coupon of the id, hashed exactly like `update(str)` in the other
/// DataSketches libraries, so published HLL images merge with sketches built elsewhere from the
/// same ids. `key` is a 64-bit hash of the id that Theta sketches (which stay internal) and the
/// engine's open-session map use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserHash {
    coupon: Coupon,
    pub key: u64,
}

impl UserHash {
    pub fn of(user: &str, key: u64) -> Self {
        UserHash {
            coupon: Coupon::from_value(raw_bytes::from_str(user)),
            key,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HLL
// ---------------------------------------------------------------------------------------------

/// Distinct count (HyperLogLog, HLL_8 registers): bounded memory, mergeable.
///
/// A sketch updated by one stream uses the HIP estimator (RSE [`hll_hip_rse`]); after a merge it
/// uses the composite estimator (RSE [`hll_rse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DistinctSketch {
    inner: HllSketch,
}

impl Default for DistinctSketch {
    fn default() -> Self {
        Self {
            inner: validated(HllSketch::new(DEFAULT_LG_K, HllType::Hll8)),
        }
    }
}

impl DistinctSketch {
    /// An empty sketch with `2^lg_k` registers.
    pub fn new(lg_k: u8) -> Result<Self, SketchError> {
        check_lg_k(lg_k)?;
        Ok(Self {
            inner: validated(HllSketch::new(lg_k, HllType::Hll8)),
        })
    }

    /// Counts a user id (ignored when empty, like the other DataSketches libraries).
    pub fn update(&mut self, user: &str) {
        if !user.is_empty() {
            self.inner.update(raw_bytes::from_str(user));
        }
    }

    /// Counts a user hashed with [`UserHash::of`] (the same as [`update`](Self::update) of
    /// the id).
    pub fn update_hash(&mut self, user: &UserHash) {
        self.inner.update_with_coupon(user.coupon);
    }

    /// Adds `other` into `self`. With different `lg_k`, the result has the smaller one.
    pub fn merge(&mut self, other: &DistinctSketch) {
        if other.inner.is_empty() {
            return;
        }
        let mut union = validated(HllUnion::new(self.lg_k()));
        union.update(&self.inner);
        union.update(&other.inner);
        self.inner = union.to_sketch(HllType::Hll8);
    }

    /// The union of `sketches`, with at most `2^lg_k` registers. Cheaper than repeated
    /// [`merge`](Self::merge) for many sketches (e.g. the panes of a window).
    pub fn union_of<'a>(
        lg_k: u8,
        sketches: impl IntoIterator<Item = &'a DistinctSketch>,
    ) -> Result<Self, SketchError> {
        check_lg_k(lg_k)?;
        let mut union = validated(HllUnion::new(lg_k));
        for sketch in sketches {
            union.update(&sketch.inner);
        }
        Ok(Self {
            inner: union.to_sketch(HllType::Hll8),
        })
    }

    /// Estimated number of distinct users.
    pub fn estimate(&self) -> f64 {
        self.inner.estimate()
    }

    /// The estimate that depends only on the registers, not on the order users arrived in
    /// (composite estimator, RSE [`hll_rse`]): what the engine publishes, so that the same
    /// events give the same KPIs however Kafka interleaves partitions.
    pub fn composite_estimate(&self) -> f64 {
        self.inner.composite_estimate()
    }

    /// `(lower, upper)` bounds at `sigmas` standard deviations (1, 2 or 3; clamped).
    pub fn bounds(&self, sigmas: u8) -> (f64, f64) {
        let n = num_std_dev(sigmas);
        (self.inner.lower_bound(n), self.inner.upper_bound(n))
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn lg_k(&self) -> u8 {
        self.inner.lg_config_k()
    }

    /// A union that starts with this sketch's users.
    pub fn to_union(&self) -> DistinctUnion {
        let mut union = validated(HllUnion::new(self.lg_k()));
        union.update(&self.inner);
        DistinctUnion { inner: union }
    }

    /// Bytes held now (struct plus heap), at most `size_of::<Self>() + hll_max_bytes(lg_k)`.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.inner.estimated_size()
    }

    /// The standard DataSketches HLL image (readable by `hll_sketch.deserialize` in Python).
    pub fn serialize(&self) -> Vec<u8> {
        self.inner.serialize()
    }

    /// The HLL_4 image of the same registers: about half the bytes of
    /// [`serialize`](Self::serialize) once dense (scale-out partials carry these).
    pub fn serialize_compact(&self) -> Vec<u8> {
        let mut union = validated(HllUnion::new(self.lg_k()));
        union.update(&self.inner);
        union.to_sketch(HllType::Hll4).serialize()
    }

    /// Reads a DataSketches HLL image (any of HLL_4/6/8; merges keep working across types).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, SketchError> {
        let inner = HllSketch::deserialize(bytes).map_err(|err| SketchError::Image {
            kind: "HLL",
            message: err.to_string(),
        })?;
        if !(MIN_LG_K..=MAX_LG_K).contains(&inner.lg_config_k()) {
            return Err(SketchError::LgK(inner.lg_config_k()));
        }
        Ok(Self { inner })
    }
}

/// A running union of [`DistinctSketch`]es (HLL_8 registers), cheaper than repeated
/// [`DistinctSketch::merge`] when sketches are added one at a time.
#[derive(Debug, Clone)]
pub struct DistinctUnion {
    inner: HllUnion,
}

impl DistinctUnion {
    /// An empty union with at most `2^lg_k` registers.
    pub fn new(lg_k: u8) -> Result<Self, SketchError> {
        check_lg_k(lg_k)?;
        Ok(Self {
            inner: validated(HllUnion::new(lg_k)),
        })
    }

    pub fn add(&mut self, sketch: &DistinctSketch) {
        self.inner.update(&sketch.inner);
    }

    /// Counts one user (see [`UserHash`]).
    pub fn add_hash(&mut self, user: &UserHash) {
        // A union's gadget takes a coupon through the sketch of one coupon.
        let mut one = validated(HllSketch::new(self.inner.lg_max_k(), HllType::Hll8));
        one.update_with_coupon(user.coupon);
        self.inner.update(&one);
    }

    pub fn estimate(&self) -> f64 {
        self.inner.estimate()
    }

    /// See [`DistinctSketch::composite_estimate`].
    pub fn composite_estimate(&self) -> f64 {
        self.inner.composite_estimate()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The union so far, as a sketch (HLL_8).
    pub fn to_sketch(&self) -> DistinctSketch {
        DistinctSketch {
            inner: self.inner.to_sketch(HllType::Hll8),
        }
    }

    /// Bytes held now.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.inner.estimated_size()
    }
}

// ---------------------------------------------------------------------------------------------
// Theta
// ---------------------------------------------------------------------------------------------

mod sealed {
    use datasketches::theta::ThetaSketchView;

    /// Gives set operations a view of either Theta sketch type.
    pub trait Sealed {
        fn view(&self) -> ThetaSketchView<'_>;
    }
}

/// A Theta sketch that set operations accept: [`SetSketch`] or [`CompactSet`].
pub trait SetLike: sealed::Sealed {}

/// Users for set operations (Theta sketch, updatable): exact below `k` distinct users, then a
/// uniform sample of about `k` hashes.
///
/// Its hash table grows up to [`set_sketch_max_bytes`]; turn sealed sketches into
/// [`CompactSet`]s ([`into_compact`](Self::into_compact)) to keep 8 bytes per retained hash.
#[derive(Debug)]
pub struct SetSketch {
    inner: ThetaSketch,
}

impl Default for SetSketch {
    fn default() -> Self {
        Self {
            inner: validated(ThetaSketchBuilder::default().lg_k(DEFAULT_LG_K).build()),
        }
    }
}

impl SetSketch {
    /// An empty sketch with nominal size `k = 2^lg_k`.
    pub fn new(lg_k: u8) -> Result<Self, SketchError> {
        check_lg_k(lg_k)?;
        Ok(Self {
            inner: validated(ThetaSketchBuilder::default().lg_k(lg_k).build()),
        })
    }

    /// Adds a user id (ignored when empty, like the other DataSketches libraries).
    pub fn update(&mut self, user: &str) {
        if !user.is_empty() {
            self.inner.update(raw_bytes::from_str(user));
        }
    }

    /// Adds a user by its [`UserHash::key`]. Such sketches sample by that key, not by the
    /// id's DataSketches hash: combine them only with sketches updated the same way.
    pub fn update_hash(&mut self, user: &UserHash) {
        self.inner.update(user.key);
    }

    /// Estimated number of distinct users.
    pub fn estimate(&self) -> f64 {
        self.inner.estimate()
    }

    /// `(lower, upper)` bounds at `sigmas` standard deviations (1, 2 or 3; clamped).
    pub fn bounds(&self, sigmas: u8) -> (f64, f64) {
        let n = num_std_dev(sigmas);
        (self.inner.lower_bound(n), self.inner.upper_bound(n))
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn lg_k(&self) -> u8 {
        self.inner.lg_k()
    }

    /// Hashes retained now.
    pub fn num_retained(&self) -> usize {
        self.inner.num_retained()
    }

    /// Bytes held now (struct plus hash table).
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.inner.estimated_size()
    }

    /// An immutable copy with every retained hash: the same estimate, and the same image as
    /// `update_theta_sketch.compact()` in the other DataSketches libraries.
    pub fn compact(&self) -> CompactSet {
        CompactSet {
            inner: CompactSet::tight(self.inner.compact(true)),
        }
    }

    /// Trims to `k` hashes and freezes: at most [`compact_set_max_bytes`], for sealed panes.
    pub fn into_compact(mut self) -> CompactSet {
        self.inner.trim();
        self.compact()
    }

    /// The standard compact Theta image of [`compact`](Self::compact).
    pub fn serialize(&self) -> Vec<u8> {
        self.compact().serialize()
    }
}

impl sealed::Sealed for SetSketch {
    fn view(&self) -> ThetaSketchView<'_> {
        self.inner.as_view()
    }
}
impl SetLike for SetSketch {}

/// An immutable Theta sketch: a union, a set-operation result or a compacted [`SetSketch`].
#[derive(Debug, Clone)]
pub struct CompactSet {
    inner: CompactThetaSketch,
}

impl Default for CompactSet {
    /// The empty set.
    fn default() -> Self {
        SetSketch::default().compact()
    }
}

impl CompactSet {
    /// The library collects a table's hashes into a vector sized for the whole table (twice the
    /// hashes a union keeps); a copy holds exactly the retained hashes.
    fn tight(inner: CompactThetaSketch) -> CompactThetaSketch {
        if inner.estimated_size() > inner.num_retained() * size_of::<u64>() {
            inner.clone()
        } else {
            inner
        }
    }

    /// Estimated number of distinct users.
    pub fn estimate(&self) -> f64 {
        self.inner.estimate()
    }

    /// `(lower, upper)` bounds at `sigmas` standard deviations (1, 2 or 3; clamped).
    pub fn bounds(&self, sigmas: u8) -> (f64, f64) {
        let n = num_std_dev(sigmas);
        (self.inner.lower_bound(n), self.inner.upper_bound(n))
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Hashes retained (the sample size behind the estimate).
    pub fn num_retained(&self) -> usize {
        self.inner.num_retained()
    }

    /// The sampling probability θ in `(0, 1]` (1 while exact).
    pub fn theta(&self) -> f64 {
        self.inner.theta()
    }

    /// Bytes held (struct plus 8 bytes per retained hash).
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.inner.estimated_size()
    }

    /// The standard compact Theta image (serial version 3), readable by every DataSketches
    /// library (`compact_theta_sketch.deserialize` / `theta_sketch.deserialize` in Python).
    pub fn serialize(&self) -> Vec<u8> {
        self.inner.serialize()
    }

    /// The delta-compressed compact image (serial version 4, about half the size in estimation
    /// mode), readable by DataSketches C++/Python ≥ 4.0 and Java ≥ 6.0. Falls back to
    /// [`serialize`](Self::serialize)'s format where compression does not apply.
    pub fn serialize_compressed(&self) -> Vec<u8> {
        self.inner.serialize_compressed()
    }

    /// Reads a compact Theta image (version 1–4, default seed). The image is checked (no
    /// duplicate, zero or out-of-range hashes) so that set operations on it cannot fail.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, SketchError> {
        let image_error = |message: String| SketchError::Image {
            kind: "Theta",
            message,
        };
        let inner =
            CompactThetaSketch::deserialize(bytes).map_err(|err| image_error(err.to_string()))?;
        // An intersection with one input rebuilds it in a hash table and rejects a corrupted
        // retained-hash list; ordered images must also be sorted for the a-not-b merge scan.
        let mut check = ThetaIntersection::default();
        check
            .update(&inner)
            .map_err(|err| image_error(err.to_string()))?;
        let theta = inner.theta64();
        let mut previous = 0u64;
        for entry in inner.iter() {
            let hash = entry.hash();
            if hash == 0 || hash >= theta || (inner.is_ordered() && hash <= previous) {
                return Err(image_error(format!("bad retained hash {hash:#x}")));
            }
            previous = hash;
        }
        Ok(Self { inner })
    }
}

impl sealed::Sealed for CompactSet {
    fn view(&self) -> ThetaSketchView<'_> {
        self.inner.as_view()
    }
}
impl SetLike for CompactSet {}

/// Union of Theta sketches (e.g. the panes of a window); the result keeps at most `k` hashes.
#[derive(Debug)]
pub struct SetUnion {
    inner: ThetaUnion,
}

impl Default for SetUnion {
    fn default() -> Self {
        Self {
            inner: validated(ThetaUnionBuilder::default().lg_k(DEFAULT_LG_K).build()),
        }
    }
}

impl SetUnion {
    /// An empty union keeping at most `k = 2^lg_k` hashes.
    pub fn new(lg_k: u8) -> Result<Self, SketchError> {
        check_lg_k(lg_k)?;
        Ok(Self {
            inner: validated(ThetaUnionBuilder::default().lg_k(lg_k).build()),
        })
    }

    /// Adds a sketch's users.
    pub fn add(&mut self, sketch: &impl SetLike) {
        validated(self.inner.update(sketch.view()));
    }

    /// The union so far.
    pub fn result(&self) -> CompactSet {
        CompactSet {
            inner: CompactSet::tight(self.inner.to_sketch(true)),
        }
    }

    /// Bytes held now (struct plus hash table).
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.inner.estimated_size()
    }
}

/// `A ∩ B`.
pub fn intersection(a: &impl SetLike, b: &impl SetLike) -> CompactSet {
    let mut op = ThetaIntersection::default();
    validated(op.update(a.view()));
    validated(op.update(b.view()));
    match op.to_sketch(true) {
        Some(inner) => CompactSet {
            inner: CompactSet::tight(inner),
        },
        None => unreachable!("an intersection that was updated has a result"),
    }
}

/// `A \ B`: users of `a` that are not in `b`.
pub fn a_not_b(a: &impl SetLike, b: &impl SetLike) -> CompactSet {
    CompactSet {
        inner: CompactSet::tight(validated(ThetaANotB::default().compute(
            a.view(),
            b.view(),
            true,
        ))),
    }
}

/// Estimated `|A ∩ B|`.
pub fn intersection_estimate(a: &impl SetLike, b: &impl SetLike) -> f64 {
    intersection(a, b).estimate()
}

/// Estimated `|A \ B|`.
pub fn a_not_b_estimate(a: &impl SetLike, b: &impl SetLike) -> f64 {
    a_not_b(a, b).estimate()
}

/// Lifecycle counts between a previous period `P` and the current one `C`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    /// Estimated `|P ∩ C|` (retained users).
    pub retained: f64,
    /// Estimated `|P \ C|` (churned users).
    pub churned: f64,
    /// Users of `P` in the common sample (hashes below `θ = min(θ_P, θ_C)`).
    pub previous_sample: usize,
    /// Of those, the ones also in `C`.
    pub retained_sample: usize,
}

impl Overlap {
    /// `|P ∩ C| / |P|`, estimated as `retained_sample / previous_sample` (both counted at the same
    /// θ, so `retention + churn = 1` exactly); `None` when `P` is empty.
    pub fn retention_ratio(&self) -> Option<f64> {
        (self.previous_sample > 0)
            .then(|| self.retained_sample as f64 / self.previous_sample as f64)
    }

    /// `|P \ C| / |P|`; `None` when `P` is empty.
    pub fn churn_ratio(&self) -> Option<f64> {
        self.retention_ratio().map(|r| 1.0 - r)
    }

    /// Standard error (absolute) of [`retention_ratio`](Self::retention_ratio): `√(r(1 − r)/m)`
    /// for `m` sampled users of `P`, the binomial error of a uniform sample (0 while exact).
    pub fn retention_ratio_std_err(&self) -> Option<f64> {
        let r = self.retention_ratio()?;
        Some((r * (1.0 - r) / self.previous_sample as f64).sqrt())
    }
}

/// Retained and churned users between `previous` and `current` (see [`Overlap`]).
pub fn overlap(previous: &impl SetLike, current: &impl SetLike) -> Overlap {
    let kept = intersection(previous, current);
    let gone = a_not_b(previous, current);
    Overlap {
        retained: kept.estimate(),
        churned: gone.estimate(),
        previous_sample: kept.num_retained() + gone.num_retained(),
        retained_sample: kept.num_retained(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_are_exact() {
        let mut p = SetSketch::default();
        let mut c = SetSketch::new(10).unwrap();
        let mut d = DistinctSketch::default();
        for i in 0..100 {
            p.update(&format!("u{i}"));
            d.update(&format!("u{i}"));
        }
        for i in 60..200 {
            c.update(&format!("u{i}"));
        }
        p.update("");
        d.update("");
        assert_eq!(p.estimate(), 100.0);
        assert!((d.estimate() - 100.0).abs() < 0.01, "{}", d.estimate());
        let o = overlap(&p, &c);
        assert_eq!((o.retained, o.churned), (40.0, 60.0));
        assert_eq!(o.retention_ratio(), Some(0.4));
        assert_eq!(
            o.retention_ratio_std_err(),
            Some((0.4f64 * 0.6 / 100.0).sqrt())
        );
        assert_eq!(intersection_estimate(&p.compact(), &c), 40.0);
        assert_eq!(a_not_b_estimate(&c, &p), 100.0);

        let mut u = SetUnion::default();
        u.add(&p);
        u.add(&c.into_compact());
        assert_eq!(u.result().estimate(), 200.0);
    }

    #[test]
    fn empty_previous_has_no_ratio() {
        let p = SetSketch::default();
        let mut c = SetSketch::default();
        c.update("a");
        let o = overlap(&p, &c);
        assert_eq!(
            (o.retained, o.churned, o.retention_ratio()),
            (0.0, 0.0, None)
        );
        let o = overlap(&c, &p);
        assert_eq!(
            (o.retained, o.churned, o.retention_ratio()),
            (0.0, 1.0, Some(0.0))
        );
        assert_eq!(CompactSet::default().estimate(), 0.0);
    }

    #[test]
    fn merge_equals_union_of() {
        let mut a = DistinctSketch::new(10).unwrap();
        let mut b = DistinctSketch::new(10).unwrap();
        for i in 0..5000 {
            a.update(&format!("a{i}"));
            b.update(&format!("b{i}"));
        }
        let u = DistinctSketch::union_of(10, [&a, &b]).unwrap();
        a.merge(&b);
        assert_eq!(a.estimate(), u.estimate());
        assert!((a.estimate() / 10_000.0 - 1.0).abs() < 3.0 * hll_rse(10));
        let (lo, hi) = a.bounds(3);
        assert!(lo < 10_000.0 && 10_000.0 < hi);
    }

    #[test]
    fn images_round_trip() {
        let mut d = DistinctSketch::default();
        let mut s = SetSketch::default();
        for i in 0..20_000 {
            d.update(&format!("u{i}"));
            s.update(&format!("u{i}"));
        }
        let d2 = DistinctSketch::deserialize(&d.serialize()).unwrap();
        assert_eq!(d2.estimate(), d.estimate());
        let c = s.compact();
        for bytes in [c.serialize(), c.serialize_compressed(), s.serialize()] {
            let back = CompactSet::deserialize(&bytes).unwrap();
            assert_eq!(back.estimate(), s.estimate());
        }
        assert!(c.serialize_compressed().len() < c.serialize().len());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(DistinctSketch::new(4).unwrap_err(), SketchError::LgK(4));
        assert_eq!(SetSketch::new(22).unwrap_err(), SketchError::LgK(22));
        assert!(DistinctSketch::deserialize(b"nope").is_err());
        assert!(CompactSet::deserialize(b"nope").is_err());

        // A duplicated hash in an otherwise valid image is refused.
        let mut s = SetSketch::default();
        s.update("a");
        s.update("b");
        let mut bytes = s.serialize();
        let n = bytes.len();
        let last: [u8; 8] = bytes[n - 8..].try_into().unwrap();
        bytes[n - 16..n - 8].copy_from_slice(&last);
        assert!(CompactSet::deserialize(&bytes).is_err());
    }

    #[test]
    fn memory_stays_within_documented_bounds() {
        let mut d = DistinctSketch::default();
        let mut s = SetSketch::default();
        for i in 0..50_000 {
            d.update(&format!("u{i}"));
            s.update(&format!("u{i}"));
        }
        assert!(d.memory_bytes() <= size_of::<DistinctSketch>() + hll_max_bytes(DEFAULT_LG_K));
        assert!(s.memory_bytes() <= size_of::<SetSketch>() + set_sketch_max_bytes(DEFAULT_LG_K));
        let full = s.compact();
        assert!(full.memory_bytes() <= size_of::<CompactSet>() + 15 * 8 * (1 << DEFAULT_LG_K) / 8);
        let mut u = SetUnion::default();
        u.add(&full);
        assert!(u.memory_bytes() <= size_of::<SetUnion>() + set_sketch_max_bytes(DEFAULT_LG_K));
        let c = s.into_compact();
        assert_eq!(c.num_retained(), 1 << DEFAULT_LG_K);
        let max = size_of::<CompactSet>() + compact_set_max_bytes(DEFAULT_LG_K);
        assert!(c.memory_bytes() <= max);
        assert!(u.result().memory_bytes() <= max);
        assert!(intersection(&u.result(), &c).memory_bytes() <= max);
    }
}
