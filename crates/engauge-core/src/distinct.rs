//! Exact sliding distinct counts from each user's last active pane.
//!
//! For a key (a segment, or a segment × feature) every user has one "last active base pane" among
//! the panes already sealed. A count ring per granularity holds, per pane, how many users have
//! their last activity there. Because sealing happens in pane order, at the close of instance `E`
//! every user's last pane is their latest activity before `E`, so the users active in
//! `[E − L, E)` are exactly the sum of the ring over that range: O(L/slide), independent of the
//! number of users.

/// Ring of per-pane counts at one granularity. Slot stores `pane + 1` (0 = unused).
#[derive(Debug, Clone)]
struct CountRing {
    slots: Vec<(u32, u32)>,
}

/// The count rings of one key, one per granularity level.
#[derive(Debug, Clone)]
pub(crate) struct LastSeenCounts {
    rings: Vec<CountRing>,
}

/// The shape shared by every key: per level, base panes per level pane and ring length.
#[derive(Debug, Clone)]
pub(crate) struct LevelShape {
    pub ratio: u32,
    pub panes: usize,
}

impl LastSeenCounts {
    pub fn new(shape: &[LevelShape]) -> Self {
        LastSeenCounts {
            rings: shape
                .iter()
                .map(|l| CountRing {
                    slots: vec![(0, 0); l.panes],
                })
                .collect(),
        }
    }

    /// A user's last active base pane moves from `old` (if any) to `new` (> `old`).
    pub fn moved(&mut self, shape: &[LevelShape], old: Option<u32>, new: u32) {
        for (ring, level) in self.rings.iter_mut().zip(shape) {
            let new_k = new / level.ratio;
            if let Some(old) = old {
                let old_k = old / level.ratio;
                if old_k == new_k {
                    continue;
                }
                let n = ring.slots.len();
                let slot = &mut ring.slots[old_k as usize % n];
                if slot.0 == old_k + 1 {
                    slot.1 -= 1;
                }
            }
            let n = ring.slots.len();
            let slot = &mut ring.slots[new_k as usize % n];
            if slot.0 < new_k + 1 {
                *slot = (new_k + 1, 0);
            }
            if slot.0 == new_k + 1 {
                slot.1 += 1;
            }
        }
    }

    /// Users whose last active pane lies in level panes `[from, to)`.
    pub fn range(&self, level: usize, from: u32, to: u32) -> u64 {
        let ring = &self.rings[level];
        let n = ring.slots.len();
        (from..to)
            .map(|k| {
                let slot = ring.slots[k as usize % n];
                if slot.0 == k + 1 {
                    u64::from(slot.1)
                } else {
                    0
                }
            })
            .sum()
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

    #[test]
    fn counts_follow_last_panes() {
        let shape = [
            LevelShape { ratio: 1, panes: 4 },
            LevelShape { ratio: 2, panes: 3 },
        ];
        let mut c = LastSeenCounts::new(&shape);
        c.moved(&shape, None, 0);
        c.moved(&shape, None, 1);
        assert_eq!(c.range(0, 0, 2), 2);
        assert_eq!(c.range(1, 0, 1), 2);
        c.moved(&shape, Some(0), 3);
        assert_eq!(c.range(0, 0, 4), 2);
        assert_eq!(c.range(0, 0, 1), 0);
        assert_eq!(c.range(1, 0, 2), 2);
        assert_eq!(c.range(1, 1, 2), 1);
        // Pane 5 evicts pane 1 from the 4-slot ring; moving from 1 then must not underflow.
        c.moved(&shape, None, 5);
        c.moved(&shape, Some(1), 6);
        assert_eq!(c.range(0, 2, 7), 3);
    }
}
