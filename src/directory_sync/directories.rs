//! `dsync.activated`, legacy `dsync.deactivated` and `dsync.deleted` (rule 4).

use super::context::{ApplyContext, ApplyError, Effects};
use super::members;
use super::stamp::Stamp;
use super::store::Store;
use super::teams::{self, Reconciliation};
use crate::db::models::{DirectoryRow, DirectoryUserRow};
use crate::db::schema::{directories, directory_groups, directory_users};
use crate::db::DbConnection;
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use crate::workos::events::Directory;
use crate::workos::timestamp;
use diesel::prelude::*;

/// Attaches the directory to the event's workspace.
pub fn apply_activated(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    d: &Directory,
) -> Result<(), ApplyError> {
    let state = d.state.clone().unwrap_or_else(|| "active".into());
    store_directory(store, ctx, d, &state, false)?;
    Ok(())
}

/// Marks the directory inactive; members stay as they are.
pub fn apply_deactivated(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    d: &Directory,
) -> Result<(), ApplyError> {
    store_directory(store, ctx, d, "inactive", false)?;
    Ok(())
}

/// Tombstones the directory and deprovisions every member it manages.
pub fn apply_deleted(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    d: &Directory,
    effects: &mut Effects,
) -> Result<(), ApplyError> {
    if !store_directory(store, ctx, d, "deleted", true)? {
        return Ok(());
    }
    let users = store.load_users(|conn| {
        directory_users::table
            .filter(directory_users::directory_id.eq(&d.id))
            .filter(directory_users::ever_active.eq(true))
            .select(DirectoryUserRow::as_select())
            .load(conn)
    })?;
    // Its members are deprovisioned and its groups dropped first; then each member's teams and role
    // follow once.
    let mut reconciliation = Reconciliation::default();
    for batch in users.chunks(500) {
        let ids: Vec<&DirectoryUserId> = batch.iter().map(|u| &u.id).collect();
        store.prefetch_members_of_users(&ids)?;
        for user in batch {
            if let Some(member) = members::sync_for_user(store, ctx, user, effects)? {
                reconciliation.add_member(&member);
            }
        }
    }
    let groups: Vec<DirectoryGroupId> = store.read(|conn| {
        directory_groups::table
            .filter(directory_groups::directory_id.eq(&d.id))
            .select(directory_groups::id)
            .load(conn)
    })?;
    for group in groups {
        teams::unlink_dropped_group(
            store,
            &ctx.cause,
            &ctx.workspace,
            &group,
            &mut reconciliation,
        )?;
    }
    Ok(reconciliation.run(store, &ctx.cause, &ctx.workspace)?)
}

/// Stores the directory snapshot if it is newer than the stored one; returns whether it was.
fn store_directory(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    d: &Directory,
    state: &str,
    deleted: bool,
) -> Result<bool, ApplyError> {
    let stamp = Stamp::of(d.updated_at(), ctx.event_at);
    let existing = store.directory(&d.id)?;
    if !stamp.supersedes(
        existing
            .as_ref()
            .map(|e| (e.source_updated_at, e.source_event_at)),
    ) {
        return Ok(false);
    }
    // A directory stays with the organization it was first stored with (rule 19).
    let organization_id = existing.as_ref().map_or_else(
        || ctx.workspace.organization_id.clone(),
        |e| e.organization_id.clone(),
    );
    let row = directory_row(d, organization_id, state, stamp, deleted, existing.as_ref());
    store.put_directory(row);
    Ok(true)
}

/// The stored form of a directory snapshot with its stamp, keeping what the stored row had of its own.
fn directory_row(
    d: &Directory,
    organization_id: String,
    state: &str,
    stamp: Stamp,
    deleted: bool,
    existing: Option<&DirectoryRow>,
) -> DirectoryRow {
    let now = timestamp::now();
    DirectoryRow {
        id: d.id.clone(),
        organization_id,
        directory_type: d.directory_type.clone().unwrap_or_else(|| "unknown".into()),
        name: d.name.clone().unwrap_or_default(),
        state: state.to_string(),
        source_updated_at: stamp.updated_at,
        source_event_at: stamp.event_at,
        deleted_at: deleted.then_some(stamp.event_at),
        last_synced_at: existing.and_then(|e| e.last_synced_at),
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    }
}

/// Records a directory the broker lists but no webhook has announced yet (the full pull found it);
/// returns whether it was new.
pub fn attach_listed(conn: &mut DbConnection, d: &Directory) -> QueryResult<bool> {
    let Some(organization_id) = d.organization_id.clone() else {
        return Ok(false);
    };
    let known: i64 = directories::table.find(&d.id).count().get_result(conn)?;
    if known > 0 {
        return Ok(false);
    }
    // Any webhook about it is newer than this listing.
    let stamp = Stamp {
        updated_at: d.updated_at().unwrap_or_else(timestamp::now),
        event_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
    };
    let state = d.state.as_deref().unwrap_or("active");
    let row = directory_row(d, organization_id, state, stamp, false, None);
    // Two discoveries of one directory at once (a scheduled pull and an activation's) store it once.
    let inserted = crate::on_backend!(conn, |c| diesel::insert_into(directories::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted > 0)
}
