//! Rows as Rust types.

use super::schema::*;
use crate::domain::{
    DeliverySource, EventStatus, ManagedBy, MemberStatus, Plan, Role, RoleSource, RunPhase,
    RunStatus, RunTrigger, UserState,
};
use crate::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
use crate::workos::timestamp::Timestamp;
use diesel::prelude::*;

/// A customer's workspace.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = workspaces)]
pub struct WorkspaceRow {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub organization_id: String,
    pub directory_sync_enabled: bool,
    pub default_role: Role,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// What decides its directory members' roles.
    pub role_source: RoleSource,
    /// The role slug the broker gives users mapped to no role: it gives `default_role`.
    pub default_role_slug: String,
}

/// A workspace's mapping of a role slug the identity provider assigns to a product role.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = directory_role_mappings)]
pub struct DirectoryRoleMappingRow {
    pub workspace_id: String,
    pub slug: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// An API token, stored as the SHA-256 of the token; `workspace_id` is `None` for operators. A revoked or
/// expired token is refused; `last_used_at` is written at most once a minute.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    pub id: String,
    pub workspace_id: Option<String>,
    pub token_hash: String,
    pub created_at: Timestamp,
    pub name: Option<String>,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiTokenRow {
    /// Whether the token is accepted at `now`: neither revoked nor expired.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Rollcall's copy of a broker directory.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = directories, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct DirectoryRow {
    pub id: DirectoryId,
    pub organization_id: String,
    pub directory_type: String,
    pub name: String,
    pub state: String,
    pub source_updated_at: Timestamp,
    pub source_event_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub last_synced_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Rollcall's copy of a directory user, or its tombstone.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = directory_users, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct DirectoryUserRow {
    pub id: DirectoryUserId,
    pub directory_id: DirectoryId,
    pub idp_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub state: UserState,
    pub snapshot: String,
    pub source_updated_at: Timestamp,
    pub source_event_at: Timestamp,
    /// Whether any snapshot of this user, even a stale one, was active: such a user has a member.
    pub ever_active: bool,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The role slugs the identity provider assigned, a JSON array of text (`roles`, else `role`).
    pub role_slugs: String,
}

/// Rollcall's copy of a directory group, or its tombstone.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = directory_groups, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct DirectoryGroupRow {
    pub id: DirectoryGroupId,
    pub directory_id: DirectoryId,
    pub idp_id: String,
    pub name: String,
    pub snapshot: String,
    pub source_updated_at: Timestamp,
    pub source_event_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether a user is in a group, as of the newest membership event seen for the pair.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = directory_group_memberships, treat_none_as_default_value = false)]
pub struct GroupMembershipRow {
    pub group_id: DirectoryGroupId,
    pub user_id: DirectoryUserId,
    pub directory_id: DirectoryId,
    pub is_member: bool,
    pub last_event_at: Timestamp,
    pub updated_at: Timestamp,
    /// The newest membership event's id; orders events stamped with the same millisecond.
    pub last_event_id: Option<String>,
}

/// A person in a workspace.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = members, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct MemberRow {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    /// The email lower-cased: emails are unique per workspace, compared case-insensitively.
    pub email_key: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: Role,
    pub status: MemberStatus,
    pub managed_by: ManagedBy,
    pub directory_user_id: Option<DirectoryUserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A stored webhook delivery.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct WebhookEventRow {
    pub id: i64,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub directory_id: Option<DirectoryId>,
    pub event_created_at: Option<Timestamp>,
    pub body: Vec<u8>,
    pub status: EventStatus,
    pub reason: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub processed_at: Option<Timestamp>,
    /// How many times the same event was delivered again after this row was stored.
    pub redeliveries: i32,
    /// The path that brought it: `webhook` or `events` (the Events API tail).
    pub source: DeliverySource,
    /// The lane it is applied in: its directory (`''` when it names none).
    pub lane: String,
}

/// A webhook delivery about to be stored.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_events, treat_none_as_default_value = false)]
pub struct NewWebhookEvent {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub directory_id: Option<DirectoryId>,
    pub event_created_at: Option<Timestamp>,
    pub body: Vec<u8>,
    pub status: EventStatus,
    pub reason: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<Timestamp>,
    pub received_at: Timestamp,
    /// The path that brought it: `webhook` or `events`.
    pub source: DeliverySource,
    /// The lane it is applied in, in arrival order with the rest of the lane: its directory (`''` when it
    /// names none).
    pub lane: String,
    /// For a body that is not an event (it has no event id): the hex SHA-256 of the body, by which a
    /// redelivery of it is known.
    pub body_hash: Option<String>,
}

impl NewWebhookEvent {
    /// A delivery of an event, waiting to be applied.
    pub fn received(
        event: &crate::workos::events::Event,
        body: Vec<u8>,
        received_at: Timestamp,
    ) -> Self {
        Self {
            event_id: Some(event.id.clone()),
            event_type: Some(event.event_type.clone()),
            directory_id: event.directory_id().cloned(),
            event_created_at: event.created_at,
            body,
            status: EventStatus::Received,
            reason: None,
            attempts: 0,
            next_attempt_at: None,
            received_at,
            source: DeliverySource::Webhook,
            lane: event
                .directory_id()
                .map(DirectoryId::to_string)
                .unwrap_or_default(),
            body_hash: None,
        }
    }

    /// The same delivery, as the Events API tail brought it.
    pub fn from_event_tail(mut self) -> Self {
        self.source = DeliverySource::Events;
        self
    }

    /// The same delivery, as a write to a SCIM directory of Rollcall's made it.
    pub fn from_scim(mut self) -> Self {
        self.source = DeliverySource::Scim;
        self
    }

    /// A correctly signed body that is not an event: kept for operators, never applied.
    pub fn invalid(body: Vec<u8>, reason: String, received_at: Timestamp) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            body_hash: Some(hex::encode(Sha256::digest(&body))),
            event_id: None,
            event_type: None,
            directory_id: None,
            event_created_at: None,
            body,
            status: EventStatus::Invalid,
            // The reason may quote the body; PostgreSQL text cannot hold NUL.
            reason: Some(reason.replace('\0', "\\u0000")),
            attempts: 0,
            next_attempt_at: None,
            received_at,
            source: DeliverySource::Webhook,
            lane: String::new(),
        }
    }
}

/// The Events API tail's place (one row).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = event_tail, treat_none_as_default_value = false)]
pub struct EventTailRow {
    pub id: i32,
    /// The id of the last event stored from the tail.
    pub cursor: Option<String>,
    /// When the broker created that event.
    pub cursor_event_at: Option<Timestamp>,
    /// Without a cursor: read events created from this time on.
    pub resume_from: Option<Timestamp>,
    /// The end of the last catch-up that reached the newest event.
    pub last_poll_at: Option<Timestamp>,
    /// Events the tail stored that no webhook had brought first.
    pub events_stored: i64,
    pub updated_at: Timestamp,
}

/// One audit entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntryRow {
    pub id: i64,
    pub workspace_id: String,
    pub occurred_at: Timestamp,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub cause_type: String,
    pub cause_id: String,
}

/// An audit entry about to be written.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct NewAuditEntry {
    pub workspace_id: String,
    pub occurred_at: Timestamp,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub cause_type: String,
    pub cause_id: String,
}

/// A change in a workspace's change feed, as stored.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = changes)]
pub struct ChangeRow {
    pub id: i64,
    pub workspace_id: String,
    pub position: i64,
    pub occurred_at: Timestamp,
    pub change_type: String,
    pub subject_id: String,
    pub data: String,
    pub cause_type: String,
    pub cause_id: String,
}

/// A change about to enter the feed.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = changes)]
pub struct NewChange {
    pub workspace_id: String,
    pub position: i64,
    pub occurred_at: Timestamp,
    pub change_type: String,
    pub subject_id: String,
    pub data: String,
    pub cause_type: String,
    pub cause_id: String,
}

/// An outbound webhook endpoint of a workspace: where its change feed is sent.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, treat_none_as_default_value = false)]
pub struct WebhookEndpointRow {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub description: String,
    /// The change types sent, space-separated; empty for every type.
    pub event_types: String,
    /// The signing secret, `whsec_` and base64.
    pub secret: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The last feed position handed to the endpoint (sent with a 2xx, or not one of its types).
    pub delivered_through: i64,
    /// When the change after the cursor first failed; `None` while deliveries succeed.
    pub failing_since: Option<Timestamp>,
    pub failed_attempts: i32,
    pub next_attempt_at: Option<Timestamp>,
    /// Until when a sender holds the endpoint.
    pub lease_until: Option<Timestamp>,
    /// Which sender holds it (a token of its claim).
    pub lease_holder: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The most changes sent in one message (1: one change per message, in its own shape).
    pub batch_size: i32,
    /// The last position of the message that failed, so its retry carries the same changes.
    pub retry_through: Option<i64>,
}

/// One attempt to deliver a change to an endpoint.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
pub struct WebhookAttemptRow {
    pub id: i64,
    pub endpoint_id: String,
    pub message_id: String,
    pub position: i64,
    pub attempted_at: Timestamp,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// An attempt about to be recorded.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_attempts, treat_none_as_default_value = false)]
pub struct NewWebhookAttempt {
    pub endpoint_id: String,
    pub message_id: String,
    pub position: i64,
    pub attempted_at: Timestamp,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// A team of a workspace.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// The name lower-cased: names are unique per workspace, compared case-insensitively.
    pub name_key: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One reason a member is in a team.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Queryable, Selectable, Insertable)]
#[diesel(table_name = team_member_sources, treat_none_as_default_value = false)]
pub struct TeamMemberSourceRow {
    pub team_id: String,
    pub member_id: String,
    /// `manual` or `directory_group`.
    pub source_type: String,
    /// The directory group for a `directory_group` source; empty for a manual one.
    pub group_id: String,
    pub created_at: Timestamp,
}

/// A directory group linked to a team.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = team_links)]
pub struct TeamLinkRow {
    pub team_id: String,
    pub group_id: DirectoryGroupId,
    pub workspace_id: String,
    pub created_at: Timestamp,
}

/// A directory group mapped to a role.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = role_mappings)]
pub struct RoleMappingRow {
    pub workspace_id: String,
    pub group_id: DirectoryGroupId,
    pub role: Role,
    pub created_at: Timestamp,
}

/// One full pull of one directory.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sync_runs, treat_none_as_default_value = false)]
pub struct SyncRunRow {
    pub id: String,
    pub directory_id: DirectoryId,
    pub trigger: RunTrigger,
    pub force: bool,
    pub status: RunStatus,
    /// What the run changed, as JSON.
    pub counts: Option<String>,
    pub error: Option<String>,
    /// Requests made to the broker.
    pub requests: i32,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// What a running pull is doing.
    pub phase: RunPhase,
    /// Users listed so far, all applied.
    pub users_listed: i32,
    /// Until when the process that queued or runs it holds it; renewed while it lives. A queued or
    /// running run whose lease ran out was left by a stopped process.
    pub lease_until: Option<Timestamp>,
}
