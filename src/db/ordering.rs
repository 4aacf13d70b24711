//! What orders writes: per workspace, never across workspaces (SPEC rule 18).
//!
//! - **Workspace locks.** Every write that changes a workspace's members, teams, links, mappings or
//!   directories holds that workspace's lock until it commits, so the applier, pulls and admin requests of
//!   one workspace never interleave inside a transaction. On PostgreSQL the lock is a transaction-scoped
//!   advisory lock keyed by schema and workspace, shared by every instance; on SQLite an in-process lock
//!   (one `serve` per file). Writers of different workspaces never wait for each other's locks.
//! - **The SQLite writer.** SQLite has one writer at a time. Every write of the process goes through one
//!   connection, taken in turn: webhook intake first, everything else in the order it asked
//!   ([`WriterGate`]), and every kind of write keeps its transactions short ([`BatchSizer`]) so that no
//!   workspace's burst, pull or preview holds the writer for long.

use super::DbConnection;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every kind of PostgreSQL advisory lock Rollcall takes, by the first key of its pair (the second is a hash
/// of the schema, and of what is locked where there are several): no two kinds share a first key, so no
/// lock of one kind can ever stand in for another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisoryLock {
    /// Migrations: one instance migrates, the others wait (a single 64-bit key, 7243001).
    Migrations = 7243001,
    /// A workspace's writes (second key: schema and workspace).
    Workspace = 7243002,
    /// Storing deliveries: intake and the Events API tail, one at a time per schema.
    Deliveries = 7243004,
    /// An apply lane (second key: schema and lane).
    Lane = 7243005,
    /// The Events API tail's lease: one tail per schema.
    EventTail = 7243006,
    /// A write that may add to the change feed, taken shared (second key: schema); see
    /// [`mark_feed_writer`].
    FeedWriters = 7243007,
}

impl AdvisoryLock {
    /// The first key.
    pub const fn key(self) -> i32 {
        self as i32
    }
}

const WORKSPACE_LOCK: i32 = AdvisoryLock::Workspace.key();
const LANE_LOCK: i32 = AdvisoryLock::Lane.key();

/// The kinds of database work: each of intake (webhook intake and the Events API tail's storage) and the
/// applier has connections of its own, so no other work can take them; pulls and everything else (API
/// requests, previews, background jobs) share the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    Intake,
    Apply,
    Pull,
    Shared,
}

impl Work {
    /// Every kind, for metrics.
    pub const ALL: [Work; 4] = [Work::Intake, Work::Apply, Work::Pull, Work::Shared];

    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Work::Intake => "intake",
            Work::Apply => "apply",
            Work::Pull => "pull",
            Work::Shared => "shared",
        }
    }

    /// Whether each of its commits must reach the disk before it returns. An acknowledgement (intake) and
    /// an admin's answer (shared) promise what they stored; what the applier and a pull write can be
    /// derived again from what is durable (the stored deliveries, the broker's listing), and a lost
    /// transaction takes its cursor or progress with it, so on SQLite their commits are synced with the
    /// next durable one (WAL `synchronous = NORMAL`: atomic and in order, only the newest may be lost on
    /// a power failure).
    pub fn durable(self) -> bool {
        matches!(self, Work::Intake | Work::Shared)
    }
}

/// Calls a waiting advisory-lock function (`pg_advisory_xact_lock`, `pg_advisory_lock`) on the lock
/// `(class, hash of schema and key)`.
fn advisory_wait(
    conn: &mut diesel::PgConnection,
    function: &str,
    class: i32,
    key: &str,
) -> QueryResult<()> {
    diesel::sql_query(format!(
        "SELECT {function}($1, hashtext(current_schema() || '/' || $2))"
    ))
    .bind::<diesel::sql_types::Integer, _>(class)
    .bind::<Text, _>(key)
    .execute(conn)
    .map(drop)
}

/// Calls an advisory-lock function that answers (`pg_try_advisory_xact_lock`, `pg_advisory_unlock`) on
/// the lock `(class, hash of schema and key)`.
fn advisory_ask(
    conn: &mut diesel::PgConnection,
    function: &str,
    class: i32,
    key: &str,
) -> QueryResult<bool> {
    diesel::select(
        diesel::dsl::sql::<Bool>(&format!(
            "{function}({class}, hashtext(current_schema() || '/' || "
        ))
        .bind::<Text, _>(key)
        .sql("))"),
    )
    .get_result(conn)
}

/// Marks the caller's PostgreSQL transaction, for the rest of it, as one that may add to the change feed:
/// its first statement, taken before the transaction has an id. A reader of the feed across workspaces
/// then holds back only for transactions that may add to it ([`feed_horizon_pg`]), not for every
/// transaction on the server (another schema's, another database's, a long report's).
pub(super) fn mark_feed_writer(conn: &mut DbConnection) -> QueryResult<()> {
    if let DbConnection::Postgresql(c) = conn {
        c.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock_shared({}, hashtext(current_schema()))",
            AdvisoryLock::FeedWriters.key()
        ))?;
    }
    Ok(())
}

/// Whether the caller's transaction holds the mark of [`mark_feed_writer`] (true on SQLite, whose one
/// writer orders every change by commit).
pub fn is_feed_writer(conn: &mut DbConnection) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgresql(c) => diesel::select(diesel::dsl::sql::<Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND classid = {} AND objid = hashtext(current_schema())::oid AND objsubid = 2 AND granted)",
            AdvisoryLock::FeedWriters.key()
        )))
        .get_result(c),
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// The oldest transaction id (as text, an `xid8`) whose changes a reader of the feed across workspaces
/// may not have seen yet: the oldest transaction that was in progress at this statement's snapshot and
/// still holds the mark of [`mark_feed_writer`], else the snapshot's `xmax`.
///
/// Every change with a smaller transaction id is committed and visible to any *later* statement: a
/// writer with a smaller id was in progress at the snapshot (in `xip`) or had ended before it. If it was in
/// progress and still is when this statement reads the locks, it holds the mark (taken before its id), so
/// it is counted; if it has ended since, it ended before the next statement's snapshot. Transactions that
/// write no changes (other schemas', other databases', intake's) never hold the horizon back. Must run in
/// a statement of its own, before the statement that reads the changes, and outside a transaction
/// (`pg_stat_activity` is read once per transaction).
pub fn feed_horizon_pg(conn: &mut diesel::PgConnection) -> QueryResult<String> {
    diesel::select(diesel::dsl::sql::<Text>(&format!(
        "(SELECT COALESCE(min(x), pg_snapshot_xmax(pg_current_snapshot()))::text \
         FROM pg_snapshot_xip(pg_current_snapshot()) AS x \
         WHERE xid(x) IN (SELECT a.backend_xid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.classid = {} AND l.objid = hashtext(current_schema())::oid \
         AND l.objsubid = 2 AND l.granted AND a.backend_xid IS NOT NULL))",
        AdvisoryLock::FeedWriters.key()
    )))
    .get_result(conn)
}

/// Takes the workspace's lock for the rest of the caller's PostgreSQL transaction, waiting for it.
pub(super) fn lock_workspace_pg(conn: &mut DbConnection, workspace_id: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(c) = conn {
        advisory_wait(c, "pg_advisory_xact_lock", WORKSPACE_LOCK, workspace_id)?;
    }
    Ok(())
}

/// Takes the workspace's lock for the rest of the caller's PostgreSQL transaction if no other writer
/// holds it; true on SQLite, whose callers take [`KeyedLocks`] instead.
pub(super) fn try_lock_workspace_pg(
    conn: &mut DbConnection,
    workspace_id: &str,
) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgresql(c) => {
            advisory_ask(c, "pg_try_advisory_xact_lock", WORKSPACE_LOCK, workspace_id)
        }
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// Takes an apply lane for the rest of the caller's PostgreSQL transaction if no other instance has it.
pub(super) fn try_lock_lane_pg(conn: &mut DbConnection, lane: &str) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgresql(c) => {
            advisory_ask(c, "pg_try_advisory_xact_lock", LANE_LOCK, lane)
        }
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// Takes the workspace's lock on a PostgreSQL session until it ends or [`unlock_workspace_session`].
pub(super) fn lock_workspace_session(
    conn: &mut diesel::PgConnection,
    workspace_id: &str,
) -> QueryResult<()> {
    advisory_wait(conn, "pg_advisory_lock", WORKSPACE_LOCK, workspace_id)
}

/// Gives back a session's workspace lock.
pub(super) fn unlock_workspace_session(
    conn: &mut diesel::PgConnection,
    workspace_id: &str,
) -> QueryResult<bool> {
    advisory_ask(conn, "pg_advisory_unlock", WORKSPACE_LOCK, workspace_id)
}

/// Locks by key within this process: the workspace locks on SQLite, and the lanes a process's appliers
/// are working on.
#[derive(Default)]
pub struct KeyedLocks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

/// A key held in a [`KeyedLocks`] until dropped.
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
}

impl KeyedLocks {
    fn held(&self) -> MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `key`, waiting while another holds it.
    pub fn lock(&self, key: &str) -> KeyGuard<'_> {
        let mut held = self.held();
        while held.contains(key) {
            held = self.released.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        held.insert(key.to_string());
        KeyGuard {
            locks: self,
            key: key.to_string(),
        }
    }

    /// Takes `key` if nobody holds it.
    pub fn try_lock(&self, key: &str) -> Option<KeyGuard<'_>> {
        self.held().insert(key.to_string()).then(|| KeyGuard {
            locks: self,
            key: key.to_string(),
        })
    }

    /// Gives back a key held with [`KeyGuard::keep`].
    pub fn release(&self, key: &str) {
        self.held().remove(key);
        self.released.notify_all();
    }

    /// Takes every key if none is held, or none of them.
    pub fn try_lock_all(&self, keys: &[String]) -> Option<Vec<KeyGuard<'_>>> {
        let mut held = self.held();
        if keys.iter().any(|k| held.contains(k)) {
            return None;
        }
        held.extend(keys.iter().cloned());
        Some(
            keys.iter()
                .map(|key| KeyGuard {
                    locks: self,
                    key: key.clone(),
                })
                .collect(),
        )
    }
}

impl KeyGuard<'_> {
    /// Keeps the key held past this guard, until [`KeyedLocks::release`].
    pub fn keep(mut self) {
        drop(std::mem::take(&mut self.key));
        std::mem::forget(self);
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.locks.release(&self.key);
    }
}

/// The single SQLite writer: one connection that every write of this process uses, one transaction at a
/// time, handed out in turn:
///
/// 1. **Intake** first: its transactions take a few milliseconds, and an acknowledgement must not wait
///    behind applying or a pull.
/// 2. **The applier** next: what was just acknowledged becomes visible before background work goes on.
///    Right after intake's turn the other writers hold back until the applier it woke has had a turn, or
///    for [`APPLY_HEAD_START`] at most, so a webhook's effect waits for at most one transaction of a pull,
///    not two.
/// 3. **Everyone else** in the order they asked; one that has waited [`SHARED_AGING`] goes before the
///    applier, so a stream of webhooks cannot keep an admin request or a pull out for ever.
///
/// A pull's stream of transactions thus cannot keep another workspace's writes waiting for more than one of
/// them. Being the only connection that writes, it keeps its page cache from one transaction to the next
/// (SQLite drops a connection's cache whenever another connection has written).
#[derive(Default)]
pub(super) struct WriterGate {
    queue: Mutex<Turns>,
    turn: Condvar,
    pub(super) connection: Mutex<Option<WriterConnection>>,
}

/// The SQLite writer connection, and whether its commits are synced now (`synchronous = FULL`).
pub(super) struct WriterConnection {
    pub(super) conn: DbConnection,
    pub(super) durable: bool,
}

/// How long after intake's turn the writers other than the applier hold back, unless the applier has had
/// its turn sooner: long enough for the applier's thread (which yields the CPU to intake) to wake and ask.
pub const APPLY_HEAD_START: Duration = Duration::from_millis(10);
/// How long a writer other than intake and the applier waits before it goes ahead of the applier.
pub const SHARED_AGING: Duration = Duration::from_millis(100);

/// Who waits for the SQLite writer, by ticket.
#[derive(Default)]
struct Turns {
    held: Option<Work>,
    next_ticket: u64,
    intake: VecDeque<u64>,
    apply: VecDeque<u64>,
    /// Everyone else, with when they asked.
    shared: VecDeque<(u64, Instant)>,
    /// When intake's last turn ended.
    intake_ended: Option<Instant>,
}

impl Turns {
    /// Whose turn it is now, if anyone's; else how long until a writer held back may go.
    fn next(&self, now: Instant) -> Result<u64, Option<Duration>> {
        if let Some(&ticket) = self.intake.front() {
            return Ok(ticket);
        }
        let shared = self.shared.front();
        let aged = shared.is_some_and(|(_, asked)| now - *asked >= SHARED_AGING);
        if let (Some(&ticket), false) = (self.apply.front(), aged) {
            return Ok(ticket);
        }
        let Some((ticket, _)) = shared else {
            return Err(None);
        };
        match self.intake_ended.map(|ended| ended + APPLY_HEAD_START) {
            Some(until) if until > now && !aged => Err(Some(until - now)),
            _ => Ok(*ticket),
        }
    }

    fn remove(&mut self, ticket: u64) {
        if self.intake.front() == Some(&ticket) {
            self.intake.pop_front();
        } else if self.apply.front() == Some(&ticket) {
            self.apply.pop_front();
        } else {
            self.shared.pop_front();
        }
    }
}

/// The writer's turn, held until dropped.
pub(super) struct Turn<'a>(&'a WriterGate);

impl WriterGate {
    fn turns(&self) -> MutexGuard<'_, Turns> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the writer's turn.
    pub(super) fn enter(&self, work: Work) -> Turn<'_> {
        let mut turns = self.turns();
        let ticket = turns.next_ticket;
        turns.next_ticket += 1;
        match work {
            Work::Intake => turns.intake.push_back(ticket),
            Work::Apply => turns.apply.push_back(ticket),
            Work::Pull | Work::Shared => turns.shared.push_back((ticket, Instant::now())),
        }
        loop {
            let next = turns.next(Instant::now());
            if turns.held.is_none() && next == Ok(ticket) {
                break;
            }
            turns = match next {
                // Held back for a moment: look again once it is over.
                Err(Some(wait)) if turns.held.is_none() => {
                    self.turn
                        .wait_timeout(turns, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                _ => self.turn.wait(turns).unwrap_or_else(|p| p.into_inner()),
            };
        }
        turns.remove(ticket);
        turns.held = Some(work);
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.0.turns();
        match turns.held.take() {
            Some(Work::Intake) => turns.intake_ended = Some(Instant::now()),
            // The applier intake woke has had its turn: the others need not hold back any longer.
            Some(Work::Apply) => turns.intake_ended = None,
            _ => {}
        }
        drop(turns);
        self.0.turn.notify_all();
    }
}

/// How long one transaction may hold the SQLite writer, about: the wait it adds to another workspace's
/// writes (SPEC rule 18).
pub const SQLITE_WRITE_BUDGET: Duration = Duration::from_millis(30);

/// Sizes batches so that one transaction takes about a budget of time: from the time each item took in
/// the batches before (a moving average), between a least and a most. Without a budget, always the most.
#[derive(Debug, Clone)]
pub struct BatchSizer {
    budget: Option<Duration>,
    least: usize,
    most: usize,
    /// Seconds per item, once measured.
    per_item: Option<f64>,
}

impl BatchSizer {
    /// A sizer aiming at `budget` per batch (none: always `most`).
    pub fn new(budget: Option<Duration>, least: usize, most: usize) -> Self {
        Self {
            budget,
            least: least.max(1),
            most: most.max(least.max(1)),
            per_item: None,
        }
    }

    /// How many items the next batch takes.
    pub fn next(&self) -> usize {
        match (self.budget, self.per_item) {
            (Some(budget), Some(per_item)) if per_item > 0.0 => {
                ((budget.as_secs_f64() / per_item) as usize).clamp(self.least, self.most)
            }
            (Some(_), _) => self.least,
            (None, _) => self.most,
        }
    }

    /// Records that a batch of `items` took `took`.
    pub fn record(&mut self, items: usize, took: Duration) {
        if items == 0 || self.budget.is_none() {
            return;
        }
        let measured = took.as_secs_f64() / items as f64;
        self.per_item = Some(match self.per_item {
            Some(before) => before * 0.7 + measured * 0.3,
            None => measured,
        });
    }

    /// Times `work` on a batch of `items` and records it.
    pub fn timed<T>(&mut self, items: usize, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        self.record(items, started.elapsed());
        result
    }
}

/// The longest a statement of a read-only snapshot may run on PostgreSQL: a preview of a huge workspace is
/// cut off with an error instead of holding a shared connection for minutes.
pub const READ_ONLY_STATEMENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs statements that set up a PostgreSQL read-only snapshot for the rest of the transaction, each of its
/// statements bounded by [`READ_ONLY_STATEMENT_TIMEOUT`].
pub(super) fn read_only_snapshot(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgresql(c) => c.batch_execute(&format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL statement_timeout = {}",
            READ_ONLY_STATEMENT_TIMEOUT.as_millis()
        )),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_batch_is_sized_to_the_budget() {
        let mut sizer = BatchSizer::new(Some(Duration::from_millis(40)), 10, 500);
        assert_eq!(sizer.next(), 10, "unmeasured: the least");
        sizer.record(10, Duration::from_millis(2));
        assert_eq!(sizer.next(), 200, "0.2 ms an item: 200 in 40 ms");
        sizer.record(200, Duration::from_millis(400));
        assert!(sizer.next() < 200, "slower items, smaller batches");
        let unbounded = BatchSizer::new(None, 10, 500);
        assert_eq!(unbounded.next(), 500);
    }

    #[test]
    fn keyed_locks_keep_keys_apart() {
        let locks = KeyedLocks::default();
        let a = locks.lock("a");
        assert!(locks.try_lock("a").is_none());
        assert!(locks.try_lock("b").is_some());
        assert!(locks.try_lock_all(&["b".into(), "a".into()]).is_none());
        drop(a);
        assert!(locks.try_lock_all(&["b".into(), "a".into()]).is_some());
    }

    /// Intake goes first, then the applier, then everyone else in the order they asked.
    #[test]
    fn the_writer_is_taken_in_turn() {
        let gate = Arc::new(WriterGate::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = gate.enter(Work::Shared);
        let mut waiting = Vec::new();
        let works = [
            Work::Shared,
            Work::Apply,
            Work::Shared,
            Work::Intake,
            Work::Apply,
        ];
        for (i, work) in works.into_iter().enumerate() {
            let (waiter, order) = (gate.clone(), order.clone());
            waiting.push(std::thread::spawn(move || {
                let _turn = waiter.enter(work);
                order.lock().unwrap().push(i);
            }));
            // Each asks after the one before.
            loop {
                let turns = gate.turns();
                if turns.intake.len() + turns.apply.len() + turns.shared.len() > i {
                    break;
                }
                drop(turns);
                std::thread::yield_now();
            }
        }
        drop(first);
        for thread in waiting {
            thread.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![3, 1, 4, 0, 2]);
    }

    /// Right after intake's turn, a writer that was waiting first lets the applier that intake woke go
    /// ahead, if it asks within the head start.
    #[test]
    fn the_applier_goes_first_right_after_intake() {
        let gate = Arc::new(WriterGate::default());
        let intake = gate.enter(Work::Intake);
        let order = Arc::new(Mutex::new(Vec::new()));
        let pull = {
            let (gate, order) = (gate.clone(), order.clone());
            std::thread::spawn(move || {
                let _turn = gate.enter(Work::Shared);
                order.lock().unwrap().push("pull");
            })
        };
        while gate.turns().shared.is_empty() {
            std::thread::yield_now();
        }
        drop(intake);
        // The applier asks a moment after intake's turn ended, well within the head start.
        let applied = gate.enter(Work::Apply);
        order.lock().unwrap().push("apply");
        drop(applied);
        pull.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["apply", "pull"]);
    }

    /// A writer that has waited long enough goes before the applier: a stream of webhooks cannot keep it
    /// out.
    #[test]
    fn a_long_wait_goes_before_the_applier() {
        let mut turns = Turns::default();
        let now = Instant::now();
        turns.apply.push_back(2);
        turns.shared.push_back((1, now));
        assert_eq!(turns.next(now), Ok(2));
        assert_eq!(turns.next(now + SHARED_AGING), Ok(1));
        turns.intake.push_back(3);
        assert_eq!(turns.next(now + SHARED_AGING), Ok(3), "intake always first");
    }
}
