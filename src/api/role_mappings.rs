//! `GET/PUT …/role-mappings`: which directory group grants which role (rule 11), self-serve.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::workspaces::load_workspace;
use super::{resource, AppState};
use crate::db::models::RoleMappingRow;
use crate::db::schema::directory_groups;
use crate::directory_sync::roles;
use crate::directory_sync::teams::workspace_groups;
use crate::domain::Role;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/workspaces/{ws}/role-mappings")
            .route(web::get().to(get_role_mappings))
            .route(web::put().to(put_role_mappings)),
    );
}

fn mappings_json(rows: &[RoleMappingRow]) -> serde_json::Value {
    let data: Vec<_> = rows
        .iter()
        .map(|m| json!({ "group_id": m.group_id, "role": m.role }))
        .collect();
    json!({ "data": data })
}

async fn get_role_mappings(
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
    Ok(HttpResponse::Ok().json(mappings_json(&rows)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleMapping {
    group_id: String,
    role: String,
}

async fn put_role_mappings(
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
    Ok(HttpResponse::Ok().json(mappings_json(&rows)))
}
