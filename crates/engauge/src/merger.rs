//! Scale-out stage 2: the merger. Every instance runs this loop on its own thread; Kafka elects
//! the one that merges. Each instance joins the consumer group `<group_id>.merger` on the
//! single-partition coordination topic, and whichever member the group assigns that partition
//! to is the merger — no protocol of ours decides it.
//!
//! The merger reads the partials topic, adds up the parts of each (window instance, segment)
//! over the input partitions, and publishes the global snapshot when every input partition has
//! reported the instance (a partial, or a progress record past its end), or with
//! `"complete": false` after `completeness_timeout`. It sets the global `engauge_kpi_*` gauges.
//!
//! Its own progress — where to read the partials topic from, the last published instance per
//! window, what each input partition has reported — is a checkpoint record on the coordination
//! topic. The group's committed offset of the coordination partition points at the latest one;
//! with `guarantee = "exactly_once"` the snapshots, the record and that offset commit in one
//! transaction (transactional id `<group_id>.merger`, so a new merger fences the old one).
//! A new merger continues from the record the offset points at: nothing is published twice
//! (exactly-once) or lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use engauge_codec::encode_snapshot;
use engauge_core::{Millis, Parts, Snapshot};
use engauge_kafka::{
    CommitMode, CommitPoint, KafkaError, KafkaSettings, Message, OutRecord, Outbox, Rebalance,
    Source, TopicReader, TxnEnd,
};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Guarantee, ScaleOut};
use crate::partials::{self, InstancePartial, Progress, Read, Record};
use crate::pipeline::now_millis;
use crate::telemetry::Telemetry;

type Part = (String, i32);

/// What a new merger needs to continue: stored as the checkpoint record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct MergerState {
    /// Per partials-topic partition, the first offset to read again: the first partial of an
    /// instance not published yet, or the position reached.
    positions: Vec<(i32, i64)>,
    /// Per window, the end of the last published instance (instances are published in order).
    done: Vec<(String, Millis)>,
    /// Per input partition, its reported watermark.
    watermarks: Vec<(Part, Millis)>,
    /// Per (input partition, window), the greatest end it sent a partial for.
    reported: Vec<((Part, String), Millis)>,
}

const CHECKPOINT_MAGIC: &[u8; 4] = b"EGMC";

fn encode_state(state: &MergerState) -> Vec<u8> {
    use bincode::Options;
    let mut out = CHECKPOINT_MAGIC.to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    let _ = bincode::DefaultOptions::new()
        .with_varint_encoding()
        .serialize_into(&mut out, state);
    out
}

fn decode_state(bytes: &[u8]) -> Result<MergerState, String> {
    use bincode::Options;
    let rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC)
        .ok_or("not a merger checkpoint")?;
    match rest.split_at_checked(2) {
        Some((v, body)) if v == 1u16.to_le_bytes() => bincode::DefaultOptions::new()
            .with_varint_encoding()
            .reject_trailing_bytes()
            .deserialize(body)
            .map_err(|e| format!("corrupt merger checkpoint: {e}")),
        _ => Err("unknown merger checkpoint version".into()),
    }
}

/// One window instance being merged.
#[derive(Debug)]
struct Pending {
    first_seen: Instant,
    start: Millis,
    watermark: Millis,
    utc_offsets: Option<(i32, i32)>,
    from: HashSet<Part>,
    /// First partials-topic offset per partials partition that holds a part of it.
    offsets: Vec<(i32, i64)>,
    segments: BTreeMap<Vec<(String, String)>, Parts>,
    /// Sketch windows with lifecycle KPIs: (lg_k, union of the partials' "seen before" sets).
    seen: Option<(u8, Vec<u8>)>,
}

/// The merge itself, without Kafka: partials and progress records in, snapshots out.
#[derive(Debug)]
pub struct Merge {
    inputs: Vec<Part>,
    timeout: Duration,
    clv: engauge_core::ClvConfig,
    /// Snapshots of sketch windows carry the active-users image.
    images: bool,
    /// See [`set_caught_up`](Self::set_caught_up).
    caught_up: bool,
    /// Per input partition, when the merger last read a partial or progress record of it.
    heard: HashMap<Part, Instant>,
    pending: BTreeMap<(String, Millis), Pending>,
    /// Per window, the greatest published end.
    done: HashMap<String, Millis>,
    /// Per window, the ends published recently (bounded): an instance at or before `done` that
    /// is not among them was never published (its first partial came after a later instance
    /// went out incomplete) and is merged late rather than dropped.
    published: HashMap<String, std::collections::BTreeSet<Millis>>,
    /// Per window, ends at or before this count as published without being in `published`:
    /// a previous merger's `done` at takeover, then the ends pruned from `published`.
    floor: HashMap<String, Millis>,
    watermarks: HashMap<Part, Millis>,
    /// Per input partition, per window: the greatest end it sent a partial for.
    reported: HashMap<Part, HashMap<String, Millis>>,
    samples: HashMap<Part, Vec<u64>>,
    /// Instances published incomplete, with the partitions they missed (bounded).
    incomplete: BTreeMap<(String, Millis), Vec<Part>>,
    pub late_partials: u64,
}

/// A merged instance ready to publish.
#[derive(Debug)]
pub struct Merged {
    pub snapshots: Vec<Snapshot>,
    pub window: String,
    pub end: Millis,
    pub complete: bool,
    /// Input partitions whose partial was not in (when incomplete).
    pub missing: Vec<Part>,
}

impl Merge {
    pub fn new(inputs: Vec<Part>, timeout: Duration, clv: engauge_core::ClvConfig) -> Merge {
        Merge {
            inputs,
            timeout,
            clv,
            images: false,
            caught_up: true,
            heard: HashMap::new(),
            pending: BTreeMap::new(),
            done: HashMap::new(),
            published: HashMap::new(),
            floor: HashMap::new(),
            watermarks: HashMap::new(),
            reported: HashMap::new(),
            samples: HashMap::new(),
            incomplete: BTreeMap::new(),
            late_partials: 0,
        }
    }

    /// Sketch windows: snapshots carry the merged active-users image
    /// (`snapshot.include_sketches`).
    pub fn with_images(mut self, images: bool) -> Merge {
        self.images = images;
        self
    }

    fn restore(&mut self, state: &MergerState) {
        self.done = state.done.iter().cloned().collect();
        self.floor = self.done.clone();
        self.watermarks = state.watermarks.iter().cloned().collect();
        self.reported.clear();
        for ((part, window), end) in &state.reported {
            self.reported
                .entry(part.clone())
                .or_default()
                .insert(window.clone(), *end);
        }
    }

    /// The input partitions changed (partitions added to a topic).
    pub fn set_inputs(&mut self, inputs: Vec<Part>) {
        self.inputs = inputs;
    }

    /// A partial read at `offset` of partials partition `pp`.
    pub fn partial(&mut self, p: InstancePartial, pp: i32, offset: i64, now: Instant) {
        let part = (p.topic, p.partition);
        self.heard.insert(part.clone(), now);
        let windows = self.reported.entry(part.clone()).or_default();
        match windows.get_mut(&p.window) {
            Some(r) => *r = (*r).max(p.end),
            None => {
                windows.insert(p.window.clone(), p.end);
            }
        }
        if self.was_published(&p.window, p.end) {
            // Published already: a re-read, a rebuild's repeat, or late for an incomplete one.
            if let Some(missing) = self.incomplete.get_mut(&(p.window.clone(), p.end))
                && let Some(i) = missing.iter().position(|m| *m == part)
            {
                missing.swap_remove(i);
                self.late_partials += 1;
            }
            return;
        }
        let pending = self
            .pending
            .entry((p.window, p.end))
            .or_insert_with(|| Pending {
                first_seen: now,
                start: p.start,
                watermark: p.watermark,
                utc_offsets: p.utc_offsets,
                from: HashSet::new(),
                offsets: Vec::new(),
                segments: BTreeMap::new(),
                seen: None,
            });
        if !pending.from.insert(part) {
            return; // This partition's partial is in already (a repeat after a rebalance).
        }
        if !pending.offsets.iter().any(|(q, _)| *q == pp) {
            pending.offsets.push((pp, offset));
        }
        pending.watermark = pending.watermark.max(p.watermark);
        if let Some((k, image)) = p.seen {
            pending.seen = Some(match pending.seen.take() {
                Some((mine, union)) => {
                    let k = mine.min(k);
                    (k, engauge_core::partial::set_union(k, &union, &image))
                }
                None => (k, image),
            });
        }
        for (segment, parts) in p.segments {
            pending
                .segments
                .entry(segment)
                .and_modify(|m| m.merge(&parts))
                .or_insert(parts);
        }
    }

    /// Whether instance (`window`, `end`) went out already: by this merger (remembered), or at
    /// or before the floor (a previous merger's, or too old to remember).
    fn was_published(&self, window: &str, end: Millis) -> bool {
        if self.done.get(window).is_none_or(|&d| end > d) {
            return false;
        }
        self.floor.get(window).is_some_and(|&f| end <= f)
            || self
                .published
                .get(window)
                .is_some_and(|recent| recent.contains(&end))
    }

    pub fn progress(&mut self, p: Progress, now: Instant) {
        let part = (p.topic, p.partition);
        self.heard.insert(part.clone(), now);
        let wm = self.watermarks.entry(part.clone()).or_insert(p.watermark);
        *wm = (*wm).max(p.watermark);
        self.samples.insert(part, p.sample);
    }

    /// Sampled users seen on more than one input partition (0 with input keyed by user).
    pub fn unkeyed_users(&self) -> usize {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for sample in self.samples.values() {
            for &h in sample {
                *seen.entry(h).or_default() += 1;
            }
        }
        seen.values().filter(|&&n| n > 1).count()
    }

    fn has_reported(&self, part: &Part, window: &str, end: Millis, p: &Pending) -> bool {
        p.from.contains(part)
            || self.watermarks.get(part).is_some_and(|&wm| wm >= end)
            || self
                .reported
                .get(part)
                .and_then(|w| w.get(window))
                .is_some_and(|&r| r > end)
    }

    fn is_complete(&self, window: &str, end: Millis, p: &Pending) -> bool {
        self.inputs
            .iter()
            .all(|part| self.has_reported(part, window, end, p))
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether the reader stands at the end of every partials partition. Timeouts only run
    /// then: while a backlog is read (a merger taking over, or one slower than the partials
    /// come), a missing partial is more likely unread than absent.
    pub fn set_caught_up(&mut self, caught_up: bool) {
        self.caught_up = caught_up;
    }

    /// Whether an incomplete instance goes out anyway: `timeout` after its first partial, when
    /// every partition it misses has been silent (no partial, no progress) for `timeout` too —
    /// a partition that reports, only behind, is waited for — or after ten timeouts in any case.
    fn overdue(&self, window: &str, end: Millis, p: &Pending, now: Instant) -> bool {
        let waited = now.saturating_duration_since(p.first_seen);
        if !self.caught_up || waited < self.timeout {
            return false;
        }
        waited >= self.timeout * 10
            || self
                .inputs
                .iter()
                .filter(|part| !self.has_reported(part, window, end, p))
                .all(|part| {
                    self.heard
                        .get(part)
                        .is_none_or(|&t| now.saturating_duration_since(t) >= self.timeout)
                })
    }

    /// Instances that are complete, or overdue, in order per window.
    pub fn ready(&mut self, now: Instant) -> Vec<Merged> {
        // Per window, the latest instance that may go: everything before it goes too. An
        // instance is complete only if every earlier one of its window is (each partition
        // reports a window's instances in order), so each window's walk stops at the first
        // instance that is neither complete nor overdue.
        let mut through: HashMap<String, Millis> = HashMap::new();
        let mut next = self.pending.keys().next().map(|(w, _)| w.clone());
        while let Some(window) = next.take() {
            let mut last = None;
            for ((w, end), p) in self.pending.range((window.clone(), Millis::MIN)..) {
                if *w != window {
                    next = Some(w.clone());
                    break;
                }
                if !(self.is_complete(&window, *end, p) || self.overdue(&window, *end, p, now)) {
                    // Skip the rest of this window.
                    next = self
                        .pending
                        .range((window.clone(), Millis::MAX)..)
                        .map(|((w, _), _)| w)
                        .find(|w| **w != window)
                        .cloned();
                    break;
                }
                last = Some(*end);
            }
            if let Some(end) = last {
                through.insert(window, end);
            }
        }
        if through.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let keys: Vec<(String, Millis)> = self
            .pending
            .keys()
            .filter(|(w, e)| through.get(w).is_some_and(|t| e <= t))
            .cloned()
            .collect();
        for key in keys {
            let p = self.pending.remove(&key).expect("listed");
            let (window, end) = key;
            let complete = self.is_complete(&window, end, &p);
            let missing: Vec<Part> = self
                .inputs
                .iter()
                .filter(|part| !self.has_reported(part, &window, end, &p))
                .cloned()
                .collect();
            if !complete {
                self.incomplete
                    .insert((window.clone(), end), missing.clone());
                while self.incomplete.len() > 1000 {
                    self.incomplete.pop_first();
                }
            }
            let done = self.done.entry(window.clone()).or_insert(end);
            *done = (*done).max(end);
            let recent = self.published.entry(window.clone()).or_default();
            recent.insert(end);
            while recent.len() > 10_000 {
                if let Some(old) = recent.pop_first() {
                    let floor = self.floor.entry(window.clone()).or_insert(old);
                    *floor = (*floor).max(old);
                }
            }
            let seen = p.seen;
            let snapshots = p
                .segments
                .into_iter()
                .filter(|(_, parts)| parts.events() > 0)
                .map(|(segment, mut parts)| {
                    if let Some((_, seen)) = &seen {
                        parts.set_seen(seen);
                    }
                    let (kpis, features) = parts.kpis(&self.clv);
                    Snapshot {
                        window: window.clone(),
                        start: p.start,
                        end,
                        segment,
                        kpis,
                        features,
                        watermark: p.watermark,
                        utc_offsets: p.utc_offsets,
                        approximate: parts.sketches.is_some(),
                        active_users_sketch: if self.images {
                            parts.active_users_image()
                        } else {
                            None
                        },
                        parts: None,
                        complete: Some(complete),
                    }
                })
                .collect();
            out.push(Merged {
                snapshots,
                window,
                end,
                complete,
                missing,
            });
        }
        out
    }

    /// The checkpoint: `positions` are where reading stands; pending instances pull them back.
    fn state(&self, positions: &HashMap<i32, i64>) -> MergerState {
        let mut from: HashMap<i32, i64> = positions.clone();
        for p in self.pending.values() {
            for &(pp, offset) in &p.offsets {
                let e = from.entry(pp).or_insert(offset);
                *e = (*e).min(offset);
            }
        }
        let mut positions: Vec<(i32, i64)> = from.into_iter().collect();
        positions.sort_unstable();
        let mut done: Vec<(String, Millis)> =
            self.done.iter().map(|(w, e)| (w.clone(), *e)).collect();
        done.sort_unstable();
        let mut watermarks: Vec<(Part, Millis)> = self
            .watermarks
            .iter()
            .map(|(p, w)| (p.clone(), *w))
            .collect();
        watermarks.sort_unstable();
        let mut reported: Vec<((Part, String), Millis)> = self
            .reported
            .iter()
            .flat_map(|(part, windows)| {
                windows
                    .iter()
                    .map(move |(w, e)| ((part.clone(), w.clone()), *e))
            })
            .collect();
        reported.sort_unstable();
        MergerState {
            positions,
            done,
            watermarks,
            reported,
        }
    }
}

/// Runs the merger loop until `shutdown` (every scale-out instance runs one; the group elects).
pub fn run(config: &Config, shutdown: &AtomicBool, telemetry: &Telemetry) -> anyhow::Result<()> {
    let scale = config
        .scale_out
        .as_ref()
        .context("the merger runs with scale-out only")?;
    let election_settings = KafkaSettings {
        group_id: format!("{}.merger", config.kafka.group_id),
        input_topics: vec![scale.coordination_topic.clone()],
        ..config.kafka.clone()
    };
    let election =
        Source::new(&election_settings).context("cannot create the merger election consumer")?;
    let mut leading: Option<Leading> = None;
    // After a failed step: take over again once a second, while the group still says so.
    let mut retake_at: Option<Instant> = None;
    telemetry.scale_out.set_leader(false);
    while !shutdown.load(Ordering::Relaxed) {
        for rebalance in election.take_rebalances() {
            match rebalance {
                Rebalance::Assigned(parts)
                    if parts
                        .iter()
                        .any(|(t, p)| *t == scale.coordination_topic && *p == 0) =>
                {
                    retake_at = None;
                    match Leading::start(config, scale, &election, &election_settings) {
                        Ok(l) => {
                            eprintln!("engauge: elected merger of the partials");
                            telemetry.scale_out.set_leader(true);
                            leading = Some(l);
                        }
                        Err(e) => {
                            // Leave the group so another member can take over.
                            eprintln!("engauge: cannot take over merging: {e:#}");
                            return Err(e);
                        }
                    }
                }
                Rebalance::Assigned(_) => {}
                Rebalance::Revoked(_) => {
                    retake_at = None;
                    if let Some(mut l) = leading.take() {
                        l.step_down(&election, telemetry);
                    }
                }
            }
        }
        // After the rebalances above (a revoke cancels the retake).
        if leading.is_none() && retake_at.is_some_and(|t| Instant::now() >= t) {
            retake_at = None;
            let l = Leading::start(config, scale, &election, &election_settings)?;
            telemetry.scale_out.set_leader(true);
            leading = Some(l);
        }
        // Keeps the membership alive; the checkpoint records it fetches are not needed here.
        while let Some(m) = election.poll(Duration::from_millis(if leading.is_some() {
            0
        } else {
            50
        })) {
            if let Err(e) = m
                && !matches!(e, KafkaError::PartitionEOF(_))
            {
                telemetry.kafka_error(&e);
            }
        }
        if let Some(l) = leading.as_mut()
            && let Err(e) = l.step(&election, telemetry)
        {
            eprintln!("engauge: merger stopped: {e:#}; taking over again unless revoked");
            if let Some(mut l) = leading.take() {
                l.step_down(&election, telemetry);
            }
            retake_at = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    if let Some(mut l) = leading.take() {
        let _ = l.checkpoint(&election, telemetry);
        l.step_down(&election, telemetry);
    }
    election.close();
    Ok(())
}

struct Leading {
    merge: Merge,
    reader: TopicReader,
    outbox: Outbox,
    exactly_once: bool,
    coordination_topic: String,
    snapshot_record: OutRecord,
    /// Next offset to read per partials partition.
    positions: HashMap<i32, i64>,
    /// Per partials partition: chunked records being put together.
    chunks: HashMap<i32, partials::Reassembly>,
    /// Per partials partition: whether the reader stands at its end.
    at_end: HashMap<i32, bool>,
    /// Something changed since the last checkpoint.
    dirty: bool,
    last_checkpoint: Instant,
    checkpoint_every: Duration,
    last_inputs: Instant,
    input_topics: Vec<String>,
    warned_unkeyed: bool,
}

impl Leading {
    fn start(
        config: &Config,
        scale: &ScaleOut,
        election: &Source,
        election_settings: &KafkaSettings,
    ) -> anyhow::Result<Leading> {
        let exactly_once = config.guarantee == Guarantee::ExactlyOnce;
        let outbox = if exactly_once {
            // First: fences the previous merger and resolves its open transaction.
            let id = format!("{}.merger", config.kafka.group_id);
            let mut attempt = 0;
            loop {
                match Outbox::transactional(&config.kafka, &id, Duration::from_secs(10)) {
                    Ok(o) => break o,
                    Err(e) if attempt < 10 => {
                        eprintln!("engauge: merger producer: {e}; retrying");
                        attempt += 1;
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    Err(e) => return Err(e).context("cannot start the merger's producer"),
                }
            }
        } else {
            Outbox::new(&config.kafka).context("cannot create the merger's producer")?
        };
        let inputs = input_partitions(election, &config.kafka.input_topics)?;
        let mut merge = Merge::new(
            inputs,
            Duration::from_millis(scale.completeness_timeout as u64),
            config.engine.clv,
        )
        .with_images(config.engine.sketch.include_in_snapshots);
        // The checkpoint the group's committed offset points at.
        let coordination = (scale.coordination_topic.clone(), 0);
        let committed = election
            .committed_offsets(std::slice::from_ref(&coordination), Duration::from_secs(10))
            .context("cannot read the merger's committed offset")?;
        let reader = TopicReader::new(election_settings, "partials-reader", &scale.partials_topic)
            .context("cannot create the partials reader")?;
        let mut state = MergerState::default();
        if let Some(Some((offset, _))) = committed.first() {
            let coord_reader =
                TopicReader::new(election_settings, "merger-checkpoint", &coordination.0)?;
            match coord_reader.read_at(0, *offset, Duration::from_secs(30))? {
                Some(bytes) => match decode_state(&bytes) {
                    Ok(s) => {
                        let done: Vec<String> = s
                            .done
                            .iter()
                            .map(|(w, end)| {
                                format!("{w} to {}", engauge_core::time::format_rfc3339(*end))
                            })
                            .collect();
                        eprintln!(
                            "engauge: merger checkpoint at offset {offset} restored (published: \
                             {})",
                            done.join(", ")
                        );
                        state = s;
                    }
                    Err(e) if exactly_once => {
                        anyhow::bail!("the merger checkpoint at offset {offset} is unusable: {e}")
                    }
                    Err(e) => eprintln!("engauge: merger checkpoint ignored ({e}); starting over"),
                },
                None => eprintln!(
                    "engauge: the merger checkpoint at offset {offset} is gone; reading the \
                     partials from the beginning"
                ),
            }
        }
        merge.restore(&state);
        let partitions = reader
            .partitions(Duration::from_secs(10))
            .context("cannot read the partitions of the partials topic")?;
        let from: Vec<(i32, Option<i64>)> = partitions
            .iter()
            .map(|&p| {
                let at = state
                    .positions
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, o)| *o);
                (p, at)
            })
            .collect();
        reader.assign(&from)?;
        Ok(Leading {
            merge,
            reader,
            outbox,
            exactly_once,
            coordination_topic: scale.coordination_topic.clone(),
            snapshot_record: OutRecord {
                topic: config.kafka.snapshot_topic.clone(),
                key: Some(Vec::with_capacity(64)),
                payload: Vec::with_capacity(2048),
                headers: vec![("engauge.merger".to_owned(), b"1".to_vec())],
            },
            positions: state.positions.into_iter().collect(),
            chunks: HashMap::new(),
            at_end: partitions.iter().map(|&p| (p, false)).collect(),
            dirty: false,
            last_checkpoint: Instant::now(),
            checkpoint_every: Duration::from_millis(if exactly_once {
                config.checkpoint_interval
            } else {
                config.commit_interval
            } as u64),
            last_inputs: Instant::now(),
            input_topics: config.kafka.input_topics.clone(),
            warned_unkeyed: false,
        })
    }

    /// Reads what arrived, publishes what is ready, checkpoints when due.
    fn step(&mut self, election: &Source, telemetry: &Telemetry) -> anyhow::Result<()> {
        let now = Instant::now();
        let mut progressed = false;
        for _ in 0..10_000 {
            let Some(m) = self.reader.poll(Duration::from_millis(10)) else {
                break;
            };
            match m {
                Ok(m) => {
                    let (pp, offset) = (m.partition(), m.offset());
                    self.dirty = true;
                    self.at_end.insert(pp, false);
                    let chunks = self.chunks.entry(pp).or_default();
                    let read = chunks.read(m.payload().unwrap_or(&[]), offset);
                    // A checkpoint resumes at the first chunk of a record still incomplete.
                    self.positions
                        .insert(pp, chunks.open_at().unwrap_or(offset + 1));
                    match read {
                        Read::Record(Record::Instance(p), at) => self.merge.partial(p, pp, at, now),
                        Read::Record(Record::Progress(p), _) => {
                            progressed = true;
                            self.merge.progress(p, now);
                        }
                        Read::Partial => {}
                        Read::Error(e) => {
                            eprintln!("engauge: partial at {pp}/{offset} ignored: {e}")
                        }
                    }
                }
                Err(KafkaError::PartitionEOF(pp)) => {
                    self.at_end.insert(pp, true);
                    break;
                }
                Err(e) => {
                    telemetry.kafka_error(&e);
                    break;
                }
            }
        }
        if now.duration_since(self.last_inputs) >= Duration::from_secs(30) {
            // Partitions added to an input topic join the completeness rule.
            if let Ok(inputs) = input_partitions(election, &self.input_topics) {
                self.merge.set_inputs(inputs);
            }
            self.last_inputs = now;
        }
        self.merge
            .set_caught_up(self.at_end.values().all(|&at_end| at_end));
        let ready = self.merge.ready(now);
        let emitted_at = now_millis();
        for merged in &ready {
            for snap in &merged.snapshots {
                let record = &mut self.snapshot_record;
                record.payload.clear();
                encode_snapshot(snap, emitted_at, &mut record.payload);
                let key = record.key.get_or_insert_with(Vec::new);
                key.clear();
                snap.write_key(key);
                self.outbox.send(record);
                telemetry.snapshot_published();
            }
            telemetry.scale_out.add_merged(merged.complete);
            if !merged.complete {
                eprintln!(
                    "engauge: window {} instance ending {} published incomplete after the \
                     completeness timeout (no partial from {:?})",
                    merged.window,
                    engauge_core::time::format_rfc3339(merged.end),
                    merged.missing
                );
            }
            telemetry.window_closed(&merged.window, &merged.snapshots, merged.end);
            self.dirty = true;
        }
        telemetry.scale_out.set_pending(self.merge.pending());
        let unkeyed = if progressed {
            self.merge.unkeyed_users()
        } else {
            0
        };
        if progressed {
            telemetry.scale_out.set_unkeyed_users(unkeyed);
        }
        if unkeyed > 0 && !self.warned_unkeyed {
            self.warned_unkeyed = true;
            eprintln!(
                "engauge: WARNING: the input is not keyed by user_id: {unkeyed} sampled user(s) \
                 appear on more than one partition. Merged distinct-user KPIs (active users, \
                 feature users, lifecycle) count such users once per partition and sessions \
                 split across partitions. Produce events with the user id as the message key."
            );
        }
        self.outbox.poll(Duration::ZERO);
        if self.dirty && now.duration_since(self.last_checkpoint) >= self.checkpoint_every {
            self.checkpoint(election, telemetry)?;
        }
        Ok(())
    }

    /// Writes the merger's state to the coordination topic and points the group's committed
    /// offset at it (exactly-once: in the transaction with the snapshots).
    fn checkpoint(&mut self, election: &Source, telemetry: &Telemetry) -> anyhow::Result<()> {
        self.last_checkpoint = Instant::now();
        if !self.exactly_once {
            // Snapshots first: the checkpoint may only say what is delivered.
            if !self
                .outbox
                .settle(Duration::from_secs(5))
                .context("a merged snapshot could not be delivered")?
            {
                return Ok(()); // Next time.
            }
        }
        let state = self.merge.state(&self.positions);
        let record = OutRecord {
            topic: self.coordination_topic.clone(),
            key: Some(b"merger".to_vec()),
            payload: encode_state(&state),
            headers: Vec::new(),
        };
        self.outbox.reset_tracked();
        self.outbox.send_tracked(&record, 0);
        let Some(offset) = self.outbox.tracked_first(Duration::from_secs(10)) else {
            anyhow::bail!("the merger checkpoint was not delivered");
        };
        let coordination = (self.coordination_topic.clone(), 0);
        if self.exactly_once {
            match self.outbox.commit_transaction(
                election,
                &[],
                Some((&self.coordination_topic, 0, offset)),
                Duration::from_secs(30),
            ) {
                Ok(TxnEnd::Committed) => telemetry.transaction_committed(0, Duration::ZERO),
                Ok(TxnEnd::Aborted(why)) | Ok(TxnEnd::Uncertain(why)) => {
                    anyhow::bail!("the merger's transaction did not commit ({why})")
                }
                Err(e) => return Err(e).context("the merger's transaction failed"),
            }
        } else {
            let point = CommitPoint {
                rebuild_from: offset,
                next: offset,
                published: None,
            };
            election
                .commit(&[(coordination, point)], CommitMode::Sync)
                .context("cannot commit the merger checkpoint")?;
        }
        self.dirty = false;
        Ok(())
    }

    fn step_down(&mut self, _election: &Source, telemetry: &Telemetry) {
        if self.exactly_once {
            self.outbox.abort(Instant::now() + Duration::from_secs(5));
        } else {
            let _ = self.outbox.flush(Duration::from_secs(5));
        }
        telemetry.scale_out.set_leader(false);
        telemetry.scale_out.set_pending(0);
        telemetry.clear_kpis();
        eprintln!("engauge: no longer the merger");
    }
}

/// Every partition of the input topics.
fn input_partitions(source: &Source, topics: &[String]) -> anyhow::Result<Vec<Part>> {
    let mut out = Vec::new();
    for topic in topics {
        let n = source
            .partition_count(topic, Duration::from_secs(10))
            .with_context(|| format!("cannot read the partitions of {topic}"))?;
        out.extend((0..n).map(|p| (topic.clone(), p)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(partition: i32, window: &str, end: Millis, active: u64) -> InstancePartial {
        let parts = Parts::with_events(active, active);
        InstancePartial {
            topic: "events".into(),
            partition,
            window: window.into(),
            start: end - 10,
            end,
            watermark: end,
            utc_offsets: None,
            segments: vec![(Vec::new(), parts)],
            seen: None,
        }
    }

    fn progress(partition: i32, watermark: Millis, sample: Vec<u64>) -> Progress {
        Progress {
            topic: "events".into(),
            partition,
            watermark,
            sample,
        }
    }

    fn ends(ready: &[Merged]) -> Vec<(Millis, bool)> {
        ready.iter().map(|r| (r.end, r.complete)).collect()
    }

    fn merge(partitions: i32, timeout: Duration) -> Merge {
        let inputs = (0..partitions).map(|p| ("events".to_owned(), p)).collect();
        Merge::new(inputs, timeout, engauge_core::ClvConfig::default())
    }

    #[test]
    fn an_instance_waits_for_every_partition() {
        let now = Instant::now();
        let mut m = merge(3, Duration::from_secs(60));
        m.partial(partial(0, "1h", 100, 2), 0, 0, now);
        m.partial(partial(1, "1h", 100, 3), 0, 1, now);
        assert!(m.ready(now).is_empty(), "partition 2 has not reported");
        // Partition 2 has nothing for it: its progress past the end says so.
        m.progress(progress(2, 100, vec![]), now);
        let ready = m.ready(now);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].complete);
        assert_eq!(ready[0].snapshots.len(), 1);
        assert_eq!(ready[0].snapshots[0].kpis.active_users, 5);
        assert_eq!(ready[0].snapshots[0].complete, Some(true));
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn repeats_count_once_and_published_instances_are_not_published_again() {
        let now = Instant::now();
        let mut m = merge(2, Duration::from_secs(60));
        let mut p = partial(0, "1h", 100, 2);
        p.segments[0].1.merge(&Parts::default());
        m.partial(p.clone(), 0, 0, now);
        m.partial(p.clone(), 0, 5, now); // a rebalance's repeat
        m.progress(progress(1, 100, vec![]), now);
        let ready = m.ready(now);
        assert_eq!(ready.len(), 1);
        m.partial(p, 0, 9, now);
        assert!(m.ready(now).is_empty());
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn overdue_instances_go_out_incomplete_in_order() {
        let start = Instant::now();
        let mut m = merge(2, Duration::from_secs(5));
        m.partial(partial(0, "1h", 100, 1), 0, 0, start);
        m.partial(partial(0, "1h", 200, 1), 0, 1, start);
        assert!(m.ready(start + Duration::from_secs(1)).is_empty());
        let ready = m.ready(start + Duration::from_secs(6));
        assert_eq!(ends(&ready), vec![(100, false), (200, false)]);
        // Partition 1's partial arrives late: counted, not published.
        m.partial(partial(1, "1h", 100, 1), 0, 2, start);
        assert_eq!(m.late_partials, 1);
        assert!(m.ready(start + Duration::from_secs(7)).is_empty());
    }

    #[test]
    fn an_instance_first_seen_after_a_later_one_went_out_is_still_merged() {
        // Partition 0 has nothing in instance 100 and sends 200; partition 1 is slow. 200 goes
        // out incomplete; partition 1's 100 must still be published, not dropped.
        let start = Instant::now();
        let mut m = merge(2, Duration::from_secs(5));
        m.partial(partial(0, "1h", 200, 1), 0, 0, start);
        let late = start + Duration::from_secs(6);
        let ready = m.ready(late);
        assert_eq!(ends(&ready), vec![(200, false)]);
        m.partial(partial(1, "1h", 100, 1), 0, 1, late);
        let ready = m.ready(late);
        assert_eq!(ends(&ready), vec![(100, true)]);
        // And a repeat of 200 is not published again.
        m.partial(partial(1, "1h", 200, 1), 0, 2, late);
        assert!(m.ready(late).is_empty());
    }

    #[test]
    fn a_later_partial_of_the_same_window_reports_the_earlier_instance() {
        // Partition 1 skipped instance 100 (nothing there) and sent 200: 100 is complete.
        let now = Instant::now();
        let mut m = merge(2, Duration::from_secs(60));
        m.partial(partial(0, "1h", 100, 1), 0, 0, now);
        m.partial(partial(1, "1h", 200, 1), 0, 1, now);
        let ready = m.ready(now);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].end, 100);
        assert!(ready[0].complete);
    }

    #[test]
    fn a_missing_partition_that_still_reports_is_waited_for() {
        let mut m = merge(2, Duration::from_secs(5));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        m.partial(partial(0, "1h", 100, 1), 0, 0, start);
        // Partition 1 is behind (its watermark before the end) but alive: no timeout.
        m.progress(progress(1, 50, vec![]), at(4));
        assert!(m.ready(at(6)).is_empty(), "partition 1 reported 2 s ago");
        // While the merger reads a backlog, nothing times out either.
        m.set_caught_up(false);
        assert!(m.ready(at(20)).is_empty(), "catching up");
        m.set_caught_up(true);
        // Silent for the timeout: out, incomplete.
        let ready = m.ready(at(20));
        assert_eq!(ready.len(), 1);
        assert!(!ready[0].complete);
        // One that keeps reporting is still published after ten timeouts.
        m.partial(partial(0, "1h", 200, 1), 0, 1, at(20));
        for s in (21..70).step_by(2) {
            m.progress(progress(1, 150, vec![]), at(s));
            assert!(m.ready(at(s)).is_empty(), "at {s} s");
        }
        m.progress(progress(1, 150, vec![]), at(70));
        assert_eq!(m.ready(at(70)).len(), 1, "ten timeouts");
    }

    #[test]
    fn unkeyed_input_shows_in_the_samples() {
        let mut m = merge(2, Duration::from_secs(60));
        let now = Instant::now();
        m.progress(progress(0, 1, vec![1, 2, 3]), now);
        m.progress(progress(1, 1, vec![4, 5]), now);
        assert_eq!(m.unkeyed_users(), 0);
        m.progress(progress(1, 2, vec![2, 3, 4]), now);
        assert_eq!(m.unkeyed_users(), 2);
    }

    #[test]
    fn checkpoint_positions_start_at_the_oldest_pending_partial() {
        let now = Instant::now();
        let mut m = merge(2, Duration::from_secs(60));
        m.partial(partial(0, "1h", 100, 1), 0, 7, now);
        let positions = HashMap::from([(0, 20), (1, 4)]);
        let state = m.state(&positions);
        assert_eq!(state.positions, vec![(0, 7), (1, 4)]);
        let bytes = encode_state(&state);
        assert_eq!(decode_state(&bytes), Ok(state));
        assert!(decode_state(b"EGMC\x09\x00").is_err());
    }
}
