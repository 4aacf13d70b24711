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

/// The first key of the workspace locks' advisory lock pairs (the second is a hash of schema and workspace).
const WORKSPACE_LOCK: i32 = 7243002;
/// The first key of the apply lanes' advisory lock pairs.
const LANE_LOCK: i32 = 7243005;

/// Which connections a piece of work uses, so that no kind of work can take another's: webhook intake and
/// the Events API tail's storage, the applier, and everything else (API requests, pulls, previews,
/// background jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    Intake,
    Apply,
    Shared,
}

impl Work {
    /// Every kind, for metrics.
    pub const ALL: [Work; 3] = [Work::Intake, Work::Apply, Work::Shared];

    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Work::Intake => "intake",
            Work::Apply => "apply",
            Work::Shared => "shared",
        }
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
/// time, handed out in turn. Webhook intake goes first (its transactions take a few milliseconds and an
/// acknowledgement must not wait behind applying); every other writer gets the connection in the order
/// it asked, so a pull's stream of transactions cannot keep another workspace's writes waiting for more
/// than one of them. Being the only connection that writes, it keeps its page cache from one transaction
/// to the next (SQLite drops a connection's cache whenever another connection has written).
#[derive(Default)]
pub(super) struct WriterGate {
    queue: Mutex<Turns>,
    turn: Condvar,
    pub(super) connection: Mutex<Option<DbConnection>>,
}

/// Who waits for the SQLite writer, by ticket.
#[derive(Default)]
struct Turns {
    held: bool,
    next_ticket: u64,
    intake: VecDeque<u64>,
    others: VecDeque<u64>,
}

impl Turns {
    fn first(&self) -> Option<u64> {
        self.intake.front().or(self.others.front()).copied()
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
            Work::Apply | Work::Shared => turns.others.push_back(ticket),
        }
        while turns.held || turns.first() != Some(ticket) {
            turns = self.turn.wait(turns).unwrap_or_else(|p| p.into_inner());
        }
        if turns.intake.front() == Some(&ticket) {
            turns.intake.pop_front();
        } else {
            turns.others.pop_front();
        }
        turns.held = true;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.turns().held = false;
        self.0.turn.notify_all();
    }
}

/// How long one transaction may hold the SQLite writer, about: the wait it adds to another workspace's
/// writes (SPEC rule 18).
pub const SQLITE_WRITE_BUDGET: Duration = Duration::from_millis(40);

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

/// Runs statements that set up a PostgreSQL read-only snapshot for the rest of the transaction.
pub(super) fn read_only_snapshot(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgresql(c) => {
            c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        }
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

    /// Intake goes first; everyone else in the order they asked.
    #[test]
    fn the_writer_is_taken_in_turn() {
        let gate = Arc::new(WriterGate::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = gate.enter(Work::Shared);
        let mut waiting = Vec::new();
        for (i, work) in [Work::Shared, Work::Apply, Work::Shared, Work::Intake]
            .into_iter()
            .enumerate()
        {
            let (waiter, order) = (gate.clone(), order.clone());
            waiting.push(std::thread::spawn(move || {
                let _turn = waiter.enter(work);
                order.lock().unwrap().push(i);
            }));
            // Each asks after the one before.
            loop {
                let turns = gate.turns();
                if turns.intake.len() + turns.others.len() > i {
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
        assert_eq!(*order.lock().unwrap(), vec![3, 0, 1, 2]);
    }
}
