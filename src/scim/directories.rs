//! A workspace's own SCIM directories: created by its admin (or an operator), each with bearer tokens the
//! identity provider sends (shown once, kept as their SHA-256, several at once for rotation, revocable).
//! A SCIM directory is a row of `directories` of type [`SCIM_DIRECTORY_TYPE`], so everything that works
//! on a broker's directory works on it; no pull reads it.

use super::store::ScimDirectory;
use crate::access::Caller;
use crate::db::models::DirectoryRow;
use crate::db::schema::{directories, scim_directories, scim_resources, scim_tokens};
use crate::db::{Database, DbConnection, DbError};
use crate::domain::SCIM_DIRECTORY_TYPE;
use crate::ids::{new_id, DirectoryId};
use crate::tokens::{check_name, generate_token, hash_token};
use crate::workos::timestamp::{self, time_json, Timestamp};
use crate::workspaces::{visible, WorkspaceError};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a directory's SCIM endpoints are, under the service's address.
pub fn base_path(directory_id: &str) -> String {
    format!("/scim/v2/{directory_id}")
}

/// Why a SCIM directory request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScimDirectoryError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("SCIM directory not found")]
    NotFound,
    #[error("SCIM token not found")]
    TokenNotFound,
    /// A field given is not what it must be; the text names the field.
    #[error("{0}")]
    InvalidField(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(ScimDirectoryError);

/// A SCIM directory to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScimDirectory {
    /// What the directory is called on the screens; "SCIM" when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// A token to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScimToken {
    /// What the token is for (such as "Okta, 2026 rotation"); "SCIM token" when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// A token as stored, without its hash.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scim_tokens)]
struct ScimTokenRow {
    id: String,
    name: String,
    created_at: Timestamp,
    last_used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

/// A token, as listed (its secret is shown only when created).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScimToken {
    pub id: String,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// When it was revoked; a revoked token opens nothing.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

impl From<ScimTokenRow> for ScimToken {
    fn from(row: ScimTokenRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: time_json(&row.created_at),
            last_used_at: row.last_used_at.as_ref().map(time_json),
            revoked_at: row.revoked_at.as_ref().map(time_json),
        }
    }
}

/// A token just created, with the secret the identity provider sends: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedScimToken {
    #[serde(flatten)]
    pub token: ScimToken,
    /// The bearer token, shown this once.
    pub secret: String,
}

/// A SCIM directory as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScimDirectoryView {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// The path of its SCIM base URL under the service's address (`/scim/v2/{directory}`): the
    /// identity provider's "SCIM connector base URL" is the service's public address followed by it.
    pub base_path: String,
    /// The users and groups the identity provider has pushed.
    pub users: i64,
    pub groups: i64,
    /// Its tokens, revoked ones included, oldest first.
    pub tokens: Vec<ScimToken>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A SCIM directory just created, with its first token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedScimDirectory {
    #[serde(flatten)]
    pub directory: ScimDirectoryView,
    /// Its first token, shown this once.
    pub token: CreatedScimToken,
}

fn checked_name(name: Option<String>, default: &str) -> Result<String, ScimDirectoryError> {
    match name {
        None => Ok(default.to_string()),
        Some(name) => check_name(&name).map_err(ScimDirectoryError::InvalidField),
    }
}

/// Creates a SCIM directory for the workspace, with a first token.
pub fn create(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    new: NewScimDirectory,
) -> Result<CreatedScimDirectory, ScimDirectoryError> {
    let name = checked_name(new.name, "SCIM")?;
    db.write_workspace(workspace_id, |conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let now = timestamp::now();
        let id = new_id("directory");
        diesel::insert_into(directories::table)
            .values(DirectoryRow {
                id: DirectoryId::from(id.clone()),
                organization_id: workspace.organization_id.clone(),
                directory_type: SCIM_DIRECTORY_TYPE.to_string(),
                name,
                state: "active".into(),
                source_updated_at: now,
                source_event_at: now,
                deleted_at: None,
                last_synced_at: None,
                created_at: now,
                updated_at: now,
            })
            .execute(conn)?;
        diesel::insert_into(scim_directories::table)
            .values((
                scim_directories::directory_id.eq(&id),
                scim_directories::workspace_id.eq(&workspace.id),
                scim_directories::clock.eq(now),
                scim_directories::created_at.eq(now),
            ))
            .execute(conn)?;
        let token = insert_token(conn, &id, "SCIM token".into())?;
        let directory = view(conn, &workspace.id, &id)?;
        tracing::info!(workspace = %workspace.id, directory = %id, "SCIM directory created");
        Ok(CreatedScimDirectory { directory, token })
    })
}

fn insert_token(
    conn: &mut DbConnection,
    directory_id: &str,
    name: String,
) -> Result<CreatedScimToken, ScimDirectoryError> {
    let secret = format!("scim_{}", generate_token().trim_start_matches("rc_"));
    let token = ScimTokenRow {
        id: new_id("scimtok"),
        name,
        created_at: timestamp::now(),
        last_used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(scim_tokens::table)
        .values((
            scim_tokens::id.eq(&token.id),
            scim_tokens::directory_id.eq(directory_id),
            scim_tokens::name.eq(&token.name),
            scim_tokens::token_hash.eq(hash_token(&secret)),
            scim_tokens::created_at.eq(token.created_at),
        ))
        .execute(conn)?;
    Ok(CreatedScimToken {
        token: token.into(),
        secret,
    })
}

/// The workspace's SCIM directory `id`, else not found.
fn view(
    conn: &mut DbConnection,
    workspace_id: &str,
    id: &str,
) -> Result<ScimDirectoryView, ScimDirectoryError> {
    let (directory_id, created_at): (String, Timestamp) = scim_directories::table
        .filter(scim_directories::workspace_id.eq(workspace_id))
        .filter(scim_directories::directory_id.eq(id))
        .select((scim_directories::directory_id, scim_directories::created_at))
        .first(conn)
        .optional()?
        .ok_or(ScimDirectoryError::NotFound)?;
    let name: String = directories::table
        .find(&directory_id)
        .select(directories::name)
        .first(conn)?;
    let counts: Vec<(String, i64)> = scim_resources::table
        .filter(scim_resources::directory_id.eq(&directory_id))
        .group_by(scim_resources::resource_type)
        .select((scim_resources::resource_type, diesel::dsl::count_star()))
        .load(conn)?;
    let count_of = |kind: &str| {
        counts
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    };
    let tokens: Vec<ScimTokenRow> = scim_tokens::table
        .filter(scim_tokens::directory_id.eq(&directory_id))
        .select(ScimTokenRow::as_select())
        .order(scim_tokens::id)
        .load(conn)?;
    Ok(ScimDirectoryView {
        base_path: base_path(&directory_id),
        users: count_of("User"),
        groups: count_of("Group"),
        id: directory_id,
        workspace_id: workspace_id.to_string(),
        name,
        tokens: tokens.into_iter().map(ScimToken::from).collect(),
        created_at: time_json(&created_at),
    })
}

/// The workspace's SCIM directories, oldest first.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
) -> Result<Vec<ScimDirectoryView>, ScimDirectoryError> {
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let ids: Vec<String> = scim_directories::table
            .filter(scim_directories::workspace_id.eq(&workspace.id))
            .select(scim_directories::directory_id)
            .order(scim_directories::directory_id)
            .load(conn)?;
        ids.iter().map(|id| view(conn, &workspace.id, id)).collect()
    })
}

/// One of the workspace's SCIM directories.
pub fn get(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<ScimDirectoryView, ScimDirectoryError> {
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        view(conn, &workspace.id, id)
    })
}

/// Creates another token for the directory (a rotation: the old ones keep working until revoked).
pub fn create_token(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
    new: NewScimToken,
) -> Result<CreatedScimToken, ScimDirectoryError> {
    let name = checked_name(new.name, "SCIM token")?;
    db.write_workspace(workspace_id, |conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        view(conn, &workspace.id, id)?;
        insert_token(conn, id, name)
    })
}

/// Revokes a token: the identity provider's next request with it is refused.
pub fn revoke_token(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
    token_id: &str,
) -> Result<ScimToken, ScimDirectoryError> {
    db.write_workspace(workspace_id, |conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        view(conn, &workspace.id, id)?;
        let revoked = diesel::update(
            scim_tokens::table
                .filter(scim_tokens::directory_id.eq(id))
                .filter(scim_tokens::id.eq(token_id))
                .filter(scim_tokens::revoked_at.is_null()),
        )
        .set(scim_tokens::revoked_at.eq(timestamp::now()))
        .execute(conn)?;
        if revoked == 0 {
            return Err(ScimDirectoryError::TokenNotFound);
        }
        tracing::info!(directory = %id, token = %token_id, "SCIM token revoked");
        let row: ScimTokenRow = scim_tokens::table
            .find(token_id)
            .select(ScimTokenRow::as_select())
            .first(conn)?;
        Ok(row.into())
    })
}

/// The directory a bearer token opens, with the token's id: none for an unknown or revoked token, or
/// another directory's.
pub fn authenticate(
    db: &Database,
    directory_id: &str,
    secret: &str,
) -> Result<Option<(ScimDirectory, String)>, DbError> {
    let hash = hash_token(secret);
    db.read(|conn| {
        let found: Option<(String, String, String)> = scim_tokens::table
            .inner_join(directories::table.on(directories::id.eq(scim_tokens::directory_id)))
            .filter(scim_tokens::token_hash.eq(&hash))
            .filter(scim_tokens::revoked_at.is_null())
            .filter(scim_tokens::directory_id.eq(directory_id))
            .select((
                scim_tokens::id,
                scim_tokens::directory_id,
                directories::organization_id,
            ))
            .first(conn)
            .optional()?;
        Ok(found.map(|(token_id, directory_id, organization_id)| {
            (
                ScimDirectory {
                    directory_id,
                    organization_id,
                },
                token_id,
            )
        }))
    })
}

/// Records a token's use (at most as often as the caller asks).
pub fn record_use(db: &Database, token_id: &str) -> Result<(), DbError> {
    db.write(|conn| {
        diesel::update(scim_tokens::table.find(token_id))
            .set(scim_tokens::last_used_at.eq(timestamp::now()))
            .execute(conn)
            .map_err(DbError::from)
    })
    .map(|_| ())
}
