//! Applies stored deliveries in the order they arrived, per directory, a batch at a time.
//!
//! Deliveries are applied in lanes, one per directory (SPEC rule 18): the order that matters is a
//! directory's (rule 6 decides the rest), so one directory's backlog, or a workspace whose lock an admin
//! request or a pull holds, never holds up another's. Each lane is read from its own cursor
//! (`apply_lanes`): finding a lane's new work is a range read of its `(lane, id)` index that never passes
//! over applied history, whether or not the table has been vacuumed. Intake records each lane's newest
//! delivery (`lane_heads`) in the transaction that stores it, so the lanes with work are those whose head
//! is past their cursor. Deliveries waiting for a retry are found through an index that holds only them.
//!
//! A lane's batch is applied as a set, in one transaction that holds the lane (across instances on
//! PostgreSQL) and the lock of every workspace its events touch, taken without waiting: a lane whose
//! workspace is busy is put aside for a moment and the workers go on with other lanes. What the batch
//! needs is loaded in a few queries, the rules run per event in arrival order, and the changes are
//! written back in bulk. A batch that fails is applied again one delivery at a time, each in its own
//! savepoint, so a delivery that fails is retried later (a bounded number of times, then parked as
//! `failed`) without holding up the others. On SQLite a batch is sized to hold the single writer only
//! briefly ([`BatchSizer`]).

use crate::db::models::WebhookEventRow;
use crate::db::schema::{apply_lanes, lane_heads, webhook_events};
use crate::db::{BatchSizer, Database, DbConnection, DbError, Work};
use crate::directory_sync::store::Store;
use crate::directory_sync::{self, workspace, ApplyError, ApplyOutcome};
use crate::domain::EventStatus;
use crate::metrics::Metrics;
use crate::on_backend;
use crate::workos::events::Event;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use diesel::upsert::excluded;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
const BATCH: usize = 500;
/// The fewest a batch takes on SQLite, however slow the last ones were.
const LEAST_BATCH: usize = 10;
/// How long a lane whose workspace was locked is put aside before it is tried again.
const DEFERRAL: Duration = Duration::from_millis(20);
/// How long a lane another instance applies is put aside before it is tried again.
const LANE_TAKEN_REST: Duration = Duration::from_millis(5);

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
    /// The reason code of each delivery the batch skipped.
    pub skipped: Vec<&'static str>,
    /// For each delivery settled, how long it waited from being received to being applied.
    pub waited: Vec<Duration>,
    /// Rows the batch wrote besides the deliveries' own.
    pub written: usize,
    /// Whether the lane may hold more work than this batch took.
    pub more: bool,
}

impl BatchReport {
    fn absorb(&mut self, other: BatchReport) {
        self.processed += other.processed;
        self.taken += other.taken;
        self.failed_attempts += other.failed_attempts;
        self.activated.extend(other.activated);
        self.skipped.extend(other.skipped);
        self.waited.extend(other.waited);
        self.written += other.written;
        self.more |= other.more;
    }
}

/// What came of asking for a lane's next batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneBatch {
    /// Applied (possibly nothing: the lane had no work left).
    Applied(BatchReport),
    /// Another instance is applying this lane.
    LaneTaken,
    /// Another writer holds a workspace the batch touches; nothing was done.
    WorkspaceBusy,
}

/// Told each directory whose `dsync.activated` was applied, after the batch that applied it commits.
pub type ActivationHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The event type that announces a directory became active.
const DIRECTORY_ACTIVATED: &str = "dsync.activated";

/// The function that applies one event; the real one is [`directory_sync::apply_event`].
pub type ApplyFn = fn(&mut Store<'_>, &Event, Timestamp) -> Result<ApplyOutcome, ApplyError>;

/// A lane holding work: its name.
#[derive(QueryableByName)]
struct LaneWithWork {
    #[diesel(sql_type = diesel::sql_types::Text)]
    lane: String,
}

/// The lanes with deliveries to apply: new ones past their cursor, or retries whose time has come (only a
/// delivery waiting for a retry has a next attempt, so the index of those alone is read); the lanes that
/// have waited longest first.
pub fn lanes_with_work(db: &Database) -> Result<Vec<String>, DbError> {
    let mut conn = db.connection(Work::Apply)?;
    let lanes: Vec<LaneWithWork> = diesel::sql_query(
        "SELECT lane FROM (\
           SELECT h.lane AS lane, COALESCE(a.applied_through, 0) AS since FROM lane_heads h \
           LEFT JOIN apply_lanes a ON a.lane = h.lane \
           WHERE h.received_through > COALESCE(a.applied_through, 0) \
           UNION ALL \
           SELECT DISTINCT lane, 0 AS since FROM webhook_events \
           WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1\
         ) AS due GROUP BY lane ORDER BY MIN(since)",
    )
    .bind::<diesel::sql_types::Timestamp, _>(timestamp::now())
    .load(&mut conn)?;
    Ok(lanes.into_iter().map(|l| l.lane).collect())
}

/// Applies up to one batch of every lane with due deliveries: new ones after each lane's cursor, and
/// retries whose time has come. Lanes another writer holds are left for later.
pub fn apply_due(
    db: &Database,
    policy: RetryPolicy,
    apply: ApplyFn,
) -> Result<BatchReport, DbError> {
    let mut report = BatchReport::default();
    let mut sizer = BatchSizer::new(None, BATCH, BATCH);
    for lane in lanes_with_work(db)? {
        if let LaneBatch::Applied(batch) = apply_lane(db, &lane, policy, apply, &mut sizer)? {
            report.absorb(batch);
        }
    }
    Ok(report)
}

/// Deliveries of a lane taken for one batch.
struct Taken {
    /// Those to apply, in id order.
    rows: Vec<WebhookEventRow>,
    /// New deliveries read past the cursor.
    fresh: usize,
    /// Where the cursor moves once the batch commits.
    cursor: Option<i64>,
    /// Whether the lane may hold more.
    more: bool,
}

/// Reads a lane's next batch: retries that are due, then new deliveries after its cursor. Once a read
/// comes back short, the cursor moves to the lane's head as read before it (every delivery up to the head
/// was committed with it or before, so none is passed over).
fn take(conn: &mut DbConnection, lane: &str, limit: usize, now: Timestamp) -> QueryResult<Taken> {
    let head: Option<i64> = lane_heads::table
        .find(lane)
        .select(lane_heads::received_through)
        .first(conn)
        .optional()?;
    let cursor: i64 = apply_lanes::table
        .find(lane)
        .select(apply_lanes::applied_through)
        .first(conn)
        .optional()?
        .unwrap_or(0);
    // Through the index of the lane's retries alone (no order asked, so no index by id is walked over
    // the lane's history); sorted below.
    let mut rows: Vec<WebhookEventRow> = webhook_events::table
        .filter(webhook_events::lane.eq(lane))
        .filter(webhook_events::next_attempt_at.le(now))
        .filter(webhook_events::status.eq(EventStatus::Received))
        .limit(limit as i64)
        .select(WebhookEventRow::as_select())
        .load(conn)?;
    let room = limit - rows.len();
    let fresh: Vec<WebhookEventRow> = if room == 0 {
        Vec::new()
    } else {
        webhook_events::table
            .filter(webhook_events::lane.eq(lane))
            .filter(webhook_events::id.gt(cursor))
            .order(webhook_events::id)
            .limit(room as i64)
            .select(WebhookEventRow::as_select())
            .load(conn)?
    };
    let drained = fresh.len() < room;
    let last = fresh.last().map(|row| row.id);
    let moved_to = match (drained, last, head) {
        (true, last, Some(head)) => Some(last.unwrap_or(head).max(head)),
        (_, last, _) => last,
    }
    .filter(|&to| to > cursor);
    let count = fresh.len();
    // Stored as something else (invalid), or waiting for a retry that is not due: nothing to do now.
    rows.extend(
        fresh
            .into_iter()
            .filter(|row| row.status == EventStatus::Received && row.next_attempt_at.is_none()),
    );
    rows.sort_by_key(|row| row.id);
    Ok(Taken {
        more: !drained || rows.len() >= limit,
        rows,
        fresh: count,
        cursor: moved_to,
    })
}

/// Applies one batch of a lane, if the lane and its workspaces are free; `sizer` sizes the batch and
/// learns from its time.
#[tracing::instrument(name = "apply_batch", skip_all, fields(lane = %lane))]
pub fn apply_lane(
    db: &Database,
    lane: &str,
    policy: RetryPolicy,
    apply: ApplyFn,
    sizer: &mut BatchSizer,
) -> Result<LaneBatch, DbError> {
    let limit = sizer.next();
    // The time the batch holds the database, not the time it waited for it: what the next batch is
    // sized from.
    let mut held = Duration::ZERO;
    let outcome = db.write_in_lane(lane, |write| {
        let started = Instant::now();
        // The lane's own workspace first, before any delivery is read: a lane whose workspace is busy
        // costs one look-up.
        let own = workspace::workspace_of_directory(write.conn, lane)?;
        if !write.try_lock_workspaces(own.as_slice())? {
            return Ok(LaneBatch::WorkspaceBusy);
        }
        let now = timestamp::now();
        let taken = take(write.conn, lane, limit, now)?;
        let prepared = prepare(&taken.rows);
        let events: Vec<&Event> = prepared.events.iter().map(|(_, e)| e).collect();
        let touched = workspace::workspaces_of(write.conn, &events)?;
        if !write.try_lock_workspaces(&touched)? {
            return Ok(LaneBatch::WorkspaceBusy);
        }
        // A workspace created or a directory attached between the look-up and the locks: try again soon.
        let now_touched = workspace::workspaces_of(write.conn, &events)?;
        if !write.holds(&now_touched) {
            return Ok(LaneBatch::WorkspaceBusy);
        }
        let mut report = apply_deliveries(write.conn, &taken.rows, prepared, policy, apply, now)?;
        report.taken = taken.fresh;
        report.more = taken.more;
        if let Some(through) = taken.cursor {
            on_backend!(&mut *write.conn, |c| diesel::insert_into(
                apply_lanes::table
            )
            .values((
                apply_lanes::lane.eq(lane),
                apply_lanes::applied_through.eq(through),
            ))
            .on_conflict(apply_lanes::lane)
            .do_update()
            .set(apply_lanes::applied_through.eq(excluded(apply_lanes::applied_through)))
            .execute(c))?;
        }
        held = started.elapsed();
        Ok::<_, DbError>(LaneBatch::Applied(report))
    })?;
    let outcome = outcome.unwrap_or(LaneBatch::LaneTaken);
    if let LaneBatch::Applied(report) = &outcome {
        sizer.record(report.processed.max(1), held);
    }
    Ok(outcome)
}

/// What became of one delivery.
enum Settlement {
    /// An outcome, final until an operator retries it.
    Settled {
        status: EventStatus,
        reason: Option<String>,
        /// The directory a `dsync.activated` activated.
        activated: Option<String>,
        /// The code of the reason it was skipped for.
        skipped: Option<&'static str>,
    },
    /// Applying failed; retried later or parked.
    Failed(String),
}

impl Settlement {
    fn of(outcome: ApplyOutcome, event: &Event) -> Self {
        let activated = (matches!(outcome, ApplyOutcome::Applied)
            && event.event_type == DIRECTORY_ACTIVATED)
            .then(|| event.directory_id().map(|d| d.to_string()))
            .flatten();
        let skipped = match &outcome {
            ApplyOutcome::Skipped(why) => Some(why.code()),
            _ => None,
        };
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
            skipped,
        }
    }

    fn final_status(status: EventStatus, reason: String) -> Self {
        Settlement::Settled {
            status,
            reason: Some(reason),
            activated: None,
            skipped: None,
        }
    }
}

/// Deliveries read and parsed: those settled already (bodies that are not events) and the events to
/// apply. A redelivery is never read here: the database stores an event id once.
struct Prepared<'r> {
    settled: HashMap<i64, Settlement>,
    events: Vec<(&'r WebhookEventRow, Event)>,
}

/// Parses the deliveries and settles those with nothing to apply.
fn prepare(rows: &[WebhookEventRow]) -> Prepared<'_> {
    let mut settled: HashMap<i64, Settlement> = HashMap::new();
    let mut events: Vec<(&WebhookEventRow, Event)> = Vec::new();
    for row in rows {
        match Event::parse(&row.body) {
            Ok(event) => events.push((row, event)),
            Err(e) => {
                settled.insert(row.id, Settlement::final_status(EventStatus::Invalid, e.0));
            }
        }
    }
    Prepared { settled, events }
}

/// Applies deliveries (in id order) and records what became of each.
fn apply_deliveries(
    conn: &mut DbConnection,
    rows: &[WebhookEventRow],
    prepared: Prepared<'_>,
    policy: RetryPolicy,
    apply: ApplyFn,
    now: Timestamp,
) -> QueryResult<BatchReport> {
    let Prepared {
        mut settled,
        events,
    } = prepared;
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
                skipped,
            } => {
                tracing::debug!(
                    delivery = row.id,
                    event_id = row.event_id.as_deref(),
                    status = status.as_str(),
                    reason = reason.as_deref(),
                    "delivery settled"
                );
                report.activated.extend(activated);
                report.skipped.extend(skipped);
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
                webhook_events::status.eq(EventStatus::Applied),
                webhook_events::reason.eq(None::<String>),
                webhook_events::attempts.eq(webhook_events::attempts + 1),
                webhook_events::next_attempt_at.eq(None::<Timestamp>),
                webhook_events::processed_at.eq(Some(now)),
            ))
            .execute(conn)?;
    }
    Ok(report)
}

/// Wakes the applier when deliveries arrive: with the lanes they are in (intake knows them), or with a
/// plain signal to look the lanes with work up in the database (an operator's retry, the Events API tail).
#[derive(Clone, Default)]
pub struct Wakeup {
    inner: Arc<(Mutex<Signals>, Condvar)>,
}

/// What the applier has been told since it last asked.
#[derive(Default)]
struct Signals {
    /// Some signal came.
    pending: bool,
    /// A signal without lanes came: look the lanes up.
    look: bool,
    /// Lanes that received deliveries.
    lanes: HashSet<String>,
}

impl Wakeup {
    fn signals(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signals that there may be work somewhere: the applier looks the lanes with work up.
    pub fn notify(&self) {
        let mut signals = self.signals();
        signals.pending = true;
        signals.look = true;
        drop(signals);
        self.inner.1.notify_all();
    }

    /// Signals that these lanes received deliveries to apply.
    pub fn notify_lanes(&self, lanes: Vec<String>) {
        let mut signals = self.signals();
        signals.pending = true;
        signals.lanes.extend(lanes);
        drop(signals);
        self.inner.1.notify_all();
    }

    /// What came since the last call: whether to look the lanes up, and the lanes named.
    fn take(&self) -> (bool, Vec<String>) {
        let mut signals = self.signals();
        signals.pending = false;
        let look = std::mem::take(&mut signals.look);
        (look, signals.lanes.drain().collect())
    }

    /// Waits for a signal or the timeout.
    fn wait(&self, timeout: Duration) {
        let signals = self.signals();
        let _ = self
            .inner
            .1
            .wait_timeout_while(signals, timeout, |s| !s.pending)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Whether the applier is running: false once every worker has ended, whether asked to or not (a panic).
#[derive(Clone, Default)]
pub struct ApplierHealth(Arc<AtomicBool>);

impl ApplierHealth {
    /// Whether the applier is running.
    pub fn running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Marks the applier stopped when a worker ends, however it ends.
struct RunningFlag(ApplierHealth);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0 .0.store(false, Ordering::SeqCst);
        if std::thread::panicking() {
            tracing::error!("an applier worker stopped after a panic; deliveries are stored but not applied until the service restarts");
        }
    }
}

/// The lanes this process's workers share: those known to have work, in turn, and those set aside.
#[derive(Default)]
struct Lanes {
    state: Mutex<LaneTurns>,
}

#[derive(Default)]
struct LaneTurns {
    /// Lanes with work, each once, in the order they get their turn.
    ready: VecDeque<String>,
    /// The lanes in `ready` or held by a worker.
    known: HashSet<String>,
    /// Lanes held by a worker that received deliveries meanwhile: they get another turn.
    again: HashSet<String>,
    /// Lanes put aside (their workspace was locked), until when.
    resting: HashMap<String, Instant>,
    /// When the lanes with work were last looked up in the database.
    looked: Option<Instant>,
}

/// How often the workers look the lanes with work up in the database even without a signal: retries fall
/// due, and other instances store deliveries this one hears nothing of.
const LOOK_EVERY: Duration = Duration::from_secs(1);

impl Lanes {
    fn turns(&self) -> std::sync::MutexGuard<'_, LaneTurns> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the lanes with work should be looked up in the database: never yet, or a while ago.
    fn due_for_look(&self) -> bool {
        self.turns()
            .looked
            .is_none_or(|at| at.elapsed() >= LOOK_EVERY)
    }

    /// Adds lanes with work (those already known keep their place; one held by a worker gets another
    /// turn); `looked`: they come from a look-up in the database.
    fn found(&self, lanes: Vec<String>, looked: bool) {
        let mut turns = self.turns();
        if looked {
            turns.looked = Some(Instant::now());
        }
        for lane in lanes {
            if turns.known.insert(lane.clone()) {
                turns.ready.push_back(lane);
            } else if !turns.ready.contains(&lane) {
                turns.again.insert(lane);
            }
        }
    }

    /// The next lane whose turn it is and that is not resting; held until [`Lanes::done`].
    fn next(&self) -> Option<String> {
        let mut turns = self.turns();
        let now = Instant::now();
        turns.resting.retain(|_, until| *until > now);
        let position = turns
            .ready
            .iter()
            .position(|l| !turns.resting.contains_key(l))?;
        turns.ready.remove(position)
    }

    /// When the first resting lane may be tried again.
    fn next_rest_end(&self) -> Option<Instant> {
        self.turns().resting.values().min().copied()
    }

    /// A worker is done with `lane` for now: back at the end of the line if it has more (or received
    /// deliveries meanwhile), put aside a moment if it could not be taken, forgotten otherwise (a signal or
    /// the next look-up brings it back).
    fn done(&self, lane: String, again: Again) {
        let mut turns = self.turns();
        let more = turns.again.remove(&lane);
        match again {
            Again::More => turns.ready.push_back(lane),
            Again::After(rest) => {
                turns.resting.insert(lane.clone(), Instant::now() + rest);
                turns.ready.push_back(lane);
            }
            Again::Done if more => turns.ready.push_back(lane),
            Again::Done => {
                turns.known.remove(&lane);
            }
        }
    }
}

/// What a worker does with a lane after its turn.
enum Again {
    More,
    After(Duration),
    Done,
}

/// The background applier: a few worker threads (one on SQLite, whose single writer they would share)
/// taking lanes in turn. They are threads of their own, not tasks, as each lowers its own CPU priority; each
/// holds a token of the service's task tracker, so the service waits for them as it stops.
pub struct Applier {
    stop: CancellationToken,
    wakeup: Wakeup,
    health: ApplierHealth,
    threads: Vec<std::thread::JoinHandle<()>>,
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
    /// Cancelled to stop the applier after the batches in hand.
    pub shutdown: CancellationToken,
    /// Tracks the worker threads: it counts one task per thread until the thread ends.
    pub tasks: TaskTracker,
}

/// The applier's workers on PostgreSQL: one per connection the applier has.
const WORKERS: u32 = crate::db::APPLY_CONNECTIONS;

impl Applier {
    /// Starts applying deliveries as they arrive (and every second, for retries and other instances),
    /// until `options.shutdown` is cancelled. Needs a Tokio runtime: a task wakes the workers when it is.
    pub fn start(db: Database, options: ApplierOptions) -> Self {
        let stop = options.shutdown.clone();
        let health = ApplierHealth(Arc::new(AtomicBool::new(true)));
        let wakeup = options.wakeup.clone();
        let workers = match db.write_budget() {
            Some(_) => 1,
            None => WORKERS,
        };
        let lanes = Arc::new(Lanes::default());
        let threads = (0..workers)
            .map(|n| {
                let (tracked, flag) = (options.tasks.token(), RunningFlag(health.clone()));
                let (db, options, lanes) = (db.clone(), options.clone(), lanes.clone());
                std::thread::Builder::new()
                    .name(format!("event-applier-{n}"))
                    .spawn(move || {
                        // Dropped last: the thread counts as running until it has ended.
                        let _tracked = tracked;
                        let _flag = flag;
                        run(db, options, lanes)
                    })
                    .expect("the applier threads start")
            })
            .collect();
        // Workers waiting for deliveries hear of the stop at once.
        let (stopped, woken) = (stop.clone(), wakeup.clone());
        options.tasks.spawn(async move {
            stopped.cancelled().await;
            woken.notify();
        });
        Self {
            stop,
            wakeup,
            health,
            threads,
        }
    }

    /// What wakes the applier when deliveries were stored.
    pub fn wakeup(&self) -> Wakeup {
        self.wakeup.clone()
    }

    /// Whether the applier's workers are all still running.
    pub fn health(&self) -> ApplierHealth {
        self.health.clone()
    }

    /// Finishes the batches in hand and stops.
    pub fn stop(mut self) {
        self.stop.cancel();
        self.wakeup.notify();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Lowers the calling thread's CPU priority, so acknowledging webhooks wins the cores when both are busy.
fn yield_cpu_to_intake() {
    // On Linux, the calling "process" of setpriority is the calling thread only. Best effort: a thread that
    // may not lower its priority runs as it is.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(None, 10);
}

/// One worker: takes the next lane in turn, applies a batch of it, and gives it back.
fn run(db: Database, options: ApplierOptions, lanes: Arc<Lanes>) {
    yield_cpu_to_intake();
    let mut sizer = BatchSizer::new(db.write_budget(), LEAST_BATCH, BATCH);
    while !options.shutdown.is_cancelled() {
        let (look, named) = options.wakeup.take();
        lanes.found(named, false);
        if look || lanes.due_for_look() {
            match lanes_with_work(&db) {
                Ok(found) => lanes.found(found, true),
                Err(e) => {
                    tracing::error!(error = %e, "the applier cannot reach the database; retrying in 2 s");
                    options.wakeup.wait(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let Some(lane) = lanes.next() else {
            let rest = lanes
                .next_rest_end()
                .map(|end| end.saturating_duration_since(Instant::now()))
                .unwrap_or(LOOK_EVERY);
            options.wakeup.wait(rest.min(LOOK_EVERY));
            continue;
        };
        let mut written = 0;
        let again = match apply_lane(
            &db,
            &lane,
            options.policy,
            directory_sync::apply_event,
            &mut sizer,
        ) {
            Ok(LaneBatch::Applied(report)) => {
                written = report.taken + report.written;
                for waited in &report.waited {
                    options.metrics.delivery_applied(*waited);
                }
                for reason in &report.skipped {
                    options.metrics.event_skipped(reason);
                }
                if let Some(hook) = &options.on_activated {
                    for directory in &report.activated {
                        hook(directory);
                    }
                }
                if report.more {
                    Again::More
                } else {
                    Again::Done
                }
            }
            Ok(LaneBatch::WorkspaceBusy) => {
                options.metrics.lane_deferred();
                Again::After(DEFERRAL)
            }
            // Another instance applies it (and what this one stored in it with it).
            Ok(LaneBatch::LaneTaken) => Again::After(LANE_TAKEN_REST),
            Err(e) => {
                tracing::error!(lane = %lane, error = %e, "applying a lane failed; retrying in 2 s");
                Again::After(Duration::from_secs(2))
            }
        };
        lanes.done(lane, again);
        // With the lane given back, so another worker can take it meanwhile.
        db.keep_statistics_current(written);
    }
}

/// A count and the oldest receipt among deliveries.
#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    waiting: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    oldest: Option<Timestamp>,
}

/// The backlog as the database shows it, for every instance sharing it: deliveries past their lane's
/// cursor (read through each lane's index from its cursor), and those waiting for a retry (through their
/// own index).
pub fn backlog(conn: &mut DbConnection) -> Result<crate::metrics::Backlog, DbError> {
    let new: Waiting = diesel::sql_query(
        "SELECT COUNT(*) AS waiting, MIN(e.received_at) AS oldest FROM lane_heads h \
         LEFT JOIN apply_lanes a ON a.lane = h.lane \
         JOIN webhook_events e ON e.lane = h.lane AND e.id > COALESCE(a.applied_through, 0) \
         WHERE h.received_through > COALESCE(a.applied_through, 0) \
           AND e.status = 'received' AND e.next_attempt_at IS NULL",
    )
    .get_result(conn)?;
    let (retrying, retrying_oldest): (i64, Option<Timestamp>) = webhook_events::table
        .filter(webhook_events::next_attempt_at.is_not_null())
        .filter(webhook_events::status.eq(EventStatus::Received))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(webhook_events::received_at),
        ))
        .first(conn)?;
    let oldest = [new.oldest, retrying_oldest].into_iter().flatten().min();
    Ok(crate::metrics::Backlog {
        waiting: new.waiting + retrying,
        oldest_age: oldest
            .and_then(|t| (timestamp::now() - t).to_std().ok())
            .unwrap_or_default(),
        event_tail: None,
    })
}
