//! The one retry schedule of failed calls: capped exponential back-off with full jitter.

use std::time::Duration;

use crate::config::OutboxConfig;

/// Full jitter: the n-th retry waits a random time up to `min(cap, base * 2^(n-1))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's wait.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::from_config(&OutboxConfig::default())
    }
}

impl Backoff {
    /// The schedule of `[outbox] retry_base_ms` and `retry_cap_ms`, which pulls follow too.
    pub fn from_config(config: &OutboxConfig) -> Self {
        Self {
            base: Duration::from_millis(config.retry_base_ms),
            cap: Duration::from_millis(config.retry_cap_ms),
        }
    }

    /// The longest wait before retry number `attempt` (1 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doubling = 1u32 << attempt.saturating_sub(1).min(31);
        self.base.saturating_mul(doubling).min(self.cap)
    }

    /// A random wait before retry number `attempt`, from zero up to its ceiling.
    pub fn delay(&self, attempt: u32, rng: &mut impl rand::Rng) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_stays_under_the_doubling_ceiling_and_the_cap() {
        let backoff = Backoff::from_config(&OutboxConfig {
            retry_base_ms: 100,
            retry_cap_ms: 1_000,
            ..OutboxConfig::default()
        });
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        for attempt in 1..40 {
            let ceiling = (100u64 << (attempt - 1).min(32)).min(1_000);
            for _ in 0..50 {
                let delay = backoff.delay(attempt, &mut rng);
                assert!(delay <= Duration::from_millis(ceiling));
            }
        }
    }

    #[test]
    fn the_first_retry_waits_up_to_the_base_and_each_next_up_to_twice_as_long() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        };
        assert_eq!(backoff.ceiling(1), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(2), Duration::from_secs(2));
        assert_eq!(backoff.ceiling(9), Duration::from_secs(256));
        assert_eq!(backoff.ceiling(10), Duration::from_secs(300));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(300));
    }
}
