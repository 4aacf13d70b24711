//! The records the model holds: directories, users and groups, each in its slot.

use super::error::ModelError;
use crate::dev_broker::generate::{self, Person};
use crate::dev_broker::objects::Millis;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// A directory: its users' and groups' slots, and its users' emails.
pub(crate) struct DirectoryRecord {
    pub id: String,
    pub organization_id: String,
    pub directory_type: String,
    pub name: String,
    pub domain: Option<String>,
    pub external_key: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub users: BTreeSet<u32>,
    pub groups: BTreeSet<u32>,
    /// Lowercased email to user slot: emails are unique within a directory.
    pub emails: HashMap<String, u32>,
}

pub use crate::domain::UserState;

/// Reads a user's state: `active`, `inactive` or the legacy `suspended` (which is `inactive`).
pub fn parse_user_state(text: &str) -> Result<UserState, ModelError> {
    match text {
        "active" => Ok(UserState::Active),
        "inactive" | "suspended" => Ok(UserState::Inactive),
        other => Err(ModelError::Invalid {
            field: "state",
            message: format!("{other:?} is not active or inactive"),
        }),
    }
}

/// A user's custom attributes: generated ones are two small indexes, given ones a JSON object.
#[derive(Debug, Clone)]
pub(crate) enum Attributes {
    Generated { department: u8, job_title: u8 },
    Given(Box<Map<String, Value>>),
}

impl Attributes {
    /// The attributes of a made-up person.
    pub(super) fn made_up(person: &Person) -> Self {
        Attributes::Generated {
            department: person.department,
            job_title: person.job_title,
        }
    }

    pub(super) fn to_map(&self) -> Map<String, Value> {
        match self {
            Attributes::Generated {
                department,
                job_title,
            } => {
                let mut map = Map::new();
                map.insert(
                    "department".into(),
                    generate::DEPARTMENTS[*department as usize].into(),
                );
                map.insert(
                    "job_title".into(),
                    generate::JOB_TITLES[*job_title as usize].into(),
                );
                map
            }
            Attributes::Given(map) => (**map).clone(),
        }
    }
}

/// A directory user: the groups they are in, by slot.
pub(crate) struct UserRecord {
    pub id: String,
    pub directory: u32,
    pub idp_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub state: UserState,
    pub attributes: Attributes,
    pub role: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub groups: BTreeSet<u32>,
}

/// A directory group: its members' slots.
pub(crate) struct GroupRecord {
    pub id: String,
    pub directory: u32,
    pub idp_id: String,
    pub name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub members: BTreeSet<u32>,
    /// The role slug the group gives its members (the broker's identity provider role assignment).
    pub role_slug: Option<String>,
}
