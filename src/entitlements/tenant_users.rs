//! What checks know of one tenant's users: the whole tenant in a [`UserIndex`], kept current
//! by this process's SCIM writes, or, until the index is built (or when it cannot be trusted),
//! the users asked about so far, each read once.
//!
//! **Building.** The first check of a tenant starts a task that reads every user in pages of
//! [`PAGE`] by id; checks meanwhile read the user they ask about. The index then replaces the
//! old one (if any) only after re-reading the users written while it was read, so a write is
//! never lost between the pages and the swap. It is rebuilt every [`REBUILD_EVERY`] as a bound
//! on anything missed.
//!
//! **Following writes.** A SCIM write's transaction notes every user it changes (including the
//! users a freed seat went to); once it commits, [`TenantUsers::apply`] re-reads those rows,
//! with those of the writes that queued meanwhile, and updates the index, one read after
//! another (so an earlier read never overwrites a later one), before the write is answered. A
//! request cancelled between the commit and that drops the index instead
//! (`EntitlementCache::write_guard`). Another instance's SCIM write is heard twice through
//! PostgreSQL `NOTIFY`: when it commits ([`TenantUsers::expect_rows`]), and then with the ids
//! of the users it changed, which are re-read and applied the same way
//! ([`TenantUsers::rows_arrived`]). Meanwhile (milliseconds) checks answer from the index as it
//! was, as they did before the commit was heard. Changes whose extent this process cannot see
//! (a write whose ids did not follow within [`ROWS_WAIT`], or did not fit a notification) drop
//! the index; it is rebuilt once such changes stop for [`QUIET`]. Everything else (license,
//! plan, seat mapping, holds) drops the tenant's entry altogether (see
//! `EntitlementCache::forget`).
//!
//! **Memory.** The process indexes at most a configured number of users over all tenants
//! ([`Budget`]); a tenant that does not fit is checked by reads.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use super::index::{CheckRow, UserIndex};
use super::UserView;
use crate::store::{user_counts, users, Reader, StoreError};

/// Users read per statement while building.
const PAGE: u64 = 1_000;

/// Users (and unknown names) remembered per tenant without an index before starting over.
const MAX_MISSES: usize = 20_000;

/// How long after another instance's write of the tenant a build may start.
pub const QUIET: Duration = Duration::from_secs(2);

/// How long after another instance's write commits the ids of its users may take to arrive
/// before the index is dropped (the writer may have died in between).
const ROWS_WAIT: Duration = Duration::from_secs(1);

/// Other instances' writes awaiting their ids, per tenant, before the index is dropped instead.
const MAX_AWAITED: usize = 10_000;

/// The shortest wait before trying again after a build failed or did not fit.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// An index older than this is rebuilt (it keeps answering meanwhile).
const REBUILD_EVERY: Duration = Duration::from_secs(600);

/// Users indexed by this process, over all tenants, against the configured limit.
pub struct Budget {
    max: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `max` users (0: no index, every check reads).
    pub fn new(max: usize) -> Self {
        Budget {
            max,
            used: AtomicUsize::new(0),
        }
    }

    /// Whether `more` users fit besides those indexed now.
    fn fits(&self, more: usize) -> bool {
        self.used.load(Ordering::Relaxed).saturating_add(more) <= self.max
    }

    /// Records that an index went from `before` to `after` users.
    fn account(&self, before: usize, after: usize) {
        if after >= before {
            self.used.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(before - after, Ordering::Relaxed);
        }
    }
}

/// Users asked about while the tenant has no index; `None` remembers "no such user".
#[derive(Debug, Default)]
struct Misses {
    by_key: HashMap<Box<str>, Option<UserView>>,
    /// The seat types and reasons the entries share.
    names: HashSet<Arc<str>>,
}

impl Misses {
    /// `text` shared with the entries that hold it already.
    fn name(&mut self, text: String) -> Arc<str> {
        if let Some(shared) = self.names.get(text.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = text.into();
        self.names.insert(shared.clone());
        shared
    }

    fn clear(&mut self) {
        self.by_key.clear();
        self.names.clear();
    }
}

#[derive(Default)]
struct State {
    index: Option<UserIndex>,
    built_at: Option<Instant>,
    misses: Misses,
    /// Bumped by every change: a read begun before it is not remembered.
    generation: u64,
    /// While a build runs: the users written since it began, to re-read before it is used.
    building: Option<Vec<String>>,
    /// The last change this process could not follow.
    foreign_at: Option<Instant>,
    /// No build starts before this (changes this process cannot follow may still come).
    quiet_until: Option<Instant>,
    retry_at: Option<Instant>,
    /// Users of committed writes waiting to be applied, and how many writes queued them.
    queued_ids: Vec<String>,
    /// Writes queued so far, and the last of them applied.
    queued: u64,
    applied: u64,
    /// Other instances' committed writes whose users' ids have not arrived yet: the writing
    /// instance and when the commit was heard, oldest first.
    awaiting: Vec<(Box<str>, Instant)>,
}

impl State {
    /// Whether another instance's write was heard committing [`ROWS_WAIT`] ago or more and the
    /// ids of its users have not arrived.
    fn rows_overdue(&self, now: Instant) -> bool {
        self.awaiting
            .first()
            .is_some_and(|(_, heard)| now.duration_since(*heard) >= ROWS_WAIT)
    }

    fn may_build(&self, now: Instant) -> bool {
        let due = match self.built_at {
            Some(at) => self.index.is_none() || now.duration_since(at) >= REBUILD_EVERY,
            None => true,
        };
        due && self.building.is_none()
            && self.retry_at.is_none_or(|at| now >= at)
            && self.quiet_until.is_none_or(|at| now >= at)
    }
}

/// Why a tenant's check index was dropped: the `reason` of
/// `seatbridge_check_index_drops_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Another instance's write was heard committing, and the ids of its users did not follow
    /// within [`ROWS_WAIT`] (that instance may have died in between).
    IdsNeverCame,
    /// Another instance's write changed more users than one notification names.
    TooManyIds,
    /// More of other instances' writes awaited their ids than [`MAX_AWAITED`].
    Backlog,
    /// A request was cancelled between its write's commit and the update of the index.
    WriteCancelled,
    /// Another process has the SQLite file open, and its writes are not heard.
    OtherProcess,
    /// Re-reading written users failed.
    ReadFailed,
    /// Written users no longer fit the index.
    OverBudget,
}

impl DropReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::IdsNeverCame => "ids_never_came",
            DropReason::TooManyIds => "too_many_ids",
            DropReason::Backlog => "backlog",
            DropReason::WriteCancelled => "write_cancelled",
            DropReason::OtherProcess => "other_process",
            DropReason::ReadFailed => "read_failed",
            DropReason::OverBudget => "over_budget",
        }
    }
}

/// One tenant's users, for checks.
pub struct TenantUsers {
    tenant_id: String,
    /// The tenant's slug, for the index gauge.
    slug: String,
    /// The tenant's `entitlement_epoch` when this was made: a different one means changes
    /// this process did not see.
    pub(super) epoch: i64,
    budget: Arc<Budget>,
    state: RwLock<State>,
    /// Held while a write's users are re-read and applied, and while a build swaps in.
    apply: tokio::sync::Mutex<()>,
    created: Instant,
    /// When [`TenantUsers::probe_due`] last said yes, in milliseconds after `created`.
    probed_ms: AtomicU64,
}

impl Drop for TenantUsers {
    fn drop(&mut self) {
        let indexed = self.read().index.as_ref().map_or(0, UserIndex::len);
        self.account(indexed, 0);
    }
}

impl TenantUsers {
    /// Nothing known yet of the tenant's users (its gauge reads 0).
    pub fn new(tenant_id: &str, slug: &str, epoch: i64, budget: Arc<Budget>) -> Self {
        metrics::gauge!(crate::metrics::INDEXED_USERS, "tenant" => slug.to_string()).set(0.0);
        TenantUsers {
            tenant_id: tenant_id.to_string(),
            slug: slug.to_string(),
            epoch,
            budget,
            state: RwLock::default(),
            apply: tokio::sync::Mutex::new(()),
            created: Instant::now(),
            probed_ms: AtomicU64::new(0),
        }
    }

    /// Whether `every` has passed since this last said yes (the first call says yes).
    pub fn probe_due(&self, every: Duration) -> bool {
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let last = self.probed_ms.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= every.as_millis() as u64)
            && self
                .probed_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The tenant's id.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Whether the whole tenant is indexed.
    pub fn is_indexed(&self) -> bool {
        self.read().index.is_some()
    }

    /// The user with id or userName `key`: from the index, else remembered, else read through
    /// `reads` (and an index build started through `db`).
    pub async fn lookup(
        self: &Arc<Self>,
        db: &DatabaseConnection,
        reads: &impl Reader,
        key: &str,
    ) -> Result<Option<UserView>, StoreError> {
        let now = Instant::now();
        let (generation, cache_key, may_build) = loop {
            let st = self.read();
            if let Some(index) = &st.index {
                if st.rows_overdue(now) {
                    drop(st);
                    tracing::warn!(tenant = %self.tenant_id, "another instance's written users were not named in time; the check index is dropped");
                    // Clears what was awaited: the next turn finds no index.
                    self.distrust(QUIET, DropReason::IdsNeverCame);
                    continue;
                }
                let found = index.get(key);
                if st.may_build(now) {
                    drop(st);
                    self.start_build(db);
                }
                return Ok(found);
            }
            let cache_key = key.to_lowercase();
            if let Some(hit) = st.misses.by_key.get(cache_key.as_str()) {
                return Ok(hit.clone());
            }
            break (st.generation, cache_key, st.may_build(now));
        };
        // Asked under the read lock first: start_build takes the write lock, which every miss
        // would otherwise take while a build runs.
        if may_build {
            self.start_build(db);
        }
        let row = users::find_for_check(reads, &self.tenant_id, key).await?;
        let mut st = self.write();
        let found = row.map(|row| UserView {
            id: row.id.into(),
            active: row.active,
            entitled: row.entitled,
            seat_type: st.misses.name(row.seat_type),
            reason: st.misses.name(row.entitlement_reason),
        });
        if st.generation == generation && st.index.is_none() {
            // A bound, so that a caller asking about arbitrary names cannot grow memory.
            if st.misses.by_key.len() >= MAX_MISSES {
                st.misses.clear();
            }
            st.misses.by_key.insert(cache_key.into(), found.clone());
        }
        Ok(found)
    }

    /// Brings what checks know of `ids` up to date after a committed write of them: re-reads
    /// their rows through `reads` (absent: deleted). On failure the index is dropped, as it
    /// can no longer be trusted.
    ///
    /// Writes that queue while another's rows are being read are applied together, with one
    /// read (on PostgreSQL one round trip per write, one after another, had cut PATCH from 607
    /// to 513 req/s at 1,000,000 users). Each is queued after its commit, so the read that
    /// applies it sees it.
    pub async fn apply(&self, reads: &impl Reader, ids: Vec<String>) {
        let mine = {
            let mut st = self.write();
            st.queued_ids.extend(ids);
            st.queued += 1;
            st.queued
        };
        let _turn = self.apply.lock().await;
        let ids = {
            let mut st = self.write();
            if st.applied >= mine {
                return;
            }
            st.applied = st.queued;
            let mut ids = std::mem::take(&mut st.queued_ids);
            ids.sort_unstable();
            ids.dedup();
            if st.index.is_none() && st.building.is_none() {
                // Nothing to update: a build begun after this point reads the writes anyway.
                st.generation += 1;
                st.misses.clear();
                return;
            }
            ids
        };
        let rows = users::check_rows(reads, &self.tenant_id, &ids).await;
        let mut st = self.write();
        st.generation += 1;
        st.misses.clear();
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, tenant = %self.tenant_id, "could not re-read written users; the check index is dropped");
                self.drop_index(&mut st, DropReason::ReadFailed);
                return;
            }
        };
        if let Some(index) = st.index.as_mut() {
            let before = index.len();
            let fits = apply_rows(index, &ids, &rows).is_ok();
            let after = index.len();
            self.account(before, after);
            if !fits {
                self.drop_index(&mut st, DropReason::OverBudget);
            }
        }
        if let Some(pending) = st.building.as_mut() {
            pending.extend(ids);
        }
    }

    /// Another instance (`origin`) committed a write of the tenant's users; their ids follow
    /// ([`TenantUsers::rows_arrived`]). Users remembered without an index are forgotten.
    pub fn expect_rows(&self, origin: &str) {
        let mut st = self.write();
        st.generation += 1;
        st.misses.clear();
        if st.index.is_none() && st.building.is_none() {
            return;
        }
        if st.awaiting.len() >= MAX_AWAITED {
            drop(st);
            self.distrust(QUIET, DropReason::Backlog);
            return;
        }
        st.awaiting.push((origin.into(), Instant::now()));
    }

    /// The ids of the users of `origin`'s oldest write heard committing have arrived (to be
    /// applied with [`TenantUsers::apply`]).
    pub fn rows_arrived(&self, origin: &str) {
        let mut st = self.write();
        if let Some(at) = st.awaiting.iter().position(|(o, _)| &**o == origin) {
            st.awaiting.remove(at);
        }
    }

    /// A change this process cannot see the extent of may have happened (`why`), and more may
    /// follow for `quiet`: the index is dropped, and not rebuilt before that.
    pub fn distrust(&self, quiet: Duration, why: DropReason) {
        let mut st = self.write();
        let now = Instant::now();
        st.generation += 1;
        st.misses.clear();
        st.awaiting.clear();
        st.foreign_at = Some(now);
        st.quiet_until = Some(now + quiet);
        self.drop_index(&mut st, why);
    }

    /// Records that the index went from `before` to `after` users, in the budget and the
    /// tenant's gauge.
    fn account(&self, before: usize, after: usize) {
        self.budget.account(before, after);
        metrics::gauge!(crate::metrics::INDEXED_USERS, "tenant" => self.slug.clone()).set(after as f64);
    }

    fn drop_index(&self, st: &mut State, why: DropReason) {
        if let Some(index) = st.index.take() {
            self.account(index.len(), 0);
            metrics::counter!(crate::metrics::INDEX_DROPS, "reason" => why.as_str()).increment(1);
        }
    }

    fn start_build(self: &Arc<Self>, db: &DatabaseConnection) {
        if self.budget.max == 0 {
            return;
        }
        {
            let mut st = self.write();
            if !st.may_build(Instant::now()) {
                return;
            }
            st.building = Some(Vec::new());
        }
        let (me, db) = (self.clone(), db.clone());
        tokio::spawn(async move { me.build(&db).await });
    }

    async fn build(&self, db: &DatabaseConnection) {
        let started = Instant::now();
        let outcome = match self.read_all(db).await {
            Ok(Some(index)) => self.swap_in(db, index, started).await,
            Ok(None) => {
                Err("the tenant has more users than the check index may hold (SEATBRIDGE_CHECK_INDEX_USERS)".into())
            }
            Err(e) => Err(e.to_string()),
        };
        let mut st = self.write();
        st.building = None;
        match outcome {
            Ok(()) => {
                tracing::debug!(tenant = %self.tenant_id, users = st.index.as_ref().map_or(0, UserIndex::len), ms = started.elapsed().as_millis() as u64, "check index built");
            }
            Err(why) => {
                st.retry_at = Some(Instant::now() + RETRY_AFTER.max(started.elapsed() * 4));
                tracing::info!(tenant = %self.tenant_id, %why, "check index not built; checks read users meanwhile");
            }
        }
    }

    /// Every user of the tenant, or `None` when they do not fit the budget.
    async fn read_all(&self, db: &DatabaseConnection) -> Result<Option<UserIndex>, StoreError> {
        let (counted, _, _) = user_counts::totals(db, &self.tenant_id).await?;
        let expected = usize::try_from(counted).unwrap_or(0);
        if !self.budget.fits(expected) {
            return Ok(None);
        }
        let mut index = UserIndex::default();
        let mut after = String::new();
        loop {
            let page = users::check_rows_page(db, &self.tenant_id, &after, PAGE).await?;
            if !self.budget.fits(index.len() + page.len()) {
                return Ok(None);
            }
            if after.is_empty() && !page.is_empty() {
                // Sized once, from the count and the first page's texts, with a margin for
                // users created meanwhile.
                let text: usize = page.iter().map(|r| r.id.len() + r.name_norm.len()).sum();
                let room = expected + expected / 16 + PAGE as usize;
                index = UserIndex::with_capacity(room, text / page.len() * room);
            }
            for row in &page {
                if index.upsert(row).is_err() {
                    return Ok(None);
                }
            }
            match page.last() {
                Some(last) if page.len() as u64 == PAGE => after.clone_from(&last.id),
                _ => return Ok(Some(index)),
            }
        }
    }

    /// Re-reads the users written while `index` was read, and makes it the one checks use.
    async fn swap_in(&self, db: &DatabaseConnection, mut index: UserIndex, started: Instant) -> Result<(), String> {
        let _turn = self.apply.lock().await;
        let pending = self.write().building.replace(Vec::new()).unwrap_or_default();
        let rows = users::check_rows(db, &self.tenant_id, &pending)
            .await
            .map_err(|e| e.to_string())?;
        apply_rows(&mut index, &pending, &rows).map_err(|e| e.to_string())?;
        let mut st = self.write();
        if st.foreign_at.is_some_and(|at| at >= started) {
            return Err("another instance wrote the tenant's users meanwhile".into());
        }
        self.account(st.index.as_ref().map_or(0, UserIndex::len), index.len());
        st.index = Some(index);
        st.built_at = Some(Instant::now());
        st.misses.clear();
        st.generation += 1;
        Ok(())
    }

    /// Makes `index` the one checks use, as a build would.
    #[cfg(test)]
    pub(super) fn install_for_test(&self, index: UserIndex) {
        let mut st = self.write();
        self.account(0, index.len());
        st.index = Some(index);
        st.built_at = Some(Instant::now());
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Updates `index` from the rows read for `ids` (an id without a row was deleted).
fn apply_rows(index: &mut UserIndex, ids: &[String], rows: &[CheckRow]) -> Result<(), super::index::Unindexable> {
    let found: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    for id in ids.iter().filter(|id| !found.contains(id.as_str())) {
        index.remove(id);
    }
    rows.iter().try_for_each(|row| index.upsert(row))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_indexes_and_their_owners() {
        let budget = Arc::new(Budget::new(10));
        assert!(budget.fits(10) && !budget.fits(11));
        let users = TenantUsers::new("t", "t", 0, budget.clone());
        users.install_for_test(index_of(4));
        assert!(budget.fits(6) && !budget.fits(7));
        users.distrust(QUIET, DropReason::OtherProcess);
        assert!(budget.fits(10), "a dropped index gives its users back");
        assert!(
            !users.read().may_build(Instant::now()),
            "not right after a change this process could not follow"
        );
        assert!(users.read().may_build(Instant::now() + QUIET));
        let other = TenantUsers::new("t2", "t2", 0, budget.clone());
        other.install_for_test(index_of(3));
        assert!(budget.fits(7) && !budget.fits(8));
        drop(other);
        assert!(budget.fits(10), "so does a dropped owner");
    }

    /// An index of `n` users.
    fn index_of(n: usize) -> UserIndex {
        let mut index = UserIndex::default();
        for n in 0..n {
            index
                .upsert(&CheckRow {
                    id: format!("id-{n}"),
                    name_norm: format!("u{n}"),
                    active: true,
                    entitled: true,
                    seat_type: "standard".into(),
                    reason: "seat_assigned".into(),
                })
                .unwrap();
        }
        index
    }

    #[test]
    fn another_instances_write_whose_ids_never_come_is_overdue() {
        let users = TenantUsers::new("t", "t", 0, Arc::new(Budget::new(10)));
        users.expect_rows("a");
        assert!(users.read().awaiting.is_empty(), "nothing indexed: nothing to await");
        users.install_for_test(UserIndex::default());
        users.expect_rows("a");
        users.expect_rows("b");
        let later = Instant::now() + ROWS_WAIT;
        assert!(!users.read().rows_overdue(Instant::now()));
        assert!(users.read().rows_overdue(later));
        users.rows_arrived("a");
        users.rows_arrived("c");
        assert!(users.read().rows_overdue(later), "b's ids are still awaited");
        users.rows_arrived("b");
        assert!(!users.read().rows_overdue(later + ROWS_WAIT));
        users.expect_rows("a");
        users.distrust(QUIET, DropReason::IdsNeverCame);
        assert!(
            !users.read().rows_overdue(later) && !users.is_indexed(),
            "dropped: nothing left to await"
        );
    }
}
