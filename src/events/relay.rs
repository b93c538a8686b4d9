//! The outbox relay: delivers pending deliveries to their endpoints as Standard Webhooks, one at
//! a time per endpoint and in event order, with exponential backoff and jitter, dead-lettering
//! after `max_attempts`. Several relays (instances) can run on one PostgreSQL: deliveries are
//! leased with `FOR UPDATE SKIP LOCKED`, so each has one sender at a time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{watch, Notify};

use super::signature::sign_standard;
use super::OUTBOX_CHANNEL;
use crate::store::events::{self as rows, Claimed};
use crate::store::StoreError;

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i32,
    /// Delay after the first failure; doubled per attempt, capped at one hour, ±50 % jitter.
    pub base_backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How long a claimed delivery is reserved for its sender.
    pub lease: Duration,
    /// How often the relay looks for due retries when nothing wakes it.
    pub poll: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            max_attempts: 10,
            base_backoff: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
        }
    }
}

/// The delay before retry number `attempt` (1-based), with jitter.
pub fn backoff(settings: &RelaySettings, attempt: i32) -> Duration {
    let exp = 2f64.powi(attempt.saturating_sub(1).clamp(0, 20));
    let base = (settings.base_backoff.as_secs_f64() * exp).min(3600.0);
    Duration::from_secs_f64(base * (0.5 + rand::random::<f64>()))
}

/// Delivers everything due now, or until `stop` is set (the batch being sent is finished
/// first); returns how many deliveries were attempted.
pub async fn deliver_due(
    db: &DatabaseConnection,
    client: &reqwest::Client,
    settings: &RelaySettings,
    stop: &watch::Receiver<bool>,
) -> Result<usize, StoreError> {
    let mut attempted = 0;
    loop {
        if *stop.borrow() {
            return Ok(attempted);
        }
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(settings.lease).unwrap_or_default();
        let claimed = rows::claim_due(db, now, lease_until, 32).await?;
        if claimed.is_empty() {
            return Ok(attempted);
        }
        attempted += claimed.len();
        let sends = claimed.iter().map(|c| async move {
            match c.kind.as_str() {
                "scim" => super::downstream::deliver(client, settings, c).await,
                _ => send(client, settings, c).await,
            }
        });
        let results = futures_util::future::join_all(sends).await;
        for (c, result) in claimed.iter().zip(results) {
            match result {
                Ok(()) => rows::mark_delivered(db, c.delivery_id).await?,
                Err(error) => {
                    let attempt = c.attempts + 1;
                    let next = (attempt < settings.max_attempts).then(|| {
                        Utc::now() + chrono::Duration::from_std(backoff(settings, attempt)).unwrap_or_default()
                    });
                    tracing::warn!(delivery = c.delivery_id, endpoint = %c.endpoint_id, attempt, %error, dead = next.is_none(), "delivery failed");
                    rows::mark_failed(db, c.delivery_id, &error, next).await?;
                }
            }
        }
    }
}

/// One POST, signed per Standard Webhooks. The message id is stable across retries so the
/// receiver can drop duplicates.
async fn send(client: &reqwest::Client, settings: &RelaySettings, c: &Claimed) -> Result<(), String> {
    let msg_id = format!("sb_evt_{}", c.event_id);
    let ts = Utc::now().timestamp();
    let signature = sign_standard(&msg_id, ts, c.payload.as_bytes(), &c.secret);
    let resp = client
        .post(&c.url)
        .timeout(settings.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(c.payload.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {}", resp.status()))
    }
}

/// Runs the relay until the process stops: drains due deliveries whenever woken (in-process
/// signal or PostgreSQL NOTIFY) and at least every `settings.poll` (retries become due with time).
///
/// Setting `stop` (at shutdown) ends it after the deliveries being sent are recorded: cut off
/// mid-send, a delivery would stay leased and hold up its endpoint's queue for the lease.
pub async fn run(db: DatabaseConnection, wake: Arc<Notify>, settings: RelaySettings, mut stop: watch::Receiver<bool>) {
    let client = reqwest::Client::builder().build().unwrap_or_default();
    if db.get_database_backend() == DbBackend::Postgres {
        tokio::spawn(forward_notifications(db.clone(), wake.clone()));
    }
    loop {
        match deliver_due(&db, &client, &settings, &stop).await {
            Ok(n) if n > 0 => tracing::debug!(attempted = n, "relay round"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "relay round failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::timeout(settings.poll, wake.notified()) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Turns `NOTIFY seatbridge_outbox` from any instance into a local wake-up.
async fn forward_notifications(db: DatabaseConnection, wake: Arc<Notify>) {
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        if let Ok(mut listener) = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
            if listener.listen(OUTBOX_CHANNEL).await.is_ok() {
                while listener.recv().await.is_ok() {
                    wake.notify_one();
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let s = RelaySettings {
            base_backoff: Duration::from_secs(2),
            ..Default::default()
        };
        for attempt in 1..=5 {
            let d = backoff(&s, attempt).as_secs_f64();
            let nominal = 2.0 * 2f64.powi(attempt - 1);
            assert!(d >= nominal * 0.5 && d <= nominal * 1.5, "attempt {attempt}: {d}");
        }
        assert!(backoff(&s, 40).as_secs_f64() <= 3600.0 * 1.5);
    }
}
