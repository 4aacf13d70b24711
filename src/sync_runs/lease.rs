//! Which process holds a run: a lease on the run's row, renewed while the process lives, instead of a
//! database session held for the whole pull (a pull waiting for the broker holds no connection). One
//! running run per directory across every instance (a unique index); a run whose lease ran out was left
//! by a stopped process and is ended `failed` ("interrupted") by whoever finds it.

use crate::db::schema::sync_runs;
use crate::db::{Database, DbConnection, DbError};
use crate::domain::{RunPhase, RunStatus};
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use std::time::Duration;

/// How long a lease lasts without being renewed.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often a process renews the leases of its runs (and ends the runs stopped processes left).
pub const RENEW_EVERY: Duration = Duration::from_secs(15);

/// What an interrupted run's error says.
const INTERRUPTED: &str = "interrupted: the process running it stopped before it ended";

/// When a lease taken or renewed now runs out.
pub fn lease_end() -> Timestamp {
    timestamp::now() + chrono::TimeDelta::from_std(LEASE).unwrap_or_default()
}

/// Why a run could not start pulling.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("another Rollcall instance is pulling this directory")]
    Taken,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Marks the run running, ending first the runs of its directory whose lease ran out; refused while
/// another run of the directory is running on a live lease.
pub fn claim(
    db: &Database,
    run_id: &str,
    directory_id: &str,
    started_at: Timestamp,
) -> Result<(), ClaimError> {
    let claimed = db.write(|conn| {
        end_expired(conn, Some(directory_id), Some(run_id))?;
        diesel::update(sync_runs::table.find(run_id))
            .set((
                sync_runs::status.eq(RunStatus::Running),
                sync_runs::started_at.eq(Some(started_at)),
                sync_runs::lease_until.eq(Some(lease_end())),
            ))
            .execute(conn)
            .map_err(DbError::from)
    });
    match claimed {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique_violation() => Err(ClaimError::Taken),
        Err(e) => Err(e.into()),
    }
}

/// Renews the leases of these runs (those this process holds).
pub fn renew(db: &Database, run_ids: &[String]) -> Result<usize, DbError> {
    if run_ids.is_empty() {
        return Ok(0);
    }
    db.write(|conn| {
        diesel::update(
            sync_runs::table
                .filter(sync_runs::id.eq_any(run_ids))
                .filter(sync_runs::status.eq_any([RunStatus::Queued, RunStatus::Running])),
        )
        .set(sync_runs::lease_until.eq(Some(lease_end())))
        .execute(conn)
        .map_err(DbError::from)
    })
}

/// Ends `failed` ("interrupted") the queued and running runs whose lease ran out (or that have none, left
/// by an older version), of one directory or all, but `keep`; returns how many.
fn end_expired(
    conn: &mut DbConnection,
    directory_id: Option<&str>,
    keep: Option<&str>,
) -> QueryResult<Vec<(String, String)>> {
    let now = timestamp::now();
    let mut expired = sync_runs::table
        .filter(sync_runs::status.eq_any([RunStatus::Queued, RunStatus::Running]))
        .filter(
            sync_runs::lease_until
                .is_null()
                .or(sync_runs::lease_until.lt(now)),
        )
        .select((sync_runs::id, sync_runs::directory_id))
        .into_boxed();
    if let Some(directory_id) = directory_id {
        expired = expired.filter(sync_runs::directory_id.eq(directory_id.to_string()));
    }
    if let Some(keep) = keep {
        expired = expired.filter(sync_runs::id.ne(keep.to_string()));
    }
    let expired: Vec<(String, String)> = expired.load(conn)?;
    let ids: Vec<&str> = expired.iter().map(|(id, _)| id.as_str()).collect();
    end_interrupted(conn, &ids)?;
    Ok(expired)
}

/// Ends these runs `failed` ("interrupted") if they are still queued or running.
fn end_interrupted(conn: &mut DbConnection, ids: &[&str]) -> QueryResult<usize> {
    diesel::update(
        sync_runs::table
            .filter(sync_runs::id.eq_any(ids))
            .filter(sync_runs::status.eq_any([RunStatus::Queued, RunStatus::Running])),
    )
    .set((
        sync_runs::status.eq(RunStatus::Failed),
        sync_runs::error.eq(INTERRUPTED),
        sync_runs::phase.eq(RunPhase::Done),
        sync_runs::finished_at.eq(Some(timestamp::now())),
    ))
    .execute(conn)
}

/// Ends the runs stopped processes left `queued` or `running`, as `failed` ("interrupted"), so they no
/// longer look in progress and their directories can be pulled again; returns how many. At start-up on
/// SQLite (one `serve` per file) that is every unfinished run; otherwise those whose lease ran out.
pub fn end_interrupted_runs(db: &Database, starting_up: bool) -> Result<usize, DbError> {
    let every = starting_up && db.write_budget().is_some();
    let ended = db.write(|conn| {
        if every {
            let unfinished: Vec<(String, String)> = sync_runs::table
                .filter(sync_runs::status.eq_any([RunStatus::Queued, RunStatus::Running]))
                .select((sync_runs::id, sync_runs::directory_id))
                .load(conn)?;
            let ids: Vec<&str> = unfinished.iter().map(|(id, _)| id.as_str()).collect();
            end_interrupted(conn, &ids)?;
            return Ok::<_, DbError>(unfinished);
        }
        Ok(end_expired(conn, None, None)?)
    })?;
    for (run, directory) in &ended {
        tracing::warn!(%run, %directory, "a sync run left unfinished by a stopped process was ended `failed` (interrupted)");
    }
    Ok(ended.len())
}
