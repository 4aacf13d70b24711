//! `GET /api/v1/event-tail`: the Events API tail as operators see it.

use super::blocking::OffWorkers;
use super::error::ApiResult;
use super::route::Route;
use crate::access::Caller;
use crate::state::AppState;
use crate::workos::timestamp::time_json;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    Route::of::<__path_get_event_tail>(|| web::to(get_event_tail))
}

/// The Events API tail: what it does, where it is, and how far behind.
#[derive(Serialize, ToSchema)]
pub struct EventTailStatus {
    /// What this instance's tail does: `off` (no tail runs here), `standby` (another instance runs it),
    /// `idle` (caught up), `polling`, `backing_off` (after an error, its place kept) or `resyncing` (a full
    /// pull before it reads on from the pull's start).
    #[schema(value_type = crate::event_tail::TailState, inline)]
    state: String,
    /// The id of the last event stored from the tail; none before it has read one, or after a full pull
    /// made it start over.
    #[schema(required = true)]
    cursor: Option<String>,
    /// Without a cursor: the time events are read from.
    #[schema(required = true, format = DateTime)]
    resume_from: Option<String>,
    /// When a catch-up last reached the newest event (by whichever instance runs the tail).
    #[schema(required = true, format = DateTime)]
    last_poll_at: Option<String>,
    /// How old the newest event the tail stored is, in seconds (by the broker's `created_at`).
    #[schema(required = true)]
    lag_seconds: Option<f64>,
    /// Events the tail fed to the applier that no webhook had brought first.
    events_applied: i64,
    /// Why the tail looks stuck, when it has read nothing since its start time although webhooks brought
    /// newer events; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    stalled: Option<String>,
}

/// Read the Events API tail's state, cursor and lag
///
/// Operators only. The place and lag are shared by every instance; `state` is this instance's.
#[utoipa::path(get, path = "/api/v1/event-tail", tag = "events",
    responses(
        (status = 200, description = "The tail.", body = EventTailStatus),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
    ),
)]
pub(super) async fn get_event_tail(
    state: web::Data<AppState>,
    caller: Caller,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let (place, stalled) = state
        .call(crate::event_tail::place::load_with_stall)
        .await?;
    let now = crate::workos::timestamp::now();
    let place = place.as_ref();
    Ok(HttpResponse::Ok().json(EventTailStatus {
        state: state.event_tail.state().as_str().into(),
        cursor: place.and_then(|p| p.cursor.clone()),
        resume_from: place.and_then(|p| p.resume_from.as_ref()).map(time_json),
        last_poll_at: place.and_then(|p| p.last_poll_at.as_ref()).map(time_json),
        lag_seconds: place
            .and_then(|p| p.cursor_event_at)
            .map(|at| (now - at).to_std().unwrap_or_default().as_secs_f64()),
        events_applied: place.map_or(0, |p| p.events_stored),
        stalled,
    }))
}
