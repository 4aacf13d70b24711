//! Why a member is in a team, as stored: a manual source or a linked directory group, keyed by team.
//! Below the team rules and the working set, which reads and writes sources for them.

use crate::db::models::TeamMemberSourceRow;
use crate::ids::DirectoryGroupId;
use crate::workos::timestamp::{self, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

/// Why a member is in a team.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TeamMembershipSource {
    /// Added by an admin.
    Manual,
    /// Through a directory group linked to the team.
    DirectoryGroup(DirectoryGroupId),
}

/// Why a member is in a team, as the API and the audit log show it: added by hand, or through a
/// linked directory group.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = TeamMembershipSource)]
pub enum ShownSource {
    Manual,
    DirectoryGroup { group_id: String },
}

const MANUAL: &str = "manual";
pub(super) const DIRECTORY_GROUP: &str = "directory_group";

impl TeamMembershipSource {
    /// Reads a stored source.
    pub fn of(row: &TeamMemberSourceRow) -> Self {
        if row.source_type == DIRECTORY_GROUP {
            Self::DirectoryGroup(row.group_id.clone().into())
        } else {
            Self::Manual
        }
    }

    /// The source as the API and the audit log show it.
    pub fn shown(&self) -> ShownSource {
        match self {
            Self::Manual => ShownSource::Manual,
            Self::DirectoryGroup(group_id) => ShownSource::DirectoryGroup {
                group_id: group_id.to_string(),
            },
        }
    }

    /// The stored `source_type` and `group_id` of this source.
    fn stored(&self) -> (&'static str, &str) {
        match self {
            Self::Manual => (MANUAL, ""),
            Self::DirectoryGroup(group_id) => (DIRECTORY_GROUP, group_id.as_str()),
        }
    }

    /// The stored row of this source.
    pub fn row(&self, team_id: &str, member_id: &str) -> TeamMemberSourceRow {
        SourceKey {
            team_id: team_id.to_string(),
            source: self.clone(),
        }
        .row(member_id, timestamp::now())
    }
}

/// One reason a member is in one team.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceKey {
    pub team_id: String,
    pub source: TeamMembershipSource,
}

impl SourceKey {
    /// The source a stored row records.
    pub fn of(row: &TeamMemberSourceRow) -> Self {
        Self {
            team_id: row.team_id.clone(),
            source: TeamMembershipSource::of(row),
        }
    }

    pub fn source_type(&self) -> &'static str {
        self.source.stored().0
    }

    pub fn group_id(&self) -> &str {
        self.source.stored().1
    }

    /// The stored row of this source for a member, first recorded at `created_at`.
    pub fn row(&self, member_id: &str, created_at: Timestamp) -> TeamMemberSourceRow {
        TeamMemberSourceRow {
            team_id: self.team_id.clone(),
            member_id: member_id.to_string(),
            source_type: self.source_type().to_string(),
            group_id: self.group_id().to_string(),
            created_at,
        }
    }
}
