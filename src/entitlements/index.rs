//! A tenant's users as entitlement checks need them, every one of them in memory.
//!
//! Checks pick users at random from the whole tenant, so a cache of the users asked about so far
//! missed most of them at 100,000 users and more (`bench/RESULTS.md`). The index holds the whole
//! tenant compactly: ids and lower-cased userNames back to back in one string, a 16-byte entry
//! per user, and two hash tables of entry numbers (by id, by name). Seat types and reasons are
//! few per tenant and are stored once.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;

use super::UserView;

/// One user's row as the index takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub id: String,
    /// The lower-cased userName (`users.user_name_norm`).
    pub name_norm: String,
    pub active: bool,
    pub entitled: bool,
    pub seat_type: String,
    pub reason: String,
}

/// A row the index cannot hold (a text longer than an entry can describe, or more distinct seat
/// types and reasons than it numbers); the tenant is then checked without an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this user cannot be indexed")]
pub struct Unindexable;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the id starts in `text`; the name follows it.
    at: u32,
    id_len: u16,
    name_len: u16,
    seat: u16,
    reason: u16,
    flags: u8,
}

const ACTIVE: u8 = 1;
const ENTITLED: u8 = 2;
const LIVE: u8 = 4;

/// Compaction starts when this much of `text` is no longer referred to, and it is at least half.
const MIN_GARBAGE: usize = 64 * 1024;

/// Every user of one tenant, for checks.
#[derive(Default)]
pub struct UserIndex {
    text: String,
    entries: Vec<Entry>,
    /// Entries of removed users, for reuse.
    free: Vec<u32>,
    by_id: HashTable<u32>,
    by_name: HashTable<u32>,
    /// Seat types and reasons, by number.
    names: Vec<Arc<str>>,
    /// A keyed hash: ids and names come from outside, and must not be able to pick collisions.
    hasher: RandomState,
    /// Bytes of `text` that no entry refers to any more.
    garbage: usize,
}

impl UserIndex {
    /// An index with room for `users` users whose ids and names take `text` bytes in all.
    ///
    /// A build sizes the index once: grown by doubling, its buffers left their smaller
    /// predecessors to glibc, which kept them (the RSS stayed 40 MiB above the index's 8 MiB
    /// after indexing 100,000 users).
    pub fn with_capacity(users: usize, text: usize) -> Self {
        UserIndex {
            text: String::with_capacity(text),
            entries: Vec::with_capacity(users),
            by_id: HashTable::with_capacity(users),
            by_name: HashTable::with_capacity(users),
            ..UserIndex::default()
        }
    }

    /// The users in the index.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Whether the index holds no user.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Roughly what the index takes in memory, in bytes.
    pub fn memory(&self) -> usize {
        self.text.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + (self.by_id.capacity() + self.by_name.capacity()) * (std::mem::size_of::<u32>() + 1)
    }

    /// The user whose id is `key`, else the one whose userName is `key` (case-insensitively),
    /// as the SQL lookup answers it.
    pub fn get(&self, key: &str) -> Option<UserView> {
        let i = self.find_id(key).or_else(|| self.find_name(&lowercase(key)))?;
        Some(self.view(i))
    }

    /// Adds the user, or replaces what the index knew of it.
    pub fn upsert(&mut self, row: &CheckRow) -> Result<(), Unindexable> {
        let id_len = u16::try_from(row.id.len()).map_err(|_| Unindexable)?;
        let name_len = u16::try_from(row.name_norm.len()).map_err(|_| Unindexable)?;
        let seat = self.name_number(&row.seat_type)?;
        let reason = self.name_number(&row.reason)?;
        let flags = LIVE | if row.active { ACTIVE } else { 0 } | if row.entitled { ENTITLED } else { 0 };
        if let Some(i) = self.find_id(&row.id) {
            let old = self.entries[i as usize];
            let renamed = self.name(old) != row.name_norm;
            if renamed {
                self.unlink_name(i);
                self.garbage += usize::from(old.id_len) + usize::from(old.name_len);
                self.entries[i as usize].at = self.push_text(&row.id, &row.name_norm)?;
                self.entries[i as usize].name_len = name_len;
                self.link_name(i);
            }
            let e = &mut self.entries[i as usize];
            (e.seat, e.reason, e.flags) = (seat, reason, flags);
            if renamed {
                self.compact_if_wasteful();
            }
            return Ok(());
        }
        let at = self.push_text(&row.id, &row.name_norm)?;
        let entry = Entry {
            at,
            id_len,
            name_len,
            seat,
            reason,
            flags,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                i
            }
            None => {
                let i = u32::try_from(self.entries.len()).map_err(|_| Unindexable)?;
                self.entries.push(entry);
                i
            }
        };
        let hash = self.hasher.hash_one(row.id.as_str());
        let (entries, text, hasher) = (&self.entries, &self.text, &self.hasher);
        self.by_id
            .insert_unique(hash, i, |&j| hasher.hash_one(id_of(text, entries[j as usize])));
        self.link_name(i);
        Ok(())
    }

    /// Forgets the user with this id (if the index holds it).
    pub fn remove(&mut self, id: &str) {
        let hash = self.hasher.hash_one(id);
        let (entries, text) = (&self.entries, &self.text);
        let Ok(found) = self.by_id.find_entry(hash, |&j| id_of(text, entries[j as usize]) == id) else {
            return;
        };
        let (i, _) = found.remove();
        self.unlink_name(i);
        let e = &mut self.entries[i as usize];
        e.flags = 0;
        self.garbage += usize::from(e.id_len) + usize::from(e.name_len);
        self.free.push(i);
        self.compact_if_wasteful();
    }

    fn find_id(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.by_id
            .find(hash, |&j| id_of(&self.text, self.entries[j as usize]) == id)
            .copied()
    }

    fn find_name(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.by_name
            .find(hash, |&j| name_of(&self.text, self.entries[j as usize]) == name)
            .copied()
    }

    fn name(&self, e: Entry) -> &str {
        name_of(&self.text, e)
    }

    /// Makes `by_name` lead to entry `i`. Names are unique in a tenant, but deltas can arrive
    /// in any order (one user renamed to a name another has not yet been seen to give up): the
    /// newest entry wins, and the other's own delta follows.
    fn link_name(&mut self, i: u32) {
        let (entries, text, hasher) = (&self.entries, &self.text, &self.hasher);
        let name = name_of(text, entries[i as usize]);
        let hash = hasher.hash_one(name);
        match self.by_name.entry(
            hash,
            |&j| name_of(text, entries[j as usize]) == name,
            |&j| hasher.hash_one(name_of(text, entries[j as usize])),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = i,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }

    /// Removes entry `i`'s name from `by_name`, if it leads there.
    fn unlink_name(&mut self, i: u32) {
        let (entries, text, hasher) = (&self.entries, &self.text, &self.hasher);
        let name = name_of(text, entries[i as usize]);
        if let Ok(found) = self.by_name.find_entry(hasher.hash_one(name), |&j| j == i) {
            found.remove();
        }
    }

    fn push_text(&mut self, id: &str, name: &str) -> Result<u32, Unindexable> {
        let at = u32::try_from(self.text.len()).map_err(|_| Unindexable)?;
        u32::try_from(self.text.len() + id.len() + name.len()).map_err(|_| Unindexable)?;
        self.text.push_str(id);
        self.text.push_str(name);
        Ok(at)
    }

    fn name_number(&mut self, text: &str) -> Result<u16, Unindexable> {
        if let Some(n) = self.names.iter().position(|s| &**s == text) {
            return u16::try_from(n).map_err(|_| Unindexable);
        }
        let n = u16::try_from(self.names.len()).map_err(|_| Unindexable)?;
        self.names.push(text.into());
        Ok(n)
    }

    fn view(&self, i: u32) -> UserView {
        let e = self.entries[i as usize];
        UserView {
            id: id_of(&self.text, e).into(),
            active: e.flags & ACTIVE != 0,
            entitled: e.flags & ENTITLED != 0,
            seat_type: self.names[usize::from(e.seat)].clone(),
            reason: self.names[usize::from(e.reason)].clone(),
        }
    }

    /// Copies the live entries' texts into a new string once most of it is garbage (renames and
    /// removals leave their old text behind). The hash tables hold entry numbers, so they stay.
    fn compact_if_wasteful(&mut self) {
        if self.garbage < MIN_GARBAGE || self.garbage * 2 < self.text.len() {
            return;
        }
        let mut text = String::with_capacity(self.text.len() - self.garbage);
        for e in self.entries.iter_mut().filter(|e| e.flags & LIVE != 0) {
            let start = e.at as usize;
            let end = start + usize::from(e.id_len) + usize::from(e.name_len);
            // Offsets fit: the new text is shorter than the old one, whose offsets fitted.
            e.at = text.len() as u32;
            text.push_str(&self.text[start..end]);
        }
        self.text = text;
        self.garbage = 0;
    }
}

fn id_of(text: &str, e: Entry) -> &str {
    let start = e.at as usize;
    &text[start..start + usize::from(e.id_len)]
}

fn name_of(text: &str, e: Entry) -> &str {
    let start = e.at as usize + usize::from(e.id_len);
    &text[start..start + usize::from(e.name_len)]
}

/// `key` lower-cased as `users.user_name_norm` is, without a copy when it already is.
fn lowercase(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(key.to_lowercase())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, entitled: bool) -> CheckRow {
        CheckRow {
            id: id.into(),
            name_norm: name.into(),
            active: true,
            entitled,
            seat_type: "standard".into(),
            reason: if entitled { "seat_assigned" } else { "seat_limit" }.into(),
        }
    }

    #[test]
    fn finds_users_by_id_and_by_name_in_any_case() {
        let mut index = UserIndex::default();
        index.upsert(&row("id-1", "alice@example.com", true)).unwrap();
        index.upsert(&row("id-2", "bob@example.com", false)).unwrap();
        let alice = index.get("id-1").unwrap();
        assert_eq!(
            (&*alice.id, alice.entitled, &*alice.seat_type),
            ("id-1", true, "standard")
        );
        assert_eq!(&*index.get("ALICE@example.com").unwrap().id, "id-1");
        let bob = index.get("bob@example.com").unwrap();
        assert_eq!((&*bob.id, bob.entitled, &*bob.reason), ("id-2", false, "seat_limit"));
        assert!(index.get("ID-1").is_none(), "ids are compared exactly");
        assert!(index.get("carol@example.com").is_none());
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn an_update_replaces_state_and_name() {
        let mut index = UserIndex::default();
        index.upsert(&row("id-1", "alice", false)).unwrap();
        index.upsert(&row("id-1", "alice", true)).unwrap();
        assert!(index.get("alice").unwrap().entitled);
        index.upsert(&row("id-1", "alicia", true)).unwrap();
        assert!(index.get("alice").is_none(), "the old name is gone");
        assert_eq!(&*index.get("alicia").unwrap().id, "id-1");
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_name_taken_over_before_its_holders_delta_leads_to_the_newest() {
        let mut index = UserIndex::default();
        index.upsert(&row("a", "x", true)).unwrap();
        index.upsert(&row("b", "x", false)).unwrap();
        assert_eq!(&*index.get("x").unwrap().id, "b");
        // a's own delta (renamed away) must not take the name from b.
        index.upsert(&row("a", "y", true)).unwrap();
        assert_eq!(&*index.get("x").unwrap().id, "b");
        assert_eq!(&*index.get("y").unwrap().id, "a");
    }

    #[test]
    fn removed_users_are_gone_and_their_entries_reused() {
        let mut index = UserIndex::default();
        for n in 0..3 {
            index.upsert(&row(&format!("id-{n}"), &format!("u{n}"), true)).unwrap();
        }
        index.remove("id-1");
        index.remove("id-1");
        assert!(index.get("id-1").is_none() && index.get("u1").is_none());
        assert_eq!(index.len(), 2);
        index.upsert(&row("id-9", "u9", true)).unwrap();
        assert_eq!(index.entries.len(), 3, "the removed entry was reused");
        assert_eq!(&*index.get("u9").unwrap().id, "id-9");
        assert_eq!(&*index.get("u2").unwrap().id, "id-2");
    }

    #[test]
    fn churn_compacts_the_text_and_keeps_every_user() {
        let mut index = UserIndex::default();
        for n in 0..2_000 {
            index
                .upsert(&row(&format!("id-{n}"), &format!("user-{n}"), true))
                .unwrap();
        }
        for round in 0..20 {
            for n in 0..2_000 {
                if n % 2 == 0 {
                    index.remove(&format!("id-{n}"));
                    index
                        .upsert(&row(&format!("id-{n}"), &format!("user-{n}"), true))
                        .unwrap();
                } else {
                    let name = format!("user-{n}-renamed-{round}");
                    index.upsert(&row(&format!("id-{n}"), &name, round % 2 == 0)).unwrap();
                }
            }
        }
        assert!(index.text.len() < 200_000, "text is {} bytes", index.text.len());
        assert_eq!(index.len(), 2_000);
        for n in 0..2_000 {
            let key = if n % 2 == 0 {
                format!("user-{n}")
            } else {
                format!("USER-{n}-RENAMED-19")
            };
            assert_eq!(*index.get(&key).unwrap().id, *format!("id-{n}"), "{key}");
        }
    }

    #[test]
    fn texts_too_long_for_an_entry_are_refused() {
        let mut index = UserIndex::default();
        let long = "x".repeat(70_000);
        assert_eq!(index.upsert(&row("id", &long, true)), Err(Unindexable));
        assert!(index.is_empty());
    }

    #[test]
    fn non_ascii_names_are_lowercased_like_the_column() {
        let mut index = UserIndex::default();
        index
            .upsert(&row("id-1", &"ÉLODIE@exemple.fr".to_lowercase(), true))
            .unwrap();
        assert_eq!(&*index.get("Élodie@Exemple.FR").unwrap().id, "id-1");
    }
}
