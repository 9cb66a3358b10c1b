//! Log-bucket duration histogram with bounded relative error (the DDSketch bucket scheme).
//!
//! Bucket `i ≥ 1` holds values in `(γ^(i−1), γ^i]` with `γ = (1 + α)/(1 − α)`; its representative
//! `2γ^i/(γ + 1)` is within `α` of every value in it. Zero has its own exact bucket. Counts are
//! integers, so histograms add and subtract exactly, which sliding windows need.

/// Relative accuracy: 0.8 %, inside the 1 % the KPI contract allows.
pub const RELATIVE_ACCURACY: f64 = 0.008;

fn gamma_ln() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// The bucket of a non-negative value (milliseconds). Bucket 0 holds exactly 0.
pub fn bucket_of(value: u64) -> u16 {
    if value == 0 {
        return 0;
    }
    // ceil(ln(v)/ln γ) + 1 so that value 1 lands in bucket 1; clamp keeps absurd inputs finite.
    let idx = ((value as f64).ln() / gamma_ln()).ceil() as i64 + 1;
    idx.clamp(1, i64::from(u16::MAX)) as u16
}

/// The representative value of a bucket.
pub fn bucket_value(bucket: u16) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    let gamma = gamma_ln().exp();
    2.0 * (gamma_ln() * f64::from(bucket - 1)).exp() / (gamma + 1.0)
}

/// A sparse histogram: sorted `(bucket, count)` pairs. Used for panes, which hold few sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

/// A dense histogram, for running window sums that see many buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenseHistogram {
    counts: Vec<i64>,
}

impl DenseHistogram {
    pub fn add(&mut self, bucket: u16, count: i64) {
        let i = usize::from(bucket);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += count;
    }

    /// Adds `sign ×` every bucket of `other`.
    pub fn merge(&mut self, other: &SparseHistogram, sign: i64) {
        for (bucket, count) in other.iter() {
            self.add(bucket, sign * count);
        }
    }

    /// The nearest-rank quantile: the representative of the bucket holding the ⌈q·n⌉-th smallest
    /// value, `n` being the total count. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: i64 = self.counts.iter().sum();
        if total <= 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_value(bucket as u16));
            }
        }
        None
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
    }
}
