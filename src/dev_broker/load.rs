//! Loading a directory from a JSON file (`--load`); the format is described in the module's parent.
//! An absent `Option` field reads as `None`; only lists need `#[serde(default)]`.

use super::generate;
use super::model::{
    parse_user_state, Attributes, DirectoryModel, GroupRecord, ModelError, NewDirectory,
    UserRecord, UserState,
};
use super::objects::{now_ms, parse_time, Millis};
use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    /// Absent or empty: the directory given on the command line.
    #[serde(default)]
    pub directories: Vec<DirectoryEntry>,
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

/// A directory in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryEntry {
    pub id: String,
    pub organization_id: String,
    #[serde(rename = "type")]
    pub directory_type: Option<String>,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub created_at: Option<String>,
}

/// A group in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub id: Option<String>,
    pub directory_id: Option<String>,
    pub idp_id: Option<String>,
    pub name: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The role slug the group gives its members.
    #[serde(default)]
    pub role_slug: Option<String>,
}

/// A user in the file; `groups` names groups by id or by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub id: Option<String>,
    pub directory_id: Option<String>,
    pub idp_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub state: Option<String>,
    pub custom_attributes: Option<Map<String, Value>>,
    pub role: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

fn time(field: &str, text: &Option<String>, default: Millis) -> anyhow::Result<Millis> {
    match text {
        None => Ok(default),
        Some(t) => parse_time(t).with_context(|| format!("{field} {t:?} is not a timestamp")),
    }
}

/// Reads `file` into an empty model; `default_directory` is used when the file names no directory.
pub fn load(
    model: &mut DirectoryModel,
    file: DirectoryFile,
    default_directory: NewDirectory,
) -> anyhow::Result<()> {
    let now = now_ms();
    let default_type = default_directory.directory_type.clone();
    if file.directories.is_empty() {
        model.add_directory(default_directory)?;
    }
    for d in file.directories {
        let created_at = time("directory created_at", &d.created_at, now)?;
        model.add_directory(NewDirectory {
            id: d.id,
            organization_id: d.organization_id,
            directory_type: d.directory_type.unwrap_or_else(|| default_type.clone()),
            name: d.name.unwrap_or_else(|| "Directory".into()),
            domain: d.domain,
            created_at,
        })?;
    }

    // Slots follow creation time; the file's order breaks ties.
    let mut groups = file
        .groups
        .into_iter()
        .map(|g| Ok((time("group created_at", &g.created_at, now)?, g)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    groups.sort_by_key(|(at, _)| *at);
    let mut by_name: HashMap<(u32, String), u32> = HashMap::new();
    let mut by_id: HashMap<String, u32> = HashMap::new();
    for (created_at, g) in groups {
        let directory = model.directory_slot(g.directory_id.as_deref())?;
        let directory_type = model.directories[directory as usize].directory_type.clone();
        let id = match g.id {
            Some(id) => id,
            None => model.mint_id("directory_group_", created_at),
        };
        let idp_id = g
            .idp_id
            .unwrap_or_else(|| generate::idp_group_id(&directory_type, &g.name, &mut model.rng));
        let updated_at = time("group updated_at", &g.updated_at, created_at)?;
        let slot = model
            .insert_group(GroupRecord {
                id: id.clone(),
                directory,
                idp_id,
                name: g.name.clone(),
                created_at,
                updated_at,
                members: BTreeSet::new(),
                role_slug: g.role_slug.clone(),
            })
            .with_context(|| format!("group {id}"))?;
        by_name.entry((directory, g.name)).or_insert(slot);
        by_id.insert(id, slot);
    }

    let mut users = file
        .users
        .into_iter()
        .map(|u| Ok((time("user created_at", &u.created_at, now)?, u)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    users.sort_by_key(|(at, _)| *at);
    for (created_at, u) in users {
        let directory = model.directory_slot(u.directory_id.as_deref())?;
        let directory_type = model.directories[directory as usize].directory_type.clone();
        let id = match u.id {
            Some(id) => id,
            None => model.mint_id("directory_user_", created_at),
        };
        let state = match u.state.as_deref() {
            None => UserState::Active,
            Some(s) => parse_user_state(s).map_err(anyhow::Error::from)?,
        };
        let record = UserRecord {
            id: id.clone(),
            directory,
            idp_id: u
                .idp_id
                .unwrap_or_else(|| generate::idp_user_id(&directory_type, &mut model.rng)),
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            state,
            attributes: Attributes::Given(Box::new(u.custom_attributes.unwrap_or_default())),
            role: u.role,
            created_at,
            updated_at: time("user updated_at", &u.updated_at, created_at)?,
            groups: BTreeSet::new(),
        };
        let slot = model
            .insert_user(record)
            .with_context(|| format!("user {id}"))?;
        for name in &u.groups {
            let group = by_id
                .get(name)
                .or_else(|| by_name.get(&(directory, name.clone())))
                .copied()
                .filter(|&g| model.group(g).directory == directory)
                .ok_or_else(|| ModelError::NotFound {
                    kind: "Directory group",
                    id: name.clone(),
                })
                .with_context(|| format!("user {id}"))?;
            model.link(group, slot);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_none_and_unknown_ones_refused() {
        let file: DirectoryFile = serde_json::from_str(
            r#"{"groups": [{"name": "Engineering"}], "users": [{"email": "ada@example.com"}]}"#,
        )
        .unwrap();
        assert!(file.directories.is_empty());
        assert_eq!(file.groups[0].id, None);
        assert_eq!(file.users[0].first_name, None);
        assert!(file.users[0].groups.is_empty());
        assert!(
            serde_json::from_str::<DirectoryFile>(r#"{"users": [{"nickname": "ada"}]}"#).is_err()
        );
        assert!(
            serde_json::from_str::<GroupEntry>("{}").is_err(),
            "a group needs a name"
        );
    }
}
