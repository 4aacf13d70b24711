//! Team links, role mappings and role slug tables: read whole per workspace, and written at once (once everything pending
//! is written), each change through its own method, since an admin's edit or a group's deletion is all
//! that changes them.

use super::Store;
use crate::db::models::{DirectoryRoleMappingRow, RoleMappingRow, TeamLinkRow};
use crate::db::schema::{directory_role_mappings, role_mappings, team_links, workspaces};
use crate::domain::RoleSource;
use crate::ids::DirectoryGroupId;
use diesel::prelude::*;

impl Store<'_> {
    /// The workspace's `(group, team)` links.
    pub fn team_links(
        &mut self,
        workspace_id: &str,
    ) -> QueryResult<Vec<(DirectoryGroupId, String)>> {
        if let Some(links) = self.c.team_links.get(workspace_id) {
            return Ok(links.clone());
        }
        let links: Vec<(DirectoryGroupId, String)> = team_links::table
            .filter(team_links::workspace_id.eq(workspace_id))
            .select((team_links::group_id, team_links::team_id))
            .load(self.db()?)?;
        self.c
            .team_links
            .insert(workspace_id.to_string(), links.clone());
        Ok(links)
    }

    /// The workspace's role mappings, by group.
    pub fn role_mappings(&mut self, workspace_id: &str) -> QueryResult<Vec<RoleMappingRow>> {
        if let Some(mappings) = self.c.role_mappings.get(workspace_id) {
            return Ok(mappings.clone());
        }
        let mappings: Vec<RoleMappingRow> = role_mappings::table
            .filter(role_mappings::workspace_id.eq(workspace_id))
            .order(role_mappings::group_id)
            .select(RoleMappingRow::as_select())
            .load(self.db()?)?;
        self.c
            .role_mappings
            .insert(workspace_id.to_string(), mappings.clone());
        Ok(mappings)
    }

    /// The workspace's table of role slugs to roles, by slug.
    pub fn directory_roles(
        &mut self,
        workspace_id: &str,
    ) -> QueryResult<Vec<DirectoryRoleMappingRow>> {
        if let Some(table) = self.c.directory_roles.get(workspace_id) {
            return Ok(table.clone());
        }
        let table: Vec<DirectoryRoleMappingRow> = directory_role_mappings::table
            .filter(directory_role_mappings::workspace_id.eq(workspace_id))
            .order(directory_role_mappings::slug)
            .select(DirectoryRoleMappingRow::as_select())
            .load(self.db()?)?;
        self.c
            .directory_roles
            .insert(workspace_id.to_string(), table.clone());
        Ok(table)
    }

    /// Replaces the workspace's table of role slugs; returns the one it had.
    pub fn replace_directory_roles(
        &mut self,
        workspace_id: &str,
        rows: &[DirectoryRoleMappingRow],
    ) -> QueryResult<Vec<DirectoryRoleMappingRow>> {
        let before = self.directory_roles(workspace_id)?;
        let conn = self.db()?;
        diesel::delete(
            directory_role_mappings::table
                .filter(directory_role_mappings::workspace_id.eq(workspace_id)),
        )
        .execute(conn)?;
        crate::on_backend!(conn, |c| diesel::insert_into(
            directory_role_mappings::table
        )
        .values(rows)
        .execute(c))?;
        self.c.directory_roles.remove(workspace_id);
        Ok(before)
    }

    /// Sets what decides the workspace's directory members' roles.
    pub fn set_role_source(
        &mut self,
        workspace_id: &str,
        source: RoleSource,
        default_slug: &str,
    ) -> QueryResult<()> {
        diesel::update(workspaces::table.find(workspace_id))
            .set((
                workspaces::role_source.eq(source),
                workspaces::default_role_slug.eq(default_slug),
                workspaces::updated_at.eq(crate::workos::timestamp::now()),
            ))
            .execute(self.db()?)?;
        Ok(())
    }

    /// Whether a group is linked to a team.
    pub fn is_linked(&mut self, team_id: &str, group_id: &DirectoryGroupId) -> QueryResult<bool> {
        let found: i64 = team_links::table
            .find((team_id, group_id))
            .count()
            .get_result(self.db()?)?;
        Ok(found > 0)
    }

    /// Links a group to a team.
    pub fn add_team_link(&mut self, link: &TeamLinkRow) -> QueryResult<()> {
        diesel::insert_into(team_links::table)
            .values(link)
            .execute(self.db()?)?;
        self.c.team_links.remove(&link.workspace_id);
        Ok(())
    }

    /// Unlinks a group from a team of the workspace; returns whether they were linked.
    pub fn remove_team_link(
        &mut self,
        workspace_id: &str,
        team_id: &str,
        group_id: &DirectoryGroupId,
    ) -> QueryResult<bool> {
        let removed =
            diesel::delete(team_links::table.find((team_id, group_id))).execute(self.db()?)?;
        self.c.team_links.remove(workspace_id);
        Ok(removed > 0)
    }

    /// Unlinks a group from every team of the workspace; returns the teams it was linked to.
    pub fn remove_group_links(
        &mut self,
        workspace_id: &str,
        group_id: &DirectoryGroupId,
    ) -> QueryResult<Vec<String>> {
        let of_group = team_links::table
            .filter(team_links::group_id.eq(group_id))
            .filter(team_links::workspace_id.eq(workspace_id));
        let conn = self.db()?;
        let teams: Vec<String> = of_group.select(team_links::team_id).load(conn)?;
        diesel::delete(of_group).execute(conn)?;
        self.c.team_links.remove(workspace_id);
        Ok(teams)
    }

    /// Replaces the workspace's role mappings; returns those it had.
    pub fn replace_role_mappings(
        &mut self,
        workspace_id: &str,
        rows: &[RoleMappingRow],
    ) -> QueryResult<Vec<RoleMappingRow>> {
        let before = self.role_mappings(workspace_id)?;
        let conn = self.db()?;
        diesel::delete(role_mappings::table.filter(role_mappings::workspace_id.eq(workspace_id)))
            .execute(conn)?;
        crate::on_backend!(conn, |c| diesel::insert_into(role_mappings::table)
            .values(rows)
            .execute(c))?;
        self.c.role_mappings.remove(workspace_id);
        Ok(before)
    }

    /// Removes a group's role mapping in the workspace; returns it, if there was one.
    pub fn remove_role_mapping(
        &mut self,
        workspace_id: &str,
        group_id: &DirectoryGroupId,
    ) -> QueryResult<Option<RoleMappingRow>> {
        let conn = self.db()?;
        let existing: Option<RoleMappingRow> = role_mappings::table
            .find((workspace_id, group_id))
            .select(RoleMappingRow::as_select())
            .first(conn)
            .optional()?;
        if existing.is_some() {
            diesel::delete(role_mappings::table.find((workspace_id, group_id))).execute(conn)?;
            self.c.role_mappings.remove(workspace_id);
        }
        Ok(existing)
    }
}
