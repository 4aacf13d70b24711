//! Lists as the pull API pages them: the order, the cursors before and after, and which objects a list
//! covers.

use super::directory::DirectoryModel;
use super::error::ModelError;
use crate::dev_broker::objects::*;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// The `order` of a list: by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    /// Newest first; `after` leads to older objects.
    Desc,
    /// Newest first with the legacy cursors: `before` leads to older objects, `after` to newer ones.
    Normal,
}

impl Order {
    /// Reads `asc`, `desc` or `normal`.
    pub fn parse(text: &str) -> Option<Order> {
        match text {
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            "normal" => Some(Order::Normal),
            _ => None,
        }
    }
}

/// A list request's paging parameters.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub order: Order,
    pub after: Option<String>,
    pub before: Option<String>,
    pub limit: usize,
}

/// Which users a list covers.
#[derive(Debug, Clone, Copy)]
pub enum UserScope<'a> {
    Directory(&'a str),
    Group(&'a str),
    /// Users of a directory with this `idp_id` and/or email.
    Matching {
        directory: &'a str,
        idp_id: Option<&'a str>,
        email: Option<&'a str>,
    },
}

/// Which groups a list covers.
#[derive(Debug, Clone, Copy)]
pub enum GroupScope<'a> {
    Directory(&'a str),
    User(&'a str),
}

/// The slots of one page, in display order, and the cursors around it.
struct SlotPage {
    slots: Vec<u32>,
    before: Option<u32>,
    after: Option<u32>,
}

fn page_of(
    set: &BTreeSet<u32>,
    order: Order,
    after: Option<u32>,
    before: Option<u32>,
    limit: usize,
) -> SlotPage {
    use Bound::{Excluded, Unbounded};
    // Bounds in creation order, and from which end of the range the page is taken.
    let (low, high, from_low) = match order {
        Order::Asc => (
            after.map_or(Unbounded, Excluded),
            before.map_or(Unbounded, Excluded),
            !(before.is_some() && after.is_none()),
        ),
        Order::Desc => (
            before.map_or(Unbounded, Excluded),
            after.map_or(Unbounded, Excluded),
            before.is_some() && after.is_none(),
        ),
        Order::Normal => (
            after.map_or(Unbounded, Excluded),
            before.map_or(Unbounded, Excluded),
            after.is_some(),
        ),
    };
    if let (Excluded(l), Excluded(h)) = (low, high) {
        if l >= h {
            return SlotPage {
                slots: Vec::new(),
                before: None,
                after: None,
            };
        }
    }
    let range = set.range((low, high));
    let mut slots: Vec<u32> = if from_low {
        range.take(limit).copied().collect()
    } else {
        let mut v: Vec<u32> = range.rev().take(limit).copied().collect();
        v.reverse();
        v
    };
    let (Some(&first), Some(&last)) = (slots.first(), slots.last()) else {
        return SlotPage {
            slots,
            before: None,
            after: None,
        };
    };
    let older = set.range(..first).next_back().is_some();
    let newer = set.range((Excluded(last), Unbounded)).next().is_some();
    let (before, after) = match order {
        Order::Asc => (older.then_some(first), newer.then_some(last)),
        Order::Desc => (newer.then_some(last), older.then_some(first)),
        Order::Normal => (older.then_some(first), newer.then_some(last)),
    };
    if order != Order::Asc {
        slots.reverse();
    }
    SlotPage {
        slots,
        before,
        after,
    }
}

impl DirectoryModel {
    fn cursors(
        &self,
        query: &PageQuery,
        index: &HashMap<String, u32>,
    ) -> Result<(Option<u32>, Option<u32>), ModelError> {
        let resolve = |field: &'static str, id: &Option<String>| match id {
            None => Ok(None),
            Some(id) => index
                .get(id)
                .copied()
                .map(Some)
                .ok_or_else(|| ModelError::Invalid {
                    field,
                    message: format!("{id:?} is not an id of this list"),
                }),
        };
        Ok((
            resolve("after", &query.after)?,
            resolve("before", &query.before)?,
        ))
    }

    fn list_metadata(&self, page: &SlotPage, id_of: impl Fn(u32) -> String) -> ListMetadata {
        ListMetadata {
            before: page.before.map(&id_of),
            after: page.after.map(&id_of),
        }
    }

    /// `GET /directories`, optionally of one organization.
    pub fn list_directories(
        &self,
        organization_id: Option<&str>,
        query: &PageQuery,
    ) -> Result<ListPage<DirectoryObject>, ModelError> {
        let set: BTreeSet<u32> = (0..self.directories.len() as u32)
            .filter(|&d| {
                organization_id.is_none_or(|o| self.directories[d as usize].organization_id == o)
            })
            .collect();
        let (after, before) = self.cursors(query, &self.directory_ids)?;
        let page = page_of(&set, query.order, after, before, query.limit);
        Ok(ListPage {
            object: "list".into(),
            data: page
                .slots
                .iter()
                .map(|&d| self.directory_object(d))
                .collect(),
            list_metadata: self.list_metadata(&page, |d| self.directories[d as usize].id.clone()),
        })
    }

    /// `GET /directory_users?directory=` or `?group=`.
    pub fn list_users(
        &self,
        scope: UserScope<'_>,
        query: &PageQuery,
        fill_groups: bool,
    ) -> Result<ListPage<DirectoryUserObject>, ModelError> {
        let matching: BTreeSet<u32>;
        let set = match scope {
            UserScope::Directory(id) => {
                &self.directories[self.directory_slot(Some(id))? as usize].users
            }
            UserScope::Group(id) => &self.group(self.group_slot(id)?).members,
            UserScope::Matching {
                directory,
                idp_id,
                email,
            } => {
                let d = &self.directories[self.directory_slot(Some(directory))? as usize];
                let email = email.map(str::to_lowercase);
                matching = d
                    .users
                    .iter()
                    .copied()
                    .filter(|&u| {
                        let user = self.user(u);
                        idp_id.is_none_or(|i| user.idp_id == i)
                            && email.as_deref().is_none_or(|e| {
                                user.email.as_deref().map(str::to_lowercase).as_deref() == Some(e)
                            })
                    })
                    .collect();
                &matching
            }
        };
        let (after, before) = self.cursors(query, &self.user_ids)?;
        let page = page_of(set, query.order, after, before, query.limit);
        Ok(ListPage {
            object: "list".into(),
            data: page
                .slots
                .iter()
                .map(|&u| self.user_object(u, Some(fill_groups)))
                .collect(),
            list_metadata: self.list_metadata(&page, |u| self.id_of_user_slot(u)),
        })
    }

    /// `GET /directory_groups?directory=` or `?user=`.
    pub fn list_groups(
        &self,
        scope: GroupScope<'_>,
        query: &PageQuery,
    ) -> Result<ListPage<DirectoryGroupObject>, ModelError> {
        let set = match scope {
            GroupScope::Directory(id) => {
                &self.directories[self.directory_slot(Some(id))? as usize].groups
            }
            GroupScope::User(id) => &self.user(self.user_slot(id)?).groups,
        };
        let (after, before) = self.cursors(query, &self.group_ids)?;
        let page = page_of(set, query.order, after, before, query.limit);
        Ok(ListPage {
            object: "list".into(),
            data: page.slots.iter().map(|&g| self.group_object(g)).collect(),
            list_metadata: self.list_metadata(&page, |g| self.group(g).id.clone()),
        })
    }

    fn id_of_user_slot(&self, slot: u32) -> String {
        self.user(slot).id.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u32) -> BTreeSet<u32> {
        (0..n).collect()
    }

    fn walk(order: Order, n: u32, limit: usize) -> Vec<u32> {
        let s = set(n);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = page_of(&s, order, after, None, limit);
            seen.extend(&page.slots);
            match page.after {
                Some(a) => after = Some(a),
                None => return seen,
            }
        }
    }

    #[test]
    fn following_after_walks_every_slot_once_in_order() {
        assert_eq!(walk(Order::Asc, 25, 10), (0..25).collect::<Vec<_>>());
        assert_eq!(walk(Order::Desc, 25, 10), (0..25).rev().collect::<Vec<_>>());
        assert_eq!(walk(Order::Asc, 20, 10), (0..20).collect::<Vec<_>>());
        assert!(walk(Order::Desc, 0, 10).is_empty());
    }

    #[test]
    fn before_leads_back_to_the_previous_page() {
        let s = set(25);
        let second = page_of(&s, Order::Desc, Some(15), None, 10);
        assert_eq!(second.slots, (5..15).rev().collect::<Vec<_>>());
        assert_eq!((second.before, second.after), (Some(14), Some(5)));
        let back = page_of(&s, Order::Desc, None, second.before, 10);
        assert_eq!(back.slots, (15..25).rev().collect::<Vec<_>>());
        assert_eq!((back.before, back.after), (None, Some(15)));
    }

    #[test]
    fn normal_order_keeps_the_legacy_cursors() {
        let s = set(5);
        // Newest first; `before` points at the oldest shown when older ones remain.
        let first = page_of(&s, Order::Normal, None, None, 2);
        assert_eq!(first.slots, vec![4, 3]);
        assert_eq!((first.before, first.after), (Some(3), None));
        let older = page_of(&s, Order::Normal, None, Some(3), 2);
        assert_eq!(older.slots, vec![2, 1]);
        assert_eq!((older.before, older.after), (Some(1), Some(2)));
        let newer = page_of(&s, Order::Normal, Some(1), None, 2);
        assert_eq!(newer.slots, vec![3, 2]);
    }
}
