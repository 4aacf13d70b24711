//! `?limit=` (default 100, at most 1000) and `?after=` cursors; lists answer `{data, list_metadata: {after}}`.

use super::error::ApiError;
use crate::lists::Page;
use serde::Deserialize;
use utoipa::IntoParams;

/// A page request as given in the query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many items.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
    /// The previous page's `list_metadata.after`.
    pub after: Option<String>,
}

impl PageQuery {
    /// Checks the limit: 1 to 1000, default 100.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => 100,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        "limit must be a whole number from 1 to 1000",
                    )
                })?,
        };
        Ok(Page {
            limit,
            after: self.after.clone().filter(|a| !a.is_empty()),
        })
    }
}

/// The cursor of a page of a list ordered by a numeric id.
pub fn after_id(page: &Page) -> Result<Option<i64>, ApiError> {
    page.after
        .as_deref()
        .map(|a| {
            a.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_parameter", "after: not a cursor from this list")
            })
        })
        .transpose()
}
