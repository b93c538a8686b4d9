//! Filtered, sorted, paginated listing shared by users and groups.

use std::sync::LazyLock;
use std::time::Duration;

use sea_orm::{EntityTrait, FromQueryResult, TryIntoModel};

use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{ResourceTypeDef, GROUP_SCHEMA, USER_SCHEMA};

use super::entities::{group, user};
use super::filter_sql::{FilterLowering, FilterSqlError};
use super::page_cursors::PageCursors;
use super::point_reads::Reader;
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

/// A listed row's id: it breaks ties in every order, and a walk continues after it.
pub trait RowId {
    fn row_id(&self) -> &str;
}

impl RowId for user::Model {
    fn row_id(&self) -> &str {
        &self.id
    }
}

impl RowId for group::Model {
    fn row_id(&self) -> &str {
        &self.id
    }
}

/// Where walks through id-ordered lists continue, for this process (see [`PageCursors`]).
/// Ten minutes is far longer than an IdP waits between two pages of an import; a walk holds one
/// record, so 10,000 records (about 2 MB) are as many imports under way at once.
static CURSORS: LazyLock<PageCursors> = LazyLock::new(|| PageCursors::new(Duration::from_secs(600), 10_000));

/// The list a request walks, for [`CURSORS`]; `None` for a sorted list, which pages by `OFFSET`.
fn walk_key(table: &str, tenant_id: &str, q: &ListQuery) -> Option<String> {
    if q.sort_by.is_some() {
        return None;
    }
    let dir = if q.descending { "desc" } else { "asc" };
    let filter = q.filter.as_ref().map(ToString::to_string).unwrap_or_default();
    // The unit separator cannot occur in a table name or tenant id, so keys never run together.
    Some(format!("{table}\u{1f}{tenant_id}\u{1f}{dir}\u{1f}{filter}"))
}

/// True when `filter` is `key eq "…"` on one of `keys` (attributes unique within a tenant, each
/// with its own index): a list that reads at most one row, fit for [`super::PointReads`].
pub fn reads_at_most_one(filter: &Filter, keys: &[&str]) -> bool {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(_),
        } => {
            // Only the core schema's attribute: an extension's `userName` would be a JSON path.
            let core = path
                .urn
                .as_deref()
                .is_none_or(|urn| urn.eq_ignore_ascii_case(USER_SCHEMA) || urn.eq_ignore_ascii_case(GROUP_SCHEMA));
            core && path.sub_attr.is_none() && keys.iter().any(|k| path.name.eq_ignore_ascii_case(k))
        }
        _ => false,
    }
}

/// One listed row, with the value of the caller's extra column (see [`list_page`]).
pub type Listed<M> = super::point_reads::Row<M>;

/// Fetches one page of `table` rows of a tenant matching the query, and the total.
///
/// - `known_total`, when the caller has it (users without a filter, from the counters),
///   replaces the count. Otherwise a page that ends the list tells the total itself (an IdP's
///   `userName eq` lookup is one statement); only a full page, or an empty one past the start,
///   runs a `COUNT`.
/// - `extra`, an SQL expression over the row `r`, is read in the same statement, beside each
///   row (a user's groups: one statement instead of one more per page).
/// - An id-ordered page whose offset is where a page served before ended starts after that
///   page's last id rather than skipping `offset` rows (see [`PageCursors`]).
/// - A page that reads at most `limit` rows along the `(tenant_id, id)` index (no filter, no
///   sort, and the first page or one continuing a walk) is bounded work, and runs on `bounded`
///   (point reads: on SQLite, without sqlx's thread hop and its copy of every row). Every other
///   page, and every count, runs on `conn`: skipping rows or filtering may scan the tenant.
#[allow(clippy::too_many_arguments)]
pub async fn list_page<E>(
    conn: &impl Reader,
    bounded: &impl Reader,
    table: &str,
    rt: &ResourceTypeDef,
    tenant_id: &str,
    q: &ListQuery,
    known_total: Option<u64>,
    extra: Option<&str>,
) -> Result<(u64, Vec<Listed<E::Model>>), ListError>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync + RowId,
    E::ActiveModel: TryIntoModel<E::Model> + Send,
{
    let backend = conn.backend();
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

    if q.limit == 0 || known_total.is_some_and(|total| q.offset >= total) {
        let total = match known_total {
            Some(total) => total,
            None => count_matching(conn, table, &where_clause).await?,
        };
        return Ok((total, Vec::new()));
    }

    // The key is built, and the shared map locked, only where a walk can be under way: no
    // record starts at offset 0, and only a page that leaves rows after it records one. An
    // IdP's `userName eq` lookup (first page, short) does neither.
    let mut walk = None;
    let after = match q.offset {
        0 => None,
        offset => {
            walk = walk_key(table, tenant_id, q);
            let after = walk.as_deref().and_then(|w| CURSORS.take(w, offset));
            let start = if after.is_some() { "keyset" } else { "offset" };
            metrics::counter!(crate::metrics::LIST_PAGES, "start" => start).increment(1);
            after
        }
    };

    let dir = if q.descending { "DESC" } else { "ASC" };
    let order_by = |b: &mut SqlBuilder| {
        b.push(" ORDER BY ");
        if let Some(expr) = &order {
            // NULLs sort last in either direction (RFC 7644 §3.4.2.3), then ids keep pages stable.
            b.push("(")
                .push(expr)
                .push(") IS NULL, ")
                .push(expr)
                .push(" ")
                .push(dir)
                .push(", ");
        }
        // Ids are UUIDv7, time-ordered: creation order is the stable default.
        b.push("r.id ").push(dir);
    };
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let skip = if after.is_some() { 0 } else { q.offset };

    let mut page = SqlBuilder::new(backend);
    page.push("SELECT r.*");
    if let Some(expr) = extra {
        page.push(", ").push(expr).push(" AS extra");
    }
    page.push(" FROM ").push(table).push(" r");
    if skip > 0 {
        // PostgreSQL computes every selected column of each row that OFFSET skips, the user's
        // groups (`extra`) included: a last page of 100,000 users took over 2 s. The rows are
        // skipped by id alone, and only the page's own are read in full.
        page.push(" JOIN (SELECT r.id FROM ").push(table).push(" r");
        where_clause(&mut page)?;
        order_by(&mut page);
        page.limit(limit, i64::try_from(skip).unwrap_or(i64::MAX));
        page.push(") skipped ON skipped.id = r.id");
        order_by(&mut page);
    } else {
        where_clause(&mut page)?;
        if let Some(id) = &after {
            page.push(if q.descending { " AND r.id < " } else { " AND r.id > " })
                .bind(id.clone());
        }
        order_by(&mut page);
        page.limit(limit, 0);
    }
    let rows = if reads_at_most_a_page(q, after.is_some()) {
        bounded.models::<E>(page.build(), extra.is_some()).await
    } else {
        conn.models::<E>(page.build(), extra.is_some()).await
    }
    .map_err(StoreError::from)?;

    let served = rows.len() as u64;
    let total = match known_total {
        Some(total) => total,
        // By position, a short page ends the list: rows before it plus its own.
        None if after.is_none() && served < q.limit && (served > 0 || q.offset == 0) => q.offset + served,
        None => count_matching(conn, table, &where_clause).await?,
    };
    if let Some((last, _)) = rows.last() {
        let next = q.offset + served;
        if next < total {
            // Built here for a first page; a page past the first built it above.
            if let Some(w) = walk.or_else(|| walk_key(table, tenant_id, q)) {
                CURSORS.remember(&w, next, last.row_id());
            }
        }
    }
    Ok((total, rows))
}

/// `SELECT COUNT(*)` of the rows a list request matches.
async fn count_matching(
    conn: &impl Reader,
    table: &str,
    where_clause: &impl Fn(&mut SqlBuilder) -> Result<(), FilterSqlError>,
) -> Result<u64, ListError> {
    let mut count = SqlBuilder::new(conn.backend());
    count.push("SELECT COUNT(*) AS n FROM ").push(table).push(" r");
    where_clause(&mut count)?;
    let total = conn.count(count.build()).await.map_err(StoreError::from)?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// Whether a page reads no more than its own rows, along the `(tenant_id, id)` index: no
/// filter, no sort, and no rows to skip (the first page, or one continuing a walk).
fn reads_at_most_a_page(q: &ListQuery, continues_walk: bool) -> bool {
    q.filter.is_none() && q.sort_by.is_none() && (continues_walk || q.offset == 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;

    #[test]
    fn only_pages_without_filter_sort_or_skipped_rows_are_bounded() {
        let first = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        assert!(reads_at_most_a_page(&first, false));
        let deep = ListQuery {
            offset: 5_000,
            ..first.clone()
        };
        assert!(!reads_at_most_a_page(&deep, false), "OFFSET skips rows");
        assert!(reads_at_most_a_page(&deep, true), "a walk starts after the last id");
        let filtered = ListQuery {
            filter: Some(parse_filter(r#"displayName co "a""#).unwrap()),
            ..first.clone()
        };
        assert!(!reads_at_most_a_page(&filtered, false));
        let sorted = ListQuery {
            sort_by: Some(crate::scim::filter::AttrPath {
                urn: None,
                name: "userName".into(),
                sub_attr: None,
            }),
            ..first.clone()
        };
        assert!(!reads_at_most_a_page(&sorted, true));
    }

    #[test]
    fn only_an_equality_on_a_unique_core_attribute_reads_at_most_one_row() {
        let keys = &["userName", "id"];
        for point in [
            r#"userName eq "alice""#,
            r#"USERNAME eq "alice""#,
            r#"id eq "0190""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice""#,
        ] {
            assert!(reads_at_most_one(&parse_filter(point).unwrap(), keys), "{point}");
        }
        for scan in [
            r#"userName co "a""#,
            r#"userName ne "alice""#,
            r#"externalId eq "x""#,
            r#"userName eq "a" or userName eq "b""#,
            r#"emails[value eq "a@example.com"]"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "a""#,
            "userName pr",
        ] {
            assert!(!reads_at_most_one(&parse_filter(scan).unwrap(), keys), "{scan}");
        }
    }
}
