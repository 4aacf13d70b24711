//! The tail in `rollcall serve`: catches up every poll interval, or at once when a verified webhook wakes
//! it; backs off after an error without losing its place; starts over from a full pull when it has no
//! place to read from.

use super::place::{self, TailLease};
use super::{blocking, catch_up, TailError};
use crate::broker::BrokerClient;
use crate::db::schema::sync_runs;
use crate::db::Database;
use crate::domain::{RunStatus, RunTrigger};
use crate::metrics::Metrics;
use crate::sync_runs::schedule::scheduled_directories;
use crate::sync_runs::{StartError, SyncRunner};
use crate::workos::timestamp;
use diesel::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

crate::domain::text_enum!(
    /// What the tail is doing.
    TailState {
        /// No tail runs in this process (`ROLLCALL_EVENT_SOURCE=webhooks`, no API key, or a poll interval
        /// of 0).
        Off => "off",
        /// Another instance holds the tail; this one waits to take over.
        Standby => "standby",
        /// Caught up; waiting for the poll interval or a webhook.
        Idle => "idle",
        /// Reading events.
        Polling => "polling",
        /// Waiting after an error before it tries again, its place kept.
        BackingOff => "backing_off",
        /// Pulling every active directory in full before reading on from the pull's start.
        Resyncing => "resyncing",
    }
);

/// The first wait after an error; doubled after each further one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The waits after consecutive errors (`backon`'s exponential backoff, without end).
fn backoff() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .without_max_times()
        .build()
}
/// How often a start-over checks whether its pulls have ended.
const RUN_CHECK: Duration = Duration::from_millis(250);

struct Shared {
    wake: Notify,
    state: Mutex<TailState>,
}

/// A handle to this process's tail: wakes it and tells what it does. Cheap to clone.
#[derive(Clone)]
pub struct EventTail(Arc<Shared>);

impl EventTail {
    /// A tail that does not run.
    pub fn off() -> Self {
        Self(Arc::new(Shared {
            wake: Notify::new(),
            state: Mutex::new(TailState::Off),
        }))
    }

    /// Asks the tail to catch up now (a verified webhook came); a wake while it reads makes it read once
    /// more afterwards.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// What the tail is doing.
    pub fn state(&self) -> TailState {
        *self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, state: TailState) {
        *self.0.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// The tail, and its work for the service to run in the background until it stops: it reads whenever
    /// it holds the lease, every `interval` or when woken; `on_stored` is called after each page it stores
    /// (to wake the applier).
    pub fn start(
        db: Database,
        client: BrokerClient,
        runner: SyncRunner,
        interval: Duration,
        metrics: Metrics,
        on_stored: Arc<dyn Fn() + Send + Sync>,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let tail = Self::off();
        tail.set(TailState::Standby);
        let work = tail
            .clone()
            .run(db, client, runner, interval, metrics, on_stored);
        (tail, work)
    }

    async fn run(
        self,
        db: Database,
        client: BrokerClient,
        runner: SyncRunner,
        interval: Duration,
        metrics: Metrics,
        on_stored: Arc<dyn Fn() + Send + Sync>,
    ) {
        let mut lease: Option<TailLease> = None;
        let mut waits = backoff();
        loop {
            if !lease.as_mut().is_some_and(TailLease::holds) {
                lease = match blocking(&db, TailLease::for_service).await {
                    Ok(Ok(Some(lease))) => {
                        tracing::info!("this instance runs the Events API tail");
                        Some(lease)
                    }
                    Ok(Ok(None)) => {
                        self.set(TailState::Standby);
                        None
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not ask the database for the Events API tail's lease");
                        self.set(TailState::Standby);
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not ask the database for the Events API tail's lease");
                        None
                    }
                };
            }
            if let Some(lease) = &mut lease {
                self.set(TailState::Polling);
                let caught_up = catch_up(&db, &client, lease, &metrics, |_| on_stored()).await;
                let failed = match caught_up {
                    Ok(done) => {
                        if done.fetched > 0 {
                            tracing::debug!(
                                fetched = done.fetched,
                                stored = done.stored,
                                pages = done.pages,
                                "Events API tail caught up"
                            );
                        }
                        None
                    }
                    Err(TailError::NotStarted) => {
                        tracing::info!("the Events API tail starts: every active directory is pulled in full, then events are read from the pull's start");
                        self.set(TailState::Resyncing);
                        start_over(&db, &runner).await.err()
                    }
                    Err(TailError::CursorLost(why)) => {
                        tracing::warn!(reason = %why, "the Events API tail lost its place: every active directory is pulled in full, then events are read from the pull's start");
                        metrics.event_tail_cursor_lost();
                        self.set(TailState::Resyncing);
                        start_over(&db, &runner).await.err()
                    }
                    Err(e) => Some(e.to_string()),
                };
                match failed {
                    None => {
                        waits = backoff();
                        self.set(TailState::Idle);
                    }
                    Some(why) => {
                        let wait = waits.next().unwrap_or(MAX_BACKOFF);
                        tracing::warn!(error = %why, wait_ms = wait.as_millis() as u64, "the Events API tail backs off; its place is kept");
                        self.set(TailState::BackingOff);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            tokio::select! {
                () = self.0.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Pulls every active directory in full and then has the tail read on from the time before the pulls
/// began: what happened before is in the pulls, what happened after is read as events (both paths apply
/// through the same ordering rules, so an event the pull already saw changes nothing).
async fn start_over(db: &Database, runner: &SyncRunner) -> Result<(), String> {
    let started = timestamp::now();
    let directories = blocking(db, |db| {
        db.read(|conn| scheduled_directories(conn).map_err(crate::db::DbError::from))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    for directory in directories {
        loop {
            match runner
                .start(&directory, RunTrigger::EventCursorLost, false)
                .await
            {
                Ok(run) => {
                    runs.push(run);
                    break;
                }
                // A pull already running may have listed part of the directory before `started`: wait for
                // it and pull again.
                Err(StartError::InProgress) => tokio::time::sleep(RUN_CHECK).await,
                Err(StartError::UnknownDirectory) => break,
                Err(e) => return Err(format!("could not start a full pull of {directory}: {e}")),
            }
        }
    }
    for run in runs {
        loop {
            let id = run.clone();
            let status = blocking(db, move |db| {
                db.read(|conn| {
                    sync_runs::table
                        .find(&id)
                        .select(sync_runs::status)
                        .first::<RunStatus>(conn)
                        .map_err(crate::db::DbError::from)
                })
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            match status {
                RunStatus::Succeeded => break,
                RunStatus::Held => {
                    tracing::warn!(run = %run, "the Events API tail's full pull was held (too many deprovisionings): the tail reads on, the held changes wait for an operator");
                    break;
                }
                RunStatus::Failed => return Err(format!("the full pull {run} failed")),
                RunStatus::Queued | RunStatus::Running => tokio::time::sleep(RUN_CHECK).await,
            }
        }
    }
    blocking(db, move |db| place::restart_from(db, started))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
