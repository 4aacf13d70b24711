//! Durable storage of webhook deliveries with group commit: deliveries that arrive together are inserted
//! in one transaction, and each sender hears back only after that transaction has committed.
//!
//! A delivery of an event already stored (the broker's retries, a replay of a captured request inside the
//! signature's tolerance) is not stored again: the first row counts it in `redeliveries`. A signed body
//! that is not an event is known by the hash of its bytes instead of an event id, so the broker's retries
//! of it do not pile up either.

use crate::db::models::NewWebhookEvent;
use crate::db::schema::webhook_events;
use crate::db::{Database, DbConnection, DbError};
use crate::domain::EventStatus;
use crate::ids::DirectoryId;
use crate::on_backend;
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

/// The most deliveries committed in one transaction.
const MAX_BATCH: usize = 500;

/// Why a delivery could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the database did not take the event: {0}")]
    Database(String),
    #[error("the event store is shutting down")]
    ShuttingDown,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored, to be applied.
    New,
    /// Its event was stored before: counted on that row, its body not stored again.
    Redelivery,
}

struct Pending {
    event: NewWebhookEvent,
    stored: oneshot::Sender<Result<Stored, StoreError>>,
}

/// A handle to the writer thread that stores deliveries.
#[derive(Clone)]
pub struct EventStore {
    sender: mpsc::Sender<Pending>,
}

/// Called after each commit that made deliveries to apply durable, with the lanes (directories) they are in.
pub type OnCommit = Arc<dyn Fn(Vec<String>) + Send + Sync>;

impl EventStore {
    /// Starts the writer thread; it stops once every handle is dropped and the queue is drained, and counts
    /// as a task of `tasks` until then (so a stopping service waits for every acknowledged delivery to be
    /// committed).
    pub fn start(db: Database, on_commit: OnCommit, tasks: &TaskTracker) -> Self {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
        let tracked = tasks.token();
        std::thread::Builder::new()
            .name("event-store".into())
            .spawn(move || {
                let _tracked = tracked;
                write_batches(db, receiver, on_commit)
            })
            .expect("the event store thread starts");
        Self { sender }
    }

    /// Stores one delivery; returns once it is committed.
    #[tracing::instrument(
        name = "store_delivery",
        skip_all,
        fields(event_id = event.event_id.as_deref(), directory_id = event.directory_id.as_ref().map(DirectoryId::as_str), source = %event.source)
    )]
    pub async fn store(&self, event: NewWebhookEvent) -> Result<Stored, StoreError> {
        let (stored, outcome) = oneshot::channel();
        self.sender
            .send(Pending { event, stored })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        let stored = outcome.await.map_err(|_| StoreError::ShuttingDown)?;
        tracing::debug!(outcome = ?stored, "delivery stored");
        stored
    }
}

fn write_batches(db: Database, mut receiver: mpsc::Receiver<Pending>, on_commit: OnCommit) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (events, senders): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|p| (p.event, p.stored)).unzip();
        let results: Vec<Result<Stored, DbError>> = match insert_batch(&db, &events) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // The database is down: every sender hears so now (503, the broker retries), instead of after
            // one connection timeout per delivery.
            Err(e) if e.is_unavailable() => {
                let why = e.to_string();
                events
                    .iter()
                    .map(|_| Err(DbError::Unavailable(why.clone())))
                    .collect()
            }
            // One delivery the database refuses must not fail the others: store them one by one.
            Err(_) if events.len() > 1 => events
                .iter()
                .map(|event| {
                    insert_batch(&db, std::slice::from_ref(event)).map(|outcomes| outcomes[0])
                })
                .collect(),
            Err(e) => vec![Err(e)],
        };
        let lanes: HashSet<String> = events
            .iter()
            .zip(&results)
            .filter(|(event, result)| {
                matches!(result, Ok(Stored::New)) && event.status == EventStatus::Received
            })
            .map(|(event, _)| event.lane.clone())
            .collect();
        if !lanes.is_empty() {
            on_commit(lanes.into_iter().collect());
        }
        for (sender, result) in senders.into_iter().zip(results) {
            let _ = sender.send(result.map_err(|e| {
                tracing::error!(error = %e, "could not store a webhook delivery; answering 503 so the broker retries");
                StoreError::Database(e.to_string())
            }));
        }
    }
}

/// Inserts deliveries in one transaction, ahead of background writers; a delivery of an event already
/// stored (before, or earlier in the same batch) is counted on the first row instead. Returns what became
/// of each, in order.
pub fn insert_batch(db: &Database, events: &[NewWebhookEvent]) -> Result<Vec<Stored>, DbError> {
    db.write_deliveries(|conn| insert_deliveries(conn, events))
}

/// Moves the head of each lane that received deliveries to apply to the newest delivery stored: within
/// the intake lock every delivery up to it is committed with this transaction or before, so the applier
/// may move a lane's cursor to its head once it has read the lane that far.
fn record_lane_heads(conn: &mut DbConnection, stored: &[&NewWebhookEvent]) -> Result<(), DbError> {
    let lanes: HashSet<&str> = stored
        .iter()
        .filter(|e| e.status == EventStatus::Received)
        .map(|e| e.lane.as_str())
        .collect();
    if lanes.is_empty() {
        return Ok(());
    }
    let mut lanes: Vec<&str> = lanes.into_iter().collect();
    lanes.sort_unstable();
    for lane in lanes {
        // One statement: the newest id is read where the head is written.
        diesel::sql_query(
            "INSERT INTO lane_heads (lane, received_through) \
             VALUES ($1, (SELECT MAX(id) FROM webhook_events)) \
             ON CONFLICT (lane) DO UPDATE SET received_through = excluded.received_through",
        )
        .bind::<diesel::sql_types::Text, _>(lane)
        .execute(conn)?;
    }
    Ok(())
}

/// Inserts deliveries inside the caller's [`Database::write_deliveries`] transaction, as
/// [`insert_batch`] does; the Events API tail advances its cursor in the same transaction.
///
/// A delivery is known by its event id (or its body's hash): the unique index on it refuses a second row
/// (`ON CONFLICT DO NOTHING`), and the first row counts what it refused.
pub fn insert_deliveries(
    conn: &mut DbConnection,
    events: &[NewWebhookEvent],
) -> Result<Vec<Stored>, DbError> {
    // Within the batch, only the first delivery of an event is offered to the database.
    let mut in_batch: HashSet<DeliveryKey> = HashSet::new();
    let offered: Vec<&NewWebhookEvent> = events
        .iter()
        .filter(|event| DeliveryKey::of(event).is_none_or(|key| in_batch.insert(key)))
        .collect();
    let mut taken: HashSet<DeliveryKey> = HashSet::new();
    let mut fresh: Vec<&NewWebhookEvent> = Vec::with_capacity(offered.len());
    for chunk in offered.chunks(MAX_BATCH) {
        let keys: Vec<(Option<String>, Option<String>)> =
            on_backend!(conn, |c| diesel::insert_into(webhook_events::table)
                .values(chunk.to_vec())
                .on_conflict_do_nothing()
                .returning((webhook_events::event_id, webhook_events::body_hash))
                .get_results(c))?;
        taken
            .extend(keys.into_iter().filter_map(|(event_id, body_hash)| {
                DeliveryKey::from_columns(event_id, body_hash)
            }));
    }
    let mut again: HashMap<DeliveryKey, i32> = HashMap::new();
    let outcomes = events
        .iter()
        .map(|event| match DeliveryKey::of(event) {
            None => {
                fresh.push(event);
                Stored::New
            }
            // The database took it: this delivery is the event's first (offered once per batch).
            Some(key) if taken.remove(&key) => {
                fresh.push(event);
                Stored::New
            }
            Some(key) => {
                *again.entry(key).or_default() += 1;
                Stored::Redelivery
            }
        })
        .collect();
    record_lane_heads(conn, &fresh)?;
    for (key, count) in again {
        let counted = webhook_events::redeliveries.eq(webhook_events::redeliveries + count);
        match key {
            DeliveryKey::Event(id) => on_backend!(conn, |c| diesel::update(
                webhook_events::table.filter(webhook_events::event_id.eq(&id))
            )
            .set(counted)
            .execute(c))?,
            DeliveryKey::Body(hash) => on_backend!(conn, |c| diesel::update(
                webhook_events::table
                    .filter(webhook_events::event_id.is_null())
                    .filter(webhook_events::body_hash.eq(&hash))
            )
            .set(counted)
            .execute(c))?,
        };
    }
    Ok(outcomes)
}

/// What makes two deliveries the same: the event's id, or for a body that is not an event (and has no
/// id), the hash of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DeliveryKey {
    Event(String),
    Body(String),
}

impl DeliveryKey {
    fn of(event: &NewWebhookEvent) -> Option<Self> {
        Self::from_columns(event.event_id.clone(), event.body_hash.clone())
    }

    /// The key of a stored row, from its two columns.
    fn from_columns(event_id: Option<String>, body_hash: Option<String>) -> Option<Self> {
        match (event_id, body_hash) {
            (Some(id), _) => Some(Self::Event(id)),
            (None, Some(hash)) => Some(Self::Body(hash)),
            (None, None) => None,
        }
    }
}
