//! `engauge run`: Kafka in, engine, snapshots and dead letters out, offsets committed once their
//! effects are safe. One thread owns the consumer, the engine and the producer; the HTTP server
//! runs on its own thread and reads shared telemetry.
//!
//! Restart and rebalance (SPEC §6): the committed offset of a partition is where its next owner
//! must start to rebuild the state of every open window instance; its metadata carries how far
//! the previous owner processed (earlier messages are replay: no dead letters, no counting) and
//! the watermark up to which it published (those instances are not published again). See
//! `engauge_kafka::CommitPoint`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use engauge_codec::{DecodeContext, RejectReason, decode_event_into, empty_event, encode_snapshot};
use engauge_core::time::HOUR;
use engauge_core::{Engine, EngineStats, Ingested, Millis, Snapshot, WatermarkTracker};
use engauge_kafka::{
    BorrowedMessage, Checkpoint, CommitMode, CommitPoint, Headers, KafkaError, Message, OutRecord,
    Outbox, Rebalance, Source, StateRef, TxnEnd, TxnErrorClass, checkpoint_key, read_checkpoints,
    read_state, state_chunks, state_hash,
};

use crate::config::{Config, Guarantee};
use crate::partials;
use crate::reader::{Polled, Reader, View};
use crate::saved::{self, SavedPartition};
use crate::telemetry::Telemetry;
use crate::watchdog::Watchdog;

/// Ordered reads: a partition is read on while its event time stays within this of the next
/// partition behind it.
const READ_SLACK: Millis = engauge_core::time::MINUTE;

/// Wall clock in milliseconds.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Per assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// Dense key of the partition in its shard's watermark tracker.
    index: i32,
    /// Its shard in `Assignment::shards`.
    shard: usize,
    /// First offset not processed yet.
    next: i64,
    /// Messages before this offset were processed by a previous owner: replay only.
    replay_until: i64,
    /// Where this owner started reading (the rebuild start it was handed).
    started_at: i64,
    /// Greatest event time seen.
    max_ts: Option<Millis>,
    /// Hour of `max_ts` → first offset at which `max_ts` reached that hour.
    progress: BTreeMap<i64, i64>,
    paused: bool,
    /// Its position reached its end (no message since the last end notice).
    at_end: bool,
    /// After a seek: the partition's end when the seek was made. librdkafka reports an end of
    /// partition only once per end offset, so a partition read to its end, then sought back,
    /// gets no second report; reaching this offset stands in for it.
    end_after_seek: Option<i64>,
}

impl PartitionState {
    fn new(index: i32, start: i64, replay_until: i64) -> Self {
        PartitionState {
            index,
            shard: 0,
            next: start,
            replay_until,
            started_at: start,
            max_ts: None,
            progress: BTreeMap::new(),
            paused: false,
            at_end: false,
            end_after_seek: None,
        }
    }

    fn saw(&mut self, offset: i64, ts: Millis) {
        if self.max_ts.is_none_or(|m| ts > m) {
            let hour = ts.div_euclid(HOUR);
            if self.max_ts.is_none_or(|m| m.div_euclid(HOUR) < hour) {
                self.progress.insert(hour, offset);
            }
            self.max_ts = Some(ts);
        }
    }

    /// The first offset from which every event with time ≥ `needed` is read again. Events are
    /// found at or after the offset where the partition's greatest event time reached them.
    fn rebuild_from(&mut self, needed: Millis) -> i64 {
        let hour = needed.div_euclid(HOUR);
        // Keep the last entry at or before `hour`; older ones are no longer needed.
        let keep = self.progress.range(..=hour).next_back().map(|(&h, _)| h);
        if let Some(keep) = keep {
            self.progress = self.progress.split_off(&keep);
        }
        match self.progress.first_key_value() {
            Some((&h, &offset)) if h <= hour => offset,
            _ => self.started_at,
        }
    }
}

/// An engine with its watermark: one for the whole assignment, or with scale-out one per input
/// partition (each partition's partials then depend on its own events only, whoever owns it).
struct Shard {
    engine: Engine,
    tracker: WatermarkTracker,
    /// Instances ending at or before this were published by a previous owner.
    suppress_until: Option<Millis>,
    /// Watermark up to which snapshots are published (and, after a settle, delivered).
    published: Option<Millis>,
    /// Scale-out: a sample of the partition's users, and the watermark last reported.
    sample: partials::UserSample,
    reported: Option<Millis>,
    reported_at: Option<Instant>,
}

impl Shard {
    fn new(engine: Engine, tracker: WatermarkTracker, suppress: Option<Millis>) -> Shard {
        Shard {
            engine,
            tracker,
            suppress_until: suppress,
            published: suppress,
            sample: partials::UserSample::default(),
            reported: None,
            reported_at: None,
        }
    }
}

/// Everything that lives for one assignment (rebuilt on every rebalance).
struct Assignment {
    shards: Vec<Shard>,
    /// Scale-out: one shard per partition.
    per_partition: bool,
    /// Few entries: a vector searched by partition number, then topic, allocates nothing per
    /// message.
    partitions: Vec<((String, i32), PartitionState)>,
    /// Since when state is being rebuilt (until every partition is read up to where its
    /// previous owner stopped).
    restoring_since: Option<Instant>,
    /// Exactly-once: state came from a checkpoint rather than from re-reading history.
    from_checkpoint: bool,
}

impl Assignment {
    /// Each partition's commit point (partitions not read from yet have none).
    fn commit_points(&mut self, lookback: Millis) -> Vec<((String, i32), CommitPoint)> {
        let shards = &self.shards;
        self.partitions
            .iter_mut()
            .filter(|(_, s)| s.started_at >= 0)
            .map(|(part, state)| {
                let shard = &shards[state.shard];
                let needed = shard
                    .engine
                    .watermark()
                    .map_or(Millis::MIN, |wm| wm - lookback);
                let point = CommitPoint {
                    rebuild_from: state.rebuild_from(needed).min(state.next),
                    next: state.next.max(state.replay_until),
                    published: shard.published,
                };
                (part.clone(), point)
            })
            .collect()
    }

    /// The least watermark of the shards (the one shown as the pipeline's).
    fn watermark(&self) -> Option<Millis> {
        self.shards
            .iter()
            .filter_map(|s| s.engine.watermark())
            .min()
    }

    /// The engines' statistics, added up.
    fn stats(&self) -> EngineStats {
        let mut total = EngineStats::default();
        for shard in &self.shards {
            let s = shard.engine.stats();
            total.accepted += s.accepted;
            total.late += s.late;
            total.duplicates += s.duplicates;
            total.too_late += s.too_late;
            total.feature_overflow += s.feature_overflow;
            total.users += s.users;
            total.segments = total.segments.max(s.segments);
            total.open_sessions += s.open_sessions;
            total.pending_events += s.pending_events;
            total.dedup_ids += s.dedup_ids;
            for (dim, n) in s.dimension_overflow {
                match total.dimension_overflow.iter_mut().find(|(d, _)| *d == dim) {
                    Some((_, m)) => *m += n,
                    None => total.dimension_overflow.push((dim, n)),
                }
            }
        }
        total
    }
}

/// Runs the pipeline until `shutdown` is set. Returns after a graceful stop: fetching stopped,
/// effects flushed, offsets committed, group left.
pub fn run(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    telemetry: &Telemetry,
) -> anyhow::Result<()> {
    if config.scale_out.is_none() {
        return run_pipeline(config, shutdown, telemetry);
    }
    // Scale-out: the merger election runs beside the pipeline; either ending (a panic too)
    // stops both.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let merger_stop = Arc::clone(&shutdown);
        let merger = scope.spawn(move || {
            let _stop = StopOnDrop(Arc::clone(&merger_stop));
            crate::merger::run(config, &merger_stop, telemetry)
        });
        let stop = StopOnDrop(Arc::clone(&shutdown));
        let result = run_pipeline(config, Arc::clone(&shutdown), telemetry);
        drop(stop);
        let merged = merger
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the merger thread panicked")));
        result.and(merged)
    })
}

fn run_pipeline(
    config: &Config,
    shutdown: Arc<AtomicBool>,
    telemetry: &Telemetry,
) -> anyhow::Result<()> {
    let settings = &config.kafka;
    let mut source = Source::new(settings).context("cannot create the Kafka consumer")?;
    let exactly_once = config.guarantee == Guarantee::ExactlyOnce;
    // Exactly-once: a transactional producer per assignment (its id names the partition set).
    let outbox = if exactly_once {
        None
    } else {
        Some(Outbox::new(settings).context("cannot create the Kafka producer")?)
    };
    let commit_every = Duration::from_millis(if exactly_once {
        config.checkpoint_interval
    } else {
        config.commit_interval
    } as u64);
    let mut pipeline = Pipeline {
        config,
        telemetry,
        exactly_once,
        outbox,
        assignment: None,
        snapshots: Vec::new(),
        decode: DecodeContext {
            max_future_skew: config.max_future_skew,
            max_event_bytes: config.max_event_bytes,
            scales: config.engine.surveys,
            currencies: config.currencies.clone(),
            ..DecodeContext::new(now_millis())
        },
        snapshot_record: OutRecord {
            topic: settings.snapshot_topic.clone(),
            key: Some(Vec::with_capacity(64)),
            payload: Vec::with_capacity(2048),
            headers: vec![("engauge.member".to_owned(), member_id().into_bytes())],
        },
        last_commit: Instant::now(),
        single_topic: settings.input_topics.len() == 1,
        scale_out: config.scale_out.is_some(),
        counted: Counted::default(),
        watchdog: Watchdog::new(
            Duration::from_millis(config.stall_timeout as u64),
            Instant::now(),
        ),
        progressed: false,
        recreate_consumer: false,
        states_saved: 0,
        state_unsaved: None,
        state_partition: 0,
        commit_now: false,
        revoking: false,
    };
    telemetry.set_not_ready("waiting for a partition assignment");
    let mut last_tick = Instant::now();
    let mut polls: u32 = 0;
    // Ordered reads: the assigned partitions' own queues (see `reader`).
    let mut reader: Option<Reader> = None;
    while !shutdown.load(Ordering::Relaxed) {
        for rebalance in source.take_rebalances() {
            if config.ordered_reads {
                // Split before `assign` seeks: the seek discards what reached the consumer's
                // queue before the split.
                reader = match &rebalance {
                    Rebalance::Assigned(parts) => Some(Reader::new(
                        parts.clone(),
                        source.split(parts, &std::thread::current()),
                        READ_SLACK,
                    )),
                    Rebalance::Revoked(_) => None,
                };
            }
            pipeline.rebalance(&source, rebalance)?;
        }
        if pipeline.recreate_consumer {
            // A rewind could not seek: leave the group and join again (the new assignment
            // rebuilds from the committed offsets).
            pipeline.recreate_consumer = false;
            reader = None;
            source = pipeline.rejoin(source)?;
            continue;
        }
        // The consumer's queue carries rebalances, errors and statistics, and the messages of
        // partitions not read from queues of their own: with ordered reads, look every 128
        // messages (a fraction of a millisecond) or when the partitions have nothing. An empty
        // poll costs a lock and three clock reads; every 16 messages it was 3 % of the thread.
        polls = polls.wrapping_add(1);
        let mut busy = false;
        let mut idle = false;
        if reader.as_ref().is_none_or(Reader::has_unsplit) || polls.is_multiple_of(128) {
            let wait = Duration::from_millis(if reader.is_some() { 0 } else { 20 });
            busy = pipeline.polled_main(source.poll(wait));
        }
        if !busy && let Some(reader) = reader.as_mut() {
            match reader.poll(|key| pipeline.view(key)) {
                Polled::Message(message) => {
                    pipeline.message(&message);
                    busy = true;
                }
                Polled::End(key) => pipeline.end_of(key),
                Polled::Error(e) => telemetry.kafka_error(&e),
                Polled::Nothing => idle = true,
            }
        }
        if idle && !pipeline.polled_main(source.poll(Duration::ZERO)) {
            // Woken early when a partition's queue gets messages.
            std::thread::park_timeout(Duration::from_millis(20));
        }
        // Reading the clock costs about as much as handling a small message: while messages
        // flow, look every 16 of them (well under a millisecond).
        if busy && !polls.is_multiple_of(16) {
            continue;
        }
        let clock = Instant::now();
        if clock.duration_since(last_tick) >= Duration::from_millis(50) {
            let stalled = pipeline.tick(&source, now_millis());
            last_tick = clock;
            if stalled {
                // Hand over what is safe, leave the group and join again with a new consumer:
                // the new assignment rebuilds from the committed offsets.
                pipeline.commit(&source, CommitMode::Sync)?;
                reader = None;
                source = pipeline.rejoin(source)?;
            }
        }
        if pipeline.commit_now || clock.duration_since(pipeline.last_commit) >= commit_every {
            pipeline.commit_now = false;
            pipeline.commit(&source, CommitMode::Async)?;
        }
    }
    // Graceful stop: publish what closed, wait for every delivery, commit, leave the group.
    let _ = pipeline.tick(&source, now_millis());
    pipeline.commit(&source, CommitMode::Sync)?;
    if exactly_once {
        // Committed above; nothing open remains (an abort of an empty transaction).
        pipeline.release();
    }
    source.close();
    if let Some(outbox) = pipeline.outbox.as_mut()
        && !outbox.flush(Duration::from_secs(10))
    {
        eprintln!("engauge: some records were not confirmed before shutdown");
    }
    Ok(())
}

struct Pipeline<'a> {
    config: &'a Config,
    telemetry: &'a Telemetry,
    exactly_once: bool,
    /// The producer of snapshots and dead letters. Exactly-once: transactional, created for
    /// each assignment, `None` while nothing is assigned.
    outbox: Option<Outbox>,
    /// A rewind could not seek the consumer: the main loop recreates it.
    recreate_consumer: bool,
    assignment: Option<Assignment>,
    snapshots: Vec<Snapshot>,
    /// Decoding settings; `now` is refreshed every tick (50 ms), which is all the precision the
    /// future-skew check and idleness need.
    decode: DecodeContext,
    /// Reused for every snapshot; its header `engauge.member` tells this process's snapshots
    /// apart when several run.
    snapshot_record: OutRecord,
    last_commit: Instant,
    single_topic: bool,
    /// Scale-out: one engine per partition, partials instead of snapshots.
    scale_out: bool,
    /// Messages counted since the last tick, added to the metrics at each tick (an atomic
    /// add per message costs as much as a third of decoding one).
    counted: Counted,
    watchdog: Watchdog,
    /// A message or end of partition arrived since the last tick.
    progressed: bool,
    /// Exactly-once: states written to the state topic (part of each state's id).
    states_saved: u64,
    /// Why the last checkpoint carried no state (reported once per reason).
    state_unsaved: Option<String>,
    /// Exactly-once: the state topic partition this assignment writes to (by transactional id).
    state_partition: i32,
    /// Commit without waiting for the interval: state is back after a restore or rebuild, so
    /// the instances that fell due meanwhile become visible at once (exactly-once).
    commit_now: bool,
    /// Exactly-once: the checkpoint being committed is the one on revoke (an abort then ends
    /// the assignment instead of rewinding it).
    revoking: bool,
}

#[derive(Debug, Default)]
struct Counted {
    consumed: u64,
    decoded: u64,
}

impl Pipeline<'_> {
    /// How far before the watermark the next owner must start re-reading: the engine's rebuild
    /// horizon (longest window or calendar period, twice with lifecycle KPIs, n-day cohorts)
    /// plus session, lateness and dedup margins.
    fn lookback(&self, engine: &Engine) -> Millis {
        let e = &self.config.engine;
        engine.rebuild_horizon()
            + e.session_max
            + e.session_gap
            + e.allowed_lateness
            + e.dedup_horizon
    }

    fn rebalance(&mut self, source: &Source, rebalance: Rebalance) -> anyhow::Result<()> {
        match rebalance {
            Rebalance::Revoked(parts) => {
                // At least once: the revoke callback committed the last safe offsets for the
                // next owner. Exactly once: a checkpoint now — state, checkpoint records and
                // offsets in one last transaction — so the next owner restores instead of
                // redoing the interval. The group still accepts it until the rebalance
                // completes; if it has moved on, the transaction aborts (reason `revoked`) and
                // the next owner redoes the work from the previous checkpoint.
                if self.exactly_once && self.outbox.is_some() && self.assignment.is_some() {
                    self.revoking = true;
                    let checkpoint = self.commit(source, CommitMode::Sync);
                    self.revoking = false;
                    checkpoint?;
                }
                self.release();
                self.telemetry.partitions_revoked(&parts);
                self.telemetry
                    .set_not_ready("partitions revoked, waiting for an assignment");
            }
            Rebalance::Assigned(parts) => self.assign(source, parts, false)?,
        }
        Ok(())
    }

    /// Leaves the group and joins again with a new consumer; the new assignment rebuilds from
    /// the committed offsets.
    fn rejoin(&mut self, source: Source) -> anyhow::Result<Source> {
        self.release();
        source.close();
        let source =
            Source::new(&self.config.kafka).context("cannot recreate the Kafka consumer")?;
        self.watchdog.reset(Instant::now());
        Ok(source)
    }

    /// Drops the assignment; exactly-once: aborts the open transaction and drops the producer.
    fn release(&mut self) {
        self.assignment = None;
        if self.exactly_once
            && let Some(mut outbox) = self.outbox.take()
        {
            outbox.abort(Instant::now() + Duration::from_secs(5));
        }
    }

    /// Exactly-once: the transactional producer for `parts`, retrying what librdkafka calls
    /// retriable (a coordinator not available yet); a fatal error stops the pipeline.
    fn transactional_outbox(&self, parts: &[(String, i32)]) -> anyhow::Result<Outbox> {
        let id = self.config.kafka.transactional_id(parts);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match Outbox::transactional(&self.config.kafka, &id, Duration::from_secs(10)) {
                Ok(outbox) => return Ok(outbox),
                Err(engauge_kafka::OutboxError::Kafka(e))
                    if TxnErrorClass::of(&e) != TxnErrorClass::Fatal
                        && Instant::now() < deadline =>
                {
                    self.telemetry.kafka_error(&e);
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(engauge_kafka::OutboxError::Kafka(e)) => {
                    return Err(engauge_kafka::TxnFatal::from_error(e))
                        .context("cannot start the transactional producer");
                }
                Err(e) => return Err(e).context("cannot create the transactional producer"),
            }
        }
    }

    /// Exactly-once: fences every other transactional id that claimed one of `parts` (a dead
    /// or stalled owner of another partition set may hold an open transaction over them, which
    /// brokers without transaction timeouts never abort), then claims `parts` for `id`. A
    /// claim lists `id` and every id that could not be fenced, so the next owner tries those
    /// again. Failures are logged, not returned: fencing only spares readers a wait for the
    /// broker's transaction timeout.
    fn fence_and_claim(&self, parts: &[(String, i32)], id: &str) {
        let settings = &self.config.kafka;
        let keys: Vec<String> = parts
            .iter()
            .map(|(t, p)| engauge_kafka::owner_key(&settings.group_id, t, *p))
            .collect();
        let owners = match engauge_kafka::read_owners(settings, &keys, Duration::from_secs(30)) {
            Ok(owners) => owners,
            Err(e) => {
                self.telemetry.kafka_error(&e);
                eprintln!(
                    "engauge: WARNING: cannot read the partitions' owners ({e}); their claims \
                     stay for the next owner to fence"
                );
                return;
            }
        };
        // Per partition, the ids of its latest claim (one per line).
        let latest: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                owners
                    .get(k)
                    .and_then(|v| v.last())
                    .map(|b| {
                        String::from_utf8_lossy(b)
                            .lines()
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        if latest.iter().all(|ids| ids.len() == 1 && ids[0] == id) {
            return; // Claimed by this id already (a rewind of the same assignment).
        }
        let mut others: Vec<&str> = latest.iter().flatten().map(String::as_str).collect();
        others.retain(|o| *o != id);
        others.sort_unstable();
        others.dedup();
        let mut claim = vec![id];
        for other in others {
            match Outbox::fence(settings, other, Duration::from_secs(30)) {
                Ok(()) => eprintln!("engauge: fenced the previous owner {other}"),
                Err(e) => {
                    eprintln!("engauge: WARNING: cannot fence the previous owner {other}: {e}");
                    claim.push(other);
                }
            }
        }
        let payload = claim.join("\n").into_bytes();
        let claimed = Outbox::new(settings).map(|mut outbox| {
            for key in &keys {
                outbox.send(&engauge_kafka::OutRecord {
                    topic: settings.checkpoint_topic.clone(),
                    key: Some(key.clone().into_bytes()),
                    payload: payload.clone(),
                    headers: Vec::new(),
                });
            }
            outbox
                .settle(Duration::from_secs(30))
                .is_ok_and(|delivered| delivered)
        });
        if !matches!(claimed, Ok(true)) {
            eprintln!(
                "engauge: WARNING: the ownership claim of {id} was not confirmed; a member that \
                 takes these partitions over may wait for the broker's transaction timeout"
            );
        }
    }

    /// Starts owning `parts`: state rebuilt from each partition's committed point. With
    /// `seek`, the consumer is moved back to those points first (a rewind after an aborted or
    /// uncertain transaction; a new assignment starts there by itself).
    fn assign(
        &mut self,
        source: &Source,
        parts: Vec<(String, i32)>,
        seek: bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        if self.exactly_once && !parts.is_empty() {
            // First, so that a predecessor's open transaction (same partitions) is fenced and
            // resolved before its offsets are read; owners of other partition sets are fenced
            // through their claims, and this member's claim precedes its first transaction.
            let id = self.config.kafka.transactional_id(&parts);
            self.fence_and_claim(&parts, &id);
            let outbox = self.transactional_outbox(&parts)?;
            let state_topic = &self.config.kafka.state_topic;
            let count = source
                .partition_count(state_topic, Duration::from_secs(10))
                .with_context(|| format!("cannot read the partitions of {state_topic}"))?;
            let id = outbox.transactional_id().unwrap_or_default();
            self.state_partition = (state_hash(id.as_bytes()) % count as u64) as i32;
            self.outbox = Some(outbox);
        }
        // The group coordinator can be briefly unavailable right after a rebalance.
        let mut attempt = 0;
        let checkpoints = loop {
            let read = if self.exactly_once {
                self.committed_with_checkpoints(source, &parts)
            } else {
                source
                    .committed(&parts, Duration::from_secs(10))
                    .map(|points| {
                        points
                            .into_iter()
                            .map(|point| point.map(|point| Checkpoint { point, state: None }))
                            .collect()
                    })
            };
            match read {
                Ok(checkpoints) => break checkpoints,
                Err(e) if attempt < 5 => {
                    self.telemetry.kafka_error(&e);
                    attempt += 1;
                    std::thread::sleep(Duration::from_secs(2));
                }
                Err(e) if self.exactly_once => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot read committed offsets and checkpoints (does the checkpoint \
                             topic {} exist?)",
                            self.config.kafka.checkpoint_topic
                        )
                    });
                }
                Err(e) => return Err(e).context("cannot read committed offsets"),
            }
        };
        let points: Vec<Option<CommitPoint>> = checkpoints
            .iter()
            .map(|c| c.as_ref().map(|c| c.point))
            .collect();
        // Exactly-once: the state saved with the committed offsets, when there is one.
        let restored = if self.exactly_once && !parts.is_empty() && self.config.scale_out.is_none()
        {
            self.restore_state(&parts, &checkpoints)
        } else {
            None
        };
        // Exactly-once commits the processed position: rebuilding starts before it, a restored
        // state continues from it.
        let mut ends = vec![None; parts.len()];
        // Ordered reads: the run loop split the partitions' queues; a seek discards what was
        // fetched into the consumer's queue before.
        if seek || self.exactly_once || self.config.ordered_reads {
            for ((part, point), end) in parts.iter().zip(&points).zip(&mut ends) {
                let to = point.map(|p| {
                    if restored.is_some() {
                        p.next
                    } else {
                        p.rebuild_from
                    }
                });
                let sought = source
                    .watermarks(&part.0, part.1, Duration::from_secs(10))
                    .and_then(|(low, high)| {
                        source.seek(&part.0, part.1, to, Duration::from_secs(10))?;
                        Ok((low, high))
                    });
                match sought {
                    Ok((low, high)) => *end = Some((to.unwrap_or(low).max(low), high)),
                    Err(e) => {
                        self.telemetry.kafka_error(&e);
                        self.recreate_consumer = true;
                        return Ok(());
                    }
                }
            }
        }
        let now = now_millis();
        let new_tracker = || {
            WatermarkTracker::new(
                self.config.engine.allowed_lateness,
                self.config.idle_timeout,
            )
        };
        let mut partitions = Vec::with_capacity(parts.len());
        let (engine, saved_parts) = match restored {
            Some((engine, saved)) => (engine, saved),
            None => (Engine::new(self.config.engine.clone())?, Vec::new()),
        };
        // Instances up to the furthest published watermark were published already.
        let suppress = points.iter().flatten().filter_map(|p| p.published).max();
        let scale_out = self.config.scale_out.is_some();
        let mut shards = if scale_out {
            // One engine per partition, each suppressing what its own point says was published.
            let mut shards = Vec::with_capacity(parts.len());
            for point in &points {
                let engine = Engine::new(self.config.engine.clone())?;
                shards.push(Shard::new(
                    engine,
                    new_tracker(),
                    point.and_then(|p| p.published),
                ));
            }
            shards
        } else {
            vec![Shard::new(engine, new_tracker(), suppress)]
        };
        for (index, ((part, point), end)) in parts.iter().zip(&points).zip(ends).enumerate() {
            let shard = if scale_out { index } else { 0 };
            let tracker = &mut shards[shard].tracker;
            let index = index as i32;
            tracker.assign(index, now);
            let saved = saved_parts
                .iter()
                .find(|s| s.partition == part.1 && s.topic == part.0);
            let mut state = match (point, saved) {
                (Some(p), Some(saved)) => {
                    // Its last message arrived before the previous owner stopped: idle for at
                    // least the idle timeout once caught up (no wait before the watermark moves).
                    if let Some(ts) = saved.max_ts {
                        tracker.observe(index, ts, now - self.config.idle_timeout);
                    }
                    PartitionState {
                        next: p.next,
                        started_at: saved.started_at,
                        max_ts: saved.max_ts,
                        progress: saved.progress.iter().copied().collect(),
                        ..PartitionState::new(index, p.next, p.next)
                    }
                }
                (Some(p), None) => PartitionState::new(index, p.rebuild_from, p.next),
                // No commit of ours: librdkafka's auto.offset.reset decides; nothing
                // before it was processed by anyone.
                (None, _) => PartitionState::new(index, -1, -1),
            };
            state.shard = shard;
            match end {
                Some((from, high)) if high <= from => {
                    tracker.set_caught_up(index, true);
                    state.at_end = true;
                }
                Some((_, high)) => state.end_after_seek = Some(high),
                None => {}
            }
            partitions.push((part.clone(), state));
        }
        let from = if saved_parts.is_empty() {
            "rebuilding from"
        } else {
            "state restored; continuing from"
        };
        eprintln!(
            "engauge: assigned {} partition(s){}; {from} {:?}, published up to {:?}",
            parts.len(),
            self.outbox
                .as_ref()
                .and_then(Outbox::transactional_id)
                .map(|id| format!(" (transactional id {id})"))
                .unwrap_or_default(),
            partitions
                .iter()
                .map(|(_, s)| (s.started_at >= 0).then_some(s.next))
                .collect::<Vec<_>>(),
            suppress,
        );
        self.assignment = Some(Assignment {
            shards,
            per_partition: scale_out,
            partitions,
            restoring_since: Some(started),
            from_checkpoint: !saved_parts.is_empty(),
        });
        if parts.is_empty() {
            self.telemetry.set_not_ready("no partition assigned");
        } else {
            self.telemetry.set_ready();
        }
        Ok(())
    }

    /// Exactly-once: each partition's commit point. The committed offset is the processed
    /// position; the checkpoint record committed in the same transaction carries the rest (the
    /// rebuild start, the published watermark), so the two must agree: a checkpoint past the
    /// committed offset is ignored (its transaction aborted; not every broker hides those), and
    /// one behind it is stale — the newer record is not readable yet (an open transaction of a
    /// zombie holds the topic's last stable offset back until it is fenced or times out). Stale
    /// partitions are read again for up to a minute; after that the partition is rebuilt from
    /// its beginning and instances may be published again (reported).
    fn committed_with_checkpoints(
        &self,
        source: &Source,
        parts: &[(String, i32)],
    ) -> Result<Vec<Option<Checkpoint>>, KafkaError> {
        let committed = source.committed_offsets(parts, Duration::from_secs(10))?;
        let settings = &self.config.kafka;
        let keys: Vec<String> = parts
            .iter()
            .map(|(t, p)| checkpoint_key(&settings.group_id, t, *p))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = read_checkpoints(settings, &keys, Duration::from_secs(30))?;
            let decoded: Vec<Vec<Checkpoint>> = keys
                .iter()
                .map(|key| {
                    records
                        .get(key)
                        .into_iter()
                        .flatten()
                        .filter_map(|bytes| {
                            Checkpoint::decode(bytes)
                                .inspect_err(|e| {
                                    eprintln!("engauge: checkpoint {key} ignored: {e}")
                                })
                                .ok()
                        })
                        .collect()
                })
                .collect();
            // The tokens the group committed on the state topic partitions these records use.
            let mut slots: Vec<(String, i32)> = decoded
                .iter()
                .flatten()
                .filter_map(|c| c.state)
                .map(|r| (settings.state_topic.clone(), r.partition))
                .collect();
            slots.sort_unstable();
            slots.dedup();
            let tokens: Vec<(i32, i64)> = if slots.is_empty() {
                Vec::new()
            } else {
                source
                    .committed_offsets(&slots, Duration::from_secs(10))?
                    .into_iter()
                    .zip(&slots)
                    .filter_map(|(c, (_, p))| Some((*p, c?.0)))
                    .collect()
            };
            let mut stale = Vec::new();
            let points: Vec<Option<Checkpoint>> = committed
                .iter()
                .zip(&keys)
                .zip(&decoded)
                .map(|((committed, key), decoded)| {
                    let &(offset, _) = committed.as_ref()?;
                    // Records written with exactly these offsets, newest first: the one its
                    // transaction's token confirms, else the newest (a broker that hides aborted
                    // transactions shows no other).
                    let mut candidates = decoded.iter().rev().filter(|c| c.point.next == offset);
                    let confirmed = candidates.clone().find(|c| {
                        c.state
                            .is_some_and(|r| tokens.contains(&(r.partition, r.from)))
                    });
                    // Unconfirmed, its state may be an aborted transaction's: rebuild instead.
                    let checkpoint = confirmed.cloned().or_else(|| {
                        candidates.next().map(|c| Checkpoint {
                            state: None,
                            ..c.clone()
                        })
                    });
                    match checkpoint {
                        Some(c) => Some(c),
                        None => {
                            stale.push(key.as_str());
                            Some(Checkpoint {
                                point: CommitPoint {
                                    rebuild_from: 0,
                                    next: offset,
                                    published: None,
                                },
                                state: None,
                            })
                        }
                    }
                })
                .collect();
            if stale.is_empty() {
                return Ok(points);
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "engauge: no checkpoint matches the committed offsets of {stale:?}; \
                     rebuilding them from the beginning (instances may be published again)"
                );
                return Ok(points);
            }
            self.telemetry
                .set_not_ready("waiting for the checkpoint of the committed offsets");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Exactly-once: the engine and per-partition state saved in the transaction that committed
    /// the offsets, when every partition's checkpoint points to the same saved state and that
    /// state covers exactly these partitions. Anything else (no state saved, another partition
    /// set, a changed engine configuration, chunks gone) is reported and answered with `None`:
    /// the caller rebuilds from history, which is always correct.
    fn restore_state(
        &self,
        parts: &[(String, i32)],
        checkpoints: &[Option<Checkpoint>],
    ) -> Option<(Engine, Vec<SavedPartition>)> {
        let refs: Vec<Option<StateRef>> = checkpoints
            .iter()
            .map(|c| c.as_ref().and_then(|c| c.state))
            .collect();
        // Every committed partition's record must point to the same state (a partition without
        // a commit had no data when the state was saved, which the saved positions confirm).
        let first = refs.iter().flatten().next().copied()?;
        let committed = checkpoints.iter().flatten();
        if committed.clone().any(|c| c.state != Some(first)) {
            eprintln!(
                "engauge: the partitions' checkpoints point to different saved states (the \
                 assignment changed); rebuilding from history"
            );
            return None;
        }
        if first.len == 0 {
            eprintln!("engauge: the checkpoint has no saved state; rebuilding from history");
            return None;
        }
        let why = match read_state(&self.config.kafka, &first, Duration::from_secs(60)) {
            Ok(Some(bytes)) => match saved::decode(&bytes) {
                Ok((saved, engine)) => {
                    let mut have: Vec<(&str, i32)> = saved
                        .iter()
                        .map(|s| (s.topic.as_str(), s.partition))
                        .collect();
                    let mut want: Vec<(&str, i32)> =
                        parts.iter().map(|(t, p)| (t.as_str(), *p)).collect();
                    have.sort_unstable();
                    want.sort_unstable();
                    // The state covers exactly the committed positions.
                    let positions_match = parts.iter().zip(checkpoints).all(|((t, p), c)| {
                        saved
                            .iter()
                            .find(|s| s.partition == *p && s.topic == *t)
                            .is_some_and(|s| match c {
                                Some(c) => s.next == c.point.next,
                                None => s.started_at < 0,
                            })
                    });
                    if have != want {
                        "it covers other partitions".to_owned()
                    } else if !positions_match {
                        "its positions are not the committed ones".to_owned()
                    } else {
                        match Engine::restore(self.config.engine.clone(), engine) {
                            Ok(engine) => return Some((engine, saved)),
                            Err(e) => e.to_string(),
                        }
                    }
                }
                Err(e) => e,
            },
            Ok(None) => format!(
                "its chunks are not on {} any more",
                self.config.kafka.state_topic
            ),
            Err(e) => {
                self.telemetry.kafka_error(&e);
                format!("it cannot be read: {e}")
            }
        };
        eprintln!("engauge: saved state not used ({why}); rebuilding from history");
        None
    }

    /// Exactly-once, after an aborted or uncertain transaction: a new producer (which resolves
    /// whatever is still open under the same id), then state and positions rewound to what the
    /// group says is committed.
    fn rewind(&mut self, source: &Source, reason: &'static str) -> anyhow::Result<()> {
        let parts: Vec<(String, i32)> = self
            .assignment
            .as_ref()
            .map(|a| a.partitions.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        self.telemetry.transaction_aborted(reason);
        self.outbox = None; // Dropping it purges what it still holds.
        self.assignment = None;
        self.assign(source, parts, true)
    }

    fn message(&mut self, message: &BorrowedMessage<'_>) {
        let Some(assignment) = self.assignment.as_mut() else {
            return;
        };
        self.progressed = true;
        let partition = message.partition();
        // With one input topic the partition alone identifies it (reading the topic name
        // costs a string check per message).
        let single_topic = self.single_topic;
        let Some((key, state)) = assignment
            .partitions
            .iter_mut()
            .find(|((t, p), _)| *p == partition && (single_topic || t == message.topic()))
        else {
            return;
        };
        let offset = message.offset();
        if state.started_at < 0 {
            state.started_at = offset;
        }
        if offset < state.next {
            return; // Already processed in this assignment: never count twice.
        }
        state.next = offset + 1;
        state.at_end = false;
        if state.end_after_seek.is_some_and(|end| state.next >= end) {
            state.end_after_seek = None;
            state.at_end = true;
            assignment.shards[state.shard]
                .tracker
                .set_caught_up(state.index, true);
        }
        let replay = offset < state.replay_until;
        let now = self.decode.now;
        let payload = message.payload().unwrap_or(&[]);
        if !replay {
            self.counted.consumed += 1;
        }
        let mut event = empty_event();
        let rejection = match decode_event_into(payload, &self.decode, &mut event) {
            Ok(()) => {
                state.saw(offset, event.ts);
                let shard = &mut assignment.shards[state.shard];
                shard.tracker.observe(state.index, event.ts, now);
                if self.scale_out {
                    shard.sample.add(partials::user_hash(&event.user_id));
                }
                match shard.engine.ingest(&event) {
                    Ingested::TooLate => Some((
                        RejectReason::TooLate,
                        "older than every open window instance".to_owned(),
                    )),
                    _ => None,
                }
            }
            Err(reject) => Some((reject.reason, reject.message)),
        };
        if !replay {
            match &rejection {
                None => self.counted.decoded += 1,
                Some((reason, message_text)) => {
                    self.telemetry.rejected(reason.as_str());
                    let mut headers = vec![
                        (
                            "engauge.error.reason".to_owned(),
                            reason.as_str().as_bytes().to_vec(),
                        ),
                        (
                            "engauge.error.message".to_owned(),
                            message_text.as_bytes().to_vec(),
                        ),
                        ("engauge.source.topic".to_owned(), key.0.as_bytes().to_vec()),
                        (
                            "engauge.source.partition".to_owned(),
                            key.1.to_string().into_bytes(),
                        ),
                        (
                            "engauge.source.offset".to_owned(),
                            offset.to_string().into_bytes(),
                        ),
                    ];
                    if let Some(original) = message.headers() {
                        for h in original.iter() {
                            if !h.key.starts_with("engauge.") {
                                headers.push((h.key.to_owned(), h.value.unwrap_or(&[]).to_vec()));
                            }
                        }
                    }
                    if let Some(outbox) = self.outbox.as_mut() {
                        outbox.send(&OutRecord {
                            topic: self.config.kafka.dead_letter_topic.clone(),
                            key: message.key().map(<[u8]>::to_vec),
                            payload: payload.to_vec(),
                            headers,
                        });
                        self.telemetry.dead_lettered(reason.as_str());
                    }
                }
            }
        }
    }

    /// Handles what the consumer's queue gave; whether it was a message.
    fn polled_main(&mut self, polled: Option<Result<BorrowedMessage<'_>, KafkaError>>) -> bool {
        match polled {
            Some(Ok(message)) => {
                self.message(&message);
                true
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                self.eof(partition);
                false
            }
            Some(Err(e)) => {
                self.telemetry.kafka_error(&e);
                false
            }
            None => false,
        }
    }

    /// Where an assigned partition stands, for the reader's order.
    fn view(&self, key: &(String, i32)) -> View {
        let state = self
            .assignment
            .as_ref()
            .and_then(|a| a.partitions.iter().find(|(k, _)| k == key));
        match state {
            Some((_, s)) => View {
                max_ts: s.max_ts,
                at_end: s.at_end,
                paused: s.paused,
            },
            // Not part of the assignment (yet): nothing to wait for.
            None => View {
                max_ts: None,
                at_end: true,
                paused: false,
            },
        }
    }

    /// A partition read from its own queue reached its end.
    fn end_of(&mut self, key: &(String, i32)) {
        self.progressed = true;
        if let Some(a) = self.assignment.as_mut()
            && let Some((_, state)) = a.partitions.iter_mut().find(|(k, _)| k == key)
        {
            state.at_end = true;
            a.shards[state.shard]
                .tracker
                .set_caught_up(state.index, true);
        }
    }

    fn eof(&mut self, partition: i32) {
        self.progressed = true;
        // The notice names no topic: trust it only with one input topic.
        if !self.single_topic {
            return;
        }
        if let Some(a) = self.assignment.as_mut()
            && let Some((_, state)) = a.partitions.iter_mut().find(|(k, _)| k.1 == partition)
        {
            state.at_end = true;
            a.shards[state.shard]
                .tracker
                .set_caught_up(state.index, true);
        }
    }

    fn flush_counts(&mut self) {
        let c = std::mem::take(&mut self.counted);
        if c.consumed > 0 {
            self.telemetry.consumed(c.consumed);
        }
        if c.decoded > 0 {
            self.telemetry.decoded(c.decoded);
        }
    }

    /// Advances the watermark, publishes closed instances, applies backpressure, updates
    /// telemetry.
    /// Returns whether consumption is stalled (the caller recreates the consumer).
    fn tick(&mut self, source: &Source, now: Millis) -> bool {
        self.decode.now = now;
        self.flush_counts();
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.poll(Duration::ZERO);
        }
        let lag = source.lag();
        let progressed = std::mem::take(&mut self.progressed);
        let Some(assignment) = self.assignment.as_mut() else {
            self.telemetry.kafka_health(source.brokers_down_at());
            self.watchdog.reset(Instant::now());
            return false;
        };
        // Liveness: when nothing arrived for a while, ask the partition leaders whether
        // messages wait beyond our position on a partition we are not pausing on purpose. (The
        // lag in the client's statistics cannot tell: it only moves with successful fetches.)
        // A broker outage is reported and recovered from by librdkafka, not a stall of ours.
        let clock = Instant::now();
        if progressed {
            self.watchdog.progress(clock);
        }
        let mut stalled = None;
        if self.watchdog.wants_probe(clock) {
            let brokers_up = source
                .brokers_down_at()
                .is_none_or(|t| t.elapsed().as_secs() >= 10);
            let waiting = brokers_up
                && assignment.partitions.iter().any(|((topic, p), state)| {
                    !state.paused
                        && source
                            .watermarks(topic, *p, Duration::from_millis(500))
                            .is_ok_and(|(_, high)| high > state.next.max(0))
                });
            stalled = self.watchdog.probed(clock, waiting);
        }
        if !self.single_topic {
            for (part, l) in &lag {
                if let Some((_, state)) = assignment.partitions.iter().find(|(k, _)| k == part) {
                    assignment.shards[state.shard]
                        .tracker
                        .set_caught_up(state.index, *l == 0);
                }
            }
        }
        if let Some(since) = assignment.restoring_since
            && assignment
                .partitions
                .iter()
                .all(|(_, s)| s.next >= s.replay_until)
        {
            assignment.restoring_since = None;
            self.commit_now = self.exactly_once;
            self.telemetry.restored(
                assignment.partitions.len(),
                assignment.from_checkpoint,
                since.elapsed(),
            );
        }
        for si in 0..assignment.shards.len() {
            let shard = &mut assignment.shards[si];
            if let Some(wm) = shard.tracker.watermark(now) {
                shard.engine.advance(wm, &mut self.snapshots);
            }
            if let Some(outbox) = self.outbox.as_mut() {
                if let Some(scale) = &self.config.scale_out {
                    if let Some((part, _)) =
                        assignment.partitions.iter().find(|(_, s)| s.shard == si)
                    {
                        publish_partials(
                            outbox,
                            &scale.partials_topic,
                            part,
                            shard,
                            &mut self.snapshots,
                            self.telemetry,
                        );
                    }
                } else if !self.snapshots.is_empty() {
                    publish_snapshots(
                        outbox,
                        &mut self.snapshot_record,
                        shard.suppress_until,
                        &self.snapshots,
                        now,
                        self.telemetry,
                    );
                }
            }
            self.snapshots.clear();
            if let Some(wm) = shard.engine.watermark() {
                shard.published = Some(shard.published.map_or(wm, |p| p.max(wm)));
            }
        }
        // Backpressure: when too many events wait for the watermark, pause the partitions that
        // run ahead of it so the ones holding it back get fetched.
        let stats = assignment.stats();
        let over = stats.pending_events > self.config.max_pending_events;
        let under = stats.pending_events < self.config.max_pending_events / 2;
        let wm = assignment.watermark();
        for (part, state) in assignment.partitions.iter_mut() {
            let shard_wm = assignment.shards[state.shard].engine.watermark();
            let ahead = match (state.max_ts, shard_wm) {
                (Some(ts), Some(w)) => ts - self.config.engine.allowed_lateness > w,
                (Some(_), None) => true,
                _ => false,
            };
            // A paused partition that is no longer ahead (the watermark caught up with it, or
            // it now holds the watermark back) resumes at once: waiting for `under` could wait
            // forever when every partition that holds the watermark is paused.
            let pause = over && ahead;
            let change = if state.paused { under || !ahead } else { pause };
            if change && source.pause(std::slice::from_ref(part), pause).is_ok() {
                state.paused = pause;
            }
        }
        self.telemetry.engine(&stats, wm, &lag);
        self.telemetry.kafka_health(source.brokers_down_at());
        if let Some(stuck) = stalled {
            self.telemetry.consumer_stalled(stuck);
            return true;
        }
        false
    }

    /// Waits until every record sent so far is confirmed, then commits each partition's point.
    /// A record the producer gave up on is an error: nothing past it may be committed, so the
    /// pipeline stops and a restart re-reads from the last commit (at least once).
    fn commit(&mut self, source: &Source, mode: CommitMode) -> anyhow::Result<()> {
        self.last_commit = Instant::now();
        let Some(lookback) = self
            .assignment
            .as_ref()
            .and_then(|a| a.shards.first())
            .map(|shard| self.lookback(&shard.engine))
        else {
            return Ok(());
        };
        let Some(assignment) = self.assignment.as_mut() else {
            return Ok(());
        };
        let Some(outbox) = self.outbox.as_mut() else {
            return Ok(());
        };
        if self.exactly_once {
            let started = Instant::now();
            let points = assignment.commit_points(lookback);
            self.states_saved += 1;
            let (state, unsaved) = save_state(
                &self.config.kafka,
                outbox,
                assignment,
                self.state_partition,
                self.states_saved,
            );
            if let Some(why) = &unsaved
                && self.state_unsaved.as_ref() != Some(why)
            {
                eprintln!(
                    "engauge: checkpoint without engine state ({why}); a restore will rebuild \
                     from history"
                );
            }
            self.state_unsaved = unsaved;
            // One checkpoint record per partition, in the transaction with the offsets.
            let mut record = OutRecord {
                topic: self.config.kafka.checkpoint_topic.clone(),
                key: None,
                payload: Vec::with_capacity(64),
                headers: Vec::new(),
            };
            for ((topic, partition), point) in &points {
                record.key = Some(
                    checkpoint_key(&self.config.kafka.group_id, topic, *partition).into_bytes(),
                );
                record.payload.clear();
                Checkpoint {
                    point: *point,
                    state,
                }
                .encode(&mut record.payload);
                outbox.send(&record);
            }
            // The state's first offset, committed for the group with the input offsets: it tells
            // this transaction's checkpoint records from those of aborted ones at the same
            // positions, on brokers that show aborted records to read_committed readers.
            let token =
                state.map(|r| (self.config.kafka.state_topic.as_str(), r.partition, r.from));
            return match outbox.commit_transaction(source, &points, token, Duration::from_secs(30))
            {
                Ok(TxnEnd::Committed) => {
                    self.telemetry
                        .transaction_committed(state.map_or(0, |r| r.len), started.elapsed());
                    Ok(())
                }
                Ok(TxnEnd::Aborted(why)) | Ok(TxnEnd::Uncertain(why)) if self.revoking => {
                    eprintln!(
                        "engauge: the checkpoint on revoke did not commit ({why}); the next owner \
                         continues from the previous one"
                    );
                    self.telemetry.transaction_aborted("revoked");
                    Ok(())
                }
                Ok(TxnEnd::Aborted(why)) => {
                    eprintln!("engauge: transaction aborted ({why}); rewinding to the last commit");
                    self.rewind(source, "abortable_error")
                }
                Ok(TxnEnd::Uncertain(why)) => {
                    eprintln!(
                        "engauge: transaction outcome uncertain ({why}); recreating the producer \
                         and rewinding to what the group committed"
                    );
                    self.rewind(source, "uncertain_commit")
                }
                Err(fatal) if self.revoking || source.revoke_pending() => {
                    // E.g. fenced: the next owner of the same partitions has started (or, with
                    // a revoke not handled yet, an owner of other partitions fenced this id
                    // through its claim). Its transaction, not ours, continues; nothing is
                    // ours to stop for.
                    eprintln!(
                        "engauge: the checkpoint on revoke failed ({fatal}); the next owner \
                         continues from the previous one"
                    );
                    self.telemetry.transaction_aborted("revoked");
                    self.outbox = None;
                    Ok(())
                }
                Err(fatal) => Err(fatal).context("stopping"),
            };
        }
        let settled = outbox
            .settle(Duration::from_secs(5))
            .context("stopping: an effect could not be delivered")?;
        if !settled {
            self.telemetry
                .set_not_ready("snapshot or dead-letter deliveries are not confirmed");
            return Ok(()); // Try again next interval; nothing is committed past an unconfirmed effect.
        }
        let points = assignment.commit_points(lookback);
        if let Err(e) = source.commit(&points, mode) {
            self.telemetry.kafka_error(&e);
        }
        Ok(())
    }
}

/// Publishes the snapshots of closed instances (those after `suppress_until`) and shows the
/// newest instance of each window on the gauges.
fn publish_snapshots(
    outbox: &mut Outbox,
    record: &mut OutRecord,
    suppress_until: Option<Millis>,
    snapshots: &[Snapshot],
    now: Millis,
    telemetry: &Telemetry,
) {
    let emitted_at = now;
    // The newest instance (end) of each window that closed.
    let mut newest: Vec<(&str, Millis)> = Vec::new();
    for snap in snapshots {
        if suppress_until.is_none_or(|s| snap.end > s) {
            record.payload.clear();
            encode_snapshot(snap, emitted_at, &mut record.payload);
            let key = record.key.get_or_insert_with(Vec::new);
            key.clear();
            snap.write_key(key);
            outbox.send(record);
            telemetry.snapshot_published();
        }
        match newest.iter_mut().find(|(w, _)| *w == &*snap.window) {
            Some((_, end)) => *end = (*end).max(snap.end),
            None => newest.push((&snap.window, snap.end)),
        }
    }
    // Gauges show the newest instance of each window. The engine emits an instance's
    // snapshots together, so they are one run of the list.
    for (window, end) in newest {
        let same = |s: &Snapshot| *s.window == *window && s.end == end;
        if let Some(from) = snapshots.iter().position(same) {
            let len = snapshots[from..].iter().take_while(|s| same(s)).count();
            telemetry.window_closed(window, &snapshots[from..from + len], end);
        }
    }
}

/// Scale-out: publishes one partial per closed instance of partition `part` (those after the
/// shard's `suppress_until`), then, when its watermark moved, a progress record (at least one
/// after every batch of partials, otherwise at most one a second).
fn publish_partials(
    outbox: &mut Outbox,
    partials_topic: &str,
    part: &(String, i32),
    shard: &mut Shard,
    snapshots: &mut [Snapshot],
    telemetry: &Telemetry,
) {
    let key = partials::key(&part.0, part.1);
    let mut record = OutRecord {
        topic: partials_topic.to_owned(),
        key: Some(key),
        payload: Vec::with_capacity(1024),
        headers: Vec::new(),
    };
    let mut sent = false;
    let mut rest = &mut snapshots[..];
    while let Some(first) = rest.first() {
        let (window, end) = (first.window.clone(), first.end);
        let len = rest
            .iter()
            .take_while(|s| s.window == window && s.end == end)
            .count();
        let (run, tail) = rest.split_at_mut(len);
        rest = tail;
        if shard.suppress_until.is_some_and(|s| end <= s) {
            continue;
        }
        let (start, watermark, utc_offsets) = (run[0].start, run[0].watermark, run[0].utc_offsets);
        let mut seen = None;
        let segments = run
            .iter_mut()
            .filter_map(|s| Some((std::mem::take(&mut s.segment), *s.parts.take()?)))
            .filter(|(_, parts)| !parts.is_empty())
            .map(|(segment, mut parts)| {
                // The same for every segment: carried once.
                let taken = parts.take_seen();
                if seen.is_none() {
                    seen = taken;
                }
                (segment, parts)
            })
            .collect();
        let partial = partials::InstancePartial {
            topic: part.0.clone(),
            partition: part.1,
            window,
            start,
            end,
            watermark,
            utc_offsets,
            segments,
            seen,
        };
        record.payload.clear();
        partials::encode(&partials::Record::Instance(partial), &mut record.payload);
        telemetry.partial_published(record.payload.len());
        match partials::chunks(&record.payload) {
            None => outbox.send(&record),
            Some(chunks) => {
                for chunk in chunks {
                    record.payload = chunk;
                    outbox.send(&record);
                }
            }
        }
        sent = true;
    }
    let Some(wm) = shard.engine.watermark() else {
        return;
    };
    let due = sent
        || shard
            .reported_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
    if shard.reported.is_none_or(|r| wm > r) && due {
        record.payload.clear();
        let progress = partials::Progress {
            topic: part.0.clone(),
            partition: part.1,
            watermark: wm,
            sample: shard.sample.hashes().to_vec(),
        };
        partials::encode(&partials::Record::Progress(progress), &mut record.payload);
        outbox.send(&record);
        shard.reported = Some(wm);
        shard.reported_at = Some(Instant::now());
    }
}

/// Exactly-once: writes the assignment's state to partition `partition` of the state topic
/// inside the open transaction, in chunks, and returns where it is (`None` when it was not
/// delivered), with the reason when the engine's state could not be included (then an empty
/// state is written: its offset still identifies the transaction).
fn save_state(
    settings: &engauge_kafka::KafkaSettings,
    outbox: &mut Outbox,
    assignment: &Assignment,
    partition: i32,
    seq: u64,
) -> (Option<StateRef>, Option<String>) {
    if assignment.per_partition || assignment.shards.len() != 1 {
        return (None, Some("scale-out saves no engine state yet".into()));
    }
    // While re-reading history the engine is behind the committed positions: no state then.
    let rebuilding = assignment
        .partitions
        .iter()
        .any(|(_, s)| s.next < s.replay_until);
    let (engine, unsaved) = if rebuilding {
        (Vec::new(), Some("state is still being rebuilt".to_owned()))
    } else {
        match assignment.shards[0].engine.save_state() {
            Ok(engine) => (engine, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    };
    let blob = if unsaved.is_none() {
        let partitions: Vec<SavedPartition> = assignment
            .partitions
            .iter()
            .map(|((topic, partition), s)| SavedPartition {
                topic: topic.clone(),
                partition: *partition,
                next: s.next,
                started_at: s.started_at,
                max_ts: s.max_ts,
                progress: s.progress.iter().map(|(&h, &o)| (h, o)).collect(),
            })
            .collect();
        saved::encode(&partitions, &engine)
    } else {
        Vec::new()
    };
    drop(engine);
    let txn_id = outbox.transactional_id().unwrap_or_default().to_owned();
    let id = state_hash(format!("{txn_id}/{seq}/{}", now_millis()).as_bytes());
    let mut chunks = state_chunks(id, &blob);
    let count = chunks.count();
    let mut record = OutRecord {
        topic: settings.state_topic.clone(),
        key: None,
        payload: Vec::new(),
        headers: Vec::new(),
    };
    outbox.reset_tracked();
    let mut index = 0;
    while chunks.next_into(&mut record.payload) {
        record.key = Some(format!("{txn_id}/{index}").into_bytes());
        outbox.send_tracked(&record, partition);
        index += 1;
    }
    // The first chunk's offset, from its delivery report (the transaction commits them all).
    let Some(from) = outbox.tracked_first(Duration::from_secs(30)) else {
        return (
            None,
            Some(format!(
                "the state was not delivered to {} in time",
                settings.state_topic
            )),
        );
    };
    let state = StateRef {
        id,
        partition,
        from,
        chunks: count,
        len: blob.len() as u64,
        hash: state_hash(&blob),
    };
    (Some(state), unsaved)
}

/// A process-unique member id: pid and start time (no host name or user data).
fn member_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now_millis(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
