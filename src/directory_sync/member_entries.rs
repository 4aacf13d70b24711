//! How a member is shown: as JSON to the API and the audit log, and as the audit entry of a change to
//! one. Below the member, team and role rules, which all write such entries.

use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::MemberRow;
use crate::db::DbConnection;
use crate::domain::{ManagedBy, MemberStatus, Role};
use crate::ids::DirectoryGroupId;
use crate::workos::timestamp::time_json;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A workspace member, as the API and the audit log show it.
#[derive(Serialize, ToSchema)]
pub struct Member {
    id: String,
    workspace_id: String,
    email: String,
    #[schema(required = true)]
    first_name: Option<String>,
    #[schema(required = true)]
    last_name: Option<String>,
    #[schema(value_type = crate::domain::Role, inline)]
    role: Role,
    #[schema(value_type = crate::domain::MemberStatus, inline)]
    status: MemberStatus,
    #[schema(value_type = crate::domain::ManagedBy, inline)]
    managed_by: ManagedBy,
    #[schema(required = true)]
    directory_user_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Where the member's role comes from (in the API's member views; not in the audit log or the feed).
    #[serde(skip_serializing_if = "Option::is_none")]
    role_source: Option<RoleSourceShown>,
    /// The attributes the identity provider sends for the member's directory user (read-only; in the
    /// API's member views).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the caller may do to the member, and why not (in the API's member views): the rules the
    /// API enforces when it is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    actions: Option<MemberActions>,
    /// The directory groups the member's directory user is in, by name (in the API's member views).
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<MemberGroup>>,
}

/// A directory group a member is in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberGroup {
    pub id: String,
    pub name: String,
}

/// What the API's member views show beside the member itself.
pub struct MemberDetails {
    /// Where the member's role comes from.
    pub origin: RoleOrigin,
    /// Its directory user's attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// What the caller may do to it.
    pub actions: MemberActions,
    /// Its directory groups.
    pub groups: Vec<MemberGroup>,
}

/// What the caller may do to a member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberActions {
    /// Removing the member by hand.
    pub remove: Allowed,
    /// Giving the member another role than `owner` by hand.
    pub change_role: Allowed,
}

/// Whether an action is allowed, and why not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Allowed {
    pub allowed: bool,
    /// Why not, in the words of the refusal the API would answer; null when allowed.
    #[schema(required = true)]
    pub reason: Option<String>,
}

impl Allowed {
    /// Allowed unless there is a reason it is not.
    pub fn unless(reason: Option<String>) -> Allowed {
        Allowed {
            allowed: reason.is_none(),
            reason,
        }
    }
}

/// Where a directory member's role comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoleOrigin {
    /// A role slug the identity provider assigned, through the workspace's table.
    DirectoryRole(String),
    /// A group the member is in, through its role mapping.
    GroupMapping(DirectoryGroupId),
    /// The workspace's default role, nothing mapped giving more.
    Default,
    /// Set by hand (or the member is not the directory's to decide).
    Manual,
}

impl RoleOrigin {
    /// Why a member whose role comes from here cannot have it changed by hand; `None` when they can.
    pub fn why_locked(&self) -> Option<String> {
        match self {
            RoleOrigin::DirectoryRole(slug) => Some(format!(
                "this member's role comes from the identity provider's role `{slug}`: change the \
                 workspace's role slug table, or the user's roles at the identity provider"
            )),
            RoleOrigin::GroupMapping(group) => Some(format!(
                "this member's role comes from the role mapping of directory group {group}: change \
                 the mapping or the member's groups"
            )),
            RoleOrigin::Default => Some(
                "this workspace's roles come from the directory, and nothing mapped gives this \
                 member more than the default role: map one of their groups or role slugs"
                    .to_string(),
            ),
            RoleOrigin::Manual => None,
        }
    }
}

/// Where a member's role comes from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoleSourceShown {
    /// A role slug the identity provider assigned, through the workspace's table.
    DirectoryRole { slug: String },
    /// A directory group the member is in, through its role mapping.
    GroupMapping { group_id: String },
    /// The workspace's default role.
    Default,
    /// Set by hand.
    Manual,
}

impl From<RoleOrigin> for RoleSourceShown {
    fn from(origin: RoleOrigin) -> Self {
        match origin {
            RoleOrigin::DirectoryRole(slug) => RoleSourceShown::DirectoryRole { slug },
            RoleOrigin::GroupMapping(group) => RoleSourceShown::GroupMapping {
                group_id: group.to_string(),
            },
            RoleOrigin::Default => RoleSourceShown::Default,
            RoleOrigin::Manual => RoleSourceShown::Manual,
        }
    }
}

impl Member {
    /// The member with where its role comes from and its directory user's attributes, as the API shows
    /// a member.
    pub fn shown(mut self, details: MemberDetails) -> Member {
        self.role_source = Some(details.origin.into());
        self.attributes = Some(details.attributes);
        self.actions = Some(details.actions);
        self.groups = Some(details.groups);
        self
    }
}

impl From<&MemberRow> for Member {
    fn from(m: &MemberRow) -> Self {
        Member {
            id: m.id.clone(),
            workspace_id: m.workspace_id.clone(),
            email: m.email.clone(),
            first_name: m.first_name.clone(),
            last_name: m.last_name.clone(),
            role: m.role,
            status: m.status,
            managed_by: m.managed_by,
            directory_user_id: m.directory_user_id.clone().map(String::from),
            created_at: time_json(&m.created_at),
            updated_at: time_json(&m.updated_at),
            role_source: None,
            attributes: None,
            actions: None,
            groups: None,
        }
    }
}

/// A member as the API and the audit log show it.
pub fn member_json(m: &MemberRow) -> serde_json::Value {
    json!(Member::from(m))
}

/// Writes the audit entry of a change to a member.
pub fn audit_member_change(
    conn: &mut DbConnection,
    cause: &Cause,
    action: &str,
    before: Option<&MemberRow>,
    after: &MemberRow,
) -> QueryResult<()> {
    audit::record(conn, cause, member_change(action, before, after))
}

/// The audit entry of a change to a member.
pub fn member_change<'a>(
    action: &'a str,
    before: Option<&MemberRow>,
    after: &'a MemberRow,
) -> AuditRecord<'a> {
    AuditRecord {
        workspace_id: &after.workspace_id,
        action,
        subject_type: "member",
        subject_id: &after.id,
        before: before.map(member_json),
        after: Some(member_json(after)),
    }
}
