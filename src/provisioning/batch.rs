//! SCIM writes of one tenant on PostgreSQL, written together.
//!
//! Every write holds its tenant's lock from the license read to the commit, so one tenant's
//! writes run one after another; on PostgreSQL a create alone costs four statements and a WAL
//! flush under that lock, a PATCH seven, which bounds a tenant's writes to about
//! 1 / (n × round trip) (`bench/RESULTS.md`). Every SCIM write of users and groups (creates,
//! PUTs, PATCHes, DELETEs) queues here instead (see [`super::write::Write`]),
//! and one task per tenant writes everything that queued while its previous batch ran in one
//! transaction: the lock, the context read, a read of the `userName`s creates take, a read of
//! the users the others change and the commit once for the batch; the rows of its updates and
//! deletes as each runs (later writes of the batch read them), and its new users, audit entries
//! and events, in the order they were made, in multi-row inserts, a statement per 12 KiB of
//! rows (`DEFERRED_STATEMENT_BYTES`).
//!
//! Every write gets the answer it would have got alone. Writes are decided in arrival order,
//! each against what the batch's earlier writes did. A refusal that comes before the write
//! changed anything — by the license engine (403), an unknown id, a failed `If-Match`, a PATCH
//! that does not apply — leaves the batch intact and is answered (a license refusal recorded in
//! the audit log) after the batch commits, as alone. A `userName` taken before the batch or by
//! an earlier create of it answers 409 without a write (one read for the batch). Any other error
//! — a database error, a unique violation all the same — rolls the whole batch back, and each
//! of its writes then runs again alone: nothing of a failed batch stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::write::{UserWrite, Write};
use super::{lock, Actor, Provisioning, StoredResource, WriteTx};
use crate::auth::Tenant;
use crate::events::Signals;
use crate::scim::error::ScimError;
use crate::scim::schema::SchemaRegistry;
use crate::store::{users, PointReads};

/// The most writes one transaction carries (a bound on the time the tenant's lock is held).
const MAX_BATCH: usize = 64;

/// Queues SCIM writes per tenant and writes each tenant's queue in batches (PostgreSQL only:
/// on SQLite, writes already share the writer's group commit).
///
/// The writing runs on a thread of its own, not on an HTTP worker's: a worker that stops during
/// a graceful shutdown drops its tasks, and a batch carries other workers' requests. The thread
/// ends, after finishing what is queued, when the last handle to the batcher is dropped.
#[derive(Clone)]
pub struct WriteBatcher {
    inner: Arc<Inner>,
    /// Tenants whose writer task the batch thread must start.
    start: mpsc::UnboundedSender<String>,
}

struct Inner {
    db: DatabaseConnection,
    reads: PointReads,
    schemas: Arc<SchemaRegistry>,
    signals: Signals,
    /// Writes waiting, by tenant id. A tenant has an entry exactly while its writer task runs.
    queues: Mutex<HashMap<String, Vec<Job>>>,
}

/// One queued write and where its answer goes.
struct Job {
    tenant: Tenant,
    actor: Actor,
    op: Write,
    /// The request's span (tenant, request id), for what the batch logs about this write.
    span: tracing::Span,
    reply: oneshot::Sender<Result<StoredResource, ScimError>>,
}

/// Why a batch did not commit.
enum Failure {
    /// Rolled back before its commit: each write runs again alone.
    RolledBack(String),
    /// The commit itself failed: whether it took effect is not known, so no write is run again
    /// (a client retrying a create that did land gets a 409 for its `userName`).
    Commit(ScimError),
}

/// What the batch did with one write.
enum Outcome {
    Written(StoredResource),
    /// Refused before it wrote anything.
    Refused(ScimError),
}

impl WriteBatcher {
    /// A batcher writing through `db` and telling `signals` about each committed batch; starts
    /// its thread.
    pub fn start(
        db: DatabaseConnection,
        reads: PointReads,
        schemas: Arc<SchemaRegistry>,
        signals: Signals,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            db,
            reads,
            schemas,
            signals,
            queues: Mutex::default(),
        });
        let (start, starts) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let writers = inner.clone();
        std::thread::Builder::new()
            .name("pg-write-batches".into())
            .spawn(move || run_writers(&runtime, writers, starts))?;
        Ok(WriteBatcher { inner, start })
    }

    /// Runs `op` for `actor` in the tenant's next batch.
    pub(super) async fn write(&self, tenant: &Tenant, actor: Actor, op: Write) -> Result<StoredResource, ScimError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            tenant: tenant.clone(),
            actor,
            op,
            span: tracing::Span::current(),
            reply,
        };
        let start_writer = {
            let mut queues = lock(&self.inner.queues);
            match queues.get_mut(&tenant.id) {
                Some(queue) => {
                    queue.push(job);
                    false
                }
                None => {
                    queues.insert(tenant.id.clone(), vec![job]);
                    true
                }
            }
        };
        if start_writer && self.start.send(tenant.id.clone()).is_err() {
            // The batch thread is gone (it panicked): this write, and any that queued behind
            // it meanwhile, are run here, alone.
            tracing::error!("the write batch thread is gone; SCIM writes run alone");
            let queued = lock(&self.inner.queues).remove(&tenant.id).unwrap_or_default();
            self.inner.write_alone(queued).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(ScimError::Unavailable(
                "the write was not made (the server is shutting down); retry the request".into(),
            ))
        })
    }
}

/// The batch thread: a writer task per tenant with writes queued, until the batcher is
/// dropped and every queue is written.
fn run_writers(runtime: &tokio::runtime::Runtime, inner: Arc<Inner>, mut starts: mpsc::UnboundedReceiver<String>) {
    let writers = tokio::task::LocalSet::new();
    writers.block_on(runtime, async move {
        while let Some(tenant_id) = starts.recv().await {
            tokio::task::spawn_local(inner.clone().write_queue(tenant_id));
        }
    });
    runtime.block_on(writers);
}

/// Should a tenant's writer task panic, its queue entry goes (its waiting writes then answer
/// 503), so that the next write starts a new writer. A writer that ends normally has removed
/// the entry itself, under the lock it found the queue empty under: removing it again here
/// could take the entry of a writer started since.
struct WriterGuard<'a> {
    inner: &'a Inner,
    tenant_id: &'a str,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.inner.queues).remove(self.tenant_id);
        }
    }
}

impl Inner {
    /// Writes the tenant's queue, batch after batch, until it is empty.
    async fn write_queue(self: Arc<Self>, tenant_id: String) {
        let _guard = WriterGuard {
            inner: &self,
            tenant_id: &tenant_id,
        };
        loop {
            let batch: Vec<Job> = {
                let mut queues = lock(&self.queues);
                let Some(queue) = queues.get_mut(&tenant_id) else {
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&tenant_id);
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            self.write_batch(batch).await;
        }
    }

    fn service(&self, actor: Actor) -> Provisioning<'_> {
        Provisioning::new(&self.db, &self.reads, &self.schemas, actor).with_signals(&self.signals)
    }

    async fn write_batch(&self, batch: Vec<Job>) {
        metrics::counter!(crate::metrics::BATCHED_WRITES).increment(batch.len() as u64);
        if batch.len() == 1 {
            metrics::counter!(crate::metrics::WRITE_BATCHES, "outcome" => "single").increment(1);
            return self.write_alone(batch).await;
        }
        match self.write_together(&batch).await {
            Ok((outcomes, touched)) => {
                metrics::counter!(crate::metrics::WRITE_BATCHES, "outcome" => "committed").increment(1);
                let svc = self.service(batch[0].actor.clone());
                svc.users_committed(&batch[0].tenant, touched).await;
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let answer = match outcome {
                        Outcome::Written(stored) => Ok(stored),
                        Outcome::Refused(err) => {
                            let svc = self.service(job.actor.clone());
                            Err(svc
                                .refused_write(&job.tenant, &job.op, err)
                                .instrument(job.span.clone())
                                .await)
                        }
                    };
                    let _ = job.reply.send(answer);
                }
            }
            Err(Failure::RolledBack(why)) => {
                metrics::counter!(crate::metrics::WRITE_BATCHES, "outcome" => "rolled_back").increment(1);
                tracing::info!(tenant = %batch[0].tenant.slug, why, writes = batch.len(), "batch rolled back; its writes run alone");
                self.write_alone(batch).await;
            }
            Err(Failure::Commit(err)) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Each write in a transaction of its own, as without a batcher.
    async fn write_alone(&self, batch: Vec<Job>) {
        for job in batch {
            let svc = self.service(job.actor.clone());
            let answer = svc.write_alone(&job.tenant, &job.op).instrument(job.span.clone()).await;
            let _ = job.reply.send(answer);
        }
    }

    /// All writes of `batch` in one transaction, committed; with the users it wrote.
    async fn write_together(&self, batch: &[Job]) -> Result<(Vec<Outcome>, Vec<String>), Failure> {
        let first = &batch[0];
        let svc = self.service(first.actor.clone());
        let mut w = svc
            .begin_for(&first.tenant, &first.op)
            .await
            .map_err(|e| Failure::RolledBack(e.to_string()))?;
        w.defer_writes();
        match self.decide_and_write(&w, batch).await {
            Ok(outcomes) => {
                let touched = w.tx.touched_users();
                w.tx.commit().await.map_err(|e| Failure::Commit(e.into()))?;
                Ok((outcomes, touched))
            }
            Err(why) => {
                if let Err(e) = w.tx.rollback().await {
                    tracing::warn!(error = %e, "rollback failed");
                }
                Err(Failure::RolledBack(why))
            }
        }
    }

    /// Each write's decision, in order, then the appends of the batch; `Err` says why the batch
    /// cannot commit.
    async fn decide_and_write(&self, w: &WriteTx, batch: &[Job]) -> Result<Vec<Outcome>, String> {
        // A usage-capped license counts each create before its seat decision, which can still
        // refuse it: alone, the refusal rolls the count back; in a batch it would stay.
        if w.license.usage_cap.is_some() {
            return Err("usage-capped licenses write alone".into());
        }
        let tenant_id = &batch[0].tenant.id;
        // Taken userNames answer 409 without a write: a unique violation would abort the
        // transaction, and with it the batch. (Alone, a create that also finds no seat answers
        // 403; here the 409 comes first.)
        let names: Vec<Option<String>> = batch.iter().map(|job| job.op.created_name()).collect();
        let creating: Vec<String> = names.iter().flatten().cloned().collect();
        let mut taken = users::taken_user_names(&w.tx, tenant_id, &creating)
            .await
            .map_err(|e| e.to_string())?;
        let updating: Vec<String> = batch
            .iter()
            .filter_map(|job| job.op.existing_user().map(str::to_string))
            .collect();
        w.prefetch(tenant_id, &updating).await.map_err(|e| e.to_string())?;
        // An update may have freed a name since it was read: past one, a create tries its name.
        let mut updated = false;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (job, name) in batch.iter().zip(names) {
            if let (Write::User(UserWrite::Create(doc)), Some(name)) = (&job.op, &name) {
                if !updated && taken.contains(name) {
                    outcomes.push(Outcome::Refused(super::users::user_name_in_use(doc)));
                    continue;
                }
            }
            let changes_before = w.tx.changes();
            let svc = self.service(job.actor.clone());
            match svc.write_in(w, &job.tenant, &job.op).instrument(job.span.clone()).await {
                Ok(stored) => {
                    taken.extend(name);
                    updated |= job.op.existing_user().is_some();
                    outcomes.push(Outcome::Written(stored));
                }
                // Refused before it changed anything, and no statement failed (which would
                // abort the transaction on PostgreSQL): the batch goes on.
                Err(err) if w.tx.changes() == changes_before && !failed_in_database(&err) => {
                    outcomes.push(Outcome::Refused(err))
                }
                Err(err) => return Err(err.to_string()),
            }
        }
        w.write_deferred(tenant_id).await.map_err(|e| e.to_string())?;
        Ok(outcomes)
    }
}

/// Did a statement of the write fail (`ScimError::from(StoreError)`)?
fn failed_in_database(err: &ScimError) -> bool {
    matches!(
        err,
        ScimError::Internal | ScimError::Unavailable(_) | ScimError::Uniqueness(_)
    )
}
