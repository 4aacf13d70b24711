//! Members, the members linked to each directory user, and who holds each email in a workspace.

use super::{Cached, Store};
use crate::db::models::MemberRow;
use crate::db::schema::members;
use crate::db::DbConnection;
use crate::ids::DirectoryUserId;
use diesel::prelude::*;

looked_up!(MemberRow, id: String, members, members, remembered: email_is_theirs);

/// Emails are unique per workspace: nobody else holds a member's email key.
fn email_is_theirs(cached: &mut Cached, member: &MemberRow) {
    cached.member_with_email.insert(
        (member.workspace_id.clone(), member.email_key.clone()),
        Some(member.id.clone()),
    );
}

impl Store<'_> {
    pub fn member(&mut self, id: &str) -> QueryResult<Option<MemberRow>> {
        self.row(id)
    }

    pub fn prefetch_members(&mut self, ids: &[&str]) -> QueryResult<()> {
        self.prefetch::<MemberRow, _>(ids)
    }

    /// Members a query finds, as the store holds them.
    pub fn load_members(
        &mut self,
        query: impl FnOnce(&mut DbConnection) -> QueryResult<Vec<MemberRow>>,
    ) -> QueryResult<Vec<MemberRow>> {
        self.load(query)
    }

    /// The members of a workspace linked to a directory user.
    pub fn members_of_user(
        &mut self,
        workspace_id: &str,
        user_id: &DirectoryUserId,
    ) -> QueryResult<Vec<MemberRow>> {
        if !self.c.members_of_user.knows(user_id) {
            self.prefetch_members_of_users(&[user_id])?;
        }
        Ok(self
            .c
            .members_of_user
            .keys(user_id)
            .iter()
            .filter_map(|id| self.c.members.row(id))
            .filter(|m| m.workspace_id == workspace_id)
            .collect())
    }

    /// Loads the members linked to these directory users, in every workspace.
    pub fn prefetch_members_of_users(&mut self, user_ids: &[&DirectoryUserId]) -> QueryResult<()> {
        let found = self.load_groups(
            |c| &mut c.members_of_user,
            user_ids,
            |conn, chunk| {
                members::table
                    .filter(members::directory_user_id.eq_any(chunk))
                    .select(MemberRow::as_select())
                    .load(conn)
            },
            |m| Some((m.directory_user_id.clone()?, m.id.clone())),
        )?;
        self.remember_all(found);
        Ok(())
    }

    /// The member of a workspace holding an email key.
    pub fn member_with_email(
        &mut self,
        workspace_id: &str,
        email_key: &str,
    ) -> QueryResult<Option<MemberRow>> {
        let key = (workspace_id.to_string(), email_key.to_string());
        if !self.c.member_with_email.contains_key(&key) {
            self.prefetch_members_with_emails(workspace_id, &[email_key])?;
        }
        let id = self.c.member_with_email.get(&key).cloned().flatten();
        Ok(id.and_then(|id| self.c.members.row(&id)))
    }

    /// Loads the members of a workspace holding these email keys.
    pub fn prefetch_members_with_emails(
        &mut self,
        workspace_id: &str,
        email_keys: &[&str],
    ) -> QueryResult<()> {
        let wanted = super::rows::unknown(email_keys, |k| {
            self.c
                .member_with_email
                .contains_key(&(workspace_id.to_string(), k.to_string()))
        });
        let found = self.look_up(&wanted, |conn, chunk| {
            members::table
                .filter(members::workspace_id.eq(workspace_id))
                .filter(members::email_key.eq_any(chunk))
                .select(MemberRow::as_select())
                .load(conn)
        })?;
        for key in wanted {
            self.c
                .member_with_email
                .insert((workspace_id.to_string(), key), None);
        }
        for row in &found {
            self.c.member_with_email.insert(
                (row.workspace_id.clone(), row.email_key.clone()),
                Some(row.id.clone()),
            );
        }
        self.remember_all(found);
        Ok(())
    }

    /// Stores a member's row (new or changed).
    pub fn put_member(&mut self, row: MemberRow) {
        let before = self.c.members.row(&row.id);
        if before.is_none() {
            // A new member: nothing in the database names it yet.
            self.c.sources_of_member.loaded(row.id.clone());
        }
        let old_user = before.as_ref().and_then(|b| b.directory_user_id.as_ref());
        self.c
            .members_of_user
            .moved(old_user, row.directory_user_id.as_ref(), &row.id);
        if let Some(before) = before.filter(|b| b.email_key != row.email_key) {
            self.c
                .member_with_email
                .insert((before.workspace_id, before.email_key), None);
        }
        self.c.member_with_email.insert(
            (row.workspace_id.clone(), row.email_key.clone()),
            Some(row.id.clone()),
        );
        self.c.members.put(row);
    }
}
