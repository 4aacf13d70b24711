//! `?limit=` (default 100, at most 1000) and `?after=` cursors; lists answer `{data, list_metadata: {after}}`.

use super::error::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
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

impl Page {
    /// The cursor of a list ordered by a numeric id.
    pub fn after_id(&self) -> Result<Option<i64>, ApiError> {
        self.after
            .as_deref()
            .map(|a| {
                a.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("invalid_parameter", "after: not a cursor from this list")
                })
            })
            .transpose()
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub list_metadata: ListMetadata,
}

/// Where the next page starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListMetadata {
    /// Pass as `?after=` for the next page; null on the last page.
    #[schema(required = true)]
    pub after: Option<String>,
}

impl<T> List<T> {
    /// A page of items fetched with `limit + 1`, so a further page is known to exist.
    pub fn from_overfetch(mut items: Vec<T>, page: &Page, cursor: impl Fn(&T) -> String) -> Self {
        let more = items.len() as i64 > page.limit;
        items.truncate(page.limit as usize);
        let after = if more {
            items.last().map(&cursor)
        } else {
            None
        };
        List {
            data: items,
            list_metadata: ListMetadata { after },
        }
    }

    /// The same page with each item turned into what the API shows.
    pub fn map<U>(self, show: impl FnMut(&T) -> U) -> List<U> {
        List {
            data: self.data.iter().map(show).collect(),
            list_metadata: self.list_metadata,
        }
    }

    /// As [`List::map`], for a conversion that can fail (one that reads more rows).
    pub fn try_map<U, E>(self, show: impl FnMut(&T) -> Result<U, E>) -> Result<List<U>, E> {
        Ok(List {
            data: self.data.iter().map(show).collect::<Result<_, E>>()?,
            list_metadata: self.list_metadata,
        })
    }
}
