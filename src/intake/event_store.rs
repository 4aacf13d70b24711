//! Durable storage of webhook deliveries with group commit: deliveries that arrive together are inserted
//! in one transaction, and each sender hears back only after that transaction has committed.

use crate::db::models::NewWebhookEvent;
use crate::db::schema::webhook_events;
use crate::db::{Database, DbError};
use crate::on_backend;
use diesel::prelude::*;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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

struct Pending {
    event: NewWebhookEvent,
    stored: oneshot::Sender<Result<(), StoreError>>,
}

/// A handle to the writer thread that stores deliveries.
#[derive(Clone)]
pub struct EventStore {
    sender: mpsc::Sender<Pending>,
}

/// Called after each commit, with the number of deliveries it made durable.
pub type OnCommit = Arc<dyn Fn(usize) + Send + Sync>;

impl EventStore {
    /// Starts the writer thread; it stops once every handle is dropped and the queue is drained.
    pub fn start(db: Database, on_commit: OnCommit) -> (Self, std::thread::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
        let writer = std::thread::Builder::new()
            .name("event-store".into())
            .spawn(move || write_batches(db, receiver, on_commit))
            .expect("the event store thread starts");
        (Self { sender }, writer)
    }

    /// Stores one delivery; returns once it is committed.
    pub async fn store(&self, event: NewWebhookEvent) -> Result<(), StoreError> {
        let (stored, outcome) = oneshot::channel();
        self.sender
            .send(Pending { event, stored })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        outcome.await.map_err(|_| StoreError::ShuttingDown)?
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
        let results = match insert_batch(&db, &events) {
            Ok(()) => events.iter().map(|_| Ok(())).collect(),
            // One delivery the database refuses must not fail the others: store them one by one.
            Err(_) if events.len() > 1 => events
                .iter()
                .map(|event| insert_batch(&db, std::slice::from_ref(event)))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        let stored = results.iter().filter(|r| r.is_ok()).count();
        if stored > 0 {
            on_commit(stored);
        }
        for (sender, result) in senders.into_iter().zip(results) {
            let _ = sender.send(result.map_err(|e| {
                tracing::error!(error = %e, "could not store a webhook delivery; answering 503 so the broker retries");
                StoreError::Database(e.to_string())
            }));
        }
    }
}

/// Inserts deliveries in one transaction, ahead of background writers.
pub fn insert_batch(db: &Database, events: &[NewWebhookEvent]) -> Result<(), DbError> {
    db.write_deliveries(|conn| {
        on_backend!(conn, |c| diesel::insert_into(webhook_events::table)
            .values(events)
            .execute(c))?;
        Ok::<_, DbError>(())
    })
}
