//! Log-bucket duration histogram with bounded relative error (the DDSketch bucket scheme).
//!
//! Bucket `i ≥ 1` holds values in `(γ^(i−1), γ^i]` with `γ = (1 + α)/(1 − α)`; its representative
//! `2γ^i/(γ + 1)` is within `α` of every value in it. Zero has its own exact bucket. Counts are
//! integers, so histograms add and subtract exactly, which sliding windows need.

/// Relative accuracy: 0.8 %, inside the 1 % the KPI contract allows.
pub const RELATIVE_ACCURACY: f64 = 0.008;

/// `ln γ` and `2/(γ + 1)`, computed once.
static GAMMA: std::sync::LazyLock<(f64, f64)> = std::sync::LazyLock::new(|| {
    let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
    (gamma.ln(), 2.0 / (gamma + 1.0))
});

/// The bucket of a non-negative value (milliseconds). Bucket 0 holds exactly 0.
pub fn bucket_of(value: u64) -> u16 {
    if value == 0 {
        return 0;
    }
    // ceil(ln(v)/ln γ) + 1 so that value 1 lands in bucket 1; clamp keeps absurd inputs finite.
    let idx = ((value as f64).ln() / GAMMA.0).ceil() as i64 + 1;
    idx.clamp(1, i64::from(u16::MAX)) as u16
}

/// The representative value of a bucket: `2γ^i/(γ + 1)` for the bucket's upper bound `γ^i`.
pub fn bucket_value(bucket: u16) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    GAMMA.1 * (GAMMA.0 * f64::from(bucket - 1)).exp()
}

/// A sparse histogram: sorted `(bucket, count)` pairs. Used for panes, which hold few sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SparseHistogram {
    buckets: Vec<(u16, i64)>,
}

impl SparseHistogram {
    pub fn add(&mut self, bucket: u16, count: i64) {
        match self.buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.buckets[i].1 += count,
            Err(i) => self.buckets.insert(i, (bucket, count)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.buckets.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }

    /// From `(bucket, count)` pairs in ascending bucket order.
    pub fn from_sorted(pairs: impl Iterator<Item = (u16, i64)>) -> SparseHistogram {
        SparseHistogram {
            buckets: pairs.collect(),
        }
    }

    /// Adds every bucket of `other` (one pass over both sorted lists).
    pub fn merge(&mut self, other: &SparseHistogram) {
        let mine = std::mem::take(&mut self.buckets);
        let mut out = Vec::with_capacity(mine.len() + other.buckets.len());
        let (mut a, mut b) = (mine.into_iter().peekable(), other.buckets.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let (bucket, n) = a.next().expect("peeked");
                    (bucket, n + b.next().expect("peeked").1)
                }
                (Some(x), Some(y)) if x.0 < y.0 => a.next().expect("peeked"),
                (Some(_), Some(_)) | (None, Some(_)) => *b.next().expect("peeked"),
                (Some(_), None) => a.next().expect("peeked"),
                (None, None) => break,
            };
            out.push(next);
        }
        self.buckets = out;
    }

    /// Nearest-rank quantiles, exactly as [`DenseHistogram::quantiles`] gives them for the same
    /// counts. `None` when empty.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        let total: i64 = self.buckets.iter().map(|&(_, c)| c).sum();
        if total <= 0 {
            return None;
        }
        let mut out = [0.0; N];
        let (mut i, mut seen) = (0, 0);
        for (slot, q) in out.iter_mut().zip(qs) {
            let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
            while i < self.buckets.len() && seen + self.buckets[i].1 < rank {
                seen += self.buckets[i].1;
                i += 1;
            }
            let bucket = self.buckets.get(i).map_or(0, |&(b, _)| b);
            *slot = bucket_value(bucket);
        }
        Some(out)
    }
}

/// Buckets per block of [`DenseHistogram`]'s block sums.
const BLOCK: usize = 32;

/// A dense histogram, for running window sums that see many buckets. Block sums let a quantile
/// lookup skip 32 buckets at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DenseHistogram {
    counts: Vec<i64>,
    blocks: Vec<i64>,
    total: i64,
}

impl DenseHistogram {
    pub fn add(&mut self, bucket: u16, count: i64) {
        let i = usize::from(bucket);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
            self.blocks.resize(i / BLOCK + 1, 0);
        }
        self.counts[i] += count;
        self.blocks[i / BLOCK] += count;
        self.total += count;
    }

    /// The non-zero buckets with their counts, ascending. Whole empty blocks are skipped.
    pub fn nonzero(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, sum)| **sum != 0)
            .flat_map(move |(b, _)| {
                let from = b * BLOCK;
                let to = (from + BLOCK).min(self.counts.len());
                (from..to).map(move |i| (i as u16, self.counts[i]))
            })
            .filter(|&(_, count)| count != 0)
    }

    /// Adds `sign ×` every bucket of `other`.
    pub fn merge(&mut self, other: &SparseHistogram, sign: i64) {
        for (bucket, count) in other.iter() {
            self.add(bucket, sign * count);
        }
    }

    /// Nearest-rank quantiles: for each `q` (ascending), the representative of the bucket holding
    /// the ⌈q·n⌉-th smallest value, `n` being the total count. `None` when empty.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        let total = self.total;
        if total <= 0 {
            return None;
        }
        let mut out = [0.0; N];
        let (mut block, mut before) = (0, 0);
        for (slot, q) in out.iter_mut().zip(qs) {
            let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
            // Whole blocks first, then buckets inside the block that holds the rank.
            while before + self.blocks[block] < rank {
                before += self.blocks[block];
                block += 1;
            }
            let mut seen = before;
            let first = block * BLOCK;
            for (i, &count) in self.counts[first..].iter().enumerate() {
                seen += count;
                if seen >= rank {
                    *slot = bucket_value((first + i) as u16);
                    break;
                }
            }
        }
        Some(out)
    }

    /// One nearest-rank quantile (see [`DenseHistogram::quantiles`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles([q]).map(|[v]| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_within_the_relative_accuracy_of_its_bucket() {
        let mut v = 1u64;
        while v < 8 * 86_400_000 {
            let rep = bucket_value(bucket_of(v));
            let err = (rep - v as f64).abs() / v as f64;
            assert!(
                err <= RELATIVE_ACCURACY + 1e-12,
                "value {v} rep {rep} err {err}"
            );
            v = v + 1 + v / 97;
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_value(0), 0.0);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let mut h = DenseHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        let values = [0u64, 1_000, 2_000, 3_000, 60_000];
        for v in values {
            h.add(bucket_of(v), 1);
        }
        // rank ceil(0.5*5)=3 → 2000; ceil(0.9*5)=5 → 60000; ceil(0.2*5)=1 → 0.
        let close = |a: f64, b: f64| (a - b).abs() <= b * RELATIVE_ACCURACY;
        assert!(close(h.quantile(0.5).expect("non-empty"), 2_000.0));
        assert!(close(h.quantile(0.9).expect("non-empty"), 60_000.0));
        assert_eq!(h.quantile(0.2), Some(0.0));
        let mut s = SparseHistogram::default();
        s.add(bucket_of(60_000), 1);
        h.merge(&s, -1);
        assert!(close(h.quantile(0.99).expect("non-empty"), 3_000.0));
        let [p20, p50, p99] = h.quantiles([0.2, 0.5, 0.99]).expect("non-empty");
        assert_eq!(p20, 0.0);
        assert!(close(p50, 1_000.0) && close(p99, 3_000.0));
    }

    /// The block-skipping lookup agrees with a plain sorted list on many shapes.
    #[test]
    fn quantiles_match_sorted_values() {
        let mut seed = 12345u64;
        for n in [1usize, 2, 3, 31, 32, 33, 100, 1000] {
            let mut h = DenseHistogram::default();
            let mut values = Vec::new();
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = (seed >> 33) % 90_000_000;
                values.push(v);
                h.add(bucket_of(v), 1);
            }
            values.sort_unstable();
            let qs = [0.0, 0.5, 0.9, 0.99, 1.0];
            let got = h.quantiles(qs).expect("non-empty");
            for (q, g) in qs.iter().zip(got) {
                let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
                let truth = values[rank - 1] as f64;
                assert!(
                    (g - truth).abs() <= truth * RELATIVE_ACCURACY + 1e-9,
                    "n={n} q={q}"
                );
            }
        }
    }
}
