//! Reading the assigned partitions in event-time order: each from a queue of its own, the one
//! furthest behind first.
//!
//! The watermark is the minimum over partitions (SPEC §2), so every event read ahead of the
//! partition furthest behind waits in the engine's pane buffers, and its id in the dedup set,
//! until that partition catches up. A broker that answers a fetch with one partition's block
//! (tansu fills a response from the first partition it lists) makes a backfill of four
//! partitions hold hundreds of thousands of such events when read in arrival order. Read
//! furthest-behind first, the same backfill keeps about one allowed lateness of events
//! pending; what runs ahead waits in librdkafka's per-partition queues instead (bounded by
//! `queued.min.messages` / `queued.max.messages.kbytes`), undecoded.
//!
//! The partition furthest behind may have nothing fetched yet: its fetch is in flight. Its
//! queue's callback wakes the run loop when messages arrive; the reader waits for it up to
//! [`MAX_WAIT`] (the process sleeps meanwhile) and then reads the others, so a partition the
//! broker is slow to serve delays the rest by at most that once until it delivers again. A
//! partition at its end (caught up) never makes the reader wait.

use std::time::{Duration, Instant};

use engauge_core::Millis;
use engauge_kafka::{BorrowedMessage, KafkaError, PartitionReader};

/// How long the reader waits for the partition furthest behind before reading ahead of it.
pub const MAX_WAIT: Duration = Duration::from_millis(100);

/// Messages read from one partition before the order is looked at again.
const BUDGET: u32 = 256;

/// What the reader needs to know of an assigned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Greatest event time read from it (`None`: nothing yet).
    pub max_ts: Option<Millis>,
    /// Its position reached its end: an empty queue is no reason to wait.
    pub at_end: bool,
    /// Paused by backpressure: not read.
    pub paused: bool,
}

pub enum Polled<'a> {
    Message(BorrowedMessage<'a>),
    /// The partition reached its end.
    End(&'a (String, i32)),
    Error(KafkaError),
    /// Nothing to read now (or the partition furthest behind is awaited): wait for a wake-up.
    Nothing,
}

/// The split queues of one assignment, in the assignment's order.
pub struct Reader {
    keys: Vec<(String, i32)>,
    queues: Vec<Option<PartitionReader>>,
    order: ReadOrder,
}

impl Reader {
    pub fn new(
        keys: Vec<(String, i32)>,
        queues: Vec<Option<PartitionReader>>,
        slack: Millis,
    ) -> Self {
        debug_assert_eq!(keys.len(), queues.len());
        Reader {
            keys,
            queues,
            order: ReadOrder::new(slack),
        }
    }

    /// Some partition has no queue of its own: its messages arrive through the consumer's queue.
    pub fn has_unsplit(&self) -> bool {
        self.queues.iter().any(Option::is_none)
    }

    /// The next message (or end notice, or error) of the partition furthest behind in event
    /// time that has one; `view` tells where each partition stands.
    pub fn poll(&mut self, view: impl Fn(&(String, i32)) -> View) -> Polled<'_> {
        let (keys, queues) = (&self.keys, &self.queues);
        let next = self.order.next(
            keys.len(),
            |i| view(&keys[i]),
            |i| queues[i].as_ref().and_then(PartitionReader::poll),
            Instant::now,
        );
        match next {
            None => Polled::Nothing,
            Some((_, Ok(message))) => Polled::Message(message),
            Some((i, Err(KafkaError::PartitionEOF(_)))) => Polled::End(&keys[i]),
            Some((_, Err(e))) => Polled::Error(e),
        }
    }
}

/// Which partition to read next (the policy, apart from the queues).
#[derive(Debug)]
struct ReadOrder {
    /// A partition stays current while it is within `slack` of the next one behind it (events
    /// in one base pane cost nothing more for arriving together).
    slack: Millis,
    current: Option<usize>,
    until: Millis,
    budget: u32,
    /// The partition furthest behind was found empty (not at its end) at this time.
    blocked: Option<(usize, Instant)>,
}

impl ReadOrder {
    fn new(slack: Millis) -> Self {
        ReadOrder {
            slack,
            current: None,
            until: Millis::MAX,
            budget: 0,
            blocked: None,
        }
    }

    /// Polls partitions (`poll(i)`, never waiting) in the order they should be read and returns
    /// the first thing one of them had, or `None` when there is nothing to read or the
    /// partition furthest behind is awaited.
    fn next<T>(
        &mut self,
        count: usize,
        view: impl Fn(usize) -> View,
        mut poll: impl FnMut(usize) -> Option<T>,
        clock: impl Fn() -> Instant,
    ) -> Option<(usize, T)> {
        if let Some(i) = self.current.take() {
            let v = view(i);
            if self.budget > 0 && !v.paused && v.max_ts.is_none_or(|t| t <= self.until) {
                self.budget -= 1;
                if let Some(polled) = poll(i) {
                    self.current = Some(i);
                    return Some((i, polled));
                }
            }
        }
        let views: smallvec::SmallVec<[View; 16]> = (0..count).map(view).collect();
        let order = order(&views);
        let mut now = None;
        for (k, &i) in order.iter().enumerate() {
            if let Some(polled) = poll(i) {
                self.current = Some(i);
                self.budget = BUDGET;
                // A partition not read yet bounds it at once (it comes first next time).
                self.until = match order[k + 1..].first() {
                    Some(&j) => views[j]
                        .max_ts
                        .map_or(Millis::MIN, |t| t.saturating_add(self.slack)),
                    None => Millis::MAX,
                };
                if self.blocked.is_some_and(|(b, _)| b == i) {
                    self.blocked = None;
                }
                return Some((i, polled));
            }
            if views[i].at_end {
                if self.blocked.is_some_and(|(b, _)| b == i) {
                    self.blocked = None;
                }
                continue;
            }
            // It holds the watermark back and its next messages are on their way.
            let now = *now.get_or_insert_with(&clock);
            let since = match self.blocked {
                Some((b, since)) if b == i => since,
                _ => {
                    self.blocked = Some((i, now));
                    now
                }
            };
            if now.duration_since(since) < MAX_WAIT {
                return None;
            }
        }
        None
    }
}

/// The partitions to try, furthest behind in event time first (one with no event yet before
/// all others); paused ones are left out.
fn order(views: &[View]) -> smallvec::SmallVec<[usize; 16]> {
    let mut order: smallvec::SmallVec<[usize; 16]> =
        (0..views.len()).filter(|&i| !views[i].paused).collect();
    order.sort_by_key(|&i| (views[i].max_ts.unwrap_or(Millis::MIN), i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(max_ts: Option<Millis>, at_end: bool, paused: bool) -> View {
        View {
            max_ts,
            at_end,
            paused,
        }
    }

    #[test]
    fn furthest_behind_first_unread_before_all_paused_left_out() {
        let views = [
            v(Some(500), false, false),
            v(Some(100), false, false),
            v(None, false, false),
            v(Some(50), false, true),
            v(Some(100), true, false),
        ];
        assert_eq!(order(&views).as_slice(), &[2, 1, 4, 0]);
    }

    /// Partitions as queues of event times, read through a `ReadOrder` as the pipeline does.
    struct Sim {
        queues: Vec<std::collections::VecDeque<Millis>>,
        max: Vec<Option<Millis>>,
        at_end: Vec<bool>,
        paused: Vec<bool>,
        order: ReadOrder,
        now: Instant,
    }

    impl Sim {
        fn new(queues: Vec<Vec<Millis>>, slack: Millis) -> Sim {
            let n = queues.len();
            Sim {
                queues: queues.into_iter().map(Into::into).collect(),
                max: vec![None; n],
                at_end: vec![false; n],
                paused: vec![false; n],
                order: ReadOrder::new(slack),
                now: Instant::now(),
            }
        }

        /// One read: `Some((partition, event time))` or `None` (wait).
        fn step(&mut self) -> Option<(usize, Millis)> {
            let (max, at_end, paused, queues, now) = (
                &self.max,
                &self.at_end,
                &self.paused,
                &mut self.queues,
                self.now,
            );
            let (i, ts) = self.order.next(
                queues.len(),
                |i| View {
                    max_ts: max[i],
                    at_end: at_end[i],
                    paused: paused[i],
                },
                |i| queues[i].pop_front(),
                || now,
            )?;
            self.max[i] = Some(self.max[i].map_or(ts, |m| m.max(ts)));
            Some((i, ts))
        }
    }

    #[test]
    fn a_backfill_advances_all_partitions_together_and_reads_everything() {
        // Three partitions over the same period, every queue full (as when librdkafka has
        // prefetched blocks of each).
        let parts: Vec<Vec<Millis>> = (0..3)
            .map(|p| (0..2_000).map(|k| k * 1_000 + p * 7).collect())
            .collect();
        let slack = 60_000;
        let mut sim = Sim::new(parts.clone(), slack);
        let mut read = vec![Vec::new(); 3];
        let mut most_apart = 0;
        while let Some((i, ts)) = sim.step() {
            read[i].push(ts);
            let known: Vec<Millis> = sim.max.iter().flatten().copied().collect();
            if known.len() == 3 {
                let spread = known.iter().max().unwrap() - known.iter().min().unwrap();
                most_apart = most_apart.max(spread);
            }
        }
        assert_eq!(read, parts, "every message once, each partition in order");
        // Within the slack plus one event of the next partition.
        assert!(
            most_apart <= slack + 1_000,
            "partitions drifted {most_apart} ms apart"
        );
        // Read in arrival order instead (one whole partition, then the next), they would drift
        // the whole period apart: the test can tell.
        assert!(most_apart < 2_000 * 1_000 / 10);
    }

    #[test]
    fn the_current_partition_yields_once_it_runs_past_the_slack() {
        let mut sim = Sim::new(vec![vec![0, 1_000], vec![0, 500_000, 600_000]], 10_000);
        assert_eq!(sim.step(), Some((0, 0)));
        // Partition 1, never read, comes next.
        assert_eq!(sim.step(), Some((1, 0)));
        // The bound is checked before each read: one message may overshoot it.
        assert_eq!(sim.step(), Some((1, 500_000)));
        assert_eq!(sim.step(), Some((0, 1_000)));
        // Partition 1 is 499 s past partition 0 (slack 10 s), which is empty but not at its
        // end: wait.
        assert_eq!(sim.step(), None);
        sim.now += MAX_WAIT;
        assert_eq!(sim.step(), Some((1, 600_000)));
    }

    #[test]
    fn an_empty_partition_behind_holds_reads_until_it_delivers_or_max_wait_passes() {
        let mut sim = Sim::new(vec![vec![], vec![5_000, 6_000]], 1_000);
        sim.max[0] = Some(1_000);
        sim.max[1] = Some(4_000);
        assert_eq!(
            sim.step(),
            None,
            "partition 0 is behind and has messages on their way"
        );
        sim.now += MAX_WAIT / 2;
        assert_eq!(sim.step(), None);
        // It delivers: read at once.
        sim.queues[0].push_back(2_000);
        assert_eq!(sim.step(), Some((0, 2_000)));
        assert_eq!(sim.step(), None, "empty again: a new wait starts");
        sim.now += MAX_WAIT;
        assert_eq!(
            sim.step(),
            Some((1, 5_000)),
            "waited long enough: read ahead"
        );
        assert_eq!(sim.step(), Some((1, 6_000)));
        assert_eq!(sim.step(), None);
    }

    #[test]
    fn a_partition_at_its_end_or_paused_never_holds_reads() {
        let mut sim = Sim::new(vec![vec![], vec![5_000], vec![100]], 1_000);
        sim.max = vec![Some(1_000), Some(4_000), Some(50)];
        sim.at_end[0] = true;
        sim.paused[2] = true;
        assert_eq!(sim.step(), Some((1, 5_000)));
        assert_eq!(sim.step(), None);
        sim.paused[2] = false;
        assert_eq!(sim.step(), Some((2, 100)));
    }
}
