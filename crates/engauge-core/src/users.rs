//! User interning (string id → dense index) and the per-user state the engine keeps.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;

/// Interns user ids into dense `u32` indices; the strings live in one arena.
///
/// A table entry carries the string's place in the arena, so a lookup touches the table slot
/// and the string only (no offsets array in between): one cache miss less per event with many
/// users.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    table: HashTable<Entry>,
    arena: Vec<u8>,
    len: u32,
    hasher: hashbrown::DefaultHashBuilder,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    idx: u32,
    start: u32,
    end: u32,
}

impl Entry {
    fn str<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start as usize..self.end as usize]
    }
}

impl Interner {
    /// The index of `id`, and whether it is new.
    pub fn intern(&mut self, id: &str) -> (u32, bool) {
        let hash = self.hasher.hash_one(id.as_bytes());
        let arena = &self.arena;
        if let Some(e) = self.table.find(hash, |e| e.str(arena) == id.as_bytes()) {
            return (e.idx, false);
        }
        let idx = self.len;
        self.len += 1;
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(id.as_bytes());
        let entry = Entry {
            idx,
            start,
            end: self.arena.len() as u32,
        };
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table
            .insert_unique(hash, entry, |e| hasher.hash_one(e.str(arena)));
        (idx, true)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// Checkpoint encoding: the arena and where each id ends, in index order (ids are appended in
/// index order); the table is rebuilt, since its hasher is seeded per process.
impl serde::Serialize for Interner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut ends = vec![0u32; self.len as usize];
        for e in &self.table {
            ends[e.idx as usize] = e.end;
        }
        serde::Serialize::serialize(&(&self.arena, ends), s)
    }
}

impl<'de> serde::Deserialize<'de> for Interner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let (arena, ends): (Vec<u8>, Vec<u32>) = serde::Deserialize::deserialize(d)?;
        let mut interner = Interner::default();
        interner.table.reserve(ends.len(), |_| 0);
        interner.arena.reserve(arena.len());
        let mut start = 0usize;
        for end in ends {
            let id = arena
                .get(start..end as usize)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| D::Error::custom("user id arena out of order"))?;
            if !interner.intern(id).1 {
                return Err(D::Error::custom("user id stored twice"));
            }
            start = end as usize;
        }
        if start != arena.len() {
            return Err(D::Error::custom("user id arena has trailing bytes"));
        }
        Ok(interner)
    }
}

/// A user's state within one segment.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct SegUser {
    pub seg: u32,
    /// Last sealed base pane with activity.
    pub last_pane: u32,
    /// Open gap-based session, as (start, last); `start == i64::MIN` when none.
    pub sess_start: i64,
    pub sess_last: i64,
}

/// Everything kept per user.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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
        let mut back: Interner =
            bincode::deserialize(&bincode::serialize(&i).expect("encodes")).expect("decodes");
        assert_eq!(back.len(), 10_002);
        assert_eq!(back.intern("user-9999"), (10_001, false));
        assert_eq!(back.intern("carol"), (10_002, true));
    }
}
