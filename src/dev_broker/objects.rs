//! The broker's objects on the wire: directories, directory users and groups, list pages and events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A timestamp in unix milliseconds.
pub type Millis = i64;

/// `2026-01-15T12:00:00.000Z`, the broker's format.
pub fn format_time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Reads any timestamp format the broker has used, as unix milliseconds.
pub fn parse_time(text: &str) -> Option<Millis> {
    crate::workos::timestamp::parse(text).map(|t| t.and_utc().timestamp_millis())
}

/// The current time in unix milliseconds.
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The broker's clock: the machine's, moved ahead by [`BrokerClock::advance`], so that tests and demos
/// can let time pass (an event's age, the retention window, a rate window) without waiting for it.
#[derive(Debug, Clone, Default)]
pub struct BrokerClock {
    ahead_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl BrokerClock {
    /// The broker's time now, in unix milliseconds.
    pub fn now_ms(&self) -> Millis {
        now_ms() + self.ahead_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the clock ahead by `by`, for every part of the broker that reads it.
    pub fn advance(&self, by: std::time::Duration) {
        let by = Millis::try_from(by.as_millis()).unwrap_or(Millis::MAX);
        self.ahead_ms
            .fetch_add(by, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A directory as `GET /directories` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryObject {
    pub object: String,
    pub id: String,
    pub organization_id: String,
    pub external_key: String,
    #[serde(rename = "type")]
    pub directory_type: String,
    /// `linked` in the pull API.
    pub state: String,
    pub name: String,
    pub domain: Option<String>,
    #[serde(default)]
    pub domains: Vec<DomainObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<DirectoryMetadata>,
    pub created_at: String,
    pub updated_at: String,
}

/// One of a directory's organization domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainObject {
    pub object: String,
    pub id: String,
    pub domain: String,
}

/// A directory's user and group counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryMetadata {
    pub users: UserCounts,
    pub groups: u64,
}

/// Active and inactive users of a directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCounts {
    pub active: u64,
    pub inactive: u64,
}

/// A user's primary role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSlug {
    pub slug: String,
}

/// A directory user, in events (`groups` absent) and in the pull API (`groups` present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryUserObject {
    pub object: String,
    pub id: String,
    pub directory_id: String,
    pub organization_id: String,
    pub idp_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub state: String,
    #[serde(default)]
    pub custom_attributes: Map<String, Value>,
    #[serde(default)]
    pub raw_attributes: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleSlug>,
    /// Every role slug: those of the user's groups that give one, else the user's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleSlug>>,
    pub created_at: String,
    pub updated_at: String,
    /// The deprecated `groups[]`: empty unless the broker fills it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<DirectoryGroupObject>>,
}

/// A directory group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryGroupObject {
    pub object: String,
    pub id: String,
    pub idp_id: String,
    pub directory_id: String,
    pub organization_id: String,
    pub name: String,
    #[serde(default)]
    pub raw_attributes: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// A `{object:"list", data, list_metadata}` page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    pub object: String,
    pub data: Vec<T>,
    pub list_metadata: ListMetadata,
}

/// The cursors of a page: object ids, or null at either end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMetadata {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A `dsync.*` event as the broker sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerEvent {
    pub object: String,
    /// `event_<ulid>`.
    pub id: String,
    pub event: String,
    pub data: Value,
    pub created_at: String,
}
