//! What the service holds while it runs: the database, the settings, the intake and its applier, full
//! pulls, metrics and the Events API tail. The HTTP layer hands it to every handler.

use crate::config::Settings;
use crate::db::schema::api_tokens;
use crate::db::{Database, DbError};
use crate::event_tail::EventTail;
use crate::intake::applier::{ApplierHealth, Wakeup};
use crate::intake::event_store::EventStore;
use crate::metrics::Metrics;
use crate::scim::limit::ScimLimiter;
use crate::sync_runs::SyncRunner;
use crate::workos::timestamp;
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    pub settings: Arc<Settings>,
    pub event_store: EventStore,
    pub applier_wakeup: Wakeup,
    /// Whether the applier runs (`/readyz` and `/metrics` say so).
    pub applier: ApplierHealth,
    /// Full pulls; none when `WORKOS_API_KEY` is not set.
    pub sync_runner: Option<SyncRunner>,
    /// What `/metrics` reports.
    pub metrics: Metrics,
    /// When each token's `last_used_at` was last written.
    pub token_use: TokenUse,
    /// The Events API tail of this process (verified webhooks wake it).
    pub event_tail: EventTail,
    /// Each SCIM directory's request rate.
    pub scim_limiter: ScimLimiter,
}

/// How stale a token's `last_used_at` may grow before a use writes it again.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// Past this many tokens remembered, those not written for a minute are forgotten.
const LAST_USED_REMEMBERED: usize = 4096;

/// When this process last wrote each token's `last_used_at`, so that a busy token costs one write a minute
/// rather than one a request.
#[derive(Default)]
pub struct TokenUse {
    written: Mutex<HashMap<String, Instant>>,
}

impl TokenUse {
    /// Whether a use of `token_id` at `now` is due to be written; if so, counts it as written then.
    pub(crate) fn due(&self, token_id: &str, now: Instant) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written
            .get(token_id)
            .is_some_and(|at| now.duration_since(*at) < LAST_USED_RESOLUTION)
        {
            return false;
        }
        if written.len() >= LAST_USED_REMEMBERED {
            written.retain(|_, at| now.duration_since(*at) < LAST_USED_RESOLUTION);
        }
        written.insert(token_id.to_string(), now);
        true
    }

    /// Records a use of `token_id`: when due, writes its `last_used_at` in the background, behind any
    /// webhook's acknowledgement. A failure is logged; the request goes on regardless.
    pub fn record(&self, db: &Database, token_id: &str) {
        if !self.due(token_id, Instant::now()) {
            return;
        }
        let (db, id) = (db.clone(), token_id.to_string());
        tokio::task::spawn_blocking(move || {
            let written = db.write(|conn| {
                diesel::update(api_tokens::table.find(&id))
                    .set(api_tokens::last_used_at.eq(timestamp::now()))
                    .execute(conn)
                    .map_err(DbError::from)
            });
            if let Err(error) = written {
                tracing::warn!(token = %id, error = %error, "could not record when the token was last used");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_use_is_written_at_most_once_a_minute() {
        let uses = TokenUse::default();
        let start = Instant::now();
        assert!(uses.due("tok_a", start));
        assert!(!uses.due("tok_a", start + Duration::from_secs(59)));
        // Another token has its own minute.
        assert!(uses.due("tok_b", start + Duration::from_secs(59)));
        assert!(uses.due("tok_a", start + LAST_USED_RESOLUTION));
        assert!(!uses.due(
            "tok_a",
            start + LAST_USED_RESOLUTION + Duration::from_secs(1)
        ));
    }

    #[test]
    fn tokens_not_written_for_a_minute_are_forgotten_past_the_limit() {
        let uses = TokenUse::default();
        let start = Instant::now();
        for i in 0..LAST_USED_REMEMBERED {
            assert!(uses.due(&format!("tok_{i}"), start));
        }
        assert!(uses.due("tok_new", start + LAST_USED_RESOLUTION));
        let remembered = uses.written.lock().unwrap().len();
        assert_eq!(remembered, 1);
    }
}
