//! Members provisioned from the directory (rules 1–3): matching, adoption, updates, deprovisioning.

pub use super::member_entries::{
    audit_member_change, member_json, Allowed, Member, MemberActions, MemberDetails, MemberGroup,
    RoleOrigin,
};

use super::context::{ApplyContext, ApplyError, Effects};
use super::member_entries::member_change;
use super::store::Store;
use crate::audit::AuditRecord;
use crate::db::models::{DirectoryUserRow, MemberRow};
use crate::domain::{ManagedBy, MemberStatus, UserState};
use crate::ids::new_id;
use crate::workos::timestamp;
use diesel::prelude::*;
use serde_json::json;

/// The key that makes emails unique per workspace: ASCII letters compared case-insensitively, every
/// other character as it is (rule 21), so that no look-alike letter (`K`, U+212A KELVIN SIGN) folds onto
/// another member's address and adopts them.
pub fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Brings the member of the person behind `user` in line with the directory, all but their teams and role;
/// returns that member, for the caller to reconcile once its change is done
/// ([`Reconciliation`](super::teams::Reconciliation)).
///
/// The person is everyone in the directory sharing `user`'s `idp_id` (a returning user gets a new broker
/// id); of those records that were ever active, the newest live one speaks for them (else the newest). Their member is found by link,
/// then by email (a manual member, or one whose directory record is gone, is adopted), else created.
pub fn sync_for_user(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    user: &DirectoryUserRow,
    effects: &mut Effects,
) -> Result<Option<MemberRow>, ApplyError> {
    let claimants: Vec<DirectoryUserRow> = if user.idp_id.is_empty() {
        vec![user.clone()]
    } else {
        store.users_with_idp(&user.directory_id, &user.idp_id)?
    };
    // The broker never holds two live users with one `idp_id`: a live record means the others are gone,
    // even when their deletion never arrived (or a pull stamped it later than the new record's creation).
    let Some(owner) = claimants.iter().filter(|u| u.ever_active).max_by(|a, b| {
        (
            a.deleted_at.is_none(),
            a.source_updated_at,
            a.source_event_at,
            &a.id,
        )
            .cmp(&(
                b.deleted_at.is_none(),
                b.source_updated_at,
                b.source_event_at,
                &b.id,
            ))
    }) else {
        return Ok(None);
    };
    let mut linked: Vec<MemberRow> = Vec::new();
    for claimant in &claimants {
        linked.extend(store.members_of_user(&ctx.workspace.id, &claimant.id)?);
    }
    let status = desired_status(store, owner)?;
    let linked_member = linked
        .iter()
        .find(|m| m.directory_user_id.as_ref() == Some(&owner.id))
        .or(linked.first());
    match linked_member {
        Some(member) => {
            update_member(store, ctx, member, owner, status, "member.updated", effects).map(Some)
        }
        None => match_by_email(store, ctx, owner, status, effects),
    }
}

/// Adopts the member with the owner's email, or creates one; `None` when there is no email or the email
/// belongs to another live directory record (a conflict, recorded).
fn match_by_email(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    owner: &DirectoryUserRow,
    status: MemberStatus,
    effects: &mut Effects,
) -> Result<Option<MemberRow>, ApplyError> {
    let Some(email) = owner.email.as_deref() else {
        return Ok(None);
    };
    match store.member_with_email(&ctx.workspace.id, &email_key(email))? {
        Some(member) if can_adopt(store, &member)? => update_member(
            store,
            ctx,
            &member,
            owner,
            status,
            "member.adopted",
            effects,
        )
        .map(Some),
        Some(member) => {
            record_conflict(store, ctx, &member, owner, email, effects);
            Ok(None)
        }
        None => Ok(Some(create_member(store, ctx, owner, email, status))),
    }
}

/// Active while the directory record is active, not deleted, and its directory not deleted.
fn desired_status(store: &mut Store<'_>, owner: &DirectoryUserRow) -> QueryResult<MemberStatus> {
    let directory_deleted = store
        .directory(&owner.directory_id)?
        .is_some_and(|d| d.deleted_at.is_some());
    let active =
        owner.deleted_at.is_none() && owner.state == UserState::Active && !directory_deleted;
    Ok(if active {
        MemberStatus::Active
    } else {
        MemberStatus::Deprovisioned
    })
}

/// A member found by email may be taken over unless another live directory record owns it.
fn can_adopt(store: &mut Store<'_>, member: &MemberRow) -> QueryResult<bool> {
    if member.managed_by == ManagedBy::Manual {
        return Ok(true);
    }
    let Some(linked) = &member.directory_user_id else {
        return Ok(true);
    };
    let Some(record) = store.user(linked)? else {
        return Ok(true);
    };
    let directory_deleted = store
        .directory(&record.directory_id)?
        .is_some_and(|d| d.deleted_at.is_some());
    Ok(record.deleted_at.is_some() || directory_deleted)
}

fn create_member(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    owner: &DirectoryUserRow,
    email: &str,
    status: MemberStatus,
) -> MemberRow {
    let member = new_member(ctx, owner, email, status);
    store.audit(
        &ctx.cause,
        member_change("member.provisioned", None, &member),
    );
    store.put_member(member.clone());
    member
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
        role: ctx.workspace.default_role,
        status,
        managed_by: ManagedBy::Directory,
        directory_user_id: Some(owner.id.clone()),
        created_at: now,
        updated_at: now,
    }
}

fn update_member(
    store: &mut Store<'_>,
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
        status,
        managed_by: ManagedBy::Directory,
        directory_user_id: Some(owner.id.clone()),
        ..member.clone()
    };
    if let Some(email) = owner.email.as_deref() {
        let key = email_key(email);
        let taken = key != member.email_key
            && store
                .member_with_email(&member.workspace_id, &key)?
                .is_some_and(|holder| holder.id != member.id);
        if taken {
            record_conflict(store, ctx, member, owner, email, effects);
        } else {
            next.email = email.trim().to_string();
            next.email_key = key;
        }
    }
    if next == *member {
        return Ok(next);
    }
    next.updated_at = timestamp::now();
    let action = match (member.status == next.status, status) {
        (false, MemberStatus::Deprovisioned) => "member.deprovisioned",
        (false, MemberStatus::Active) => "member.reprovisioned",
        (true, _) => action,
    };
    store.audit(&ctx.cause, member_change(action, Some(member), &next));
    store.put_member(next.clone());
    Ok(next)
}

/// An email that would merge two members is not applied; the audit log and the event say so.
fn record_conflict(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    member: &MemberRow,
    owner: &DirectoryUserRow,
    email: &str,
    effects: &mut Effects,
) {
    effects.conflicts.push(format!(
        "directory user {} has email {email}, which member {} already holds; not merged",
        owner.id, member.id
    ));
    store.audit(
        &ctx.cause,
        AuditRecord {
            workspace_id: &member.workspace_id,
            action: "member.email_conflict",
            subject_type: "member",
            subject_id: &member.id,
            before: Some(member_json(member)),
            after: Some(json!({ "directory_user_id": owner.id, "email": email })),
        },
    );
}
