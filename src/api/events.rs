//! Stored webhook events for operators: list, inspect, retry, dismiss.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::{after_id, PageQuery};
use super::params::{enum_param, EventParam, PagedById};
use super::route::Route;
use crate::access::Caller;
use crate::domain::EventStatus;
use crate::intake::deliveries::{self, DeliveryError, Event, EventWithBody};
use crate::lists::List;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_events>(|| web::to(list_events)),
        Route::of::<__path_get_event>(|| web::to(get_event)),
        Route::of::<__path_retry_event>(|| web::to(retry_event)),
        Route::of::<__path_dismiss_event>(|| web::to(dismiss_event)),
    ]
    .concat()
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
        .call(move |db| deliveries::list(db, &page, after, status))
        .await?;
    Ok(HttpResponse::Ok().json(list))
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
    let event = state.call(move |db| deliveries::get(db, id)).await?;
    Ok(HttpResponse::Ok().json(event))
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
    caller.require_operator()?;
    let id = parse_event_id(&path.into_inner())?;
    let event = state.call(move |db| deliveries::retry(db, id)).await?;
    state.applier_wakeup.notify();
    Ok(HttpResponse::Accepted().json(event))
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
    caller.require_operator()?;
    let id = parse_event_id(&path.into_inner())?;
    let event = state.call(move |db| deliveries::dismiss(db, id)).await?;
    Ok(HttpResponse::Ok().json(event))
}

impl From<DeliveryError> for ApiError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::NotFound => Self::not_found("event"),
            DeliveryError::NotRetryable(_) => Self::conflict("not_retryable", error.to_string()),
            DeliveryError::NotDismissable(_) => {
                Self::conflict("not_dismissable", error.to_string())
            }
            DeliveryError::Db(error) => error.into(),
        }
    }
}
