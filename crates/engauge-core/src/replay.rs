//! The replay rule (SPEC §2): the watermark trails the greatest event time by `allowed_lateness`,
//! and at end of input moves to the greatest event time. Used by `engauge replay`, tests and
//! benchmarks alike.

use crate::{Engine, Event, Ingested, Millis, Snapshot};

/// Drives an [`Engine`] over one ordered input with the replay watermark rule.
#[derive(Debug)]
pub struct Replay {
    engine: Engine,
    max_ts: Option<Millis>,
}

impl Replay {
    pub fn new(engine: Engine) -> Self {
        Replay {
            engine,
            max_ts: None,
        }
    }

    /// Ingests one event, then advances the watermark; closed instances go to `out`.
    pub fn push(&mut self, event: &Event<'_>, out: &mut Vec<Snapshot>) -> Ingested {
        let result = self.engine.ingest(event);
        if matches!(result, Ingested::Accepted | Ingested::Late) {
            let max = self.max_ts.map_or(event.ts, |m| m.max(event.ts));
            self.max_ts = Some(max);
            self.engine
                .advance(max - self.engine.config().allowed_lateness, out);
        }
        result
    }

    /// End of input: the watermark moves to the greatest event time seen.
    pub fn finish(&mut self, out: &mut Vec<Snapshot>) {
        if let Some(max) = self.max_ts {
            self.engine.advance(max, out);
        }
    }

    /// Moves the watermark to `watermark` (never backwards), e.g. past the end of input so that
    /// every instance holding events closes.
    pub fn advance_to(&mut self, watermark: Millis, out: &mut Vec<Snapshot>) {
        self.engine.advance(watermark, out);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
