//! The broker's Events API: `GET /events`, every `dsync.*` event the broker generated (webhooks dropped on
//! purpose included), oldest first whatever `order` says, filtered by `events=` and `organization_id`,
//! from an `after` cursor or a `range_start`, within the retention window.

use super::event_log::{EventsRefused, EventsRequest, EventsStart};
use super::objects::{parse_time, Millis};
use super::pull_api::{injected_faults, page_limit, Authorized, PullError};
use actix_web::{web, HttpResponse};
use serde_json::json;
use std::collections::HashMap;

/// The route of the Events API; other methods get 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").route(web::get().to(list_events)));
}

impl From<EventsRefused> for PullError {
    fn from(refused: EventsRefused) -> Self {
        PullError::BadRequest(refused.to_string())
    }
}

/// Reads the request's filters and start; every invalid parameter is named in one 422.
fn events_request(query: &HashMap<String, String>) -> Result<EventsRequest, PullError> {
    let mut errors = Vec::new();
    let limit = page_limit(query, &mut errors);
    let param = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut time = |name: &str| -> Option<Millis> {
        let text = param(name)?;
        let parsed = parse_time(text);
        if parsed.is_none() {
            errors.push((
                name.to_string(),
                format!("{name} must be an ISO-8601 date such as 2026-01-01T00:00:00.000Z"),
            ));
        }
        parsed
    };
    let (range_start, range_end) = (time("range_start"), time("range_end"));
    let after = param("after");
    if after.is_some() && param("range_start").is_some() {
        errors.push((
            "range_start".into(),
            "range_start cannot be combined with after".into(),
        ));
    }
    if !errors.is_empty() {
        return Err(PullError::Validation(errors));
    }
    let start = match (after, range_start) {
        (Some(id), _) => EventsStart::After(id.to_string()),
        (None, Some(ms)) => EventsStart::RangeStart(ms),
        (None, None) => EventsStart::Oldest,
    };
    let types = param("events").map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    });
    Ok(EventsRequest {
        start,
        range_end,
        types,
        organization_id: param("organization_id").map(str::to_string),
        limit,
    })
}

async fn list_events(
    shared: Authorized,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, PullError> {
    injected_faults(&shared)?;
    let events = events_request(&query)?;
    let page = shared.log.page(&events, shared.log.now_ms())?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": page.data,
        "list_metadata": { "before": page.before, "after": page.after },
    })))
}
