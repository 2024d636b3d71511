//! When to try a failed outbound write again: capped exponential backoff with full
//! jitter (a random wait in `[0, min(cap, base * 2^(attempt-1))]`, so replicas retrying
//! together spread out), never sooner than the API asked (Retry-After, a rate-limit
//! reset), and never past `sync.max_retries` attempts. Pure: no clock, no I/O.

use std::time::Duration;

use rand::Rng;

use crate::systems::outbound::OutboundError;

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    RetryAfter(Duration),
    DeadLetter,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// `attempt` is the number of the attempt that failed, from 1.
    pub fn next(&self, attempt: u32, error: &OutboundError, rng: &mut impl Rng) -> Next {
        if !error.retryable() || attempt >= self.max_attempts {
            return Next::DeadLetter;
        }
        let jittered = self.full_jitter(attempt, rng);
        Next::RetryAfter(match error.retry_after {
            Some(told) => told.max(jittered),
            None => jittered,
        })
    }

    pub fn full_jitter(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.cap)
            .as_millis() as u64;
        Duration::from_millis(rng.gen_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::outbound::ErrorCode;
    use rand::SeedableRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        }
    }

    #[test]
    fn waits_grow_within_the_cap_and_are_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let p = policy();
        for attempt in 1..=10 {
            let ceiling = (100u64 << (attempt - 1).min(30)).min(1000);
            let waits: Vec<u64> = (0..200)
                .map(|_| p.full_jitter(attempt, &mut rng).as_millis() as u64)
                .collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempt}");
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(distinct.len() > 10, "jittered, attempt {attempt}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_attempts_are_bounded() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let p = policy();
        let mut limited = OutboundError::new(ErrorCode::RateLimit, "slow down");
        limited.retry_after = Some(Duration::from_secs(30));
        assert_eq!(
            p.next(1, &limited, &mut rng),
            Next::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(p.next(5, &limited, &mut rng), Next::DeadLetter);
        let fatal = OutboundError::new(ErrorCode::Unauthorized, "bad credentials");
        assert_eq!(p.next(1, &fatal, &mut rng), Next::DeadLetter);
    }
}
