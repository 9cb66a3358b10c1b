//! Session state per (segment, user[, session id]) and the timers that close sessions once no
//! event can extend them any more.

use std::collections::BTreeMap;

use crate::Millis;

/// An open session: first and last event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OpenSession {
    pub start: Millis,
    pub last: Millis,
}

/// What an event did to a session stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionStep {
    /// The event extended the open session.
    Extended,
    /// The event started a session (after closing `closed`, if there was one).
    Started { closed: Option<OpenSession> },
}

/// Applies the session rule to one in-order event at `t`.
///
/// An event continues the session when `t − last < gap` and `t − start ≤ max`.
pub(crate) fn step(
    open: &mut Option<OpenSession>,
    t: Millis,
    gap: Millis,
    max: Millis,
) -> SessionStep {
    match open {
        Some(s) if t - s.last < gap && t - s.start <= max => {
            s.last = s.last.max(t);
            SessionStep::Extended
        }
        _ => {
            let closed = open.replace(OpenSession { start: t, last: t });
            SessionStep::Started { closed }
        }
    }
}

/// Where a session lives: `sid` 0 is the gap-based stream, otherwise a hashed `session_id`.
/// `user` is the interned user index, or in sketch mode (no per-user state) a hash of the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct SessionKey {
    pub user: u64,
    pub seg: u32,
    pub sid: u64,
}

/// A reminder to look at a session once the frontier passes its close time. `start` identifies
/// the session, so a reminder for a session that has since been replaced is ignored.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timer {
    pub key: SessionKey,
    pub start: Millis,
}

/// Timers bucketed by base pane of the close time they were set for.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timers {
    buckets: BTreeMap<u32, Vec<Timer>>,
    /// Emptied buckets, kept for reuse.
    #[serde(skip)]
    spare: Vec<Vec<Timer>>,
}

/// Emptied buckets kept for reuse.
const SPARE_BUCKETS: usize = 8;

impl Timers {
    pub fn set(&mut self, pane: u32, timer: Timer) {
        let spare = &mut self.spare;
        self.buckets
            .entry(pane)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(timer);
    }

    /// Moves the timers of every bucket up to and including `pane` to `out`.
    pub fn take_through(&mut self, pane: u32, out: &mut Vec<Timer>) {
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > pane {
                break;
            }
            let mut bucket = entry.remove();
            out.append(&mut bucket);
            if self.spare.len() < SPARE_BUCKETS {
                self.spare.push(bucket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_and_max_rules() {
        let (gap, max) = (30, 100);
        let mut open = None;
        assert_eq!(
            step(&mut open, 0, gap, max),
            SessionStep::Started { closed: None }
        );
        assert_eq!(step(&mut open, 29, gap, max), SessionStep::Extended);
        // Exactly the gap splits.
        assert_eq!(
            step(&mut open, 59, gap, max),
            SessionStep::Started {
                closed: Some(OpenSession { start: 0, last: 29 })
            }
        );
        for t in [80, 100, 120, 140, 159] {
            assert_eq!(step(&mut open, t, gap, max), SessionStep::Extended);
        }
        // 160 − 59 = 101 > max: split even though the gap is small.
        assert!(matches!(
            step(&mut open, 160, gap, max),
            SessionStep::Started {
                closed: Some(OpenSession {
                    start: 59,
                    last: 159
                })
            }
        ));
    }
}
