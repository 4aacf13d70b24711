//! Request pacing of one broker client, shared by every concurrent call: a rate per key (`governor`'s keyed
//! limiter, one request at a time so requests are spread evenly), and holds: every request of a key waits
//! for as long as the broker asked (`Retry-After`), whichever listing it belongs to.
//!
//! The holds are written here: `governor` spaces requests at a rate but cannot hold a key until a time the
//! broker names, and the listings of one directory (its users, its groups' members) run at once, so the
//! wait one of them was told of must stop the others too.

use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spreads requests for each key to at most `rate` per second, and holds a key while the broker asks.
#[derive(Debug)]
pub struct RateLimiter {
    /// None: no limit.
    rate: Option<DefaultKeyedRateLimiter<String>>,
    /// Until when the broker asked each key to wait.
    held_until: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` requests per second per key; a rate that is not a positive finite
    /// number means no limit (only holds).
    pub fn new(rate: f64) -> Self {
        let quota = (rate.is_finite() && rate > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / rate).ok())
            .flatten()
            .and_then(Quota::with_period);
        Self {
            rate: quota.map(DefaultKeyedRateLimiter::keyed),
            held_until: Mutex::new(HashMap::new()),
        }
    }

    /// Holds every request for `key` until `until` (a `Retry-After`), whatever the rate: those already
    /// waiting for their turn too. A shorter hold never shortens a longer one.
    pub fn hold(&self, key: &str, until: Instant) {
        let mut held = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        held.retain(|_, end| *end > now);
        let end = held.entry(key.to_owned()).or_insert(until);
        *end = (*end).max(until);
    }

    /// Until when `key` is held, if it still is.
    pub fn held(&self, key: &str) -> Option<Instant> {
        let held = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        held.get(key).copied().filter(|end| *end > Instant::now())
    }

    /// Waits until a request for `key` may go: any hold is waited out first, then the key's turn at its
    /// rate; a hold placed meanwhile is waited out too.
    pub async fn acquire(&self, key: &str) {
        let key = key.to_owned();
        loop {
            if let Some(until) = self.held(&key) {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            if let Some(rate) = &self.rate {
                rate.until_key_ready(&key).await;
            }
            if self.held(&key).is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long `acquire(key)` took.
    async fn wait(limiter: &RateLimiter, key: &str) -> Duration {
        let started = Instant::now();
        limiter.acquire(key).await;
        started.elapsed()
    }

    #[tokio::test]
    async fn a_hold_delays_every_request_of_its_key_alone() {
        let limiter = RateLimiter::new(0.0);
        assert_eq!(limiter.held("a"), None, "no rate and no hold: at once");
        let until = Instant::now() + Duration::from_millis(300);
        limiter.hold("a", until);
        limiter.hold("a", Instant::now());
        assert_eq!(
            limiter.held("a"),
            Some(until),
            "a shorter hold does not shorten a longer one"
        );
        assert_eq!(limiter.held("b"), None, "another key is not held");
        let (first, second) = tokio::join!(wait(&limiter, "a"), wait(&limiter, "a"));
        for waited in [first, second] {
            assert!(waited >= Duration::from_millis(290), "{waited:?}");
        }
        assert_eq!(limiter.held("a"), None, "a hold that has passed is gone");
    }

    #[tokio::test]
    async fn a_hold_comes_before_the_rate() {
        let limiter = RateLimiter::new(4.0);
        limiter.hold("d", Instant::now() + Duration::from_millis(400));
        let started = Instant::now();
        limiter.acquire("d").await;
        let first = started.elapsed();
        limiter.acquire("d").await;
        let second = started.elapsed();
        assert!(first >= Duration::from_millis(390), "{first:?}");
        // The rate spaces the requests that follow the hold: the next one a quarter second later.
        assert!(second >= first + Duration::from_millis(240), "{second:?}");
    }

    #[tokio::test]
    async fn requests_of_a_key_are_spaced_at_its_rate_and_other_keys_are_not() {
        let limiter = RateLimiter::new(2.0);
        let started = Instant::now();
        limiter.acquire("x").await;
        limiter.acquire("x").await;
        // The first at once, the second half a second later.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(490), "{elapsed:?}");
        // Sharing x's budget, y would wait another half second.
        let other = wait(&limiter, "y").await;
        assert!(other < Duration::from_millis(400), "{other:?}");
    }
}
