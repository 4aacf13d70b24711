//! How a member is shown: as JSON to the API and the audit log, and as the audit entry of a change to
//! one. Below the member, team and role rules, which all write such entries.

use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::MemberRow;
use crate::db::DbConnection;
use crate::domain::{ManagedBy, MemberStatus, Role};
use crate::workos::timestamp::time_json;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A workspace member, as the API and the audit log show it.
#[derive(Serialize, ToSchema)]
pub struct Member {
    id: String,
    workspace_id: String,
    email: String,
    #[schema(required = true)]
    first_name: Option<String>,
    #[schema(required = true)]
    last_name: Option<String>,
    #[schema(value_type = crate::domain::Role, inline)]
    role: Role,
    #[schema(value_type = crate::domain::MemberStatus, inline)]
    status: MemberStatus,
    #[schema(value_type = crate::domain::ManagedBy, inline)]
    managed_by: ManagedBy,
    #[schema(required = true)]
    directory_user_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&MemberRow> for Member {
    fn from(m: &MemberRow) -> Self {
        Member {
            id: m.id.clone(),
            workspace_id: m.workspace_id.clone(),
            email: m.email.clone(),
            first_name: m.first_name.clone(),
            last_name: m.last_name.clone(),
            role: m.role,
            status: m.status,
            managed_by: m.managed_by,
            directory_user_id: m.directory_user_id.clone().map(String::from),
            created_at: time_json(&m.created_at),
            updated_at: time_json(&m.updated_at),
        }
    }
}

/// A member as the API and the audit log show it.
pub fn member_json(m: &MemberRow) -> serde_json::Value {
    json!(Member::from(m))
}

/// Writes the audit entry of a change to a member.
pub fn audit_member_change(
    conn: &mut DbConnection,
    cause: &Cause,
    action: &str,
    before: Option<&MemberRow>,
    after: &MemberRow,
) -> QueryResult<()> {
    audit::record(conn, cause, member_change(action, before, after))
}

/// The audit entry of a change to a member.
pub fn member_change<'a>(
    action: &'a str,
    before: Option<&MemberRow>,
    after: &'a MemberRow,
) -> AuditRecord<'a> {
    AuditRecord {
        workspace_id: &after.workspace_id,
        action,
        subject_type: "member",
        subject_id: &after.id,
        before: before.map(member_json),
        after: Some(member_json(after)),
    }
}
