//! A workspace's teams as admins create, rename and delete them, and the members they put in by hand
//! (a `manual` source). Why each member is in a team, and what directory groups add, is
//! [`crate::directory_sync::teams`]'s.

use super::{visible, WorkspaceError};
use crate::access::Caller;
use crate::audit::{self, AuditRecord};
use crate::db::models::{MemberRow, TeamMemberSourceRow, TeamRow, WorkspaceRow};
use crate::db::schema::{
    directory_groups, members, team_links, team_member_sources as sources, teams,
};
use crate::db::{Database, DbConnection, DbError};
use crate::directory_sync::members::MemberGroup;
use crate::directory_sync::teams::{
    self as team_rules, LinkError, ShownSource, TeamMembershipSource,
};
use crate::domain::MemberStatus;
use crate::ids::new_id;
use crate::lists::{CountedList, List, Page};
use crate::tokens::check_name;
use crate::workos::timestamp::{self, time_json};
use crate::workspaces::members::name_or_email_contains;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Why a change to a team, or a look at one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// No such team in the workspace.
    #[error("team not found")]
    NotFound,
    /// The name given is not one; the text says why.
    #[error("{0}")]
    InvalidName(String),
    #[error("another team of this workspace has that name")]
    NameTaken,
    /// No such member in the workspace.
    #[error("member not found")]
    MemberNotFound,
    #[error("a deprovisioned member cannot join a team")]
    MemberDeprovisioned,
    /// The member has no `manual` source in the team.
    #[error("manual team membership not found")]
    NoManualMembership,
    /// A directory group cannot be linked or unlinked (rules 8–9).
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(TeamError);

/// A team.
#[derive(Serialize, ToSchema)]
pub struct Team {
    id: String,
    workspace_id: String,
    name: String,
    member_count: i64,
    linked_group_ids: Vec<String>,
    /// The linked directory groups with their names, in name order.
    linked_groups: Vec<MemberGroup>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A member of a team and why they are in it.
#[derive(Serialize, ToSchema)]
pub struct TeamMember {
    member_id: String,
    email: String,
    #[schema(required = true)]
    first_name: Option<String>,
    #[schema(required = true)]
    last_name: Option<String>,
    #[schema(value_type = crate::domain::MemberStatus, inline)]
    status: MemberStatus,
    sources: Vec<ShownSource>,
}

/// A team as the API shows it.
fn shown(conn: &mut DbConnection, team: &TeamRow) -> Result<Team, TeamError> {
    let member_count: i64 = sources::table
        .filter(sources::team_id.eq(&team.id))
        .select(diesel::dsl::count(sources::member_id).aggregate_distinct())
        .first(conn)?;
    let linked_group_ids: Vec<String> = team_links::table
        .filter(team_links::team_id.eq(&team.id))
        .order(team_links::group_id)
        .select(team_links::group_id)
        .load(conn)?;
    let linked_groups: Vec<(String, String)> = team_links::table
        .inner_join(directory_groups::table.on(directory_groups::id.eq(team_links::group_id)))
        .filter(team_links::team_id.eq(&team.id))
        .order((directory_groups::name, directory_groups::id))
        .select((directory_groups::id, directory_groups::name))
        .load(conn)?;
    let linked_groups = linked_groups
        .into_iter()
        .map(|(id, name)| MemberGroup { id, name })
        .collect();
    Ok(Team {
        id: team.id.clone(),
        workspace_id: team.workspace_id.clone(),
        name: team.name.clone(),
        member_count,
        linked_group_ids,
        linked_groups,
        created_at: time_json(&team.created_at),
        updated_at: time_json(&team.updated_at),
    })
}

/// Loads a team of a workspace the caller may see, and the workspace, else not found.
pub(super) fn load(
    conn: &mut DbConnection,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
) -> Result<(WorkspaceRow, TeamRow), TeamError> {
    let workspace = visible(conn, caller, workspace_id)?;
    let team = teams::table
        .find(team_id)
        .filter(teams::workspace_id.eq(workspace_id))
        .select(TeamRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(TeamError::NotFound)?;
    Ok((workspace, team))
}

/// A team's name as given and the key that keeps names unique per workspace, case-insensitively;
/// refused when another team (but `except`) has it.
fn check_team_name(
    conn: &mut DbConnection,
    workspace_id: &str,
    name: &str,
    except: Option<&str>,
) -> Result<(String, String), TeamError> {
    let name = check_name(name).map_err(TeamError::InvalidName)?;
    let key = name.to_lowercase();
    let mut q = teams::table
        .filter(teams::workspace_id.eq(workspace_id))
        .filter(teams::name_key.eq(key.clone()))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(teams::id.ne(id.to_string()));
    }
    let taken: i64 = q.count().get_result(conn)?;
    if taken > 0 {
        return Err(TeamError::NameTaken);
    }
    Ok((name, key))
}

fn audit_team(
    conn: &mut DbConnection,
    caller: &Caller,
    action: &str,
    team: &TeamRow,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), TeamError> {
    audit::record(
        conn,
        &caller.cause(),
        AuditRecord {
            workspace_id: &team.workspace_id,
            action,
            subject_type: "team",
            subject_id: &team.id,
            before,
            after,
        },
    )?;
    Ok(())
}

/// A page of the workspace's teams, in id order.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    page: &Page,
) -> Result<List<Team>, TeamError> {
    db.read(|conn| {
        visible(conn, caller, workspace_id)?;
        let mut q = teams::table
            .filter(teams::workspace_id.eq(workspace_id))
            .order(teams::id)
            .limit(page.limit + 1)
            .select(TeamRow::as_select())
            .into_boxed();
        if let Some(after) = &page.after {
            q = q.filter(teams::id.gt(after.clone()));
        }
        let list = List::from_overfetch(q.load(conn)?, page, |t: &TeamRow| t.id.clone());
        list.try_map(|t| shown(conn, t))
    })
}

/// Creates a team; its name must be free in the workspace.
pub fn create(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    name: &str,
) -> Result<Team, TeamError> {
    db.write_workspace(workspace_id, |conn| {
        visible(conn, caller, workspace_id)?;
        let (name, name_key) = check_team_name(conn, workspace_id, name, None)?;
        let now = timestamp::now();
        let team = TeamRow {
            id: new_id("team"),
            workspace_id: workspace_id.to_string(),
            name,
            name_key,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(teams::table)
            .values(&team)
            .execute(conn)?;
        let created = shown(conn, &team)?;
        audit_team(
            conn,
            caller,
            "team.created",
            &team,
            None,
            Some(json!(created)),
        )?;
        Ok(created)
    })
}

/// A team of a workspace the caller may see.
pub fn get(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
) -> Result<Team, TeamError> {
    db.read(|conn| {
        let (_, team) = load(conn, caller, workspace_id, team_id)?;
        shown(conn, &team)
    })
}

/// Renames a team; the new name must be free in the workspace.
pub fn rename(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    name: &str,
) -> Result<Team, TeamError> {
    db.write_workspace(workspace_id, |conn| {
        let (_, before) = load(conn, caller, workspace_id, team_id)?;
        let (name, name_key) = check_team_name(conn, workspace_id, name, Some(team_id))?;
        let after = TeamRow {
            name,
            name_key,
            updated_at: timestamp::now(),
            ..before.clone()
        };
        diesel::update(teams::table.find(team_id))
            .set(&after)
            .execute(conn)?;
        audit_team(
            conn,
            caller,
            "team.renamed",
            &after,
            Some(json!({ "name": before.name })),
            Some(json!({ "name": after.name })),
        )?;
        shown(conn, &after)
    })
}

/// Deletes a team, its members' sources and its links.
pub fn delete(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
) -> Result<(), TeamError> {
    db.write_workspace(workspace_id, |conn| {
        let (_, row) = load(conn, caller, workspace_id, team_id)?;
        let deleted = shown(conn, &row)?;
        diesel::delete(sources::table.filter(sources::team_id.eq(team_id))).execute(conn)?;
        diesel::delete(team_links::table.filter(team_links::team_id.eq(team_id))).execute(conn)?;
        diesel::delete(teams::table.find(team_id)).execute(conn)?;
        audit_team(
            conn,
            caller,
            "team.deleted",
            &row,
            Some(json!(deleted)),
            None,
        )
    })
}

/// Team members with their sources, for the given member ids, in id order.
fn team_members(
    conn: &mut DbConnection,
    team_id: &str,
    member_ids: &[String],
) -> Result<Vec<TeamMember>, TeamError> {
    let mut rows: BTreeMap<String, (Option<MemberRow>, Vec<ShownSource>)> = member_ids
        .iter()
        .map(|id| (id.clone(), (None, Vec::new())))
        .collect();
    for chunk in member_ids.chunks(500) {
        let found: Vec<MemberRow> = members::table
            .filter(members::id.eq_any(chunk))
            .select(MemberRow::as_select())
            .load(conn)?;
        for member in found {
            if let Some(entry) = rows.get_mut(&member.id) {
                entry.0 = Some(member);
            }
        }
        let found: Vec<TeamMemberSourceRow> = sources::table
            .filter(sources::team_id.eq(team_id))
            .filter(sources::member_id.eq_any(chunk))
            .order((sources::source_type.desc(), sources::group_id))
            .select(TeamMemberSourceRow::as_select())
            .load(conn)?;
        for source in found {
            if let Some(entry) = rows.get_mut(&source.member_id) {
                entry.1.push(TeamMembershipSource::of(&source).shown());
            }
        }
    }
    Ok(rows
        .into_values()
        .filter_map(|(member, sources)| {
            let m = member?;
            Some(TeamMember {
                member_id: m.id,
                email: m.email,
                first_name: m.first_name,
                last_name: m.last_name,
                status: m.status,
                sources,
            })
        })
        .collect())
}

/// A page of the ids of a team's members whose name or email holds `search` (all when `None`), in id
/// order, with how many there are.
fn page_of_team_members(
    conn: &mut DbConnection,
    team_id: &str,
    search: Option<&str>,
    page: &Page,
) -> Result<CountedList<String>, TeamError> {
    let matching = |conn: &DbConnection| {
        let mut q = sources::table
            .filter(sources::team_id.eq(team_id))
            .into_boxed();
        if let Some(text) = search {
            q = q.filter(
                sources::member_id.eq_any(
                    members::table
                        .filter(name_or_email_contains(conn, text))
                        .select(members::id),
                ),
            );
        }
        q
    };
    let total: i64 = matching(conn)
        .select(diesel::dsl::count(sources::member_id).aggregate_distinct())
        .first(conn)?;
    let mut q = matching(conn)
        .select(sources::member_id)
        .distinct()
        .order(sources::member_id)
        .limit(page.limit + 1);
    if let Some(after) = &page.after {
        q = q.filter(sources::member_id.gt(after.clone()));
    }
    Ok(List::from_overfetch(q.load(conn)?, page, |m: &String| m.clone()).counted(total))
}

/// A page of a team's members and why each is in it, in member id order; `search` as for members.
pub fn list_members(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    search: Option<&str>,
    page: &Page,
) -> Result<CountedList<TeamMember>, TeamError> {
    db.read(|conn| {
        load(conn, caller, workspace_id, team_id)?;
        let ids = page_of_team_members(conn, team_id, search, page)?;
        let data = team_members(conn, team_id, &ids.data)?;
        Ok(CountedList {
            data,
            list_metadata: ids.list_metadata,
        })
    })
}

/// A member put in a team by hand, and whether the `manual` source is new (else it was there).
pub struct AddedTeamMember {
    pub member: TeamMember,
    pub added: bool,
}

/// Puts an active member in a team by hand (a `manual` source); one already there by hand stays.
pub fn add_member(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    member_id: &str,
) -> Result<AddedTeamMember, TeamError> {
    db.write_workspace(workspace_id, |conn| {
        let (workspace, team) = load(conn, caller, workspace_id, team_id)?;
        let member: MemberRow = members::table
            .find(member_id)
            .filter(members::workspace_id.eq(workspace_id))
            .select(MemberRow::as_select())
            .first(conn)
            .optional()?
            .ok_or(TeamError::MemberNotFound)?;
        if member.status != MemberStatus::Active {
            return Err(TeamError::MemberDeprovisioned);
        }
        let manual = TeamMembershipSource::Manual.row(&team.id, &member.id);
        let existing: i64 = sources::table
            .find((
                &manual.team_id,
                &manual.member_id,
                &manual.source_type,
                &manual.group_id,
            ))
            .count()
            .get_result(conn)?;
        if existing == 0 {
            team_rules::add_sources(
                conn,
                &caller.cause(),
                &workspace.id,
                std::slice::from_ref(&manual),
            )?;
        }
        let shown = team_members(conn, &team.id, std::slice::from_ref(&member.id))?;
        let shown = shown.into_iter().next().ok_or(TeamError::MemberNotFound)?;
        Ok(AddedTeamMember {
            member: shown,
            added: existing == 0,
        })
    })
}

/// Takes away a member's `manual` source in a team; they stay while a linked group still puts them
/// there.
pub fn remove_member(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    member_id: &str,
) -> Result<(), TeamError> {
    db.write_workspace(workspace_id, |conn| {
        let (workspace, team) = load(conn, caller, workspace_id, team_id)?;
        if !team_rules::remove_source(
            conn,
            &caller.cause(),
            &workspace.id,
            &team.id,
            member_id,
            &TeamMembershipSource::Manual,
        )? {
            return Err(TeamError::NoManualMembership);
        }
        Ok(())
    })
}
