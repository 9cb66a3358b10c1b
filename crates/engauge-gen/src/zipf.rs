//! Zipf(–Mandelbrot) sampling in O(1) per draw by rejection-inversion (Hörmann & Derflinger,
//! "Rejection-inversion to generate variates from monotone discrete distributions", 1996), the
//! method of Apache Commons RNG's `RejectionInversionZipfSampler`, extended with a shift `q`.
//!
//! Rank `k` in `1..=n` is drawn with probability proportional to `(k + q)^-s`. No table of size
//! `n` is ever built, so a million users cost nothing.

use crate::rng::Rng;

/// A Zipf–Mandelbrot distribution over ranks `1..=n`.
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    n: f64,
    shift: f64,
    exponent: f64,
    /// `H(n + q + 1/2)`: the top of the inversion range.
    h_top: f64,
    /// `H(1 + q + 1/2) − h(1 + q)`: the bottom, leaving rank 1 exactly its own mass.
    h_bottom: f64,
    /// Quick-acceptance bound for `k − x` (valid for every rank, proven for rank 2 and up).
    squeeze: f64,
}

impl Zipf {
    /// `n ≥ 1`, `exponent > 0`, `shift ≥ 0` (callers sanitise).
    pub(crate) fn new(n: u64, exponent: f64, shift: f64) -> Zipf {
        let n = n.max(1) as f64;
        let mut z = Zipf {
            n,
            shift,
            exponent,
            h_top: 0.0,
            h_bottom: 0.0,
            squeeze: 0.0,
        };
        z.h_top = z.big_h(n + shift + 0.5);
        z.h_bottom = z.big_h(1.5 + shift) - z.h(1.0 + shift);
        z.squeeze = 2.0 + shift - z.big_h_inv(z.big_h(2.5 + shift) - z.h(2.0 + shift));
        z
    }

    /// A rank in `1..=n`.
    pub(crate) fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            // `u` uniform in (h_bottom, h_top]; H is increasing, so x follows the continuous hat.
            let u = self.h_top + rng.f64() * (self.h_bottom - self.h_top);
            let y = self.big_h_inv(u);
            let x = y - self.shift;
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.squeeze
                || u >= self.big_h(k + self.shift + 0.5) - self.h(k + self.shift)
            {
                return k as u64;
            }
        }
    }

    /// The unnormalised mass `y^-s`.
    fn h(&self, y: f64) -> f64 {
        (-self.exponent * y.ln()).exp()
    }

    /// `∫ h = (y^(1−s) − 1) / (1 − s)`, computed stably near `s = 1`.
    fn big_h(&self, y: f64) -> f64 {
        let log_y = y.ln();
        helper2((1.0 - self.exponent) * log_y) * log_y
    }

    fn big_h_inv(&self, v: f64) -> f64 {
        let t = (v * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * v).exp()
    }
}

/// `ln(1 + x) / x`, continuous at 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x − 1) / x`, continuous at 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(n: u64, s: f64, q: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64 + q).powf(-s)).collect();
        let total: f64 = w.iter().sum();
        w.into_iter().map(|x| x / total).collect()
    }

    fn check(n: u64, s: f64, q: f64, draws: u32) {
        let z = Zipf::new(n, s, q);
        let mut rng = Rng::new(42);
        let mut counts = vec![0u32; n.min(1000) as usize + 1];
        for _ in 0..draws {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k));
            if k <= 1000 {
                counts[k as usize] += 1;
            }
        }
        let p = exact(n, s, q);
        for k in [1usize, 2, 3, 10, 100] {
            if k as u64 > n {
                continue;
            }
            let expected = p[k - 1] * f64::from(draws);
            let sd = expected.sqrt().max(1.0);
            let got = f64::from(counts[k]);
            assert!(
                (got - expected).abs() < 5.0 * sd,
                "n={n} s={s} q={q} rank {k}: got {got}, expected {expected:.1}"
            );
        }
    }

    #[test]
    fn matches_exact_pmf() {
        check(1_000_000, 1.1, 0.0, 1_000_000);
        check(1_000_000, 1.1, 1000.0, 1_000_000);
        check(20, 1.0, 0.0, 200_000);
        check(5, 2.5, 0.0, 200_000);
        check(1, 1.1, 0.0, 1000);
        check(10_000, 0.7, 3.5, 500_000);
    }

    #[test]
    fn top_user_share_of_pure_zipf() {
        // With s = 1.1 over a million ranks the normaliser is about 8.07, so rank 1 carries
        // about 12.4 % of all draws and the top 1 % of ranks about 82 %.
        let z = Zipf::new(1_000_000, 1.1, 0.0);
        let mut rng = Rng::new(9);
        let draws = 500_000;
        let (mut top, mut top_percent) = (0u32, 0u32);
        for _ in 0..draws {
            let k = z.sample(&mut rng);
            top += u32::from(k == 1);
            top_percent += u32::from(k <= 10_000);
        }
        let top = f64::from(top) / f64::from(draws);
        let top_percent = f64::from(top_percent) / f64::from(draws);
        assert!((top - 0.1239).abs() < 0.003, "top share {top}");
        assert!(
            (top_percent - 0.818).abs() < 0.005,
            "top 1% share {top_percent}"
        );
    }
}
