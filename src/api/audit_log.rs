//! `GET …/audit-log`: every change to the workspace's members, teams, links, mappings and roles, newest
//! first, with what caused it (rule 17).

use super::auth::Caller;
use super::error::ApiResult;
use super::pagination::{List, PageQuery};
use super::workspaces::{load_workspace, time_json};
use super::{resource, AppState};
use crate::db::models::AuditEntryRow;
use crate::db::schema::audit_log;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/v1/workspaces/{ws}/audit-log").route(web::get().to(list_audit_log)));
}

fn parse_json(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// An audit entry as the API shows it.
pub fn audit_entry_json(e: &AuditEntryRow) -> Value {
    json!({
        "id": e.id,
        "occurred_at": time_json(&e.occurred_at),
        "action": e.action,
        "subject_type": e.subject_type,
        "subject_id": e.subject_id,
        "before": parse_json(&e.before),
        "after": parse_json(&e.after),
        "cause": { "type": e.cause_type, "id": e.cause_id },
    })
}

async fn list_audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page()?;
    let after = page.after_id()?;
    let body = state
        .read(move |conn| {
            load_workspace(conn, &caller, &ws)?;
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
            Ok(list.map(audit_entry_json))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
