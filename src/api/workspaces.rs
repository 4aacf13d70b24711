//! Workspaces, their admin tokens and their directory-sync setting (rule 13).

use super::auth::{create_token, revoke_token, token_expiry, unrevoked_tokens, Caller};
use super::error::{ApiError, ApiResult};
use super::pagination::{List, PageQuery};
use super::{check_name, resource, AppState};
use crate::audit::{self, AuditRecord};
use crate::db::models::{ApiTokenRow, DirectoryRow, WorkspaceRow};
use crate::db::schema::{directories, workspaces};
use crate::db::DbConnection;
use crate::domain::{Plan, Role};
use crate::ids::new_id;
use crate::sync_runs::schedule::start_for_organization;
use crate::workos::timestamp::{self, Timestamp};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/workspaces")
            .route(web::post().to(create_workspace))
            .route(web::get().to(list_workspaces)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}")
            .route(web::get().to(get_workspace))
            .route(web::patch().to(update_workspace)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/admin-tokens")
            .route(web::post().to(create_admin_token))
            .route(web::get().to(list_admin_tokens)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/admin-tokens/{token}")
            .route(web::delete().to(revoke_admin_token)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/directory-sync")
            .route(web::get().to(get_directory_sync))
            .route(web::put().to(set_directory_sync)),
    );
}

/// An RFC 3339 time for API bodies.
pub fn time_json(t: &Timestamp) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A workspace as the API shows it.
pub fn workspace_json(w: &WorkspaceRow) -> Value {
    json!({
        "id": w.id,
        "name": w.name,
        "plan": w.plan,
        "organization_id": w.organization_id,
        "directory_sync_enabled": w.directory_sync_enabled,
        "default_role": w.default_role,
        "created_at": time_json(&w.created_at),
        "updated_at": time_json(&w.updated_at),
    })
}

/// A stored token as the API lists it: never the token or its hash.
pub fn token_json(t: &ApiTokenRow) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "created_at": time_json(&t.created_at),
        "last_used_at": t.last_used_at.as_ref().map(time_json),
        "expires_at": t.expires_at.as_ref().map(time_json),
    })
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

#[derive(Deserialize)]
struct NewWorkspace {
    name: String,
    plan: String,
    organization_id: String,
    default_role: Option<String>,
}

async fn create_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewWorkspace>,
) -> ApiResult<HttpResponse> {
    caller.require_operator()?;
    let body = body.into_inner();
    let name = check_name(&body.name)?;
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
    Ok(HttpResponse::Created().json(workspace_json(&workspace)))
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

async fn list_workspaces(
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
    Ok(HttpResponse::Ok().json(list.map(workspace_json)))
}

async fn get_workspace(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let workspace = state
        .read(move |conn| load_workspace(conn, &caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(workspace_json(&workspace)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceChanges {
    name: Option<String>,
    plan: Option<String>,
    default_role: Option<String>,
}

async fn update_workspace(
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
    let name = changes.name.as_deref().map(check_name).transpose()?;
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
        .write(move |conn| {
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
    Ok(HttpResponse::Ok().json(workspace_json(&workspace)))
}

/// What a new admin token may be given; the body is optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdminToken {
    name: Option<String>,
    /// How long the token lasts, such as `30d`, `12h` or `90m`; without it, until revoked.
    expires_in: Option<String>,
}

async fn create_admin_token(
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
    let name = body.name.as_deref().map(check_name).transpose()?;
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
    let mut body = token_json(&row);
    body["token"] = json!(token);
    Ok(HttpResponse::Created().json(body))
}

async fn list_admin_tokens(
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
            let rows = unrevoked_tokens(conn, Some(&workspace.id), Some(&page))?;
            Ok(List::from_overfetch(rows, &page, |t| t.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.map(token_json)))
}

async fn revoke_admin_token(
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

fn directory_sync_json(conn: &mut DbConnection, workspace: &WorkspaceRow) -> ApiResult<Value> {
    let rows: Vec<DirectoryRow> = directories::table
        .filter(directories::organization_id.eq(&workspace.organization_id))
        .order(directories::created_at)
        .select(DirectoryRow::as_select())
        .load(conn)?;
    let directories: Vec<Value> = rows
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "type": d.directory_type,
                "name": d.name,
                "state": d.state,
                "last_synced_at": d.last_synced_at.as_ref().map(time_json),
            })
        })
        .collect();
    Ok(json!({ "enabled": workspace.directory_sync_enabled, "directories": directories }))
}

async fn get_directory_sync(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let body = state
        .read(move |conn| {
            let workspace = load_workspace(conn, &caller, &id)?;
            directory_sync_json(conn, &workspace)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
struct DirectorySyncSetting {
    enabled: bool,
}

async fn set_directory_sync(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<DirectorySyncSetting>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let enabled = body.enabled;
    let (body, turned_on) = state
        .write(move |conn| {
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
            Ok((directory_sync_json(conn, &after)?, turned_on))
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
