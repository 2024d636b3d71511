//! Per-system outbound budget, shared by the dispatcher (which stops claiming for a
//! paused system) and the connectors (which take one token per HTTP request, so a write
//! that needs several calls spends several tokens). Configured as N requests per second, enforced so that no
//! one-second window ever holds more than N call starts: a bucket of N tokens where each
//! token comes back one window after it was spent. (A bucket refilled at N/s with depth
//! N would allow 2N in a window that straddles a burst.) What the API itself says — its
//! remaining budget at zero, a Retry-After — pauses the system until the reset; other
//! systems have their own limiter and keep flowing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::outbound::{ErrorCode, OutboundError};

/// Added to the window so that a call started just inside our window still lands
/// outside the API's, whatever the scheduling and network jitter between the two clocks.
/// 50 ms was not enough on a loaded 2-core node: 21 calls started 1050 ms apart arrived
/// within 988 ms (the outage test, run beside its siblings). Costs at most an eighth of
/// the configured rate.
const CLOCK_MARGIN: Duration = Duration::from_millis(150);

#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    starts: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// Why a call may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The local budget is spent: a token returns at this instant.
    Until(Instant),
    /// The API said stop: the system is paused until this instant.
    Paused(Instant),
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        RateLimiter {
            limit: per_second.max(1) as usize,
            window: Duration::from_secs(1) + CLOCK_MARGIN,
            starts: VecDeque::new(),
            paused_until: None,
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.starts.pop_front();
        }
    }

    /// Takes a token, or says how long to wait.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Wait> {
        if let Some(until) = self.paused(now) {
            return Err(Wait::Paused(until));
        }
        self.expire(now);
        if self.starts.len() < self.limit {
            self.starts.push_back(now);
            return Ok(());
        }
        match self.starts.front() {
            Some(oldest) => Err(Wait::Until(*oldest + self.window)),
            None => Ok(()),
        }
    }

    /// The system's queue stops until `until` (a later pause wins over an earlier one).
    pub fn pause_until(&mut self, until: Instant) {
        if self.paused_until.map_or(true, |p| p < until) {
            self.paused_until = Some(until);
        }
    }

    pub fn paused(&mut self, now: Instant) -> Option<Instant> {
        match self.paused_until {
            Some(until) if until > now => Some(until),
            _ => {
                self.paused_until = None;
                None
            }
        }
    }

    /// Tokens left in the current window.
    pub fn remaining(&mut self, now: Instant) -> i64 {
        self.expire(now);
        (self.limit - self.starts.len()) as i64
    }
}

/// One system's limiter, shared. Closed when the dispatcher stops: calls still waiting
/// for a token give up at once (their rows go back to the queue), calls already made
/// are left to finish.
#[derive(Debug, Clone)]
pub struct Budget(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    limiter: Mutex<RateLimiter>,
    closed: AtomicBool,
    closing: tokio::sync::Notify,
}

impl Budget {
    pub fn new(per_second: u32) -> Self {
        Budget(Arc::new(Shared {
            limiter: Mutex::new(RateLimiter::new(per_second)),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
        }))
    }

    pub fn lock(&self) -> MutexGuard<'_, RateLimiter> {
        // A poisoned limiter still holds valid timestamps.
        self.0.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No call starts after this; waiting callers are answered `SHUTTING_DOWN`.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.closing.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }

    /// Waits for a token. A paused system answers a retryable `RATE_LIMIT` at once,
    /// carrying how long the pause lasts: never a tight loop against a closed door.
    pub async fn acquire(&self) -> Result<(), OutboundError> {
        loop {
            // Registered before the check, so a close between the two still wakes us.
            let closing = self.0.closing.notified();
            if self.is_closed() {
                return Err(OutboundError::new(
                    ErrorCode::ShuttingDown,
                    "statsync is stopping: the call was not started",
                ));
            }
            let wait = match self.lock().try_acquire(Instant::now()) {
                Ok(()) => return Ok(()),
                Err(Wait::Paused(until)) => {
                    let mut e = OutboundError::new(
                        ErrorCode::RateLimit,
                        "paused until the API's rate-limit reset",
                    );
                    e.retry_after = Some(until.saturating_duration_since(Instant::now()));
                    return Err(e);
                }
                Err(Wait::Until(at)) => at,
            };
            tokio::select! {
                _ = actix::clock::sleep(wait.saturating_duration_since(Instant::now())) => {}
                _ = closing => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_n_starts_in_any_window() {
        let mut l = RateLimiter::new(5);
        let t0 = Instant::now();
        let mut now = t0;
        let mut starts = Vec::new();
        // A greedy caller that starts whenever it is allowed, for 5 simulated seconds.
        while now < t0 + Duration::from_secs(5) {
            match l.try_acquire(now) {
                Ok(()) => starts.push(now),
                Err(Wait::Until(at)) => now = at,
                Err(Wait::Paused(_)) => unreachable!(),
            }
        }
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|t| t.duration_since(*s) < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 5,
                "{in_window} starts within a second of start {i}"
            );
        }
        assert!(
            starts.len() >= 20,
            "the budget is used, not starved: {}",
            starts.len()
        );
    }

    #[test]
    fn a_pause_holds_until_its_end() {
        let mut l = RateLimiter::new(100);
        let now = Instant::now();
        l.pause_until(now + Duration::from_secs(2));
        l.pause_until(now + Duration::from_secs(1));
        assert_eq!(
            l.try_acquire(now),
            Err(Wait::Paused(now + Duration::from_secs(2)))
        );
        assert_eq!(l.try_acquire(now + Duration::from_secs(2)), Ok(()));
        assert_eq!(l.remaining(now + Duration::from_secs(2)), 99);
    }

    #[actix::test]
    async fn closing_answers_callers_waiting_for_a_token() {
        let budget = Budget::new(1);
        budget.acquire().await.expect("the first token is free");
        let waiting = {
            let budget = budget.clone();
            actix::spawn(async move { budget.acquire().await })
        };
        tokio::task::yield_now().await;
        budget.close();
        let answer = tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("answered at once, not after the window")
            .expect("task");
        assert_eq!(answer.unwrap_err().code, ErrorCode::ShuttingDown);
    }
}
