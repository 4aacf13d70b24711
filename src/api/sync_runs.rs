//! `POST /api/v1/directories/{dir}/resync`, `GET /api/v1/sync-runs` and `GET /api/v1/sync-runs/{run}`:
//! full pulls for operators.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::pagination::{List, PageQuery};
use super::workspaces::time_json;
use super::{resource, AppState};
use crate::db::models::SyncRunRow;
use crate::db::schema::sync_runs;
use crate::sync_runs::schedule::ON_DEMAND;
use crate::sync_runs::StartError;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/directories/{dir}/resync").route(web::post().to(resync_directory)),
    )
    .service(resource("/api/v1/sync-runs").route(web::get().to(list_sync_runs)))
    .service(resource("/api/v1/sync-runs/{run}").route(web::get().to(get_sync_run)));
}

/// The statuses a run can have.
pub const RUN_STATUSES: [&str; 5] = ["queued", "running", "succeeded", "failed", "held"];

#[derive(Deserialize)]
struct ResyncQuery {
    force: Option<bool>,
}

async fn resync_directory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ResyncQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let runner = state.sync_runner.as_ref().ok_or_else(|| {
        ApiError::conflict(
            "broker_not_configured",
            "WORKOS_API_KEY is not set, so the broker cannot be pulled",
        )
    })?;
    let run_id = runner
        .start(&path.into_inner(), ON_DEMAND, query.force.unwrap_or(false))
        .await
        .map_err(|e| match e {
            StartError::UnknownDirectory => ApiError::not_found("directory"),
            StartError::InProgress => ApiError::conflict("sync_in_progress", e.to_string()),
            // Only automatic triggers are spaced; an operator's resync never is.
            StartError::TooSoon { .. } => ApiError::conflict("sync_spaced", e.to_string()),
            StartError::Db(e) => e.into(),
            StartError::Queue(e) => ApiError::internal(e),
        })?;
    Ok(HttpResponse::Accepted().json(json!({ "run_id": run_id })))
}

/// A run as operators see it.
fn sync_run_json(run: &SyncRunRow) -> Value {
    json!({
        "id": run.id,
        "directory_id": run.directory_id,
        "trigger": run.trigger,
        "force": run.force,
        "status": run.status,
        "progress": {
            "phase": run.phase,
            "requests": run.requests,
            "users_listed": run.users_listed,
        },
        "counts": run.counts.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
        "error": run.error,
        "created_at": time_json(&run.created_at),
        "started_at": run.started_at.as_ref().map(time_json),
        "finished_at": run.finished_at.as_ref().map(time_json),
    })
}

async fn get_sync_run(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let id = path.into_inner();
    let run = state
        .read(move |conn| {
            sync_runs::table
                .find(&id)
                .select(SyncRunRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| ApiError::not_found("sync run"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(sync_run_json(&run)))
}

#[derive(Deserialize)]
struct ListQuery {
    directory: Option<String>,
    status: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn list_sync_runs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let query = query.into_inner();
    let page = query.page.page()?;
    let status = query.status.filter(|s| !s.is_empty());
    if let Some(status) = &status {
        if !RUN_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("status must be one of {}", RUN_STATUSES.join(", ")),
            ));
        }
    }
    let directory = query.directory.filter(|d| !d.is_empty());
    let list = state
        .read(move |conn| {
            let mut q = sync_runs::table
                .select(SyncRunRow::as_select())
                .order(sync_runs::id.desc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(directory) = directory {
                q = q.filter(sync_runs::directory_id.eq(directory));
            }
            if let Some(status) = status {
                q = q.filter(sync_runs::status.eq(status));
            }
            if let Some(after) = &page.after {
                q = q.filter(sync_runs::id.lt(after.clone()));
            }
            let rows: Vec<SyncRunRow> = q.load(conn)?;
            Ok(List::from_overfetch(rows, &page, |r| r.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.map(sync_run_json)))
}
