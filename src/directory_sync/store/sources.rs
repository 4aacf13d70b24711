//! Why each member is in which team: the team sources of the members loaded.

use super::rows::Keyed;
use super::Store;
use crate::db::models::TeamMemberSourceRow;
use crate::db::schema::team_member_sources as sources;
use crate::directory_sync::sources::SourceKey;
use crate::workos::timestamp;
use diesel::prelude::*;
use std::collections::BTreeSet;

impl Keyed for TeamMemberSourceRow {
    /// The member and the source.
    type Key = (String, SourceKey);

    fn key(&self) -> (String, SourceKey) {
        (self.member_id.clone(), SourceKey::of(self))
    }
}

impl Store<'_> {
    /// Why a member is in which team.
    pub fn sources(&mut self, member_id: &str) -> QueryResult<BTreeSet<SourceKey>> {
        if !self.c.sources_of_member.knows(member_id) {
            self.prefetch_sources(&[member_id])?;
        }
        Ok(self.c.sources_of_member.keys(member_id))
    }

    /// Adds a source; returns whether it was new.
    pub fn add_source(&mut self, member_id: &str, source: SourceKey) -> QueryResult<bool> {
        self.sources(member_id)?;
        let added = self
            .c
            .sources_of_member
            .insert(&member_id.to_string(), source.clone());
        if added {
            self.c.sources.put(source.row(member_id, timestamp::now()));
        }
        Ok(added)
    }

    /// Removes a source; returns whether it was there.
    pub fn remove_source(&mut self, member_id: &str, source: &SourceKey) -> QueryResult<bool> {
        self.sources(member_id)?;
        let key = (member_id.to_string(), source.clone());
        let removed = self.c.sources_of_member.remove(&key.0, source);
        if removed {
            self.c.sources.remove(&key);
        }
        Ok(removed)
    }

    /// Loads the team sources of these members.
    pub fn prefetch_sources(&mut self, member_ids: &[&str]) -> QueryResult<()> {
        let found = self.load_groups(
            |c| &mut c.sources_of_member,
            member_ids,
            |conn, chunk| {
                sources::table
                    .filter(sources::member_id.eq_any(chunk))
                    .select(TeamMemberSourceRow::as_select())
                    .load(conn)
            },
            |s| Some((s.member_id.clone(), SourceKey::of(s))),
        )?;
        for row in found {
            self.c.sources.remember(row.key(), Some(row));
        }
        Ok(())
    }
}
