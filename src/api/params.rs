//! The path and query parameters handlers share, as the OpenAPI document describes them.

use super::error::{ApiError, ApiResult};
use utoipa::IntoParams;

/// A query parameter naming one of an enumeration's values (a member status, a run status, …): absent
/// is `None`, a value not in the enumeration a 400 `invalid_parameter` that names the parameter.
pub fn enum_param<T: std::str::FromStr>(name: &str, value: Option<&str>) -> ApiResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|text| {
            text.parse::<T>()
                .map_err(|e| ApiError::bad_request("invalid_parameter", format!("{name}: {e}")))
        })
        .transpose()
}

/// `{ws}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkspaceParam {
    /// The workspace (`ws_…`).
    #[param(min_length = 1)]
    pub ws: String,
}

/// `{member}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberParam {
    /// The member (`mem_…`).
    #[param(min_length = 1)]
    pub member: String,
}

/// `{team}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamParam {
    /// The team.
    #[param(min_length = 1)]
    pub team: String,
}

/// `{group}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupParam {
    /// The directory group (`directory_group_…`).
    #[param(min_length = 1)]
    pub group: String,
}

/// `{dir}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DirectoryParam {
    /// The directory (`directory_…`).
    #[param(min_length = 1)]
    pub dir: String,
}

/// `{directory}` of a SCIM directory
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ScimDirectoryParam {
    /// The SCIM directory (`directory_…`).
    #[param(min_length = 1)]
    pub directory: String,
}

/// `{token}` of a SCIM directory
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ScimTokenParam {
    /// The token (`scimtok_…`).
    #[param(min_length = 1)]
    pub token: String,
}

/// `{run}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunParam {
    /// The sync run (`run_…`).
    #[param(min_length = 1)]
    pub run: String,
}

/// `{token}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenParam {
    /// The admin token (`tok_…`).
    #[param(min_length = 1)]
    pub token: String,
}

/// `{id}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventParam {
    /// The stored delivery's `id`; anything else is 404.
    pub id: i64,
}

/// `?limit=` and `?after=` for a list whose cursor is a numeric id.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PagedById {
    /// At most this many items.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
    /// The previous page's `list_metadata.after`, a numeric id.
    pub after: Option<i64>,
}

/// `{endpoint}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointParam {
    /// The webhook endpoint (`we_…`).
    #[param(min_length = 1)]
    pub endpoint: String,
}
