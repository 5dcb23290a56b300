//! The retry decision: from a failed run to "retry at t" or "dead, because …". Pure; the
//! clock and the random source are arguments.

use std::time::Duration;

use rand::{Rng, RngExt};

use serde::{Deserialize, Serialize};

/// Randomness added to a retry delay, so that failed jobs do not retry in lockstep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// A delay drawn uniformly between zero and the computed delay.
    #[default]
    Full,
    /// Half the computed delay plus a random share of the other half.
    Equal,
    /// The computed delay exactly.
    None,
}

/// Why a failed job is not retried again: it goes to the dead-letter queue as `exhausted`
/// with this as its detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetriesSpent {
    /// `max_attempts` were made.
    #[error("gave up after {attempts} attempts")]
    Attempts {
        /// Attempts made, the failed one included.
        attempts: u32,
    },
    /// The next attempt would fall after the retry budget.
    #[error("retry budget of {} exhausted after {attempts} attempts", humantime::format_duration(*.budget))]
    Budget {
        /// The policy's `total_budget`.
        budget: Duration,
        /// Attempts made, the failed one included.
        attempts: u32,
    },
}

/// A queue's retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (the first run included) before a job is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; each later retry doubles it.
    pub base_delay: Duration,
    /// Longest computed delay.
    pub max_delay: Duration,
    /// Time after the first failure when no further retry is scheduled.
    pub total_budget: Duration,
    /// How the delay is randomized.
    pub jitter: Jitter,
}

impl RetryPolicy {
    /// The backoff before retry number `attempt` (1 = the first retry), in milliseconds.
    /// Exponential, capped at `max_delay`, computed in integers.
    pub fn backoff_ms<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> u64 {
        let base = u64::try_from(self.base_delay.as_millis()).unwrap_or(u64::MAX);
        let cap = u64::try_from(self.max_delay.as_millis()).unwrap_or(u64::MAX);
        let shift = attempt.saturating_sub(1).min(63);
        let ceiling = base.saturating_mul(1u64 << shift).min(cap);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => rng.random_range(0..=ceiling),
            Jitter::Equal => ceiling / 2 + rng.random_range(0..=ceiling - ceiling / 2),
        }
    }

    /// What happens after attempt number `attempts` (1-based) failed at `now_ms`.
    ///
    /// `first_failed_ms` is when the job first failed (this failure if it is the first);
    /// `at_least` is a handler's or gateway's minimum delay (`Retry-After`).
    pub fn after_failure<R: Rng + ?Sized>(
        &self,
        attempts: u32,
        first_failed_ms: u64,
        now_ms: u64,
        at_least: Option<Duration>,
        rng: &mut R,
    ) -> Result<u64, RetriesSpent> {
        if attempts >= self.max_attempts {
            return Err(RetriesSpent::Attempts { attempts });
        }
        let floor = at_least.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let delay = self.backoff_ms(attempts, rng).max(floor);
        let due = now_ms.saturating_add(delay);
        let budget = u64::try_from(self.total_budget.as_millis()).unwrap_or(u64::MAX);
        if due.saturating_sub(first_failed_ms) > budget {
            return Err(RetriesSpent::Budget {
                budget: self.total_budget,
                attempts,
            });
        }
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            total_budget: Duration::from_secs(10),
            jitter,
        }
    }

    #[test]
    fn exponential_and_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let p = policy(Jitter::None);
        let delays: Vec<_> = (1..=6).map(|a| p.backoff_ms(a, &mut rng)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_ms(200, &mut rng), 1000, "no overflow");
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_varies() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let p = policy(Jitter::Full);
        let draws: Vec<_> = (0..200).map(|_| p.backoff_ms(3, &mut rng)).collect();
        assert!(draws.iter().all(|&d| d <= 400));
        assert!(draws.iter().any(|&d| d < 100) && draws.iter().any(|&d| d > 300));
        let e = policy(Jitter::Equal);
        assert!((0..200).all(|_| (200..=400).contains(&e.backoff_ms(3, &mut rng))));
    }

    #[test]
    fn attempts_budget_and_retry_after() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let p = policy(Jitter::None);
        assert_eq!(p.after_failure(1, 0, 0, None, &mut rng), Ok(100));
        assert_eq!(
            p.after_failure(1, 0, 0, Some(Duration::from_secs(2)), &mut rng),
            Ok(2000)
        );
        assert_eq!(
            p.after_failure(5, 0, 0, None, &mut rng),
            Err(RetriesSpent::Attempts { attempts: 5 })
        );
        assert!(
            p.after_failure(2, 0, 9_900, None, &mut rng)
                .unwrap_err()
                .to_string()
                .contains("budget")
        );
    }
}
