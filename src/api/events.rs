//! Stored webhook events for operators: list, inspect, retry.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::pagination::{List, PageQuery};
use super::workspaces::time_json;
use super::{resource, AppState};
use crate::db::models::WebhookEventRow;
use crate::db::schema::webhook_events;
use crate::domain::EventStatus;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/v1/events").route(web::get().to(list_events)))
        .service(resource("/api/v1/events/{id}").route(web::get().to(get_event)))
        .service(resource("/api/v1/events/{id}/retry").route(web::post().to(retry_event)));
}

/// A stored event as operators see it; `body` is included when asked for.
pub fn event_json(e: &WebhookEventRow, with_body: bool) -> Value {
    let mut value = json!({
        "id": e.id,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "directory_id": e.directory_id,
        "status": e.status,
        "reason": e.reason,
        "attempts": e.attempts,
        "redeliveries": e.redeliveries,
        "event_created_at": e.event_created_at.as_ref().map(time_json),
        "received_at": time_json(&e.received_at),
        "processed_at": e.processed_at.as_ref().map(time_json),
        "next_attempt_at": e.next_attempt_at.as_ref().map(time_json),
    });
    if with_body {
        value["body"] = Value::String(String::from_utf8_lossy(&e.body).into_owned());
    }
    value
}

#[derive(Deserialize)]
struct EventQuery {
    status: Option<String>,
    #[serde(flatten)]
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

async fn list_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<EventQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let page = query.page.page()?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<EventStatus>()
                .map_err(|e| ApiError::bad_request("invalid_parameter", format!("status: {e}")))
        })
        .transpose()?;
    let after = page.after_id()?;
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
    Ok(HttpResponse::Ok().json(list.map(|e| event_json(e, false))))
}

async fn get_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let id = parse_event_id(&path.into_inner())?;
    let event = state.read(move |conn| load_event(conn, id)).await?;
    Ok(HttpResponse::Ok().json(event_json(&event, true)))
}

/// Statuses an operator may send back to the applier.
const RETRYABLE: [EventStatus; 3] = [
    EventStatus::Failed,
    EventStatus::Skipped,
    EventStatus::Conflict,
];

async fn retry_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let id = parse_event_id(&path.into_inner())?;
    let event = state
        .write(move |conn| {
            let event = load_event(conn, id)?;
            if !RETRYABLE.iter().any(|s| s.as_str() == event.status) {
                return Err(ApiError::conflict(
                    "not_retryable",
                    format!("an event that is {} cannot be retried; failed, skipped and conflict events can", event.status),
                ));
            }
            diesel::update(webhook_events::table.find(id))
                .set((
                    webhook_events::status.eq(EventStatus::Received.as_str()),
                    webhook_events::attempts.eq(0),
                    // Due now: the applier takes deliveries waiting for a retry by this time.
                    webhook_events::next_attempt_at.eq(Some(crate::workos::timestamp::now())),
                ))
                .execute(conn)?;
            load_event(conn, id)
        })
        .await?;
    tracing::info!(delivery = event.id, event_id = ?event.event_id, "event queued again by an operator");
    state.applier_wakeup.notify();
    Ok(HttpResponse::Accepted().json(event_json(&event, false)))
}
