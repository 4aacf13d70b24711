//! `dsync.user.created`, `.updated` and `.deleted`: Rollcall's copy of each directory user (rules 3, 6).

use super::{members, ApplyContext, ApplyError, Effects, Stamp};
use crate::db::models::DirectoryUserRow;
use crate::db::schema::directory_users;
use crate::db::DbConnection;
use crate::workos::events::DirectoryUser;
use crate::workos::timestamp;
use diesel::prelude::*;

/// Stores a user snapshot if it is newer than the stored one (a deletion leaves a tombstone), then brings
/// the user's member in line.
///
/// A stale snapshot changes nothing, except that an active one records that the user was once active: such
/// a user has a member whatever order the events came in.
pub fn apply_user_snapshot(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    user: &DirectoryUser,
    deleted: bool,
    effects: &mut Effects,
) -> Result<(), ApplyError> {
    let stamp = Stamp::of(user.updated_at(), ctx.event_at);
    let email = user.primary_email();
    let active_with_email = !deleted && user.is_active() && email.is_some();
    let existing: Option<DirectoryUserRow> = directory_users::table
        .find(&user.id)
        .select(DirectoryUserRow::as_select())
        .first(conn)
        .optional()?;
    let now = timestamp::now();
    let row = match existing {
        Some(existing)
            if !stamp.supersedes(Some((existing.source_updated_at, existing.source_event_at))) =>
        {
            if existing.ever_active || !active_with_email {
                return Ok(());
            }
            diesel::update(directory_users::table.find(&user.id))
                .set((
                    directory_users::ever_active.eq(true),
                    directory_users::updated_at.eq(now),
                ))
                .execute(conn)?;
            DirectoryUserRow {
                ever_active: true,
                ..existing
            }
        }
        existing => {
            let mut row = user_row(user, stamp, deleted, now);
            if let Some(existing) = &existing {
                row.ever_active |= existing.ever_active;
                row.created_at = existing.created_at;
            }
            if existing.is_some() {
                diesel::update(directory_users::table.find(&user.id))
                    .set(&row)
                    .execute(conn)?;
            } else {
                diesel::insert_into(directory_users::table)
                    .values(&row)
                    .execute(conn)?;
            }
            row
        }
    };
    members::sync_for_user(conn, ctx, &row, effects)
}

/// The stored row of a user snapshot with this stamp, as first stored at `now`.
pub fn user_row(
    user: &DirectoryUser,
    stamp: Stamp,
    deleted: bool,
    now: timestamp::Timestamp,
) -> DirectoryUserRow {
    let email = user.primary_email();
    DirectoryUserRow {
        id: user.id.clone(),
        directory_id: user.directory_id.clone(),
        idp_id: user.idp_id.clone().unwrap_or_default(),
        email: email.map(str::to_string),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        state: user.normalized_state().to_string(),
        snapshot: serde_json::to_string(user).unwrap_or_default(),
        source_updated_at: stamp.updated_at,
        source_event_at: stamp.event_at,
        ever_active: !deleted && user.is_active() && email.is_some(),
        deleted_at: deleted.then_some(stamp.event_at),
        created_at: now,
        updated_at: now,
    }
}
