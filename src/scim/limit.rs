//! Each SCIM directory's request rate: a keyed limiter (`governor`) allowing `rate` requests a second per
//! directory, with a second's worth as a burst. A directory over its rate is told when to come back
//! (`Retry-After`); other directories are not slowed.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::time::Duration;

/// The rate of every SCIM directory.
pub struct ScimLimiter {
    /// None: no limit.
    rate: Option<DefaultKeyedRateLimiter<String>>,
}

impl ScimLimiter {
    /// `rate` requests a second per directory; 0 is no limit.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: NonZeroU32::new(rate)
                .map(|rate| DefaultKeyedRateLimiter::keyed(Quota::per_second(rate))),
        }
    }

    /// Counts a request of `directory`: refused with how long to wait when over its rate.
    pub fn check(&self, directory: &str) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.check_key(&directory.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))?;
        // Directories idle for a while are forgotten, so the map does not grow with every directory seen.
        if rate.len() > 10_000 {
            rate.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_over_its_rate_waits_and_others_do_not() {
        let limiter = ScimLimiter::new(5);
        for _ in 0..5 {
            assert_eq!(limiter.check("directory_a"), Ok(()));
        }
        let wait = limiter.check("directory_a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert_eq!(limiter.check("directory_b"), Ok(()));
        let unlimited = ScimLimiter::new(0);
        for _ in 0..1_000 {
            assert_eq!(unlimited.check("directory_a"), Ok(()));
        }
    }
}
