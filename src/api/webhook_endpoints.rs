//! `…/webhook-endpoints`: where a workspace's change feed is sent (rule 23), and what each attempt got.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::{after_id, PageQuery};
use super::params::{EndpointParam, PagedById, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::lists::List;
use crate::outbound::endpoints::{
    self, Attempt, CreatedEndpoint, Endpoint, EndpointChange, NewEndpoint,
};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_endpoints>(|| web::to(list_endpoints)),
        Route::of::<__path_create_endpoint>(|| web::to(create_endpoint)),
        Route::of::<__path_get_endpoint>(|| web::to(get_endpoint)),
        Route::of::<__path_update_endpoint>(|| web::to(update_endpoint)),
        Route::of::<__path_delete_endpoint>(|| web::to(delete_endpoint)),
        Route::of::<__path_list_attempts>(|| web::to(list_attempts)),
        Route::of::<__path_replay_endpoint>(|| web::to(replay_endpoint)),
    ]
    .concat()
}

/// List the workspace's webhook endpoints
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints", tag = "changes",
    params(WorkspaceParam, PageQuery),
    responses(
        (status = 200, description = "A page of endpoints.", body = List<Endpoint>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page()?;
    let list = state
        .call(move |db| endpoints::list(db, &caller, &ws, &page))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Register a webhook endpoint
///
/// The endpoint is sent every change made from now on (of its `event_types`, or all), signed as
/// Standard Webhooks with the `secret` in the answer, shown this once. URLs must be `https://` to a
/// public address.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints", tag = "changes",
    params(WorkspaceParam),
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Registered; the secret is shown this once.", body = CreatedEndpoint),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn create_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<NewEndpoint>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let reach = crate::outbound::address::Reach::of(&state.settings);
    let created = state
        .call(move |db| endpoints::create(db, &caller, &ws, body.into_inner(), reach))
        .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Get a webhook endpoint
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}", tag = "changes",
    params(WorkspaceParam, EndpointParam),
    responses(
        (status = 200, description = "The endpoint.", body = Endpoint),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let endpoint = state
        .call(move |db| endpoints::get(db, &caller, &ws, &id))
        .await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

/// Change a webhook endpoint
///
/// `enabled: true` on a disabled endpoint sends on from where it stopped, its failures forgotten.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}", tag = "changes",
    params(WorkspaceParam, EndpointParam),
    request_body = EndpointChange,
    responses(
        (status = 200, description = "The endpoint.", body = Endpoint),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn update_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<EndpointChange>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let reach = crate::outbound::address::Reach::of(&state.settings);
    let endpoint = state
        .call(move |db| endpoints::update(db, &caller, &ws, &id, body.into_inner(), reach))
        .await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

/// Delete a webhook endpoint
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}", tag = "changes",
    params(WorkspaceParam, EndpointParam),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn delete_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    state
        .call(move |db| endpoints::delete(db, &caller, &ws, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// List a webhook endpoint's delivery attempts, newest first
///
/// Every failed attempt, and the last success of each round of sending (up to 200 changes), with the
/// endpoint's status, the time it took and the start of its answer; the newest 1,000 are kept.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}/attempts", tag = "changes",
    params(WorkspaceParam, EndpointParam, PagedById),
    responses(
        (status = 200, description = "A page of attempts.", body = List<Attempt>),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_parameter"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_attempts(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let page = query.page()?;
    let after = after_id(&page)?;
    let list = state
        .call(move |db| endpoints::attempts(db, &caller, &ws, &id, &page, after))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Where to send from again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Replay {
    /// The feed position after which changes are sent again (0: from the start of what is kept).
    after: i64,
}

/// Send an endpoint's changes again from a position (operator)
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}/replay", tag = "changes",
    params(WorkspaceParam, EndpointParam),
    request_body = Replay,
    responses(
        (status = 200, description = "The endpoint, its cursor moved.", body = Endpoint),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn replay_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Replay>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let after = body.after;
    let endpoint = state
        .call(move |db| endpoints::replay(db, &caller, &ws, &id, after))
        .await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

impl From<endpoints::EndpointError> for ApiError {
    fn from(error: endpoints::EndpointError) -> Self {
        use endpoints::EndpointError;
        match error {
            EndpointError::Workspace(error) => error.into(),
            EndpointError::NotFound => Self::not_found("webhook endpoint"),
            EndpointError::InvalidField(detail) => Self::invalid_field(detail),
            EndpointError::Db(error) => error.into(),
        }
    }
}
