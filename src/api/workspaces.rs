//! Workspaces, their admin tokens and their directory-sync setting (rule 13).

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{TokenParam, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::db::models::ApiTokenRow;
use crate::lists::List;
use crate::schemas::name;
use crate::state::AppState;
use crate::sync_runs::schedule::start_for_organization;
use crate::workos::timestamp::time_json;
use crate::workspaces::directory_sync_setting::{self, DirectorySync};
use crate::workspaces::{self, admin_tokens, Workspace};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_create_workspace>(|| web::to(create_workspace)),
        Route::of::<__path_list_workspaces>(|| web::to(list_workspaces)),
        Route::of::<__path_get_workspace>(|| web::to(get_workspace)),
        Route::of::<__path_update_workspace>(|| web::to(update_workspace)),
        Route::of::<__path_create_admin_token>(|| web::to(create_admin_token)),
        Route::of::<__path_list_admin_tokens>(|| web::to(list_admin_tokens)),
        Route::of::<__path_revoke_admin_token>(|| web::to(revoke_admin_token)),
        Route::of::<__path_get_directory_sync>(|| web::to(get_directory_sync)),
        Route::of::<__path_set_directory_sync>(|| web::to(set_directory_sync)),
    ]
    .concat()
}

/// A workspace admin token as listed: never the token or its hash.
#[derive(Serialize, ToSchema)]
pub struct AdminToken {
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    /// When the token was last used, to the minute; null until it is.
    #[schema(required = true, format = DateTime)]
    last_used_at: Option<String>,
    /// From then on the token answers 401; null when it lasts until revoked.
    #[schema(required = true, format = DateTime)]
    expires_at: Option<String>,
}

impl From<&ApiTokenRow> for AdminToken {
    fn from(t: &ApiTokenRow) -> Self {
        AdminToken {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: time_json(&t.created_at),
            last_used_at: t.last_used_at.as_ref().map(time_json),
            expires_at: t.expires_at.as_ref().map(time_json),
        }
    }
}

/// A new admin token, with the token itself.
#[derive(Serialize, ToSchema)]
pub struct CreatedAdminToken {
    #[serde(flatten)]
    listed: AdminToken,
    /// Shown only here.
    token: String,
}

/// Create a workspace
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces",
    request_body = workspaces::NewWorkspace,
    responses(
        (status = 201, description = "Created.", body = Workspace),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["organization_taken"])))),
    ),
)]
pub(super) async fn create_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<workspaces::NewWorkspace>,
) -> ApiResult<HttpResponse> {
    let new = body.into_inner();
    let workspace = state
        .call(move |db| workspaces::create(db, &caller, new))
        .await?;
    Ok(HttpResponse::Created().json(workspace))
}

/// List workspaces
///
/// An operator sees every workspace; a workspace admin only its own.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of workspaces.", body = List<Workspace>),
    ),
)]
pub(super) async fn list_workspaces(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = query.page()?;
    let list = state
        .call(move |db| workspaces::list(db, &caller, &page))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Get a workspace
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}", tag = "workspaces",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "The workspace.", body = Workspace),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let workspace = state
        .call(move |db| workspaces::get(db, &caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(workspace))
}

/// Change a workspace
///
/// Only an operator may change `plan` (403 `forbidden`).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}", tag = "workspaces",
    params(WorkspaceParam),
    request_body = workspaces::WorkspaceChanges,
    responses(
        (status = 200, description = "The changed workspace.", body = Workspace),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn update_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<workspaces::WorkspaceChanges>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let changes = body.into_inner();
    let workspace = state
        .call(move |db| workspaces::change(db, &caller, &id, changes))
        .await?;
    Ok(HttpResponse::Ok().json(workspace))
}

/// What a new admin token may be given; the body is optional.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAdminToken {
    #[schema(schema_with = name)]
    name: Option<String>,
    /// How long the token lasts, such as `30d`, `12h` or `90m` (1s to 3650d); without it, until revoked.
    #[schema(pattern = "^[0-9]+(ms|s|m|h|d)?$")]
    expires_in: Option<String>,
}

/// Create a workspace admin token
///
/// The token is shown once; only its hash is stored. The body may be left out: the token then has
/// no name and lasts until revoked.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/admin-tokens", tag = "workspaces",
    params(WorkspaceParam),
    request_body = Option<NewAdminToken>,
    responses(
        (status = 201, description = "Created.", body = CreatedAdminToken),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn create_admin_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    // Before the body is read: a workspace admin is refused whatever it sent.
    workspaces::operator_only(&caller, &id)?;
    let body: NewAdminToken = if body.trim_ascii().is_empty() {
        NewAdminToken::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid_body(e.to_string()))?
    };
    let (row, token) = state
        .call(move |db| {
            let (name, expires_in) = (body.name.as_deref(), body.expires_in.as_deref());
            admin_tokens::create(db, &caller, &id, name, expires_in)
        })
        .await?;
    Ok(HttpResponse::Created().json(CreatedAdminToken {
        listed: AdminToken::from(&row),
        token,
    }))
}

/// List the workspace's admin tokens
///
/// The tokens not revoked, oldest first, expired ones included; never a token or its hash.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/admin-tokens", tag = "workspaces",
    params(WorkspaceParam, PageQuery),
    responses(
        (status = 200, description = "A page of admin tokens.", body = List<AdminToken>),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_admin_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let page = query.page()?;
    let list = state
        .call(move |db| admin_tokens::list(db, &caller, &id, &page))
        .await?;
    Ok(HttpResponse::Ok().json(list.map(|row| AdminToken::from(row))))
}

/// Revoke a workspace admin token
///
/// The token answers 401 from then on and is no longer listed. A token already revoked is not found.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/admin-tokens/{token}", tag = "workspaces",
    params(WorkspaceParam, TokenParam),
    responses(
        (status = 204, description = "Revoked."),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn revoke_admin_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, token_id) = path.into_inner();
    state
        .call(move |db| admin_tokens::revoke(db, &caller, &id, &token_id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Directory sync: the setting and the workspace's directories
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/directory-sync", tag = "workspaces",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "The setting.", body = DirectorySync),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_directory_sync(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let setting = state
        .call(move |db| directory_sync_setting::get(db, &caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(setting))
}

/// Directory sync on or off.
#[derive(Deserialize, ToSchema)]
pub(super) struct DirectorySyncSetting {
    enabled: bool,
}

/// Turn directory sync on or off
///
/// On needs the `growth` or `enterprise` plan (403 `plan_required`).
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/directory-sync", tag = "workspaces",
    params(WorkspaceParam),
    request_body = DirectorySyncSetting,
    responses(
        (status = 200, description = "The setting.", body = DirectorySync),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["plan_required"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn set_directory_sync(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<DirectorySyncSetting>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let workspace = id.clone();
    let enabled = body.enabled;
    let changed = state
        .call(move |db| directory_sync_setting::set(db, &caller, &id, enabled))
        .await?;
    // What the workspace's SCIM directories were pushed while it was off is applied now.
    if changed.turned_on.is_some() {
        let db = state.db.clone();
        let replayed =
            web::block(move || crate::scim::store::replay_workspace(&db, &workspace)).await?;
        match replayed {
            Ok(lanes) => state.applier_wakeup.notify_lanes(lanes),
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    // Rule 16: turning directory sync on pulls the workspace's known directories, in the background.
    let runner = state
        .sync_runner
        .clone()
        .filter(|_| state.settings.pull_on_activation);
    if let (Some(organization), Some(runner)) = (changed.turned_on, runner) {
        runner.clone().spawn(async move {
            start_for_organization(&runner, &organization).await;
        });
    }
    Ok(HttpResponse::Ok().json(changed.setting))
}
