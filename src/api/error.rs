//! Errors as `application/problem+json` with a stable `code`; 5xx bodies never carry internals.

use crate::access::{OperatorOnly, OtherWorkspace};
use crate::changes::feed::FeedError;
use crate::db::DbError;
use crate::directory_sync::teams::LinkError;
use crate::sync_runs::StartError;
use crate::workspaces::changes::ChangesError;
use crate::workspaces::members::MemberError;
use crate::workspaces::roles::RoleError;
use crate::workspaces::teams::TeamError;
use crate::workspaces::WorkspaceError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to an API caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Members of the problem beyond the standard ones (RFC 9457 extensions), for a client to act on.
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    /// The same problem with one more member in its body.
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(name.to_string(), value.into());
        self
    }

    /// 400 with a code naming what is wrong.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 400 `invalid_field`: a field of the body is not what it must be.
    pub fn invalid_field(detail: impl Into<String>) -> Self {
        Self::bad_request("invalid_field", detail)
    }

    /// 400 `invalid_body`.
    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Self::bad_request("invalid_body", detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// 403 `forbidden`: the caller is known but may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 `not_found`; also for other workspaces' resources, so they are not revealed.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409 with a code naming the rule.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 409 `managed_by_directory_sync` (rules 11 and 12).
    pub fn managed_by_directory_sync(detail: impl Into<String>) -> Self {
        Self::conflict("managed_by_directory_sync", detail)
    }

    /// 503 `database_unavailable`.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable; try again shortly",
        )
    }

    /// 500 `internal_error`; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request failed; the cause is in the service log",
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

/// An RFC 9457 problem; `code` is stable, `detail` is for people.
#[derive(Serialize, ToSchema)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: u16,
    pub title: &'static str,
    pub code: &'static str,
    pub detail: &'a str,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type("application/problem+json")
            .json(Problem {
                kind: "about:blank",
                status: self.status.as_u16(),
                title: self.status.canonical_reason().unwrap_or("Error"),
                code: self.code,
                detail: &self.detail,
                extensions: &self.extensions,
            })
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_invalid_text() {
            return Self::invalid_body("text must not contain NUL characters");
        }
        if error.is_unique_violation() {
            return Self::conflict(
                "conflict",
                "another request created the same record at the same time; read it again and retry",
            );
        }
        if error.is_unavailable() {
            tracing::error!(error = %error, "database unavailable");
            Self::unavailable()
        } else {
            Self::internal(error)
        }
    }
}

impl From<FeedError> for ApiError {
    fn from(error: FeedError) -> Self {
        match error {
            FeedError::InvalidCursor => Self::bad_request("invalid_parameter", error.to_string()),
            FeedError::Gone { ref resume_after } => {
                let resume_after = resume_after.clone();
                Self::new(StatusCode::GONE, "cursor_expired", error.to_string())
                    .with("resume_after", resume_after)
            }
            FeedError::Db(error) => DbError::from(error).into(),
        }
    }
}

impl From<OperatorOnly> for ApiError {
    fn from(error: OperatorOnly) -> Self {
        Self::forbidden(error.to_string())
    }
}

impl From<OtherWorkspace> for ApiError {
    fn from(_: OtherWorkspace) -> Self {
        Self::not_found("workspace")
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::NotFound => Self::not_found("workspace"),
            WorkspaceError::InvalidField(detail) => Self::invalid_field(detail),
            WorkspaceError::OrganizationTaken => {
                Self::conflict("organization_taken", error.to_string())
            }
            WorkspaceError::PlanRequired(_) => {
                Self::new(StatusCode::FORBIDDEN, "plan_required", error.to_string())
            }
            WorkspaceError::OperatorOnly(error) => error.into(),
            WorkspaceError::AdminTokenNotFound => Self::not_found("admin token"),
            WorkspaceError::Db(error) => error.into(),
        }
    }
}

impl From<ChangesError> for ApiError {
    fn from(error: ChangesError) -> Self {
        match error {
            ChangesError::Workspace(error) => error.into(),
            ChangesError::Feed(error) => error.into(),
            ChangesError::Db(error) => error.into(),
        }
    }
}

impl From<RoleError> for ApiError {
    fn from(error: RoleError) -> Self {
        match error {
            RoleError::Workspace(error) => error.into(),
            RoleError::UnknownGroup(_) => Self::bad_request("unknown_group", error.to_string()),
            RoleError::Db(error) => error.into(),
        }
    }
}

impl From<StartError> for ApiError {
    fn from(error: StartError) -> Self {
        match error {
            StartError::UnknownDirectory => Self::not_found("directory"),
            StartError::InProgress => Self::conflict("sync_in_progress", error.to_string()),
            StartError::PushedOverScim => Self::conflict("scim_directory", error.to_string()),
            // Only automatic triggers are spaced; an operator's resync never is.
            StartError::TooSoon { .. } => Self::conflict("sync_spaced", error.to_string()),
            StartError::Db(error) => error.into(),
            StartError::Queue(error) => Self::internal(error),
        }
    }
}

impl From<MemberError> for ApiError {
    fn from(error: MemberError) -> Self {
        match error {
            MemberError::Workspace(error) => error.into(),
            MemberError::NotFound => Self::not_found("member"),
            MemberError::InvalidField(detail) => Self::invalid_field(detail),
            MemberError::ManagedByDirectorySync(detail) => Self::managed_by_directory_sync(detail),
            MemberError::EmailTaken => Self::conflict("email_taken", error.to_string()),
            MemberError::OwnerRequiresOperator => Self::new(
                StatusCode::FORBIDDEN,
                "owner_requires_operator",
                error.to_string(),
            ),
            MemberError::LastOwner { .. } => Self::conflict("last_owner", error.to_string()),
            MemberError::Db(error) => error.into(),
        }
    }
}

impl From<TeamError> for ApiError {
    fn from(error: TeamError) -> Self {
        match error {
            TeamError::Workspace(error) => error.into(),
            TeamError::NotFound => Self::not_found("team"),
            TeamError::InvalidName(detail) => Self::invalid_field(detail),
            TeamError::NameTaken => Self::conflict("team_name_taken", error.to_string()),
            TeamError::MemberNotFound => Self::not_found("member"),
            TeamError::MemberDeprovisioned => {
                Self::conflict("member_deprovisioned", error.to_string())
            }
            TeamError::NoManualMembership => Self::not_found("manual team membership"),
            TeamError::Link(error) => error.into(),
            TeamError::Db(error) => error.into(),
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::DirectorySyncInactive => {
                Self::conflict("directory_sync_inactive", error.to_string())
            }
            LinkError::NoDirectoryGroups => {
                Self::conflict("no_directory_groups", error.to_string())
            }
            LinkError::AlreadyLinked => Self::conflict("already_linked", error.to_string()),
            LinkError::GroupNotFound => Self::not_found("directory group"),
            LinkError::NotLinked => Self::not_found("link"),
            LinkError::Db(error) => error.into(),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        DbError::from(error).into()
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self::internal(error)
    }
}
