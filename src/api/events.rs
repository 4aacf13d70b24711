//! Stored webhook events for operators: list, inspect, retry, dismiss.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::{after_id, PageQuery};
use super::params::{enum_param, EventParam, PagedById};
use super::route::Route;
use crate::access::Caller;
use crate::db::models::WebhookEventRow;
use crate::db::schema::webhook_events;
use crate::domain::{DeliverySource, EventStatus};
use crate::lists::List;
use crate::state::AppState;
use crate::workos::timestamp::time_json;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_events>(|| web::to(list_events)),
        Route::of::<__path_get_event>(|| web::to(get_event)),
        Route::of::<__path_retry_event>(|| web::to(retry_event)),
        Route::of::<__path_dismiss_event>(|| web::to(dismiss_event)),
    ]
    .concat()
}

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
    /// The path that brought it first: a webhook, or the Events API tail
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
            directory_id: e.directory_id.clone(),
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventQuery {
    /// Only deliveries with this status.
    #[param(value_type = Option<crate::domain::EventStatus>, inline)]
    status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

fn parse_event_id(text: &str) -> ApiResult<i64> {
    text.parse().map_err(|_| ApiError::not_found("event"))
}

fn load_event(conn: &mut crate::db::DbConnection, id: i64) -> ApiResult<WebhookEventRow> {
    webhook_events::table
        .find(id)
        .select(WebhookEventRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("event"))
}

/// List stored deliveries, newest first
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(EventQuery, PagedById),
    responses(
        (status = 200, description = "A page of deliveries.", body = List<Event>),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
    ),
)]
pub(super) async fn list_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<EventQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let page = query.page.page()?;
    let status = enum_param::<EventStatus>("status", query.status.as_deref())?;
    let after = after_id(&page)?;
    let list = state
        .read(move |conn| {
            // Newest first: the cursor is the last id seen.
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
            Ok(List::from_overfetch(
                q.load(conn)?,
                &page,
                |e: &WebhookEventRow| e.id.to_string(),
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.map(|row| Event::from(row))))
}

/// Get a stored delivery with its body
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    params(EventParam),
    responses(
        (status = 200, description = "The delivery.", body = EventWithBody),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let id = parse_event_id(&path.into_inner())?;
    let event = state.read(move |conn| load_event(conn, id)).await?;
    Ok(HttpResponse::Ok().json(EventWithBody {
        event: Event::from(&event),
        body: String::from_utf8_lossy(&event.body).into_owned(),
    }))
}

/// Statuses an operator may send back to the applier.
const RETRYABLE: [EventStatus; 3] = [
    EventStatus::Failed,
    EventStatus::Skipped,
    EventStatus::Conflict,
];

/// An operator's change of one delivery: loads it, lets `change` check it and write, and answers it as it
/// is then.
async fn change_delivery(
    state: &web::Data<AppState>,
    caller: &Caller,
    path: String,
    change: impl FnOnce(&mut crate::db::DbConnection, &WebhookEventRow) -> ApiResult<()>
        + Send
        + 'static,
) -> ApiResult<WebhookEventRow> {
    caller.require_operator()?;
    let id = parse_event_id(&path)?;
    state
        .write(move |conn| {
            let event = load_event(conn, id)?;
            change(conn, &event)?;
            load_event(conn, id)
        })
        .await
}

/// Send a delivery back to the applier
///
/// Only `failed`, `skipped` and `conflict` deliveries can be retried.
#[utoipa::path(post, path = "/api/v1/events/{id}/retry", tag = "events",
    params(EventParam),
    responses(
        (status = 202, description = "Queued again.", body = Event),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["not_retryable"])))),
    ),
)]
pub(super) async fn retry_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let event = change_delivery(&state, &caller, path.into_inner(), |conn, event| {
        if !RETRYABLE.contains(&event.status) {
            return Err(ApiError::conflict(
                "not_retryable",
                format!("an event that is {} cannot be retried; failed, skipped and conflict events can", event.status),
            ));
        }
        diesel::update(webhook_events::table.find(event.id))
            .set((
                webhook_events::status.eq(EventStatus::Received),
                webhook_events::attempts.eq(0),
                // Due now: the applier takes deliveries waiting for a retry by this time.
                webhook_events::next_attempt_at.eq(Some(crate::workos::timestamp::now())),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await?;
    tracing::info!(delivery = event.id, event_id = ?event.event_id, "event queued again by an operator");
    state.applier_wakeup.notify();
    Ok(HttpResponse::Accepted().json(Event::from(&event)))
}

/// Dismiss a signed body that was not an event
///
/// Only `invalid` deliveries can be dismissed: the delivery becomes `dismissed`, so it no longer shows
/// under `?status=invalid`, and is pruned after `ROLLCALL_EVENT_RETENTION` like the rest. The broker's
/// retries of the same body are still counted on it, not stored again. Dismissing a dismissed delivery
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/events/{id}/dismiss", tag = "events",
    params(EventParam),
    responses(
        (status = 200, description = "Dismissed.", body = Event),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["not_dismissable"])))),
    ),
)]
pub(super) async fn dismiss_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let event = change_delivery(&state, &caller, path.into_inner(), |conn, event| {
        match event.status {
            EventStatus::Dismissed => return Ok(()),
            EventStatus::Invalid => {}
            _ => {
                return Err(ApiError::conflict(
                    "not_dismissable",
                    format!(
                        "an event that is {} cannot be dismissed; only invalid deliveries (bodies that \
                         were not events) can",
                        event.status
                    ),
                ))
            }
        }
        diesel::update(webhook_events::table.find(event.id))
            .set((
                webhook_events::status.eq(EventStatus::Dismissed),
                webhook_events::processed_at.eq(Some(crate::workos::timestamp::now())),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await?;
    tracing::info!(
        delivery = event.id,
        "invalid delivery dismissed by an operator"
    );
    Ok(HttpResponse::Ok().json(Event::from(&event)))
}
