//! Sync runs: full pulls of one directory, queued, run in the background and reported (rules 14–16).
//!
//! One run per directory at a time: within a process through a set of directories in progress, across
//! processes through a lease on the run (see [`lease`]). At most `ROLLCALL_MAX_CONCURRENT_PULLS` pulls
//! run at once, workspaces taking turns for the slots ([`slots`]). A pull holds no database connection
//! while it waits for the broker, and each of its transactions holds only its workspace's lock, so a pull
//! (or a broker outage) of one workspace holds up no other's webhooks (rule 18).
//!
//! Runs are tasks of the service's [`TaskTracker`] and stop with its [`CancellationToken`]: a run waiting
//! for a slot, listing or writing stops at its next transaction and is recorded `failed` ("interrupted"),
//! so no run is left `running` when the service stops.

pub mod lease;
pub mod preview;
pub mod runs;
pub mod schedule;
pub mod slots;

use crate::audit::Cause;
use crate::broker::BrokerClient;
use crate::broker::ListedPage;
use crate::db::models::{DirectoryRow, SyncRunRow, WorkspaceRow};
use crate::db::schema::{directories, sync_runs, workspaces};
use crate::db::{BatchSizer, Database, DbConnection, DbError};
use crate::directory_sync::directories::attach_listed;
use crate::directory_sync::reconcile::{DeprovisionGuard, DirectoryPull, ReconcileCounts};
use crate::directory_sync::store::Store;
use crate::directory_sync::workspace::{check_qualifies, workspace_of_directory};
use crate::directory_sync::{with_store, ApplyContext, ApplyError};
use crate::domain::{RunPhase, RunStatus, RunTrigger};
use crate::ids::new_id;
use crate::metrics::Metrics;
use crate::workos::timestamp;
use diesel::prelude::*;
use slots::{PullSlots, DEFAULT_CONCURRENT_PULLS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no such directory")]
    UnknownDirectory,
    #[error("a run of this directory is already in progress")]
    InProgress,
    /// A SCIM directory of Rollcall's own: its identity provider pushes to it; there is nothing to pull.
    #[error("{}", SCIM_NOT_PULLED)]
    PushedOverScim,
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

/// Why a SCIM directory of Rollcall's is not pulled.
pub const SCIM_NOT_PULLED: &str =
    "this is a SCIM directory: its identity provider pushes every change to Rollcall, so there is nothing to pull";

/// Refuses a SCIM directory of Rollcall's own: there is nothing to pull.
pub fn refuse_scim(db: &Database, directory_id: &str) -> Result<(), StartError> {
    match db.read(|conn| is_scim_directory(conn, directory_id))? {
        true => Err(StartError::PushedOverScim),
        false => Ok(()),
    }
}

/// Whether `directory_id` is a SCIM directory of Rollcall's own (pushed to, never pulled).
pub fn is_scim_directory(conn: &mut DbConnection, directory_id: &str) -> Result<bool, DbError> {
    let kind: Option<String> = directories::table
        .find(directory_id)
        .select(directories::directory_type)
        .first(conn)
        .optional()?;
    Ok(kind.as_deref() == Some(crate::domain::SCIM_DIRECTORY_TYPE))
}

/// What an interrupted run's error says.
pub const INTERRUPTED_BY_SHUTDOWN: &str =
    "interrupted: the service was stopped before the pull ended; the next pull takes it up again";

/// Why a run failed; the message is what operators read on the run.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Message(String),
    /// The service is stopping: the run stopped before its next step.
    #[error("{INTERRUPTED_BY_SHUTDOWN}")]
    Interrupted,
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(RunError);

impl From<ApplyError> for RunError {
    fn from(ApplyError::Db(e): ApplyError) -> Self {
        e.into()
    }
}

impl From<lease::ClaimError> for RunError {
    fn from(e: lease::ClaimError) -> Self {
        match e {
            lease::ClaimError::Taken => RunError::Message(e.to_string()),
            lease::ClaimError::Db(e) => RunError::Db(e),
        }
    }
}

/// Starts and runs full pulls.
#[derive(Clone)]
pub struct SyncRunner {
    db: Database,
    client: BrokerClient,
    max_share: f64,
    /// The runs this process has queued or running, by directory.
    in_progress: Arc<Mutex<HashMap<String, String>>>,
    slots: Arc<PullSlots>,
    /// When each organization's directories were last asked of the broker.
    discovered: Arc<Mutex<HashMap<String, Instant>>>,
    metrics: Metrics,
    automatic_pull_spacing: std::time::Duration,
    /// Where runs are spawned, so the service waits for them as it stops.
    tasks: TaskTracker,
    /// The service's runtime, where runs are spawned: not the HTTP worker's that asked for one (a worker's
    /// runtime ends with the server, and would drop its tasks before they record how they ended).
    runtime: Option<tokio::runtime::Handle>,
    /// Cancelled when the service stops: runs end at their next step.
    shutdown: CancellationToken,
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
            in_progress: Arc::default(),
            slots: PullSlots::new(DEFAULT_CONCURRENT_PULLS),
            discovered: Arc::default(),
            metrics: Metrics::default(),
            automatic_pull_spacing: std::time::Duration::ZERO,
            tasks: TaskTracker::new(),
            runtime: None,
            shutdown: CancellationToken::new(),
        }
    }

    /// The runner, spawning its runs on `tasks`, on the runtime it is called on (the service's), and
    /// ending them (recorded interrupted) once `shutdown` is cancelled.
    pub fn with_lifecycle(mut self, tasks: TaskTracker, shutdown: CancellationToken) -> Self {
        self.tasks = tasks;
        self.runtime = tokio::runtime::Handle::try_current().ok();
        self.shutdown = shutdown;
        self
    }

    /// The runner, starting an automatic pull of a directory (its `dsync.activated`, its workspace turning
    /// directory sync on) only once `spacing` has passed since the last one, and asking the broker for an
    /// organization's directories at most once per `spacing`; zero: every time. The schedule and
    /// operators are not held back.
    pub fn with_automatic_pull_spacing(mut self, spacing: std::time::Duration) -> Self {
        self.automatic_pull_spacing = spacing;
        self
    }

    /// The runner, running at most `pulls` pulls at once.
    pub fn with_concurrent_pulls(mut self, pulls: usize) -> Self {
        self.slots = PullSlots::new(pulls);
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

    fn in_progress(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.in_progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a run of the directory is queued or running in this process.
    pub fn is_running(&self, directory_id: &str) -> bool {
        self.in_progress().contains_key(directory_id)
    }

    /// Pulls running in this process now, and waiting for a slot.
    pub fn pull_counts(&self) -> (usize, usize) {
        self.slots.counts()
    }

    /// Queues a run of the directory and starts it in the background once it has a slot; returns the
    /// run's id.
    pub async fn start(
        &self,
        directory_id: &str,
        trigger: RunTrigger,
        force: bool,
    ) -> Result<String, StartError> {
        let run = SyncRunRow {
            id: new_id("run"),
            directory_id: directory_id.into(),
            trigger,
            force,
            status: RunStatus::Queued,
            counts: None,
            error: None,
            requests: 0,
            created_at: timestamp::now(),
            started_at: None,
            finished_at: None,
            phase: RunPhase::Queued,
            users_listed: 0,
            lease_until: Some(lease::lease_end()),
        };
        let directory = directory_id.to_string();
        self.blocking(move |db| refuse_scim(db, &directory)).await?;
        {
            let mut in_progress = self.in_progress();
            if in_progress.contains_key(directory_id) {
                return Err(StartError::InProgress);
            }
            in_progress.insert(directory_id.to_string(), run.id.clone());
        }
        let queued = self.queue(&run, trigger).await;
        let refused = match queued {
            Ok(Queueing::Queued) => None,
            Ok(Queueing::UnknownDirectory) => Some(StartError::UnknownDirectory),
            Ok(Queueing::TooSoon(last)) => Some(StartError::TooSoon {
                last,
                spacing: self.automatic_pull_spacing,
            }),
            Err(e) => Some(e),
        };
        if let Some(refused) = refused {
            self.release(directory_id);
            return Err(refused);
        }
        self.metrics.run_started(trigger);
        let runner = self.clone();
        let id = run.id.clone();
        let task = async move {
            use futures_util::FutureExt;
            let queued_at = std::time::Instant::now();
            let (id, directory) = (run.id.clone(), run.directory_id.clone());
            // Whatever happens to the run, the directory is free again afterwards; a panic ends the run
            // `failed` with its message instead of leaving it running for ever.
            let _release = Release(&runner, directory.as_str());
            let mut ran = false;
            let executed = std::panic::AssertUnwindSafe(runner.execute(run, queued_at, &mut ran))
                .catch_unwind()
                .await;
            if let Err(panic) = executed {
                let why = panic_message(panic.as_ref());
                tracing::error!(run = %id, directory = %directory, error = %why, "sync run stopped by a panic");
                runner
                    .metrics
                    .run_finished(RunStatus::Failed, queued_at.elapsed(), ran);
                let failed = RunEnd {
                    status: RunStatus::Failed,
                    error: Some(format!("the pull stopped unexpectedly: {why}")),
                    counts: None,
                    requests: None,
                };
                runner.record_end(&id, failed).await;
            }
        };
        self.spawn(task);
        Ok(id)
    }

    /// Runs `work` in the background on the service's runtime, tracked: the service waits for it as it
    /// stops (a task spawned on an HTTP worker's runtime would be dropped when the server ends).
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        match &self.runtime {
            Some(runtime) => self.tasks.spawn_on(work, runtime),
            None => self.tasks.spawn(work),
        };
    }

    /// Records the run as queued, attaching first a directory only the broker knows: refused for a
    /// directory neither knows, or an automatic pull too soon after the last.
    async fn queue(&self, run: &SyncRunRow, trigger: RunTrigger) -> Result<Queueing, StartError> {
        let directory_id = run.directory_id.clone();
        // A directory no webhook has announced yet may still be known to the broker: only then is its list
        // of directories asked for.
        let known = self
            .blocking(move |db| {
                db.read(|conn| {
                    Ok::<_, DbError>(
                        directories::table
                            .find(&directory_id)
                            .select(directories::organization_id)
                            .first::<String>(conn)
                            .optional()?,
                    )
                })
            })
            .await?;
        let listed = match known {
            Some(_) => None,
            None => match self.client.list_directories(None).await {
                Ok(listing) => listing.items.into_iter().find(|d| d.id == run.directory_id),
                Err(e) => {
                    tracing::warn!(directory = %run.directory_id, error = %e, "could not list the broker's directories");
                    None
                }
            },
        };
        let Some(organization) = known.or_else(|| listed.as_ref()?.organization_id.clone()) else {
            return Ok(Queueing::UnknownDirectory);
        };
        let spacing =
            Some(self.automatic_pull_spacing).filter(|s| !s.is_zero() && trigger.is_automatic());
        let run = run.clone();
        self.blocking(move |db| {
            write_for_organization(db, &organization, |conn| {
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
                // Decided inside the workspace's write, from the runs every instance records.
                if let Some(spacing) = spacing {
                    let last = schedule::last_automatic_run(conn, run.directory_id.as_str())?;
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
    }

    /// Runs `work` with the database on the blocking pool.
    async fn blocking<T: Send + 'static, E: Into<StartError> + Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, E> + Send + 'static,
    ) -> Result<T, StartError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StartError::Queue(e.to_string()))?
            .map_err(Into::into)
    }

    /// Asks the broker for the organization's directories and records those Rollcall does not know yet
    /// (a `dsync.activated` that came before the workspace existed was skipped); returns how many were new.
    /// Asked at most once per `ROLLCALL_AUTOMATIC_PULL_SPACING` for an organization (a workspace turning
    /// directory sync off and on again costs the shared API key nothing more).
    pub async fn discover_directories(&self, organization_id: &str) -> Result<usize, String> {
        if !self.automatic_pull_spacing.is_zero() {
            let mut discovered = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
            let spacing = self.automatic_pull_spacing;
            discovered.retain(|_, at| at.elapsed() < spacing);
            if discovered.contains_key(organization_id) {
                tracing::debug!(organization = %organization_id, "the organization's directories were asked of the broker less than ROLLCALL_AUTOMATIC_PULL_SPACING ago; not asked again");
                return Ok(0);
            }
            discovered.insert(organization_id.to_string(), Instant::now());
        }
        let listed = self
            .client
            .list_directories(Some(organization_id))
            .await
            .map_err(|e| e.to_string())?;
        let organization = organization_id.to_string();
        self.blocking(move |db| {
            write_for_organization(db, &organization, |conn| {
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
        .map_err(|e| e.to_string())
    }

    /// Renews the leases of this process's runs; returns how many.
    pub fn renew_leases(&self) -> Result<usize, DbError> {
        let runs: Vec<String> = self.in_progress().values().cloned().collect();
        lease::renew(&self.db, &runs)
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
                        sync_runs::phase.eq(RunPhase::Done),
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
        let failed = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(error = %failed, "could not record how a sync run ended; it is ended `failed` (interrupted) once its lease runs out");
    }

    fn release(&self, directory_id: &str) {
        self.in_progress().remove(directory_id);
    }

    /// Waits for a pull slot, pulls the run's directory and records how it ended; `queued_at` is when its
    /// task began, `ran` is set once it has its slot. A service stopping meanwhile ends it interrupted.
    #[tracing::instrument(name = "sync_run", skip_all, fields(run = %run.id, directory_id = %run.directory_id, trigger = %run.trigger))]
    async fn execute(&self, run: SyncRunRow, queued_at: std::time::Instant, ran: &mut bool) {
        let workspace = {
            let directory = run.directory_id.clone();
            self.blocking(move |db| {
                db.read(|c| Ok::<_, DbError>(workspace_of_directory(c, directory.as_str())?))
            })
            .await
        };
        let outcome = match workspace {
            Ok(Some(workspace)) => {
                let slot = self.slots.acquire(&workspace);
                match self.shutdown.run_until_cancelled(slot).await {
                    Some(_slot) => {
                        *ran = true;
                        self.metrics.run_running();
                        self.pull(&run, &workspace).await
                    }
                    None => Err(RunError::Interrupted),
                }
            }
            Ok(None) => Err(RunError::Message(format!(
                "no workspace has the organization of directory {}",
                run.directory_id
            ))),
            Err(e) => Err(RunError::Message(e.to_string())),
        };
        let (status, finished) = match &outcome {
            Ok(pulled) if pulled.held => (RunStatus::Held, Some(pulled)),
            Ok(pulled) => (RunStatus::Succeeded, Some(pulled)),
            Err(_) => (RunStatus::Failed, None),
        };
        self.metrics.run_finished(status, queued_at.elapsed(), *ran);
        let error = outcome.as_ref().err().map(|e| e.to_string());
        match &error {
            _ if matches!(outcome, Err(RunError::Interrupted)) => {
                tracing::info!(run = %run.id, directory = %run.directory_id, "sync run interrupted: the service is stopping")
            }
            Some(e) => {
                tracing::warn!(run = %run.id, directory = %run.directory_id, error = %e, "sync run failed; nothing was deleted")
            }
            None => {
                let timings = finished.map(|p| p.timings).unwrap_or_default();
                tracing::info!(
                    run = %run.id, directory = %run.directory_id, %status,
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
    async fn pull(&self, run: &SyncRunRow, workspace: &str) -> Result<Pulled, RunError> {
        let started_at = timestamp::now();
        let started = std::time::Instant::now();
        {
            let (db, run) = (self.db.clone(), run.clone());
            tokio::task::spawn_blocking(move || {
                lease::claim(&db, &run.id, run.directory_id.as_str(), started_at)
            })
            .await
            .map_err(|e| RunError::Message(e.to_string()))??;
        }
        let writer = PullWriter {
            db: self.db.clone(),
            workspace: workspace.to_string(),
            run: run.clone(),
            shutdown: self.shutdown.clone(),
        };
        // The blocking steps log inside the run's span too.
        let span = tracing::Span::current();
        let guard = DeprovisionGuard {
            max_share: self.max_share,
            min_count: 10,
            force: run.force,
        };
        // A few pages in flight: the listing runs ahead of applying by that much, no more.
        let (sender, pages) = tokio::sync::mpsc::channel(8);
        let applying = {
            let (writer, span) = (writer.clone(), span.clone());
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| apply_pages(&writer, started_at, guard, pages))
            })
        };
        // A stopping service drops the listing, and with it the pages' sender: applying ends after the
        // transaction in hand.
        let listing = self
            .client
            .stream_directory(run.directory_id.as_str(), sender);
        let listed = self.shutdown.run_until_cancelled(listing).await;
        let (pull, applied) = applying
            .await
            .map_err(|e| RunError::Message(e.to_string()))?;
        let Some(listed) = listed else {
            return Err(RunError::Interrupted);
        };
        let failure = match (listed, applied) {
            (_, Err(e)) => e,
            (Err(e), Ok(())) => RunError::Message(format!("listing the directory failed: {e}")),
            (Ok(streamed), Ok(())) => {
                let mut pull =
                    pull.ok_or_else(|| RunError::Message("the pull did not begin".into()))?;
                let requests = streamed.requests;
                // By the broker's clock where it gives one (rule 20).
                pull.listed_until(
                    streamed
                        .served_until
                        .map_or_else(timestamp::now, |at| at.naive_utc()),
                );
                let listing = started.elapsed();
                return tokio::task::spawn_blocking(move || {
                    span.in_scope(|| finish(&writer, pull, requests, listing))
                })
                .await
                .map_err(|e| RunError::Message(e.to_string()))?;
            }
        };
        // Nothing is deleted, but memberships the applied pages added still decide teams and roles (unless
        // the service is stopping: the next pull repairs them).
        if let Some(mut pull) = pull.filter(|_| !self.shutdown.is_cancelled()) {
            let reconciled = tokio::task::spawn_blocking(move || {
                writer.in_transactions(500, |store, limit| pull.reconcile_teams(store, limit))
            })
            .await;
            if let Ok(Err(e)) = reconciled {
                tracing::warn!(run = %run.id, error = %e, "teams and roles of the users a failed pull changed could not be reconciled; the next pull repairs them");
            }
        }
        Err(failure)
    }
}

/// Runs `work` in a write of the organization's workspace (none: a write of its own, as no workspace's
/// state can change through it).
fn write_for_organization<T>(
    db: &Database,
    organization_id: &str,
    work: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let workspace: Option<String> = db.read(|conn| {
        Ok::<_, DbError>(
            workspaces::table
                .filter(workspaces::organization_id.eq(organization_id))
                .select(workspaces::id)
                .first(conn)
                .optional()?,
        )
    })?;
    match workspace {
        Some(workspace) => db.write_workspace(&workspace, work),
        None => db.write(work),
    }
}

/// How a pull writes: each transaction holds the workspace's lock, checks that the run still holds its
/// directory, and (on SQLite) keeps to the single writer's budget; none starts once the service is
/// stopping.
#[derive(Clone)]
struct PullWriter {
    db: Database,
    workspace: String,
    run: SyncRunRow,
    shutdown: CancellationToken,
}

impl PullWriter {
    /// Runs `work` in one transaction of the pull's workspace, once the run is seen still to hold its
    /// directory (a process whose lease ran out stops at its next transaction), unless the service is
    /// stopping.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        if self.shutdown.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        self.db.write_pull(&self.workspace, |conn| {
            let holds: i64 = sync_runs::table
                .find(&self.run.id)
                .filter(sync_runs::status.eq(RunStatus::Running))
                .count()
                .get_result(conn)?;
            if holds == 0 {
                return Err(RunError::Message(
                    "the run lost its lease (its process could not renew it), and another may have taken the directory over"
                        .into(),
                ));
            }
            work(conn)
        })
    }

    /// Runs `step` a transaction at a time, each on up to a number of items sized to the write budget (at
    /// most `most`), until it says nothing is left.
    fn in_transactions(
        &self,
        most: usize,
        mut step: impl FnMut(&mut Store<'_>, usize) -> Result<bool, ApplyError>,
    ) -> Result<(), RunError> {
        let mut sizer = BatchSizer::new(self.db.write_budget(), 10, most);
        loop {
            let limit = sizer.next();
            let more = self.write(|conn| {
                sizer.timed(limit, || Ok(with_store(conn, |store| step(store, limit))?))
            })?;
            if !more {
                return Ok(());
            }
        }
    }
}

/// The most listed pages applied in one transaction: enough to spread each commit and each batch of
/// lookups over some work. On SQLite fewer, as many as fit the single writer's budget.
const PAGES_PER_TRANSACTION: usize = 40;

/// How a run ended, as recorded on it.
struct RunEnd {
    status: RunStatus,
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
    writer: &PullWriter,
    started_at: timestamp::Timestamp,
    guard: DeprovisionGuard,
    mut pages: tokio::sync::mpsc::Receiver<(ListedPage, u32)>,
) -> (Option<DirectoryPull>, Result<(), RunError>) {
    let run = &writer.run;
    // Each page looks its members' teams and roles up by lists of ids, planned from these statistics.
    writer.db.refresh_outgrown_statistics();
    let begun = writer.write(|conn| {
        let ctx = context(conn, run, started_at)?;
        record_progress(conn, run, RunPhase::Listing, 0, 0, None)?;
        with_store(conn, |store| {
            Ok::<_, RunError>(DirectoryPull::begin(store, &ctx, &run.directory_id, guard)?)
        })
    });
    let mut pull = match begun {
        Ok(pull) => pull,
        Err(e) => return (None, Err(e)),
    };
    let mut sizer = BatchSizer::new(writer.db.write_budget(), 1, PAGES_PER_TRANSACTION);
    while let Some(first) = pages.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < sizer.next() {
            match pages.try_recv() {
                Ok(page) => batch.push(page),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let applied = writer.write(|conn| {
            sizer.timed(size, || {
                let mut requests = 0;
                let written = with_store(conn, |store| {
                    requests = batch.iter().map(|(_, made)| *made).max().unwrap_or(0);
                    pull.apply(store, batch.into_iter().map(|(page, _)| page).collect())?;
                    store.flush()?;
                    Ok::<_, RunError>(store.written())
                })?;
                let counts = Some(&pull.counts);
                record_progress(
                    conn,
                    run,
                    RunPhase::Listing,
                    requests,
                    pull.users_listed,
                    counts,
                )?;
                Ok::<_, RunError>(written)
            })
        });
        match applied {
            Ok(written) => writer.db.keep_statistics_current(written),
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
    writer: &PullWriter,
    mut pull: DirectoryPull,
    requests: u32,
    listing: std::time::Duration,
) -> Result<Pulled, RunError> {
    let started = std::time::Instant::now();
    let run = &writer.run;
    let stopped = |pull: &DirectoryPull| match pull.stopped() {
        Some(why) => Err(RunError::Message(format!(
            "{why}; the pull stopped before its deletions and deprovisioning"
        ))),
        None => Ok(()),
    };
    // Only reads: on a snapshot, so it holds no lock and (on SQLite) not the writer. PostgreSQL's
    // statistics are refreshed first, as the lookups in batches that follow plan from them.
    writer
        .db
        .read(|conn| Ok::<_, RunError>(crate::db::analyze(conn)?))?;
    writer
        .db
        .read_only(|conn| Ok::<_, RunError>(with_store(conn, |store| pull.decide(store))?))?;
    stopped(&pull)?;
    writer.in_transactions(100, |store, limit| {
        pull.remove_unlisted_memberships(store, limit)
    })?;
    stopped(&pull)?;
    writer.in_transactions(500, |store, limit| pull.finish(store, limit))?;
    stopped(&pull)?;
    writer.write(|conn| {
        let counts = Some(&pull.counts);
        record_progress(
            conn,
            run,
            RunPhase::ReconcilingTeams,
            requests,
            pull.users_listed,
            counts,
        )?;
        Ok(())
    })?;
    stopped(&pull)?;
    let comparing = started.elapsed();
    writer.in_transactions(500, |store, limit| pull.reconcile_teams(store, limit))?;
    stopped(&pull)?;
    writer.write(|conn| {
        diesel::update(directories::table.find(&run.directory_id))
            .set(directories::last_synced_at.eq(Some(timestamp::now())))
            .execute(conn)?;
        Ok(())
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

/// Records a running pull's progress on its run.
fn record_progress(
    conn: &mut DbConnection,
    run: &SyncRunRow,
    phase: RunPhase,
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
    directory_context(
        conn,
        run.directory_id.as_str(),
        Cause::SyncRun(run.id.clone()),
        started_at,
    )
}

/// The workspace `directory_id` belongs to, if it takes directory changes, as the context of changes
/// with this cause.
fn directory_context(
    conn: &mut DbConnection,
    directory_id: &str,
    cause: Cause,
    started_at: timestamp::Timestamp,
) -> Result<ApplyContext, RunError> {
    let directory: DirectoryRow = directories::table
        .find(directory_id)
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
        cause,
        event_at: started_at,
    })
}

/// Whether `at` is less than `spacing` ago.
fn is_within(at: crate::workos::timestamp::Timestamp, spacing: std::time::Duration) -> bool {
    chrono::Duration::from_std(spacing).is_ok_and(|spacing| timestamp::now() - at < spacing)
}

/// Ends the runs stopped processes left unfinished; see [`lease::end_interrupted_runs`].
pub fn end_interrupted_runs(db: &Database) -> Result<usize, DbError> {
    lease::end_interrupted_runs(db, true)
}

/// How long a lease-keeping round waits for the next.
pub const LEASE_ROUND: Duration = lease::RENEW_EVERY;
