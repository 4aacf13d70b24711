//! When full pulls start on their own (rule 16): every `RESYNC_INTERVAL`, after a `dsync.activated` is
//! applied, and when a workspace turns directory sync on. A directory already being pulled is skipped.

use super::{StartError, SyncRunner};
use crate::db::models::WorkspaceRow;
use crate::db::schema::{directories, sync_runs, workspaces};
use crate::db::{DbConnection, DbError};
use crate::directory_sync::workspace::check_qualifies;
use crate::domain::{RunTrigger, SCIM_DIRECTORY_TYPE};
use diesel::prelude::*;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;

/// When the directory's latest automatic run was queued, on any instance.
pub fn last_automatic_run(
    conn: &mut DbConnection,
    directory_id: &str,
) -> QueryResult<Option<crate::workos::timestamp::Timestamp>> {
    sync_runs::table
        .filter(sync_runs::directory_id.eq(directory_id))
        .filter(sync_runs::trigger.eq_any(RunTrigger::AUTOMATIC))
        .select(diesel::dsl::max(sync_runs::created_at))
        .first(conn)
}

/// Known, non-deleted directories of the broker (a SCIM directory of Rollcall's own is pushed to, never
/// pulled) whose workspace takes directory changes (sync on, plan growth or
/// above), in id order.
pub fn scheduled_directories(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    let known: Vec<(String, String)> = directories::table
        .filter(directories::deleted_at.is_null())
        .filter(directories::directory_type.ne(SCIM_DIRECTORY_TYPE))
        .select((directories::id, directories::organization_id))
        .order(directories::id)
        .load(conn)?;
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let qualifying: HashSet<String> = workspaces::table
        .filter(workspaces::directory_sync_enabled.eq(true))
        .select(WorkspaceRow::as_select())
        .load(conn)?
        .into_iter()
        .filter(|w| check_qualifies(w).is_ok())
        .map(|w| w.organization_id)
        .collect();
    Ok(known
        .into_iter()
        .filter(|(_, organization)| qualifying.contains(organization))
        .map(|(id, _)| id)
        .collect())
}

/// The known, non-deleted broker directories of an organization, in id order.
pub fn organization_directories(
    conn: &mut DbConnection,
    organization_id: &str,
) -> QueryResult<Vec<String>> {
    directories::table
        .filter(directories::organization_id.eq(organization_id))
        .filter(directories::deleted_at.is_null())
        .filter(directories::directory_type.ne(SCIM_DIRECTORY_TYPE))
        .select(directories::id)
        .order(directories::id)
        .load(conn)
}

/// Starts a run of each directory; one already running is skipped. Returns the runs started.
pub async fn start_runs(
    runner: &SyncRunner,
    directories: &[String],
    trigger: RunTrigger,
) -> Vec<String> {
    let mut started = Vec::new();
    for directory in directories {
        match runner.start(directory, trigger, false).await {
            Ok(run) => {
                tracing::info!(%run, %directory, %trigger, "sync run started");
                started.push(run);
            }
            Err(StartError::InProgress) => {
                runner.metrics.run_skipped("in_progress");
                tracing::debug!(%directory, %trigger, "a run of this directory is in progress; skipped")
            }
            Err(error @ StartError::TooSoon { .. }) => {
                runner.metrics.run_skipped("too_soon");
                tracing::info!(%directory, %trigger, reason = %error, "automatic pull skipped")
            }
            Err(error) => {
                tracing::warn!(%directory, %trigger, %error, "could not start a sync run")
            }
        }
    }
    started
}

/// Starts a `scheduled` run of every qualifying directory every `interval`, the first one `interval`
/// after start-up; the pull slots decide how many run at once, workspaces taking turns. Never ends: the
/// service runs it until it stops.
pub async fn run_schedule(runner: SyncRunner, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // A tick missed while runs were being started is not made up for.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let db = runner.database().clone();
        let due = tokio::task::spawn_blocking(move || {
            db.read(|c| Ok::<_, DbError>(scheduled_directories(c)?))
        })
        .await;
        match due {
            Ok(Ok(due)) => {
                tracing::debug!(directories = due.len(), "scheduled full pulls are due");
                start_runs(&runner, &due, RunTrigger::Scheduled).await;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "scheduled pulls: the directories could not be read; trying at the next interval")
            }
            Err(error) => tracing::warn!(%error, "scheduled pulls: the lookup did not finish"),
        }
    }
}

/// Every [`super::LEASE_ROUND`]: renews the leases of this process's runs, and ends the runs a stopped
/// process left (their lease ran out), so their directories can be pulled again. Never ends: the service
/// runs it until it stops.
pub async fn keep_leases(runner: SyncRunner) {
    let mut ticks = tokio::time::interval(super::LEASE_ROUND);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let keeper = runner.clone();
        let kept = tokio::task::spawn_blocking(move || {
            keeper.renew_leases()?;
            super::lease::end_interrupted_runs(keeper.database(), false)
        })
        .await;
        match kept {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not renew this process's sync-run leases; a run whose lease runs out is taken for interrupted")
            }
            Err(error) => tracing::warn!(%error, "the lease renewal did not finish"),
        }
    }
}

/// A sender the applier's thread can use to ask for a `directory_activated` run, and the work that
/// starts those runs (for the service to run). The work ends when every sender is gone.
pub fn activation_runs(
    runner: SyncRunner,
) -> (
    mpsc::UnboundedSender<String>,
    impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let work = async move {
        while let Some(directory) = rx.recv().await {
            start_runs(
                &runner,
                std::slice::from_ref(&directory),
                RunTrigger::DirectoryActivated,
            )
            .await;
        }
    };
    (tx, work)
}

/// Starts a `sync_enabled` run of each directory of the organization: those Rollcall knows and those the
/// broker lists that it does not (their activation may have come before the workspace existed).
pub async fn start_for_organization(runner: &SyncRunner, organization_id: &str) -> Vec<String> {
    if let Err(error) = runner.discover_directories(organization_id).await {
        tracing::warn!(organization = %organization_id, %error, "could not ask the broker for the organization's directories; pulling the known ones");
    }
    let db = runner.database().clone();
    let organization = organization_id.to_string();
    let found = tokio::task::spawn_blocking(move || {
        db.read(|c| Ok::<_, DbError>(organization_directories(c, &organization)?))
    })
    .await;
    match found {
        Ok(Ok(directories)) => start_runs(runner, &directories, RunTrigger::SyncEnabled).await,
        Ok(Err(error)) => {
            tracing::warn!(organization = %organization_id, %error, "could not read the organization's directories");
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(organization = %organization_id, %error, "the directory lookup did not finish");
            Vec::new()
        }
    }
}
