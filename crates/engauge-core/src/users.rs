//! User interning (string id → dense index) and the per-user state the engine keeps.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;

/// Interns user ids into dense `u32` indices; the strings live in one arena.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    table: HashTable<u32>,
    arena: Vec<u8>,
    /// Per index: end offset of its string in `arena` (start is the previous end).
    ends: Vec<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Interner {
    fn get_str<'a>(arena: &'a [u8], ends: &[u32], idx: u32) -> &'a [u8] {
        let i = idx as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        &arena[start..ends[i] as usize]
    }

    /// The index of `id`, and whether it is new.
    pub fn intern(&mut self, id: &str) -> (u32, bool) {
        let hash = self.hasher.hash_one(id.as_bytes());
        let (arena, ends) = (&self.arena, &self.ends);
        if let Some(&idx) = self
            .table
            .find(hash, |&i| Self::get_str(arena, ends, i) == id.as_bytes())
        {
            return (idx, false);
        }
        let idx = self.ends.len() as u32;
        self.arena.extend_from_slice(id.as_bytes());
        self.ends.push(self.arena.len() as u32);
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        self.table.insert_unique(hash, idx, |&i| {
            hasher.hash_one(Self::get_str(arena, ends, i))
        });
        (idx, true)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

/// A user's state within one segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegUser {
    pub seg: u32,
    /// Last sealed base pane with activity.
    pub last_pane: u32,
    /// Open gap-based session, as (start, last); `start == i64::MIN` when none.
    pub sess_start: i64,
    pub sess_last: i64,
}

/// Everything kept per user.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserState {
    pub segs: SmallVec<[SegUser; 3]>,
    /// (feature key, last sealed base pane with that feature).
    pub features: Vec<(u32, u32)>,
    /// First base pane with activity, plus one (0: none yet).
    pub first_seen: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable() {
        let mut i = Interner::default();
        assert_eq!(i.intern("alice"), (0, true));
        assert_eq!(i.intern("bob"), (1, true));
        assert_eq!(i.intern("alice"), (0, false));
        for n in 0..10_000 {
            i.intern(&format!("user-{n}"));
        }
        assert_eq!(i.intern("bob"), (1, false));
        assert_eq!(i.intern("user-9999").0, 10_001);
        assert_eq!(i.len(), 10_002);
    }
}
