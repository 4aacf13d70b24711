//! A per-key rate limiter (a token bucket holding one token, so requests are spread evenly), shared by
//! every concurrent call of one client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spreads requests for each key to at most `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    /// None: no limit.
    interval: Option<Duration>,
    next_free: Mutex<HashMap<String, Instant>>,
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
        }
    }

    /// Reserves the next slot for `key` and returns when it starts (now or later).
    pub fn reserve(&self, key: &str) -> Instant {
        let now = Instant::now();
        let Some(interval) = self.interval else {
            return now;
        };
        let mut next_free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match next_free.get(key) {
            Some(&free) if free > now => free,
            _ => now,
        };
        next_free.insert(key.to_owned(), slot + interval);
        slot
    }

    /// Waits for the next slot for `key`.
    pub async fn acquire(&self, key: &str) {
        let slot = self.reserve(key);
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
    }
}
