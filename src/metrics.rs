//! Prometheus metrics at `/metrics`: requests by route and status, latency histograms, seat
//! usage and limits per tenant and pool, refusals by reason, outbox backlog and lag, and
//! sweeper runs. The `metrics` facade records; `metrics-exporter-prometheus` renders.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::{web, HttpRequest, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;

use crate::app::AppState;

pub const HTTP_REQUESTS: &str = "seatbridge_http_requests_total";
pub const HTTP_SECONDS: &str = "seatbridge_http_request_duration_seconds";
pub const SEATS_IN_USE: &str = "seatbridge_seats_in_use";
pub const SEATS_LIMIT: &str = "seatbridge_seats_limit";
pub const SEATS_WAITING: &str = "seatbridge_seats_waiting";
pub const REFUSALS: &str = "seatbridge_refusals_total";
pub const OUTBOX_PENDING: &str = "seatbridge_outbox_pending_deliveries";
pub const OUTBOX_LAG: &str = "seatbridge_outbox_oldest_pending_seconds";
pub const SWEEPS: &str = "seatbridge_sweeper_runs_total";
pub const RATE_LIMITED: &str = "seatbridge_scim_rate_limited_total";
pub const ADMIN_RATE_LIMITED: &str = "seatbridge_admin_rate_limited_total";
pub const LIST_PAGES: &str = "seatbridge_list_pages_total";
pub const SQLITE_WRITES: &str = "seatbridge_sqlite_writes_total";
pub const SQLITE_COMMITS: &str = "seatbridge_sqlite_commits_total";
pub const SQLITE_CHECKPOINTS: &str = "seatbridge_sqlite_checkpoints_total";
pub const SQLITE_WRITE_HOLDS: &str = "seatbridge_sqlite_write_hold_seconds";
pub const WRITE_BATCHES: &str = "seatbridge_write_batches_total";
pub const BATCHED_WRITES: &str = "seatbridge_batched_writes_total";
pub const INDEXED_USERS: &str = "seatbridge_check_index_users";
pub const INDEX_DROPS: &str = "seatbridge_check_index_drops_total";

/// Latency buckets, in seconds: SCIM calls are expected in the low milliseconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The process-wide recorder, installed on first use. A process has one, shared by every
/// server it runs (tests run several).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_SECONDS.into()), &BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(SQLITE_WRITE_HOLDS.into()), &BUCKETS))
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often recorded histogram samples are folded into their buckets (see [`run_upkeep`]).
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Folds the histogram samples recorded since the last pass into their buckets, every `every`,
/// for as long as the server runs. The exporter keeps each latency sample until an upkeep pass
/// or a scrape: without this loop, an instance that nobody scrapes grew by 8 bytes and more per
/// request without bound (+16 MiB in the 10 s of the benchmark's entitlement-check scenario).
pub async fn run_upkeep(every: std::time::Duration) {
    let Some(handle) = handle() else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status");
    metrics::describe_histogram!(HTTP_SECONDS, metrics::Unit::Seconds, "HTTP request latency by route");
    metrics::describe_gauge!(SEATS_IN_USE, "Users holding a seat, by tenant and pool");
    metrics::describe_gauge!(SEATS_LIMIT, "Seat limit by tenant and pool (absent: unlimited)");
    metrics::describe_gauge!(SEATS_WAITING, "Active users waiting for a seat, by tenant and pool");
    metrics::describe_counter!(REFUSALS, "Provisioning requests refused by the license, by code");
    metrics::describe_gauge!(
        INDEXED_USERS,
        "Users the entitlement check holds in memory, by tenant (0: checked by reads)"
    );
    metrics::describe_counter!(
        INDEX_DROPS,
        "Check indexes dropped (their tenant then checked by reads until rebuilt), by reason"
    );
    metrics::describe_gauge!(OUTBOX_PENDING, "Deliveries not yet delivered or dead");
    metrics::describe_gauge!(OUTBOX_LAG, "Age of the oldest pending delivery");
    metrics::describe_counter!(SWEEPS, "License sweeper runs, by outcome");
    metrics::describe_counter!(
        LIST_PAGES,
        "List pages past the first served, by how the database found their start: after the previous \
         page's last id (keyset) or by skipping rows (offset)"
    );
    metrics::describe_counter!(
        SQLITE_WRITES,
        "Provisioning writes committed on SQLite (divided by the commits: writes per group commit)"
    );
    metrics::describe_counter!(SQLITE_COMMITS, "Commits of the SQLite writer connection");
    metrics::describe_counter!(
        SQLITE_CHECKPOINTS,
        "Background WAL checkpoints (they copy committed pages into the database file)"
    );
    metrics::describe_histogram!(
        SQLITE_WRITE_HOLDS,
        metrics::Unit::Seconds,
        "Writes held while the checkpointer copies the WAL between them, so that it restarts \
         (past 4,000 WAL pages; each hold is two fsyncs)"
    );
    metrics::describe_counter!(
        WRITE_BATCHES,
        "Batches of queued SCIM writes (creates, PUTs, PATCHes and DELETEs of users and groups) on PostgreSQL, by outcome \
         (committed; single: one write, run alone; rolled_back: its writes then run one by one)"
    );
    metrics::describe_counter!(
        BATCHED_WRITES,
        "User writes carried by those batches (divided by the batches: writes per batch)"
    );
    metrics::describe_counter!(
        RATE_LIMITED,
        "SCIM requests refused with 429 by the per-token rate limit"
    );
    metrics::describe_counter!(
        ADMIN_RATE_LIMITED,
        "Admin requests refused with 429, by scope (api: per principal, login: per client IP)"
    );
}

/// A request's method as a label: the standard ones by name, anything else as `other`, so that
/// a client cannot add time series by inventing methods.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// Series of handled requests a thread keeps handles to before it starts over (routes are
/// patterns and methods a fixed set, so this bounds only odd status codes).
const MAX_CACHED_REQUEST_SERIES: usize = 512;

type RequestSeries = HashMap<(String, &'static str, u16), (metrics::Counter, metrics::Histogram)>;

thread_local! {
    /// Handles to the request counter and latency histogram by route, method and status.
    /// Looking a series up in the recorder hashes and allocates its labels: 3 % of the
    /// instructions of a `GET /Users/{id}` (callgrind).
    static REQUEST_SERIES: RefCell<RequestSeries> = RefCell::new(HashMap::new());
}

/// Records one handled request.
pub fn request(route: String, method: &str, status: u16, seconds: f64) {
    let method = method_label(method);
    REQUEST_SERIES.with(|cell| {
        let mut series = cell.borrow_mut();
        let key = (route, method, status);
        if let Some((count, latency)) = series.get(&key) {
            count.increment(1);
            latency.record(seconds);
            return;
        }
        if series.len() >= MAX_CACHED_REQUEST_SERIES {
            series.clear();
        }
        let route = key.0.clone();
        let count = metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string());
        let latency = metrics::histogram!(HTTP_SECONDS, "route" => route, "method" => method);
        count.increment(1);
        latency.record(seconds);
        series.insert(key, (count, latency));
    });
}

/// Publishes a tenant's pools.
pub fn seats(tenant: &str, pools: &[crate::store::admin::PoolSnapshot]) {
    for p in pools {
        let labels = [("tenant", tenant.to_string()), ("pool", p.seat_type.clone())];
        metrics::gauge!(SEATS_IN_USE, &labels).set(p.in_use as f64);
        metrics::gauge!(SEATS_WAITING, &labels).set(p.waiting as f64);
        if let Some(limit) = p.limit {
            metrics::gauge!(SEATS_LIMIT, &labels).set(limit as f64);
        }
    }
}

/// GET /metrics (Prometheus text format). With `SEATBRIDGE_METRICS_TOKEN` set it needs that
/// bearer token: the labels name tenants.
pub async fn render(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(expected) = state.config.metrics_token.as_deref() {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .body("send Authorization: Bearer $SEATBRIDGE_METRICS_TOKEN\n");
        }
    }
    let Some(handle) = handle() else {
        return HttpResponse::ServiceUnavailable().body("metrics are not available in this process\n");
    };
    match crate::store::events::outbox_backlog(&state.db).await {
        Ok((pending, oldest)) => {
            metrics::gauge!(OUTBOX_PENDING).set(pending as f64);
            let lag = oldest.map_or(0.0, |t| {
                (crate::store::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            metrics::gauge!(OUTBOX_LAG).set(lag);
        }
        Err(e) => tracing::warn!(error = %e, "outbox backlog not measured"),
    }
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(
            method_label("get"),
            "other",
            "methods are case-sensitive (RFC 9110 §9.1)"
        );
    }
}
