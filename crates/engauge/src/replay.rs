//! `engauge replay`: NDJSON events in, snapshot NDJSON out, without Kafka. The same engine and the
//! same snapshot encoding as `engauge run`; a backfill and debugging tool.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use engauge_codec::{DecodeContext, RejectReason, decode_event_into, empty_event, encode_snapshot};
use engauge_core::{Engine, Ingested, Millis, Replay};

use crate::config::Config;

/// What a replay saw, for the summary on stderr.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub lines: u64,
    pub accepted: u64,
    pub late: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub snapshots: u64,
}

/// Replays `input` and writes snapshots to `output`. `now` is the wall clock used to reject
/// events from the future and to stamp `emitted_at`.
pub fn replay(
    config: &Config,
    input: impl BufRead,
    mut output: impl Write,
    now: impl Fn() -> Millis,
) -> anyhow::Result<ReplaySummary> {
    let mut ctx = DecodeContext::new(now());
    ctx.max_future_skew = config.max_future_skew;
    ctx.max_event_bytes = config.max_event_bytes;
    ctx.scales = config.engine.surveys;
    ctx.currencies = config.currencies.clone();
    // One engine sees every event: it publishes snapshots, never scale-out partials (whose
    // engine also emits segments without events, for other partitions to add to).
    let mut engine = config.engine.clone();
    engine.partials = false;
    let mut replay = Replay::new(Engine::new(engine)?);
    let mut summary = ReplaySummary::default();
    let mut snapshots = Vec::new();
    let mut encoded = Vec::with_capacity(1024);
    let mut input = input;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let bytes = trim_line(&line);
        if bytes.is_empty() {
            continue;
        }
        summary.lines += 1;
        let mut event = empty_event();
        match decode_event_into(bytes, &ctx, &mut event) {
            Err(reject) => *summary.rejected.entry(reject.reason.as_str()).or_default() += 1,
            Ok(()) => match replay.push(&event, &mut snapshots) {
                Ingested::Accepted => summary.accepted += 1,
                Ingested::Late => {
                    summary.accepted += 1;
                    summary.late += 1;
                }
                Ingested::Duplicate => summary.duplicates += 1,
                Ingested::TooLate => {
                    *summary
                        .rejected
                        .entry(RejectReason::TooLate.as_str())
                        .or_default() += 1
                }
            },
        }
        if !snapshots.is_empty() {
            write_snapshots(
                &mut snapshots,
                &mut encoded,
                &mut output,
                &now,
                &mut summary,
            )?;
        }
    }
    replay.finish(&mut snapshots);
    write_snapshots(
        &mut snapshots,
        &mut encoded,
        &mut output,
        &now,
        &mut summary,
    )?;
    output.flush()?;
    Ok(summary)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn write_snapshots(
    snapshots: &mut Vec<engauge_core::Snapshot>,
    encoded: &mut Vec<u8>,
    output: &mut impl Write,
    now: &impl Fn() -> Millis,
    summary: &mut ReplaySummary,
) -> anyhow::Result<()> {
    let emitted_at = now();
    for snap in snapshots.drain(..) {
        encoded.clear();
        encode_snapshot(&snap, emitted_at, encoded);
        encoded.push(b'\n');
        output.write_all(encoded)?;
        summary.snapshots += 1;
    }
    Ok(())
}

impl ReplaySummary {
    /// The human summary printed to stderr.
    pub fn render(&self) -> String {
        let rejected: u64 = self.rejected.values().sum();
        let mut text = format!(
            "engauge replay: {} lines, {} accepted ({} late), {} duplicates, {} rejected, {} snapshots\n",
            self.lines, self.accepted, self.late, self.duplicates, rejected, self.snapshots
        );
        for (reason, n) in &self.rejected {
            text.push_str(&format!("  rejected {reason}: {n}\n"));
        }
        text
    }
}
