//! The product's vocabulary: plans, roles, member status and the like, stored as text.
//!
//! Each is an enum that the database reads and writes as its text (a `TEXT` column on both backends), so
//! the rest of the code compares variants, never strings.

/// A string that is one of `values`, in the OpenAPI document.
pub fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .into()
}

/// Reads and writes a type as TEXT on every backend (diesel): written as its `as_str()`, read through
/// `$read`, a `fn(String) -> diesel::deserialize::Result<Self>`.
macro_rules! stored_as_text {
    ($name:ident, $read:expr) => {
        impl<DB: diesel::backend::Backend> diesel::serialize::ToSql<diesel::sql_types::Text, DB>
            for $name
        where
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB: diesel::backend::Backend> diesel::deserialize::FromSql<diesel::sql_types::Text, DB>
            for $name
        where
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let read: fn(String) -> diesel::deserialize::Result<Self> = $read;
                read(String::from_sql(bytes)?)
            }
        }
    };
}
pub(crate) use stored_as_text;

/// Declares an enum of the product's words: each variant with its text, stored in a `TEXT` column
/// (diesel), serialised as its text (serde), shown and parsed as its text, with `ALL` in order.
macro_rules! text_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize, diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name { $($(#[$variant_meta])* #[serde(rename = $text)] $variant),+ }

        $crate::domain::stored_as_text!($name, |text: String| text
            .parse::<$name>()
            .map_err(|why| why.into()));

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialised text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        /// In the OpenAPI document: a string that is one of the values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::domain::one_of($name::ALL.iter().map(|v| v.as_str())).into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "{s:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// A workspace's plan; directory sync needs `growth` or above.
    Plan { Free => "free", Starter => "starter", Growth => "growth", Enterprise => "enterprise" }
);

impl Plan {
    /// Whether this plan includes directory sync.
    pub fn includes_directory_sync(self) -> bool {
        self >= Plan::Growth
    }
}

text_enum!(
    /// A member's role, lowest first: `owner` > `admin` > `builder` > `viewer`.
    Role { Viewer => "viewer", Builder => "builder", Admin => "admin", Owner => "owner" }
);

text_enum!(
    /// What decides the roles of a workspace's directory members: the groups they are in (rule 11), or
    /// the role slugs the identity provider assigned them.
    RoleSource { GroupMappings => "group_mappings", DirectoryRoles => "directory_roles" }
);

text_enum!(
    /// A directory user's state as Rollcall records it: `active`, or not (`inactive`; the broker's legacy
    /// `suspended` reads as `inactive`).
    UserState { Active => "active", Inactive => "inactive" }
);

text_enum!(
    /// Whether a member can use the workspace.
    MemberStatus { Active => "active", Deprovisioned => "deprovisioned" }
);

text_enum!(
    /// Who owns a member's record.
    ManagedBy { Directory => "directory", Manual => "manual" }
);

text_enum!(
    /// What a change in the change feed did (rule 23).
    ChangeType {
        /// A member created from the directory.
        MemberProvisioned => "member.provisioned",
        /// A member added by hand.
        MemberAdded => "member.added",
        /// A member's name, email or owner changed (`changes` names each field).
        MemberUpdated => "member.updated",
        /// A member's role changed.
        MemberRoleChanged => "member.role_changed",
        /// A member lost access: deactivated or deleted in the directory.
        MemberDeprovisioned => "member.deprovisioned",
        /// A deprovisioned member came back.
        MemberReprovisioned => "member.reprovisioned",
        /// A member removed by hand (they left every team first).
        MemberRemoved => "member.removed",
        /// A team created.
        TeamCreated => "team.created",
        /// A team renamed.
        TeamRenamed => "team.renamed",
        /// A team deleted, with its memberships.
        TeamDeleted => "team.deleted",
        /// A member joined a team (the source that brought them is `source_added`).
        TeamMemberAdded => "team.member_added",
        /// A member left a team (the last source, `source_removed`, went).
        TeamMemberRemoved => "team.member_removed",
        /// A member stays in a team, for other reasons than before.
        TeamMemberSourcesChanged => "team.member_sources_changed",
    }
);

text_enum!(
    /// Where a stored webhook event stands.
    EventStatus {
        Received => "received",
        Applied => "applied",
        Duplicate => "duplicate",
        Skipped => "skipped",
        Ignored => "ignored",
        Conflict => "conflict",
        Failed => "failed",
        Invalid => "invalid",
        Dismissed => "dismissed",
    }
);

text_enum!(
    /// Where a sync run stands.
    RunStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Held => "held",
    }
);

impl RunStatus {
    /// How a run may end.
    pub const ENDED: &'static [RunStatus] =
        &[RunStatus::Succeeded, RunStatus::Failed, RunStatus::Held];

    /// Whether the run has ended.
    pub fn has_ended(self) -> bool {
        Self::ENDED.contains(&self)
    }
}

/// The `directory_type` of a directory Rollcall serves over SCIM itself (the broker's directories have
/// theirs, such as `okta scim v2.0`): pushed by the identity provider, never pulled.
pub const SCIM_DIRECTORY_TYPE: &str = "scim";

text_enum!(
    /// What made a change, as the audit log stores it.
    CauseKind {
        /// A broker event (webhook or Events API).
        Event => "event",
        /// A full pull.
        SyncRun => "sync_run",
        /// A request with a stored API token.
        ApiToken => "api_token",
        /// A request with the configured operator token.
        Operator => "operator",
        /// A write to one of Rollcall's own SCIM directories.
        Scim => "scim",
    }
);

text_enum!(
    /// What a sync run is doing.
    RunPhase {
        Queued => "queued",
        Listing => "listing",
        ReconcilingTeams => "reconciling teams",
        Done => "done",
    }
);

text_enum!(
    /// What started a sync run.
    RunTrigger {
        Scheduled => "scheduled",
        DirectoryActivated => "directory_activated",
        SyncEnabled => "sync_enabled",
        OnDemand => "on_demand",
        EventCursorLost => "event_cursor_lost",
    }
);

impl RunTrigger {
    /// The triggers a workspace or the broker sets off without an operator, spaced by
    /// `ROLLCALL_AUTOMATIC_PULL_SPACING`: a tenant turning directory sync off and on cannot pull again and
    /// again on the shared API key.
    pub const AUTOMATIC: &'static [RunTrigger] =
        &[RunTrigger::DirectoryActivated, RunTrigger::SyncEnabled];

    /// Whether a workspace or the broker set it off, without an operator.
    pub fn is_automatic(self) -> bool {
        Self::AUTOMATIC.contains(&self)
    }
}

text_enum!(
    /// The path that brought a delivery.
    DeliverySource { Webhook => "webhook", Events => "events", Scim => "scim" }
);

/// What caused a change, as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = AuditCause)]
pub struct ShownCause {
    /// `event`, `sync_run`, `api_token` or `operator`.
    #[serde(rename = "type")]
    #[schema(value_type = crate::domain::CauseKind, inline)]
    pub kind: String,
    /// The event, sync run or token id; `bootstrap` for the configured operator token.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(
            Role::Owner > Role::Admin
                && Role::Admin > Role::Builder
                && Role::Builder > Role::Viewer
        );
    }

    #[test]
    fn directory_sync_needs_growth() {
        let with: Vec<_> = Plan::ALL
            .iter()
            .filter(|p| p.includes_directory_sync())
            .collect();
        assert_eq!(with, [&Plan::Growth, &Plan::Enterprise]);
    }

    #[test]
    fn text_round_trips() {
        for s in EventStatus::ALL {
            assert_eq!(s.as_str().parse::<EventStatus>(), Ok(*s));
        }
        assert!("superuser".parse::<Role>().unwrap_err().contains("viewer"));
    }
}
