//! Per-account quotas: a request rate and a cap on requests in flight, past which the
//! sandbox answers HTTP 429 with `Retry-After`, as a gateway in front of Stripe does when
//! an account sends more than it allows.
//!
//! The gateway's contract names no quota, which is why the sandbox must be able to impose
//! one: a worker that is only ever tested against a gateway without limits shares that
//! blind spot with it, and every burst past the real quota would turn server-to-server
//! charges into payments whose outcome is unknown. A quota counts what it sees, so a test
//! can prove the opposite too: with the worker's own limit below the quota, no request
//! arrives over it and no 429 is sent.
//!
//! The rate is GCRA per account (the generic cell rate algorithm: a token bucket kept as
//! one "theoretical arrival time", in integer nanoseconds): `per_second` on average, up to
//! `burst` at once after a quiet spell. It is checked when a create request arrives,
//! before authentication (a gateway throttles what reaches it, signed or not); the
//! in-flight cap counts create requests of the account being answered, latency faults
//! included. A request that is throttled uses up nothing and is not in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// An account's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Create requests a second, on average; 0 lets nothing through.
    pub per_second: u32,
    /// Requests that may arrive at once after a quiet spell (the bucket's size); at least 1.
    pub burst: u32,
    /// Create requests of the account being answered at once; `None`: no cap.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

/// What a quota saw of its account (`GET /admin/stats`, `quota`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaStats {
    /// Requests let through.
    pub admitted: u64,
    /// Requests answered 429 because the rate was exceeded.
    pub throttled_rate: u64,
    /// Requests answered 429 because too many were in flight.
    pub throttled_in_flight: u64,
    /// The most requests in flight at once.
    pub peak_in_flight: u32,
}

/// Why a request is throttled: the `Retry-After` to send, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled {
    pub retry_after_secs: u64,
}

struct Bucket {
    quota: Quota,
    /// When the bucket is full again (GCRA's theoretical arrival time), since `origin`.
    full_at: Duration,
    origin: Instant,
    in_flight: u32,
    stats: QuotaStats,
}

/// The quotas in force, by account id.
#[derive(Default)]
pub(crate) struct Quotas {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

/// A request in flight: its account's count goes down when it is dropped.
pub(crate) struct Permit {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    account_id: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(bucket) = lock(&self.buckets).get_mut(&self.account_id) {
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
    }
}

fn lock(buckets: &Mutex<HashMap<String, Bucket>>) -> MutexGuard<'_, HashMap<String, Bucket>> {
    buckets.lock().unwrap_or_else(|p| p.into_inner())
}

impl Quotas {
    pub(crate) fn new(quotas: &BTreeMap<String, Quota>) -> Self {
        let this = Quotas::default();
        for (account_id, quota) in quotas {
            this.set(account_id, *quota);
        }
        this
    }

    /// Puts `quota` in force for `account_id` (a full bucket; counts start again).
    pub(crate) fn set(&self, account_id: &str, quota: Quota) {
        let quota = Quota {
            burst: quota.burst.max(1),
            ..quota
        };
        lock(&self.buckets).insert(
            account_id.to_owned(),
            Bucket {
                quota,
                full_at: Duration::ZERO,
                origin: Instant::now(),
                in_flight: 0,
                stats: QuotaStats::default(),
            },
        );
    }

    /// Lifts every quota.
    pub(crate) fn clear(&self) {
        lock(&self.buckets).clear();
    }

    /// What each account's quota saw.
    pub(crate) fn stats(&self) -> BTreeMap<String, QuotaStats> {
        lock(&self.buckets)
            .iter()
            .map(|(id, bucket)| (id.clone(), bucket.stats))
            .collect()
    }

    /// Lets a request of `account_id` through (a permit to hold while it is answered), or
    /// throttles it. An account without a quota is always let through.
    pub(crate) fn admit(&self, account_id: &str) -> Result<Option<Permit>, Throttled> {
        self.admit_at(account_id, Instant::now())
    }

    fn admit_at(&self, account_id: &str, now: Instant) -> Result<Option<Permit>, Throttled> {
        let mut buckets = lock(&self.buckets);
        let Some(bucket) = buckets.get_mut(account_id) else {
            return Ok(None);
        };
        let Quota {
            per_second,
            burst,
            max_in_flight,
        } = bucket.quota;
        if max_in_flight.is_some_and(|cap| bucket.in_flight >= cap) {
            bucket.stats.throttled_in_flight += 1;
            return Err(Throttled {
                retry_after_secs: 1,
            });
        }
        // One request's share of a second, and how far ahead of now the bucket may be
        // booked: `burst - 1` shares (the burst's first request books the present one).
        let Some(interval) = Duration::from_secs(1).checked_div(per_second) else {
            bucket.stats.throttled_rate += 1;
            return Err(Throttled {
                retry_after_secs: 60,
            });
        };
        let tolerance = interval * (burst - 1);
        let now = now.saturating_duration_since(bucket.origin);
        let booked = bucket.full_at.max(now);
        let ahead = booked - now;
        if ahead > tolerance {
            bucket.stats.throttled_rate += 1;
            let wait = ahead - tolerance;
            return Err(Throttled {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        bucket.full_at = booked + interval;
        bucket.in_flight += 1;
        bucket.stats.admitted += 1;
        bucket.stats.peak_in_flight = bucket.stats.peak_in_flight.max(bucket.in_flight);
        Ok(Some(Permit {
            buckets: Arc::clone(&self.buckets),
            account_id: account_id.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(per_second: u32, burst: u32, max_in_flight: Option<u32>) -> Quotas {
        Quotas::new(&BTreeMap::from([(
            "acct".to_owned(),
            Quota {
                per_second,
                burst,
                max_in_flight,
            },
        )]))
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_the_rate() {
        let q = quotas(10, 3, None);
        let t0 = Instant::now();
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(q.admit_at("acct", t0).unwrap());
        }
        let throttled = q.admit_at("acct", t0).err().unwrap();
        assert_eq!(throttled.retry_after_secs, 1, "0.1 s rounds up to 1 s");
        // 100 ms later one token is back, and only one.
        let later = t0 + Duration::from_millis(100);
        assert!(q.admit_at("acct", later).is_ok());
        assert!(q.admit_at("acct", later).is_err());
        let stats = q.stats()["acct"];
        assert_eq!(stats.admitted, 4);
        assert_eq!(stats.throttled_rate, 2);
        assert_eq!(stats.peak_in_flight, 4);
    }

    #[test]
    fn the_in_flight_cap_counts_requests_until_they_are_answered() {
        let q = quotas(1000, 1000, Some(2));
        let t0 = Instant::now();
        let first = q.admit_at("acct", t0).unwrap();
        let _second = q.admit_at("acct", t0).unwrap();
        assert!(q.admit_at("acct", t0).is_err());
        drop(first);
        assert!(q.admit_at("acct", t0).is_ok());
        let stats = q.stats()["acct"];
        assert_eq!(
            (
                stats.admitted,
                stats.throttled_in_flight,
                stats.peak_in_flight
            ),
            (3, 1, 2)
        );
    }

    #[test]
    fn an_account_without_a_quota_is_never_throttled() {
        let q = quotas(0, 1, None);
        for _ in 0..100 {
            assert!(q.admit("other").unwrap().is_none());
        }
        assert!(!q.stats().contains_key("other"));
    }
}
