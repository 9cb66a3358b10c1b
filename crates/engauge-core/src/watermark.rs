//! Pipeline watermark from per-partition event time (SPEC §2). The processing-time clock is an
//! argument, never read here.

use hashbrown::HashMap;

use crate::Millis;

#[derive(Debug, Clone)]
struct PartitionTime {
    /// Greatest event time seen on the partition.
    max_ts: Option<Millis>,
    /// Processing time of the last message (or of the assignment).
    last_message_at: Millis,
    /// The consumer's position has reached the partition's high watermark.
    caught_up: bool,
}

/// Tracks event time per input partition and derives the pipeline watermark.
///
/// Partition watermark = max event time − `allowed_lateness`. The pipeline watermark is the minimum
/// over partitions that are not idle; a partition is idle only when it has been quiet for
/// `idle_timeout` *and* is caught up, so partitions the consumer has not fetched yet hold the
/// watermark back (a backfill read in blocks loses nothing). When every partition is idle the
/// watermark follows `now − allowed_lateness`. The result never moves backwards.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    allowed_lateness: Millis,
    idle_timeout: Millis,
    partitions: HashMap<i32, PartitionTime>,
    current: Option<Millis>,
}

impl WatermarkTracker {
    pub fn new(allowed_lateness: Millis, idle_timeout: Millis) -> Self {
        WatermarkTracker {
            allowed_lateness,
            idle_timeout,
            partitions: HashMap::new(),
            current: None,
        }
    }

    /// A partition was assigned at processing time `now`.
    pub fn assign(&mut self, partition: i32, now: Millis) {
        self.partitions.entry(partition).or_insert(PartitionTime {
            max_ts: None,
            last_message_at: now,
            caught_up: false,
        });
    }

    /// A partition was revoked; it no longer holds the watermark back.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// A message with event time `ts` arrived on `partition` at processing time `now`.
    pub fn observe(&mut self, partition: i32, ts: Millis, now: Millis) {
        let part = self.partitions.entry(partition).or_insert(PartitionTime {
            max_ts: None,
            last_message_at: now,
            caught_up: false,
        });
        part.max_ts = Some(part.max_ts.map_or(ts, |m| m.max(ts)));
        part.last_message_at = now;
    }

    /// Whether the consumer's position on `partition` has reached its high watermark.
    pub fn set_caught_up(&mut self, partition: i32, caught_up: bool) {
        if let Some(part) = self.partitions.get_mut(&partition) {
            part.caught_up = caught_up;
        }
    }

    /// Recomputes the watermark at processing time `now`; `None` until it is known.
    pub fn watermark(&mut self, now: Millis) -> Option<Millis> {
        let mut min: Option<Millis> = None;
        let mut any_active = false;
        for part in self.partitions.values() {
            let idle = part.caught_up && now - part.last_message_at >= self.idle_timeout;
            if idle {
                continue;
            }
            any_active = true;
            match part.max_ts {
                // An active partition with no event yet holds the watermark back entirely.
                None => return self.current,
                Some(ts) => {
                    let wm = ts - self.allowed_lateness;
                    min = Some(min.map_or(wm, |m| m.min(wm)));
                }
            }
        }
        let candidate = if any_active {
            min
        } else if self.partitions.is_empty() {
            None
        } else {
            Some(now - self.allowed_lateness)
        };
        if let Some(c) = candidate {
            self.current = Some(self.current.map_or(c, |cur| cur.max(c)));
        }
        self.current
    }

    /// The last computed watermark.
    pub fn current(&self) -> Option<Millis> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATE: Millis = 600_000;
    const IDLE: Millis = 30_000;

    #[test]
    fn min_over_active_partitions() {
        let mut t = WatermarkTracker::new(LATE, IDLE);
        t.assign(0, 0);
        t.assign(1, 0);
        t.observe(0, 10_000_000, 1);
        // Partition 1 has delivered nothing and is not caught up: no watermark yet.
        assert_eq!(t.watermark(1), None);
        t.observe(1, 5_000_000, 2);
        assert_eq!(t.watermark(2), Some(5_000_000 - LATE));
    }

    #[test]
    fn quiet_but_lagging_partition_is_not_idle() {
        let mut t = WatermarkTracker::new(LATE, IDLE);
        t.observe(0, 10_000_000, 0);
        t.observe(1, 2_000_000, 0);
        // Partition 1 quiet for a long time but not caught up: still holds the watermark.
        t.observe(0, 20_000_000, 100_000);
        assert_eq!(t.watermark(100_000), Some(2_000_000 - LATE));
        t.set_caught_up(1, true);
        assert_eq!(t.watermark(100_000), Some(20_000_000 - LATE));
    }

    #[test]
    fn all_idle_follows_wall_clock_and_never_goes_back() {
        let mut t = WatermarkTracker::new(LATE, IDLE);
        t.observe(0, 1_000_000, 0);
        t.set_caught_up(0, true);
        assert_eq!(t.watermark(10), Some(1_000_000 - LATE));
        assert_eq!(t.watermark(5_000_000), Some(5_000_000 - LATE));
        // A partition wakes up with older data: the watermark stays.
        t.observe(0, 2_000_000, 5_000_001);
        assert_eq!(t.watermark(5_000_002), Some(5_000_000 - LATE));
    }
}
