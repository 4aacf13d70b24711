//! `GET/PUT …/role-mappings`: which directory group grants which role (rule 11), self-serve.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::openapi::{directory_role, WorkspaceParam};
use super::workspaces::load_workspace;
use super::{AppState, Route};
use crate::db::models::RoleMappingRow;
use crate::db::schema::directory_groups;
use crate::directory_sync::roles;
use crate::directory_sync::teams::workspace_groups;
use crate::domain::Role;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_get_role_mappings>(|| web::to(get_role_mappings)),
        Route::of::<__path_put_role_mappings>(|| web::to(put_role_mappings)),
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
                    group_id: m.group_id.clone(),
                    role: m.role.clone(),
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
            load_workspace(conn, &caller, &ws)?;
            Ok(roles::mappings(conn, &ws)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleMappings::of(&rows)))
}

/// Replace the role mappings
///
/// Replaces the whole set; directory-managed members' roles are recomputed. A group may appear once,
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
    let mut wanted: Vec<(String, Role)> = Vec::new();
    let mut seen = HashSet::new();
    for mapping in body.into_inner() {
        let role = match mapping.role.parse::<Role>() {
            Ok(Role::Owner) => {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "role: the directory never assigns owner",
                ))
            }
            Ok(role) => role,
            Err(e) => return Err(ApiError::bad_request("invalid_field", format!("role: {e}"))),
        };
        if !seen.insert(mapping.group_id.clone()) {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("group_id {} is mapped twice", mapping.group_id),
            ));
        }
        wanted.push((mapping.group_id, role));
    }
    let rows = state
        .write(move |conn| {
            let workspace = load_workspace(conn, &caller, &ws)?;
            for (group_id, _) in &wanted {
                let found: i64 = workspace_groups(&workspace)
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
            let cause = caller.cause();
            Ok(crate::directory_sync::with_store(conn, |store| {
                roles::replace_mappings(store, &cause, &workspace, &wanted)
            })?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleMappings::of(&rows)))
}
