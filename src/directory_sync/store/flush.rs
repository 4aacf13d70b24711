//! Writing the working set back: each table's statements, and the order they run in at a flush.

use super::rows::{current, write_back, Change, Table, LOOKUP_CHUNK};
use super::Store;
use crate::db::models::{
    DirectoryGroupRow, DirectoryRow, DirectoryUserRow, GroupMembershipRow, MemberRow,
    TeamMemberSourceRow,
};
use crate::db::schema::{
    directories, directory_group_memberships, directory_groups, directory_users, members,
    team_member_sources as sources,
};
use crate::db::DbConnection;
use crate::directory_sync::sources::SourceKey;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text, Timestamp};
use std::collections::BTreeMap;

impl Store<'_> {
    /// Writes every pending change in bulk; returns how many rows were written.
    pub fn flush(&mut self) -> QueryResult<usize> {
        let conn = &mut *self.conn;
        let c = &mut self.c;
        let mut written = 0;
        written += write_back(conn, &mut c.directories)?;
        written += write_back(conn, &mut c.groups)?;
        written += write_back(conn, &mut c.users)?;
        written += write_back(conn, &mut c.memberships)?;
        written += write_back(conn, &mut c.members)?;
        written += write_back(conn, &mut c.sources)?;
        let audit = std::mem::take(&mut c.audit);
        written += crate::audit::insert_entries(conn, &audit)?;
        self.written += written;
        Ok(written)
    }
}

/// Makes a row type a table written back by inserting its rows, or updating the `set` columns of those
/// already there: `upserted!(row type, table, key [column: SQL type = PostgreSQL type, …], set […],
/// kept […])`, where `kept` columns are written once, and optionally `first: f` to run over the changes
/// before.
macro_rules! upserted {
    ($row:ty, $table:ident,
     key [$($key:ident: $key_type:ty = $key_pg:literal),+ $(,)?],
     set [$($changed:ident: $changed_type:ty = $changed_pg:literal),+ $(,)?],
     kept [$($kept:ident: $kept_type:ty = $kept_pg:literal),* $(,)?] $(, first: $first:path)?) => {
        impl Table for $row {
            fn write(conn: &mut DbConnection, changes: Vec<Change<Self>>) -> QueryResult<usize> {
                use diesel::upsert::excluded;
                $($first(conn, &changes)?;)?
                let rows = current(changes);
                let conflict = crate::db::on_conflict_update(
                    &[$(stringify!($key)),+],
                    &[$(stringify!($changed)),+],
                );
                crate::insert_rows!(conn, $table, &rows,
                    [$($key: $key_type = $key_pg,)+ $($changed: $changed_type = $changed_pg,)+
                     $($kept: $kept_type = $kept_pg),*],
                    &conflict,
                    |c, chunk| diesel::insert_into($table::table)
                        .values(chunk)
                        .on_conflict(($($table::$key),+))
                        .do_update()
                        .set(($($table::$changed.eq(excluded($table::$changed))),+))
                        .execute(c)?)
            }
        }
    };
}

upserted!(
    DirectoryRow,
    directories,
    key [
        id: Text = "text",
    ],
    set [
        organization_id: Text = "text",
        directory_type: Text = "text",
        name: Text = "text",
        state: Text = "text",
        source_updated_at: Timestamp = "timestamp",
        source_event_at: Timestamp = "timestamp",
        deleted_at: Nullable<Timestamp> = "timestamp",
        last_synced_at: Nullable<Timestamp> = "timestamp",
        updated_at: Timestamp = "timestamp",
    ],
    kept [
        created_at: Timestamp = "timestamp",
    ]
);

upserted!(
    DirectoryGroupRow,
    directory_groups,
    key [
        id: Text = "text",
    ],
    set [
        directory_id: Text = "text",
        idp_id: Text = "text",
        name: Text = "text",
        snapshot: Text = "text",
        source_updated_at: Timestamp = "timestamp",
        source_event_at: Timestamp = "timestamp",
        deleted_at: Nullable<Timestamp> = "timestamp",
        updated_at: Timestamp = "timestamp",
    ],
    kept [
        created_at: Timestamp = "timestamp",
    ]
);

upserted!(
    DirectoryUserRow,
    directory_users,
    key [
        id: Text = "text",
    ],
    set [
        directory_id: Text = "text",
        idp_id: Text = "text",
        email: Nullable<Text> = "text",
        first_name: Nullable<Text> = "text",
        last_name: Nullable<Text> = "text",
        state: Text = "text",
        snapshot: Text = "text",
        source_updated_at: Timestamp = "timestamp",
        source_event_at: Timestamp = "timestamp",
        ever_active: Bool = "bool",
        deleted_at: Nullable<Timestamp> = "timestamp",
        updated_at: Timestamp = "timestamp",
        role_slugs: Text = "text",
    ],
    kept [
        created_at: Timestamp = "timestamp",
    ]
);

upserted!(
    GroupMembershipRow,
    directory_group_memberships,
    key [
        group_id: Text = "text",
        user_id: Text = "text",
    ],
    set [
        is_member: Bool = "bool",
        last_event_at: Timestamp = "timestamp",
        updated_at: Timestamp = "timestamp",
        last_event_id: Nullable<Text> = "text",
    ],
    kept [
        directory_id: Text = "text",
    ]
);

upserted!(
    MemberRow,
    members,
    key [
        id: Text = "text",
    ],
    set [
        email: Text = "text",
        email_key: Text = "text",
        first_name: Nullable<Text> = "text",
        last_name: Nullable<Text> = "text",
        role: Text = "text",
        status: Text = "text",
        managed_by: Text = "text",
        directory_user_id: Nullable<Text> = "text",
        updated_at: Timestamp = "timestamp",
    ],
    kept [
        workspace_id: Text = "text",
        created_at: Timestamp = "timestamp",
    ],
    first: step_aside
);

/// Emails are unique per workspace and the rows go in one at a time: members whose email changes first
/// step aside to a key no email has, so the changes can be written in any order.
fn step_aside(conn: &mut DbConnection, changes: &[Change<MemberRow>]) -> QueryResult<()> {
    let moving: Vec<&str> = changes
        .iter()
        .filter_map(|c| match (&c.stored, &c.current) {
            (Some(stored), Some(now)) if stored.email_key != now.email_key => Some(now.id.as_str()),
            _ => None,
        })
        .collect();
    for chunk in moving.chunks(LOOKUP_CHUNK) {
        diesel::update(members::table.filter(members::id.eq_any(chunk)))
            .set(members::email_key.eq(diesel::dsl::sql::<Text>("'(changing) ' || id")))
            .execute(conn)?;
    }
    Ok(())
}

impl Table for TeamMemberSourceRow {
    fn write(conn: &mut DbConnection, changes: Vec<Change<Self>>) -> QueryResult<usize> {
        let mut leaving: BTreeMap<SourceKey, Vec<String>> = BTreeMap::new();
        let mut joining: Vec<TeamMemberSourceRow> = Vec::new();
        for change in changes {
            match (change.stored, change.current) {
                (Some(gone), None) => leaving
                    .entry(SourceKey::of(&gone))
                    .or_default()
                    .push(gone.member_id),
                (None, Some(new)) => joining.push(new),
                // Taken away and given back: the stored row stands.
                _ => {}
            }
        }
        let mut written = 0;
        for (key, members) in &leaving {
            for chunk in members.chunks(LOOKUP_CHUNK) {
                written += diesel::delete(
                    sources::table
                        .filter(sources::team_id.eq(&key.team_id))
                        .filter(sources::source_type.eq(key.source_type()))
                        .filter(sources::group_id.eq(key.group_id()))
                        .filter(sources::member_id.eq_any(chunk)),
                )
                .execute(conn)?;
            }
        }
        written += crate::insert_rows!(
            conn,
            team_member_sources,
            &joining,
            [
                team_id: Text = "text",
                member_id: Text = "text",
                source_type: Text = "text",
                group_id: Text = "text",
                created_at: Timestamp = "timestamp",
            ],
            "ON CONFLICT DO NOTHING",
            |c, chunk| diesel::insert_or_ignore_into(sources::table)
                .values(chunk)
                .execute(c)?
        )?;
        Ok(written)
    }
}
