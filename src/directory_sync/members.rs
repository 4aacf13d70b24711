//! Members provisioned from the directory (rules 1–3): matching, adoption, updates, deprovisioning.

use super::{teams, ApplyContext, ApplyError, Effects};
use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::{DirectoryUserRow, MemberRow};
use crate::db::schema::{directories, directory_users, members};
use crate::db::DbConnection;
use crate::domain::{ManagedBy, MemberStatus};
use crate::ids::new_id;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use serde_json::json;

/// The key that makes emails unique per workspace, compared case-insensitively.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

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

/// Brings the member of the person behind `user` in line with the directory.
///
/// The person is everyone in the directory sharing `user`'s `idp_id` (a returning user gets a new broker
/// id); the newest of those records that was ever active speaks for them. Their member is found by link,
/// then by email (a manual member, or one whose directory record is gone, is adopted), else created.
pub fn sync_for_user(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    user: &DirectoryUserRow,
    effects: &mut Effects,
) -> Result<(), ApplyError> {
    let claimants: Vec<DirectoryUserRow> = if user.idp_id.is_empty() {
        vec![user.clone()]
    } else {
        directory_users::table
            .filter(directory_users::directory_id.eq(&user.directory_id))
            .filter(directory_users::idp_id.eq(&user.idp_id))
            .select(DirectoryUserRow::as_select())
            .load(conn)?
    };
    let Some(owner) = claimants.iter().filter(|u| u.ever_active).max_by(|a, b| {
        (a.source_updated_at, a.source_event_at, &a.id).cmp(&(
            b.source_updated_at,
            b.source_event_at,
            &b.id,
        ))
    }) else {
        return Ok(());
    };
    // One equality lookup per record (almost always one): a plain `=` keeps PostgreSQL on the index even
    // while its statistics still describe an empty table.
    let mut linked: Vec<MemberRow> = Vec::new();
    for claimant in &claimants {
        linked.extend(
            members::table
                .filter(members::directory_user_id.eq(&claimant.id))
                .filter(members::workspace_id.eq(&ctx.workspace.id))
                .select(MemberRow::as_select())
                .load::<MemberRow>(conn)?,
        );
    }
    let status = desired_status(conn, owner)?;
    let linked_member = linked
        .iter()
        .find(|m| m.directory_user_id.as_deref() == Some(owner.id.as_str()))
        .or(linked.first());
    let member = match linked_member {
        Some(member) => update_member(conn, ctx, member, owner, status, "member.updated", effects)?,
        None => match match_by_email(conn, ctx, owner, status, effects)? {
            Some(member) => member,
            None => return Ok(()),
        },
    };
    teams::reconcile_member(conn, &ctx.cause, &ctx.workspace, &member)?;
    Ok(())
}

/// Adopts the member with the owner's email, or creates one; `None` when there is no email or the email
/// belongs to another live directory record (a conflict, recorded).
fn match_by_email(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    owner: &DirectoryUserRow,
    status: MemberStatus,
    effects: &mut Effects,
) -> Result<Option<MemberRow>, ApplyError> {
    let Some(email) = owner.email.as_deref() else {
        return Ok(None);
    };
    let by_email: Option<MemberRow> = members::table
        .filter(members::workspace_id.eq(&ctx.workspace.id))
        .filter(members::email_key.eq(email_key(email)))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()?;
    match by_email {
        Some(member) if can_adopt(conn, &member)? => {
            update_member(conn, ctx, &member, owner, status, "member.adopted", effects).map(Some)
        }
        Some(member) => {
            record_conflict(conn, ctx, &member, owner, email, effects)?;
            Ok(None)
        }
        None => create_member(conn, ctx, owner, email, status).map(Some),
    }
}

/// Active while the directory record is active, not deleted, and its directory not deleted.
fn desired_status(conn: &mut DbConnection, owner: &DirectoryUserRow) -> QueryResult<MemberStatus> {
    let directory_deleted = directories::table
        .find(&owner.directory_id)
        .select(directories::deleted_at)
        .first::<Option<Timestamp>>(conn)
        .optional()?
        .flatten()
        .is_some();
    let active = owner.deleted_at.is_none() && owner.state == "active" && !directory_deleted;
    Ok(if active {
        MemberStatus::Active
    } else {
        MemberStatus::Deprovisioned
    })
}

/// A member found by email may be taken over unless another live directory record owns it.
fn can_adopt(conn: &mut DbConnection, member: &MemberRow) -> QueryResult<bool> {
    if member.managed_by == ManagedBy::Manual.as_str() {
        return Ok(true);
    }
    let Some(linked) = &member.directory_user_id else {
        return Ok(true);
    };
    let record: Option<(Option<Timestamp>, Option<Timestamp>)> = directory_users::table
        .left_join(directories::table.on(directories::id.eq(directory_users::directory_id)))
        .filter(directory_users::id.eq(linked))
        .select((
            directory_users::deleted_at,
            directories::deleted_at.nullable(),
        ))
        .first(conn)
        .optional()?;
    Ok(match record {
        None => true,
        Some((user_deleted, directory_deleted)) => {
            user_deleted.is_some() || directory_deleted.is_some()
        }
    })
}

fn create_member(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    owner: &DirectoryUserRow,
    email: &str,
    status: MemberStatus,
) -> Result<MemberRow, ApplyError> {
    let member = new_member(ctx, owner, email, status);
    diesel::insert_into(members::table)
        .values(&member)
        .execute(conn)?;
    audit_member_change(conn, &ctx.cause, "member.provisioned", None, &member)?;
    Ok(member)
}

/// The member provisioned for a directory user: the workspace's default role, managed by the directory.
pub fn new_member(
    ctx: &ApplyContext,
    owner: &DirectoryUserRow,
    email: &str,
    status: MemberStatus,
) -> MemberRow {
    let now = timestamp::now();
    MemberRow {
        id: new_id("mem"),
        workspace_id: ctx.workspace.id.clone(),
        email: email.trim().to_string(),
        email_key: email_key(email),
        first_name: owner.first_name.clone(),
        last_name: owner.last_name.clone(),
        role: ctx.workspace.default_role.clone(),
        status: status.as_str().to_string(),
        managed_by: ManagedBy::Directory.as_str().to_string(),
        directory_user_id: Some(owner.id.clone()),
        created_at: now,
        updated_at: now,
    }
}

fn update_member(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    member: &MemberRow,
    owner: &DirectoryUserRow,
    status: MemberStatus,
    action: &str,
    effects: &mut Effects,
) -> Result<MemberRow, ApplyError> {
    let mut next = MemberRow {
        first_name: owner.first_name.clone(),
        last_name: owner.last_name.clone(),
        status: status.as_str().to_string(),
        managed_by: ManagedBy::Directory.as_str().to_string(),
        directory_user_id: Some(owner.id.clone()),
        ..member.clone()
    };
    if let Some(email) = owner.email.as_deref() {
        let key = email_key(email);
        if key != member.email_key && email_taken(conn, &member.workspace_id, &key, &member.id)? {
            record_conflict(conn, ctx, member, owner, email, effects)?;
        } else {
            next.email = email.trim().to_string();
            next.email_key = key;
        }
    }
    if next == *member {
        return Ok(next);
    }
    next.updated_at = timestamp::now();
    diesel::update(members::table.find(&member.id))
        .set(&next)
        .execute(conn)?;
    let action = match (member.status == next.status, status) {
        (false, MemberStatus::Deprovisioned) => "member.deprovisioned",
        (false, MemberStatus::Active) => "member.reprovisioned",
        (true, _) => action,
    };
    audit_member_change(conn, &ctx.cause, action, Some(member), &next)?;
    Ok(next)
}

fn email_taken(
    conn: &mut DbConnection,
    workspace_id: &str,
    key: &str,
    except: &str,
) -> QueryResult<bool> {
    let found: i64 = members::table
        .filter(members::workspace_id.eq(workspace_id))
        .filter(members::email_key.eq(key))
        .filter(members::id.ne(except))
        .count()
        .get_result(conn)?;
    Ok(found > 0)
}

/// An email that would merge two members is not applied; the audit log and the event say so.
fn record_conflict(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    member: &MemberRow,
    owner: &DirectoryUserRow,
    email: &str,
    effects: &mut Effects,
) -> Result<(), ApplyError> {
    effects.conflicts.push(format!(
        "directory user {} has email {email}, which member {} already holds; not merged",
        owner.id, member.id
    ));
    audit::record(
        conn,
        &ctx.cause,
        AuditRecord {
            workspace_id: &member.workspace_id,
            action: "member.email_conflict",
            subject_type: "member",
            subject_id: &member.id,
            before: Some(member_json(member)),
            after: Some(json!({ "directory_user_id": owner.id, "email": email })),
        },
    )?;
    Ok(())
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
