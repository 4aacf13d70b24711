//! Lists read a page at a time: a page asked for (a limit and the cursor after which it starts), and one
//! page of a list with where the next one starts.

use serde::Serialize;
use utoipa::ToSchema;

/// A page asked for: at most `limit` items, from after the cursor `after`.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub after: Option<String>,
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

/// One page of a list, with how many items the whole list holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountedList<T> {
    pub data: Vec<T>,
    pub list_metadata: CountedListMetadata,
}

/// Where the next page starts, and how many items the list holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountedListMetadata {
    /// Pass as `?after=` for the next page; null on the last page.
    #[schema(required = true)]
    pub after: Option<String>,
    /// How many items match the list's filters, on every page (counted by the database).
    pub total: i64,
}

impl<T> List<T> {
    /// This page, with how many items the whole list holds.
    pub fn counted(self, total: i64) -> CountedList<T> {
        CountedList {
            data: self.data,
            list_metadata: CountedListMetadata {
                after: self.list_metadata.after,
                total,
            },
        }
    }

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
