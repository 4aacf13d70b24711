//! Where the tail reads from, kept in the database so that every instance and every restart share it,
//! and the lease that lets one tail at a time read.

use crate::db::models::{EventTailRow, NewWebhookEvent};
use crate::db::schema::event_tail;
use crate::db::{AdvisoryLock, Database, DatabaseTarget, DbConnection, DbError, InstanceLock};
use crate::intake::event_store::{insert_deliveries, Stored};
use crate::metrics::EventTailLag;
use crate::workos::timestamp::{self, Timestamp};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Bool;

/// The tail's stored place; `None` before it has read anything.
pub fn load(conn: &mut DbConnection) -> QueryResult<Option<EventTailRow>> {
    event_tail::table
        .find(1)
        .select(EventTailRow::as_select())
        .first(conn)
        .optional()
}

/// The tail's stored place, read on a pooled connection.
pub fn read(db: &Database) -> Result<Option<EventTailRow>, DbError> {
    db.read(|conn| load(conn).map_err(DbError::from))
}

/// The tail's lag, once it has read: how old its newest stored event is and when it last caught up.
pub fn lag(conn: &mut DbConnection) -> QueryResult<Option<EventTailLag>> {
    let now = timestamp::now();
    let age = |at: Option<Timestamp>| at.map(|at| (now - at).to_std().unwrap_or_default());
    let Some(place) = load(conn)? else {
        return Ok(None);
    };
    Ok(Some(EventTailLag {
        newest_event_age: age(place.cursor_event_at),
        last_poll_age: age(place.last_poll_at),
        stalled: stalled_at(conn, &place)?.is_some(),
    }))
}

/// The tail's stored place, and why it looks stuck if it does (see [`stalled`]).
pub fn load_with_stall(db: &Database) -> Result<(Option<EventTailRow>, Option<String>), DbError> {
    db.read(|conn| {
        let place = load(conn)?;
        let stalled = match &place {
            Some(place) => stalled_at(conn, place)?,
            None => None,
        };
        Ok((place, stalled))
    })
}

/// Why the tail looks stuck, if it does: it has read no event since the time it was told to start at, and
/// polled since webhooks brought events the broker created after that time (the broker's clock far behind
/// this host's, or an API key of another environment than the webhooks').
pub fn stalled(conn: &mut DbConnection) -> QueryResult<Option<String>> {
    match load(conn)? {
        Some(place) => stalled_at(conn, &place),
        None => Ok(None),
    }
}

/// As [`stalled`], for the place already read.
pub fn stalled_at(conn: &mut DbConnection, place: &EventTailRow) -> QueryResult<Option<String>> {
    use crate::db::schema::webhook_events;
    use crate::domain::DeliverySource;
    let (None, Some(from), Some(polled)) = (&place.cursor, place.resume_from, place.last_poll_at)
    else {
        return Ok(None);
    };
    let missed: i64 = webhook_events::table
        .filter(webhook_events::source.eq(DeliverySource::Webhook))
        .filter(webhook_events::event_created_at.gt(from))
        .filter(webhook_events::received_at.lt(polled))
        .count()
        .get_result(conn)?;
    Ok((missed > 0).then(|| {
        format!(
            "the tail has read no event created after {} although webhooks brought {missed} created since; is the broker's clock far behind this host's, or its API key another environment's?",
            timestamp::time_json(&from)
        )
    }))
}

/// Writes the row, creating it the first time.
fn save(conn: &mut DbConnection, row: &EventTailRow) -> QueryResult<()> {
    let updated = diesel::update(event_tail::table.find(1))
        .set((
            event_tail::cursor.eq(&row.cursor),
            event_tail::cursor_event_at.eq(row.cursor_event_at),
            event_tail::resume_from.eq(row.resume_from),
            event_tail::last_poll_at.eq(row.last_poll_at),
            event_tail::events_stored.eq(row.events_stored),
            event_tail::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(event_tail::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

fn empty_place(now: Timestamp) -> EventTailRow {
    EventTailRow {
        id: 1,
        cursor: None,
        cursor_event_at: None,
        resume_from: None,
        last_poll_at: None,
        events_stored: 0,
        updated_at: now,
    }
}

/// Stores a page of events from the tail and moves the cursor past them, in one transaction: a crash
/// leaves both as they were or both done, so no event is skipped and none is stored twice (an event a
/// webhook brought first is counted on its row, as any redelivery). Returns what became of each.
#[tracing::instrument(name = "store_tail_page", skip_all, fields(events = deliveries.len(), cursor = %cursor))]
pub fn store_page(
    db: &Database,
    deliveries: &[NewWebhookEvent],
    cursor: &str,
    cursor_event_at: Option<Timestamp>,
) -> Result<Vec<Stored>, DbError> {
    db.write_deliveries(|conn| {
        let stored = insert_deliveries(conn, deliveries)?;
        let now = timestamp::now();
        let mut place = load(conn)?.unwrap_or_else(|| empty_place(now));
        place.cursor = Some(cursor.to_string());
        place.cursor_event_at = cursor_event_at.or(place.cursor_event_at);
        place.resume_from = None;
        place.events_stored += stored.iter().filter(|s| **s == Stored::New).count() as i64;
        place.updated_at = now;
        save(conn, &place)?;
        Ok(stored)
    })
}

/// Records the end of a catch-up that reached the newest event.
pub fn record_poll(db: &Database, at: Timestamp) -> Result<(), DbError> {
    db.write_deliveries(|conn| {
        let mut place = load(conn)?.unwrap_or_else(|| empty_place(at));
        place.last_poll_at = Some(at);
        place.updated_at = timestamp::now();
        save(conn, &place)?;
        Ok(())
    })
}

/// Forgets the cursor: the tail reads on from `from`, the start of the full pull that made up for
/// whatever the cursor would have read.
pub fn restart_from(db: &Database, from: Timestamp) -> Result<(), DbError> {
    db.write_deliveries(|conn| {
        let now = timestamp::now();
        let mut place = load(conn)?.unwrap_or_else(|| empty_place(now));
        place.cursor = None;
        place.cursor_event_at = None;
        place.resume_from = Some(from);
        place.updated_at = now;
        save(conn, &place)?;
        Ok(())
    })
}

/// The right to run the tail: one holder at a time across every instance sharing the database.
///
/// On PostgreSQL a session advisory lock, per schema, on a connection of its own (not from the pool, so it
/// neither takes a pooled connection for good nor goes back to the pool with the lock), released when the
/// lease is dropped or the process ends. On SQLite one `rollcall serve` holds the file (see
/// [`InstanceLock`]); a command-line catch-up takes that same lock.
pub struct TailLease {
    holder: LeaseHolder,
}

enum LeaseHolder {
    Postgres(DbConnection),
    /// `rollcall serve` on SQLite: its instance lock already keeps every other process off.
    ServeOnSqlite,
    /// A command-line catch-up on SQLite: holds the instance lock while it runs.
    SqliteFile(#[allow(dead_code)] InstanceLock),
}

impl TailLease {
    /// Takes the lease for `rollcall serve`, or `None` when another instance holds it.
    pub fn for_service(db: &Database) -> Result<Option<Self>, DbError> {
        match db.target() {
            DatabaseTarget::Sqlite(_) => Ok(Some(Self {
                holder: LeaseHolder::ServeOnSqlite,
            })),
            DatabaseTarget::Postgres(_) => Self::on_postgres(db.target()),
        }
    }

    /// Takes the lease for a command-line catch-up, or says who holds it: on SQLite a running
    /// `rollcall serve`, on PostgreSQL an instance whose tail runs.
    pub fn for_command_line(target: &DatabaseTarget) -> Result<Option<Self>, DbError> {
        match target {
            DatabaseTarget::Sqlite(_) => match InstanceLock::acquire(target) {
                Ok(lock) => Ok(lock.map(|lock| Self {
                    holder: LeaseHolder::SqliteFile(lock),
                })),
                Err(DbError::InUse(_)) => Ok(None),
                Err(e) => Err(e),
            },
            DatabaseTarget::Postgres(_) => Self::on_postgres(target),
        }
    }

    fn on_postgres(target: &DatabaseTarget) -> Result<Option<Self>, DbError> {
        let mut conn = target.establish()?;
        let DbConnection::Postgresql(c) = &mut conn else {
            return Ok(None);
        };
        let taken: bool = diesel::select(diesel::dsl::sql::<Bool>(&format!(
            "pg_try_advisory_lock({}, hashtext(current_schema()))",
            AdvisoryLock::EventTail.key()
        )))
        .get_result(c)?;
        Ok(taken.then_some(Self {
            holder: LeaseHolder::Postgres(conn),
        }))
    }

    /// Whether the lease still holds: on PostgreSQL its connection still answers (a lost connection took
    /// the lock with it).
    pub fn holds(&mut self) -> bool {
        match &mut self.holder {
            LeaseHolder::Postgres(conn) => conn.batch_execute("SELECT 1").is_ok(),
            LeaseHolder::ServeOnSqlite | LeaseHolder::SqliteFile(_) => true,
        }
    }
}
