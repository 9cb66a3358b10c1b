//! Exact sliding distinct counts from each user's last active pane.
//!
//! For a key (a segment, or a segment × feature) every user has one "last active base pane" among
//! the panes already sealed. A count ring per granularity holds, per pane, how many users have
//! their last activity there. Because sealing happens in pane order, at the close of instance `E`
//! every user's last pane is their latest activity before `E`, so the users active in
//! `[E − L, E)` are exactly the users whose last pane lies in that range.
//!
//! Each tracked range (one per window, plus the 1-day range stickiness needs) keeps that sum as a
//! running count: a user moving their last pane into or out of the range adjusts it by one, and a
//! slide adds the entering pane's count and subtracts the leaving one's. A close is O(1) per key,
//! whatever the number of users or panes.

/// Ring of per-pane counts at one granularity. Slot stores `pane + 1` (0 = unused).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CountRing {
    slots: Vec<(u32, u32)>,
}

impl CountRing {
    fn get(&self, k: u32) -> u32 {
        let slot = self.slots[k as usize % self.slots.len()];
        if slot.0 == k + 1 { slot.1 } else { 0 }
    }
}

/// Per level: base panes per level pane, and ring length.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LevelShape {
    pub ratio: u32,
    pub panes: usize,
    /// Indices of the tracked ranges at this level.
    pub ranges: Vec<usize>,
}

/// A range of level panes `[to − len, to)` whose distinct count is kept running.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct TrackedRange {
    pub level: usize,
    pub len: u32,
    /// Exclusive end in level panes; `None` until the first close.
    pub to: Option<u32>,
}

impl TrackedRange {
    fn contains(&self, k: u32) -> bool {
        self.to.is_some_and(|to| k < to && k + self.len >= to)
    }
}

/// The count rings and running counts of one key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LastSeenCounts {
    rings: Vec<CountRing>,
    running: Vec<u64>,
}

impl LastSeenCounts {
    /// Whether these counts have the rings and ranges `new(levels, ranges)` gives.
    pub fn has_shape(&self, levels: &[LevelShape], ranges: &[TrackedRange]) -> bool {
        self.running.len() == ranges.len()
            && self.rings.len() == levels.len()
            && self
                .rings
                .iter()
                .zip(levels)
                .all(|(r, l)| r.slots.len() == l.panes)
    }

    pub fn new(levels: &[LevelShape], ranges: &[TrackedRange]) -> Self {
        LastSeenCounts {
            rings: levels
                .iter()
                .map(|l| CountRing {
                    slots: vec![(0, 0); l.panes],
                })
                .collect(),
            running: vec![0; ranges.len()],
        }
    }

    /// A user's last active base pane moves from `old` (if any) to `new` (> `old`).
    pub fn moved(
        &mut self,
        levels: &[LevelShape],
        ranges: &[TrackedRange],
        old: Option<u32>,
        new: u32,
    ) {
        for (li, (ring, level)) in self.rings.iter_mut().zip(levels).enumerate() {
            let new_k = new / level.ratio;
            let old_k = old.map(|o| o / level.ratio);
            if old_k == Some(new_k) {
                continue;
            }
            let n = ring.slots.len();
            if let Some(old_k) = old_k {
                let slot = &mut ring.slots[old_k as usize % n];
                if slot.0 == old_k + 1 {
                    slot.1 -= 1;
                }
            }
            let slot = &mut ring.slots[new_k as usize % n];
            if slot.0 < new_k + 1 {
                *slot = (new_k + 1, 0);
            }
            if slot.0 == new_k + 1 {
                slot.1 += 1;
            }
            debug_assert!(level.ranges.iter().all(|&r| ranges[r].level == li));
            for &r in &level.ranges {
                let range = &ranges[r];
                let running = &mut self.running[r];
                if old_k.is_some_and(|k| range.contains(k)) {
                    *running -= 1;
                }
                if range.contains(new_k) {
                    *running += 1;
                }
            }
        }
    }

    /// Range `r` slides by one level pane, from `[to − len, to)` to `[to + 1 − len, to + 1)`.
    pub fn slide(&mut self, r: usize, range: &TrackedRange, old_to: u32) {
        let ring = &self.rings[range.level];
        let entering = ring.get(old_to);
        let leaving = if old_to >= range.len {
            ring.get(old_to - range.len)
        } else {
            0
        };
        self.running[r] = self.running[r] + u64::from(entering) - u64::from(leaving);
    }

    /// Range `r` grows by one level pane at its end (calendar instances keep their start).
    pub fn grow(&mut self, r: usize, range: &TrackedRange, old_to: u32) {
        self.running[r] += u64::from(self.rings[range.level].get(old_to));
    }

    /// Range `to` takes the count of range `from` (they cover the same panes now).
    pub fn copy_running(&mut self, from: usize, to: usize) {
        self.running[to] = self.running[from];
    }

    /// Range `r` restarts empty (after a jump over a quiet stretch).
    pub fn reset(&mut self, r: usize) {
        self.running[r] = 0;
    }

    /// The distinct users in tracked range `r`.
    pub fn count(&self, r: usize) -> u64 {
        self.running[r]
    }
}

/// Base pane index (from the Unix epoch) of an instant. Event times are validated to lie after
/// 2000 and base panes are whole seconds, so the index fits in `u32` until 2106.
pub(crate) fn base_pane(t: i64, base: i64) -> u32 {
    (t.max(0) / base).min(i64::from(u32::MAX - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running count must always equal a brute-force sum over the range.
    #[test]
    fn running_counts_equal_range_sums() {
        let levels = [
            LevelShape {
                ratio: 1,
                panes: 5,
                ranges: vec![0],
            },
            LevelShape {
                ratio: 2,
                panes: 4,
                ranges: vec![1],
            },
        ];
        let mut ranges = vec![
            TrackedRange {
                level: 0,
                len: 3,
                to: Some(4),
            },
            TrackedRange {
                level: 1,
                len: 2,
                to: Some(2),
            },
        ];
        let mut c = LastSeenCounts::new(&levels, &ranges);
        // Users' last base panes; all start before the ranges' ends.
        let mut last: Vec<Option<u32>> = vec![None; 6];
        let moves = [(0, 1), (1, 2), (2, 3), (3, 3), (0, 3), (4, 0)];
        for &(u, p) in &moves {
            if last[u].is_none_or(|o| p > o) {
                c.moved(&levels, &ranges, last[u], p);
                last[u] = Some(p);
            }
        }
        let brute = |ranges: &[TrackedRange], last: &[Option<u32>], r: usize| {
            let range = &ranges[r];
            let ratio = levels[range.level].ratio;
            last.iter()
                .flatten()
                .filter(|&&p| range.contains(p / ratio))
                .count() as u64
        };
        assert_eq!(c.count(0), brute(&ranges, &last, 0));
        assert_eq!(c.count(1), brute(&ranges, &last, 1));
        assert_eq!(c.count(0), 4, "users 0 to 3 have their last pane in [1, 4)");
        // Slide range 0 to [2, 5) and range 1 to [1, 3), then move users into the new panes.
        for (r, range) in ranges.iter_mut().enumerate() {
            let to = range.to.expect("set");
            c.slide(r, range, to);
            range.to = Some(to + 1);
        }
        for &(u, p) in &[(1, 4), (5, 4), (2, 5)] {
            if last[u].is_none_or(|o| p > o) {
                c.moved(&levels, &ranges, last[u], p);
                last[u] = Some(p);
            }
        }
        assert_eq!(c.count(0), brute(&ranges, &last, 0));
        assert_eq!(c.count(1), brute(&ranges, &last, 1));
    }
}
