//! Directory groups.

use super::Store;
use crate::db::models::DirectoryGroupRow;
use crate::db::schema::directory_groups;
use crate::ids::DirectoryGroupId;
use diesel::prelude::*;

looked_up!(DirectoryGroupRow, id: DirectoryGroupId, groups, directory_groups);

impl Store<'_> {
    pub fn group(&mut self, id: &DirectoryGroupId) -> QueryResult<Option<DirectoryGroupRow>> {
        self.row(id)
    }

    pub fn put_group(&mut self, row: DirectoryGroupRow) {
        self.c.groups.put(row);
    }

    pub fn prefetch_groups(&mut self, ids: &[&DirectoryGroupId]) -> QueryResult<()> {
        self.prefetch::<DirectoryGroupRow, _>(ids)
    }
}
