//! Applies stored deliveries in the order they arrived, a batch at a time.
//!
//! The queue is the delivery log itself, read from a cursor: `apply_cursor` holds the id of the last
//! delivery the applier took, so finding new work is a range read of the primary key that never passes
//! over applied history, whether or not the table has been vacuumed. Deliveries waiting for a retry are
//! found through an index that holds only them.
//!
//! A batch is applied as a set, in one transaction holding the serialization lock: what it needs is loaded
//! in a few queries, the rules run per event in arrival order (rule 6), and the changes are written back in
//! bulk. A batch that fails is applied again one delivery at a time, each in its own savepoint, so a
//! delivery that fails is retried later (a bounded number of times, then parked as `failed`) without
//! holding up the others.

use crate::db::models::WebhookEventRow;
use crate::db::schema::{apply_cursor, webhook_events};
use crate::db::{Database, DbConnection, DbError};
use crate::directory_sync::store::Store;
use crate::directory_sync::{self, ApplyError, ApplyOutcome};
use crate::domain::EventStatus;
use crate::metrics::Metrics;
use crate::workos::events::Event;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How failed applies are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before an event is parked as `failed`.
    pub max_attempts: i32,
    /// The wait before the first retry; it doubles with each attempt.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 16) as u32;
        self.first_backoff.saturating_mul(1 << doublings)
    }
}

/// The most deliveries one transaction applies.
const BATCH: i64 = 500;

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Deliveries given an outcome or a failed attempt.
    pub processed: usize,
    /// New deliveries the cursor moved past (some need nothing done: stored invalid, or waiting for a retry).
    pub taken: usize,
    pub failed_attempts: usize,
    /// Directories whose `dsync.activated` was applied in the batch (committed once the report is returned).
    pub activated: Vec<String>,
    /// For each delivery settled, how long it waited from being received to being applied.
    pub waited: Vec<Duration>,
    /// Rows the batch wrote besides the deliveries' own.
    pub written: usize,
}

/// Told each directory whose `dsync.activated` was applied, after the batch that applied it commits.
pub type ActivationHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The event type that announces a directory became active.
const DIRECTORY_ACTIVATED: &str = "dsync.activated";

/// The function that applies one event; the real one is [`directory_sync::apply_event`].
pub type ApplyFn = fn(&mut Store<'_>, &Event, Timestamp) -> Result<ApplyOutcome, ApplyError>;

/// Applies up to one batch of due deliveries: new ones after the cursor, and retries whose time has come.
pub fn apply_due(
    db: &Database,
    policy: RetryPolicy,
    apply: ApplyFn,
) -> Result<BatchReport, DbError> {
    // Intake goes first: acknowledging the broker matters more than applying a moment sooner.
    db.write_behind_urgent(|conn| {
        let now = timestamp::now();
        let cursor: i64 = apply_cursor::table
            .find(1)
            .select(apply_cursor::applied_through)
            .first(conn)?;
        let mut due: Vec<WebhookEventRow> = webhook_events::table
            .filter(webhook_events::next_attempt_at.le(now))
            .filter(webhook_events::status.eq(EventStatus::Received.as_str()))
            .order(webhook_events::next_attempt_at)
            .limit(BATCH)
            .select(WebhookEventRow::as_select())
            .load(conn)?;
        let fresh: Vec<WebhookEventRow> = webhook_events::table
            .filter(webhook_events::id.gt(cursor))
            .order(webhook_events::id)
            .limit(BATCH - due.len() as i64)
            .select(WebhookEventRow::as_select())
            .load(conn)?;
        let taken_through = fresh.last().map(|row| row.id);
        let taken = fresh.len();
        // Stored as something else (invalid), or waiting for a retry that is not due: nothing to do now.
        due.extend(fresh.into_iter().filter(|row| {
            row.status == EventStatus::Received.as_str() && row.next_attempt_at.is_none()
        }));
        due.sort_by_key(|row| row.id);
        let mut report = apply_deliveries(conn, &due, policy, apply, now)?;
        report.taken = taken;
        if let Some(through) = taken_through {
            diesel::update(apply_cursor::table.find(1))
                .set(apply_cursor::applied_through.eq(through))
                .execute(conn)?;
        }
        Ok(report)
    })
}

/// What became of one delivery.
enum Settlement {
    /// An outcome, final until an operator retries it.
    Settled {
        status: EventStatus,
        reason: Option<String>,
        /// The directory a `dsync.activated` activated.
        activated: Option<String>,
    },
    /// Applying failed; retried later or parked.
    Failed(String),
}

impl Settlement {
    fn of(outcome: ApplyOutcome, event: &Event) -> Self {
        let activated = (matches!(outcome, ApplyOutcome::Applied)
            && event.event_type == DIRECTORY_ACTIVATED)
            .then(|| event.directory_id().map(str::to_string))
            .flatten();
        let (status, reason) = match outcome {
            ApplyOutcome::Applied => (EventStatus::Applied, None),
            ApplyOutcome::Ignored => (
                EventStatus::Ignored,
                Some("nothing to apply for this event type".into()),
            ),
            ApplyOutcome::Skipped(why) => (EventStatus::Skipped, Some(why.to_string())),
            ApplyOutcome::Conflict(what) => (EventStatus::Conflict, Some(what)),
        };
        Settlement::Settled {
            status,
            reason,
            activated,
        }
    }

    fn final_status(status: EventStatus, reason: String) -> Self {
        Settlement::Settled {
            status,
            reason: Some(reason),
            activated: None,
        }
    }
}

/// Applies deliveries (in id order) and records what became of each.
fn apply_deliveries(
    conn: &mut DbConnection,
    rows: &[WebhookEventRow],
    policy: RetryPolicy,
    apply: ApplyFn,
    now: Timestamp,
) -> QueryResult<BatchReport> {
    let first_of = first_deliveries(conn, rows)?;
    let mut settled: HashMap<i64, Settlement> = HashMap::new();
    let mut events: Vec<(&WebhookEventRow, Event)> = Vec::new();
    for row in rows {
        let first = row.event_id.as_ref().and_then(|id| first_of.get(id));
        if let Some(first) = first.filter(|first| **first < row.id) {
            let reason = format!("already received as delivery {first}");
            settled.insert(
                row.id,
                Settlement::final_status(EventStatus::Duplicate, reason),
            );
            continue;
        }
        match Event::parse(&row.body) {
            Ok(event) => events.push((row, event)),
            Err(e) => {
                settled.insert(row.id, Settlement::final_status(EventStatus::Invalid, e.0));
            }
        }
    }
    // A nested transaction is a savepoint: a failed apply leaves nothing behind.
    let mut written = 0;
    match conn.transaction(|c| apply_set(c, &events, apply)) {
        Ok(applied) => {
            settled.extend(applied.outcomes);
            written += applied.written;
        }
        Err(error) if events.len() > 1 => {
            tracing::warn!(
                deliveries = events.len(),
                %error,
                "a batch of deliveries failed to apply; applying them one at a time"
            );
            for one in events.chunks(1) {
                match conn.transaction(|c| apply_set(c, one, apply)) {
                    Ok(applied) => {
                        settled.extend(applied.outcomes);
                        written += applied.written;
                    }
                    Err(error) => {
                        settled.insert(one[0].0.id, Settlement::Failed(error.to_string()));
                    }
                }
            }
        }
        Err(error) => {
            if let Some((row, _)) = events.first() {
                settled.insert(row.id, Settlement::Failed(error.to_string()));
            }
        }
    }
    let mut report = record_settlements(conn, rows, settled, policy, now)?;
    report.written = written;
    Ok(report)
}

/// Applies events as one set over one store; returns each delivery's outcome.
fn apply_set(
    conn: &mut DbConnection,
    events: &[(&WebhookEventRow, Event)],
    apply: ApplyFn,
) -> Result<Applied, ApplyError> {
    directory_sync::with_store(conn, |store| {
        let all: Vec<&Event> = events.iter().map(|(_, event)| event).collect();
        directory_sync::prefetch_events(store, &all)?;
        let mut outcomes = Vec::with_capacity(events.len());
        for (row, event) in events {
            let outcome = apply(store, event, row.received_at)?;
            outcomes.push((row.id, Settlement::of(outcome, event)));
        }
        store.flush()?;
        Ok(Applied {
            outcomes,
            written: store.written(),
        })
    })
}

/// What applying a set of events did.
struct Applied {
    outcomes: Vec<(i64, Settlement)>,
    /// Rows written.
    written: usize,
}

/// The first delivery of each event id among these deliveries (a later one is a redelivery).
fn first_deliveries(
    conn: &mut DbConnection,
    rows: &[WebhookEventRow],
) -> QueryResult<HashMap<String, i64>> {
    let ids: Vec<&str> = rows.iter().filter_map(|r| r.event_id.as_deref()).collect();
    let mut first = HashMap::new();
    for chunk in ids.chunks(500) {
        let found: Vec<(Option<String>, Option<i64>)> = webhook_events::table
            .filter(webhook_events::event_id.eq_any(chunk))
            .group_by(webhook_events::event_id)
            .select((
                webhook_events::event_id,
                diesel::dsl::min(webhook_events::id),
            ))
            .load(conn)?;
        first.extend(found.into_iter().filter_map(|(e, id)| Some((e?, id?))));
    }
    Ok(first)
}

/// Records each delivery's status; the common case (applied, no reason) in one statement.
fn record_settlements(
    conn: &mut DbConnection,
    rows: &[WebhookEventRow],
    mut settled: HashMap<i64, Settlement>,
    policy: RetryPolicy,
    now: Timestamp,
) -> QueryResult<BatchReport> {
    let mut report = BatchReport::default();
    let mut applied = Vec::new();
    for row in rows {
        let Some(settlement) = settled.remove(&row.id) else {
            continue;
        };
        report.processed += 1;
        match settlement {
            Settlement::Settled {
                status,
                reason,
                activated,
            } => {
                report.activated.extend(activated);
                report
                    .waited
                    .push((now - row.received_at).to_std().unwrap_or(Duration::ZERO));
                if status == EventStatus::Applied && reason.is_none() {
                    applied.push(row.id);
                    continue;
                }
                diesel::update(webhook_events::table.find(row.id))
                    .set((
                        webhook_events::status.eq(status.as_str()),
                        webhook_events::reason.eq(reason),
                        webhook_events::attempts.eq(row.attempts + 1),
                        webhook_events::next_attempt_at.eq(None::<Timestamp>),
                        webhook_events::processed_at.eq(Some(now)),
                    ))
                    .execute(conn)?;
            }
            Settlement::Failed(error) => {
                report.failed_attempts += 1;
                let attempts = row.attempts + 1;
                let parked = attempts >= policy.max_attempts;
                tracing::warn!(
                    delivery = row.id, event_id = ?row.event_id, attempts, parked, error = %error,
                    "applying a webhook event failed"
                );
                let (status, next) = if parked {
                    (EventStatus::Failed, None)
                } else {
                    (EventStatus::Received, Some(now + policy.backoff(attempts)))
                };
                diesel::update(webhook_events::table.find(row.id))
                    .set((
                        webhook_events::status.eq(status.as_str()),
                        webhook_events::reason.eq(Some(error)),
                        webhook_events::attempts.eq(attempts),
                        webhook_events::next_attempt_at.eq(next),
                        webhook_events::processed_at.eq(Some(now)),
                    ))
                    .execute(conn)?;
            }
        }
    }
    for chunk in applied.chunks(1000) {
        diesel::update(webhook_events::table.filter(webhook_events::id.eq_any(chunk)))
            .set((
                webhook_events::status.eq(EventStatus::Applied.as_str()),
                webhook_events::reason.eq(None::<String>),
                webhook_events::attempts.eq(webhook_events::attempts + 1),
                webhook_events::next_attempt_at.eq(None::<Timestamp>),
                webhook_events::processed_at.eq(Some(now)),
            ))
            .execute(conn)?;
    }
    Ok(report)
}

/// Wakes the applier when deliveries arrive.
#[derive(Clone, Default)]
pub struct Wakeup {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Wakeup {
    /// Signals that there may be work.
    pub fn notify(&self) {
        let (flag, condvar) = &*self.inner;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        condvar.notify_one();
    }

    /// Waits for a signal or the timeout.
    fn wait(&self, timeout: Duration) {
        let (flag, condvar) = &*self.inner;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }
}

/// Whether the applier thread is running: false once it has ended, whether asked to or not (a panic).
#[derive(Clone, Default)]
pub struct ApplierHealth(Arc<AtomicBool>);

impl ApplierHealth {
    /// Whether the applier is running.
    pub fn running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Marks the applier stopped when its thread ends, however it ends.
struct RunningFlag(ApplierHealth);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0 .0.store(false, Ordering::SeqCst);
        if std::thread::panicking() {
            tracing::error!("the applier stopped after a panic; deliveries are stored but not applied until the service restarts");
        }
    }
}

/// The background applier thread.
pub struct Applier {
    stop: Arc<AtomicBool>,
    wakeup: Wakeup,
    health: ApplierHealth,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the applier needs besides the database.
#[derive(Clone, Default)]
pub struct ApplierOptions {
    pub policy: RetryPolicy,
    pub wakeup: Wakeup,
    /// Told each directory a `dsync.activated` activated.
    pub on_activated: Option<ActivationHook>,
    /// Where the time from receipt to applied is recorded.
    pub metrics: Metrics,
}

impl Applier {
    /// Starts applying deliveries as they arrive (and every second, for retries and other instances).
    pub fn start(db: Database, options: ApplierOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let health = ApplierHealth(Arc::new(AtomicBool::new(true)));
        let wakeup = options.wakeup.clone();
        let thread = {
            let (stop, flag) = (stop.clone(), RunningFlag(health.clone()));
            std::thread::Builder::new()
                .name("event-applier".into())
                .spawn(move || {
                    let _flag = flag;
                    run(db, options, stop)
                })
                .expect("the applier thread starts")
        };
        Self {
            stop,
            wakeup,
            health,
            thread: Some(thread),
        }
    }

    /// A handle that asks the applier to stop without waiting for it.
    pub fn stopper(&self) -> ApplierStopper {
        ApplierStopper {
            stop: self.stop.clone(),
            wakeup: self.wakeup.clone(),
        }
    }

    /// What wakes the applier when deliveries were stored.
    pub fn wakeup(&self) -> Wakeup {
        self.wakeup.clone()
    }

    /// Whether the applier thread is still running.
    pub fn health(&self) -> ApplierHealth {
        self.health.clone()
    }

    /// Finishes the batch in hand and stops.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wakeup.notify();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Asks an [`Applier`] to stop after the batch in hand.
#[derive(Clone)]
pub struct ApplierStopper {
    stop: Arc<AtomicBool>,
    wakeup: Wakeup,
}

impl ApplierStopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wakeup.notify();
    }
}

/// Lowers the calling thread's CPU priority, so acknowledging webhooks wins the cores when both are busy.
fn yield_cpu_to_intake() {
    // On Linux, PRIO_PROCESS with id 0 names the calling thread only.
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn run(db: Database, options: ApplierOptions, stop: Arc<AtomicBool>) {
    yield_cpu_to_intake();
    while !stop.load(Ordering::SeqCst) {
        match apply_due(&db, options.policy, directory_sync::apply_event) {
            Ok(report) if report.processed > 0 || report.taken > 0 => {
                db.keep_statistics_current(report.taken + report.written);
                for waited in &report.waited {
                    options.metrics.delivery_applied(*waited);
                }
                if let Some(hook) = &options.on_activated {
                    for directory in &report.activated {
                        hook(directory);
                    }
                }
                continue;
            }
            Ok(_) => options.wakeup.wait(Duration::from_secs(1)),
            Err(e) => {
                tracing::error!(error = %e, "the applier cannot reach the database; retrying in 2 s");
                options.wakeup.wait(Duration::from_secs(2));
            }
        }
    }
}

/// The backlog as the database shows it, for every instance sharing it: deliveries past the applier's
/// cursor (read through the primary key; the oldest is the first), and those waiting for a retry (through
/// their own index).
pub fn backlog(conn: &mut DbConnection) -> Result<crate::metrics::Backlog, DbError> {
    let cursor: i64 = apply_cursor::table
        .find(1)
        .select(apply_cursor::applied_through)
        .first(conn)?;
    let new: i64 = webhook_events::table
        .filter(webhook_events::id.gt(cursor))
        .count()
        .get_result(conn)?;
    let new_oldest: Option<Timestamp> = webhook_events::table
        .filter(webhook_events::id.gt(cursor))
        .order(webhook_events::id)
        .select(webhook_events::received_at)
        .first(conn)
        .optional()?;
    let (retrying, retrying_oldest): (i64, Option<Timestamp>) = webhook_events::table
        .filter(webhook_events::next_attempt_at.is_not_null())
        .filter(webhook_events::status.eq(EventStatus::Received.as_str()))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(webhook_events::received_at),
        ))
        .first(conn)?;
    let oldest = [new_oldest, retrying_oldest].into_iter().flatten().min();
    Ok(crate::metrics::Backlog {
        waiting: new + retrying,
        oldest_age: oldest
            .and_then(|t| (timestamp::now() - t).to_std().ok())
            .unwrap_or_default(),
        event_tail: None,
    })
}
