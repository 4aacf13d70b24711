//! Trouble the dev broker can make on purpose: failing list requests, a per-directory rate limit, and
//! webhook deliveries that are dropped, duplicated, delayed or reordered.

use super::objects::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The fault settings in force; all can be changed while the broker runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Share of list requests answered 429 `"Ratelimited"` (every other one with `Retry-After: 1`).
    pub rate_429: f64,
    /// Share of list requests answered 500.
    pub rate_500: f64,
    /// Requests per second allowed on `/directory_users` for each directory; beyond it, 429.
    pub rate_limit: Option<u32>,
    /// Share of events never delivered.
    pub drop: f64,
    /// Share of events delivered twice.
    pub duplicate: f64,
    /// Each delivery waits a random time up to this many milliseconds.
    pub delay_ms: u64,
    /// Deliver events shuffled within windows of `reorder_window`.
    pub reorder: bool,
    pub reorder_window: usize,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rate_429: 0.0,
            rate_500: 0.0,
            rate_limit: None,
            drop: 0.0,
            duplicate: 0.0,
            delay_ms: 0,
            reorder: false,
            reorder_window: 8,
        }
    }
}

/// A change to the fault settings (`POST /_dev/faults`); absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    pub rate_429: Option<f64>,
    pub rate_500: Option<f64>,
    /// 0 turns the rate limit off.
    pub rate_limit: Option<u32>,
    pub drop: Option<f64>,
    pub duplicate: Option<f64>,
    pub delay_ms: Option<u64>,
    pub reorder: Option<bool>,
    pub reorder_window: Option<usize>,
}

/// Checks that a share is between 0 and 1.
pub fn probability(field: &'static str, value: f64) -> Result<f64, (&'static str, String)> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err((field, format!("{value} is not between 0 and 1")))
    }
}

impl Faults {
    /// Applies an update, or names the first field that is out of range.
    pub fn apply(&mut self, update: &FaultsUpdate) -> Result<(), (&'static str, String)> {
        let mut next = self.clone();
        if let Some(p) = update.rate_429 {
            next.rate_429 = probability("rate_429", p)?;
        }
        if let Some(p) = update.rate_500 {
            next.rate_500 = probability("rate_500", p)?;
        }
        if let Some(r) = update.rate_limit {
            next.rate_limit = (r > 0).then_some(r);
        }
        if let Some(p) = update.drop {
            next.drop = probability("drop", p)?;
        }
        if let Some(p) = update.duplicate {
            next.duplicate = probability("duplicate", p)?;
        }
        if let Some(ms) = update.delay_ms {
            next.delay_ms = ms;
        }
        if let Some(reorder) = update.reorder {
            next.reorder = reorder;
        }
        if let Some(window) = update.reorder_window {
            if window < 2 {
                return Err(("reorder_window", "a window holds at least 2 events".into()));
            }
            next.reorder_window = window;
        }
        *self = next;
        Ok(())
    }
}

/// Requests seen in the last second, per directory, by the broker's clock (unix milliseconds).
#[derive(Default)]
pub struct RateWindows {
    seen: Mutex<HashMap<String, VecDeque<Millis>>>,
}

impl RateWindows {
    /// Counts a request for `directory` at `now`; false when `limit` requests were already made in the
    /// second before it.
    pub fn admit(&self, directory: &str, limit: u32, now: Millis) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let window = seen.entry(directory.to_string()).or_default();
        while window.front().is_some_and(|t| now - *t >= 1000) {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        true
    }
}
