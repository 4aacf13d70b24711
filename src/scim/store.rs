//! What an identity provider pushed to a SCIM directory, kept as it will be read back, and each write made
//! an entry of the durable log in the same transaction: the `dsync.*` event the apply engine applies, as a
//! broker would have sent it, stamped by the directory's own clock (rule 6). A SCIM read answers from
//! what was kept, so the identity provider reads its own writes at once; the members, teams and roles it
//! implies follow from the applier.

use super::discovery::ENTERPRISE_SCHEMA;
use super::filter::{field, key_of, AttrPath, Filter};
use super::patch::{self, PatchError};
use super::resources::{group_snapshot, member_ids, members, user_snapshot, Stamps};
use crate::audit::SCIM_EVENT_PREFIX;
use crate::db::models::NewWebhookEvent;
use crate::db::schema::{scim_directories, scim_resources};
use crate::db::{Database, DbConnection, DbError};
use crate::ids::new_id;
use crate::intake::event_store::insert_deliveries;
use crate::workos::events::Event;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A SCIM resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    /// Its name, as stored and as `meta.resourceType` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    /// Its endpoint under the directory's base URL.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    fn schema(self) -> &'static str {
        match self {
            Kind::User => super::discovery::USER_SCHEMA,
            Kind::Group => super::discovery::GROUP_SCHEMA,
        }
    }

    /// The attribute that names the resource: unique per directory for users.
    fn name_attribute(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Kind::User => "directory_user",
            Kind::Group => "directory_group",
        }
    }
}

/// The SCIM directory a request is for.
#[derive(Debug, Clone)]
pub struct ScimDirectory {
    pub directory_id: String,
    pub organization_id: String,
}

/// Why a SCIM request was refused, as its status and `scimType` (RFC 7644 §3.12).
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error("{0} not found")]
    NotFound(String),
    /// `uniqueness`: another user of the directory has this `userName`.
    #[error("{0}")]
    Uniqueness(String),
    /// `invalidValue`: a required attribute is missing or a value cannot be kept.
    #[error("{0}")]
    InvalidValue(String),
    /// `invalidSyntax`: not a SCIM resource or request.
    #[error("{0}")]
    InvalidSyntax(String),
    /// `invalidFilter`.
    #[error("{0}")]
    InvalidFilter(String),
    /// 412: `If-Match` names another version.
    #[error("the resource's version is {0}, not the one If-Match names")]
    PreconditionFailed(String),
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(ScimError);

impl ScimError {
    /// The HTTP status answered.
    pub fn status(&self) -> u16 {
        match self {
            ScimError::NotFound(_) => 404,
            ScimError::Uniqueness(_) => 409,
            ScimError::PreconditionFailed(_) => 412,
            ScimError::Db(_) => 503,
            _ => 400,
        }
    }

    /// The `scimType` answered, where RFC 7644 defines one.
    pub fn scim_type(&self) -> Option<&'static str> {
        Some(match self {
            ScimError::Uniqueness(_) => "uniqueness",
            ScimError::InvalidValue(_) => "invalidValue",
            ScimError::InvalidSyntax(_) => "invalidSyntax",
            ScimError::InvalidFilter(_) => "invalidFilter",
            ScimError::Patch(e) => e.scim_type(),
            ScimError::NotFound(_) | ScimError::PreconditionFailed(_) | ScimError::Db(_) => {
                return None
            }
        })
    }
}

/// A resource as kept.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = scim_resources, treat_none_as_null = true)]
pub struct ResourceRow {
    pub directory_id: String,
    pub id: String,
    pub resource_type: String,
    pub name_key: String,
    pub external_id: Option<String>,
    pub body: String,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ResourceRow {
    /// Its version as an ETag (weak: the representation may differ by the attributes asked for).
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    /// The resource as a SCIM read answers it, under `base` (the directory's SCIM base URL).
    pub fn resource(&self, base: &str) -> Value {
        let mut body: Value = serde_json::from_str(&self.body).unwrap_or_else(|_| json!({}));
        let kind = if self.resource_type == Kind::Group.as_str() {
            Kind::Group
        } else {
            Kind::User
        };
        if let Value::Object(object) = &mut body {
            object.insert("id".into(), json!(self.id));
            object.insert(
                "meta".into(),
                json!({
                    "resourceType": kind.as_str(),
                    "created": timestamp::time_json(&self.created_at),
                    "lastModified": timestamp::time_json(&self.updated_at),
                    "location": format!("{base}/{}/{}", kind.endpoint(), self.id),
                    "version": self.etag(),
                }),
            );
        }
        body
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| json!({}))
    }
}

/// A version named by `If-Match` (`W/"3"`, `"3"` or `*`): `None` is any.
pub fn if_match_version(header: &str) -> Option<i64> {
    let tag = header.trim();
    if tag == "*" {
        return None;
    }
    let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
    // A version Rollcall never gave matches nothing.
    Some(tag.parse().unwrap_or(-1))
}

/// Which attributes compare text exactly (RFC 7643: ids; the rest, names and emails, in any case).
pub fn case_exact(path: &AttrPath) -> bool {
    let name = path.sub_attribute.as_deref().unwrap_or(&path.attribute);
    (["id", "externalId"].contains(&path.attribute.as_str()) && path.sub_attribute.is_none())
        || (path.attribute.eq_ignore_ascii_case("members") && name.eq_ignore_ascii_case("value"))
        || name.eq_ignore_ascii_case("$ref")
}

/// The resource `id` of `kind` in the directory.
pub fn get(
    db: &Database,
    directory: &ScimDirectory,
    kind: Kind,
    id: &str,
) -> Result<ResourceRow, ScimError> {
    db.read(|conn| find(conn, directory, kind, id))
}

fn find(
    conn: &mut DbConnection,
    directory: &ScimDirectory,
    kind: Kind,
    id: &str,
) -> Result<ResourceRow, ScimError> {
    crate::on_backend!(conn, |c| scim_resources::table
        .filter(scim_resources::directory_id.eq(&directory.directory_id))
        .filter(scim_resources::id.eq(id))
        .filter(scim_resources::resource_type.eq(kind.as_str()))
        .select(ResourceRow::as_select())
        .first(c)
        .optional())?
    .ok_or_else(|| ScimError::NotFound(format!("{} {id}", kind.as_str())))
}

/// The resources of `kind` that `filter` matches, in id order: those from the `start`th (1-based), at
/// most `count`, and how many match in all.
pub fn list(
    db: &Database,
    directory: &ScimDirectory,
    kind: Kind,
    filter: Option<&Filter>,
    base: &str,
    start: usize,
    count: usize,
) -> Result<(Vec<Value>, usize), ScimError> {
    let start = start.max(1);
    db.read(|conn| {
        let narrowed = filter.and_then(|f| indexed_lookup(f, kind));
        let (offset, limit) = match filter {
            // Unfiltered, the database pages; filtered, every candidate is read and matched here.
            None => ((start - 1) as i64, count as i64),
            Some(_) => (0, i64::MAX),
        };
        let rows: Vec<ResourceRow> = crate::on_backend!(conn, |c| {
            let mut query = scim_resources::table
                .filter(scim_resources::directory_id.eq(&directory.directory_id))
                .filter(scim_resources::resource_type.eq(kind.as_str()))
                .select(ResourceRow::as_select())
                .order(scim_resources::id)
                .offset(offset)
                .limit(limit)
                .into_boxed();
            if let Some((column, value)) = &narrowed {
                query = match column {
                    Indexed::Id => query.filter(scim_resources::id.eq(value.clone())),
                    Indexed::NameKey => query.filter(scim_resources::name_key.eq(value.clone())),
                    Indexed::ExternalId => {
                        query.filter(scim_resources::external_id.eq(value.clone()))
                    }
                };
            }
            query.load(c)
        })?;
        let Some(filter) = filter else {
            // Unfiltered: the database counts and pages.
            let total: i64 = crate::on_backend!(conn, |c| scim_resources::table
                .filter(scim_resources::directory_id.eq(&directory.directory_id))
                .filter(scim_resources::resource_type.eq(kind.as_str()))
                .count()
                .get_result(c))?;
            return Ok((
                rows.iter().map(|r| r.resource(base)).collect(),
                total as usize,
            ));
        };
        let matching: Vec<Value> = rows
            .iter()
            .map(|r| r.resource(base))
            .filter(|resource| filter.matches(resource, &case_exact))
            .collect();
        let total = matching.len();
        Ok((
            matching.into_iter().skip(start - 1).take(count).collect(),
            total,
        ))
    })
}

enum Indexed {
    Id,
    NameKey,
    ExternalId,
}

/// A filter that an index answers: `id`, `userName` (users' names in any case) or `externalId` equal to
/// a text, alone or as a term of an `and`.
fn indexed_lookup(filter: &Filter, kind: Kind) -> Option<(Indexed, String)> {
    use super::filter::{CompValue, CompareOp};
    match filter {
        Filter::And(a, b) => indexed_lookup(a, kind).or_else(|| indexed_lookup(b, kind)),
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(text),
        } if path.sub_attribute.is_none()
            && path
                .schema
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(kind.schema())) =>
        {
            let attribute = path.attribute.as_str();
            if attribute.eq_ignore_ascii_case("id") {
                Some((Indexed::Id, text.clone()))
            } else if attribute.eq_ignore_ascii_case("externalId") {
                Some((Indexed::ExternalId, text.clone()))
            } else if kind == Kind::User && attribute.eq_ignore_ascii_case("userName") {
                Some((Indexed::NameKey, name_key(text)))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The most members one group may hold.
pub const MAX_MEMBERS: usize = 100_000;

/// A resource as the identity provider sent it, made ready to keep: an object with the schema of its
/// kind, without what the service decides (`id`, `meta`) or never keeps (`password`) or derives (a user's
/// `groups`); its naming attribute present.
fn checked_body(kind: Kind, body: Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(mut object) = body else {
        return Err(ScimError::InvalidSyntax(format!(
            "a {} is a JSON object",
            kind.as_str()
        )));
    };
    for ours in ["id", "meta", "password", "groups"] {
        if ours == "groups" && kind == Kind::Group {
            continue;
        }
        if let Some(key) = key_of(&object, ours) {
            object.remove(&key);
        }
    }
    let attribute = kind.name_attribute();
    let name = key_of(&object, attribute)
        .and_then(|key| object.get(&key))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            ScimError::InvalidValue(format!("{attribute} is required and must be a text"))
        })?
        .to_string();
    if name.chars().count() > 1_000 || name.contains('\0') {
        return Err(ScimError::InvalidValue(format!(
            "{attribute}: at most 1,000 characters, no NUL"
        )));
    }
    // The schemas are the resource's own and those of the extensions it holds (RFC 7643 §3).
    if let Some(key) = key_of(&object, "schemas") {
        object.remove(&key);
    }
    let mut listed = vec![kind.schema()];
    if kind == Kind::User && key_of(&object, ENTERPRISE_SCHEMA).is_some() {
        listed.push(ENTERPRISE_SCHEMA);
    }
    object.insert("schemas".into(), json!(listed));
    if let Some(key) = key_of(&object, "members").filter(|_| kind == Kind::Group) {
        let kept = members(&object[&key]);
        if kept.len() > MAX_MEMBERS {
            return Err(ScimError::InvalidValue(format!(
                "a group holds at most {MAX_MEMBERS} members"
            )));
        }
        object.remove(&key);
        object.insert("members".into(), Value::Array(kept));
    }
    Ok(object)
}

/// A write's result: the resource as kept.
pub struct Written {
    pub row: ResourceRow,
    pub created: bool,
}

/// Creates a resource of `kind` from what the identity provider posted.
pub fn create(
    db: &Database,
    directory: &ScimDirectory,
    kind: Kind,
    body: Value,
) -> Result<Written, ScimError> {
    let object = checked_body(kind, body)?;
    write(db, directory, |conn, log| {
        let stamp = log.stamp;
        let row = keep(conn, directory, kind, None, object, stamp)?;
        log.resource_written(conn, kind, &row, None)?;
        Ok(Written { row, created: true })
    })
}

/// Replaces resource `id` with what the identity provider put (`PUT`).
pub fn replace(
    db: &Database,
    directory: &ScimDirectory,
    kind: Kind,
    id: &str,
    body: Value,
    if_match: Option<i64>,
) -> Result<Written, ScimError> {
    let object = checked_body(kind, body)?;
    write(db, directory, |conn, log| {
        let stamp = log.stamp;
        let before = find(conn, directory, kind, id)?;
        check_version(&before, if_match)?;
        let row = keep(conn, directory, kind, Some(&before), object, stamp)?;
        log.resource_written(conn, kind, &row, Some(&before))?;
        Ok(Written {
            row,
            created: false,
        })
    })
}

/// Applies a PATCH request to resource `id`: all its operations or none.
pub fn patch(
    db: &Database,
    directory: &ScimDirectory,
    kind: Kind,
    id: &str,
    request: &Value,
    if_match: Option<i64>,
) -> Result<Written, ScimError> {
    write(db, directory, |conn, log| {
        let stamp = log.stamp;
        let before = find(conn, directory, kind, id)?;
        check_version(&before, if_match)?;
        let mut resource = before.json();
        patch::apply(&mut resource, request)?;
        let object = checked_body(kind, resource)?;
        if Value::Object(object.clone()) == before.json() {
            // Nothing changed: no new version, nothing to apply.
            return Ok(Written {
                row: before,
                created: false,
            });
        }
        let row = keep(conn, directory, kind, Some(&before), object, stamp)?;
        log.resource_written(conn, kind, &row, Some(&before))?;
        Ok(Written {
            row,
            created: false,
        })
    })
}

/// Deletes resource `id`: a user is deprovisioned (rule 3) and leaves its groups; a group is dropped.
pub fn delete(
    db: &Database,
    directory: &ScimDirectory,
    kind: Kind,
    id: &str,
    if_match: Option<i64>,
) -> Result<(), ScimError> {
    write(db, directory, |conn, log| {
        let stamp = log.stamp;
        let before = find(conn, directory, kind, id)?;
        check_version(&before, if_match)?;
        match kind {
            Kind::User => {
                // The user leaves every group that lists it, then is deleted.
                for group in groups_of(conn, directory, id)? {
                    let mut object = match group.json() {
                        Value::Object(object) => object,
                        _ => Map::new(),
                    };
                    if let Some(key) = key_of(&object, "members") {
                        if let Some(Value::Array(members)) = object.get_mut(&key) {
                            members
                                .retain(|m| field(m, "value").and_then(Value::as_str) != Some(id));
                        }
                    }
                    let row = keep(conn, directory, Kind::Group, Some(&group), object, stamp)?;
                    log.resource_written(conn, Kind::Group, &row, Some(&group))?;
                }
                let snapshot = log.snapshot(Kind::User, &before);
                log.push("dsync.user.deleted", snapshot);
            }
            Kind::Group => {
                let snapshot = log.snapshot(Kind::Group, &before);
                log.push("dsync.group.deleted", snapshot);
            }
        }
        crate::on_backend!(conn, |c| diesel::delete(
            scim_resources::table
                .filter(scim_resources::directory_id.eq(&directory.directory_id))
                .filter(scim_resources::id.eq(id))
        )
        .execute(c))?;
        Ok(())
    })
}

/// Logs each of the workspace's SCIM directories again ([`replay`]); returns their lanes, to wake.
pub fn replay_workspace(db: &Database, workspace_id: &str) -> Result<Vec<String>, ScimError> {
    let mut lanes = Vec::new();
    for directory in directories_of(db, workspace_id)? {
        let logged = replay(db, &directory)?;
        tracing::info!(directory = %directory.directory_id, logged, "SCIM directory applied again: directory sync turned on");
        lanes.push(directory.directory_id);
    }
    Ok(lanes)
}

/// The SCIM directories of a workspace.
pub fn directories_of(db: &Database, workspace_id: &str) -> Result<Vec<ScimDirectory>, ScimError> {
    use crate::db::schema::directories;
    let found: Vec<(String, String)> = db.read(|conn| {
        crate::on_backend!(conn, |c| scim_directories::table
            .inner_join(directories::table.on(directories::id.eq(scim_directories::directory_id)),)
            .filter(scim_directories::workspace_id.eq(workspace_id))
            .filter(directories::deleted_at.is_null())
            .select((scim_directories::directory_id, directories::organization_id))
            .order(scim_directories::directory_id)
            .load(c))
        .map_err(DbError::from)
    })?;
    Ok(found
        .into_iter()
        .map(|(directory_id, organization_id)| ScimDirectory {
            directory_id,
            organization_id,
        })
        .collect())
}

/// Logs the directory's whole state again, as a broker's full pull would bring it: each user and group
/// as kept, each member of each group, and the deletion of what the engine still holds but the identity
/// provider no longer has (users, groups, memberships). For a workspace that turns directory sync on:
/// what was pushed while it was off was skipped, and is applied now. Returns the entries logged.
pub fn replay(db: &Database, directory: &ScimDirectory) -> Result<usize, ScimError> {
    use crate::db::schema::{directory_group_memberships, directory_groups, directory_users};
    write(db, directory, |conn, log| {
        let stamp = log.stamp;
        let rows: Vec<ResourceRow> = crate::on_backend!(conn, |c| scim_resources::table
            .filter(scim_resources::directory_id.eq(&directory.directory_id))
            .select(ResourceRow::as_select())
            .order((scim_resources::resource_type.desc(), scim_resources::id))
            .load(c))?;
        let (users, groups): (Vec<&ResourceRow>, Vec<&ResourceRow>) = rows
            .iter()
            .partition(|r| r.resource_type == Kind::User.as_str());
        let user_ids: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let group_ids: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        let mut snapshots: HashMap<&str, Value> = HashMap::new();
        for user in &users {
            let snapshot = log.snapshot(Kind::User, user);
            log.push("dsync.user.updated", snapshot.clone());
            snapshots.insert(user.id.as_str(), snapshot);
        }
        let mut pushed: HashSet<(String, String)> = HashSet::new();
        for group in &groups {
            let snapshot = log.snapshot(Kind::Group, group);
            log.push("dsync.group.updated", snapshot.clone());
            for member in member_ids(&group.json()) {
                let Some(user) = snapshots.get(member.as_str()) else {
                    continue;
                };
                log.membership("dsync.group.user_added", user, &snapshot);
                pushed.insert((group.id.clone(), member));
            }
        }
        // What the engine holds that the identity provider no longer has.
        let held_users: Vec<(String, String)> =
            crate::on_backend!(conn, |c| directory_users::table
                .filter(directory_users::directory_id.eq(&directory.directory_id))
                .filter(directory_users::deleted_at.is_null())
                .select((directory_users::id, directory_users::snapshot))
                .load(c))?;
        let held_groups: Vec<(String, String)> =
            crate::on_backend!(conn, |c| directory_groups::table
                .filter(directory_groups::directory_id.eq(&directory.directory_id))
                .filter(directory_groups::deleted_at.is_null())
                .select((directory_groups::id, directory_groups::snapshot))
                .load(c))?;
        let held_memberships: Vec<(String, String)> =
            crate::on_backend!(conn, |c| directory_group_memberships::table
                .filter(directory_group_memberships::directory_id.eq(&directory.directory_id))
                .filter(directory_group_memberships::is_member.eq(true))
                .select((
                    directory_group_memberships::group_id,
                    directory_group_memberships::user_id,
                ))
                .load(c))?;
        // As stored: a membership event names them without being a newer record of them.
        let stored = |snapshot: &str| -> Value {
            serde_json::from_str(snapshot).unwrap_or_else(|_| json!({}))
        };
        // A deletion is newer than anything stored.
        let restamped = |snapshot: &Value| {
            let mut snapshot = snapshot.clone();
            snapshot["updated_at"] = json!(timestamp::format(stamp));
            snapshot
        };
        let held_user_snapshots: BTreeMap<&str, Value> = held_users
            .iter()
            .map(|(id, snapshot)| (id.as_str(), stored(snapshot)))
            .collect();
        let held_group_snapshots: BTreeMap<&str, Value> = held_groups
            .iter()
            .map(|(id, snapshot)| (id.as_str(), stored(snapshot)))
            .collect();
        for (group, user) in &held_memberships {
            if pushed.contains(&(group.clone(), user.clone())) {
                continue;
            }
            let (Some(user_snapshot), Some(group_snapshot)) = (
                held_user_snapshots.get(user.as_str()),
                held_group_snapshots.get(group.as_str()),
            ) else {
                continue;
            };
            log.membership("dsync.group.user_removed", user_snapshot, group_snapshot);
        }
        for (id, snapshot) in &held_user_snapshots {
            if !user_ids.contains(id) {
                log.push("dsync.user.deleted", restamped(snapshot));
            }
        }
        for (id, snapshot) in &held_group_snapshots {
            if !group_ids.contains(id) {
                log.push("dsync.group.deleted", restamped(snapshot));
            }
        }
        Ok(log.events.len())
    })
}

/// The groups whose members include user `id`.
fn groups_of(
    conn: &mut DbConnection,
    directory: &ScimDirectory,
    id: &str,
) -> Result<Vec<ResourceRow>, ScimError> {
    // The id is looked for in the text first; only the groups that hold it are read.
    let pattern = format!(
        "%{}%",
        id.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows: Vec<ResourceRow> = crate::on_backend!(conn, |c| scim_resources::table
        .filter(scim_resources::directory_id.eq(&directory.directory_id))
        .filter(scim_resources::resource_type.eq(Kind::Group.as_str()))
        .filter(scim_resources::body.like(&pattern).escape('\\'))
        .select(ResourceRow::as_select())
        .order(scim_resources::id)
        .load(c))?;
    Ok(rows
        .into_iter()
        .filter(|g| member_ids(&g.json()).iter().any(|m| m == id))
        .collect())
}

fn check_version(row: &ResourceRow, if_match: Option<i64>) -> Result<(), ScimError> {
    match if_match {
        Some(version) if version != row.version => Err(ScimError::PreconditionFailed(row.etag())),
        _ => Ok(()),
    }
}

/// Keeps `object` as resource `before` (or a new one), its version one higher; refuses a user name
/// another user of the directory has.
fn keep(
    conn: &mut DbConnection,
    directory: &ScimDirectory,
    kind: Kind,
    before: Option<&ResourceRow>,
    object: Map<String, Value>,
    stamp: Timestamp,
) -> Result<ResourceRow, ScimError> {
    let body = Value::Object(object);
    let name = field(&body, kind.name_attribute())
        .and_then(Value::as_str)
        .unwrap_or_default();
    let key = name_key(name);
    if kind == Kind::User {
        let taken: Option<String> = crate::on_backend!(conn, |c| scim_resources::table
            .filter(scim_resources::directory_id.eq(&directory.directory_id))
            .filter(scim_resources::resource_type.eq(Kind::User.as_str()))
            .filter(scim_resources::name_key.eq(&key))
            .select(scim_resources::id)
            .first(c)
            .optional())?;
        if taken.is_some_and(|other| before.is_none_or(|b| b.id != other)) {
            return Err(ScimError::Uniqueness(format!(
                "another user of the directory has the userName {name:?}"
            )));
        }
    }
    let external_id = field(&body, "externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let row = ResourceRow {
        directory_id: directory.directory_id.clone(),
        id: before.map_or_else(|| new_id(kind.id_prefix()), |b| b.id.clone()),
        resource_type: kind.as_str().to_string(),
        name_key: key,
        external_id,
        body: body.to_string(),
        version: before.map_or(1, |b| b.version + 1),
        created_at: before.map_or(stamp, |b| b.created_at),
        updated_at: stamp,
    };
    match before {
        None => crate::on_backend!(conn, |c| diesel::insert_into(scim_resources::table)
            .values(&row)
            .execute(c))?,
        Some(_) => crate::on_backend!(conn, |c| diesel::update(
            scim_resources::table
                .filter(scim_resources::directory_id.eq(&row.directory_id))
                .filter(scim_resources::id.eq(&row.id))
        )
        .set(&row)
        .execute(c))?,
    };
    Ok(row)
}

/// The users of the directory among `ids`, by id, read 500 at a time.
fn users_among(
    conn: &mut DbConnection,
    directory: &ScimDirectory,
    ids: &[String],
) -> Result<HashMap<String, ResourceRow>, ScimError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<ResourceRow> = crate::on_backend!(conn, |c| scim_resources::table
            .filter(scim_resources::directory_id.eq(&directory.directory_id))
            .filter(scim_resources::resource_type.eq(Kind::User.as_str()))
            .filter(scim_resources::id.eq_any(chunk))
            .select(ResourceRow::as_select())
            .load(c))?;
        found.extend(rows.into_iter().map(|row| (row.id.clone(), row)));
    }
    Ok(found)
}

/// The log entries one SCIM write makes, in the order the engine applies them, each stamped with the
/// write's stamp.
struct Log<'d> {
    directory: &'d ScimDirectory,
    /// The write's stamp, from the directory's clock.
    stamp: Timestamp,
    /// Each event's body, in order.
    events: Vec<Vec<u8>>,
}

impl Log<'_> {
    /// The engine's record of `row` as of this write.
    fn snapshot(&self, kind: Kind, row: &ResourceRow) -> Value {
        self.snapshot_at(kind, row, self.stamp)
    }

    /// The engine's record of `row` as of `at`.
    fn snapshot_at(&self, kind: Kind, row: &ResourceRow, at: Timestamp) -> Value {
        let created_at = timestamp::format(row.created_at);
        let updated_at = timestamp::format(at);
        let stamps = Stamps {
            directory_id: &self.directory.directory_id,
            organization_id: &self.directory.organization_id,
            created_at: &created_at,
            updated_at: &updated_at,
        };
        match kind {
            Kind::User => user_snapshot(&row.json(), &row.id, &stamps),
            Kind::Group => group_snapshot(&row.json(), &row.id, &stamps),
        }
    }

    fn push(&mut self, event_type: &str, data: Value) {
        let id = new_id(SCIM_EVENT_PREFIX.trim_end_matches('_'));
        let body = json!({
            "id": id,
            "event": event_type,
            "data": data,
            "created_at": timestamp::format(self.stamp),
        });
        self.events.push(body.to_string().into_bytes());
    }

    /// A user joining or leaving a group (`dsync.group.user_added` or `…_removed`).
    fn membership(&mut self, event_type: &str, user: &Value, group: &Value) {
        let data =
            json!({"directory_id": self.directory.directory_id, "user": user, "group": group});
        self.push(event_type, data);
    }

    /// The events that bring the engine from `before` to `row`: the resource's snapshot, then for a
    /// group each member that joined or left.
    fn resource_written(
        &mut self,
        conn: &mut DbConnection,
        kind: Kind,
        row: &ResourceRow,
        before: Option<&ResourceRow>,
    ) -> Result<(), ScimError> {
        let snapshot = self.snapshot(kind, row);
        let event_type = match (kind, before) {
            (Kind::User, None) => "dsync.user.created",
            (Kind::User, Some(_)) => "dsync.user.updated",
            (Kind::Group, None) => "dsync.group.created",
            (Kind::Group, Some(_)) => "dsync.group.updated",
        };
        self.push(event_type, snapshot.clone());
        if kind != Kind::Group {
            return Ok(());
        }
        let now = member_ids(&row.json());
        let then = before.map(|b| member_ids(&b.json())).unwrap_or_default();
        let (in_now, in_then): (HashSet<&String>, HashSet<&String>) =
            (now.iter().collect(), then.iter().collect());
        let not_in = |ids: &[String], other: &HashSet<&String>| -> Vec<String> {
            ids.iter().filter(|m| !other.contains(m)).cloned().collect()
        };
        for (event_type, ids) in [
            ("dsync.group.user_added", not_in(&now, &in_then)),
            ("dsync.group.user_removed", not_in(&then, &in_now)),
        ] {
            let users = users_among(conn, self.directory, &ids)?;
            // A member that is no user of this directory is kept as pushed (RFC 7644 asks no check of
            // it) but means nothing to the workspace: its id names no one Rollcall has.
            for user_row in ids.iter().filter_map(|id| users.get(id)) {
                // The user as last written: a membership carries no newer record of it.
                let user = self.snapshot_at(Kind::User, user_row, user_row.updated_at);
                self.membership(event_type, &user, &snapshot);
            }
        }
        Ok(())
    }
}

/// Runs one SCIM write in one transaction with the log entries it makes: stamps it from the directory's
/// clock, stores the entries as deliveries (source `scim`) and returns once both are committed.
fn write<T>(
    db: &Database,
    directory: &ScimDirectory,
    work: impl FnOnce(&mut DbConnection, &mut Log) -> Result<T, ScimError>,
) -> Result<T, ScimError> {
    let received_at = timestamp::now();
    db.write_deliveries(|conn| {
        let stamp = tick(conn, &directory.directory_id, received_at)?;
        let mut log = Log {
            directory,
            stamp,
            events: Vec::new(),
        };
        let done = work(conn, &mut log)?;
        let rows: Vec<NewWebhookEvent> = log
            .events
            .into_iter()
            .map(|body| {
                let event = Event::parse(&body).map_err(|e| {
                    ScimError::InvalidValue(format!("the resource cannot be applied: {}", e.0))
                })?;
                Ok(NewWebhookEvent::received(&event, body, received_at).from_scim())
            })
            .collect::<Result<_, ScimError>>()?;
        insert_deliveries(conn, &rows)?;
        Ok(done)
    })
}

/// The directory's next stamp: now, or just after the last one given when the clock has not moved on
/// (or moved back), so a directory's stamps only grow.
fn tick(
    conn: &mut DbConnection,
    directory_id: &str,
    now: Timestamp,
) -> Result<Timestamp, ScimError> {
    let last: Timestamp = crate::on_backend!(conn, |c| scim_directories::table
        .find(directory_id)
        .select(scim_directories::clock)
        .first(c))?;
    let stamp = now.max(last + chrono::Duration::microseconds(1));
    crate::on_backend!(conn, |c| diesel::update(
        scim_directories::table.find(directory_id)
    )
    .set(scim_directories::clock.eq(stamp))
    .execute(c))?;
    Ok(stamp)
}
