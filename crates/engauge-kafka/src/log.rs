//! Rate-limited reporting of librdkafka client errors: a broker outage makes librdkafka repeat
//! the same error many times a second; one line per distinct message per 10 s is enough.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers when each message was last printed.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    last: Mutex<HashMap<String, Instant>>,
}

impl ErrorLog {
    /// Prints `message` (which names brokers and error codes, never payloads) unless the same
    /// message was printed within the last 10 seconds.
    pub fn report(&self, message: String) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last
            .get(&message)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(10))
        {
            return;
        }
        if last.len() > 256 {
            last.clear();
        }
        eprintln!("engauge: {message}");
        last.insert(message, now);
    }
}
