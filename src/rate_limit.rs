//! Keyed request budgets (GCRA token buckets from `governor`), shared by the SCIM API (keyed by
//! token), the admin API (keyed by principal) and the admin login (keyed by client IP). Each
//! caller maps [`OverBudget`] to its own error shape and metric; every shape answers 429 with
//! `Retry-After: 1`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::RateLimit;

/// How many checks pass between two sweeps of idle keys. Keys come from clients (IP addresses,
/// token subjects), so without sweeping the map would grow with every address ever seen.
const SWEEP_EVERY: u64 = 4096;

/// A request over its key's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {per_second} requests a second (bursts of {burst}); retry after the Retry-After seconds")]
pub struct OverBudget {
    pub per_second: u32,
    pub burst: u32,
}

/// Per-key budgets of `limit.per_second` requests a second with bursts of `limit.burst`.
pub struct KeyedLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    limit: RateLimit,
    checks: AtomicU64,
}

impl KeyedLimiter {
    /// Budgets of `limit.per_second` (at least 1, so `Retry-After: 1` always suffices) with
    /// bursts of `limit.burst` (at least the rate).
    pub fn new(limit: RateLimit) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(per_second);
        KeyedLimiter {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_second(per_second).allow_burst(burst)),
            limit,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request from `key`'s budget.
    pub fn check(&self, key: &str) -> Result<(), OverBudget> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Keys whose bucket is full again hold no information; dropping them is exact.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        match self.limiter.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(_) => Err(OverBudget {
                per_second: self.limit.per_second,
                burst: self.limit.burst,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_is_refused_and_others_keep_their_budget() {
        let l = KeyedLimiter::new(RateLimit {
            per_second: 1,
            burst: 2,
        });
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let over = l.check("a").unwrap_err();
        assert_eq!(
            over,
            OverBudget {
                per_second: 1,
                burst: 2
            }
        );
        assert!(over.to_string().contains("bursts of 2"));
        assert!(l.check("b").is_ok(), "budgets are per key");
    }

    #[test]
    fn a_zero_rate_still_admits_one_request_a_second() {
        let l = KeyedLimiter::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
    }

    #[test]
    fn idle_keys_are_swept() {
        let l = KeyedLimiter::new(RateLimit {
            per_second: 1_000_000,
            burst: 1,
        });
        for i in 0..SWEEP_EVERY {
            assert!(l.check(&format!("ip:{i}")).is_ok());
        }
        // Refilled within a microsecond each; the next sweep drops all but the newest few.
        std::thread::sleep(std::time::Duration::from_millis(5));
        for _ in 0..SWEEP_EVERY {
            let _ = l.check("steady");
        }
        assert!(l.limiter.len() < 10, "{} keys left", l.limiter.len());
    }
}
