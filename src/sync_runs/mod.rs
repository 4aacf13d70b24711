//! Sync runs: full pulls of one directory, queued, run in the background and reported (rules 14–16).
//!
//! One run per directory at a time: within a process through a set of running directories, across
//! processes sharing PostgreSQL through an advisory lock held for the whole run.

pub mod schedule;

use crate::audit::Cause;
use crate::broker::BrokerClient;
use crate::broker::ListedPage;
use crate::db::models::{DirectoryRow, SyncRunRow, WorkspaceRow};
use crate::db::schema::{directories, sync_runs, workspaces};
use crate::db::{Database, DbConnection, DbError, PooledConnection};
use crate::directory_sync::directories::attach_listed;
use crate::directory_sync::reconcile::{DeprovisionGuard, DirectoryPull, ReconcileCounts};
use crate::directory_sync::store::Store;
use crate::directory_sync::{with_store, workspace::check_qualifies, ApplyContext, ApplyError};
use crate::ids::new_id;
use crate::metrics::Metrics;
use crate::workos::timestamp;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no such directory")]
    UnknownDirectory,
    #[error("a run of this directory is already in progress")]
    InProgress,
    /// An automatic pull asked for sooner than `ROLLCALL_AUTOMATIC_PULL_SPACING` after the last one.
    #[error(
        "its last automatic pull was queued at {}, less than {}s ago (ROLLCALL_AUTOMATIC_PULL_SPACING)",
        timestamp::format(*last),
        spacing.as_secs()
    )]
    TooSoon {
        last: crate::workos::timestamp::Timestamp,
        spacing: std::time::Duration,
    },
    #[error("the run could not be queued: {0}")]
    Queue(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a run failed; the message is what operators read on the run.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RunError {
    fn from(e: diesel::result::Error) -> Self {
        RunError::Db(e.into())
    }
}

impl From<ApplyError> for RunError {
    fn from(ApplyError::Db(e): ApplyError) -> Self {
        e.into()
    }
}

/// Starts and runs full pulls.
#[derive(Clone)]
pub struct SyncRunner {
    db: Database,
    client: BrokerClient,
    max_share: f64,
    running: Arc<Mutex<HashSet<String>>>,
    metrics: Metrics,
    automatic_pull_spacing: std::time::Duration,
}

/// Whether a run may be queued.
enum Queueing {
    Queued,
    UnknownDirectory,
    TooSoon(crate::workos::timestamp::Timestamp),
}

impl SyncRunner {
    pub fn new(db: Database, client: BrokerClient, max_share: f64) -> Self {
        Self {
            db,
            client,
            max_share,
            running: Arc::default(),
            metrics: Metrics::default(),
            automatic_pull_spacing: std::time::Duration::ZERO,
        }
    }

    /// The runner, starting an automatic pull of a directory (its `dsync.activated`, its workspace turning
    /// directory sync on) only once `spacing` has passed since the last one; zero: every time. The
    /// schedule and operators are not held back.
    pub fn with_automatic_pull_spacing(mut self, spacing: std::time::Duration) -> Self {
        self.automatic_pull_spacing = spacing;
        self
    }

    /// The runner, counting its runs and its broker requests into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.client = self.client.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// The database the runner writes to.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Whether a run of the directory is queued or running in this process.
    pub fn is_running(&self, directory_id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(directory_id)
    }

    /// Queues a run of the directory and starts it in the background; returns the run's id.
    pub async fn start(
        &self,
        directory_id: &str,
        trigger: &str,
        force: bool,
    ) -> Result<String, StartError> {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(directory_id.to_string()) {
                return Err(StartError::InProgress);
            }
        }
        let run = SyncRunRow {
            id: new_id("run"),
            directory_id: directory_id.to_string(),
            trigger: trigger.to_string(),
            force,
            status: "queued".into(),
            counts: None,
            error: None,
            requests: 0,
            created_at: timestamp::now(),
            started_at: None,
            finished_at: None,
            phase: "queued".into(),
            users_listed: 0,
        };
        // A directory no webhook has announced yet may still be known to the broker: only then is its list
        // of directories asked for.
        let known = {
            let (db, id) = (self.db.clone(), directory_id.to_string());
            tokio::task::spawn_blocking(move || {
                db.read(|conn| {
                    directories::table
                        .find(&id)
                        .count()
                        .get_result::<i64>(conn)
                        .map_err(DbError::from)
                })
            })
            .await
            .map_err(|e| StartError::Queue(e.to_string()))
            .and_then(|known| Ok(known? > 0))
        };
        let listed = match known {
            Ok(true) => None,
            Ok(false) => match self.client.list_directories(None).await {
                Ok(listing) => listing.items.into_iter().find(|d| d.id == directory_id),
                Err(e) => {
                    tracing::warn!(directory = %directory_id, error = %e, "could not list the broker's directories");
                    None
                }
            },
            Err(e) => {
                self.release(directory_id);
                return Err(e);
            }
        };
        let spacing = Some(self.automatic_pull_spacing)
            .filter(|s| !s.is_zero() && schedule::AUTOMATIC.contains(&trigger));
        let queued = {
            let (db, run) = (self.db.clone(), run.clone());
            tokio::task::spawn_blocking(move || {
                db.write(|conn| {
                    if let Some(directory) = &listed {
                        if attach_listed(conn, directory)? {
                            tracing::info!(directory = %directory.id, "directory attached from the broker's listing");
                        }
                    }
                    let known: i64 = directories::table
                        .find(&run.directory_id)
                        .count()
                        .get_result(conn)?;
                    if known == 0 {
                        return Ok(Queueing::UnknownDirectory);
                    }
                    // Decided inside the serialized write, from the runs every instance records.
                    if let Some(spacing) = spacing {
                        let last = schedule::last_automatic_run(conn, &run.directory_id)?;
                        if let Some(last) = last.filter(|&last| is_within(last, spacing)) {
                            return Ok(Queueing::TooSoon(last));
                        }
                    }
                    diesel::insert_into(sync_runs::table)
                        .values(&run)
                        .execute(conn)?;
                    Ok::<_, DbError>(Queueing::Queued)
                })
            })
            .await
            .map_err(|e| StartError::Queue(e.to_string()))?
        };
        let refused = match queued {
            Ok(Queueing::Queued) => None,
            Ok(Queueing::UnknownDirectory) => Some(StartError::UnknownDirectory),
            Ok(Queueing::TooSoon(last)) => Some(StartError::TooSoon {
                last,
                spacing: self.automatic_pull_spacing,
            }),
            Err(e) => Some(e.into()),
        };
        if let Some(refused) = refused {
            self.release(directory_id);
            return Err(refused);
        }
        self.metrics.run_started(trigger);
        let runner = self.clone();
        let id = run.id.clone();
        tokio::spawn(async move {
            use futures_util::FutureExt;
            let started = std::time::Instant::now();
            let (id, directory) = (run.id.clone(), run.directory_id.clone());
            // Whatever happens to the run, the directory is free again afterwards; a panic ends the run
            // `failed` with its message instead of leaving it running for ever.
            let _release = Release(&runner, &directory);
            if let Err(panic) = std::panic::AssertUnwindSafe(runner.execute(run, started))
                .catch_unwind()
                .await
            {
                let why = panic_message(panic.as_ref());
                tracing::error!(run = %id, directory = %directory, error = %why, "sync run stopped by a panic");
                runner.metrics.run_finished("failed", started.elapsed());
                let failed = RunEnd {
                    status: "failed",
                    error: Some(format!("the pull stopped unexpectedly: {why}")),
                    counts: None,
                    requests: None,
                };
                runner.record_end(&id, failed).await;
            }
        });
        Ok(id)
    }

    /// Asks the broker for the organization's directories and records those Rollcall does not know yet
    /// (a `dsync.activated` that came before the workspace existed was skipped); returns how many were new.
    pub async fn discover_directories(&self, organization_id: &str) -> Result<usize, String> {
        let listed = self
            .client
            .list_directories(Some(organization_id))
            .await
            .map_err(|e| e.to_string())?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            db.write(|conn| {
                let mut new = 0;
                for directory in &listed.items {
                    let live = directory.state.as_deref() != Some("deleted");
                    if live && attach_listed(conn, directory)? {
                        tracing::info!(directory = %directory.id, "directory found at the broker and attached");
                        new += 1;
                    }
                }
                Ok::<_, DbError>(new)
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }

    /// Records how a run ended; a failure to record it is logged (the run would otherwise look running).
    async fn record_end(&self, id: &str, end: RunEnd) {
        let (db, id) = (self.db.clone(), id.to_string());
        let written = tokio::task::spawn_blocking(move || {
            db.write(|conn| {
                diesel::update(sync_runs::table.find(&id))
                    .set((
                        sync_runs::status.eq(end.status),
                        sync_runs::error.eq(end.error),
                        sync_runs::phase.eq("done"),
                        sync_runs::finished_at.eq(Some(timestamp::now())),
                    ))
                    .execute(conn)?;
                if let (Some(counts), Some(requests)) = (end.counts, end.requests) {
                    diesel::update(sync_runs::table.find(&id))
                        .set((
                            sync_runs::counts.eq(counts),
                            sync_runs::requests.eq(requests),
                        ))
                        .execute(conn)?;
                }
                Ok::<_, DbError>(())
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not record how a sync run ended; it is ended `failed` (interrupted) at the next start")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record how a sync run ended; it is ended `failed` (interrupted) at the next start")
            }
        }
    }

    fn release(&self, directory_id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(directory_id);
    }

    /// Pulls the run's directory and records how it ended; `started` is when its task began.
    async fn execute(&self, run: SyncRunRow, started: std::time::Instant) {
        let outcome = self.pull(&run).await;
        let (status, finished) = match &outcome {
            Ok(pulled) if pulled.held => ("held", Some(pulled)),
            Ok(pulled) => ("succeeded", Some(pulled)),
            Err(_) => ("failed", None),
        };
        self.metrics.run_finished(status, started.elapsed());
        let error = outcome.as_ref().err().map(|e| e.to_string());
        match &error {
            Some(e) => {
                tracing::warn!(run = %run.id, directory = %run.directory_id, error = %e, "sync run failed; nothing was deleted")
            }
            None => {
                let timings = finished.map(|p| p.timings).unwrap_or_default();
                tracing::info!(
                    run = %run.id, directory = %run.directory_id, status,
                    listing_ms = timings.listing.as_millis() as u64,
                    comparing_ms = timings.comparing.as_millis() as u64,
                    reconciling_ms = timings.reconciling.as_millis() as u64,
                    "sync run finished"
                )
            }
        }
        // A failed run keeps the counts and requests its progress last recorded.
        let end = RunEnd {
            status,
            error,
            counts: finished.map(|p| serde_json::to_string(&p.counts).unwrap_or_default()),
            requests: finished.map(|p| p.requests as i32),
        };
        self.record_end(&run.id, end).await;
    }

    /// Lists the directory and applies it as its pages arrive, then finishes the pull (rules 14, 15).
    async fn pull(&self, run: &SyncRunRow) -> Result<Pulled, RunError> {
        let started_at = timestamp::now();
        let started = std::time::Instant::now();
        let lock = {
            let (db, run) = (self.db.clone(), run.clone());
            tokio::task::spawn_blocking(move || lock_directory(&db, &run, started_at))
                .await
                .map_err(|e| RunError::Message(e.to_string()))??
        };
        let guard = DeprovisionGuard {
            max_share: self.max_share,
            min_count: 10,
            force: run.force,
        };
        // A few pages in flight: the listing runs ahead of applying by that much, no more.
        let (sender, pages) = tokio::sync::mpsc::channel(8);
        let applying = {
            let (db, run) = (self.db.clone(), run.clone());
            tokio::task::spawn_blocking(move || apply_pages(&db, &run, started_at, guard, pages))
        };
        let listed = self
            .client
            .stream_directory(&run.directory_id, sender)
            .await;
        let (pull, applied) = applying
            .await
            .map_err(|e| RunError::Message(e.to_string()))?;
        let failure = match (listed, applied) {
            (_, Err(e)) => e,
            (Err(e), Ok(())) => RunError::Message(format!("listing the directory failed: {e}")),
            (Ok((requests, _)), Ok(())) => {
                let pull =
                    pull.ok_or_else(|| RunError::Message("the pull did not begin".into()))?;
                let (db, run) = (self.db.clone(), run.clone());
                let listing = started.elapsed();
                let finished =
                    tokio::task::spawn_blocking(move || finish(&db, &run, pull, requests, listing))
                        .await
                        .map_err(|e| RunError::Message(e.to_string()))?;
                drop(lock);
                return finished;
            }
        };
        // Nothing is deleted, but memberships the applied pages added still decide teams and roles.
        if let Some(mut pull) = pull {
            let db = self.db.clone();
            let reconciled = tokio::task::spawn_blocking(move || {
                in_transactions(&db, |store| pull.reconcile_teams(store, 500))
            })
            .await;
            if let Ok(Err(e)) = reconciled {
                tracing::warn!(run = %run.id, error = %e, "teams and roles of the users a failed pull changed could not be reconciled; the next pull repairs them");
            }
        }
        drop(lock);
        Err(failure)
    }
}

/// Ends the runs a stopped process left `queued` or `running`, as `failed` ("interrupted"), so they no
/// longer look in progress; returns how many. On PostgreSQL another instance may be running some: a run
/// is ended only when its directory's pull lock is free (no instance pulls it), and a queued run only once
/// it is a minute old (another instance queues and starts its runs within moments).
pub fn end_interrupted_runs(db: &Database) -> Result<usize, DbError> {
    let unfinished: Vec<(String, String, String, timestamp::Timestamp)> = db.read(|conn| {
        sync_runs::table
            .filter(sync_runs::status.eq_any(["queued", "running"]))
            .select((
                sync_runs::id,
                sync_runs::directory_id,
                sync_runs::status,
                sync_runs::created_at,
            ))
            .load(conn)
            .map_err(DbError::from)
    })?;
    let young = timestamp::now() - chrono::TimeDelta::minutes(1);
    let mut ended = 0;
    for (id, directory_id, status, created_at) in unfinished {
        let mut conn = db.conn()?;
        let shared = matches!(&*conn, DbConnection::Postgresql(_));
        if shared && status == "queued" && created_at > young {
            continue;
        }
        if !directory_lock_call(&mut conn, "pg_try_advisory_lock", &directory_id)? {
            continue;
        }
        let interrupted = db.write(|c| {
            diesel::update(
                sync_runs::table
                    .find(&id)
                    .filter(sync_runs::status.eq_any(["queued", "running"])),
            )
            .set((
                sync_runs::status.eq("failed"),
                sync_runs::error.eq("interrupted: the process running it stopped before it ended"),
                sync_runs::phase.eq("done"),
                sync_runs::finished_at.eq(Some(timestamp::now())),
            ))
            .execute(c)
            .map_err(DbError::from)
        });
        if shared {
            directory_lock_call(&mut conn, "pg_advisory_unlock", &directory_id)?;
        }
        if interrupted? > 0 {
            tracing::warn!(run = %id, directory = %directory_id, was = %status, "a sync run left unfinished by a stopped process was ended `failed` (interrupted)");
            ended += 1;
        }
    }
    Ok(ended)
}

/// Listed pages applied in one transaction at most: enough to spread each commit and each batch of lookups
/// over some work, few enough that webhooks are not held up for long. On SQLite a webhook's
/// acknowledgement waits for the single writer, so its transactions stay short; on PostgreSQL only the
/// webhooks' application waits (for the serialization lock), so they can be longer.
fn pages_per_transaction(db: &Database) -> usize {
    match db.target() {
        crate::db::DatabaseTarget::Sqlite(_) => 10,
        crate::db::DatabaseTarget::Postgres(_) => 40,
    }
}

/// How a run ended, as recorded on it.
struct RunEnd {
    status: &'static str,
    error: Option<String>,
    counts: Option<String>,
    requests: Option<i32>,
}

/// Frees a directory for its next run when dropped.
struct Release<'a>(&'a SyncRunner, &'a str);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// The message a panic carried.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What a finished pull did.
struct Pulled {
    counts: ReconcileCounts,
    /// Whether the guard held the destructive steps back.
    held: bool,
    requests: u32,
    /// How long each step took, for the log: listing and applying the pages, then the listing-wide
    /// comparison (memberships, users and groups the listing lacks, the guard), then teams and roles.
    timings: Timings,
}

/// How long a pull's steps took.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    listing: std::time::Duration,
    comparing: std::time::Duration,
    reconciling: std::time::Duration,
}

/// Applies listed pages as they arrive, several to a transaction, recording the run's progress with them;
/// returns the pull (also after a failure, so the teams of the users its pages changed can follow), ready
/// to finish once the listing is known to be complete.
fn apply_pages(
    db: &Database,
    run: &SyncRunRow,
    started_at: timestamp::Timestamp,
    guard: DeprovisionGuard,
    mut pages: tokio::sync::mpsc::Receiver<(ListedPage, u32)>,
) -> (Option<DirectoryPull>, Result<(), RunError>) {
    let begun = db.write(|conn| {
        let ctx = context(conn, run, started_at)?;
        record_progress(conn, run, "listing", 0, 0, None)?;
        with_store(conn, |store| {
            Ok::<_, RunError>(DirectoryPull::begin(store, &ctx, &run.directory_id, guard)?)
        })
    });
    let mut pull = match begun {
        Ok(pull) => pull,
        Err(e) => return (None, Err(e)),
    };
    while let Some(first) = pages.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < pages_per_transaction(db) {
            match pages.try_recv() {
                Ok(page) => batch.push(page),
                Err(_) => break,
            }
        }
        let applied = db.write_behind_urgent(|conn| {
            let mut requests = 0;
            let written = with_store(conn, |store| {
                requests = batch.iter().map(|(_, made)| *made).max().unwrap_or(0);
                pull.apply(store, batch.into_iter().map(|(page, _)| page).collect())?;
                store.flush()?;
                Ok::<_, RunError>(store.written())
            })?;
            let counts = Some(&pull.counts);
            record_progress(conn, run, "listing", requests, pull.users_listed, counts)?;
            Ok::<_, RunError>(written)
        });
        match applied {
            Ok(written) => db.keep_statistics_current(written),
            Err(e) => return (Some(pull), Err(e)),
        }
        if let Some(why) = pull.stopped() {
            let why = RunError::Message(format!("{why}; nothing was deleted"));
            return (Some(pull), Err(why));
        }
    }
    (Some(pull), Ok(()))
}

/// Ends a pull whose listing was complete: deletions and the guard, then teams and roles in batches.
fn finish(
    db: &Database,
    run: &SyncRunRow,
    mut pull: DirectoryPull,
    requests: u32,
    listing: std::time::Duration,
) -> Result<Pulled, RunError> {
    let started = std::time::Instant::now();
    let stopped = |pull: &DirectoryPull| match pull.stopped() {
        Some(why) => Err(RunError::Message(format!(
            "{why}; the pull stopped before its deletions and deprovisioning"
        ))),
        None => Ok(()),
    };
    db.write_behind_urgent(|conn| {
        Ok::<_, RunError>(with_store(conn, |store| pull.decide(store))?)
    })?;
    stopped(&pull)?;
    in_transactions(db, |store| pull.remove_unlisted_memberships(store, 100))?;
    stopped(&pull)?;
    db.write_behind_urgent(|conn| {
        with_store(conn, |store| pull.finish(store))?;
        let counts = Some(&pull.counts);
        record_progress(
            conn,
            run,
            "reconciling teams",
            requests,
            pull.users_listed,
            counts,
        )?;
        Ok::<_, RunError>(())
    })?;
    stopped(&pull)?;
    let comparing = started.elapsed();
    in_transactions(db, |store| pull.reconcile_teams(store, 500))?;
    stopped(&pull)?;
    db.write(|conn| {
        diesel::update(directories::table.find(&run.directory_id))
            .set(directories::last_synced_at.eq(Some(timestamp::now())))
            .execute(conn)
            .map_err(RunError::from)
    })?;
    Ok(Pulled {
        held: pull.held(),
        counts: pull.counts,
        requests,
        timings: Timings {
            listing,
            comparing,
            reconciling: started.elapsed() - comparing,
        },
    })
}

/// Runs `step` a transaction at a time until it says nothing is left.
fn in_transactions(
    db: &Database,
    mut step: impl FnMut(&mut Store<'_>) -> Result<bool, ApplyError>,
) -> Result<(), RunError> {
    while db.write_behind_urgent(|conn| Ok::<_, RunError>(with_store(conn, &mut step)?))? {}
    Ok(())
}

/// Records a running pull's progress on its run.
fn record_progress(
    conn: &mut DbConnection,
    run: &SyncRunRow,
    phase: &str,
    requests: u32,
    users_listed: usize,
    counts: Option<&ReconcileCounts>,
) -> QueryResult<()> {
    let counts = counts.map(|c| serde_json::to_string(c).unwrap_or_default());
    diesel::update(sync_runs::table.find(&run.id))
        .set((
            sync_runs::phase.eq(phase),
            sync_runs::requests.eq(requests as i32),
            sync_runs::users_listed.eq(users_listed as i32),
            sync_runs::counts.eq(counts),
        ))
        .execute(conn)?;
    Ok(())
}

/// The workspace the run's directory belongs to, if it takes directory changes.
fn context(
    conn: &mut DbConnection,
    run: &SyncRunRow,
    started_at: timestamp::Timestamp,
) -> Result<ApplyContext, RunError> {
    let directory: DirectoryRow = directories::table
        .find(&run.directory_id)
        .select(DirectoryRow::as_select())
        .first(conn)?;
    let workspace: WorkspaceRow = workspaces::table
        .filter(workspaces::organization_id.eq(&directory.organization_id))
        .select(WorkspaceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            RunError::Message(format!(
                "no workspace has organization {}",
                directory.organization_id
            ))
        })?;
    check_qualifies(&workspace).map_err(|why| RunError::Message(why.to_string()))?;
    Ok(ApplyContext {
        workspace,
        cause: Cause::SyncRun(run.id.clone()),
        event_at: started_at,
    })
}

/// On PostgreSQL, the directory's session advisory lock, on a connection held for the whole run and
/// released when dropped (the connection goes back to the pool, so the lock must not go with it).
struct DirectoryLock {
    conn: PooledConnection,
    directory_id: String,
}

/// Calls `function` (`pg_try_advisory_lock` or `pg_advisory_unlock`) on the directory's pull lock.
fn directory_lock_call(
    conn: &mut DbConnection,
    function: &str,
    directory_id: &str,
) -> QueryResult<bool> {
    let DbConnection::Postgresql(c) = conn else {
        return Ok(true);
    };
    diesel::select(
        diesel::dsl::sql::<Bool>(function)
            .sql("(7243003, hashtext(current_schema() || '/' || ")
            .bind::<Text, _>(directory_id)
            .sql("))"),
    )
    .get_result(c)
}

impl Drop for DirectoryLock {
    fn drop(&mut self) {
        match directory_lock_call(&mut self.conn, "pg_advisory_unlock", &self.directory_id) {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(directory = %self.directory_id, "the directory's pull lock was not held at the end of the run")
            }
            Err(e) => {
                tracing::error!(directory = %self.directory_id, error = %e, "could not release the directory's pull lock")
            }
        }
    }
}

/// Marks the run running and, on PostgreSQL, takes the directory's advisory lock, held until the returned
/// guard is dropped.
fn lock_directory(
    db: &Database,
    run: &SyncRunRow,
    started_at: timestamp::Timestamp,
) -> Result<Option<DirectoryLock>, RunError> {
    let mut conn = db.conn()?;
    let lock = match &mut *conn {
        DbConnection::Postgresql(_) => {
            if !directory_lock_call(&mut conn, "pg_try_advisory_lock", &run.directory_id)? {
                return Err(RunError::Message(
                    "another Rollcall instance is pulling this directory".into(),
                ));
            }
            Some(DirectoryLock {
                conn,
                directory_id: run.directory_id.clone(),
            })
        }
        DbConnection::Sqlite(_) => None,
    };
    db.write(|c| {
        diesel::update(sync_runs::table.find(&run.id))
            .set((
                sync_runs::status.eq("running"),
                sync_runs::started_at.eq(Some(started_at)),
            ))
            .execute(c)
            .map_err(DbError::from)
    })?;
    Ok(lock)
}

/// Whether `at` is less than `spacing` ago.
fn is_within(at: crate::workos::timestamp::Timestamp, spacing: std::time::Duration) -> bool {
    chrono::Duration::from_std(spacing).is_ok_and(|spacing| timestamp::now() - at < spacing)
}
