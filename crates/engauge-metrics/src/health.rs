//! Liveness and readiness of the process, shared between the pipeline (which sets them) and the
//! HTTP server and `engauge_ready` gauge (which report them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Live/ready flags plus the reason the service is not ready.
///
/// A new `Health` is live and not ready (reason `starting`): the process answers `/healthz` at
/// once, and `/readyz` only after the pipeline says it has partitions assigned and is consuming.
#[derive(Debug)]
pub struct Health {
    live: AtomicBool,
    ready: AtomicBool,
    not_ready_reason: Mutex<String>,
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl Health {
    /// Live, not ready, reason `starting`.
    pub fn new() -> Health {
        Health {
            live: AtomicBool::new(true),
            ready: AtomicBool::new(false),
            not_ready_reason: Mutex::new("starting".to_owned()),
        }
    }

    /// Marks the process live (it makes progress) or not (it should be restarted).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the service ready: assigned and consuming.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Marks the service not ready, with a short reason shown by `/readyz` (no user data).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        // Reason first, so a reader that sees `ready == false` finds this reason or a newer one.
        *self.reason_lock() = reason.into();
        self.ready.store(false, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// `Ok` when ready, otherwise the reason it is not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(self.reason_lock().clone())
        }
    }

    fn reason_lock(&self) -> std::sync::MutexGuard<'_, String> {
        // A panic elsewhere while holding the lock leaves a complete String behind; keep using it.
        self.not_ready_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_live_and_not_ready() {
        let health = Health::new();
        assert!(health.is_live());
        assert_eq!(health.readiness(), Err("starting".to_owned()));
    }

    #[test]
    fn readiness_follows_the_last_call() {
        let health = Health::new();
        health.set_ready();
        assert_eq!(health.readiness(), Ok(()));
        health.set_not_ready("rebalancing");
        assert_eq!(health.readiness(), Err("rebalancing".to_owned()));
        assert!(!health.is_ready());
        health.set_live(false);
        assert!(!health.is_live());
    }
}
