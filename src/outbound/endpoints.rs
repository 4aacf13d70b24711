//! A workspace's webhook endpoints as admins manage them: where the change feed is sent, which types,
//! the secret (shown once), enabled or not and why, and the attempts made.

use super::address::{check_url, Reach};
use super::signing::new_secret;
use crate::access::Caller;
use crate::db::models::{WebhookAttemptRow, WebhookEndpointRow};
use crate::db::schema::{webhook_attempts, webhook_endpoints, workspaces};
use crate::db::{Database, DbConnection, DbError};
use crate::domain::ChangeType;
use crate::ids::new_id;
use crate::lists::{List, Page};
use crate::workos::timestamp::{self, time_json};
use crate::workspaces::{visible, WorkspaceError};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a change to an endpoint, or a look at one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("webhook endpoint not found")]
    NotFound,
    /// A field given is not what it must be; the text names the field.
    #[error("{0}")]
    InvalidField(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(EndpointError);

/// A webhook endpoint to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where changes are posted: `https://` (plain `http://` and private addresses only where the
    /// service allows them, `ROLLCALL_OUTBOUND_ALLOW_PRIVATE`).
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The change types sent; every type when absent or empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::domain::ChangeType>>)]
    pub event_types: Option<Vec<String>>,
    /// Off to create it without sending yet; on by default.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The most changes sent in one message, 1 to 100; 1 (one change per message) by default.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<i32>,
}

/// A change to an endpoint; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::domain::ChangeType>>)]
    pub event_types: Option<Vec<String>>,
    /// On again after it was disabled: sending goes on from where it stopped, the failures forgotten.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<i32>,
}

/// A webhook endpoint (never its secret, but at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub description: String,
    /// The change types sent; empty for every type.
    #[schema(value_type = Vec<crate::domain::ChangeType>)]
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// The most changes sent in one message: 1, each change its own message (`{type, timestamp, data}`,
    /// `data` the change); more, each message a `change.batch` whose `data.changes` are up to this many
    /// changes in feed order.
    pub batch_size: i32,
    /// Why it was disabled (by the service, or by hand); null while enabled.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// The last feed position it was handed: sent with a 2xx, or not one of its types.
    pub delivered_through: i64,
    /// Since when the next change has failed; null while deliveries succeed.
    #[schema(required = true, format = DateTime)]
    pub failing_since: Option<String>,
    /// Failed attempts of the next change.
    pub failed_attempts: i32,
    /// When the next change is tried again; null when not waiting.
    #[schema(required = true, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&WebhookEndpointRow> for Endpoint {
    fn from(row: &WebhookEndpointRow) -> Self {
        Endpoint {
            id: row.id.clone(),
            workspace_id: row.workspace_id.clone(),
            url: row.url.clone(),
            description: row.description.clone(),
            event_types: split_types(&row.event_types),
            enabled: row.enabled,
            batch_size: row.batch_size,
            disabled_reason: row.disabled_reason.clone(),
            delivered_through: row.delivered_through,
            failing_since: row.failing_since.as_ref().map(time_json),
            failed_attempts: row.failed_attempts,
            next_attempt_at: row.next_attempt_at.as_ref().map(time_json),
            created_at: time_json(&row.created_at),
            updated_at: time_json(&row.updated_at),
        }
    }
}

/// A new endpoint with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// The signing secret (`whsec_…`), for the receiver's Standard Webhooks library; never shown again.
    pub secret: String,
}

/// One attempt to deliver a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub id: i64,
    /// The delivery's `webhook-id`: the same for every attempt of one message.
    pub message_id: String,
    /// The feed position of the message's (last) change.
    pub position: i64,
    #[schema(format = DateTime)]
    pub attempted_at: String,
    /// The endpoint's answer; null when there was none.
    #[schema(required = true)]
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// Why there was no answer (refused address, timeout, connection error).
    #[schema(required = true)]
    pub error: Option<String>,
    /// The start of the answer's body.
    #[schema(required = true)]
    pub response: Option<String>,
}

impl From<&WebhookAttemptRow> for Attempt {
    fn from(row: &WebhookAttemptRow) -> Self {
        Attempt {
            id: row.id,
            message_id: row.message_id.clone(),
            position: row.position,
            attempted_at: time_json(&row.attempted_at),
            status_code: row.status_code,
            latency_ms: row.latency_ms,
            error: row.error.clone(),
            response: row.response.clone(),
        }
    }
}

/// The types an endpoint stores, space-separated.
pub fn split_types(types: &str) -> Vec<String> {
    types.split_whitespace().map(String::from).collect()
}

fn checked_types(types: Vec<String>) -> Result<String, EndpointError> {
    let mut checked = Vec::new();
    for kind in types {
        let kind: ChangeType = kind
            .parse()
            .map_err(|why| EndpointError::InvalidField(format!("event_types: {why}")))?;
        if !checked.contains(&kind.as_str()) {
            checked.push(kind.as_str());
        }
    }
    Ok(checked.join(" "))
}

fn checked_description(description: Option<String>) -> Result<String, EndpointError> {
    let description = description.unwrap_or_default();
    if description.chars().count() > 200 || description.contains('\0') {
        return Err(EndpointError::InvalidField(
            "description: at most 200 characters, no NUL".into(),
        ));
    }
    Ok(description)
}

/// The most changes one message may carry.
pub const MOST_PER_MESSAGE: i32 = 100;

fn checked_batch_size(size: i32) -> Result<i32, EndpointError> {
    if (1..=MOST_PER_MESSAGE).contains(&size) {
        Ok(size)
    } else {
        Err(EndpointError::InvalidField(format!(
            "batch_size: from 1 to {MOST_PER_MESSAGE}"
        )))
    }
}

fn checked_url(url: &str, reach: Reach) -> Result<String, EndpointError> {
    check_url(url, reach)
        .map(|url| url.to_string())
        .map_err(|why| EndpointError::InvalidField(format!("url: {why}")))
}

/// Creates an endpoint, sent the changes made from now on; returns it with its secret.
pub fn create(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    new: NewEndpoint,
    reach: Reach,
) -> Result<CreatedEndpoint, EndpointError> {
    let url = checked_url(&new.url, reach)?;
    let event_types = checked_types(new.event_types.unwrap_or_default())?;
    let description = checked_description(new.description)?;
    let batch_size = checked_batch_size(new.batch_size.unwrap_or(1))?;
    db.write_workspace(workspace_id, |conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let last: i64 = workspaces::table
            .find(&workspace.id)
            .select(workspaces::change_position)
            .first(conn)?;
        let now = timestamp::now();
        let row = WebhookEndpointRow {
            id: new_id("we"),
            workspace_id: workspace.id,
            url,
            description,
            event_types,
            secret: new_secret(),
            enabled: new.enabled.unwrap_or(true),
            disabled_reason: None,
            delivered_through: last,
            failing_since: None,
            failed_attempts: 0,
            next_attempt_at: None,
            lease_until: None,
            lease_holder: None,
            created_at: now,
            updated_at: now,
            batch_size,
            retry_through: None,
        };
        diesel::insert_into(webhook_endpoints::table)
            .values(&row)
            .execute(conn)?;
        Ok(CreatedEndpoint {
            endpoint: Endpoint::from(&row),
            secret: row.secret.clone(),
        })
    })
}

fn load(
    conn: &mut DbConnection,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<WebhookEndpointRow, EndpointError> {
    visible(conn, caller, workspace_id)?;
    webhook_endpoints::table
        .find(id)
        .filter(webhook_endpoints::workspace_id.eq(workspace_id))
        .select(WebhookEndpointRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(EndpointError::NotFound)
}

/// A page of the workspace's endpoints, oldest first.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    page: &Page,
) -> Result<List<Endpoint>, EndpointError> {
    db.read(|conn| {
        visible(conn, caller, workspace_id)?;
        let mut q = webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .order(webhook_endpoints::id)
            .limit(page.limit + 1)
            .select(WebhookEndpointRow::as_select())
            .into_boxed();
        if let Some(after) = &page.after {
            q = q.filter(webhook_endpoints::id.gt(after.clone()));
        }
        let rows: Vec<WebhookEndpointRow> = q.load(conn)?;
        Ok(List::from_overfetch(rows, page, |e| e.id.clone()).map(|e| Endpoint::from(e)))
    })
}

/// One endpoint.
pub fn get(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<Endpoint, EndpointError> {
    db.read(|conn| Ok(Endpoint::from(&load(conn, caller, workspace_id, id)?)))
}

/// Changes an endpoint. Enabling one forgets its failures: the next change is sent at once.
pub fn update(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
    change: EndpointChange,
    reach: Reach,
) -> Result<Endpoint, EndpointError> {
    let url = change
        .url
        .as_deref()
        .map(|url| checked_url(url, reach))
        .transpose()?;
    let event_types = change.event_types.map(checked_types).transpose()?;
    let description = change
        .description
        .map(|d| checked_description(Some(d)))
        .transpose()?;
    let batch_size = change.batch_size.map(checked_batch_size).transpose()?;
    db.write_workspace(workspace_id, |conn| {
        let mut row = load(conn, caller, workspace_id, id)?;
        if event_types.as_ref().is_some_and(|t| *t != row.event_types)
            || batch_size.is_some_and(|b| b != row.batch_size)
        {
            // A message that failed is made again from the new settings.
            row.retry_through = None;
        }
        row.batch_size = batch_size.unwrap_or(row.batch_size);
        row.url = url.unwrap_or(row.url);
        row.event_types = event_types.unwrap_or(row.event_types);
        row.description = description.unwrap_or(row.description);
        match change.enabled {
            Some(true) if !row.enabled => {
                row.enabled = true;
                row.disabled_reason = None;
                row.failing_since = None;
                row.failed_attempts = 0;
                row.next_attempt_at = None;
            }
            Some(false) if row.enabled => {
                row.enabled = false;
                row.disabled_reason = Some("disabled by hand".into());
            }
            _ => {}
        }
        row.updated_at = timestamp::now();
        save(conn, &row)?;
        Ok(Endpoint::from(&row))
    })
}

/// Moves an endpoint's cursor back (or forward) so it is sent the changes after `after` again
/// (operator); its failures are forgotten.
pub fn replay(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
    after: i64,
) -> Result<Endpoint, EndpointError> {
    caller.require_operator().map_err(WorkspaceError::from)?;
    db.write_workspace(workspace_id, |conn| {
        let mut row = load(conn, caller, workspace_id, id)?;
        let last: i64 = workspaces::table
            .find(workspace_id)
            .select(workspaces::change_position)
            .first(conn)?;
        if !(0..=last).contains(&after) {
            return Err(EndpointError::InvalidField(format!(
                "after: a position from 0 to {last}"
            )));
        }
        row.delivered_through = after;
        row.retry_through = None;
        row.failing_since = None;
        row.failed_attempts = 0;
        row.next_attempt_at = None;
        row.updated_at = timestamp::now();
        save(conn, &row)?;
        Ok(Endpoint::from(&row))
    })
}

fn save(conn: &mut DbConnection, row: &WebhookEndpointRow) -> QueryResult<()> {
    diesel::update(webhook_endpoints::table.find(&row.id))
        .set((
            webhook_endpoints::url.eq(&row.url),
            webhook_endpoints::description.eq(&row.description),
            webhook_endpoints::event_types.eq(&row.event_types),
            webhook_endpoints::enabled.eq(row.enabled),
            webhook_endpoints::disabled_reason.eq(&row.disabled_reason),
            webhook_endpoints::delivered_through.eq(row.delivered_through),
            webhook_endpoints::batch_size.eq(row.batch_size),
            webhook_endpoints::retry_through.eq(row.retry_through),
            webhook_endpoints::failing_since.eq(row.failing_since),
            webhook_endpoints::failed_attempts.eq(row.failed_attempts),
            webhook_endpoints::next_attempt_at.eq(row.next_attempt_at),
            webhook_endpoints::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes an endpoint and its attempts.
pub fn delete(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<(), EndpointError> {
    db.write_workspace(workspace_id, |conn| {
        load(conn, caller, workspace_id, id)?;
        diesel::delete(webhook_attempts::table.filter(webhook_attempts::endpoint_id.eq(id)))
            .execute(conn)?;
        diesel::delete(webhook_endpoints::table.find(id)).execute(conn)?;
        Ok(())
    })
}

/// A page of an endpoint's attempts, newest first.
pub fn attempts(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
    page: &Page,
    after: Option<i64>,
) -> Result<List<Attempt>, EndpointError> {
    db.read(|conn| {
        load(conn, caller, workspace_id, id)?;
        let mut q = webhook_attempts::table
            .filter(webhook_attempts::endpoint_id.eq(id))
            .order(webhook_attempts::id.desc())
            .limit(page.limit + 1)
            .select(WebhookAttemptRow::as_select())
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(webhook_attempts::id.lt(after));
        }
        let rows: Vec<WebhookAttemptRow> = q.load(conn)?;
        Ok(List::from_overfetch(rows, page, |a| a.id.to_string()).map(|a| Attempt::from(a)))
    })
}
