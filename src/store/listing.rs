//! Filtered, sorted, paginated listing shared by users and groups.

use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult};

use crate::scim::filter::{AttrPath, Filter};
use crate::scim::schema::ResourceTypeDef;

use super::filter_sql::{FilterLowering, FilterSqlError};
use super::sql::SqlBuilder;
use super::StoreError;

/// What a list request asks the store for (already validated by the protocol layer).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// 0-based offset (SCIM `startIndex` - 1).
    pub offset: u64,
    /// Page size; 0 asks only for the total.
    pub limit: u64,
}

/// Why a list query failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Filter(#[from] FilterSqlError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts and fetches one page of `table` rows of a tenant matching the query. `known_total`,
/// when the caller has it (users without a filter, from the counters), replaces the count.
pub async fn list_page<E>(
    conn: &impl ConnectionTrait,
    table: &str,
    rt: &ResourceTypeDef,
    tenant_id: &str,
    q: &ListQuery,
    known_total: Option<u64>,
) -> Result<(u64, Vec<E::Model>), ListError>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync,
{
    let backend = conn.get_database_backend();
    let lowering = FilterLowering::new(rt, backend).for_tenant(tenant_id);
    let order = match &q.sort_by {
        Some(path) => Some(lowering.sort_expr(path)?),
        None => None,
    };
    let where_clause = |b: &mut SqlBuilder| -> Result<(), FilterSqlError> {
        b.push(" WHERE r.tenant_id = ").bind(tenant_id.to_string());
        if let Some(f) = &q.filter {
            b.push(" AND (");
            lowering.push_filter(b, f)?;
            b.push(")");
        }
        Ok(())
    };

    let total = match known_total {
        Some(total) => total,
        None => count_matching(conn, table, &where_clause).await?,
    };
    if q.limit == 0 || q.offset >= total {
        return Ok((total, Vec::new()));
    }

    let mut page = SqlBuilder::new(backend);
    page.push("SELECT r.* FROM ").push(table).push(" r");
    where_clause(&mut page)?;
    let dir = if q.descending { "DESC" } else { "ASC" };
    page.push(" ORDER BY ");
    if let Some(expr) = &order {
        // NULLs sort last in either direction (RFC 7644 §3.4.2.3), then ids keep pages stable.
        page.push("(")
            .push(expr)
            .push(") IS NULL, ")
            .push(expr)
            .push(" ")
            .push(dir)
            .push(", ");
    }
    // Ids are UUIDv7, time-ordered: creation order is the stable default.
    page.push("r.id ").push(dir);
    page.limit(
        i64::try_from(q.limit).unwrap_or(i64::MAX),
        i64::try_from(q.offset).unwrap_or(i64::MAX),
    );
    let rows = E::find()
        .from_raw_sql(page.build())
        .all(conn)
        .await
        .map_err(StoreError::from)?;
    Ok((total, rows))
}

/// `SELECT COUNT(*)` of the rows a list request matches.
async fn count_matching(
    conn: &impl ConnectionTrait,
    table: &str,
    where_clause: &impl Fn(&mut SqlBuilder) -> Result<(), FilterSqlError>,
) -> Result<u64, ListError> {
    let mut count = SqlBuilder::new(conn.get_database_backend());
    count.push("SELECT COUNT(*) AS n FROM ").push(table).push(" r");
    where_clause(&mut count)?;
    let total = conn
        .query_one_raw(count.build())
        .await
        .map_err(StoreError::from)?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()
        .map_err(StoreError::from)?
        .unwrap_or(0);
    Ok(u64::try_from(total).unwrap_or(0))
}
