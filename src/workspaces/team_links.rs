//! The directory groups linked to a team, as admins link and unlink them (rules 8–9); what a link does
//! to the team's members is [`crate::directory_sync::teams`]'s.

use super::teams::{load, TeamError};
use crate::access::Caller;
use crate::db::models::TeamLinkRow;
use crate::db::schema::{directory_groups, team_links};
use crate::db::{Database, DbConnection};
use crate::directory_sync::teams::{self as team_rules, UnlinkMembers, UnlinkPreview};
use crate::ids::{DirectoryGroupId, DirectoryId};
use crate::lists::{List, Page};
use crate::workos::timestamp::time_json;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// A directory group linked to a team.
#[derive(Serialize, ToSchema)]
pub struct TeamLink {
    team_id: String,
    group_id: String,
    name: String,
    directory_id: String,
    #[schema(format = DateTime)]
    linked_at: String,
}

/// A new link, with how many members it brought.
#[derive(Serialize, ToSchema)]
pub struct CreatedTeamLink {
    #[serde(flatten)]
    link: TeamLink,
    /// Active members of the group added to the team.
    members_added: usize,
}

/// A link as the API shows it, with its group's name and directory.
fn linked_group(conn: &mut DbConnection, link: &TeamLinkRow) -> Result<TeamLink, TeamError> {
    let group: Option<(String, DirectoryId)> = directory_groups::table
        .find(&link.group_id)
        .select((directory_groups::name, directory_groups::directory_id))
        .first(conn)
        .optional()?;
    let (name, directory_id) = group.unzip();
    Ok(TeamLink {
        team_id: link.team_id.clone(),
        group_id: link.group_id.to_string(),
        name: name.unwrap_or_default(),
        directory_id: directory_id.map(String::from).unwrap_or_default(),
        linked_at: time_json(&link.created_at),
    })
}

/// A page of the groups linked to a team, in group id order.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    page: &Page,
) -> Result<List<TeamLink>, TeamError> {
    db.read(|conn| {
        load(conn, caller, workspace_id, team_id)?;
        let mut q = team_links::table
            .filter(team_links::team_id.eq(team_id))
            .order(team_links::group_id)
            .limit(page.limit + 1)
            .select(TeamLinkRow::as_select())
            .into_boxed();
        if let Some(after) = &page.after {
            q = q.filter(team_links::group_id.gt(after.clone()));
        }
        let list = List::from_overfetch(q.load(conn)?, page, |l: &TeamLinkRow| {
            l.group_id.to_string()
        });
        list.try_map(|l| linked_group(conn, l))
    })
}

/// Links a directory group of the workspace to a team, which takes in the group's active members.
pub fn link(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    group_id: &DirectoryGroupId,
) -> Result<CreatedTeamLink, TeamError> {
    let created = db.write_workspace(workspace_id, |conn| -> Result<_, TeamError> {
        let (workspace, team) = load(conn, caller, workspace_id, team_id)?;
        let added = team_rules::link_group(conn, &caller.cause(), &workspace, &team.id, group_id)?;
        let link = team_links::table
            .find((&team.id, group_id))
            .select(TeamLinkRow::as_select())
            .first(conn)?;
        Ok(CreatedTeamLink {
            link: linked_group(conn, &link)?,
            members_added: added,
        })
    })?;
    // A large group's members just became team sources, which the engine looks up by lists of ids.
    if created.members_added > 0 {
        db.refresh_outgrown_statistics();
    }
    Ok(created)
}

/// Unlinks a directory group from a team; `members` says what happens to those it brought in.
pub fn unlink(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    group_id: &DirectoryGroupId,
    members: UnlinkMembers,
) -> Result<(), TeamError> {
    db.write_workspace(workspace_id, |conn| {
        let (workspace, team) = load(conn, caller, workspace_id, team_id)?;
        team_rules::unlink_group(
            conn,
            &caller.cause(),
            &workspace,
            &team.id,
            group_id,
            members,
        )?;
        Ok(())
    })
}

/// What unlinking a directory group from a team would do to its members, changing nothing.
pub fn unlink_preview(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    team_id: &str,
    group_id: &DirectoryGroupId,
) -> Result<UnlinkPreview, TeamError> {
    db.read(|conn| {
        let (_, team) = load(conn, caller, workspace_id, team_id)?;
        Ok(team_rules::unlink_preview(conn, &team.id, group_id)?)
    })
}
