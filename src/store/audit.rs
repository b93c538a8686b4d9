//! Rows of the audit log. The chain logic lives in `crate::audit`.

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::audit_entry;
use super::{Reader, StoreError, Writer};

/// The head of a tenant's chain: the newest entry's `seq` and `hash`, which is all an append
/// needs (every audited write reads it, under the tenant's lock).
pub async fn head(conn: &impl Reader, tenant_id: &str) -> Result<Option<(i64, String)>, StoreError> {
    // Raw SQL for a literal LIMIT (see `SqlBuilder::limit`).
    let mut b = super::sql::SqlBuilder::new(conn.backend());
    b.push("SELECT seq, hash FROM audit_log WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" ORDER BY seq DESC")
        .limit(1, 0);
    match conn.rows(b.build()).await?.first() {
        Some(row) => Ok(Some((row.get::<i64>(0)?, row.get::<String>(1)?))),
        None => Ok(None),
    }
}

/// Appends one entry (the caller computed its hash).
pub async fn insert(conn: &impl Writer, entry: audit_entry::Model) -> Result<(), StoreError> {
    super::insert_row(conn, active(entry)).await?;
    Ok(())
}

/// [`insert`] as a statement, for a caller that runs it together with another one.
pub fn insert_statement(entry: audit_entry::Model) -> sea_orm::sea_query::InsertStatement {
    use sea_orm::QueryTrait;
    audit_entry::Entity::insert(active(entry)).into_query()
}

/// The insert of many entries (of one chain, in order), for the caller to run.
pub fn insert_many_statement(entries: Vec<audit_entry::Model>) -> sea_orm::sea_query::InsertStatement {
    use sea_orm::QueryTrait;
    audit_entry::Entity::insert_many(entries.into_iter().map(active)).into_query()
}

fn active(entry: audit_entry::Model) -> audit_entry::ActiveModel {
    audit_entry::ActiveModel {
        tenant_id: Set(entry.tenant_id),
        seq: Set(entry.seq),
        at: Set(entry.at),
        actor: Set(entry.actor),
        action: Set(entry.action),
        target: Set(entry.target),
        before: Set(entry.before),
        after: Set(entry.after),
        request_id: Set(entry.request_id),
        prev_hash: Set(entry.prev_hash),
        hash: Set(entry.hash),
    }
}

/// A page of a tenant's entries in chain order, starting after `after_seq`.
pub async fn page(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<audit_entry::Model>, StoreError> {
    Ok(audit_entry::Entity::find()
        .filter(audit_entry::Column::TenantId.eq(tenant_id))
        .filter(audit_entry::Column::Seq.gt(after_seq))
        .order_by_asc(audit_entry::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?)
}

/// A page of a tenant's entries, newest first, before `before_seq`; only `action` when given.
pub async fn page_desc(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    before_seq: Option<i64>,
    action: Option<&str>,
    limit: u64,
) -> Result<Vec<audit_entry::Model>, StoreError> {
    let mut q = audit_entry::Entity::find().filter(audit_entry::Column::TenantId.eq(tenant_id));
    if let Some(b) = before_seq {
        q = q.filter(audit_entry::Column::Seq.lt(b));
    }
    if let Some(a) = action {
        q = q.filter(audit_entry::Column::Action.eq(a));
    }
    Ok(q.order_by_desc(audit_entry::Column::Seq).limit(limit).all(conn).await?)
}
