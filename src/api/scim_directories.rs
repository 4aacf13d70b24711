//! `…/scim-directories`: a workspace's own SCIM directories, which an identity provider provisions
//! straight into Rollcall, and their bearer tokens.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::params::{ScimDirectoryParam, ScimTokenParam, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::scim::directories::{
    self, CreatedScimDirectory, CreatedScimToken, NewScimDirectory, NewScimToken,
    ScimDirectoryError, ScimDirectoryView, ScimToken,
};
use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_scim_directories>(|| web::to(list_scim_directories)),
        Route::of::<__path_create_scim_directory>(|| web::to(create_scim_directory)),
        Route::of::<__path_get_scim_directory>(|| web::to(get_scim_directory)),
        Route::of::<__path_create_scim_token>(|| web::to(create_scim_token)),
        Route::of::<__path_revoke_scim_token>(|| web::to(revoke_scim_token)),
    ]
    .concat()
}

/// List the workspace's SCIM directories
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/scim-directories", tag = "scim",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "The workspace's SCIM directories, oldest first.", body = Vec<ScimDirectoryView>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_scim_directories(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let list = state
        .call(move |db| directories::list(db, &caller, &ws))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Create a SCIM directory for the workspace
///
/// Answers its SCIM base path and a first bearer token, shown this once. The identity provider
/// provisions to `{service address}{base_path}` with `Authorization: Bearer {secret}`.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/scim-directories", tag = "scim",
    params(WorkspaceParam),
    request_body = NewScimDirectory,
    responses(
        (status = 201, description = "Created; its first token's secret is shown this once.", body = CreatedScimDirectory),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn create_scim_directory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<NewScimDirectory>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let created = state
        .call(move |db| directories::create(db, &caller, &ws, body.into_inner()))
        .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Get a SCIM directory
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/scim-directories/{directory}", tag = "scim",
    params(WorkspaceParam, ScimDirectoryParam),
    responses(
        (status = 200, description = "The SCIM directory, its tokens and what was pushed to it.", body = ScimDirectoryView),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_scim_directory(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let directory = state
        .call(move |db| directories::get(db, &caller, &ws, &id))
        .await?;
    Ok(HttpResponse::Ok().json(directory))
}

/// Create another bearer token for a SCIM directory
///
/// For rotation: the directory's other tokens keep working until revoked.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/scim-directories/{directory}/tokens", tag = "scim",
    params(WorkspaceParam, ScimDirectoryParam),
    request_body = NewScimToken,
    responses(
        (status = 201, description = "Created; the secret is shown this once.", body = CreatedScimToken),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn create_scim_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<NewScimToken>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let created = state
        .call(move |db| directories::create_token(db, &caller, &ws, &id, body.into_inner()))
        .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Revoke a SCIM directory's bearer token
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/scim-directories/{directory}/tokens/{token}", tag = "scim",
    params(WorkspaceParam, ScimDirectoryParam, ScimTokenParam),
    responses(
        (status = 200, description = "Revoked: the identity provider's next request with it is refused.", body = ScimToken),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn revoke_scim_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id, token) = path.into_inner();
    let revoked = state
        .call(move |db| directories::revoke_token(db, &caller, &ws, &id, &token))
        .await?;
    Ok(HttpResponse::Ok().json(revoked))
}

impl From<ScimDirectoryError> for ApiError {
    fn from(error: ScimDirectoryError) -> Self {
        match error {
            ScimDirectoryError::Workspace(error) => error.into(),
            ScimDirectoryError::NotFound => Self::not_found("SCIM directory"),
            ScimDirectoryError::TokenNotFound => Self::not_found("SCIM token"),
            ScimDirectoryError::InvalidField(detail) => Self::invalid_field(detail),
            ScimDirectoryError::Db(error) => error.into(),
        }
    }
}
