//! Sync runs: full pulls of one directory, queued, run in the background and reported (rules 14–16).
//!
//! One run per directory at a time: within a process through a set of running directories, across
//! processes sharing PostgreSQL through an advisory lock held for the whole run.

pub mod schedule;

use crate::audit::Cause;
use crate::broker::BrokerClient;
use crate::db::models::{DirectoryRow, SyncRunRow, WorkspaceRow};
use crate::db::schema::{directories, sync_runs, workspaces};
use crate::db::{Database, DbConnection, DbError, PooledConnection};
use crate::directory_sync::directories::attach_listed;
use crate::directory_sync::reconcile::{reconcile_directory, DeprovisionGuard, DirectoryListing};
use crate::directory_sync::{workspace::check_qualifies, ApplyContext, ApplyError};
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

/// Starts and runs full pulls.
#[derive(Clone)]
pub struct SyncRunner {
    db: Database,
    client: BrokerClient,
    max_share: f64,
    running: Arc<Mutex<HashSet<String>>>,
    metrics: Metrics,
}

impl SyncRunner {
    pub fn new(db: Database, client: BrokerClient, max_share: f64) -> Self {
        Self {
            db,
            client,
            max_share,
            running: Arc::default(),
            metrics: Metrics::default(),
        }
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
        };
        // A directory no webhook has announced yet may still be known to the broker.
        let listed = match self.client.list_directories(None).await {
            Ok(listing) => listing.items.into_iter().find(|d| d.id == directory_id),
            Err(e) => {
                tracing::warn!(directory = %directory_id, error = %e, "could not list the broker's directories");
                None
            }
        };
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
                        return Ok(false);
                    }
                    diesel::insert_into(sync_runs::table)
                        .values(&run)
                        .execute(conn)?;
                    Ok::<_, DbError>(true)
                })
            })
            .await
            .map_err(|e| StartError::Queue(e.to_string()))?
        };
        match queued {
            Ok(true) => {}
            other => {
                self.release(directory_id);
                return match other {
                    Ok(_) => Err(StartError::UnknownDirectory),
                    Err(e) => Err(e.into()),
                };
            }
        }
        self.metrics.run_started(trigger);
        let runner = self.clone();
        let id = run.id.clone();
        tokio::spawn(async move {
            let directory = run.directory_id.clone();
            runner.execute(run).await;
            runner.release(&directory);
        });
        Ok(id)
    }

    fn release(&self, directory_id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(directory_id);
    }

    async fn execute(&self, run: SyncRunRow) {
        let outcome = self.pull(&run).await;
        let (status, counts, error, requests) = match outcome {
            Ok((held, counts, requests)) => (
                if held { "held" } else { "succeeded" },
                Some(counts),
                None,
                requests,
            ),
            Err(error) => ("failed", None, Some(error.to_string()), 0),
        };
        self.metrics.run_finished(status);
        match &error {
            Some(e) => {
                tracing::warn!(run = %run.id, directory = %run.directory_id, error = %e, "sync run failed; nothing was deleted")
            }
            None => {
                tracing::info!(run = %run.id, directory = %run.directory_id, status, "sync run finished")
            }
        }
        let db = self.db.clone();
        let id = run.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            db.write(|conn| {
                diesel::update(sync_runs::table.find(&id))
                    .set((
                        sync_runs::status.eq(status),
                        sync_runs::counts.eq(counts),
                        sync_runs::error.eq(error),
                        sync_runs::requests.eq(requests),
                        sync_runs::finished_at.eq(Some(timestamp::now())),
                    ))
                    .execute(conn)
                    .map_err(DbError::from)
            })
        })
        .await;
    }

    /// Lists the directory and applies the listing; returns whether deprovisioning was held, the counts and
    /// the requests made.
    async fn pull(&self, run: &SyncRunRow) -> Result<(bool, String, i32), RunError> {
        let started_at = timestamp::now();
        let lock = {
            let (db, run) = (self.db.clone(), run.clone());
            tokio::task::spawn_blocking(move || lock_directory(&db, &run, started_at))
                .await
                .map_err(|e| RunError::Message(e.to_string()))??
        };
        let listing = self
            .client
            .users_with_groups(&run.directory_id)
            .await
            .map_err(|e| RunError::Message(format!("listing the directory failed: {e}")))?;
        let requests = listing.requests as i32;
        let (db, run, force, max_share) = (self.db.clone(), run.clone(), run.force, self.max_share);
        let result = tokio::task::spawn_blocking(move || {
            db.write(|conn| {
                let ctx = context(conn, &run, started_at)?;
                let listed = DirectoryListing {
                    directory_id: &run.directory_id,
                    users: &listing.users,
                    groups: &listing.groups,
                    memberships: &listing.memberships,
                };
                let guard = DeprovisionGuard {
                    max_share,
                    min_count: 10,
                    force,
                };
                let counts = reconcile_directory(conn, &ctx, &listed, guard)
                    .map_err(|ApplyError::Db(e)| RunError::from(e))?;
                diesel::update(directories::table.find(&run.directory_id))
                    .set(directories::last_synced_at.eq(Some(timestamp::now())))
                    .execute(conn)?;
                Ok::<_, RunError>((
                    counts.held > 0,
                    serde_json::to_string(&counts).unwrap_or_default(),
                    requests,
                ))
            })
        })
        .await
        .map_err(|e| RunError::Message(e.to_string()))?;
        drop(lock);
        result
    }
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

/// Marks the run running and, on PostgreSQL, takes the directory's advisory lock on a connection held
/// until the returned guard is dropped.
fn lock_directory(
    db: &Database,
    run: &SyncRunRow,
    started_at: timestamp::Timestamp,
) -> Result<Option<PooledConnection>, RunError> {
    let mut conn = db.conn()?;
    let held = match &mut *conn {
        DbConnection::Postgresql(c) => {
            let locked: bool = diesel::select(
                diesel::dsl::sql::<Bool>(
                    "pg_try_advisory_lock(7243003, hashtext(current_schema() || '/' || ",
                )
                .bind::<Text, _>(&run.directory_id)
                .sql("))"),
            )
            .get_result(c)?;
            if !locked {
                return Err(RunError::Message(
                    "another Rollcall instance is pulling this directory".into(),
                ));
            }
            true
        }
        DbConnection::Sqlite(_) => false,
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
    Ok(held.then_some(conn))
}
