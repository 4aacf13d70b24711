//! A per-key rate limiter (a token bucket holding one token, so requests are spread evenly), shared by
//! every concurrent call of one client, which also holds every request of a key for as long as the broker
//! asked (`Retry-After`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spreads requests for each key to at most `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    /// None: no limit.
    interval: Option<Duration>,
    next_free: Mutex<HashMap<String, Instant>>,
    /// Until when the broker asked each key to wait.
    held_until: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` requests per second per key; a rate that is not a positive finite
    /// number means no limit.
    pub fn new(rate: f64) -> Self {
        let interval =
            (rate.is_finite() && rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        Self {
            interval,
            next_free: Mutex::new(HashMap::new()),
            held_until: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves the next slot for `key` and returns when it starts (now or later).
    pub fn reserve(&self, key: &str) -> Instant {
        let now = Instant::now();
        let mut next_free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match next_free.get(key) {
            Some(&free) if free > now => free,
            _ => now,
        };
        match self.interval {
            Some(interval) => {
                next_free.insert(key.to_owned(), slot + interval);
            }
            // No rate: only a hold delays; one that has passed is forgotten.
            None if slot == now => {
                next_free.remove(key);
            }
            None => {}
        }
        slot
    }

    /// Holds every request for `key` until `until` (a `Retry-After`), whatever the rate: those reserved
    /// already and waiting for their slot too.
    pub fn hold(&self, key: &str, until: Instant) {
        let mut next_free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let free = next_free.entry(key.to_owned()).or_insert(until);
        *free = (*free).max(until);
        let mut held = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, end| *end > Instant::now());
        let end = held.entry(key.to_owned()).or_insert(until);
        *end = (*end).max(until);
    }

    /// Until when `key` is held, if it still is.
    fn held(&self, key: &str) -> Option<Instant> {
        let held = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        held.get(key).copied().filter(|end| *end > Instant::now())
    }

    /// Waits for the next slot for `key`; a hold placed while waiting is waited out too.
    pub async fn acquire(&self, key: &str) {
        loop {
            let slot = self.reserve(key);
            if slot > Instant::now() {
                tokio::time::sleep_until(slot.into()).await;
            }
            if self.held(key).is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_delays_every_request_of_its_key_alone() {
        let limiter = RateLimiter::new(0.0);
        let now = Instant::now();
        assert!(limiter.reserve("a") <= Instant::now(), "no rate: at once");
        let until = now + Duration::from_secs(1);
        limiter.hold("a", until);
        assert_eq!(limiter.reserve("a"), until);
        assert_eq!(
            limiter.reserve("a"),
            until,
            "every request waits, none is spaced"
        );
        assert!(limiter.reserve("b") < until, "another key is not held");
        limiter.hold("a", now);
        assert_eq!(
            limiter.reserve("a"),
            until,
            "a shorter hold does not shorten a longer one"
        );
    }

    #[test]
    fn a_hold_comes_before_the_rate() {
        let limiter = RateLimiter::new(4.0);
        let until = Instant::now() + Duration::from_secs(2);
        limiter.hold("d", until);
        let first = limiter.reserve("d");
        let second = limiter.reserve("d");
        assert_eq!(first, until);
        assert_eq!(second, until + Duration::from_millis(250));
    }
}
