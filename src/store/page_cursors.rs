//! Where the next page of a list starts, remembered per process, so that walking a large list
//! with `startIndex` (an IdP's full import asks for 1, 101, 201, …) continues after the last id
//! served instead of making the database step over `startIndex - 1` rows. With `OFFSET`, the
//! last page of 1,000,000 users took about 2 s under load; after the id it costs what the first
//! page costs.
//!
//! A page served at offset `o` with `n` rows records "offset `o + n` starts after id X" for its
//! list (table, tenant, filter, direction). A request at an offset with such a record reads
//! `id > X` (or `<` descending) from the index, and takes the record: a walk holds one record at a
//! time, the position of its next page. Any other request, and every list with `sortBy`, uses
//! `OFFSET`. A record is a hint, never a source of truth: a miss (another instance served the
//! previous page, the record expired or was evicted, the page is asked for again) only costs the
//! `OFFSET` scan.
//!
//! RFC 7644 §3.4.2.4 does not promise consistency between page requests, and the two ways differ
//! only when rows before the page were deleted or added between two requests. Then the keyset page
//! continues exactly where the previous one ended, while `OFFSET` would shift and skip or repeat
//! rows. For a client walking the list page by page, the keyset answer is the one it wants.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bounded map from (list, offset) to the id the page at that offset starts after.
#[derive(Debug)]
pub struct PageCursors {
    entries: Mutex<HashMap<(String, u64), (String, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl PageCursors {
    /// Records live `ttl`; at most `capacity` are kept.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        PageCursors {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// Takes the id the page of `list` at `offset` starts after, if a page ending there was
    /// served within the last `ttl`. The page served now records the next position.
    pub fn take(&self, list: &str, offset: u64) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (id, at) = entries.remove(&(list.to_owned(), offset))?;
        (at.elapsed() < self.ttl).then_some(id)
    }

    /// Records that the page of `list` at `offset` starts after `last_id`.
    pub fn remember(&self, list: &str, offset: u64, last_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                // Every record is live: more walks are under way than the bound allows (each
                // holds one). Starting over costs each of them one OFFSET page, and keeps memory
                // bounded.
                entries.clear();
            }
        }
        entries.insert((list.to_owned(), offset), (last_id.to_owned(), Instant::now()));
    }

    /// How many records are held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_page_tells_where_the_next_one_starts_once() {
        let c = PageCursors::new(Duration::from_secs(60), 10);
        c.remember("users|t1|asc|", 100, "id-100");
        assert_eq!(c.take("users|t1|asc|", 200), None, "another offset");
        assert_eq!(c.take("users|t2|asc|", 100), None, "another tenant's list");
        assert_eq!(c.take("users|t1|asc|", 100).as_deref(), Some("id-100"));
        assert_eq!(c.take("users|t1|asc|", 100), None, "taken: a walk holds one record");
        assert!(c.is_empty());
    }

    #[test]
    fn records_expire() {
        let c = PageCursors::new(Duration::ZERO, 10);
        c.remember("l", 100, "x");
        assert_eq!(c.take("l", 100), None);
    }

    #[test]
    fn the_bound_holds_and_expired_records_go_first() {
        let c = PageCursors::new(Duration::from_secs(60), 3);
        for i in 0..3 {
            c.remember("l", i, "x");
        }
        c.remember("l", 3, "y");
        assert_eq!(c.len(), 1, "all live at the bound: start over with the new record");
        assert_eq!(c.take("l", 3).as_deref(), Some("y"));

        let c = PageCursors::new(Duration::ZERO, 2);
        c.remember("l", 0, "x");
        c.remember("l", 1, "x");
        c.remember("l", 2, "z");
        assert_eq!(c.len(), 1, "expired records were dropped");
    }

    #[test]
    fn a_newer_page_replaces_the_record() {
        let c = PageCursors::new(Duration::from_secs(60), 10);
        c.remember("l", 100, "a");
        c.remember("l", 100, "b");
        assert_eq!(c.len(), 1);
        assert_eq!(c.take("l", 100).as_deref(), Some("b"));
    }
}
