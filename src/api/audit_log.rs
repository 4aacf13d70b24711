//! `GET …/audit-log`: every change to the workspace's members, teams, links, mappings and roles, newest
//! first, with what caused it (rule 17).

use super::blocking::OffWorkers;
use super::error::ApiResult;
use super::pagination::{after_id, PageQuery};
use super::params::{PagedById, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::db::models::AuditEntryRow;
use crate::db::schema::audit_log;
use crate::domain::ShownCause;
use crate::lists::List;
use crate::state::AppState;
use crate::workos::timestamp::time_json;
use crate::workspaces;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    Route::of::<__path_list_audit_log>(|| web::to(list_audit_log))
}

fn parse_json(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// A change to the workspace.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    id: i64,
    #[schema(format = DateTime)]
    occurred_at: String,
    action: String,
    subject_type: String,
    subject_id: String,
    #[schema(required = true, value_type = Option<Object>)]
    before: Value,
    #[schema(required = true, value_type = Option<Object>)]
    after: Value,
    cause: ShownCause,
}

impl From<&AuditEntryRow> for AuditEntry {
    fn from(e: &AuditEntryRow) -> Self {
        AuditEntry {
            id: e.id,
            occurred_at: time_json(&e.occurred_at),
            action: e.action.clone(),
            subject_type: e.subject_type.clone(),
            subject_id: e.subject_id.clone(),
            before: parse_json(&e.before),
            after: parse_json(&e.after),
            cause: ShownCause {
                kind: e.cause_type.clone(),
                id: e.cause_id.clone(),
            },
        }
    }
}

/// Read the audit log, newest first
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/audit-log", tag = "audit",
    params(WorkspaceParam, PagedById),
    responses(
        (status = 200, description = "A page of entries.", body = List<AuditEntry>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page()?;
    let after = after_id(&page)?;
    let body = state
        .read(move |conn| {
            workspaces::visible(conn, &caller, &ws)?;
            let mut q = audit_log::table
                .filter(audit_log::workspace_id.eq(&ws))
                .order(audit_log::id.desc())
                .limit(page.limit + 1)
                .select(AuditEntryRow::as_select())
                .into_boxed();
            if let Some(after) = after {
                q = q.filter(audit_log::id.lt(after));
            }
            let list =
                List::from_overfetch(q.load(conn)?, &page, |e: &AuditEntryRow| e.id.to_string());
            Ok(list.map(|row| AuditEntry::from(row)))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
