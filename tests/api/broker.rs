//! Builders for broker events in the current shape, for tests.

use serde_json::{json, Value};

/// `2026-03-02T10:MM:SS.000Z`: minute `m` of a test's timeline (seconds for finer steps).
pub fn at(minute: u32) -> String {
    format!(
        "2026-03-02T{:02}:{:02}:00.000Z",
        10 + minute / 60,
        minute % 60
    )
}

/// A unique suffix, so tests sharing a database never collide.
pub fn unique() -> String {
    ulid::Ulid::new().to_string()
}

/// One directory of one organization.
#[derive(Clone)]
pub struct TestDirectory {
    /// What makes this directory's ids unique.
    pub tag: String,
    pub id: String,
    pub organization_id: String,
}

impl TestDirectory {
    pub fn new() -> Self {
        let tag = unique();
        Self {
            id: format!("directory_{tag}"),
            organization_id: format!("org_{tag}"),
            tag,
        }
    }

    pub fn object(&self, updated_at: &str) -> Value {
        json!({
            "object": "directory", "id": self.id, "organization_id": self.organization_id,
            "type": "okta scim v2.0", "state": "active", "name": "Test Directory",
            "created_at": at(0), "updated_at": updated_at,
        })
    }

    /// A user snapshot.
    pub fn user(
        &self,
        id: &str,
        idp_id: &str,
        email: Option<&str>,
        first: &str,
        state: &str,
        updated_at: &str,
    ) -> Value {
        json!({
            "object": "directory_user", "id": id, "directory_id": self.id,
            "organization_id": self.organization_id, "idp_id": idp_id, "email": email,
            "first_name": first, "last_name": "Tester", "state": state,
            "custom_attributes": {}, "raw_attributes": {}, "created_at": at(0), "updated_at": updated_at,
        })
    }

    /// A group snapshot.
    pub fn group(&self, id: &str, name: &str, updated_at: &str) -> Value {
        json!({
            "object": "directory_group", "id": id, "idp_id": name, "directory_id": self.id,
            "organization_id": self.organization_id, "name": name,
            "created_at": at(0), "updated_at": updated_at,
        })
    }

    /// `{directory_id, user, group}` for membership events.
    pub fn membership(&self, user: &Value, group: &Value) -> Value {
        json!({ "directory_id": self.id, "user": user, "group": group })
    }
}

/// An event envelope with a fresh id.
pub fn event(kind: &str, data: Value, created_at: &str) -> Value {
    json!({ "object": "event", "id": format!("event_{}", unique()), "event": kind, "data": data, "created_at": created_at })
}
