//! Storage on SQLite (the embedded default) and PostgreSQL (production, several instances) from one codebase.
//!
//! Queries are written once against [`DbConnection`]; the few statements that differ per backend go through
//! [`on_backend!`](crate::on_backend), which runs the same diesel code on the concrete connection.
//!
//! **One writer, one order.** Every change to members, teams, sources, links, mappings and roles, whoever
//! makes it (the applier, a pull, an admin request), is made in a [`Database::write`] transaction, and every
//! such transaction holds the same lock from its first statement to its commit: on SQLite the process's
//! single writer slot (a second `serve` on the same file is refused, see [`InstanceLock`]), on PostgreSQL a
//! transaction-scoped advisory lock per schema, shared by every instance. Each writer therefore reads what
//! the previous one committed, and any mix of them ends as some serial order of them would.

pub mod models;
pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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

/// Which database a `DATABASE_URL` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_FILE: &str = "rollcall.db";

impl DatabaseTarget {
    /// Reads `sqlite://PATH`, a bare file path, `postgres://…` or `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
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
        Ok(Self::Sqlite(url.to_string()))
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }

    /// Where the database is, without any password, for logs.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite file {path}"),
            Self::Postgres(url) => match url.split_once("://").and_then(|(s, rest)| {
                let (auth, host) = rest.rsplit_once('@')?;
                let user = auth.split(':').next().unwrap_or_default();
                Some(format!("{s}://{user}@{host}"))
            }) {
                Some(redacted) => redacted,
                None => url.clone(),
            },
        }
    }

    fn establish(&self) -> Result<DbConnection, DbError> {
        match self {
            Self::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // WAL lets readers run beside the writer; FULL makes every commit durable.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )?;
                Ok(DbConnection::Sqlite(conn))
            }
            Self::Postgres(url) => Ok(DbConnection::Postgresql(diesel::PgConnection::establish(
                url,
            )?)),
        }
    }
}

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
}

impl DbError {
    /// Whether the database refused text it cannot store (PostgreSQL and NUL characters).
    pub fn is_invalid_text(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("invalid byte sequence"))
    }

    /// Whether the database itself is unreachable, as opposed to a statement failing.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Connect(_) | DbError::Pool(_) => true,
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

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// A pooled connection.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// The database: a connection pool plus what it takes to write safely on each backend.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<ConnectionManager>,
    target: DatabaseTarget,
    /// SQLite has one writer at a time: writes in this process queue here instead of failing busy.
    sqlite_writer: Option<Arc<WriterGate>>,
}

/// The single SQLite writer slot. Webhook intake waits here with priority: background work checks
/// [`Database::urgent_writer_waiting`] and steps aside, so acknowledgements never queue behind it.
#[derive(Default)]
struct WriterGate {
    slot: Mutex<()>,
    urgent_waiting: AtomicUsize,
}

impl Database {
    /// Connects, reporting the real cause when the database cannot be reached.
    pub fn connect(target: DatabaseTarget, pool_size: u32) -> Result<Self, DbError> {
        // One direct connection first, so a bad URL or a down server reports its own error.
        drop(target.establish()?);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .test_on_check_out(false)
            .build(ConnectionManager {
                target: target.clone(),
            })?;
        let sqlite_writer =
            matches!(target, DatabaseTarget::Sqlite(_)).then(|| Arc::new(WriterGate::default()));
        Ok(Self {
            pool,
            target,
            sqlite_writer,
        })
    }

    /// Where this database is.
    pub fn target(&self) -> &DatabaseTarget {
        &self.target
    }

    /// A connection for reading.
    pub fn conn(&self) -> Result<PooledConnection, DbError> {
        Ok(self.pool.get()?)
    }

    /// Applies the pending migrations of this backend.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.conn()?;
        let _writer = self.writer_lock();
        run_migrations(&mut conn)
    }

    /// Runs `work` in one transaction that holds the serialization lock from its first statement: queued
    /// behind every other writer of this database (of this process on SQLite, of every instance on
    /// PostgreSQL).
    pub fn write<T, E>(&self, work: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        let mut conn = self.conn()?;
        let _writer = self.writer_lock();
        conn.transaction(|conn| {
            lock_writes(conn)?;
            work(conn)
        })
    }

    /// As [`Database::write`] for background work: first lets any urgent write waiting for the SQLite writer
    /// slot (a webhook's acknowledgement) go ahead.
    pub fn write_behind_urgent<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        while self.urgent_writer_waiting() {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.write(work)
    }

    /// Stores webhook deliveries: ahead of background writers that check
    /// [`Database::urgent_writer_waiting`], and without the serialization lock (deliveries change no
    /// directory state). On PostgreSQL these transactions take their own lock instead, so delivery ids are
    /// handed out in commit order and the applier's cursor never passes one still being committed.
    pub fn write_deliveries<T, E>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        let mut conn = self.conn()?;
        let _writer = self.sqlite_writer.as_ref().map(|gate| {
            gate.urgent_waiting.fetch_add(1, Ordering::SeqCst);
            let guard = gate
                .slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            gate.urgent_waiting.fetch_sub(1, Ordering::SeqCst);
            guard
        });
        conn.transaction(|conn| {
            if let DbConnection::Postgresql(c) = conn {
                c.batch_execute(
                    "SELECT pg_advisory_xact_lock(7243004, hashtext(current_schema()))",
                )?;
            }
            work(conn)
        })
    }

    /// Whether an urgent write waits for the SQLite writer slot (never on PostgreSQL).
    pub fn urgent_writer_waiting(&self) -> bool {
        self.sqlite_writer
            .as_ref()
            .is_some_and(|gate| gate.urgent_waiting.load(Ordering::SeqCst) > 0)
    }

    /// Runs `work` on a pooled connection without a transaction.
    pub fn read<T, E>(&self, work: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.conn()?;
        work(&mut conn)
    }

    /// Holds the SQLite writer slot (nothing on PostgreSQL) for writes done outside [`Database::write`].
    pub fn writer_lock(&self) -> Option<MutexGuard<'_, ()>> {
        self.sqlite_writer.as_ref().map(|gate| {
            gate.slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        Ok(conn.batch_execute("SELECT 1")?)
    }
}

/// Takes the serialization lock for the rest of the caller's transaction: on PostgreSQL a
/// transaction-scoped advisory lock, per schema (deployments in other schemas of the same database have
/// their own); nothing on SQLite, whose writes are already one at a time.
fn lock_writes(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgresql(c) => {
            c.batch_execute("SELECT pg_advisory_xact_lock(7243002, hashtext(current_schema()))")
        }
        DbConnection::Sqlite(_) => Ok(()),
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
            c.batch_execute("SELECT pg_advisory_lock(7243001)")?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect())
                .map_err(migration_error);
            c.batch_execute("SELECT pg_advisory_unlock(7243001)")?;
            applied
        }
    }
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
        let target =
            DatabaseTarget::parse("postgres://app:s3cret@db.internal:5432/rollcall").unwrap();
        assert_eq!(target.display(), "postgres://app@db.internal:5432/rollcall");
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
