//! Liveness: notices when consumption stops making progress although messages are waiting.
//!
//! librdkafka recovers from most broker trouble by itself; what it does not recover from is a
//! consumer that keeps its assignment but stops delivering messages (a stuck fetcher, a
//! partition left paused, fetches that keep failing). The pipeline tells the watchdog about
//! every message; when nothing arrived for half the timeout, the watchdog asks to probe (the
//! pipeline asks the partition leaders whether messages wait beyond its position, at most once a
//! second), and when messages have kept waiting for the other half, it reports a stall once. The
//! pipeline then recreates its consumer (the new member rebuilds from the committed offsets, as
//! after a rebalance).

use std::time::{Duration, Instant};

/// Stall detector. Pure: time is passed in.
#[derive(Debug)]
pub struct Watchdog {
    timeout: Duration,
    last_progress: Instant,
    waiting_since: Option<Instant>,
    last_probe: Option<Instant>,
    reported: bool,
}

impl Watchdog {
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Watchdog {
            timeout,
            last_progress: now,
            waiting_since: None,
            last_probe: None,
            reported: false,
        }
    }

    /// A message (or end of partition) arrived.
    pub fn progress(&mut self, now: Instant) {
        self.last_progress = now;
        self.waiting_since = None;
        self.reported = false;
    }

    /// Nothing arrived for half the timeout and the last probe is a second old: ask the brokers
    /// whether messages wait.
    pub fn wants_probe(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_progress) >= self.timeout / 2
            && self
                .last_probe
                .is_none_or(|p| now.saturating_duration_since(p) >= Duration::from_secs(1))
    }

    /// The answer of a probe. Returns how long nothing arrived, once per stall, when messages
    /// have been waiting for half the timeout after half the timeout without progress.
    pub fn probed(&mut self, now: Instant, waiting: bool) -> Option<Duration> {
        self.last_probe = Some(now);
        if !waiting {
            self.waiting_since = None;
            return None;
        }
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.timeout / 2 && !self.reported {
            self.reported = true;
            return Some(now.saturating_duration_since(self.last_progress));
        }
        None
    }

    /// After a recovery: the new consumer gets a full timeout before it can be called stuck.
    pub fn reset(&mut self, now: Instant) {
        self.progress(now);
        self.last_probe = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_stall_once_and_only_while_messages_wait() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = Watchdog::new(Duration::from_secs(30), t0);
        assert!(!w.wants_probe(t0 + 14 * s));
        assert!(w.wants_probe(t0 + 15 * s));
        // Idle with nothing waiting: never a stall, probes once a second.
        assert_eq!(w.probed(t0 + 100 * s, false), None);
        assert!(!w.wants_probe(t0 + 100 * s + s / 2));
        assert!(w.wants_probe(t0 + 101 * s));
        // Messages start waiting at 101 s: a stall 15 s later, reported once.
        assert_eq!(w.probed(t0 + 101 * s, true), None);
        assert_eq!(w.probed(t0 + 115 * s, true), None);
        assert_eq!(w.probed(t0 + 116 * s, true), Some(116 * s));
        assert_eq!(w.probed(t0 + 200 * s, true), None);
        // Progress clears it; a new stall is reported again.
        w.progress(t0 + 201 * s);
        assert!(!w.wants_probe(t0 + 215 * s));
        assert_eq!(w.probed(t0 + 216 * s, true), None);
        assert_eq!(w.probed(t0 + 231 * s, true), Some(30 * s));
        // Waiting that stops in between starts the count again.
        w.reset(t0 + 300 * s);
        assert_eq!(w.probed(t0 + 315 * s, true), None);
        assert_eq!(w.probed(t0 + 320 * s, false), None);
        assert_eq!(w.probed(t0 + 321 * s, true), None);
        assert_eq!(w.probed(t0 + 335 * s, true), None);
        assert_eq!(w.probed(t0 + 336 * s, true), Some(36 * s));
    }
}
