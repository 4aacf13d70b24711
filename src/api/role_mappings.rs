//! `GET/PUT …/role-mappings`: which directory group grants which role (rule 11), self-serve; and
//! `GET/PUT …/role-source`: whether roles come from those mappings or from the role slugs the identity
//! provider assigns, through a slug table.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::params::WorkspaceParam;
use super::route::Route;
use crate::access::Caller;
use crate::db::models::{MemberRow, RoleMappingRow, WorkspaceRow};
use crate::db::schema::directory_groups;
use crate::db::DbConnection;
use crate::directory_sync::roles;
use crate::directory_sync::teams::workspace_groups;
use crate::domain::{Role, RoleSource};
use crate::ids::DirectoryGroupId;
use crate::schemas::directory_role;
use crate::state::AppState;
use crate::workspaces;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_get_role_mappings>(|| web::to(get_role_mappings)),
        Route::of::<__path_put_role_mappings>(|| web::to(put_role_mappings)),
        Route::of::<__path_preview_role_mappings>(|| web::to(preview_role_mappings)),
        Route::of::<__path_get_role_source>(|| web::to(get_role_source)),
        Route::of::<__path_put_role_source>(|| web::to(put_role_source)),
        Route::of::<__path_preview_role_source>(|| web::to(preview_role_source)),
    ]
    .concat()
}

/// Which directory group grants which role.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    group_id: String,
    #[schema(schema_with = directory_role)]
    role: String,
}

/// Every role mapping of the workspace.
#[derive(Serialize, ToSchema)]
pub struct RoleMappings {
    data: Vec<RoleMapping>,
}

impl RoleMappings {
    fn of(rows: &[RoleMappingRow]) -> Self {
        RoleMappings {
            data: rows
                .iter()
                .map(|m| RoleMapping {
                    group_id: m.group_id.to_string(),
                    role: m.role.to_string(),
                })
                .collect(),
        }
    }
}

/// List role mappings
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/role-mappings", tag = "directory",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "Every mapping.", body = RoleMappings),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_role_mappings(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let rows = state
        .read(move |conn| {
            workspaces::visible(conn, &caller, &ws)?;
            Ok(roles::mappings(conn, &ws)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleMappings::of(&rows)))
}

/// Replace the role mappings
///
/// Replaces the whole set; directory-managed members' roles are recomputed (on SQLite a batch of
/// members per transaction, the workspace's other writes waiting for the end). A group may appear once,
/// and must be one of the workspace's directory groups (400 `unknown_group`).
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/role-mappings", tag = "directory",
    params(WorkspaceParam),
    request_body = Vec<RoleMapping>,
    responses(
        (status = 200, description = "The new set.", body = RoleMappings),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field", "unknown_group"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn put_role_mappings(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Vec<RoleMapping>>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let wanted = wanted_mappings(body.into_inner())?;
    let rows = change_roles(&state, caller, ws, move |conn, workspace| {
        check_groups(conn, workspace, &wanted)?;
        Ok(roles::MappingReplacement::new(&wanted))
    })
    .await?;
    Ok(HttpResponse::Ok().json(RoleMappings::of(&rows)))
}

/// Runs a change of roles in steps on a workspace the caller may see (`start` checks the request against
/// the workspace and makes the change); its answer.
async fn change_roles<C>(
    state: &AppState,
    caller: Caller,
    ws: String,
    start: impl Fn(&mut DbConnection, &WorkspaceRow) -> ApiResult<C> + Send + 'static,
) -> ApiResult<C::Done>
where
    C: roles::RoleChange + Send + 'static,
    C::Done: Send + 'static,
{
    let cause = caller.cause();
    let mut changing: Option<(WorkspaceRow, roles::InSteps<C>)> = None;
    state
        .write_workspace_in_steps(ws.clone(), move |conn, limit| {
            if changing.is_none() {
                let workspace = workspaces::visible(conn, &caller, &ws)?;
                let change = start(conn, &workspace)?;
                changing = Some((workspace, roles::InSteps::new(change)));
            }
            let (workspace, change) = changing.as_mut().expect("set above");
            Ok(crate::directory_sync::with_store(conn, |store| {
                change.step(store, &cause, workspace, limit)
            })?)
        })
        .await
}

/// Previews a change of roles on a workspace the caller may see, on a read-only snapshot: `changes`
/// calls its last argument with each member whose role would change and the role it would get.
async fn preview_roles(
    state: &AppState,
    caller: Caller,
    ws: String,
    changes: impl FnOnce(&mut DbConnection, &WorkspaceRow, &mut dyn FnMut(&MemberRow, Role)) -> ApiResult<()>
        + Send
        + 'static,
) -> ApiResult<RoleMappingPreview> {
    state
        .read_only(move |conn| {
            let workspace = workspaces::visible(conn, &caller, &ws)?;
            let mut found: Vec<RoleChange> = Vec::new();
            changes(conn, &workspace, &mut |member, to| {
                found.push(RoleChange::of(member, to))
            })?;
            Ok(summarize(found))
        })
        .await
}

/// The mappings asked for: known roles but `owner`, each group once.
fn wanted_mappings(body: Vec<RoleMapping>) -> ApiResult<Vec<(DirectoryGroupId, Role)>> {
    let mut wanted: Vec<(DirectoryGroupId, Role)> = Vec::new();
    let mut seen = HashSet::new();
    for mapping in body {
        let role = checked_role(&mapping.role)?;
        if !seen.insert(mapping.group_id.clone()) {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("group_id {} is mapped twice", mapping.group_id),
            ));
        }
        wanted.push((DirectoryGroupId::from(mapping.group_id), role));
    }
    Ok(wanted)
}

/// A role the directory may give: any but `owner`.
fn checked_role(role: &str) -> ApiResult<Role> {
    match role.parse::<Role>() {
        Ok(Role::Owner) => Err(ApiError::bad_request(
            "invalid_field",
            "role: the directory never assigns owner",
        )),
        Ok(role) => Ok(role),
        Err(e) => Err(ApiError::bad_request("invalid_field", format!("role: {e}"))),
    }
}

/// Refuses a group that is not one of the workspace's directory groups.
fn check_groups(
    conn: &mut DbConnection,
    workspace: &WorkspaceRow,
    wanted: &[(DirectoryGroupId, Role)],
) -> ApiResult<()> {
    for (group_id, _) in wanted {
        let found: i64 = workspace_groups(workspace)
            .filter(directory_groups::id.eq(group_id.clone()))
            .count()
            .get_result(conn)?;
        if found == 0 {
            return Err(ApiError::bad_request(
                "unknown_group",
                format!("{group_id} is not a directory group of this workspace"),
            ));
        }
    }
    Ok(())
}

/// A member whose role a change of mappings would change.
#[derive(Serialize, ToSchema)]
pub struct RoleChange {
    member_id: String,
    email: String,
    #[schema(value_type = crate::domain::Role, inline)]
    from: Role,
    #[schema(value_type = crate::domain::Role, inline)]
    to: Role,
}

impl RoleChange {
    fn of(member: &MemberRow, to: Role) -> Self {
        RoleChange {
            member_id: member.id.clone(),
            email: member.email.clone(),
            from: member.role,
            to,
        }
    }
}

/// How many members a change of mappings would move from one role to another.
#[derive(Serialize, ToSchema)]
pub struct RoleMove {
    #[schema(value_type = crate::domain::Role, inline)]
    from: Role,
    #[schema(value_type = crate::domain::Role, inline)]
    to: Role,
    count: usize,
}

/// What replacing the role mappings would do, without doing it.
#[derive(Serialize, ToSchema)]
pub struct RoleMappingPreview {
    /// How many members' roles would change.
    total: usize,
    /// Those members by the role they leave and the role they get, most first.
    moves: Vec<RoleMove>,
    /// The members whose role would change, by member id: the first 1,000 of them.
    changes: Vec<RoleChange>,
    /// Whether `changes` leaves some out (`total` counts them all).
    truncated: bool,
}

/// The most members a preview lists one by one; all are counted.
pub const PREVIEW_LISTED: usize = 1000;

/// Preview a change of role mappings
///
/// Takes the same body as the replacement and answers which members' roles it would change, with
/// the same rules (highest role wins), changing nothing: computed on a read-only snapshot, so it holds
/// up no write. Every change is counted (`total`, `moves`); the first 1,000 by member id are listed.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/role-mappings/preview", tag = "directory",
    params(WorkspaceParam),
    request_body = Vec<RoleMapping>,
    responses(
        (status = 200, description = "The members whose role would change.", body = RoleMappingPreview),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field", "unknown_group"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn preview_role_mappings(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Vec<RoleMapping>>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let wanted = wanted_mappings(body.into_inner())?;
    let preview = preview_roles(&state, caller, ws, move |conn, workspace, each| {
        check_groups(conn, workspace, &wanted)?;
        Ok(crate::directory_sync::with_store(conn, |store| {
            roles::preview_replacement(store, workspace, &wanted, each)
        })?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(preview))
}

/// Counts the changes by move and lists the first of them by member id.
fn summarize(mut changes: Vec<RoleChange>) -> RoleMappingPreview {
    let mut counted: HashMap<(Role, Role), usize> = HashMap::new();
    for change in &changes {
        *counted.entry((change.from, change.to)).or_default() += 1;
    }
    let mut moves: Vec<RoleMove> = counted
        .into_iter()
        .map(|((from, to), count)| RoleMove { from, to, count })
        .collect();
    moves.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    let total = changes.len();
    changes.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    changes.truncate(PREVIEW_LISTED);
    RoleMappingPreview {
        total,
        moves,
        truncated: total > changes.len(),
        changes,
    }
}

/// A role slug the identity provider assigns, and the product role it gives.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlugMapping {
    slug: String,
    #[schema(schema_with = directory_role)]
    role: String,
}

/// What decides the roles of the workspace's directory members.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSourceSetting {
    /// `group_mappings` (the role mappings of the member's groups, the default) or `directory_roles`
    /// (the identity provider's role slugs, through `mappings`).
    #[schema(value_type = crate::domain::RoleSource, inline)]
    source: String,
    /// The slug the broker gives users mapped to no role (`member` unless set): it gives the
    /// workspace's default role, and cannot be mapped.
    #[serde(default)]
    default_slug: Option<String>,
    /// Slug → role; a member gets the highest role among their slugs, else the default role. Kept, but
    /// unused, while the source is `group_mappings`.
    #[serde(default)]
    mappings: Vec<SlugMapping>,
}

impl RoleSourceSetting {
    fn of(setting: &roles::RoleSetting) -> Self {
        RoleSourceSetting {
            source: setting.source.to_string(),
            default_slug: Some(setting.default_slug.clone()),
            mappings: setting
                .table
                .iter()
                .map(|(slug, role)| SlugMapping {
                    slug: slug.clone(),
                    role: role.to_string(),
                })
                .collect(),
        }
    }

    /// The setting asked for: a known source, usable slugs each once, roles but `owner`.
    fn wanted(self) -> ApiResult<roles::RoleSetting> {
        let invalid = |why: String| ApiError::bad_request("invalid_field", why);
        let source = self
            .source
            .parse::<RoleSource>()
            .map_err(|e| invalid(format!("source: {e}")))?;
        let default_slug = checked_slug(
            self.default_slug
                .as_deref()
                .unwrap_or(workspaces::DEFAULT_ROLE_SLUG),
        )
        .map_err(|why| invalid(format!("default_slug: {why}")))?;
        let mut table: Vec<(String, Role)> = Vec::new();
        for mapping in self.mappings {
            let slug =
                checked_slug(&mapping.slug).map_err(|why| invalid(format!("slug: {why}")))?;
            if slug == default_slug {
                return Err(invalid(format!(
                    "slug {slug} is the default slug: it always gives the default role"
                )));
            }
            if table.iter().any(|(s, _)| *s == slug) {
                return Err(invalid(format!("slug {slug} is mapped twice")));
            }
            table.push((slug, checked_role(&mapping.role)?));
        }
        table.sort();
        Ok(roles::RoleSetting {
            source,
            default_slug,
            table,
        })
    }
}

/// A slug as the broker sends them: 1 to 200 characters, no control characters.
fn checked_slug(slug: &str) -> Result<String, &'static str> {
    let slug = slug.trim();
    if slug.is_empty() || slug.len() > 200 || slug.chars().any(char::is_control) {
        return Err("1 to 200 characters, no control characters");
    }
    Ok(slug.to_string())
}

/// The role the directory decides
///
/// Whether the roles of directory members come from the role mappings of their groups
/// (`group_mappings`) or from the role slugs the identity provider assigns (`directory_roles`), with
/// the slug table.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/role-source", tag = "directory",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "The setting.", body = RoleSourceSetting),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_role_source(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let setting = state
        .read(move |conn| {
            let workspace = workspaces::visible(conn, &caller, &ws)?;
            Ok(crate::directory_sync::with_store(conn, |store| {
                roles::RoleSetting::of(store, &workspace)
            })?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleSourceSetting::of(&setting)))
}

/// Set where roles come from
///
/// Sets the source and the slug table; every directory-managed member's role is recomputed at once (on
/// SQLite a batch of members per transaction, the workspace's other writes waiting for the end), each
/// change audited with the caller as its cause.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/role-source", tag = "directory",
    params(WorkspaceParam),
    request_body = RoleSourceSetting,
    responses(
        (status = 200, description = "The new setting.", body = RoleSourceSetting),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn put_role_source(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<RoleSourceSetting>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let wanted = body.into_inner().wanted()?;
    let shown = RoleSourceSetting::of(&wanted);
    change_roles(&state, caller, ws, move |_, _| {
        Ok(roles::RoleSettingChange::new(wanted.clone()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(shown))
}

/// Preview a change of role source
///
/// Takes the same body and answers which members' roles it would change, changing nothing.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/role-source/preview", tag = "directory",
    params(WorkspaceParam),
    request_body = RoleSourceSetting,
    responses(
        (status = 200, description = "The members whose role would change.", body = RoleMappingPreview),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn preview_role_source(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<RoleSourceSetting>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let wanted = body.into_inner().wanted()?;
    let preview = preview_roles(&state, caller, ws, move |conn, workspace, each| {
        Ok(crate::directory_sync::with_store(conn, |store| {
            roles::preview_setting(store, workspace, &wanted, each)
        })?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(preview))
}
