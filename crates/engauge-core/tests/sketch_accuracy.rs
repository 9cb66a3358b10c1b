//! Statistical accuracy of `engauge_core::sketch` at 100 k and 1 M distinct users.
//!
//! Every population is generated from a fixed seed, so each run sees the same user ids and the
//! same estimates; the tests are deterministic yet fail when an estimate leaves its bound. Each
//! bound is 3 standard errors of the documented error model (a true count outside it has
//! probability ≈ 0.3 % for a random seed), with `k = 2^12`:
//!
//! * active users, one stream (HLL, HIP estimator): |est/n − 1| ≤ 3 × 0.833/√k = 3.90 %;
//! * active users, window = union of pane sketches (HLL, merged): ≤ 3 × 1.04/√k = 4.87 %;
//! * active users, Theta union of panes: ≤ 3 × 1/√(k − 1) = 4.69 %;
//! * retained users |P ∩ C| (Theta intersection, 40 % of P also in C, |P| = |C|):
//!   ≤ 3 × √(max(|P|, |C|)/(k·|P ∩ C|)) = 7.41 % relative;
//! * churned users |P \ C|: ≤ 3 × √(max(|P|, |C|)/(k·|P \ C|)) = 6.05 % relative;
//! * retention ratio |P ∩ C|/|P| = 0.4: ≤ 3 × √(r(1 − r)/(k·|P|/max(|P|, |C|))) = 2.30 points,
//!   and within 3 of the standard errors that `Overlap` reports.
//!
//! Users are spread over panes with 1–3 events each, so duplicates and merges are exercised the
//! way the engine uses the sketches. Debug builds take a few seconds for the 1 M cases.

use engauge_core::sketch::{
    self, CompactSet, DEFAULT_LG_K, DistinctSketch, SetSketch, SetUnion, hll_hip_rse, hll_rse,
    theta_rse,
};

const PANES: usize = 12;
const K: f64 = (1u32 << DEFAULT_LG_K) as f64;

/// SplitMix64 finaliser: a bijection on u64, so distinct inputs give distinct user ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// User `i` of population `population` (distinct for distinct `(population, i)`, i < 2^40).
fn user(population: u64, i: u64) -> String {
    format!("user-{:016x}", mix((population << 40) ^ i))
}

/// A small deterministic generator for the pane layout (SplitMix64 stream).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Each user gets 1–3 events in random panes; returns, per pane, the users of its events.
fn spread_over_panes(users: &[String], seed: u64) -> Vec<Vec<&str>> {
    let mut rng = Rng(seed);
    let mut panes = vec![Vec::new(); PANES];
    for u in users {
        for _ in 0..=rng.below(3) {
            panes[rng.below(PANES)].push(u.as_str());
        }
    }
    panes
}

fn relative_error(estimate: f64, truth: usize) -> f64 {
    estimate / truth as f64 - 1.0
}

fn check_relative(what: &str, n: usize, estimate: f64, truth: usize, bound: f64) {
    let err = relative_error(estimate, truth);
    eprintln!(
        "{what} n={n}: estimate {estimate:.1}, true {truth}, error {:+.3} % (bound ±{:.2} %)",
        100.0 * err,
        100.0 * bound
    );
    assert!(
        err.abs() <= bound,
        "{what} at n={n}: estimate {estimate} vs {truth}: error {err:+.4} beyond ±{bound:.4}"
    );
}

fn active_users(n: usize, population: u64) {
    let users: Vec<String> = (0..n as u64).map(|i| user(population, i)).collect();
    let panes = spread_over_panes(&users, population ^ 0x5eed);

    let mut one_stream = DistinctSketch::default();
    let mut hll_panes = Vec::with_capacity(PANES);
    let mut theta_window = SetUnion::default();
    for pane in &panes {
        let mut hll = DistinctSketch::default();
        let mut theta = SetSketch::default();
        for u in pane {
            one_stream.update(u);
            hll.update(u);
            theta.update(u);
        }
        assert!(hll.memory_bytes() <= 4096 + std::mem::size_of::<DistinctSketch>());
        theta_window.add(&theta.into_compact());
        hll_panes.push(hll);
    }
    let hll_window = DistinctSketch::union_of(DEFAULT_LG_K, &hll_panes).expect("lg_k");
    let theta_window = theta_window.result();

    check_relative(
        "HLL one stream",
        n,
        one_stream.estimate(),
        n,
        3.0 * hll_hip_rse(DEFAULT_LG_K),
    );
    check_relative(
        "HLL union of panes",
        n,
        hll_window.estimate(),
        n,
        3.0 * hll_rse(DEFAULT_LG_K),
    );
    check_relative(
        "Theta union of panes",
        n,
        theta_window.estimate(),
        n,
        3.0 * theta_rse(DEFAULT_LG_K),
    );
    // The library's own 3-sigma bounds must contain the truth as well.
    let (lo, hi) = hll_window.bounds(3);
    assert!(
        lo <= n as f64 && n as f64 <= hi,
        "HLL bounds {lo}..{hi} miss {n}"
    );
    let (lo, hi) = theta_window.bounds(3);
    assert!(
        lo <= n as f64 && n as f64 <= hi,
        "Theta bounds {lo}..{hi} miss {n}"
    );
}

/// The union of per-pane sketches of `users`, as the engine builds a period's set.
fn period_set(users: &[String], seed: u64) -> CompactSet {
    let mut union = SetUnion::default();
    for pane in spread_over_panes(users, seed) {
        let mut s = SetSketch::default();
        for u in pane {
            s.update(u);
        }
        union.add(&s.into_compact());
    }
    union.result()
}

fn retention(n: usize, population: u64) {
    // P: n users; C: the first 40 % of P plus 0.6 n users P never saw.
    let retained = n * 2 / 5;
    let previous: Vec<String> = (0..n as u64).map(|i| user(population, i)).collect();
    let current: Vec<String> = previous[..retained]
        .iter()
        .cloned()
        .chain((0..(n - retained) as u64).map(|i| user(population + 1, i)))
        .collect();
    let p = period_set(&previous, population ^ 0xa);
    let c = period_set(&current, population ^ 0xb);

    let o = sketch::overlap(&p, &c);
    let churned = n - retained;
    let big = n.max(current.len()) as f64;
    check_relative(
        "retained |P∩C|",
        n,
        o.retained,
        retained,
        3.0 * (big / (K * retained as f64)).sqrt(),
    );
    check_relative(
        "churned |P\\C|",
        n,
        o.churned,
        churned,
        3.0 * (big / (K * churned as f64)).sqrt(),
    );
    check_relative(
        "active |P| (Theta)",
        n,
        p.estimate(),
        n,
        3.0 * theta_rse(DEFAULT_LG_K),
    );

    let r = retained as f64 / n as f64;
    let ratio = o.retention_ratio().expect("P is not empty");
    let bound = 3.0 * (r * (1.0 - r) / (K * n as f64 / big)).sqrt();
    let reported = o.retention_ratio_std_err().expect("P is not empty");
    eprintln!(
        "retention ratio n={n}: estimate {ratio:.5}, true {r}, error {:+.3} points \
         (bound ±{:.2}, reported std err {:.3} points, sample {})",
        100.0 * (ratio - r),
        100.0 * bound,
        100.0 * reported,
        o.previous_sample
    );
    assert!(
        (ratio - r).abs() <= bound,
        "retention {ratio} vs {r} beyond ±{bound}"
    );
    assert!(
        (ratio - r).abs() <= 3.0 * reported,
        "retention {ratio} vs {r} beyond 3 × {reported}"
    );
    assert!((o.churn_ratio().expect("P is not empty") + ratio - 1.0).abs() < 1e-12);
    // The sample behind the ratio is about k users of P (the union keeps exactly k).
    assert!(
        o.previous_sample as f64 >= 0.9 * K,
        "sample {}",
        o.previous_sample
    );
}

#[test]
fn active_users_100k_within_three_sigma() {
    for population in [1, 2, 3] {
        active_users(100_000, population);
    }
}

#[test]
fn active_users_1m_within_three_sigma() {
    active_users(1_000_000, 10);
}

#[test]
fn retention_100k_within_three_sigma() {
    for population in [20, 22, 24] {
        retention(100_000, population);
    }
}

#[test]
fn retention_1m_within_three_sigma() {
    retention(1_000_000, 30);
}

/// The bounds are not vacuous: a sketch fed a tenth more users than claimed is outside them.
#[test]
fn bounds_detect_a_ten_percent_miscount() {
    let mut s = DistinctSketch::default();
    for i in 0..110_000 {
        s.update(&user(40, i));
    }
    assert!(relative_error(s.estimate(), 100_000).abs() > 3.0 * hll_rse(DEFAULT_LG_K));
}
