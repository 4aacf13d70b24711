//! Directory users, and who shares an `idp_id` in a directory (one person, perhaps under several ids).

use super::Store;
use crate::db::models::DirectoryUserRow;
use crate::db::schema::directory_users;
use crate::db::DbConnection;
use crate::ids::{DirectoryId, DirectoryUserId};
use diesel::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

looked_up!(DirectoryUserRow, id: DirectoryUserId, users, directory_users);

/// The `(directory, idp_id)` pair a user is found by.
fn idp_pair(user: &DirectoryUserRow) -> (DirectoryId, String) {
    (user.directory_id.clone(), user.idp_id.clone())
}

impl Store<'_> {
    pub fn user(&mut self, id: &DirectoryUserId) -> QueryResult<Option<DirectoryUserRow>> {
        self.row(id)
    }

    pub fn prefetch_users(&mut self, ids: &[&DirectoryUserId]) -> QueryResult<()> {
        self.prefetch::<DirectoryUserRow, _>(ids)
    }

    /// Users a query finds, as the store holds them.
    pub fn load_users(
        &mut self,
        query: impl FnOnce(&mut DbConnection) -> QueryResult<Vec<DirectoryUserRow>>,
    ) -> QueryResult<Vec<DirectoryUserRow>> {
        self.load(query)
    }

    /// Stores a user's row (new or changed).
    pub fn put_user(&mut self, row: DirectoryUserRow) {
        let before = self.c.users.row(&row.id).map(|b| idp_pair(&b));
        let after = idp_pair(&row);
        self.c
            .users_by_idp
            .moved(before.as_ref(), Some(&after), &row.id);
        self.c.users.put(row);
    }

    /// Every user of the directory with this `idp_id`: one person, perhaps under several broker ids.
    pub fn users_with_idp(
        &mut self,
        directory_id: &DirectoryId,
        idp_id: &str,
    ) -> QueryResult<Vec<DirectoryUserRow>> {
        let pair = (directory_id.clone(), idp_id.to_string());
        if !self.c.users_by_idp.knows(&pair) {
            self.prefetch_users_with_idp(&[(directory_id, idp_id)])?;
        }
        Ok(self
            .c
            .users_by_idp
            .keys(&pair)
            .iter()
            .filter_map(|id| self.c.users.row(id))
            .collect())
    }

    /// Loads every user with these `(directory, idp_id)` pairs.
    pub fn prefetch_users_with_idp(&mut self, pairs: &[(&DirectoryId, &str)]) -> QueryResult<()> {
        let wanted: BTreeSet<(DirectoryId, String)> = pairs
            .iter()
            .map(|(d, i)| ((*d).clone(), i.to_string()))
            .filter(|pair| !self.c.users_by_idp.knows(pair))
            .collect();
        // Through the index on (directory, idp_id): one directory's pairs at a time.
        let mut by_directory: BTreeMap<&DirectoryId, Vec<String>> = BTreeMap::new();
        for (directory, idp_id) in &wanted {
            by_directory
                .entry(directory)
                .or_default()
                .push(idp_id.clone());
        }
        for (directory, idp_ids) in by_directory {
            let found = self.look_up(&idp_ids, |conn, chunk| {
                directory_users::table
                    .filter(directory_users::directory_id.eq(directory))
                    .filter(directory_users::idp_id.eq_any(chunk))
                    .select(DirectoryUserRow::as_select())
                    .load(conn)
            })?;
            for idp_id in idp_ids {
                self.c.users_by_idp.loaded((directory.clone(), idp_id));
            }
            for row in &found {
                self.c.users_by_idp.insert(&idp_pair(row), row.id.clone());
            }
            self.remember_all(found);
        }
        Ok(())
    }
}
