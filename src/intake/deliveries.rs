//! Stored deliveries as operators handle them: listed newest first, read with their body, sent back to
//! the applier, or dismissed.

use crate::db::models::WebhookEventRow;
use crate::db::schema::webhook_events;
use crate::db::{Database, DbConnection, DbError};
use crate::domain::{DeliverySource, EventStatus};
use crate::ids::DirectoryId;
use crate::lists::{List, Page};
use crate::workos::timestamp::{self, time_json};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// Why an operator's request about a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("event not found")]
    NotFound,
    /// Only `failed`, `skipped` and `conflict` deliveries go back to the applier.
    #[error("an event that is {0} cannot be retried; failed, skipped and conflict events can")]
    NotRetryable(EventStatus),
    /// Only `invalid` deliveries are dismissed.
    #[error(
        "an event that is {0} cannot be dismissed; only invalid deliveries (bodies that were not events) can"
    )]
    NotDismissable(EventStatus),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(DeliveryError);

/// A stored delivery as operators see it.
#[derive(Serialize, ToSchema)]
pub struct Event {
    id: i64,
    #[schema(required = true)]
    event_id: Option<String>,
    #[schema(required = true)]
    event_type: Option<String>,
    #[schema(required = true)]
    directory_id: Option<String>,
    #[schema(value_type = crate::domain::EventStatus, inline)]
    status: EventStatus,
    #[schema(required = true)]
    reason: Option<String>,
    attempts: i32,
    /// Later deliveries of the same event (of an `invalid` delivery: of the same body), not stored again
    redeliveries: i32,
    /// The path that brought it first: a webhook, the Events API tail, or a write to a SCIM directory
    #[schema(value_type = crate::domain::DeliverySource, inline)]
    source: DeliverySource,
    #[schema(required = true, format = DateTime)]
    event_created_at: Option<String>,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(required = true, format = DateTime)]
    processed_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    next_attempt_at: Option<String>,
}

impl From<&WebhookEventRow> for Event {
    fn from(e: &WebhookEventRow) -> Self {
        Event {
            id: e.id,
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            directory_id: e.directory_id.as_ref().map(DirectoryId::to_string),
            status: e.status,
            reason: e.reason.clone(),
            attempts: e.attempts,
            redeliveries: e.redeliveries,
            source: e.source,
            event_created_at: e.event_created_at.as_ref().map(time_json),
            received_at: time_json(&e.received_at),
            processed_at: e.processed_at.as_ref().map(time_json),
            next_attempt_at: e.next_attempt_at.as_ref().map(time_json),
        }
    }
}

/// A stored delivery with its body.
#[derive(Serialize, ToSchema)]
pub struct EventWithBody {
    #[serde(flatten)]
    event: Event,
    /// The raw delivery as received.
    body: String,
}

fn load(conn: &mut DbConnection, id: i64) -> Result<WebhookEventRow, DeliveryError> {
    webhook_events::table
        .find(id)
        .select(WebhookEventRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DeliveryError::NotFound)
}

/// A page of deliveries, newest first (those of `status` only): the ones before delivery `after`.
pub fn list(
    db: &Database,
    page: &Page,
    after: Option<i64>,
    status: Option<EventStatus>,
) -> Result<List<Event>, DeliveryError> {
    db.read(|conn| {
        let mut q = webhook_events::table
            .order(webhook_events::id.desc())
            .limit(page.limit + 1)
            .select(WebhookEventRow::as_select())
            .into_boxed();
        if let Some(status) = status {
            q = q.filter(webhook_events::status.eq(status.as_str()));
        }
        if let Some(after) = after {
            q = q.filter(webhook_events::id.lt(after));
        }
        let list =
            List::from_overfetch(q.load(conn)?, page, |e: &WebhookEventRow| e.id.to_string());
        Ok(list.map(|row| Event::from(row)))
    })
}

/// One delivery with its body.
pub fn get(db: &Database, id: i64) -> Result<EventWithBody, DeliveryError> {
    let event = db.read(|conn| load(conn, id))?;
    Ok(EventWithBody {
        event: Event::from(&event),
        body: String::from_utf8_lossy(&event.body).into_owned(),
    })
}

/// Statuses an operator may send back to the applier.
const RETRYABLE: [EventStatus; 3] = [
    EventStatus::Failed,
    EventStatus::Skipped,
    EventStatus::Conflict,
];

/// Sends a `failed`, `skipped` or `conflict` delivery back to the applier, due now.
pub fn retry(db: &Database, id: i64) -> Result<Event, DeliveryError> {
    let event = db.write(|conn| {
        let event = load(conn, id)?;
        if !RETRYABLE.contains(&event.status) {
            return Err(DeliveryError::NotRetryable(event.status));
        }
        diesel::update(webhook_events::table.find(event.id))
            .set((
                webhook_events::status.eq(EventStatus::Received),
                webhook_events::attempts.eq(0),
                // Due now: the applier takes deliveries waiting for a retry by this time.
                webhook_events::next_attempt_at.eq(Some(timestamp::now())),
            ))
            .execute(conn)?;
        load(conn, id)
    })?;
    tracing::info!(delivery = event.id, event_id = ?event.event_id, "event queued again by an operator");
    Ok(Event::from(&event))
}

/// Dismisses an `invalid` delivery (a dismissed one stays as it is).
pub fn dismiss(db: &Database, id: i64) -> Result<Event, DeliveryError> {
    let event = db.write(|conn| {
        let event = load(conn, id)?;
        match event.status {
            EventStatus::Dismissed => return Ok(event),
            EventStatus::Invalid => {}
            other => return Err(DeliveryError::NotDismissable(other)),
        }
        diesel::update(webhook_events::table.find(event.id))
            .set((
                webhook_events::status.eq(EventStatus::Dismissed),
                webhook_events::processed_at.eq(Some(timestamp::now())),
            ))
            .execute(conn)?;
        load(conn, id)
    })?;
    tracing::info!(
        delivery = event.id,
        "invalid delivery dismissed by an operator"
    );
    Ok(Event::from(&event))
}
