//! The user population: ids and segment attributes as pure functions of a user's index, so a
//! million users cost no memory and the same index is the same person in every stream.
//!
//! Index `i` is the user of Zipf rank `i + 1`; attributes are hashed from the index, so activity
//! is independent of plan, region and platform.

use crate::rng::mix64;

/// The largest population: user numbers are a bijection on 40 bits.
pub const MAX_USERS: u64 = 1 << 40;

const HALF_BITS: u32 = 20;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const FEISTEL_KEYS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];
const ATTR_KEY: u64 = 0x4528_21e6_38d0_1377;

/// A user's stable segment attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserProfile {
    /// `free` 60 %, `pro` 25 %, `team` 10 %, `enterprise` 5 %.
    pub plan: &'static str,
    /// `us` 35 %, `eu` 30 %, `apac` 20 %, `latam` 10 %, `mea` 5 %.
    pub region: &'static str,
    /// `web` 45 %, `ios` 30 %, `android` 25 %.
    pub platform: &'static str,
    /// Sends `ts` as integer epoch milliseconds (40 % of Android users, so about 10 % of all).
    pub integer_ts: bool,
}

/// Picks from `table` (cumulative thresholds in thousandths) with `per_mille` in `0..1000`.
fn pick(per_mille: u32, table: &[(&'static str, u32)]) -> &'static str {
    for &(name, upto) in table {
        if per_mille < upto {
            return name;
        }
    }
    table.last().map_or("", |&(name, _)| name)
}

const PLANS: [(&str, u32); 4] = [
    ("free", 600),
    ("pro", 850),
    ("team", 950),
    ("enterprise", 1000),
];
const REGIONS: [(&str, u32); 5] = [
    ("us", 350),
    ("eu", 650),
    ("apac", 850),
    ("latam", 950),
    ("mea", 1000),
];
const PLATFORMS: [(&str, u32); 3] = [("web", 450), ("ios", 750), ("android", 1000)];

/// The attributes of user `index`: four independent 16-bit slices of one hash, each scaled to
/// thousandths (hot: called for every encoded line).
pub fn user_profile(index: u64) -> UserProfile {
    let h = mix64(index ^ ATTR_KEY);
    let per_mille = |slice: u32| (((h >> (16 * slice)) & 0xffff) as u32 * 1000) >> 16;
    let platform = pick(per_mille(2), &PLATFORMS);
    UserProfile {
        plan: pick(per_mille(0), &PLANS),
        region: pick(per_mille(1), &REGIONS),
        platform,
        integer_ts: per_mille(2) >= 750 && per_mille(3) < 400,
    }
}

/// The number in user `index`'s id: a keyed 4-round Feistel permutation of 40 bits, so ids are
/// unique, scattered and not sequential.
pub fn user_number(index: u64) -> u64 {
    let (mut left, mut right) = ((index >> HALF_BITS) & HALF_MASK, index & HALF_MASK);
    for key in FEISTEL_KEYS {
        let f = mix64(right ^ key) & HALF_MASK;
        (left, right) = (right, left ^ f);
    }
    (left << HALF_BITS) | right
}

/// User `index`'s `user_id`: `"u"` followed by [`user_number`] in decimal.
pub fn user_id(index: u64) -> String {
    format!("u{}", user_number(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_numbers_are_a_permutation() {
        let mut seen: Vec<u64> = (0..200_000).map(user_number).collect();
        assert!(seen.iter().all(|&n| n < MAX_USERS));
        assert_ne!(seen[..5], [0, 1, 2, 3, 4]);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 200_000);
    }

    #[test]
    fn attribute_shares() {
        let n = 200_000u64;
        let (mut free, mut enterprise, mut eu, mut web, mut integer) = (0, 0, 0, 0, 0);
        for i in 0..n {
            let p = user_profile(i);
            assert_eq!(p, user_profile(i), "stable");
            free += u64::from(p.plan == "free");
            enterprise += u64::from(p.plan == "enterprise");
            eu += u64::from(p.region == "eu");
            web += u64::from(p.platform == "web");
            integer += u64::from(p.integer_ts);
        }
        let share = |c: u64| c as f64 / n as f64;
        assert!((share(free) - 0.60).abs() < 0.01);
        assert!((share(enterprise) - 0.05).abs() < 0.005);
        assert!((share(eu) - 0.30).abs() < 0.01);
        assert!((share(web) - 0.45).abs() < 0.01);
        assert!((share(integer) - 0.10).abs() < 0.01);
    }
}
