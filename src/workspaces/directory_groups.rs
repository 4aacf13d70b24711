//! The directory groups of a workspace's directories, as an admin picks them to link to teams or map to
//! roles: each with its member count and the teams it is linked to.

use super::members::like_contains;
use super::{visible, WorkspaceError};
use crate::access::Caller;
use crate::db::models::DirectoryGroupRow;
use crate::db::schema::{directory_group_memberships as memberships, directory_groups, team_links};
use crate::db::Database;
use crate::directory_sync::teams::workspace_groups;
use crate::lists::{List, Page};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// A directory group of the workspace.
#[derive(Serialize, ToSchema)]
pub struct DirectoryGroup {
    id: String,
    name: String,
    directory_id: String,
    member_count: i64,
    linked_team_ids: Vec<String>,
}

/// A page of the workspace's groups in id order, those whose name holds `search` (lower case) only.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    page: &Page,
    search: Option<&str>,
) -> Result<List<DirectoryGroup>, WorkspaceError> {
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let mut q = workspace_groups(&workspace)
            .order(directory_groups::id)
            .limit(page.limit + 1)
            .select(DirectoryGroupRow::as_select());
        if let Some(after) = &page.after {
            q = q.filter(directory_groups::id.gt(after.clone()));
        }
        if let Some(text) = search {
            q = q.filter(like_contains("lower(directory_groups.name)", text));
        }
        let list = List::from_overfetch(q.load(conn)?, page, |g: &DirectoryGroupRow| {
            g.id.to_string()
        });
        list.try_map(|group| {
            let member_count: i64 = memberships::table
                .filter(memberships::group_id.eq(&group.id))
                .filter(memberships::is_member.eq(true))
                .count()
                .get_result(conn)?;
            let linked_team_ids: Vec<String> = team_links::table
                .filter(team_links::group_id.eq(&group.id))
                .filter(team_links::workspace_id.eq(&workspace.id))
                .order(team_links::team_id)
                .select(team_links::team_id)
                .load(conn)?;
            Ok::<_, WorkspaceError>(DirectoryGroup {
                id: group.id.to_string(),
                name: group.name.clone(),
                directory_id: group.directory_id.to_string(),
                member_count,
                linked_team_ids,
            })
        })
    })
}
