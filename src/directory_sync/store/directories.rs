//! Workspaces (read only here, by organization) and directories.

use super::Store;
use crate::db::models::{DirectoryRow, WorkspaceRow};
use crate::db::schema::{directories, workspaces};
use crate::ids::DirectoryId;
use diesel::prelude::*;

looked_up!(WorkspaceRow, organization_id: String, workspaces, workspaces);
looked_up!(DirectoryRow, id: DirectoryId, directories, directories);

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
        self.prefetch::<WorkspaceRow, _>(organization_ids)
    }

    pub fn directory(&mut self, id: &DirectoryId) -> QueryResult<Option<DirectoryRow>> {
        self.row(id)
    }

    pub fn put_directory(&mut self, row: DirectoryRow) {
        self.c.directories.put(row);
    }

    pub fn prefetch_directories(&mut self, ids: &[&DirectoryId]) -> QueryResult<()> {
        self.prefetch::<DirectoryRow, _>(ids)
    }
}
