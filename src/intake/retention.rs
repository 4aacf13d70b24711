//! Retention: deliveries Rollcall is done with (applied, duplicate, skipped, ignored, and bodies that were
//! not events, dismissed or not) are deleted once older than `ROLLCALL_EVENT_RETENTION`, a small batch at
//! a time in the background. Failed deliveries stay until an operator retries them; the audit log is
//! never pruned. The change feed is pruned by the same setting, in the same task
//! ([`crate::changes::retention`]).

use crate::db::schema::webhook_events;
use crate::db::{Database, DbError};
use crate::domain::EventStatus;
use crate::on_backend;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use std::time::Duration;

/// The statuses of deliveries that are pruned once old enough.
pub const PRUNED: [EventStatus; 6] = [
    EventStatus::Applied,
    EventStatus::Duplicate,
    EventStatus::Skipped,
    EventStatus::Ignored,
    EventStatus::Invalid,
    EventStatus::Dismissed,
];

/// Deliveries deleted in one transaction: short enough that intake and applying never wait long.
const BATCH: usize = 500;

/// How often the pruning looks for old deliveries.
const EVERY: Duration = Duration::from_secs(60);

/// Deletes up to one batch of the deliveries done with and received before `cutoff`, oldest first;
/// returns how many it deleted.
pub fn prune_batch(db: &Database, cutoff: Timestamp) -> Result<usize, DbError> {
    let statuses: Vec<&str> = PRUNED.iter().map(|s| s.as_str()).collect();
    db.write(|conn| {
        let old: Vec<i64> = on_backend!(conn, |c| webhook_events::table
            .filter(webhook_events::received_at.lt(cutoff))
            .filter(webhook_events::status.eq_any(&statuses))
            .order(webhook_events::id)
            .select(webhook_events::id)
            .limit(BATCH as i64)
            .load(c))?;
        if old.is_empty() {
            return Ok(0);
        }
        let deleted = on_backend!(conn, |c| diesel::delete(
            webhook_events::table.filter(webhook_events::id.eq_any(&old))
        )
        .execute(c))?;
        Ok::<_, DbError>(deleted)
    })
}

/// What one pruning deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: usize,
    pub changes: usize,
}

/// Deletes every delivery done with, and every change in the feed, older than `retention`, a batch at a
/// time.
pub fn prune(db: &Database, retention: Duration) -> Result<Pruned, DbError> {
    let Ok(retention) = chrono::TimeDelta::from_std(retention) else {
        return Ok(Pruned::default());
    };
    let Some(cutoff) = timestamp::now().checked_sub_signed(retention) else {
        return Ok(Pruned::default());
    };
    Ok(Pruned {
        deliveries: in_batches(BATCH, || prune_batch(db, cutoff))?,
        changes: in_batches(crate::changes::retention::BATCH as usize, || {
            crate::changes::retention::prune_batch(db, cutoff)
        })?,
    })
}

/// Runs `batch` until it deletes less than a whole batch; returns how many it deleted.
fn in_batches(
    size: usize,
    mut batch: impl FnMut() -> Result<usize, DbError>,
) -> Result<usize, DbError> {
    let mut total = 0;
    loop {
        let deleted = batch()?;
        total += deleted;
        if deleted < size {
            return Ok(total);
        }
    }
}

/// The work that prunes every minute, for the service to run in the background until it stops; none when
/// `retention` is zero (everything is kept).
pub fn pruning(db: Database, retention: Duration) -> Option<impl std::future::Future<Output = ()>> {
    if retention.is_zero() {
        tracing::info!("stored deliveries are kept for ever: ROLLCALL_EVENT_RETENTION is 0");
        return None;
    }
    Some(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let db = db.clone();
            match tokio::task::spawn_blocking(move || prune(&db, retention)).await {
                Ok(Ok(Pruned {
                    deliveries: 0,
                    changes: 0,
                })) => {}
                Ok(Ok(Pruned {
                    deliveries,
                    changes,
                })) => tracing::info!(
                    deliveries,
                    changes,
                    "old deliveries and changes pruned (ROLLCALL_EVENT_RETENTION)"
                ),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "pruning old deliveries and changes failed; trying again in a minute")
                }
                Err(error) => tracing::warn!(%error, "the pruning task did not finish"),
            }
        }
    })
}
