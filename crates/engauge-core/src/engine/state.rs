//! The engine's state as bytes, for checkpoints: what [`Engine::new`] cannot derive from the
//! configuration, encoded compactly (bincode, variable-length integers) behind a versioned header.
//!
//! ```text
//! "EGES"  u16 version  u64 configuration fingerprint  payload
//! ```
//!
//! The payload lists the engine's dynamic fields in a fixed order (the `fields!` list below:
//! changing it is a new version, and the old version's decoder stays). A state restores only
//! under the configuration it was saved with: panes, ranges and segment ids depend on it, so a
//! changed configuration is reported and the caller rebuilds from history instead.
//! `tests/data/engine-state-v1.bin` pins version 1.

use super::*;

const MAGIC: &[u8; 4] = b"EGES";
/// The version [`Engine::save_state`] writes.
pub const VERSION: u16 = 1;
const HEADER: usize = 4 + 2 + 8;

/// Why a saved state cannot be used (the caller then rebuilds from history).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("not an engine state (bad magic)")]
    Magic,
    #[error("engine state version {0} is newer than this engauge understands ({VERSION})")]
    Version(u16),
    #[error("the engine configuration changed since the state was saved")]
    Config,
    #[error("engine state is corrupt: {0}")]
    Corrupt(String),
    #[error("sketch windows are not checkpointed (distinct = \"sketch\"): state is rebuilt")]
    Sketches,
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// 64-bit FNV-1a of the configuration's debug form: every setting, in declaration order.
fn fingerprint(config: &EngineConfig) -> u64 {
    // `partials` came after version 1; without it the text is what version 1 hashed, so states
    // saved before it still restore.
    format!("{config:?}")
        .replace(", partials: false", "")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

macro_rules! fields {
    ($($field:ident : $ty:ty),* $(,)?) => {
        #[derive(serde::Serialize)]
        struct Saved<'a> {
            $($field: &'a $ty),*
        }

        #[derive(serde::Deserialize)]
        struct Loaded {
            $($field: $ty),*
        }

        impl<'a> Saved<'a> {
            fn of(e: &'a Engine) -> Self {
                Saved { $($field: &e.$field),* }
            }
        }

        impl Loaded {
            fn into(self, e: &mut Engine) {
                $(e.$field = self.$field;)*
            }
        }
    };
}

// Version 1. Everything else in `Engine` is derived from the configuration.
fields! {
    levels: Vec<PaneRing>,
    rolled_until: Millis,
    ranges: Vec<TrackedRange>,
    windows: Vec<WindowState>,
    calendars: Vec<CalendarState>,
    segmenter: Segmenter,
    features: CappedValues,
    users: Interner,
    user_state: Vec<UserState>,
    seg_counts: Vec<LastSeenCounts>,
    feature_keys: HashMap<(u32, u16), u32>,
    feature_counts: Vec<LastSeenCounts>,
    feature_of_key: Vec<u16>,
    seg_features: Vec<Vec<u32>>,
    keyed_sessions: HashMap<(u64, u64), SegSessions>,
    open_sessions: u64,
    timers: Timers,
    dedup: Dedup,
    pending: BTreeMap<u32, PaneBuffer>,
    pending_events: u64,
    watermark: Option<Millis>,
    frontier: Option<Millis>,
    last_sweep: Millis,
    stats: EngineStats,
}

impl Loaded {
    /// Shapes the configuration fixes equal `fresh`'s, and every index the engine follows
    /// points inside its table: a state that decodes but does not fit is refused here rather
    /// than panicking later.
    fn check(&self, fresh: &Engine) -> Result<(), &'static str> {
        let ensure = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(what) };
        ensure(
            self.levels.len() == fresh.levels.len()
                && self
                    .levels
                    .iter()
                    .zip(&fresh.levels)
                    .all(|(a, b)| a.same_shape(b)),
            "pane rings differ from the configuration",
        )?;
        ensure(
            self.ranges.len() == fresh.ranges.len()
                && self.windows.len() == fresh.windows.len()
                && self.calendars.len() == fresh.calendars.len(),
            "windows differ from the configuration",
        )?;
        let segments = self.segmenter.len();
        let keys = self.feature_counts.len();
        let users = self.users.len();
        ensure(
            self.user_state.len() == users,
            "user table and user state differ in length",
        )?;
        ensure(
            self.seg_counts.len() <= segments
                && self.seg_features.len() <= segments
                && self.feature_of_key.len() == keys,
            "segment and feature tables differ in length",
        )?;
        let counts_fit = self
            .seg_counts
            .iter()
            .chain(&self.feature_counts)
            .all(|c| c.has_shape(&fresh.shape, &self.ranges));
        ensure(counts_fit, "distinct counts differ from the configuration")?;
        for (w, f) in self.windows.iter().zip(&fresh.windows) {
            let rings = w.life.first().map(|l| l.retained.slots.len());
            ensure(
                w.length == f.length
                    && w.slide == f.slide
                    && w.level == f.level
                    && w.life.len() <= segments
                    && w.life.iter().all(|l| {
                        Some(l.retained.slots.len()) == rings
                            && l.new.slots.len() == l.retained.slots.len()
                            && l.retained.slots.len().is_power_of_two()
                    }),
                "window state differs from the configuration",
            )?;
        }
        let seg_ok = |seg: u32| (seg as usize) < segments;
        let users_ok = self.user_state.iter().all(|u| {
            u.segs.iter().all(|s| seg_ok(s.seg))
                && u.features.iter().all(|&(k, _)| (k as usize) < keys)
        });
        ensure(
            users_ok,
            "user state refers to unknown segments or features",
        )?;
        let features_ok = self
            .seg_features
            .iter()
            .flatten()
            .all(|&k| (k as usize) < keys)
            && self
                .feature_keys
                .iter()
                .all(|(&(seg, _), &k)| seg_ok(seg) && (k as usize) < keys);
        ensure(
            features_ok,
            "feature keys refer to unknown segments or features",
        )?;
        let pending_ok = self.pending.values().all(|b| {
            b.events.iter().all(|e| (e.user as usize) < users) && b.segs.iter().all(|&s| seg_ok(s))
        });
        ensure(
            pending_ok,
            "pending events refer to unknown users or segments",
        )?;
        ensure(
            self.keyed_sessions
                .values()
                .flatten()
                .all(|(seg, _)| seg_ok(*seg)),
            "open sessions refer to unknown segments",
        )
    }
}

impl Engine {
    /// The engine's state as bytes (see the module docs), or [`StateError::Sketches`] when a
    /// window counts with sketches (their state is not encoded; such engines rebuild).
    pub fn save_state(&self) -> Result<Vec<u8>, StateError> {
        use bincode::Options;
        if self.sketches.is_some() {
            return Err(StateError::Sketches);
        }
        let saved = Saved::of(self);
        let len = options()
            .serialized_size(&saved)
            .map_err(|e| StateError::Corrupt(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER + len as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&fingerprint(&self.config).to_be_bytes());
        options()
            .serialize_into(&mut out, &saved)
            .map_err(|e| StateError::Corrupt(e.to_string()))?;
        Ok(out)
    }

    /// An engine for `config` in the state `bytes` were saved in: continuing it gives exactly
    /// what the saved engine would have given.
    pub fn restore(config: EngineConfig, bytes: &[u8]) -> Result<Engine, StateError> {
        use bincode::Options;
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(StateError::Magic);
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(StateError::Version(version));
        }
        let mut engine = Engine::new(config)?;
        if engine.sketches.is_some() {
            return Err(StateError::Sketches);
        }
        let mut print = [0u8; 8];
        print.copy_from_slice(&bytes[6..HEADER]);
        if u64::from_be_bytes(print) != fingerprint(&engine.config) {
            return Err(StateError::Config);
        }
        let mut loaded: Loaded = options()
            .deserialize(&bytes[HEADER..])
            .map_err(|e| StateError::Corrupt(e.to_string()))?;
        if let Err(what) = loaded.check(&engine) {
            return Err(StateError::Corrupt(what.into()));
        }
        for (cal, fresh) in loaded.calendars.iter_mut().zip(&engine.calendars) {
            cal.calendar = fresh.calendar.clone();
        }
        loaded.into(&mut engine);
        Ok(engine)
    }
}
