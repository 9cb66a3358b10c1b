//! engauge-gen: realistic, deterministic synthetic engagement event streams for the demo, tests
//! and benchmarks.
//!
//! A [`Generator`] emits native JSON event lines (SPEC §1) that look like product telemetry:
//!
//! * **Users** follow a Zipf–Mandelbrot activity law (s = 1.1 by default, sampled in O(1) by
//!   rejection-inversion), so a few power users are very active and most users appear rarely.
//!   Ids and attributes (`plan`, `region`, `platform`) are pure functions of the user index
//!   ([`user_id`], [`user_profile`]): no per-user memory.
//! * **Time**: sessions arrive as a Poisson process following a diurnal curve (UTC peak 15:00,
//!   trough 03:00, weekends at 70 %); the rate is calibrated so `events` lines span `days`.
//! * **Sessions**: bursts of one user's events, geometric length (mean 8), seconds to minutes
//!   apart; 30 % carry an explicit `session_id`. Types: mostly views and actions, then
//!   `feature_used` (Zipf-popular names), `survey_response` (NPS ≈ 45 % promoters / 25 %
//!   detractors, CSAT ≈ 80 % ≥ 4, CES mean ≈ 5.5, some comments), purchases, refunds,
//!   cancellations, support tickets and self-service resolutions.
//! * **Imperfections**: duplicates (byte-identical, up to 30 s later), out-of-order lines
//!   (delayed by up to `max_disorder`) and, on request, malformed lines of every [`BadKind`].
//!
//! Lines leave in order of emission time ([`Generator::peek_time`], non-decreasing); no line is
//! emitted more than `max_disorder` behind the newest event time already emitted. The same
//! configuration and seed always give the same bytes. Memory is bounded by concurrent sessions
//! and lines in flight, not by the stream length: 10 M lines over 1 M users and 35 days keep
//! about 250 sessions open and encode at roughly 5 M lines/s on one core
//! (`cargo bench -p engauge-gen`).
//!
//! ```
//! use engauge_gen::{GenConfig, Generator};
//!
//! let mut generator = Generator::new(GenConfig { events: 3, ..GenConfig::default() });
//! let mut line = Vec::new();
//! while let Some(_event_time) = generator.next_into(&mut line) {
//!     assert!(line.starts_with(b"{\"id\":"));
//!     line.clear();
//! }
//! ```

mod config;
mod diurnal;
mod event;
mod generator;
mod malformed;
mod population;
mod rng;
mod zipf;

use std::io::{self, Write};

pub use config::{DEFAULT_START, GenConfig, GenConfigError};
pub use event::{Currency, EventBody, FEATURE_NAMES, GenEvent, feature_name};
pub use generator::{GenStats, Generator};
pub use malformed::BadKind;
pub use population::{MAX_USERS, UserProfile, user_id, user_number, user_profile};

/// Writes the whole stream for `cfg` as NDJSON (one line per event, each ending in `\n`) and
/// returns the number of lines.
pub fn write_ndjson(cfg: GenConfig, mut out: impl Write) -> io::Result<u64> {
    const CHUNK: usize = 1 << 16;
    let mut generator = Generator::new(cfg);
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    let mut lines = 0u64;
    while generator.next_into(&mut buf).is_some() {
        buf.push(b'\n');
        lines += 1;
        if buf.len() >= CHUNK {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(lines)
}
