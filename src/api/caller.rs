//! `GET /api/v1/caller`: who the token belongs to, so a client knows what it may show.

use super::route::Route;
use crate::access::Caller;
use crate::schemas::one_of;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::schema::Schema;
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    Route::of::<__path_get_caller>(|| web::to(get_caller))
}

/// Who is calling: an operator, or a workspace admin and their workspace.
#[derive(Serialize, ToSchema)]
pub struct CallerInfo {
    /// `operator` or `workspace_admin`.
    #[schema(schema_with = caller_kind)]
    kind: &'static str,
    /// A workspace admin's workspace; null for an operator.
    #[schema(required = true)]
    workspace_id: Option<String>,
}

/// Who the token belongs to
#[utoipa::path(get, path = "/api/v1/caller", tag = "service",
    responses(
        (status = 200, description = "The caller.", body = CallerInfo),
    ),
)]
pub(super) async fn get_caller(caller: Caller) -> HttpResponse {
    let info = match caller {
        Caller::Operator { .. } => CallerInfo {
            kind: "operator",
            workspace_id: None,
        },
        Caller::WorkspaceAdmin { workspace_id, .. } => CallerInfo {
            kind: "workspace_admin",
            workspace_id: Some(workspace_id),
        },
    };
    HttpResponse::Ok().json(info)
}

fn caller_kind() -> Schema {
    one_of(["operator", "workspace_admin"])
}
