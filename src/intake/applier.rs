//! Applies stored deliveries in arrival order: each in its own savepoint, so one that fails is retried
//! later (a bounded number of times, then parked as `failed`) without holding up the others.

use crate::db::models::WebhookEventRow;
use crate::db::schema::webhook_events;
use crate::db::{Database, DbConnection, DbError};
use crate::directory_sync::{self, ApplyError, ApplyOutcome};
use crate::domain::EventStatus;
use crate::workos::events::Event;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
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

/// How many deliveries one transaction applies: small enough that intake never waits long behind it.
const BATCH: i64 = 64;

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub processed: usize,
    pub failed_attempts: usize,
    /// Directories whose `dsync.activated` was applied in the batch (committed once the report is returned).
    pub activated: Vec<String>,
}

/// Told each directory whose `dsync.activated` was applied, after the batch that applied it commits.
pub type ActivationHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The event type that announces a directory became active.
const DIRECTORY_ACTIVATED: &str = "dsync.activated";

/// The function that applies one event; the real one is [`directory_sync::apply_event`].
pub type ApplyFn = fn(&mut DbConnection, &Event, Timestamp) -> Result<ApplyOutcome, ApplyError>;

/// Applies up to one batch of due deliveries; returns what it did.
pub fn apply_due(
    db: &Database,
    policy: RetryPolicy,
    apply: ApplyFn,
) -> Result<BatchReport, DbError> {
    // Intake goes first: acknowledging the broker matters more than applying a moment sooner.
    db.write_behind_urgent(|conn| {
        // Several instances share the queue: one applies at a time, so rules see each other's writes.
        if !crate::db::lock_apply(conn, false)? {
            return Ok(BatchReport::default());
        }
        let now = timestamp::now();
        let due: Vec<WebhookEventRow> = webhook_events::table
            .filter(webhook_events::status.eq(EventStatus::Received.as_str()))
            .filter(
                webhook_events::next_attempt_at
                    .is_null()
                    .or(webhook_events::next_attempt_at.le(now)),
            )
            .order(webhook_events::id)
            .limit(BATCH)
            .select(WebhookEventRow::as_select())
            .load(conn)?;
        let mut report = BatchReport::default();
        for row in &due {
            if report.processed > 0 && db.urgent_writer_waiting() {
                break;
            }
            match apply_one(conn, row, policy, apply)? {
                Settled::Failed => report.failed_attempts += 1,
                Settled::Activated(directory) => report.activated.push(directory),
                Settled::Done => {}
            }
            report.processed += 1;
        }
        Ok(report)
    })
}

/// What became of one delivery.
enum Settled {
    Done,
    /// A `dsync.activated` was applied to this directory.
    Activated(String),
    Failed,
}

/// Applies one delivery and records its status.
fn apply_one(
    conn: &mut DbConnection,
    row: &WebhookEventRow,
    policy: RetryPolicy,
    apply: ApplyFn,
) -> Result<Settled, DbError> {
    let now = timestamp::now();
    let settle = |conn: &mut DbConnection, status: EventStatus, reason: Option<String>| {
        diesel::update(webhook_events::table.find(row.id))
            .set((
                webhook_events::status.eq(status.as_str()),
                webhook_events::reason.eq(reason),
                webhook_events::attempts.eq(row.attempts + 1),
                webhook_events::next_attempt_at.eq(None::<Timestamp>),
                webhook_events::processed_at.eq(Some(now)),
            ))
            .execute(conn)
    };
    if let Some(first) = earlier_delivery(conn, row)? {
        settle(
            conn,
            EventStatus::Duplicate,
            Some(format!("already received as delivery {first}")),
        )?;
        return Ok(Settled::Done);
    }
    let event = match Event::parse(&row.body) {
        Ok(event) => event,
        Err(e) => {
            settle(conn, EventStatus::Invalid, Some(e.0))?;
            return Ok(Settled::Done);
        }
    };
    // A nested transaction is a savepoint: a failed apply leaves nothing behind.
    match conn.transaction(|c| apply(c, &event, row.received_at)) {
        Ok(outcome) => {
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
            settle(conn, status, reason)?;
            Ok(activated.map_or(Settled::Done, Settled::Activated))
        }
        Err(error) => {
            let attempts = row.attempts + 1;
            let parked = attempts >= policy.max_attempts;
            tracing::warn!(
                delivery = row.id, event_id = ?row.event_id, attempts, parked, error = %error,
                "applying a webhook event failed"
            );
            let next = (!parked).then(|| now + policy.backoff(attempts));
            let status = if parked {
                EventStatus::Failed
            } else {
                EventStatus::Received
            };
            diesel::update(webhook_events::table.find(row.id))
                .set((
                    webhook_events::status.eq(status.as_str()),
                    webhook_events::reason.eq(Some(error.to_string())),
                    webhook_events::attempts.eq(attempts),
                    webhook_events::next_attempt_at.eq(next),
                    webhook_events::processed_at.eq(Some(now)),
                ))
                .execute(conn)?;
            Ok(Settled::Failed)
        }
    }
}

/// The first delivery of the same event id, if this one is a redelivery.
fn earlier_delivery(conn: &mut DbConnection, row: &WebhookEventRow) -> QueryResult<Option<i64>> {
    let Some(event_id) = &row.event_id else {
        return Ok(None);
    };
    webhook_events::table
        .filter(webhook_events::event_id.eq(event_id))
        .filter(webhook_events::id.lt(row.id))
        .select(diesel::dsl::min(webhook_events::id))
        .first(conn)
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

/// The background applier thread.
pub struct Applier {
    stop: Arc<AtomicBool>,
    wakeup: Wakeup,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Applier {
    /// Starts applying deliveries as they arrive (and every second, for retries and other instances).
    pub fn start(db: Database, policy: RetryPolicy, wakeup: Wakeup) -> Self {
        Self::start_with(db, policy, wakeup, None)
    }

    /// As [`Applier::start`]; `on_activated` is told each directory a `dsync.activated` activated.
    pub fn start_with(
        db: Database,
        policy: RetryPolicy,
        wakeup: Wakeup,
        on_activated: Option<ActivationHook>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, wakeup) = (stop.clone(), wakeup.clone());
            std::thread::Builder::new()
                .name("event-applier".into())
                .spawn(move || run(db, policy, wakeup, stop, on_activated))
                .expect("the applier thread starts")
        };
        Self {
            stop,
            wakeup,
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

fn run(
    db: Database,
    policy: RetryPolicy,
    wakeup: Wakeup,
    stop: Arc<AtomicBool>,
    on_activated: Option<ActivationHook>,
) {
    yield_cpu_to_intake();
    while !stop.load(Ordering::SeqCst) {
        match apply_due(&db, policy, directory_sync::apply_event) {
            Ok(report) if report.processed > 0 => {
                if let Some(hook) = &on_activated {
                    for directory in &report.activated {
                        hook(directory);
                    }
                }
                continue;
            }
            Ok(_) => wakeup.wait(Duration::from_secs(1)),
            Err(e) => {
                tracing::error!(error = %e, "the applier cannot reach the database; retrying in 2 s");
                wakeup.wait(Duration::from_secs(2));
            }
        }
    }
}
