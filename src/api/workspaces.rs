//! Workspaces, their admin tokens and their directory-sync setting (rule 13).

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{TokenParam, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::audit::{self, AuditRecord};
use crate::db::models::{ApiTokenRow, DirectoryRow, SyncRunRow, WorkspaceRow};
use crate::db::schema::{directories, directory_users, members, sync_runs, workspaces};
use crate::db::DbConnection;
use crate::domain::{MemberStatus, Plan, Role};
use crate::ids::new_id;
use crate::lists::List;
use crate::schemas::{directory_role, name, plan};
use crate::state::AppState;
use crate::sync_runs::schedule::start_for_organization;
use crate::tokens::check_name;
use crate::tokens::{create_token, revoke_token, token_expiry, unrevoked_tokens};
use crate::workos::timestamp;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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

pub use crate::workos::timestamp::time_json;

/// A workspace.
#[derive(Serialize, ToSchema)]
pub struct Workspace {
    id: String,
    name: String,
    #[schema(schema_with = plan)]
    plan: String,
    organization_id: String,
    directory_sync_enabled: bool,
    #[schema(schema_with = directory_role)]
    default_role: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&WorkspaceRow> for Workspace {
    fn from(w: &WorkspaceRow) -> Self {
        Workspace {
            id: w.id.clone(),
            name: w.name.clone(),
            plan: w.plan.clone(),
            organization_id: w.organization_id.clone(),
            directory_sync_enabled: w.directory_sync_enabled,
            default_role: w.default_role.clone(),
            created_at: time_json(&w.created_at),
            updated_at: time_json(&w.updated_at),
        }
    }
}

/// A workspace as the audit log shows it.
fn workspace_json(w: &WorkspaceRow) -> Value {
    json!(Workspace::from(w))
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

/// Loads a workspace the caller may see, else 404.
pub fn load_workspace(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
) -> ApiResult<WorkspaceRow> {
    caller.require_workspace(id)?;
    workspaces::table
        .find(id)
        .select(WorkspaceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("workspace"))
}

fn parse_field<T: std::str::FromStr<Err = String>>(field: &str, value: &str) -> ApiResult<T> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request("invalid_field", format!("{field}: {e}")))
}

/// The default role of directory members: any role but `owner`, which the directory never assigns.
fn check_default_role(value: &str) -> ApiResult<Role> {
    match parse_field::<Role>("default_role", value)? {
        Role::Owner => Err(ApiError::bad_request(
            "invalid_field",
            "default_role: the directory never assigns owner",
        )),
        role => Ok(role),
    }
}

/// A new workspace.
#[derive(Deserialize, ToSchema)]
pub(super) struct NewWorkspace {
    #[schema(schema_with = name)]
    name: String,
    #[schema(schema_with = plan)]
    plan: String,
    /// The broker's organization (`org_…`); one workspace each.
    #[schema(pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$")]
    organization_id: String,
    #[schema(schema_with = directory_role)]
    default_role: Option<String>,
}

/// Create a workspace
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces",
    request_body = NewWorkspace,
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
    body: web::Json<NewWorkspace>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let body = body.into_inner();
    let name = check_name(&body.name).map_err(ApiError::invalid_field)?;
    let plan: Plan = parse_field("plan", &body.plan)?;
    let organization_id = body.organization_id.trim().to_string();
    if organization_id.is_empty()
        || organization_id.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            "organization_id: must be the broker's org_… id",
        ));
    }
    let default_role = check_default_role(body.default_role.as_deref().unwrap_or("viewer"))?;
    let cause = caller.cause();
    let workspace = state
        .write(move |conn| {
            let taken: i64 = workspaces::table
                .filter(workspaces::organization_id.eq(&organization_id))
                .count()
                .get_result(conn)?;
            if taken > 0 {
                return Err(ApiError::conflict(
                    "organization_taken",
                    "another workspace already has this organization_id",
                ));
            }
            let now = timestamp::now();
            let row = WorkspaceRow {
                id: new_id("ws"),
                name,
                plan: plan.as_str().into(),
                organization_id,
                directory_sync_enabled: false,
                default_role: default_role.as_str().into(),
                created_at: now,
                updated_at: now,
            };
            diesel::insert_into(workspaces::table)
                .values(&row)
                .execute(conn)?;
            audit_workspace(conn, &cause, "workspace.created", None, &row)?;
            Ok(row)
        })
        .await?;
    tracing::info!(workspace = %workspace.id, organization = %workspace.organization_id, "workspace created");
    Ok(HttpResponse::Created().json(Workspace::from(&workspace)))
}

fn audit_workspace(
    conn: &mut DbConnection,
    cause: &crate::audit::Cause,
    action: &str,
    before: Option<&WorkspaceRow>,
    after: &WorkspaceRow,
) -> QueryResult<()> {
    audit::record(
        conn,
        cause,
        AuditRecord {
            workspace_id: &after.id,
            action,
            subject_type: "workspace",
            subject_id: &after.id,
            before: before.map(workspace_json),
            after: Some(workspace_json(after)),
        },
    )
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
    let scope = match &caller {
        Caller::WorkspaceAdmin { workspace_id, .. } => Some(workspace_id.clone()),
        Caller::Operator { .. } => None,
    };
    let list = state
        .read(move |conn| {
            let mut q = workspaces::table
                .select(WorkspaceRow::as_select())
                .order(workspaces::id)
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = &page.after {
                q = q.filter(workspaces::id.gt(after.clone()));
            }
            if let Some(own) = scope {
                q = q.filter(workspaces::id.eq(own));
            }
            let rows: Vec<WorkspaceRow> = q.load(conn)?;
            Ok(List::from_overfetch(rows, &page, |w| w.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.map(|row| Workspace::from(row))))
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
        .read(move |conn| load_workspace(conn, &caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(Workspace::from(&workspace)))
}

/// What to change in a workspace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkspaceChanges {
    #[schema(schema_with = name)]
    name: Option<String>,
    #[schema(schema_with = plan)]
    plan: Option<String>,
    #[schema(schema_with = directory_role)]
    default_role: Option<String>,
}

/// Change a workspace
///
/// Only an operator may change `plan` (403 `forbidden`).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}", tag = "workspaces",
    params(WorkspaceParam),
    request_body = WorkspaceChanges,
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
    body: web::Json<WorkspaceChanges>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let changes = body.into_inner();
    if changes.plan.is_some() {
        caller.require_workspace(&id)?;
        caller.require_operator()?;
    }
    let name = changes
        .name
        .as_deref()
        .map(check_name)
        .transpose()
        .map_err(ApiError::invalid_field)?;
    let plan = changes
        .plan
        .as_deref()
        .map(|p| parse_field::<Plan>("plan", p))
        .transpose()?;
    let default_role = changes
        .default_role
        .as_deref()
        .map(check_default_role)
        .transpose()?;
    let workspace = state
        .write_workspace(id.clone(), move |conn| {
            let before = load_workspace(conn, &caller, &id)?;
            let mut after = before.clone();
            if let Some(name) = name {
                after.name = name;
            }
            if let Some(plan) = plan {
                after.plan = plan.as_str().into();
            }
            if let Some(role) = default_role {
                after.default_role = role.as_str().into();
            }
            after.updated_at = timestamp::now();
            diesel::update(workspaces::table.find(&id))
                .set(&after)
                .execute(conn)?;
            audit_workspace(
                conn,
                &caller.cause(),
                "workspace.updated",
                Some(&before),
                &after,
            )?;
            Ok(after)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Workspace::from(&workspace)))
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
    caller.require_workspace(&id)?;
    caller.require_operator()?;
    let body: NewAdminToken = if body.trim_ascii().is_empty() {
        NewAdminToken::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid_body(e.to_string()))?
    };
    let name = body
        .name
        .as_deref()
        .map(check_name)
        .transpose()
        .map_err(ApiError::invalid_field)?;
    let expires_at = body
        .expires_in
        .as_deref()
        .map(|text| token_expiry(text, timestamp::now()))
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_field", format!("expires_in: {e}")))?;
    let (row, token) = state
        .write(move |conn| {
            let workspace = load_workspace(conn, &caller, &id)?;
            Ok(create_token(
                conn,
                Some(&workspace.id),
                name.as_deref(),
                expires_at,
            )?)
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
    caller.require_workspace(&id)?;
    caller.require_operator()?;
    let page = query.page()?;
    let list = state
        .read(move |conn| {
            let workspace = load_workspace(conn, &caller, &id)?;
            let rows = unrevoked_tokens(
                conn,
                Some(&workspace.id),
                Some((page.limit, page.after.as_deref())),
            )?;
            Ok(List::from_overfetch(rows, &page, |t| t.id.clone()))
        })
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
    caller.require_workspace(&id)?;
    caller.require_operator()?;
    let revoked = token_id.clone();
    state
        .write(move |conn| {
            let workspace = load_workspace(conn, &caller, &id)?;
            if revoke_token(conn, &revoked, Some(&workspace.id))? {
                Ok(())
            } else {
                Err(ApiError::not_found("admin token"))
            }
        })
        .await?;
    tracing::info!(token = %token_id, "admin token revoked");
    Ok(HttpResponse::NoContent().finish())
}

/// A directory of the workspace's organization.
#[derive(Serialize, ToSchema)]
pub struct Directory {
    id: String,
    #[serde(rename = "type")]
    directory_type: String,
    name: String,
    state: String,
    #[schema(required = true, format = DateTime)]
    last_synced_at: Option<String>,
    /// Active members of the workspace who come from this directory.
    member_count: i64,
    /// The directory's latest full pull, null before the first.
    #[schema(required = true)]
    last_full_pull: Option<LastFullPull>,
}

/// A directory's latest full pull and how it ended (or that it has not yet).
#[derive(Serialize, ToSchema)]
pub struct LastFullPull {
    run_id: String,
    #[schema(pattern = "^(queued|running|succeeded|failed|held)$")]
    status: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(required = true, format = DateTime)]
    finished_at: Option<String>,
}

/// The directory-sync setting and the workspace's directories.
#[derive(Serialize, ToSchema)]
pub struct DirectorySync {
    enabled: bool,
    directories: Vec<Directory>,
}

fn directory_sync(conn: &mut DbConnection, workspace: &WorkspaceRow) -> ApiResult<DirectorySync> {
    let rows: Vec<DirectoryRow> = directories::table
        .filter(directories::organization_id.eq(&workspace.organization_id))
        .order(directories::created_at)
        .select(DirectoryRow::as_select())
        .load(conn)?;
    let directories = rows
        .into_iter()
        .map(|d| {
            let member_count: i64 = members::table
                .filter(members::workspace_id.eq(&workspace.id))
                .filter(members::status.eq(MemberStatus::Active.as_str()))
                .filter(
                    members::directory_user_id.eq_any(
                        directory_users::table
                            .filter(directory_users::directory_id.eq(&d.id))
                            .select(directory_users::id.nullable()),
                    ),
                )
                .count()
                .get_result(conn)?;
            let last_run: Option<SyncRunRow> = sync_runs::table
                .filter(sync_runs::directory_id.eq(&d.id))
                .order((sync_runs::created_at.desc(), sync_runs::id.desc()))
                .select(SyncRunRow::as_select())
                .first(conn)
                .optional()?;
            Ok(Directory {
                id: d.id,
                directory_type: d.directory_type,
                name: d.name,
                state: d.state,
                last_synced_at: d.last_synced_at.as_ref().map(time_json),
                member_count,
                last_full_pull: last_run.map(|run| LastFullPull {
                    run_id: run.id,
                    status: run.status,
                    created_at: time_json(&run.created_at),
                    finished_at: run.finished_at.as_ref().map(time_json),
                }),
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(DirectorySync {
        enabled: workspace.directory_sync_enabled,
        directories,
    })
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
    let body = state
        .read(move |conn| {
            let workspace = load_workspace(conn, &caller, &id)?;
            directory_sync(conn, &workspace)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
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
    let enabled = body.enabled;
    let (body, turned_on) = state
        .write_workspace(id.clone(), move |conn| {
            let before = load_workspace(conn, &caller, &id)?;
            let plan: Plan = before.plan.parse().unwrap_or(Plan::Free);
            if enabled && !plan.includes_directory_sync() {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::FORBIDDEN,
                    "plan_required",
                    format!("directory sync needs the growth or enterprise plan; this workspace is on {plan}"),
                ));
            }
            let mut after = before.clone();
            let turned_on = (enabled && !before.directory_sync_enabled)
                .then(|| before.organization_id.clone());
            if before.directory_sync_enabled != enabled {
                after.directory_sync_enabled = enabled;
                after.updated_at = timestamp::now();
                diesel::update(workspaces::table.find(&id)).set(&after).execute(conn)?;
                let action = if enabled { "directory_sync.enabled" } else { "directory_sync.disabled" };
                audit_workspace(conn, &caller.cause(), action, Some(&before), &after)?;
            }
            Ok((directory_sync(conn, &after)?, turned_on))
        })
        .await?;
    // Rule 16: turning directory sync on pulls the workspace's known directories, in the background.
    let runner = state
        .sync_runner
        .clone()
        .filter(|_| state.settings.pull_on_activation);
    if let (Some(organization), Some(runner)) = (turned_on, runner) {
        tokio::spawn(async move {
            start_for_organization(&runner, &organization).await;
        });
    }
    Ok(HttpResponse::Ok().json(body))
}
