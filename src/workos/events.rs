//! The `dsync.*` event envelope and the directory objects it carries, in every shape the broker has sent.

use super::timestamp::{self, BrokerTime, Timestamp};
use crate::domain::UserState;
use crate::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
use serde::{Deserialize, Deserializer, Serialize};

/// Every event type Rollcall applies (the others are acknowledged and ignored); the Events API tail asks
/// for these.
pub const APPLIED_EVENT_TYPES: [&str; 11] = [
    "dsync.activated",
    "dsync.deleted",
    "dsync.deactivated",
    "dsync.user.created",
    "dsync.user.updated",
    "dsync.user.deleted",
    "dsync.group.created",
    "dsync.group.updated",
    "dsync.group.deleted",
    "dsync.group.user_added",
    "dsync.group.user_removed",
];

/// Why a correctly signed body is not an event Rollcall can store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPayload(pub String);

/// A broker event: the envelope plus its typed payload.
#[derive(Debug, Clone)]
pub struct Event {
    /// `event_…`, or `wh_…` in older deliveries.
    pub id: String,
    /// The event type, such as `dsync.user.created`.
    pub event_type: String,
    /// When the broker created the event; absent in some legacy payloads.
    pub created_at: Option<Timestamp>,
    pub payload: EventPayload,
}

/// What an event asks Rollcall to apply.
#[derive(Debug, Clone)]
pub enum EventPayload {
    DirectoryActivated(Directory),
    DirectoryDeleted(Directory),
    /// Legacy `dsync.deactivated`: the directory is inactive.
    DirectoryDeactivated(Directory),
    UserCreated(DirectoryUser),
    UserUpdated(DirectoryUser),
    UserDeleted(DirectoryUser),
    GroupCreated(DirectoryGroup),
    GroupUpdated(DirectoryGroup),
    GroupDeleted(DirectoryGroup),
    GroupUserAdded(GroupMembershipChange),
    GroupUserRemoved(GroupMembershipChange),
    /// `dsync.token.*` and any type Rollcall has nothing to apply for.
    NothingToApply,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    event: String,
    /// Read by the payload's own type, which skips what it does not know (custom attributes, however deep
    /// they nest) unread.
    #[serde(default)]
    data: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    created_at: Option<String>,
}

impl Event {
    /// Reads an event from the raw request body.
    pub fn parse(body: &[u8]) -> Result<Event, InvalidPayload> {
        let envelope: Envelope = serde_json::from_slice(&super::text::strip_nul(body))
            .map_err(|e| InvalidPayload(format!("not an event envelope: {e}")))?;
        if envelope.id.trim().is_empty() {
            return Err(InvalidPayload("the event id is empty".into()));
        }
        let created_at = match envelope.created_at.as_deref() {
            None => None,
            Some(text) => Some(timestamp::parse(text).ok_or_else(|| {
                InvalidPayload(format!("created_at {text:?} is not a timestamp"))
            })?),
        };
        let data = envelope.data.as_deref().map_or("null", |d| d.get());
        let payload = EventPayload::parse(&envelope.event, data)?;
        Ok(Event {
            id: envelope.id,
            event_type: envelope.event,
            created_at,
            payload,
        })
    }

    /// The directory the event concerns, where the payload names one.
    pub fn directory_id(&self) -> Option<&DirectoryId> {
        self.scope().map(|(directory, _)| directory)
    }

    /// The broker organization named in the payload, if any (older payloads name none).
    pub fn organization_id(&self) -> Option<&str> {
        self.scope().and_then(|(_, organization)| organization)
    }

    /// The directory and, where named, the organization of the payload.
    fn scope(&self) -> Option<(&DirectoryId, Option<&str>)> {
        Some(match &self.payload {
            EventPayload::DirectoryActivated(d)
            | EventPayload::DirectoryDeleted(d)
            | EventPayload::DirectoryDeactivated(d) => (&d.id, d.organization_id.as_deref()),
            EventPayload::UserCreated(u)
            | EventPayload::UserUpdated(u)
            | EventPayload::UserDeleted(u) => (&u.directory_id, u.organization_id.as_deref()),
            EventPayload::GroupCreated(g)
            | EventPayload::GroupUpdated(g)
            | EventPayload::GroupDeleted(g) => (&g.directory_id, g.organization_id.as_deref()),
            EventPayload::GroupUserAdded(m) | EventPayload::GroupUserRemoved(m) => (
                &m.directory_id,
                m.group
                    .organization_id
                    .as_deref()
                    .or(m.user.organization_id.as_deref()),
            ),
            EventPayload::NothingToApply => return None,
        })
    }
}

impl EventPayload {
    fn parse(event_type: &str, data: &str) -> Result<EventPayload, InvalidPayload> {
        fn typed<T: serde::de::DeserializeOwned + Validate>(
            event_type: &str,
            data: &str,
        ) -> Result<T, InvalidPayload> {
            let value: T = serde_json::from_str(data)
                .map_err(|e| InvalidPayload(format!("{event_type} data: {e}")))?;
            value
                .validate()
                .map_err(|e| InvalidPayload(format!("{event_type} data: {e}")))?;
            Ok(value)
        }
        use EventPayload::*;
        Ok(match event_type {
            "dsync.activated" => DirectoryActivated(typed(event_type, data)?),
            "dsync.deleted" => DirectoryDeleted(typed(event_type, data)?),
            "dsync.deactivated" => DirectoryDeactivated(typed(event_type, data)?),
            "dsync.user.created" => UserCreated(typed(event_type, data)?),
            "dsync.user.updated" => UserUpdated(typed(event_type, data)?),
            "dsync.user.deleted" => UserDeleted(typed(event_type, data)?),
            "dsync.group.created" => GroupCreated(typed(event_type, data)?),
            "dsync.group.updated" => GroupUpdated(typed(event_type, data)?),
            "dsync.group.deleted" => GroupDeleted(typed(event_type, data)?),
            "dsync.group.user_added" => GroupUserAdded(typed(event_type, data)?),
            "dsync.group.user_removed" => GroupUserRemoved(typed(event_type, data)?),
            _ => NothingToApply,
        })
    }
}

trait Validate {
    fn validate(&self) -> Result<(), String>;
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A broker directory (`directory_…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Directory {
    pub id: DirectoryId,
    #[serde(default)]
    pub organization_id: Option<String>,
    /// The provider, an open set such as `okta scim v2.0`.
    #[serde(rename = "type", default)]
    pub directory_type: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub created_at: Option<BrokerTime>,
    #[serde(default)]
    pub updated_at: Option<BrokerTime>,
}

impl Validate for Directory {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", self.id.as_str())?;
        Ok(())
    }
}

impl Directory {
    /// When the broker last changed this directory.
    pub fn updated_at(&self) -> Option<Timestamp> {
        self.updated_at.map(|t| t.0)
    }
}

/// One of the deprecated `emails[]` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserEmail {
    #[serde(default)]
    pub primary: Option<bool>,
    #[serde(default)]
    pub value: Option<String>,
}

/// A person in the customer's directory, as the broker sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: DirectoryUserId,
    pub directory_id: DirectoryId,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub idp_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub emails: Vec<UserEmail>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub created_at: Option<BrokerTime>,
    #[serde(default)]
    pub updated_at: Option<BrokerTime>,
    /// Deprecated and often empty; filled by some list responses.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<serde_json::Value>,
    /// The primary role the identity provider assigned (`{slug}`); absent when the broker sends none.
    #[serde(
        default,
        deserialize_with = "tolerant_role",
        skip_serializing_if = "Option::is_none"
    )]
    pub role: Option<SlimRole>,
    /// Every role assigned ("identity provider role assignment"); absent when the broker sends none.
    #[serde(
        default,
        deserialize_with = "tolerant_roles",
        skip_serializing_if = "Option::is_none"
    )]
    pub roles: Option<Vec<SlimRole>>,
    /// The attributes the customer mapped at the broker (department, manager, employee number, …).
    #[serde(
        default,
        deserialize_with = "tolerant_object",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub custom_attributes: serde_json::Map<String, serde_json::Value>,
    /// Deprecated predefined attributes some directories still send.
    #[serde(
        default,
        deserialize_with = "tolerant_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub job_title: Option<String>,
    #[serde(
        default,
        deserialize_with = "tolerant_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub username: Option<String>,
}

/// A role as the broker names it on a directory user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlimRole {
    pub slug: String,
}

/// The longest role slug kept; a longer one is not a slug.
const LONGEST_SLUG: usize = 200;

impl SlimRole {
    /// A role from whatever the broker sent in its place: `{slug: text}` with a usable slug, else nothing.
    fn from_value(value: &serde_json::Value) -> Option<SlimRole> {
        let slug = value.get("slug")?.as_str()?.trim();
        (!slug.is_empty() && slug.len() <= LONGEST_SLUG).then(|| SlimRole {
            slug: slug.to_string(),
        })
    }
}

/// `role`: `{slug}`, or nothing for null or any other shape (an unknown shape is not fatal).
fn tolerant_role<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SlimRole>, D::Error> {
    Ok(shallow(deserializer, 2)?
        .as_ref()
        .and_then(SlimRole::from_value))
}

/// `roles`: the usable `{slug}` entries of a list; nothing for null or any other shape.
fn tolerant_roles<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<SlimRole>>, D::Error> {
    Ok(shallow(deserializer, 3)?
        .as_ref()
        .and_then(serde_json::Value::as_array)
        .map(|roles| roles.iter().filter_map(SlimRole::from_value).collect()))
}

/// A value nesting at most `depth` levels below it, else nothing: what nests deeper is skipped without
/// being read into memory, so no shape an identity provider sends makes its user unreadable.
fn shallow<'de, D: Deserializer<'de>>(
    deserializer: D,
    depth: usize,
) -> Result<Option<serde_json::Value>, D::Error> {
    deserializer.deserialize_any(Bounded(depth))
}

/// How deep an attribute's value may nest; an attribute nesting deeper is left out (an identity provider
/// can nest a value deeper than any JSON reader's recursion limit, and one such attribute must not make
/// its user unreadable).
const ATTRIBUTE_DEPTH: usize = 16;

/// An object of attributes, each nesting at most [`ATTRIBUTE_DEPTH`] deep (deeper ones left out); empty
/// for null or any other shape.
fn tolerant_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    deserializer.deserialize_any(Attributes)
}

struct Attributes;

impl<'de> serde::de::Visitor<'de> for Attributes {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of attributes")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut attributes = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if let Some(value) = map.next_value_seed(Bounded(ATTRIBUTE_DEPTH))? {
                attributes.insert(name, value);
            }
        }
        Ok(attributes)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(serde_json::Map::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(serde_json::Map::new())
    }
}

/// Reads a JSON value nesting at most this many levels below it; `None` for one nesting deeper, whose
/// deeper parts are skipped without being read into memory.
#[derive(Clone, Copy)]
struct Bounded(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Bounded {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(serde_json::Value::Null))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Some(serde_json::Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(below) = self.0.checked_sub(1) else {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut items = Some(Vec::new());
        while let Some(item) = seq.next_element_seed(Bounded(below))? {
            match (&mut items, item) {
                (Some(items), Some(item)) => items.push(item),
                (found, _) => *found = None,
            }
        }
        Ok(items.map(Into::into))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(below) = self.0.checked_sub(1) else {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(None);
        };
        let mut object = Some(serde_json::Map::new());
        while let Some(key) = map.next_key::<String>()? {
            match (&mut object, map.next_value_seed(Bounded(below))?) {
                (Some(object), Some(value)) => {
                    object.insert(key, value);
                }
                (found, _) => *found = None,
            }
        }
        Ok(object.map(Into::into))
    }
}

/// A string, or nothing for null or any other shape.
fn tolerant_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match shallow(deserializer, 0)? {
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        _ => Ok(None),
    }
}

impl Validate for DirectoryUser {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", self.id.as_str())?;
        non_empty("directory_id", self.directory_id.as_str())?;
        Ok(())
    }
}

impl DirectoryUser {
    /// The role slugs the identity provider assigned: `roles` when the broker sent it, else `role`.
    pub fn role_slugs(&self) -> Vec<&str> {
        match (&self.roles, &self.role) {
            (Some(roles), _) => roles.iter().map(|r| r.slug.as_str()).collect(),
            (None, Some(role)) => vec![role.slug.as_str()],
            (None, None) => Vec::new(),
        }
    }

    /// The attributes shown on the member: the predefined ones the broker sent, then its custom ones.
    pub fn attributes(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut attributes = serde_json::Map::new();
        for (name, value) in [("job_title", &self.job_title), ("username", &self.username)] {
            if let Some(value) = value {
                attributes.insert(name.into(), value.clone().into());
            }
        }
        attributes.extend(self.custom_attributes.clone());
        attributes
    }

    /// The user's email: `email`, else the primary (or first) of the legacy `emails[]`.
    pub fn primary_email(&self) -> Option<&str> {
        let usable = |e: &&str| !e.trim().is_empty();
        self.email.as_deref().filter(usable).or_else(|| {
            let values = || {
                self.emails
                    .iter()
                    .filter_map(|e| Some((e, e.value.as_deref()?)))
            };
            values()
                .find(|(e, _)| e.primary == Some(true))
                .or_else(|| values().next())
                .map(|(_, v)| v)
                .filter(usable)
        })
    }

    /// `active` in the directory; `inactive` and legacy `suspended` are not.
    pub fn is_active(&self) -> bool {
        self.state
            .as_deref()
            .unwrap_or("active")
            .eq_ignore_ascii_case("active")
    }

    /// The state Rollcall records: legacy `suspended` reads as `inactive`.
    pub fn normalized_state(&self) -> UserState {
        if self.is_active() {
            UserState::Active
        } else {
            UserState::Inactive
        }
    }

    /// When the broker last changed this user.
    pub fn updated_at(&self) -> Option<Timestamp> {
        self.updated_at.map(|t| t.0)
    }
}

/// A group in the customer's directory, as the broker sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryGroup {
    pub id: DirectoryGroupId,
    pub directory_id: DirectoryId,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub idp_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<BrokerTime>,
    #[serde(default)]
    pub updated_at: Option<BrokerTime>,
}

impl Validate for DirectoryGroup {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", self.id.as_str())?;
        non_empty("directory_id", self.directory_id.as_str())?;
        Ok(())
    }
}

impl DirectoryGroup {
    /// When the broker last changed this group.
    pub fn updated_at(&self) -> Option<Timestamp> {
        self.updated_at.map(|t| t.0)
    }
}

/// The payload of `dsync.group.user_added` and `dsync.group.user_removed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMembershipChange {
    pub directory_id: DirectoryId,
    pub user: DirectoryUser,
    pub group: DirectoryGroup,
}

impl Validate for GroupMembershipChange {
    fn validate(&self) -> Result<(), String> {
        non_empty("directory_id", self.directory_id.as_str())?;
        self.user.validate().map_err(|e| format!("user: {e}"))?;
        self.group.validate().map_err(|e| format!("group: {e}"))
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} is empty"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_and_texts_nested_past_any_reader_are_ignored_not_fatal() {
        let deep = "[".repeat(400) + &"]".repeat(400);
        let user = format!(
            r#"{{"id": "directory_user_deep", "directory_id": "directory_1", "state": "active",
                "role": {deep}, "roles": {deep}, "job_title": {deep}, "username": "ada",
                "custom_attributes": {{"manager": {deep}, "team": "core"}}}}"#
        );
        let user: super::DirectoryUser = serde_json::from_str(&user).expect("the user is read");
        assert_eq!((user.role, user.roles, user.job_title), (None, None, None));
        assert_eq!(user.username.as_deref(), Some("ada"));
        assert_eq!(
            serde_json::Value::Object(user.custom_attributes),
            serde_json::json!({"team": "core"})
        );
    }

    use super::*;
    use std::path::Path;

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/workos/fixtures")
    }

    /// Every webhook payload the SDKs have shipped, from 2021 to 2026.
    fn webhook_fixtures() -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        for dir in [
            "go-generated",
            "kotlin-legacy-5631ebf2",
            "node",
            "ruby",
            "elixir",
            "workos-rust-v0.2",
        ] {
            for entry in std::fs::read_dir(fixtures().join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let body = std::fs::read(&path).unwrap();
                let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    continue;
                };
                if value
                    .get("event")
                    .and_then(|e| e.as_str())
                    .is_some_and(|e| e.starts_with("dsync.") || e == "<EVENT_TYPE>")
                {
                    found.push((path.display().to_string(), body));
                }
            }
        }
        found
    }

    #[test]
    fn every_sdk_webhook_fixture_parses() {
        let fixtures = webhook_fixtures();
        assert!(fixtures.len() >= 25, "found only {}", fixtures.len());
        for (path, body) in fixtures {
            // Kotlin's tests reuse one body for several types: pick the one its data fits.
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let data = &value["data"];
            let stand_in = if data.get("user").is_some() {
                "dsync.group.user_added"
            } else {
                match data["object"].as_str() {
                    Some("directory_group") => "dsync.group.updated",
                    Some("directory") => "dsync.activated",
                    _ => "dsync.user.updated",
                }
            };
            let body = String::from_utf8(body)
                .unwrap()
                .replace("<EVENT_TYPE>", stand_in);
            let event = Event::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e}"));
            if event.event_type.starts_with("dsync.")
                && !event.event_type.starts_with("dsync.token")
            {
                assert!(event.directory_id().is_some(), "{path}");
            }
        }
    }

    #[test]
    fn legacy_user_without_email_takes_the_primary_of_emails() {
        let body =
            std::fs::read(fixtures().join("ruby/webhook_payload_dsync_user_created.txt")).unwrap();
        let event = Event::parse(&body).unwrap();
        let EventPayload::UserCreated(user) = event.payload else {
            panic!("not a user.created");
        };
        assert_eq!(user.email, None);
        assert_eq!(user.primary_email(), Some("blair@foo-corp.com"));
        assert!(user.is_active());
        assert_eq!(event.id, "wh_123");
    }

    #[test]
    fn suspended_reads_as_inactive() {
        let body = std::fs::read(fixtures().join("workos-rust-v0.2/directory_user_updated_1.json"))
            .unwrap();
        let event = Event::parse(&body).unwrap();
        let EventPayload::UserUpdated(user) = event.payload else {
            panic!("not a user.updated");
        };
        assert_eq!(user.state.as_deref(), Some("suspended"));
        assert_eq!(user.normalized_state(), UserState::Inactive);
    }

    #[test]
    fn membership_events_carry_both_objects() {
        let body =
            std::fs::read(fixtures().join("go-generated/dsync_group_user_added.json")).unwrap();
        let event = Event::parse(&body).unwrap();
        let EventPayload::GroupUserAdded(change) = event.payload else {
            panic!("not a user_added");
        };
        assert_eq!(change.group.name.as_deref(), Some("Developers"));
        assert_eq!(
            change.user.primary_email(),
            Some("marcelina.davis@example.com")
        );
    }

    #[test]
    fn unknown_types_need_only_an_envelope() {
        let event =
            Event::parse(br#"{"id":"event_1","event":"kitten.created","data":{"x":1}}"#).unwrap();
        assert!(matches!(event.payload, EventPayload::NothingToApply));
        assert_eq!(event.created_at, None);
    }

    #[test]
    fn bodies_that_are_not_events_are_invalid() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"id":"","event":"dsync.user.created"}"#,
            br#"{"id":"event_1","event":"dsync.user.created","data":{"directory_id":"d"}}"#,
            br#"{"id":"event_1","event":"dsync.user.created","data":{"id":"u","directory_id":"d","updated_at":"later"}}"#,
            br#"{"id":"event_1","event":"dsync.user.created","created_at":"soon","data":{"id":"u","directory_id":"d"}}"#,
            br#"{"id":"\u0000","event":"dsync.user.created","data":{"id":"u","directory_id":"d"}}"#,
        ] {
            assert!(Event::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn nul_characters_are_removed_not_refused() {
        let body = br#"{"id":"event_\u00001","event":"dsync.user.updated","data":{"id":"u","directory_id":"d","email":"a\u0000@b.c","first_name":"Ann\u0000","state":"inactive"}}"#;
        let event = Event::parse(body).unwrap();
        assert_eq!(event.id, "event_1");
        let EventPayload::UserUpdated(user) = event.payload else {
            panic!("a user update");
        };
        assert_eq!(user.primary_email(), Some("a@b.c"));
        assert_eq!(user.first_name.as_deref(), Some("Ann"));
        assert!(!user.is_active());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// A fixture picked by index, with bytes overwritten, cut or spliced in.
        fn mutated() -> impl Strategy<Value = Vec<u8>> {
            let fixtures: Vec<Vec<u8>> = webhook_fixtures().into_iter().map(|(_, b)| b).collect();
            (
                any::<prop::sample::Index>(),
                prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                any::<prop::sample::Index>(),
                any::<bool>(),
            )
                .prop_map(move |(pick, writes, cut, truncate)| {
                    let mut body = fixtures[pick.index(fixtures.len())].clone();
                    for (at, byte) in writes {
                        let at = at.index(body.len().max(1));
                        if at < body.len() {
                            body[at] = byte;
                        }
                    }
                    if truncate {
                        body.truncate(cut.index(body.len() + 1));
                    }
                    body
                })
        }

        /// Event envelopes of any known type with data of the wrong shapes.
        fn odd_envelope() -> impl Strategy<Value = Vec<u8>> {
            let known = [
                "dsync.user.created",
                "dsync.user.deleted",
                "dsync.group.user_added",
                "dsync.group.deleted",
                "dsync.activated",
                "dsync.deleted",
            ];
            let kind = prop_oneof![
                prop::sample::select(known.to_vec()).prop_map(str::to_string),
                "[a-z.]{0,20}",
            ];
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "\\PC{0,12}".prop_map(serde_json::Value::from),
            ];
            let data = leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("id".to_string()),
                            Just("state".to_string()),
                            Just("user".to_string()),
                            Just("group".to_string()),
                            Just("emails".to_string()),
                            "[a-z_]{1,8}"
                        ],
                        inner,
                        0..5,
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            });
            (kind, data, "\\PC{0,30}").prop_map(|(kind, data, created_at)| {
                serde_json::json!({ "id": "event_fuzz", "event": kind, "data": data, "created_at": created_at })
                    .to_string()
                    .into_bytes()
            })
        }

        proptest! {
            #![proptest_config(crate::workos::proptest_config(2000))]

            #[test]
            fn any_body_is_parsed_or_refused_without_panic(
                body in prop_oneof![
                    mutated(),
                    odd_envelope(),
                    prop::collection::vec(any::<u8>(), 0..300),
                ],
            ) {
                // Either outcome is fine; a panic is not, and a refusal says why.
                if let Err(why) = Event::parse(&body) {
                    prop_assert!(!why.0.is_empty());
                }
            }
        }
    }

    #[test]
    fn the_applied_event_types_are_those_with_a_payload_to_apply() {
        let parses_as = |event_type: &str| EventPayload::parse(event_type, "{}");
        for event_type in APPLIED_EVENT_TYPES {
            // An applied type reads its data, so empty data is refused; an ignored one is not read.
            let refused = parses_as(event_type).expect_err(event_type);
            assert!(refused.0.starts_with(event_type), "{refused}");
        }
        for ignored in ["dsync.token.created", "dsync.token.revoked", "user.created"] {
            assert!(matches!(
                parses_as(ignored),
                Ok(EventPayload::NothingToApply)
            ));
        }
    }
}
