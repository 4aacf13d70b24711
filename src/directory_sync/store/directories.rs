//! Workspaces (read only here, by organization) and directories.

use super::Store;
use crate::db::models::{DirectoryRow, WorkspaceRow};
use crate::db::schema::{directories, workspaces};
use diesel::prelude::*;

looked_up!(WorkspaceRow, organization_id, workspaces, workspaces);
looked_up!(DirectoryRow, id, directories, directories);

impl Store<'_> {
    /// The workspace of a broker organization.
    pub fn workspace_of_organization(
        &mut self,
        organization_id: &str,
    ) -> QueryResult<Option<WorkspaceRow>> {
        self.row(organization_id)
    }

    /// Loads the workspaces of these organizations.
    pub fn prefetch_workspaces(&mut self, organization_ids: &[&str]) -> QueryResult<()> {
        self.prefetch::<WorkspaceRow>(organization_ids)
    }

    pub fn directory(&mut self, id: &str) -> QueryResult<Option<DirectoryRow>> {
        self.row(id)
    }

    pub fn put_directory(&mut self, row: DirectoryRow) {
        self.c.directories.put(row);
    }

    pub fn prefetch_directories(&mut self, ids: &[&str]) -> QueryResult<()> {
        self.prefetch::<DirectoryRow>(ids)
    }
}
