//! How a member is shown: as JSON to the API and the audit log, and as the audit entry of a change to
//! one. Below the member, team and role rules, which all write such entries.

use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::MemberRow;
use crate::db::DbConnection;
use diesel::prelude::*;
use serde_json::json;

/// A member as the API and the audit log show it.
pub fn member_json(m: &MemberRow) -> serde_json::Value {
    json!({
        "id": m.id,
        "workspace_id": m.workspace_id,
        "email": m.email,
        "first_name": m.first_name,
        "last_name": m.last_name,
        "role": m.role,
        "status": m.status,
        "managed_by": m.managed_by,
        "directory_user_id": m.directory_user_id,
        "created_at": m.created_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updated_at": m.updated_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
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
