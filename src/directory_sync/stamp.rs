//! The order of snapshots: a snapshot applies only if its [`Stamp`] is newer than the stored one, so any
//! delivery order ends in the same state.

use crate::workos::timestamp::Timestamp;

/// The ordering key of a snapshot: the object's `updated_at`, ties broken by the event's `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub updated_at: Timestamp,
    pub event_at: Timestamp,
}

impl Stamp {
    /// The stamp of an object snapshot carried by an event created at `event_at`.
    pub fn of(object_updated_at: Option<Timestamp>, event_at: Timestamp) -> Self {
        Self {
            updated_at: object_updated_at.unwrap_or(event_at),
            event_at,
        }
    }

    /// Whether a snapshot with this stamp replaces one stored with `stored` (none stored: it does).
    pub fn supersedes(self, stored: Option<(Timestamp, Timestamp)>) -> bool {
        stored.is_none_or(|(updated_at, event_at)| {
            self > Stamp {
                updated_at,
                event_at,
            }
        })
    }
}
