//! A workspace's audit log as its admins read it: every change to its members, teams, links, mappings
//! and roles, newest first, with what caused it (rule 17).

use super::{visible, WorkspaceError};
use crate::access::Caller;
use crate::db::models::AuditEntryRow;
use crate::db::schema::audit_log;
use crate::db::Database;
use crate::domain::ShownCause;
use crate::lists::{List, Page};
use crate::workos::timestamp::time_json;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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

fn parse_json(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
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

/// A page of the workspace's audit log, newest first: the entries before entry `after` (by id).
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    page: &Page,
    after: Option<i64>,
) -> Result<List<AuditEntry>, WorkspaceError> {
    db.read(|conn| {
        visible(conn, caller, workspace_id)?;
        let mut q = audit_log::table
            .filter(audit_log::workspace_id.eq(workspace_id))
            .order(audit_log::id.desc())
            .limit(page.limit + 1)
            .select(AuditEntryRow::as_select())
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(audit_log::id.lt(after));
        }
        let list = List::from_overfetch(q.load(conn)?, page, |e: &AuditEntryRow| e.id.to_string());
        Ok(list.map(|row| AuditEntry::from(row)))
    })
}
