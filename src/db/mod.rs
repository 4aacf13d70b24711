//! Storage on SQLite (the embedded default) and PostgreSQL (production, several instances) from one codebase.
//!
//! Queries are written once against [`DbConnection`]; the few statements that differ per backend go through
//! [`on_backend!`](crate::on_backend), which runs the same diesel code on the concrete connection.
//!
//! **One order per workspace, none across workspaces.** Every change to a workspace's members, teams,
//! sources, links, mappings and roles, whoever makes it (the applier, a pull, an admin request), is made in
//! a transaction that holds that workspace's lock from its first statement to its commit
//! ([`Database::write_workspace`], [`Database::write_in_lane`]): each writer of a workspace reads what the
//! previous one committed, and any mix of them ends as some serial order of them would, while writers of
//! other workspaces go on. Each kind of [`Work`] has connections of its own, so webhook intake never waits
//! for a connection a pull or an admin request holds. See [`ordering`] for the locks and the SQLite writer
//! (a second `serve` on the same SQLite file is refused, see [`InstanceLock`]).

pub mod models;
pub mod ordering;
pub mod schema;

pub use ordering::{AdvisoryLock, BatchSizer, Work};

use crate::metrics::Metrics;
use crate::secret::{ExposeSecret, SecretString};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use ordering::{KeyGuard, KeyedLocks, WriterConnection, WriterGate, SQLITE_WRITE_BUDGET};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Runs the same diesel code on whichever concrete connection `$conn` holds.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// Inserts rows (a slice of `Insertable` structs whose fields are named as the listed columns), a chunk per
/// statement. On PostgreSQL each column goes as one array and the rows come from `unnest`, so the
/// statement's text is the same whatever the number of rows, is prepared once, and PostgreSQL parses no
/// statement with thousands of parameters. `$conflict` is what follows on PostgreSQL (see
/// [`on_conflict_update`]); `|$c, $chunk| $sqlite` writes a chunk on SQLite.
#[macro_export]
macro_rules! insert_rows {
    ($conn:expr, $table:ident, $rows:expr,
     [$($column:ident: $sql_type:ty = $pg_type:literal),+ $(,)?],
     $conflict:expr,
     |$c:ident, $chunk:ident| $sqlite:expr) => {{
        let rows = $rows;
        match $conn {
            $crate::db::DbConnection::Postgresql(pg) => {
                let sql = $crate::db::unnest_insert(
                    stringify!($table),
                    &[$((stringify!($column), $pg_type)),+],
                    $conflict,
                );
                for chunk in rows.chunks(5_000) {
                    diesel::RunQueryDsl::execute(
                        diesel::sql_query(&sql)
                            .into_boxed::<diesel::pg::Pg>()
                            $(.bind::<diesel::sql_types::Array<$sql_type>, _>(
                                chunk.iter().map(|row| &row.$column).collect::<Vec<_>>(),
                            ))+,
                        pg,
                    )?;
                }
            }
            $crate::db::DbConnection::Sqlite($c) => {
                // Well inside SQLite's limit on bound values.
                for $chunk in rows.chunks(500) {
                    $sqlite;
                }
            }
        }
        Ok::<usize, diesel::result::Error>(rows.len())
    }};
}

/// `INSERT INTO table (columns) SELECT * FROM unnest($1::type[], …) conflict`.
pub fn unnest_insert(table: &str, columns: &[(&str, &str)], conflict: &str) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, pg_type))| format!("${}::{pg_type}[]", i + 1))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({}) {conflict}",
        names.join(", "),
        arrays.join(", ")
    )
}

/// `ON CONFLICT (keys) DO UPDATE SET column = excluded.column, …`.
pub fn on_conflict_update(keys: &[&str], columns: &[&str]) -> String {
    let set: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "ON CONFLICT ({}) DO UPDATE SET {}",
        keys.join(", "),
        set.join(", ")
    )
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgresql");

/// The names of the embedded migrations of each backend, in order (they must match).
pub fn migration_names() -> (Vec<String>, Vec<String>) {
    fn names(m: &EmbeddedMigrations) -> Vec<String> {
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(m)
            .expect("embedded migrations load")
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }
    use diesel::migration::MigrationSource;
    (names(&SQLITE_MIGRATIONS), names(&POSTGRES_MIGRATIONS))
}

/// Which database a `DATABASE_URL` points at. Its `Debug` output, like [`DatabaseTarget::display`], shows
/// no password.
#[derive(Clone)]
pub enum DatabaseTarget {
    /// A SQLite file.
    Sqlite(String),
    /// A PostgreSQL connection URL, or a key/value connection string (`host=… dbname=…`): a secret, as it
    /// may hold the password.
    Postgres(SecretString),
}

impl PartialEq for DatabaseTarget {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Sqlite(a), Self::Sqlite(b)) => a == b,
            (Self::Postgres(a), Self::Postgres(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

impl Eq for DatabaseTarget {}

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_FILE: &str = "rollcall.db";

/// The keywords a PostgreSQL key/value connection string may start with.
const CONNINFO_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "connect_timeout",
    "options",
    "application_name",
    "service",
];

impl DatabaseTarget {
    /// Reads `sqlite://PATH`, a bare file path, `postgres://…`, `postgresql://…` or a PostgreSQL key/value
    /// connection string (`host=db dbname=rollcall user=app`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.into()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("names no SQLite file after sqlite://".into());
            }
            return Ok(Self::Sqlite(path.to_string()));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "has the scheme {scheme:?}; use sqlite://PATH, a file path, postgres:// or postgresql://"
            ));
        }
        if url
            .split_once('=')
            .is_some_and(|(keyword, _)| CONNINFO_KEYWORDS.contains(&keyword.trim()))
        {
            return Ok(Self::Postgres(url.into()));
        }
        Ok(Self::Sqlite(url.to_string()))
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }

    /// Where the database is, with any password replaced by `[redacted]`, for logs.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite file {path}"),
            Self::Postgres(url) => redact_password(url.expose_secret()),
        }
    }

    /// A connection of its own, outside any pool (for a session lock held as long as it lives).
    pub fn establish(&self) -> Result<DbConnection, DbError> {
        match self {
            Self::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // WAL lets readers run beside the writer; FULL makes every commit durable. The busy
                // timeout comes first: switching to WAL waits for a lock too (another process's last
                // connection checkpointing as it closes).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                )?;
                Ok(DbConnection::Sqlite(conn))
            }
            Self::Postgres(url) => Ok(DbConnection::Postgresql(diesel::PgConnection::establish(
                url.expose_secret(),
            )?)),
        }
    }
}

/// Lets `?` turn a failed query into each listed error's `Db` variant (which holds a [`DbError`]).
macro_rules! query_errors_are_db_errors {
    ($($error:ty),+ $(,)?) => {
        $(
            impl From<diesel::result::Error> for $error {
                fn from(error: diesel::result::Error) -> Self {
                    Self::Db(error.into())
                }
            }
        )+
    };
}
pub(crate) use query_errors_are_db_errors;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("{0}")]
    InUse(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl DbError {
    /// Whether the database refused text it cannot store (PostgreSQL and NUL characters).
    pub fn is_invalid_text(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("invalid byte sequence"))
    }

    /// Whether a unique constraint refused the write (two requests creating the same record at once).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// Whether the database itself is unreachable, as opposed to a statement failing.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Connect(_) | DbError::Pool(_) | DbError::Unavailable(_) => true,
            DbError::Query(diesel::result::Error::DatabaseError(kind, _)) => {
                matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
            }
            _ => false,
        }
    }
}

/// Builds pooled connections for a [`DatabaseTarget`].
pub struct ConnectionManager {
    target: DatabaseTarget,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        self.target.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    /// A connection that lost its server, or was given back inside a transaction (a panic part-way), is
    /// closed instead of pooled.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        match conn {
            DbConnection::Sqlite(c) => c.is_broken(),
            DbConnection::Postgresql(c) => c.is_broken(),
        }
    }
}

/// A pooled connection.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

type Pool = r2d2::Pool<ConnectionManager>;

/// Connections webhook intake and the Events API tail's storage have to themselves on PostgreSQL.
pub const INTAKE_CONNECTIONS: u32 = 2;
/// How long intake waits for one of its connections: a webhook is answered 503 within about this long
/// when the database is down, and the broker retries.
pub const INTAKE_CONNECTION_TIMEOUT: Duration = Duration::from_millis(500);
/// Connections the applier has to itself on PostgreSQL: one per applier worker.
pub const APPLY_CONNECTIONS: u32 = 2;

/// The database: connection pools for each kind of [`Work`] plus what it takes to write safely on each
/// backend (see [`ordering`]).
#[derive(Clone)]
pub struct Database {
    /// API requests, pulls, previews and background jobs; on SQLite also every read.
    shared: Pool,
    /// On PostgreSQL, webhook intake's own connections.
    intake: Option<Pool>,
    /// On PostgreSQL, the applier's own connections.
    apply: Option<Pool>,
    target: DatabaseTarget,
    /// SQLite has one writer at a time: every write of this process goes through this one connection.
    sqlite_writer: Option<Arc<WriterGate>>,
    /// On SQLite, the workspace locks (PostgreSQL's are advisory locks, shared by every instance).
    workspace_locks: Arc<KeyedLocks>,
    /// How much the tables have grown since PostgreSQL's statistics were last refreshed.
    growth: Arc<Mutex<Growth>>,
    /// Where waits for connections and locks are recorded.
    metrics: Option<Metrics>,
}

/// Rows written since the planner's statistics were last refreshed, and how many the tables held then.
#[derive(Default)]
struct Growth {
    /// Rows written since the tables' growth was last looked at.
    written_since: u64,
}

/// The tables looked up by lists of ids, and the columns of those lookups, whose statistics must follow
/// their growth on PostgreSQL (only those columns: the snapshots and bodies are costly to sample).
const ANALYZED_COLUMNS: [(&str, &str); 7] = [
    ("directory_users", "id, directory_id, idp_id, deleted_at"),
    ("directory_groups", "id, directory_id, deleted_at"),
    (
        "directory_group_memberships",
        "group_id, user_id, is_member",
    ),
    (
        "members",
        "id, workspace_id, email_key, directory_user_id, status, managed_by",
    ),
    (
        "team_member_sources",
        "team_id, member_id, source_type, group_id",
    ),
    ("team_links", "team_id, group_id, workspace_id"),
    (
        "webhook_events",
        "id, event_id, status, next_attempt_at, lane",
    ),
];

/// The page cache of the SQLite writer connection (the pooled readers keep SQLite's default).
const SQLITE_WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Runs `work` in a transaction of a write that may add to the change feed: on PostgreSQL its first
/// statement says so ([`ordering::mark_feed_writer`]), which orders the feed across workspaces.
fn write_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    writing_transaction(conn, |conn| {
        ordering::mark_feed_writer(conn)?;
        work(conn)
    })
}

/// Runs `work` in a transaction that writes. On SQLite it begins `IMMEDIATE`, taking the file's write
/// lock at once (waiting up to `busy_timeout` for another process's): a transaction begun as a reader
/// is refused without waiting at its first write when another process committed in between, which the
/// command line writing beside a busy service would otherwise meet.
fn writing_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    use diesel::result::Error;
    type Manager = <DbConnection as Connection>::TransactionManager;
    let DbConnection::Sqlite(sqlite) = &mut *conn else {
        return conn.transaction(work);
    };
    match AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE") {
        // Inside a transaction already: a savepoint, as diesel nests them.
        Err(Error::AlreadyInTransaction) => return conn.transaction(work),
        begun => begun?,
    }
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// A write in an apply lane: its transaction, and the workspace locks it took.
pub struct LaneWrite<'a> {
    pub conn: &'a mut DbConnection,
    db: &'a Database,
    /// The workspaces locked so far, for the rest of the transaction.
    locked: Vec<String>,
    /// On SQLite, their locks, held until the lane's transaction ends.
    held: Vec<KeyGuard<'a>>,
}

impl LaneWrite<'_> {
    /// Takes the locks of these workspaces (those not held already) for the rest of the transaction if no
    /// other writer holds any of them; false otherwise, and the caller ends the transaction without
    /// writing.
    pub fn try_lock_workspaces(&mut self, workspace_ids: &[String]) -> QueryResult<bool> {
        let wanted: Vec<String> = workspace_ids
            .iter()
            .filter(|id| !self.locked.contains(id))
            .cloned()
            .collect();
        if self.db.sqlite_writer.is_some() {
            let Some(guards) = self.db.workspace_locks.try_lock_all(&wanted) else {
                return Ok(false);
            };
            self.held.extend(guards);
        } else {
            for id in &wanted {
                if !ordering::try_lock_workspace_pg(self.conn, id)? {
                    return Ok(false);
                }
            }
        }
        self.locked.extend(wanted);
        Ok(true)
    }

    /// Whether every one of these workspaces is locked by this write.
    pub fn holds(&self, workspace_ids: &[String]) -> bool {
        workspace_ids.iter().all(|id| self.locked.contains(id))
    }
}

/// A workspace's lock held outside any write, until dropped: what a long write of that workspace does
/// to the others of the same workspace, for maintenance and tests.
pub enum WorkspaceHold {
    /// A PostgreSQL session lock, on a connection of its own.
    Postgres {
        conn: Box<diesel::PgConnection>,
        workspace_id: String,
    },
    /// SQLite's in-process lock.
    Sqlite {
        locks: Arc<KeyedLocks>,
        workspace_id: String,
    },
}

impl Drop for WorkspaceHold {
    fn drop(&mut self) {
        match self {
            WorkspaceHold::Postgres { conn, workspace_id } => {
                let _ = ordering::unlock_workspace_session(conn, workspace_id);
            }
            WorkspaceHold::Sqlite {
                locks,
                workspace_id,
            } => locks.release(workspace_id),
        }
    }
}

impl Database {
    /// Connects, reporting the real cause when the database cannot be reached. `pool_size` is the
    /// shared pool's; on PostgreSQL intake and the applier have connections of their own besides.
    pub fn connect(target: DatabaseTarget, pool_size: u32) -> Result<Self, DbError> {
        // One direct connection first, so a bad URL or a down server reports its own error.
        drop(target.establish()?);
        let pool = |size: u32, timeout: Duration| {
            r2d2::Pool::builder()
                .max_size(size)
                .min_idle(Some(1))
                .connection_timeout(timeout)
                // A connection the server closed while it sat in the pool is found before it is handed out.
                .test_on_check_out(true)
                .build(ConnectionManager {
                    target: target.clone(),
                })
        };
        let shared = pool(pool_size, Duration::from_secs(5))?;
        let postgres = matches!(target, DatabaseTarget::Postgres(_));
        let (intake, apply) = if postgres {
            (
                Some(pool(INTAKE_CONNECTIONS, INTAKE_CONNECTION_TIMEOUT)?),
                Some(pool(APPLY_CONNECTIONS, Duration::from_secs(5))?),
            )
        } else {
            (None, None)
        };
        let sqlite_writer = (!postgres).then(|| Arc::new(WriterGate::default()));
        Ok(Self {
            shared,
            intake,
            apply,
            target,
            sqlite_writer,
            workspace_locks: Arc::default(),
            growth: Arc::default(),
            metrics: None,
        })
    }

    /// The database, recording its waits for connections and locks into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where this database is.
    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }

    /// How long one write transaction should hold the database, about: on SQLite the single writer's
    /// share that keeps other workspaces' writes moving; none on PostgreSQL, where writers of different
    /// workspaces do not wait for each other.
    pub fn write_budget(&self) -> Option<Duration> {
        self.sqlite_writer.as_ref().map(|_| SQLITE_WRITE_BUDGET)
    }

    fn record_wait(&self, work: Work, since: Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.connection_wait(work.name(), since.elapsed());
        }
    }

    fn record_lock_wait(&self, since: Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.workspace_lock_wait(since.elapsed());
        }
    }

    /// A connection for `work`, from its own pool (on SQLite every reader comes from one pool).
    pub fn connection(&self, work: Work) -> Result<PooledConnection, DbError> {
        let pool = match work {
            Work::Intake => self.intake.as_ref(),
            Work::Apply => self.apply.as_ref(),
            Work::Pull | Work::Shared => None,
        }
        .unwrap_or(&self.shared);
        let asked = Instant::now();
        let conn = pool.get();
        self.record_wait(work, asked);
        Ok(conn?)
    }

    /// A shared connection for reading.
    pub fn conn(&self) -> Result<PooledConnection, DbError> {
        self.connection(Work::Shared)
    }

    /// Runs `work` on the connection that writes: on SQLite the one writer connection, in its turn, held for
    /// the duration and synced as the kind of work needs ([`Work::durable`]); on PostgreSQL a connection of
    /// the work's pool.
    fn with_writer<T, E>(
        &self,
        kind: Work,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let Some(gate) = &self.sqlite_writer else {
            let mut conn = self.connection(kind)?;
            return work(&mut conn);
        };
        let asked = Instant::now();
        let _turn = gate.enter(kind);
        self.record_wait(kind, asked);
        let mut slot = gate
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            let mut conn = self.target.establish()?;
            conn.batch_execute(&format!("PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB};"))
                .map_err(DbError::from)?;
            *slot = Some(WriterConnection {
                conn,
                durable: true,
            });
        }
        let writer = slot.as_mut().expect("opened above");
        if writer.durable != kind.durable() {
            let synchronous = if kind.durable() { "FULL" } else { "NORMAL" };
            writer
                .conn
                .batch_execute(&format!("PRAGMA synchronous = {synchronous}"))
                .map_err(DbError::from)?;
            writer.durable = kind.durable();
        }
        work(&mut writer.conn)
    }

    /// Applies the pending migrations of this backend.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        self.with_writer(Work::Shared, run_migrations)
    }

    /// Runs `work` in one transaction ordered with no other: for writes that change no workspace's
    /// members, teams, links, mappings or directories (tokens, a run's record, a delivery's status), and
    /// for tests that set a database up with nothing else running.
    pub fn write<T, E>(&self, work: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.with_writer(Work::Shared, |conn| write_transaction(conn, work))
    }

    /// As [`Database::write`], for a write a crash may lose without harm because what it records is done
    /// again (an outbound webhook sender's cursor and attempts: the changes are sent again, at least
    /// once): on SQLite its commit is not synced to the disk before it returns, as a pull's.
    pub fn write_redoable<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.with_writer(Work::Pull, |conn| write_transaction(conn, work))
    }

    /// Runs `work` in one transaction holding the workspace's lock from its first statement: ordered after
    /// every write of the workspace that took the lock before (the applier's, a pull's, an admin's, on
    /// any instance), and never waiting for another workspace's.
    pub fn write_workspace<T, E>(
        &self,
        workspace_id: &str,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.write_workspace_as(Work::Shared, workspace_id, work)
    }

    /// Runs a write of one workspace made of steps: `step(conn, limit)` does up to `limit` items of it and
    /// answers `Some` once the write is done. On PostgreSQL every step runs in one transaction holding the
    /// workspace's lock, so the write is atomic. On SQLite each step is a transaction of its own, sized to
    /// the single writer's budget, and the workspace's lock is held across them: intake and other
    /// workspaces' writes go between the steps, this workspace's writes wait for the end. A crash between
    /// two steps leaves the steps before committed.
    pub fn write_workspace_in_steps<T, E>(
        &self,
        workspace_id: &str,
        mut step: impl FnMut(&mut DbConnection, usize) -> Result<Option<T>, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        const LEAST: usize = 50;
        const MOST: usize = 1000;
        if self.sqlite_writer.is_some() {
            let _held = self.lock_workspace_here(workspace_id);
            let mut sizer = BatchSizer::new(self.write_budget(), LEAST, MOST);
            loop {
                let limit = sizer.next();
                let done = self.with_writer(Work::Shared, |conn| {
                    write_transaction(conn, |conn| sizer.timed(limit, || step(conn, limit)))
                })?;
                if let Some(done) = done {
                    return Ok(done);
                }
            }
        }
        self.with_writer(Work::Shared, |conn| {
            write_transaction(conn, |conn| {
                self.lock_workspace_in(conn, workspace_id)?;
                loop {
                    if let Some(done) = step(conn, MOST)? {
                        return Ok(done);
                    }
                }
            })
        })
    }

    /// As [`Database::write_workspace`], for one transaction of a pull (see [`Work::durable`]).
    pub fn write_pull<T, E>(
        &self,
        workspace_id: &str,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.write_workspace_as(Work::Pull, workspace_id, work)
    }

    fn write_workspace_as<T, E>(
        &self,
        kind: Work,
        workspace_id: &str,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        if self.sqlite_writer.is_some() {
            let _held = self.lock_workspace_here(workspace_id);
            return self.with_writer(kind, |conn| write_transaction(conn, work));
        }
        self.with_writer(kind, |conn| {
            write_transaction(conn, |conn| {
                self.lock_workspace_in(conn, workspace_id)?;
                work(conn)
            })
        })
    }

    /// On SQLite, takes the workspace's in-process lock, waiting for it. Taken before the writer, never
    /// while holding it, so nobody holding the writer waits for a workspace.
    fn lock_workspace_here(&self, workspace_id: &str) -> KeyGuard<'_> {
        let asked = Instant::now();
        let held = self.workspace_locks.lock(workspace_id);
        self.record_lock_wait(asked);
        held
    }

    /// On PostgreSQL, takes the workspace's lock for the rest of the transaction, waiting for it.
    fn lock_workspace_in(&self, conn: &mut DbConnection, workspace_id: &str) -> QueryResult<()> {
        let asked = Instant::now();
        ordering::lock_workspace_pg(conn, workspace_id)?;
        self.record_lock_wait(asked);
        Ok(())
    }

    /// Runs `work` in one transaction of the applier that holds `lane` (on PostgreSQL across every
    /// instance); `None` without running it when another instance holds the lane. `work` takes the
    /// workspace locks it needs with [`LaneWrite::try_lock_workspaces`].
    pub fn write_in_lane<T, E>(
        &self,
        lane: &str,
        work: impl FnOnce(&mut LaneWrite<'_>) -> Result<T, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.with_writer(Work::Apply, |conn| {
            write_transaction(conn, |conn| {
                if !ordering::try_lock_lane_pg(conn, lane)? {
                    return Ok(None);
                }
                let mut write = LaneWrite {
                    conn,
                    db: self,
                    locked: Vec::new(),
                    held: Vec::new(),
                };
                work(&mut write).map(Some)
            })
        })
    }

    /// Stores webhook deliveries, on intake's own connections (on SQLite ahead of every other writer), and
    /// without any workspace lock (storing changes no directory state, and adds nothing to the change
    /// feed). On PostgreSQL these transactions
    /// take a lock of their own, so delivery ids are handed out in commit order and no lane's cursor passes
    /// over one still being committed.
    pub fn write_deliveries<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.with_writer(Work::Intake, |conn| {
            writing_transaction(conn, |conn| {
                if let DbConnection::Postgresql(c) = conn {
                    c.batch_execute(&format!(
                        "SELECT pg_advisory_xact_lock({}, hashtext(current_schema()))",
                        AdvisoryLock::Deliveries.key()
                    ))?;
                }
                work(conn)
            })
        })
    }

    /// Takes a workspace's lock and holds it until the returned value is dropped, outside any write of
    /// this process: every write of the workspace waits meanwhile (the applier moves on to other
    /// workspaces), as behind a long admin transaction.
    pub fn hold_workspace(&self, workspace_id: &str) -> Result<WorkspaceHold, DbError> {
        match &self.target {
            DatabaseTarget::Sqlite(_) => {
                self.workspace_locks.lock(workspace_id).keep();
                Ok(WorkspaceHold::Sqlite {
                    locks: self.workspace_locks.clone(),
                    workspace_id: workspace_id.to_string(),
                })
            }
            DatabaseTarget::Postgres(_) => {
                let DbConnection::Postgresql(mut conn) = self.target.establish()? else {
                    unreachable!("a PostgreSQL target opens PostgreSQL connections")
                };
                ordering::lock_workspace_session(&mut conn, workspace_id)?;
                Ok(WorkspaceHold::Postgres {
                    conn: Box::new(conn),
                    workspace_id: workspace_id.to_string(),
                })
            }
        }
    }

    /// On PostgreSQL, after committing `written` rows: every 1,000 rows written, refreshes the planner's
    /// statistics if one of the analysed tables has grown to twice its size at its last analysis (by
    /// 128 KiB at least), each table on its own: a table that was empty (team sources before a
    /// first group link) is refreshed once it fills, however large the others are. Lookups by lists of ids
    /// (`= ANY`) use their indexes only when the planner knows how few rows each id matches; without
    /// statistics it guesses 0.5% of the table per id, and a batch of 500 ids becomes a sequential scan
    /// comparing each row with each id. A prepared statement keeps the plan it was first given until the
    /// statistics change, so one planned while a table was nearly empty would scan it long after it has
    /// grown. Autovacuum's own analysis may run rarely or not at all. Runs on a pooled connection, outside
    /// any transaction and lock; a failure is logged, not returned (the statistics only speed things up).
    pub fn keep_statistics_current(&self, written: usize) {
        if !matches!(self.target, DatabaseTarget::Postgres(_)) {
            return;
        }
        {
            let mut growth = self.growth.lock().unwrap_or_else(|p| p.into_inner());
            growth.written_since += written as u64;
            if growth.written_since < 1_000 {
                return;
            }
            growth.written_since = 0;
        }
        self.refresh_outgrown_statistics();
    }

    /// On PostgreSQL, refreshes the planner's statistics if one of the analysed tables has grown to twice
    /// its size at its last analysis (see [`Database::keep_statistics_current`]): before work that looks
    /// up by lists of ids, after writes that did not count their rows (an admin linking a large group).
    pub fn refresh_outgrown_statistics(&self) {
        if !matches!(self.target, DatabaseTarget::Postgres(_)) {
            return;
        }
        // One refresh at a time.
        let _refreshing = self.growth.lock().unwrap_or_else(|p| p.into_inner());
        let refreshed = (|| {
            let mut conn = self.conn()?;
            if outgrown_statistics(&mut conn)? {
                analyze(&mut conn)?;
            }
            Ok::<_, DbError>(())
        })();
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "could not refresh PostgreSQL's statistics; lookups may be slower until it can");
        }
    }

    /// Runs `work` on a shared connection without a transaction.
    pub fn read<T, E>(&self, work: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.conn()?;
        work(&mut conn)
    }

    /// Runs `work` in a read-only transaction on a shared connection: one consistent snapshot, no lock
    /// taken, no writer waited for (a preview).
    pub fn read_only<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            ordering::read_only_snapshot(conn)?;
            work(conn)
        })
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        Ok(conn.batch_execute("SELECT 1")?)
    }
}

/// On PostgreSQL, refreshes the planner's statistics of the columns looked up by lists of ids.
pub fn analyze(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgresql(c) => {
            let tables: Vec<String> = ANALYZED_COLUMNS
                .iter()
                .map(|(table, columns)| format!("{table} ({columns})"))
                .collect();
            c.batch_execute(&format!("ANALYZE {}", tables.join(", ")))
        }
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Whether one of the analysed tables of this schema has grown to twice its size at its last analysis
/// and by 16 pages (128 KiB, 1,000 to 2,000 rows) at least; one never analysed counts as empty. Read from
/// the tables' files, so rows written a moment ago count.
fn outgrown_statistics(conn: &mut DbConnection) -> QueryResult<bool> {
    let names = ANALYZED_COLUMNS
        .map(|(table, _)| format!("'{table}'"))
        .join(", ");
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "(SELECT COALESCE(bool_or( \
           pg_relation_size(c.oid) / current_setting('block_size')::bigint > 2 * c.relpages + 16), false) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relname IN ({names}))"
    )))
    .get_result(conn)
}

/// Keeps a second `rollcall serve` off a SQLite file that one already serves: every change goes through one
/// serialization point, and on SQLite that point is the serving process's single writer, which another
/// process would bypass. Held for the life of the service (released when the process ends, however it
/// ends); `None` on PostgreSQL, where several instances share the database safely.
#[derive(Debug)]
pub struct InstanceLock {
    _file: std::fs::File,
}

impl InstanceLock {
    /// Takes the lock of `target`'s SQLite file, or says who holds it.
    pub fn acquire(target: &DatabaseTarget) -> Result<Option<Self>, DbError> {
        let DatabaseTarget::Sqlite(path) = target else {
            return Ok(None);
        };
        let lock_path = format!("{path}.serve-lock");
        let in_use = |why: String| DbError::InUse(format!("cannot lock {lock_path}: {why}"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| in_use(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DbError::InUse(format!(
                    "another `rollcall serve` is already using the SQLite file {path}: SQLite takes one \
                     service per file. Stop the other one, or run several instances on PostgreSQL \
                     (DATABASE_URL=postgres://…)"
                )));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(in_use(error.to_string())),
        }
        Ok(Some(Self { _file: file }))
    }
}

fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let migration_error =
        |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect())
            .map_err(migration_error),
        DbConnection::Postgresql(c) => {
            // Several instances may start at once: one migrates, the others wait for it.
            let lock = AdvisoryLock::Migrations.key();
            c.batch_execute(&format!("SELECT pg_advisory_lock({lock})"))?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect())
                .map_err(migration_error);
            c.batch_execute(&format!("SELECT pg_advisory_unlock({lock})"))?;
            applied
        }
    }
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&redact_password(url.expose_secret()))
                .finish(),
        }
    }
}

/// A database URL (of any scheme) or PostgreSQL key/value connection string with its password
/// (`user:PASSWORD@`, or a `password=` parameter or keyword) replaced by `[redacted]`. URLs are read by the
/// `url` crate (so a password holding `@` or `:` is found where a URL parser finds it); a URL it cannot read
/// shows its scheme alone. A key/value connection string is not a URL, so it is read here.
pub fn redact_password(url: &str) -> String {
    use crate::secret::REDACTED;
    use url::{form_urlencoded, Position, Url};
    let Some((scheme, _)) = url.split_once("://") else {
        return redact_conninfo_password(url);
    };
    let Ok(parsed) = Url::parse(url) else {
        return format!("{scheme}://{REDACTED}");
    };
    // The text as parsed, cut at the url crate's positions; only the password and `password=` values are
    // replaced.
    let mut shown = match parsed.password() {
        Some(_) => format!(
            "{}:{REDACTED}@{}",
            &parsed[..Position::AfterUsername],
            &parsed[Position::BeforeHost..Position::AfterPath]
        ),
        None => parsed[..Position::AfterPath].to_owned(),
    };
    if let Some(query) = parsed.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let key = form_urlencoded::parse(pair.as_bytes())
                    .next()
                    .map(|(k, _)| k);
                match key {
                    Some(key) if key == "password" => format!("password={REDACTED}"),
                    _ => pair.to_owned(),
                }
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown.push_str(&parsed[Position::AfterQuery..]);
    shown
}

/// A key/value connection string (`host=db password=… user=app`) with the value of every `password`
/// keyword replaced by `[redacted]`; a value ends at white space, or at its closing quote. Hand-written:
/// libpq's key/value syntax (quotes, backslash escapes, spaces around `=`) is not a URL.
fn redact_conninfo_password(text: &str) -> String {
    use crate::secret::REDACTED;
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("password") {
        let starts_keyword = rest[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let after = &rest[at + "password".len()..];
        let value = after.trim_start().strip_prefix('=').map(str::trim_start);
        let (Some(value), true) = (value, starts_keyword) else {
            redacted.push_str(&rest[..at + "password".len()]);
            rest = after;
            continue;
        };
        let length = match value.strip_prefix('\'') {
            // A quoted value runs to the next quote that is not escaped.
            Some(quoted) => {
                let mut escaped = false;
                quoted
                    .char_indices()
                    .find(|&(_, c)| {
                        let closes = c == '\'' && !escaped;
                        escaped = c == '\\' && !escaped;
                        closes
                    })
                    .map_or(value.len(), |(i, _)| i + 2)
            }
            None => value.find(char::is_whitespace).unwrap_or(value.len()),
        };
        redacted.push_str(&rest[..at]);
        redacted.push_str("password=");
        redacted.push_str(REDACTED);
        rest = &value[length..];
    }
    redacted.push_str(rest);
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migrations() {
        let (sqlite, postgres) = migration_names();
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }

    #[test]
    fn reads_every_url_form() {
        assert_eq!(
            DatabaseTarget::parse("sqlite://data/r.db"),
            Ok(DatabaseTarget::Sqlite("data/r.db".into()))
        );
        assert_eq!(
            DatabaseTarget::parse("r.db"),
            Ok(DatabaseTarget::Sqlite("r.db".into()))
        );
        assert_eq!(
            DatabaseTarget::parse("postgresql://u@h/db"),
            Ok(DatabaseTarget::Postgres("postgresql://u@h/db".into()))
        );
        assert!(DatabaseTarget::parse("postgres://u@h/db").is_ok());
        assert!(DatabaseTarget::parse("mysql://u@h/db").is_err());
        assert!(DatabaseTarget::parse("").is_err());
        assert!(DatabaseTarget::parse("sqlite://").is_err());
    }

    #[test]
    fn logs_never_show_a_password() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.internal:5432/rollcall",
                "postgres://app:[redacted]@db.internal:5432/rollcall",
            ),
            (
                "postgresql://app:s3c@ret@db/rollcall?sslmode=require",
                "postgresql://app:[redacted]@db/rollcall?sslmode=require",
            ),
            ("postgres://app@db/rollcall", "postgres://app@db/rollcall"),
            (
                "postgres://db/rollcall?user=app&password=s3cret&sslmode=require",
                "postgres://db/rollcall?user=app&password=[redacted]&sslmode=require",
            ),
            (
                "host=db dbname=rollcall password=s3cret user=app",
                "host=db dbname=rollcall password=[redacted] user=app",
            ),
            (
                "host=db password = 's3 \\'cret' user=app",
                "host=db password=[redacted] user=app",
            ),
            ("host=db passwordless=yes", "host=db passwordless=yes"),
            (
                "postgres://app:s3%40ss:w0rd@db/rollcall#top",
                "postgres://app:[redacted]@db/rollcall#top",
            ),
            (
                "postgres://db/rollcall?passwordless=1&pass%77ord=s3cret",
                "postgres://db/rollcall?passwordless=1&password=[redacted]",
            ),
            (
                "postgres://app:s3cret@db:port/rollcall",
                "postgres://[redacted]",
            ),
        ] {
            let target = DatabaseTarget::parse(url).unwrap();
            assert_eq!(target.backend(), "postgresql", "{url}");
            assert_eq!(target.display(), shown);
            let debug = format!("{target:?}");
            assert!(!debug.contains("s3"), "{debug}");
        }
    }

    #[test]
    fn an_unreachable_database_reports_its_cause() {
        let target =
            DatabaseTarget::parse("postgres://nobody@127.0.0.1:1/none?connect_timeout=2").unwrap();
        let error = Database::connect(target, 1)
            .err()
            .expect("port 1 has no database");
        assert!(error.to_string().contains("cannot connect"), "{error}");
        assert!(error.to_string().len() > "cannot connect to the database: ".len());
    }
}
