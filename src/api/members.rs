//! Workspace members over the API; with directory sync on, the directory owns them (rules 11–12).

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{MemberParam, WorkspaceParam};
use super::route::Route;
use super::workspaces::load_workspace;
use crate::access::Caller;
use crate::db::models::MemberRow;
use crate::db::schema::{directory_group_memberships as memberships, members};
use crate::db::DbConnection;
use crate::directory_sync::members::{audit_member_change, email_key, member_json, Member};
use crate::domain::{ManagedBy, MemberStatus, Role};
use crate::ids::new_id;
use crate::lists::List;
use crate::schemas::{email, member_status, role};
use crate::state::AppState;
use crate::workos::timestamp;
use actix_web::{http::StatusCode, web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_members>(|| web::to(list_members)),
        Route::of::<__path_add_member>(|| web::to(add_member)),
        Route::of::<__path_get_member>(|| web::to(get_member)),
        Route::of::<__path_update_member>(|| web::to(update_member)),
        Route::of::<__path_remove_member>(|| web::to(remove_member)),
    ]
    .concat()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MemberQuery {
    /// Only members with this status.
    #[param(schema_with = member_status)]
    status: Option<String>,
    /// Only the member with this email, compared case-insensitively.
    email: Option<String>,
    /// Only members in this directory group (`directory_group_…`).
    group: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// List members
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "members",
    params(WorkspaceParam, MemberQuery, PageQuery),
    responses(
        (status = 200, description = "A page of members.", body = List<Member>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<MemberQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page.page()?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<MemberStatus>()
                .map_err(|e| ApiError::bad_request("invalid_parameter", format!("status: {e}")))
        })
        .transpose()?;
    let email = query.email.as_deref().map(email_key);
    let group = query.group.clone();
    let list = state
        .read(move |conn| {
            load_workspace(conn, &caller, &ws)?;
            let mut q = members::table
                .filter(members::workspace_id.eq(&ws))
                .order(members::id)
                .limit(page.limit + 1)
                .select(MemberRow::as_select())
                .into_boxed();
            if let Some(status) = status {
                q = q.filter(members::status.eq(status.as_str()));
            }
            if let Some(email) = email {
                q = q.filter(members::email_key.eq(email));
            }
            if let Some(group) = group {
                q = q.filter(
                    members::directory_user_id.eq_any(
                        memberships::table
                            .filter(memberships::group_id.eq(group))
                            .filter(memberships::is_member.eq(true))
                            .select(memberships::user_id.nullable()),
                    ),
                );
            }
            if let Some(after) = &page.after {
                q = q.filter(members::id.gt(after.clone()));
            }
            Ok(List::from_overfetch(
                q.load(conn)?,
                &page,
                |m: &MemberRow| m.id.clone(),
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(list.map(|row| Member::from(row))))
}

/// Loads a member of a workspace the caller may see, else 404.
pub fn load_member(
    conn: &mut DbConnection,
    caller: &Caller,
    ws: &str,
    id: &str,
) -> ApiResult<MemberRow> {
    load_workspace(conn, caller, ws)?;
    members::table
        .find(id)
        .filter(members::workspace_id.eq(ws))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("member"))
}

/// Get a member
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members/{member}", tag = "members",
    params(WorkspaceParam, MemberParam),
    responses(
        (status = 200, description = "The member.", body = Member),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let member = state
        .read(move |conn| load_member(conn, &caller, &ws, &id))
        .await?;
    Ok(HttpResponse::Ok().json(Member::from(&member)))
}

fn check_email(email: &str) -> ApiResult<String> {
    let email = email.trim();
    let valid = email.len() <= 320
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.contains(|c: char| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_string())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            "email: must be an address such as ada@example.com",
        ))
    }
}

/// A first or last name: at most 200 characters, no control characters.
fn check_person_name(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.chars().count() > 200 || v.contains(char::is_control) => {
            Err(ApiError::bad_request(
                "invalid_field",
                format!("{field}: at most 200 characters, without control characters"),
            ))
        }
        other => Ok(other),
    }
}

fn check_role(role: &str) -> ApiResult<Role> {
    role.parse::<Role>()
        .map_err(|e| ApiError::bad_request("invalid_field", format!("role: {e}")))
}

fn email_in_use(
    conn: &mut DbConnection,
    ws: &str,
    email: &str,
    except: Option<&str>,
) -> ApiResult<()> {
    let mut q = members::table
        .filter(members::workspace_id.eq(ws))
        .filter(members::email_key.eq(email_key(email)))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(members::id.ne(id.to_string()));
    }
    let found: i64 = q.count().get_result(conn)?;
    if found > 0 {
        return Err(ApiError::conflict(
            "email_taken",
            "another member of this workspace has that email",
        ));
    }
    Ok(())
}

/// Rule 22: only the operator grants or removes `owner`, and the workspace's last active owner is never
/// removed or demoted by hand. `before` is the member as stored (none: a new member); `after_role` the
/// role it would have (none: it is removed).
fn check_owner_change(
    conn: &mut DbConnection,
    caller: &Caller,
    ws: &str,
    before: Option<&MemberRow>,
    after_role: Option<&str>,
) -> ApiResult<()> {
    let owner = Role::Owner.as_str();
    let was_owner = before.is_some_and(|m| m.role == owner);
    if was_owner == (after_role == Some(owner)) {
        return Ok(());
    }
    if !caller.is_operator() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_requires_operator",
            "only the operator grants or removes the owner role",
        ));
    }
    let Some(before) = before.filter(|m| was_owner && m.status == MemberStatus::Active.as_str())
    else {
        return Ok(());
    };
    let active_owners: i64 = members::table
        .filter(members::workspace_id.eq(ws))
        .filter(members::role.eq(owner))
        .filter(members::status.eq(MemberStatus::Active.as_str()))
        .count()
        .get_result(conn)?;
    if active_owners <= 1 {
        return Err(ApiError::conflict(
            "last_owner",
            format!(
                "{} is the workspace's last active owner: make another member owner first",
                before.email
            ),
        ));
    }
    Ok(())
}

/// A member added by hand.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMember {
    #[schema(schema_with = email)]
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    #[schema(schema_with = role)]
    role: Option<String>,
}

/// Add a member by hand
///
/// With directory sync on, members come from the identity provider (409). Only the operator adds an
/// `owner` (403 `owner_requires_operator`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/members", tag = "members",
    params(WorkspaceParam),
    request_body = NewMember,
    responses(
        (status = 201, description = "Added.", body = Member),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["owner_requires_operator"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["managed_by_directory_sync", "email_taken"])))),
    ),
)]
pub(super) async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<NewMember>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let body = body.into_inner();
    let email = check_email(&body.email)?;
    let first_name = check_person_name("first_name", body.first_name)?;
    let last_name = check_person_name("last_name", body.last_name)?;
    let role = body.role.as_deref().map(check_role).transpose()?;
    let member = state
        .write_workspace(ws.clone(), move |conn| {
            let workspace = load_workspace(conn, &caller, &ws)?;
            if workspace.directory_sync_enabled {
                return Err(ApiError::managed_by_directory_sync(
                    "directory sync is on: members are added in the identity provider",
                ));
            }
            email_in_use(conn, &ws, &email, None)?;
            check_owner_change(conn, &caller, &ws, None, role.map(|r| r.as_str()))?;
            let now = timestamp::now();
            let member = MemberRow {
                id: new_id("mem"),
                workspace_id: ws.clone(),
                email_key: email_key(&email),
                email,
                first_name,
                last_name,
                role: role.map_or(workspace.default_role.clone(), |r| r.as_str().into()),
                status: MemberStatus::Active.as_str().into(),
                managed_by: ManagedBy::Manual.as_str().into(),
                directory_user_id: None,
                created_at: now,
                updated_at: now,
            };
            diesel::insert_into(members::table)
                .values(&member)
                .execute(conn)?;
            audit_member_change(conn, &caller.cause(), "member.added", None, &member)?;
            Ok(member)
        })
        .await?;
    Ok(HttpResponse::Created().json(Member::from(&member)))
}

/// What to change in a member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberChanges {
    #[schema(schema_with = email)]
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[schema(schema_with = role)]
    role: Option<String>,
}

/// Change a member
///
/// A directory-managed member's email and name come from the identity provider, and while the
/// workspace has role mappings so does their role (409). Only the operator grants or removes `owner`
/// (403 `owner_requires_operator`), and never from the workspace's last active owner (409 `last_owner`).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/members/{member}", tag = "members",
    params(WorkspaceParam, MemberParam),
    request_body = MemberChanges,
    responses(
        (status = 200, description = "The changed member.", body = Member),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["owner_requires_operator"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["managed_by_directory_sync", "email_taken", "last_owner"])))),
    ),
)]
pub(super) async fn update_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<MemberChanges>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let changes = body.into_inner();
    let email = changes.email.as_deref().map(check_email).transpose()?;
    let first_name = check_person_name("first_name", changes.first_name)?;
    let last_name = check_person_name("last_name", changes.last_name)?;
    let role = changes.role.as_deref().map(check_role).transpose()?;
    let member = state
        .write_workspace(ws.clone(), move |conn| {
            let before = load_member(conn, &caller, &ws, &id)?;
            let directory_managed = before.managed_by == ManagedBy::Directory.as_str();
            let identity_change = email.is_some() || first_name.is_some() || last_name.is_some();
            if directory_managed && identity_change {
                return Err(ApiError::managed_by_directory_sync(
                    "this member's email and name come from the identity provider",
                ));
            }
            let role_change = role.is_some_and(|r| r.as_str() != before.role);
            if directory_managed && role_change && crate::directory_sync::roles::has_mappings(conn, &ws)? {
                return Err(ApiError::managed_by_directory_sync(
                    "this workspace maps directory groups to roles: change the mapping or the member's groups",
                ));
            }
            if let Some(role) = role {
                check_owner_change(conn, &caller, &ws, Some(&before), Some(role.as_str()))?;
            }
            let mut after = before.clone();
            if let Some(email) = email {
                email_in_use(conn, &ws, &email, Some(&id))?;
                after.email_key = email_key(&email);
                after.email = email;
            }
            if let Some(first_name) = first_name {
                after.first_name = Some(first_name);
            }
            if let Some(last_name) = last_name {
                after.last_name = Some(last_name);
            }
            if let Some(role) = role {
                after.role = role.as_str().into();
            }
            if after != before {
                after.updated_at = timestamp::now();
                diesel::update(members::table.find(&id))
                    .set(&after)
                    .execute(conn)?;
                let action = if after.role != before.role {
                    "member.role_changed"
                } else {
                    "member.updated"
                };
                audit_member_change(conn, &caller.cause(), action, Some(&before), &after)?;
            }
            Ok(after)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Member::from(&member)))
}

/// Remove a member
///
/// With directory sync on, a directory-managed member is removed in the identity provider (409);
/// leftover manual members can still be removed here. Only the operator removes an owner (403), and
/// never the workspace's last active owner (409 `last_owner`).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{member}", tag = "members",
    params(WorkspaceParam, MemberParam),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["owner_requires_operator"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["managed_by_directory_sync", "last_owner"])))),
    ),
)]
pub(super) async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    state
        .write_workspace(ws.clone(), move |conn| {
            let workspace = load_workspace(conn, &caller, &ws)?;
            let member = load_member(conn, &caller, &ws, &id)?;
            if workspace.directory_sync_enabled && member.managed_by == ManagedBy::Directory.as_str() {
                return Err(ApiError::managed_by_directory_sync(
                    "this member is managed by directory sync: remove them in the identity provider",
                ));
            }
            check_owner_change(conn, &caller, &ws, Some(&member), None)?;
            crate::directory_sync::teams::leave_all_teams(conn, &caller.cause(), &ws, &id)?;
            diesel::delete(members::table.find(&id)).execute(conn)?;
            crate::audit::record(
                conn,
                &caller.cause(),
                crate::audit::AuditRecord {
                    workspace_id: &ws,
                    action: "member.removed",
                    subject_type: "member",
                    subject_id: &id,
                    before: Some(member_json(&member)),
                    after: None,
                },
            )?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
