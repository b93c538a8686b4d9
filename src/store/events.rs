//! Rows of the event tables: inbound "seen" records, the outbox, endpoints and deliveries.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::InsertStatement;
use sea_orm::{ConnectionTrait, DbBackend};

use super::sql::SqlBuilder;
use super::{now, StoreError, Writer};

/// Records an inbound event id; `Ok(false)` when it was seen before.
pub async fn record_inbound(
    conn: &impl ConnectionTrait,
    provider: &str,
    event_id: &str,
    tenant_id: Option<&str>,
    outcome: &str,
    detail: &str,
) -> Result<bool, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("INSERT INTO inbound_events (provider, event_id, tenant_id, received_at, outcome, detail) VALUES (")
        .bind(provider.to_string())
        .push(", ")
        .bind(event_id.to_string())
        .push(", ")
        .bind(tenant_id.map(str::to_string))
        .push(", ")
        .bind(now())
        .push(", ")
        .bind(outcome.to_string())
        .push(", ")
        .bind(detail.to_string())
        .push(") ON CONFLICT (provider, event_id) DO NOTHING");
    Ok(conn.execute_raw(b.build()).await?.rows_affected() == 1)
}

/// The outcome recorded for an inbound event, if it was seen.
pub async fn inbound_outcome(
    conn: &impl ConnectionTrait,
    provider: &str,
    event_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("SELECT outcome FROM inbound_events WHERE provider = ")
        .bind(provider.to_string())
        .push(" AND event_id = ")
        .bind(event_id.to_string());
    let row = conn.query_one_raw(b.build()).await?;
    Ok(row.map(|r| r.try_get_by_index::<String>(0)).transpose()?)
}

/// A delivery claimed by a relay, with what it needs to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub event_id: i64,
    pub attempts: i32,
    pub endpoint_id: String,
    pub kind: String,
    pub url: String,
    pub secret: String,
    pub event_type: String,
    pub payload: String,
}

/// Leases the next due delivery of each endpoint (its oldest pending one: deliveries to an
/// endpoint go out in event order) until `lease_until`. On PostgreSQL rows locked by another
/// relay are skipped, so each delivery has one sender at a time across instances.
pub async fn claim_due(
    conn: &impl ConnectionTrait,
    at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let backend = conn.get_database_backend();
    let mut b = SqlBuilder::new(backend);
    b.push("UPDATE deliveries SET lease_until = ")
        .bind(lease_until)
        // Only the head (oldest pending delivery) of each endpoint is eligible: that keeps each
        // endpoint's events in order while different endpoints proceed in parallel.
        .push(
            " WHERE id IN (SELECT d.id FROM deliveries d WHERE d.id IN \
             (SELECT MIN(h.id) FROM deliveries h WHERE h.status = 'pending' GROUP BY h.endpoint_id) \
             AND d.next_attempt_at <= ",
        )
        .bind(at)
        .push(" AND (d.lease_until IS NULL OR d.lease_until < ")
        .bind(at)
        .push(") ORDER BY d.id")
        .limit(limit, 0);
    if backend == DbBackend::Postgres {
        b.push(" FOR UPDATE SKIP LOCKED");
    }
    b.push(") RETURNING id");
    let ids: Vec<i64> = conn
        .query_all_raw(b.build())
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index::<i64>(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = SqlBuilder::new(backend);
    q.push(
        "SELECT d.id, d.event_id, d.attempts, e.id, e.kind, e.url, e.secret, o.event_type, o.payload \
         FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN outbox_events o ON o.id = d.event_id \
         WHERE d.id IN ",
    )
    .bind_list(ids)
    .push(" ORDER BY d.id");
    let mut out = Vec::new();
    for r in conn.query_all_raw(q.build()).await? {
        out.push(Claimed {
            delivery_id: r.try_get_by_index(0)?,
            event_id: r.try_get_by_index(1)?,
            attempts: r.try_get_by_index(2)?,
            endpoint_id: r.try_get_by_index(3)?,
            kind: r.try_get_by_index(4)?,
            url: r.try_get_by_index(5)?,
            secret: r.try_get_by_index(6)?,
            event_type: r.try_get_by_index(7)?,
            payload: r.try_get_by_index(8)?,
        });
    }
    Ok(out)
}

/// Marks a delivery done.
pub async fn mark_delivered(conn: &impl ConnectionTrait, delivery_id: i64) -> Result<(), StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, lease_until = NULL, last_error = NULL, delivered_at = ")
        .bind(now())
        .push(" WHERE id = ")
        .bind(delivery_id);
    conn.execute_raw(b.build()).await?;
    Ok(())
}

/// Records a failed attempt: retry at `next_attempt_at`, or dead-letter it.
pub async fn mark_failed(
    conn: &impl ConnectionTrait,
    delivery_id: i64,
    error: &str,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("UPDATE deliveries SET attempts = attempts + 1, lease_until = NULL, last_error = ")
        .bind(error.to_string());
    match next_attempt_at {
        Some(t) => b.push(", next_attempt_at = ").bind(t),
        None => b.push(", status = 'dead'"),
    };
    b.push(" WHERE id = ").bind(delivery_id);
    conn.execute_raw(b.build()).await?;
    Ok(())
}

/// Puts dead-lettered (or any non-delivered) deliveries back in line: by id, or all dead ones of a tenant.
pub async fn redrive(
    conn: &impl ConnectionTrait,
    delivery_id: Option<i64>,
    tenant_id: Option<&str>,
) -> Result<u64, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("UPDATE deliveries SET status = 'pending', attempts = 0, lease_until = NULL, next_attempt_at = ")
        .bind(now())
        .push(" WHERE status <> 'delivered'");
    if let Some(id) = delivery_id {
        b.push(" AND id = ").bind(id);
    } else {
        b.push(" AND status = 'dead'");
    }
    if let Some(t) = tenant_id {
        b.push(" AND tenant_id = ").bind(t.to_string());
    }
    Ok(conn.execute_raw(b.build()).await?.rows_affected())
}

/// One delivery as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: i64,
    pub event_type: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Deliveries, newest first, optionally of one tenant and status.
pub async fn list_deliveries(
    conn: &impl ConnectionTrait,
    tenant_id: Option<&str>,
    status: Option<&str>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push(
        "SELECT d.id, d.event_id, o.event_type, d.tenant_id, d.endpoint_id, d.status, d.attempts, d.last_error, d.created_at \
         FROM deliveries d JOIN outbox_events o ON o.id = d.event_id WHERE 1 = 1",
    );
    if let Some(t) = tenant_id {
        b.push(" AND d.tenant_id = ").bind(t.to_string());
    }
    if let Some(s) = status {
        b.push(" AND d.status = ").bind(s.to_string());
    }
    if let Some(id) = before_id {
        b.push(" AND d.id < ").bind(id);
    }
    b.push(" ORDER BY d.id DESC").limit(limit, 0);
    let mut out = Vec::new();
    for r in conn.query_all_raw(b.build()).await? {
        out.push(DeliveryRow {
            id: r.try_get_by_index(0)?,
            event_id: r.try_get_by_index(1)?,
            event_type: r.try_get_by_index(2)?,
            tenant_id: r.try_get_by_index(3)?,
            endpoint_id: r.try_get_by_index(4)?,
            status: r.try_get_by_index(5)?,
            attempts: r.try_get_by_index(6)?,
            last_error: r.try_get_by_index(7)?,
            created_at: r.try_get_by_index(8)?,
        });
    }
    Ok(out)
}

/// Deliveries still to make: how many, and when the oldest was queued.
pub async fn outbox_backlog(
    conn: &impl ConnectionTrait,
) -> Result<(i64, Option<chrono::DateTime<chrono::Utc>>), StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = ")
        .bind("pending".to_string());
    match conn.query_one_raw(b.build()).await? {
        Some(r) => Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)),
        None => Ok((0, None)),
    }
}

/// Registers an endpoint for a tenant. `event_types` is a JSON array of types, or `*`.
pub async fn add_endpoint(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    kind: &str,
    url: &str,
    secret: &str,
    event_types: &str,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push(
        "INSERT INTO webhook_endpoints (id, tenant_id, kind, url, secret, event_types, active, created_at) VALUES (",
    )
    .bind(id.clone())
    .push(", ")
    .bind(tenant_id.to_string())
    .push(", ")
    .bind(kind.to_string())
    .push(", ")
    .bind(url.to_string())
    .push(", ")
    .bind(secret.to_string())
    .push(", ")
    .bind(event_types.to_string())
    .push(", ")
    .bind(true)
    .push(", ")
    .bind(now())
    .push(")");
    conn.execute_raw(b.build()).await?;
    Ok(id)
}

/// The billing lookup tables: (table, key column, value column). Names are constants of ours.
type LookupTable = (&'static str, &'static str, &'static str);
const BILLING_PLANS: LookupTable = ("billing_plans", "external_id", "plan_name");
const BILLING_CUSTOMERS: LookupTable = ("billing_customers", "customer_id", "tenant_id");

async fn put_lookup(
    conn: &impl ConnectionTrait,
    (table, key, value): LookupTable,
    provider: &str,
    k: &str,
    v: &str,
) -> Result<(), StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push(&format!("INSERT INTO {table} (provider, {key}, {value}) VALUES ("))
        .bind(provider.to_string())
        .push(", ")
        .bind(k.to_string())
        .push(", ")
        .bind(v.to_string())
        .push(&format!(
            ") ON CONFLICT (provider, {key}) DO UPDATE SET {value} = excluded.{value}"
        ));
    conn.execute_raw(b.build()).await?;
    Ok(())
}

async fn get_lookup(
    conn: &impl ConnectionTrait,
    (table, key, value): LookupTable,
    provider: &str,
    k: &str,
) -> Result<Option<String>, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push(&format!("SELECT {value} FROM {table} WHERE provider = "))
        .bind(provider.to_string())
        .push(&format!(" AND {key} = "))
        .bind(k.to_string());
    Ok(conn
        .query_one_raw(b.build())
        .await?
        .map(|r| r.try_get_by_index::<String>(0))
        .transpose()?)
}

/// Maps a billing price/product id to a plan.
pub async fn put_billing_plan(
    conn: &impl ConnectionTrait,
    provider: &str,
    external_id: &str,
    plan: &str,
) -> Result<(), StoreError> {
    put_lookup(conn, BILLING_PLANS, provider, external_id, plan).await
}

/// The plan a billing price/product id maps to.
pub async fn billing_plan(
    conn: &impl ConnectionTrait,
    provider: &str,
    external_id: &str,
) -> Result<Option<String>, StoreError> {
    get_lookup(conn, BILLING_PLANS, provider, external_id).await
}

/// Remembers which tenant a billing customer is.
pub async fn put_billing_customer(
    conn: &impl ConnectionTrait,
    provider: &str,
    customer_id: &str,
    tenant_id: &str,
) -> Result<(), StoreError> {
    put_lookup(conn, BILLING_CUSTOMERS, provider, customer_id, tenant_id).await
}

/// The tenant of a billing customer.
pub async fn billing_customer(
    conn: &impl ConnectionTrait,
    provider: &str,
    customer_id: &str,
) -> Result<Option<String>, StoreError> {
    get_lookup(conn, BILLING_CUSTOMERS, provider, customer_id).await
}

/// Appends many events of one tenant (in order) with their deliveries, in batches; returns how
/// many deliveries were created (none when the tenant has no endpoint that wants them). `also`,
/// other inserts of the same transaction (the written user, an audit entry), run in the first
/// batch's statement on PostgreSQL, in order before it on SQLite.
pub async fn append_many(
    conn: &impl Writer,
    tenant_id: &str,
    events: &[(String, String)],
    mut also: Vec<InsertStatement>,
) -> Result<u64, StoreError> {
    let backend = conn.backend();
    let t = now();
    let mut deliveries = 0;
    if backend != DbBackend::Postgres || events.is_empty() {
        for stmt in also.drain(..) {
            let mut b = SqlBuilder::new(backend);
            b.query(&stmt);
            conn.write(b.build()).await?;
        }
    }
    for chunk in events.chunks(200) {
        let mut b = SqlBuilder::new(backend);
        // On PostgreSQL the events and their deliveries are one statement (data-modifying
        // CTEs), with `also`: round trips saved on every provisioning write, made while the
        // tenant's lock is held. SQLite has no such CTE: the ids come back and a second
        // statement follows.
        if backend == DbBackend::Postgres {
            b.push("WITH ");
            for (i, stmt) in also.drain(..).enumerate() {
                b.push("also")
                    .push(&i.to_string())
                    .push(" AS (")
                    .query(&stmt)
                    .push("), ");
            }
            b.push("o AS (");
        }
        b.push("INSERT INTO outbox_events (tenant_id, event_type, payload, created_at) VALUES ");
        for (i, (event_type, payload)) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push("(")
                .bind(tenant_id.to_string())
                .push(", ")
                .bind(event_type.clone())
                .push(", ")
                .bind(payload.clone())
                .push(", ")
                .bind(t)
                .push(")");
        }
        if backend == DbBackend::Postgres {
            b.push(" RETURNING id, tenant_id, event_type) ");
            push_deliveries_from(&mut b, "o", t, |_| {});
            deliveries += conn.write(b.build()).await?;
            continue;
        }
        b.push(" RETURNING id");
        let ids: Vec<i64> = conn
            .rows(b.build())
            .await?
            .iter()
            .map(|r| r.get::<i64>(0))
            .collect::<Result<_, _>>()?;
        let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else {
            continue;
        };
        let mut d = SqlBuilder::new(backend);
        push_deliveries_from(&mut d, "outbox_events", t, |d| {
            d.push(" AND o.tenant_id = ")
                .bind(tenant_id.to_string())
                .push(" AND o.id BETWEEN ")
                .bind(*first)
                .push(" AND ")
                .bind(*last);
        });
        deliveries += conn.write(d.build()).await?;
    }
    Ok(deliveries)
}

/// `INSERT INTO deliveries … SELECT` one pending delivery per event of `events` (aliased `o`)
/// and active endpoint of its tenant that wants its type, in event then endpoint order;
/// `narrow` may add `AND` conditions on the events.
fn push_deliveries_from(
    b: &mut SqlBuilder,
    events: &str,
    t: chrono::DateTime<chrono::Utc>,
    narrow: impl FnOnce(&mut SqlBuilder),
) {
    b.push(
        "INSERT INTO deliveries (event_id, endpoint_id, tenant_id, status, attempts, next_attempt_at, created_at) \
         SELECT o.id, e.id, e.tenant_id, 'pending', 0, ",
    )
    .bind(t)
    .push(", ")
    .bind(t)
    .push(" FROM ")
    .push(events)
    .push(" o JOIN webhook_endpoints e ON e.tenant_id = o.tenant_id WHERE e.active = ")
    .bind(true)
    .push(" AND (e.event_types = '*' OR e.event_types LIKE '%\"' || o.event_type || '\"%')");
    narrow(b);
    b.push(" ORDER BY o.id, e.id");
}

/// An endpoint as operators see it (never with its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointRow {
    pub id: String,
    pub kind: String,
    pub url: String,
    pub event_types: String,
    pub active: bool,
}

/// A tenant's endpoints.
pub async fn list_endpoints(conn: &impl ConnectionTrait, tenant_id: &str) -> Result<Vec<EndpointRow>, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push("SELECT id, kind, url, event_types, active FROM webhook_endpoints WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" ORDER BY created_at, id");
    let mut out = Vec::new();
    for r in conn.query_all_raw(b.build()).await? {
        out.push(EndpointRow {
            id: r.try_get_by_index(0)?,
            kind: r.try_get_by_index(1)?,
            url: r.try_get_by_index(2)?,
            event_types: r.try_get_by_index(3)?,
            active: r.try_get_by_index(4)?,
        });
    }
    Ok(out)
}
