//! Pane aggregates: additive per-(pane, segment) sums kept in one ring per slide granularity, and
//! the per-(window, segment) running sums that sliding windows keep by adding the pane that enters
//! and subtracting the pane that leaves.

use crate::Millis;
use crate::quantile::{DenseHistogram, SparseHistogram, bucket_of};

/// What an event adds beyond being counted: a survey response, money, or a support or
/// subscription signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Mark {
    None,
    Nps {
        promoter: bool,
        detractor: bool,
    },
    Csat {
        satisfied: bool,
    },
    Ces {
        score: i32,
    },
    /// Amount in micro-units of the base currency.
    Purchase {
        micros: i64,
    },
    Refund {
        micros: i64,
    },
    Cancellation,
    SupportTicket,
    SelfService,
}

/// One additive contribution to a (pane, segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contribution {
    Event(Mark),
    Session { duration_ms: u64 },
}

/// Additive counters. Signed so that running sums can subtract a leaving pane exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Agg {
    pub events: i64,
    pub sessions: i64,
    pub session_ms: i64,
    pub nps_n: i64,
    pub nps_promoters: i64,
    pub nps_detractors: i64,
    pub csat_n: i64,
    pub csat_satisfied: i64,
    pub ces_n: i64,
    pub ces_sum: i64,
    /// Purchases minus refunds, and purchases alone, in micro-units of the base currency
    /// (integers, so a running sum subtracts a leaving pane exactly).
    pub revenue_micros: i128,
    pub gross_micros: i128,
    pub orders: i64,
    pub cancellations: i64,
    pub support_tickets: i64,
    pub self_service: i64,
}

impl Agg {
    fn apply(&mut self, c: Contribution) {
        match c {
            Contribution::Event(mark) => {
                self.events += 1;
                match mark {
                    Mark::None => {}
                    Mark::Nps {
                        promoter,
                        detractor,
                    } => {
                        self.nps_n += 1;
                        self.nps_promoters += i64::from(promoter);
                        self.nps_detractors += i64::from(detractor);
                    }
                    Mark::Csat { satisfied } => {
                        self.csat_n += 1;
                        self.csat_satisfied += i64::from(satisfied);
                    }
                    Mark::Ces { score } => {
                        self.ces_n += 1;
                        self.ces_sum += i64::from(score);
                    }
                    Mark::Purchase { micros } => {
                        self.orders += 1;
                        self.revenue_micros += i128::from(micros);
                        self.gross_micros += i128::from(micros);
                    }
                    Mark::Refund { micros } => self.revenue_micros -= i128::from(micros),
                    Mark::Cancellation => self.cancellations += 1,
                    Mark::SupportTicket => self.support_tickets += 1,
                    Mark::SelfService => self.self_service += 1,
                }
            }
            Contribution::Session { duration_ms } => {
                self.sessions += 1;
                self.session_ms += duration_ms as i64;
            }
        }
    }

    pub(crate) fn merge(&mut self, o: &Agg, sign: i64) {
        self.events += sign * o.events;
        self.sessions += sign * o.sessions;
        self.session_ms += sign * o.session_ms;
        self.nps_n += sign * o.nps_n;
        self.nps_promoters += sign * o.nps_promoters;
        self.nps_detractors += sign * o.nps_detractors;
        self.csat_n += sign * o.csat_n;
        self.csat_satisfied += sign * o.csat_satisfied;
        self.ces_n += sign * o.ces_n;
        self.ces_sum += sign * o.ces_sum;
        self.revenue_micros += i128::from(sign) * o.revenue_micros;
        self.gross_micros += i128::from(sign) * o.gross_micros;
        self.orders += sign * o.orders;
        self.cancellations += sign * o.cancellations;
        self.support_tickets += sign * o.support_tickets;
        self.self_service += sign * o.self_service;
    }
}

/// A pane's aggregate for one segment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct PaneSeg {
    pub agg: Agg,
    pub durations: SparseHistogram,
}

impl PaneSeg {
    fn merge(&mut self, other: &PaneSeg) {
        self.agg.merge(&other.agg, 1);
        for (bucket, count) in other.durations.iter() {
            self.durations.add(bucket, count);
        }
    }

    fn apply(&mut self, c: Contribution) {
        self.agg.apply(c);
        if let Contribution::Session { duration_ms } = c {
            self.durations.add(bucket_of(duration_ms), 1);
        }
    }

    fn clear(&mut self) {
        self.agg = Agg::default();
        self.durations.clear();
    }
}

/// A window's running sum for one segment.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct WindowSeg {
    pub agg: Agg,
    pub durations: DenseHistogram,
}

impl WindowSeg {
    pub fn apply(&mut self, c: Contribution) {
        self.agg.apply(c);
        if let Contribution::Session { duration_ms } = c {
            self.durations.add(bucket_of(duration_ms), 1);
        }
    }

    pub fn merge(&mut self, pane: &PaneSeg, sign: i64) {
        self.agg.merge(&pane.agg, sign);
        self.durations.merge(&pane.durations, sign);
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Slot {
    /// Pane index held, or `i64::MIN` when unused.
    pane: i64,
    segs: Vec<PaneSeg>,
}

/// The panes of one granularity, in a ring just long enough for the longest window using it.
///
/// A slot is reused lazily: writing pane `k` into a slot holding an older pane clears it; writing
/// a pane older than the one a slot holds is dropped (no window can still see it).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PaneRing {
    pub granularity: Millis,
    slots: Vec<Slot>,
}

impl PaneRing {
    /// Same granularity and ring length (a restored ring must match the configuration's).
    pub fn same_shape(&self, other: &PaneRing) -> bool {
        self.granularity == other.granularity && self.slots.len() == other.slots.len()
    }

    pub fn new(granularity: Millis, panes: usize) -> Self {
        PaneRing {
            granularity,
            slots: (0..panes)
                .map(|_| Slot {
                    pane: i64::MIN,
                    segs: Vec::new(),
                })
                .collect(),
        }
    }

    /// Pane index of an instant at this granularity (counted from the Unix epoch).
    pub fn pane_of(&self, t: Millis) -> i64 {
        t.div_euclid(self.granularity)
    }

    /// The slot for `pane`, cleared if it held an older pane; `None` if it holds a newer one.
    fn slot_for(&mut self, pane: i64) -> Option<&mut Slot> {
        let n = self.slots.len() as i64;
        let slot = &mut self.slots[pane.rem_euclid(n) as usize];
        if slot.pane > pane {
            return None;
        }
        if slot.pane < pane {
            slot.pane = pane;
            slot.segs.iter_mut().for_each(PaneSeg::clear);
        }
        Some(slot)
    }

    pub fn apply(&mut self, t: Millis, seg: u32, c: Contribution) {
        let Some(slot) = self.slot_for(self.pane_of(t)) else {
            return;
        };
        let seg = seg as usize;
        if slot.segs.len() <= seg {
            slot.segs.resize_with(seg + 1, PaneSeg::default);
        }
        slot.segs[seg].apply(c);
    }

    /// Adds a finer pane's per-segment aggregates into the pane of this ring containing `t`.
    pub fn merge_at(&mut self, t: Millis, segs: &[PaneSeg]) {
        let Some(slot) = self.slot_for(self.pane_of(t)) else {
            return;
        };
        if slot.segs.len() < segs.len() {
            slot.segs.resize_with(segs.len(), PaneSeg::default);
        }
        for (mine, theirs) in slot.segs.iter_mut().zip(segs) {
            mine.merge(theirs);
        }
    }

    /// The per-segment aggregates of pane `pane`, if the ring still holds it.
    pub fn pane(&self, pane: i64) -> Option<&[PaneSeg]> {
        let n = self.slots.len() as i64;
        let slot = &self.slots[pane.rem_euclid(n) as usize];
        (slot.pane == pane).then_some(slot.segs.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_reuses_slots_and_drops_stale_writes() {
        let mut ring = PaneRing::new(60_000, 3);
        let t = |k: i64| k * 60_000;
        ring.apply(t(0), 0, Contribution::Event(Mark::None));
        ring.apply(t(0) + 59_999, 1, Contribution::Session { duration_ms: 5 });
        assert_eq!(ring.pane(0).map(|s| s[0].agg.events), Some(1));
        assert_eq!(ring.pane(0).map(|s| s[1].agg.sessions), Some(1));
        ring.apply(t(3), 0, Contribution::Event(Mark::None));
        assert!(ring.pane(0).is_none(), "slot reused by pane 3");
        // A write to pane 0 now is too old for the ring and is dropped.
        ring.apply(t(0), 0, Contribution::Event(Mark::None));
        assert_eq!(ring.pane(3).map(|s| s[0].agg.events), Some(1));
        assert!(ring.pane(3).is_some_and(|s| s[1].agg.sessions == 0));
    }

    #[test]
    fn running_sum_adds_and_subtracts() {
        let mut pane = PaneSeg::default();
        pane.apply(Contribution::Event(Mark::Nps {
            promoter: true,
            detractor: false,
        }));
        pane.apply(Contribution::Session { duration_ms: 1000 });
        let mut w = WindowSeg::default();
        w.merge(&pane, 1);
        assert_eq!(w.agg.nps_promoters, 1);
        assert_eq!(w.agg.session_ms, 1000);
        w.merge(&pane, -1);
        assert_eq!(w.agg, Agg::default());
        assert_eq!(w.durations.quantile(0.5), None);
    }
}
